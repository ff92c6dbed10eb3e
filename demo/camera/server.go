package camera

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"fmt"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"sync"
	"time"
)

// Server is a camera listening on a real socket.
type Server struct {
	Addr        string            // host:port listened on
	URL         string            // "http://host:port" or "https://host:port"
	Certificate *x509.Certificate // the self-signed TLS leaf; nil for plain HTTP
	Fingerprint string            // "sha256:<hex>" of Certificate's DER; "" for plain HTTP

	srv    *http.Server
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// Start serves the camera on addr (e.g. "127.0.0.1:0"): HTTPS with a fresh
// self-signed certificate when Options.TLS, else plain HTTP. HTTP/1.1 only,
// as cameras speak.
func (c *Camera) Start(addr string) (*Server, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("camera: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Server{Addr: ln.Addr().String(), URL: "http://" + ln.Addr().String(), cancel: cancel}
	if c.o.TLS {
		cert, err := selfSigned(ln.Addr().(*net.TCPAddr).IP)
		if err != nil {
			ln.Close()
			cancel()
			return nil, err
		}
		s.Certificate = cert.Leaf
		sum := sha256.Sum256(cert.Leaf.Raw)
		s.Fingerprint = "sha256:" + hex.EncodeToString(sum[:])
		s.URL = "https://" + s.Addr
		ln = tls.NewListener(ln, &tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: []string{"http/1.1"}})
	}
	s.srv = &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			s.wg.Add(1)
			defer s.wg.Done()
			c.ServeHTTP(w, r)
		}),
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          log.New(io.Discard, "", 0), // e.g. clients rejecting the self-signed cert
		BaseContext:       func(net.Listener) context.Context { return ctx },
	}
	go s.srv.Serve(ln)
	return s, nil
}

// Client returns an HTTP client that trusts the server's certificate.
func (s *Server) Client() *http.Client {
	if s.Certificate == nil {
		return &http.Client{}
	}
	pool := x509.NewCertPool()
	pool.AddCert(s.Certificate)
	return &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
}

// Close stops the server, ends open streams and WebSockets, and waits
// (up to 5 s) for their handlers to return.
func (s *Server) Close() error {
	s.cancel() // request contexts, including hijacked WebSockets
	err := s.srv.Close()
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
	}
	return err
}

// selfSigned makes a P-256 certificate for localhost, 127.0.0.1, ::1 and ip.
func selfSigned(ip net.IP) (tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, err
	}
	serial, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 120))
	ips := []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback}
	if ip != nil && !ip.IsUnspecified() && !ip.IsLoopback() {
		ips = append(ips, ip)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: Model, Organization: []string{"Stand-in Camera"}},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(365 * 24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		// Self-signed and its own CA, like camera factory certificates.
		IsCA:                  true,
		BasicConstraintsValid: true,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:              []string{"localhost"},
		IPAddresses:           ips,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("camera cert: %w", err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return tls.Certificate{}, err
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, nil
}
