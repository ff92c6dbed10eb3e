// Package console is the operator console: the web pages an operator signs
// in to and works in (sites, devices, agents, CLI sessions, tokens, audit),
// served by the relay on its API listener.
//
// The console is server-rendered (html/template) with its stylesheet and
// one small script embedded (embed); it needs no build step and nothing
// from the network. Every form works without JavaScript; the script only
// adds popups, copy buttons, table sort and filter, and refreshes.
//
// The console is a client of the relay's JSON API. Every change it makes,
// and most of what it shows, goes through Backend.Call: the API route runs
// in-process as the signed-in user, with the API's own validation and
// access checks. The console therefore cannot do anything the API would
// refuse, another tenant's ids get the API's 403/404, and every page has a
// JSON twin under /api/…. Lists the API does not serve (the superadmin's
// tenant picker) are read from the store.
//
// # Adding a page
//
// A page is three things:
//
//  1. A handler file, e.g. agents.go, with a method of *Handler of type
//     pageFunc: func(w http.ResponseWriter, r *http.Request, c *call) error.
//     c.Who is the signed-in user; c.Call reaches the API. Render with
//     h.render(w, r, c, status, "agents", data), where data is the
//     page's own struct; return an error to get the error page (an
//     *APIError keeps the API's status and reason). A state-changing
//     handler answers with h.redirect(w, r, to, flash) (303 + a flash
//     message), or re-renders its form with the field's error (status 400).
//  2. A template file, templates/agents.html, that defines "title" and
//     "content" (and may define "head" for page-only markup). It is
//     rendered inside templates/layout.html, which draws the top bar, the
//     flash message and the footer. Forms carry the antiforgery token
//     with {{template "csrf" .}}; the console refuses a POST without it.
//  3. A route line in Handler.routes (console.go): the method and path
//     pattern, wrapped in h.page (GET: needs a session) or h.form (POST:
//     needs a session and the antiforgery token). The relay mounts every
//     route of that table; the tenant-isolation test walks it.
//
// Table markup that sorts and filters itself: <table class="data"
// id="x">, a <input data-filter="x"> filter box and a <span
// data-count="x"> count (see static/app.js).
package console
