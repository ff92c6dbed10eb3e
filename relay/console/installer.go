package console

import (
	"net/http"
	"net/url"
)

// Download is an API answer the console passes to the browser as it is
// (a file, not JSON): given as Call's out, it receives the answer's
// header and body instead of a decoded value.
type Download struct {
	Header http.Header
	Body   []byte
}

// installer (POST /sites/{siteId}/installers/{os}) answers the site's
// Linux or Windows installer as a download. Each holds a fresh one-shot
// enrollment token, so it is a form, never a link: a GET would mint
// tokens for any prefetch, and put nothing secret in a URL either way.
func (h *Handler) installer(w http.ResponseWriter, r *http.Request, c *call) error {
	var dl Download
	path := "/api/sites/" + url.PathEscape(r.PathValue("siteId")) + "/installers/" + url.PathEscape(r.PathValue("os"))
	if err := c.Call("POST", path, nil, &dl); err != nil {
		return err
	}
	for _, k := range []string{"Content-Type", "Content-Disposition", "X-Enrollment-Expires-At"} {
		if v := dl.Header.Get(k); v != "" {
			w.Header().Set(k, v)
		}
	}
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(http.StatusOK)
	w.Write(dl.Body)
	return nil
}
