package metrics

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// scrape GETs /metrics and parses it with the Prometheus text parser.
func scrape(t *testing.T, addr string) map[string]bool {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics: %s", resp.Status)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parse /metrics: %v", err)
	}
	names := map[string]bool{}
	for n := range families {
		names[n] = true
	}
	return names
}

// The registry carries the Go runtime's and the process's series besides
// the caller's own, and Listen serves them on a loopback listener.
func TestListenServesRegistry(t *testing.T) {
	reg := NewRegistry()
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: "connector_test_total", Help: "a test counter"})
	reg.MustRegister(c)
	c.Add(3)
	s, err := Listen("127.0.0.1:0", reg, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	names := scrape(t, s.Addr())
	for _, want := range []string{"connector_test_total", "go_goroutines", "go_memstats_heap_alloc_bytes", "process_open_fds"} {
		if !names[want] {
			t.Errorf("no series %s in /metrics", want)
		}
	}
	resp, err := http.Get("http://" + s.Addr() + "/other")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("GET /other: %s, want 404", resp.Status)
	}
}

// A client that sends half a request and stalls, and one that never reads
// its answer, hold nothing the next scrape needs; the stalled one is cut
// by the header timeout, so that its connection and goroutine end.
func TestSlowClientsDoNotBlockScrapes(t *testing.T) {
	defer func(h, w time.Duration) { readHeaderTimeout, writeTimeout = h, w }(readHeaderTimeout, writeTimeout)
	readHeaderTimeout, writeTimeout = 300*time.Millisecond, 20*time.Second
	s, err := Listen("127.0.0.1:0", NewRegistry(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()

	// Half a request line, then nothing: a slowloris.
	var stalled []net.Conn
	for range 8 {
		c, err := net.Dial("tcp", s.Addr())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if _, err := io.WriteString(c, "GET /metr"); err != nil {
			t.Fatal(err)
		}
		stalled = append(stalled, c)
	}
	// Whole requests whose answers are never read.
	for range 8 {
		c, err := net.Dial("tcp", s.Addr())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if _, err := io.WriteString(c, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
			t.Fatal(err)
		}
	}
	if names := scrape(t, s.Addr()); !names["go_goroutines"] {
		t.Fatal("a scrape next to stalled clients lacks go_goroutines")
	}
	// The stalled clients are let go: the server closes them (an error
	// answer may come first), with no help from the client.
	for i, c := range stalled {
		r := bufio.NewReader(c)
		if _, err := io.Copy(io.Discard, r); err != nil {
			t.Fatalf("stalled client %d: %v, want the server to close it", i, err)
		}
	}
}

// A listener that cannot bind says why.
func TestListenBusyAddress(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	_, err = Listen(ln.Addr().String(), NewRegistry(), nil)
	if err == nil || !strings.Contains(err.Error(), "metrics listener") {
		t.Fatalf("Listen on a busy address: %v, want a metrics listener error", err)
	}
}
