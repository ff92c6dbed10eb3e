package demo

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/nanodems/connector/cli"
)

// API is a small client of the relay's management API, used by the demo
// and by tests to drive the relay exactly as an operator's curl would.
type API struct {
	Base   string
	Client *http.Client
}

// NewAPI returns a client for the relay at base, trusting pin.
func NewAPI(base, pin string) *API {
	return &API{Base: strings.TrimRight(base, "/"), Client: cli.Relay{URL: base, Pin: pin}.HTTPClient()}
}

// Cred is one way of authenticating a request.
type Cred func(*http.Request)

// Admin authenticates with the admin key.
func Admin(key string) Cred { return func(r *http.Request) { r.Header.Set("X-Admin-Api-Key", key) } }

// Bearer authenticates with an nt_ token.
func Bearer(tok string) Cred {
	return func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+tok) }
}

// Do sends a JSON request and decodes a JSON answer into out (if not nil).
// A status other than 2xx is returned as a *cli.RelayError.
func (a *API) Do(ctx context.Context, method, path string, in, out any, cred Cred) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, a.Base+path, body)
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	if cred != nil {
		cred(req)
	}
	resp, err := a.Client.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode/100 != 2 {
		var e struct {
			Error string `json:"error"`
		}
		json.Unmarshal(b, &e)
		return &cli.RelayError{Status: resp.StatusCode, Reason: e.Error}
	}
	if out != nil && len(b) > 0 {
		if err := json.Unmarshal(b, out); err != nil {
			return fmt.Errorf("%s %s: decode answer: %w", method, path, err)
		}
	}
	return nil
}
