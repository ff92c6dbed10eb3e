package cli_test

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/nanodems/connector/agent"
	"github.com/nanodems/connector/cli"
	"github.com/nanodems/connector/demo"
	"github.com/nanodems/connector/internal/testnet"
)

// download is a device that sends what it is asked for: the request is
// u64 size | u64 seed, the answer size bytes of a ChaCha8 stream keyed by
// seed, then the close, as a camera serving a recording does.
func download(c net.Conn) {
	var req [16]byte
	if _, err := io.ReadFull(c, req[:]); err != nil {
		return
	}
	n := int64(binary.BigEndian.Uint64(req[:8]))
	io.Copy(c, io.LimitReader(rand.NewChaCha8(chachaKey(binary.BigEndian.Uint64(req[8:]))), n))
}

func chachaKey(seed uint64) [32]byte {
	var k [32]byte
	binary.LittleEndian.PutUint64(k[:], seed)
	return k
}

// fetch asks the download device behind c for n bytes and checks them.
func fetch(c net.Conn, n int64, seed uint64) error {
	var req [16]byte
	binary.BigEndian.PutUint64(req[:8], uint64(n))
	binary.BigEndian.PutUint64(req[8:], seed)
	if _, err := c.Write(req[:]); err != nil {
		return fmt.Errorf("request: %w", err)
	}
	want := sha256.New()
	io.Copy(want, io.LimitReader(rand.NewChaCha8(chachaKey(seed)), n))
	got := sha256.New()
	m, err := io.Copy(got, c)
	if err != nil {
		return fmt.Errorf("read after %d of %d bytes: %w", m, n, err)
	}
	if m != n || string(got.Sum(nil)) != string(want.Sum(nil)) {
		return fmt.Errorf("%d bytes of %d; sha256 match %v", m, n, string(got.Sum(nil)) == string(want.Sum(nil)))
	}
	return nil
}

// moveStressSize reads NANODEMS_MOVE_STRESS_CLI=conns,MiB,rounds for a
// longer run.
func moveStressSize(conns, mib, rounds int) (int, int, int) {
	v := os.Getenv("NANODEMS_MOVE_STRESS_CLI")
	if v == "" {
		return conns, mib, rounds
	}
	var c, m, r int
	if _, err := fmt.Sscanf(v, "%d,%d,%d", &c, &m, &r); err != nil {
		panic("NANODEMS_MOVE_STRESS_CLI wants conns,MiB,rounds: " + strconv.Quote(v))
	}
	return c, m, r
}

// Bulk transfers through the SOCKS proxy all move to dedicated
// connections by rate while they run, several at a time: every byte
// arrives, in order, and every connection ends cleanly. Half are
// downloads (the device sends, the client only asked), half echo both
// ways with the client's half-close at the end.
func TestSocksTransfersSurviveMoves(t *testing.T) {
	conns, mib, rounds := moveStressSize(9, 8, 2)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	level := slog.LevelError
	if os.Getenv("NANODEMS_TEST_LOG") != "" {
		level = slog.LevelDebug
	}
	d, err := demo.Start(ctx, demo.Options{
		DataDir: t.TempDir(),
		Logger:  slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level})),
		// Any bulk transfer passes 1 MiB/s within the agent's first look
		// at its rate, so every transfer moves while it runs.
		Agent: func(c *agent.Config) { c.DedicatedRate = 1 << 20 },
	})
	must(t, err)
	t.Cleanup(d.Close)
	dl := testnet.Serve(t, download)
	_, dlAddr := addDevice(t, d, dl.Port)
	s := mint(t, d)
	tun, _ := open(t, d, s.Token, func(o *cli.Options) { o.Socks = "127.0.0.1:0"; o.NoBind = true })
	proxy := tun.ProxyAddr().String()
	dlHost, _, _ := net.SplitHostPort(dlAddr)
	echo := d.Echo.Addr().Port

	before := dedicatedTotal(t, d)
	for round := range rounds {
		start := time.Now()
		var wg sync.WaitGroup
		errs := make(chan error, conns)
		for i := range conns {
			wg.Add(1)
			go func() {
				defer wg.Done()
				n := int64(mib<<20) + rand.Int64N(1<<20)
				var c net.Conn
				var err error
				if i%2 == 0 {
					c, err = socks5(proxy, dlHost, dl.Port, false)
				} else {
					c, err = socks5(proxy, "127.0.0.2", echo, false)
				}
				if err != nil {
					errs <- fmt.Errorf("connection %d: %w", i, err)
					return
				}
				defer c.Close()
				if i%2 == 0 {
					err = fetch(c, 4*n, uint64(round*100+i))
				} else {
					err = testnet.RoundTrip(c, n)
				}
				if err != nil {
					errs <- fmt.Errorf("connection %d (%s) after %v: %w", i, map[bool]string{true: "download", false: "echo"}[i%2 == 0], time.Since(start).Round(time.Millisecond), err)
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
		moved := dedicatedTotal(t, d) - before
		before += moved
		t.Logf("round %d: %d transfers, %d moved to dedicated connections, %v", round, conns, moved, time.Since(start).Round(time.Millisecond))
		if t.Failed() {
			return
		}
		if moved == 0 {
			t.Fatal("no transfer moved: the test does not test moves")
		}
	}
}

func dedicatedTotal(t *testing.T, d *demo.Demo) int64 {
	t.Helper()
	var agents []struct {
		Dedicated int64 `json:"dedicated_total"`
	}
	must(t, d.API.Do(context.Background(), "GET", "/api/sites/"+d.Info.SiteID+"/agents", nil, &agents, demo.Admin(d.Info.AdminKey)))
	if len(agents) != 1 {
		t.Fatalf("%d agents", len(agents))
	}
	return agents[0].Dedicated
}
