package agent

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/nanodems/connector/internal/atomicfile"
	"github.com/nanodems/connector/internal/pin"
	"github.com/nanodems/connector/mux"
)

// EnrollOptions says where and how to enroll.
type EnrollOptions struct {
	RelayURL string // the relay's API, https://host:port (http only on loopback)
	// RelayURLs are further relays of the same installation. Enrollment
	// goes to the first that answers; the agent then keeps every one's
	// agent listener (same port as the enrolling relay's) and races them.
	RelayURLs []string
	Token     string // the site's one-shot enrollment token
	// Pin is the relay API certificate's "sha256:<hex>" public-key pin. The
	// relay's self-signed certificate can only be trusted this way; with a
	// certificate from a public CA, leave it empty.
	Pin string
	Dir string // where the key, certificate and state go
}

// Enroll makes a key on this machine, sends a CSR with the token, and stores
// the certificate the relay returns. The key never leaves dir.
func Enroll(ctx context.Context, o EnrollOptions) (*Identity, error) {
	return obtainCertificate(ctx, certRequest{
		relayURLs: append([]string{o.RelayURL}, o.RelayURLs...), pin: o.Pin, dir: o.Dir, path: "/api/enroll", what: "enrollment",
		body: func(csr string) any { return mux.EnrollRequest{Token: o.Token, CSR: csr} },
	})
}

// certRequest is one way of trading a CSR for the agent's certificate:
// the relay's route and the body that carries the CSR with the credential
// (an enrollment token, a device serial).
type certRequest struct {
	relayURLs []string // tried in order; see obtainCertificate
	pin, dir  string
	path      string // /api/enroll, /api/claim
	what      string // in errors: "enrollment", "claim"
	body      func(csrPEM string) any
}

// obtainCertificate makes a key in c.dir, posts its CSR to the relay, and
// stores the certificate and identity the relay returns (a
// mux.EnrollResponse).
func obtainCertificate(ctx context.Context, c certRequest) (*Identity, error) {
	for _, raw := range c.relayURLs {
		u, err := url.Parse(raw)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			return nil, fmt.Errorf("agent: relay URL %q is not http(s)://host:port", raw)
		}
		if u.Scheme == "http" && !isLoopback(u.Hostname()) {
			return nil, fmt.Errorf("agent: refusing to send an %s credential over plain HTTP to %s; use https", c.what, u.Host)
		}
	}
	if err := os.MkdirAll(c.dir, 0o700); err != nil {
		return nil, fmt.Errorf("agent: state directory: %w", err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	csrDER, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, key)
	if err != nil {
		return nil, fmt.Errorf("agent: csr: %w", err)
	}
	body, _ := json.Marshal(c.body(string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: csrDER}))))
	client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: pin.TLSConfig(c.pin)}}
	defer client.CloseIdleConnections()
	// The credential is good once: only a relay that could not be reached
	// (no answer at all) passes it on to the next URL.
	var resp *http.Response
	var used string
	var unreachable []string
	for _, relayURL := range c.relayURLs {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimRight(relayURL, "/")+c.path, bytes.NewReader(body))
		if err != nil {
			return nil, err
		}
		req.Header.Set("Content-Type", "application/json")
		if resp, err = client.Do(req); err == nil {
			used = relayURL
			break
		}
		if ctx.Err() != nil {
			return nil, fmt.Errorf("agent: %s: %w", c.what, ctx.Err())
		}
		unreachable = append(unreachable, fmt.Sprintf("%s (%v)", relayURL, err))
	}
	if resp == nil {
		return nil, fmt.Errorf("agent: %s: no relay answered; tried %s", c.what, strings.Join(unreachable, ", "))
	}
	defer resp.Body.Close()
	rb, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode != http.StatusOK {
		var e struct{ Error string }
		json.Unmarshal(rb, &e)
		if e.Error == "" {
			e.Error = strings.TrimSpace(string(rb))
		}
		return nil, fmt.Errorf("agent: relay refused %s (%d): %s", c.what, resp.StatusCode, e.Error)
	}
	var er mux.EnrollResponse
	if err := json.Unmarshal(rb, &er); err != nil {
		return nil, fmt.Errorf("agent: %s answer: %w", c.what, err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, err
	}
	id := Identity{AgentID: er.AgentID, SiteID: er.SiteID, RelayAddr: er.AgentAddr, RelayURL: used}
	if len(c.relayURLs) > 1 {
		id.RelayURLs = c.relayURLs
		id.RelayAddrs = agentAddrs(er.AgentAddr, c.relayURLs)
	}
	idJSON, _ := json.MarshalIndent(id, "", "  ")
	for _, f := range []struct {
		name string
		data []byte
		perm os.FileMode
	}{
		{keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600},
		{certFile, []byte(er.Certificate), 0o644},
		{caFile, []byte(er.CA), 0o644},
		{identityFile, idJSON, 0o644},
	} {
		if err := atomicfile.Write(filepath.Join(c.dir, f.name), f.data, f.perm); err != nil {
			return nil, fmt.Errorf("agent: write %s: %w", f.name, err)
		}
	}
	// A fresh identity starts from an empty allowlist: the old site's
	// list must not survive into the new identity.
	os.Remove(filepath.Join(c.dir, allowlistFile))
	return LoadIdentity(c.dir)
}

// agentAddrs is the enrolling relay's agent listener first, then that of
// every other relay URL: its host, with the enrolling relay's agent port
// (the relays of one installation are identical).
func agentAddrs(enrolled string, urls []string) []string {
	out := []string{enrolled}
	_, port, err := net.SplitHostPort(enrolled)
	if err != nil {
		return out
	}
	for _, raw := range urls {
		u, err := url.Parse(raw)
		if err != nil {
			continue
		}
		a := net.JoinHostPort(u.Hostname(), port)
		if !slices.Contains(out, a) {
			out = append(out, a)
		}
	}
	return out
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
