package relay

import (
	"bytes"
	"io"
	"net/http"
	"sync"

	"github.com/nanodems/connector/internal/httpauth"
)

// authTransport answers a camera's Basic or Digest challenge with the
// device's stored login. Devices without one pass straight through, and
// their challenges reach the browser untouched.
type authTransport struct {
	p       *webProxy
	mu      sync.Mutex
	clients map[string]*httpauth.Client // device id → client holding the last challenge
}

func (p *webProxy) forgetAuth(deviceID string) {
	p.auth.mu.Lock()
	delete(p.auth.clients, deviceID)
	p.auth.mu.Unlock()
}

func (t *authTransport) client(deviceID string, c *deviceCreds) *httpauth.Client {
	t.mu.Lock()
	defer t.mu.Unlock()
	cl := t.clients[deviceID]
	if cl == nil {
		cl = &httpauth.Client{Username: c.Username, Password: c.Password}
		t.clients[deviceID] = cl
	}
	return cl
}

func (t *authTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	pr := fromCtx(req.Context())
	creds, err := t.p.sealer.credsFor(req.Context(), pr.route.DeviceID)
	if err != nil {
		return nil, err
	}
	if creds == nil {
		return t.p.tr.RoundTrip(req)
	}
	req = req.Clone(req.Context())
	req.Header.Del("Authorization") // the relay answers for this camera
	cl := t.client(pr.route.DeviceID, creds)
	hasBody := req.Body != nil && req.Body != http.NoBody
	var held *heldBody
	if hasBody && !cl.HasChallenge() {
		// The first request may meet a challenge and need sending again.
		if req.ContentLength >= 0 && req.ContentLength <= maxReplay {
			b, err := io.ReadAll(req.Body)
			if err != nil {
				return nil, err
			}
			req.Body.Close()
			req.Body = io.NopCloser(bytes.NewReader(b))
			req.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil }
		} else {
			// Too big to hold: ask before sending it. A camera that
			// challenges answers 401 instead of 100 Continue, the body is
			// still unread, and goes out with the retry.
			req.Header.Set("Expect", "100-continue")
			held = &heldBody{r: req.Body}
			req.Body = held
		}
	}
	if err := authorize(cl, req); err != nil {
		return nil, err
	}
	resp, err := t.p.tr.RoundTrip(req)
	if held != nil {
		defer held.r.Close()
	}
	if err != nil || resp.StatusCode != http.StatusUnauthorized {
		return resp, err
	}
	ch, ok := httpauth.ChallengeFromResponse(resp.Header)
	canReplay := !hasBody || req.GetBody != nil || (held != nil && held.n == 0)
	if !ok || !canReplay {
		return hideChallenge(resp), nil
	}
	cl.SetChallenge(ch)
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	retry := req.Clone(req.Context())
	switch {
	case req.GetBody != nil:
		if retry.Body, err = req.GetBody(); err != nil {
			return nil, err
		}
	case held != nil:
		retry.Body = held.r
		retry.Header.Del("Expect")
	}
	if err := authorize(cl, retry); err != nil {
		return nil, err
	}
	resp, err = t.p.tr.RoundTrip(retry)
	if err == nil && resp.StatusCode == http.StatusUnauthorized {
		resp = hideChallenge(resp)
	}
	return resp, err
}

// maxReplay is the largest request body held in memory so it can be sent
// again after a challenge: logins and settings forms, not firmware.
const maxReplay = 1 << 20

// heldBody is a request body that survives the Transport closing it, and
// counts what was read, so an upload refused before its first byte can be
// sent again.
type heldBody struct {
	r io.ReadCloser
	n int64
}

func (h *heldBody) Read(p []byte) (int, error) {
	n, err := h.r.Read(p)
	h.n += int64(n)
	return n, err
}

func (h *heldBody) Close() error { return nil }

// authorize sets the Authorization header for the camera's own request
// target (the path without the relay's prefix), which Digest signs.
func authorize(cl *httpauth.Client, req *http.Request) error {
	if !cl.HasChallenge() {
		return nil
	}
	a, err := cl.Authorization(req.Method, req.URL.RequestURI(), nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", a)
	return nil
}

// hideChallenge drops WWW-Authenticate from a 401 the stored login could
// not satisfy: the browser must not prompt for a password the operator is
// not meant to know.
func hideChallenge(resp *http.Response) *http.Response {
	resp.Header.Del("WWW-Authenticate")
	resp.Header.Set("X-Nanodems-Error", "camera refused the stored credentials")
	return resp
}
