package relay

import (
	"errors"
	"html/template"
	"net/http"
)

// pageTmpl renders every page the relay shows a person: sign-in, home and
// errors. One small stylesheet, no scripts: the pages must work with
// JavaScript off and leave the camera's own pages alone.
var pageTmpl = template.Must(template.New("page").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">
<title>{{.Title}} · nanodems</title>
<style>body{font:16px/1.5 system-ui,sans-serif;max-width:36em;margin:4em auto;padding:0 1em;color:#222}
h1{font-size:1.4em}.err{color:#a00}label{display:block;margin:.6em 0}input{font:inherit;padding:.3em;width:100%}
button{font:inherit;padding:.4em 1.2em;margin-top:.8em}code{background:#eee;padding:0 .2em}</style></head>
<body><h1>{{.Title}}</h1>
{{if .Message}}<p class="{{if .IsError}}err{{end}}" id="message">{{.Message}}</p>{{end}}
{{if .Login}}<form method="post" action="/login">
<input type="hidden" name="csrf" value="{{.CSRF}}"><input type="hidden" name="next" value="{{.Next}}">
<label>Email <input name="email" type="email" autocomplete="username" required autofocus></label>
<label>Password <input name="password" type="password" autocomplete="current-password" required></label>
<button type="submit" id="signin">Sign in</button></form>{{end}}
{{if .User}}<p>Signed in as <b>{{.User}}</b>{{if .Tenant}} in tenant <code>{{.Tenant}}</code>{{end}}.</p>
{{if .Superadmin}}<form method="post" action="/switch-tenant"><input type="hidden" name="csrf" value="{{.CSRF}}">
<label>Switch to tenant <input name="tenant_id" required></label><button type="submit">Switch</button></form>{{end}}
<form method="post" action="/logout"><input type="hidden" name="csrf" value="{{.CSRF}}"><button type="submit" id="signout">Sign out</button></form>{{end}}
{{if .Retry}}<p><a href="{{.Retry}}">Try again</a></p>{{end}}
</body></html>
`))

type page struct {
	Title, Message string
	IsError        bool
	Login          bool
	CSRF, Next     string
	User, Tenant   string
	Superadmin     bool
	Retry          string
}

func renderPage(w http.ResponseWriter, code int, p page) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Frame-Options", "DENY")
	w.WriteHeader(code)
	pageTmpl.Execute(w, p)
}

// errorPage answers a person with a page that names the problem; the
// status is the one HTTPStatus gives the error.
func (s *base) errorPage(w http.ResponseWriter, r *http.Request, err error, what string) {
	code := HTTPStatus(err)
	msg := err.Error()
	if code == http.StatusInternalServerError {
		s.log.Error("request failed", "path", r.URL.Path, "err", err)
		msg = "internal error"
	}
	title := http.StatusText(code)
	var tl *tryLaterError
	switch {
	case errors.As(err, &tl):
		setRetryAfter(w, err) // its message says what to do
	case code == http.StatusGatewayTimeout:
		msg = what + " did not answer in time: " + msg
	case code == http.StatusBadGateway:
		msg = what + " could not be reached: " + msg
	case code == http.StatusServiceUnavailable:
		msg = what + ": agent reconnecting: the site's agent is offline; try again in a few seconds"
	}
	renderPage(w, code, page{Title: title, Message: msg, IsError: true, Retry: r.URL.RequestURI()})
}
