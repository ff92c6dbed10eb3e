package console

import (
	"errors"
	"net/http"
	"net/url"
	"time"
)

// APIToken is an nt_ token as the API lists it (never its secret).
type APIToken struct {
	ID         string     `json:"id"`
	Label      string     `json:"label"`
	CreatedAt  time.Time  `json:"created_at"`
	LastUsedAt *time.Time `json:"last_used_at"`
	RevokedAt  *time.Time `json:"revoked_at"`
}

// LastUsed is the token's last use for the table: zero if never.
func (t APIToken) LastUsed() time.Time {
	if t.LastUsedAt == nil {
		return time.Time{}
	}
	return *t.LastUsedAt
}

// tokenPage is one page of GET /api/users/{id}/tokens.
type tokenPage struct {
	Items []APIToken `json:"items"`
	Next  string     `json:"next"`
}

// newToken is the answer of minting: the secret, shown once.
type newToken struct {
	ID    string `json:"id"`
	Token string `json:"token"`
	Label string `json:"label"`
}

// License is an OpCon license of the tenant as the API lists it: its
// id, the last four characters of its GUID, and its dates. The console
// shows them read-only; the licensing application issues and revokes
// them through the admin API.
type License struct {
	ID        string     `json:"id"`
	Hint      string     `json:"hint"`
	CreatedAt time.Time  `json:"created_at"`
	RevokedAt *time.Time `json:"revoked_at"`
}

type tokensView struct {
	Licenses []License // the tenant's, read-only
	Tokens   []APIToken
	More     string
	Label    string // the mint form's label, kept with its error
	Error    string
	Created  *newToken
}

// tokensPage (GET /account/tokens) lists the signed-in user's nt_
// tokens: label, created, last used, and Revoke.
func (h *Handler) tokensPage(w http.ResponseWriter, r *http.Request, c *call) error {
	return h.showTokens(w, r, c, http.StatusOK, tokensView{})
}

func (h *Handler) showTokens(w http.ResponseWriter, r *http.Request, c *call, status int, v tokensView) error {
	var page tokenPage
	path := "/api/users/" + url.PathEscape(c.Who.UserID) + "/tokens?limit=1000&cursor=" + url.QueryEscape(r.URL.Query().Get("cursor"))
	if err := c.Call("GET", path, nil, &page); err != nil {
		return err
	}
	v.Tokens, v.More = page.Items, page.Next
	if lp, err := c.tenantPath("/licenses"); err == nil {
		if err := c.Call("GET", lp, nil, &v.Licenses); err != nil {
			return err
		}
	}
	return h.render(w, r, c, status, "tokens", "account", v)
}

// createToken (POST /account/tokens) mints an nt_ token and shows it in
// this answer only.
func (h *Handler) createToken(w http.ResponseWriter, r *http.Request, c *call) error {
	v := tokensView{Label: formValue(r, "label")}
	var created newToken
	err := c.Call("POST", "/api/users/"+url.PathEscape(c.Who.UserID)+"/tokens", map[string]string{"label": v.Label}, &created)
	var ae *APIError
	switch {
	case errors.As(err, &ae) && ae.Status == http.StatusBadRequest:
		v.Error = fieldReason(ae.Reason)
		return h.showTokens(w, r, c, http.StatusBadRequest, v)
	case err != nil:
		return err
	}
	v.Created, v.Label = &created, ""
	return h.showTokens(w, r, c, http.StatusOK, v)
}

// revokeToken (POST /account/tokens/{tokenId}/revoke) revokes one of
// the user's tokens: its next API call gets 401, and what it opened is
// cut.
func (h *Handler) revokeToken(w http.ResponseWriter, r *http.Request, c *call) error {
	id := r.PathValue("tokenId")
	if err := c.Call("DELETE", "/api/users/"+url.PathEscape(c.Who.UserID)+"/tokens/"+url.PathEscape(id), nil, nil); err != nil {
		return err
	}
	return h.redirect(w, r, "/account/tokens", "Token revoked; its next call gets 401.")
}
