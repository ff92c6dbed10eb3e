package pin_test

import (
	"crypto/tls"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/nanodems/connector/internal/pin"
)

func TestTLSConfig(t *testing.T) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer srv.Close()
	good := pin.Of(srv.Certificate())
	get := func(p string) error {
		c := &http.Client{Transport: &http.Transport{TLSClientConfig: pin.TLSConfig(p)}}
		defer c.CloseIdleConnections()
		resp, err := c.Get(srv.URL)
		if err == nil {
			resp.Body.Close()
		}
		return err
	}
	if err := get(good); err != nil {
		t.Fatalf("the right pin was refused: %v", err)
	}
	bad := "sha256:" + strings.Repeat("0", 64)
	if err := get(bad); err == nil || !strings.Contains(err.Error(), good) || !strings.Contains(err.Error(), bad) {
		t.Fatalf("a wrong pin: %v; want a refusal naming both pins", err)
	}
	// Without a pin the system roots decide, and they do not know
	// httptest's certificate.
	if err := get(""); err == nil {
		t.Fatal("no pin trusted a self-signed certificate")
	}
	if cfg := pin.TLSConfig(""); cfg.InsecureSkipVerify || cfg.MinVersion < tls.VersionTLS12 {
		t.Fatalf("no-pin config %+v", cfg)
	}
}
