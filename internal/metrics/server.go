package metrics

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// DefaultRelayAddr is the relay's default metrics listener: loopback, so
// that a fresh install shows its counters to nobody but a local scraper
// (or an SSH tunnel) until the operator says otherwise.
const DefaultRelayAddr = "127.0.0.1:9100"

// Timeouts of the metrics listener. A scrape is one small GET; the bounds
// only have to be long enough for a scraper on a slow link and short
// enough that a client that never sends (or never reads) lets go of its
// connection and goroutine.
// Variables, so that a test of a stalled client need not wait out the
// real bound.
var (
	readHeaderTimeout = 5 * time.Second
	readTimeout       = 10 * time.Second
	writeTimeout      = 30 * time.Second
	idleTimeout       = 60 * time.Second
)

// Server serves /metrics of one registry until Close.
type Server struct {
	ln   net.Listener
	http *http.Server
	wg   sync.WaitGroup
}

// Listen serves reg's series at http://addr/metrics. A non-loopback
// address is allowed (a Prometheus on another host) and logged, since
// the series tell how busy the installation is.
func Listen(addr string, reg *prometheus.Registry, log *slog.Logger) (*Server, error) {
	if log == nil {
		log = slog.Default()
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("metrics listener: %w", err)
	}
	if !isLoopback(ln.Addr()) {
		log.Warn("metrics listener is not on a loopback address; anyone who reaches it sees the counters", "addr", ln.Addr().String())
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{
		ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		// No bound on scrapes in flight: a client that never reads its
		// answer would hold a slot until the write timeout, turning the
		// next scrapes away. Each scrape is bounded in time instead.
		Timeout: writeTimeout - time.Second,
	}))
	s := &Server{ln: ln, http: &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: readHeaderTimeout,
		ReadTimeout:       readTimeout,
		WriteTimeout:      writeTimeout,
		IdleTimeout:       idleTimeout,
		MaxHeaderBytes:    16 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		if err := s.http.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			log.Error("metrics listener", "err", err)
		}
	}()
	log.Info("metrics listening", "url", "http://"+ln.Addr().String()+"/metrics")
	return s, nil
}

// Addr is the listener's address.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Close stops the listener and every connection, waiting up to a second
// for a scrape in progress.
func (s *Server) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	err := s.http.Shutdown(ctx)
	if err != nil {
		err = s.http.Close()
	}
	s.wg.Wait()
	return err
}

func isLoopback(a net.Addr) bool {
	ta, ok := a.(*net.TCPAddr)
	return ok && ta.IP.IsLoopback()
}
