package main

// Diagnostics mode (-pprof). The relay and the agent cannot be profiled
// from outside yet (no debug listener; see docs/perf.md). With -pprof the
// harness runs them as this same binary in a "role": the role's main does
// exactly what cmd/nanodems-relay serve and cmd/nanodems-agent run do
// (relay.New + Start, agent.New + Run) and adds a loopback debug listener
// with net/http/pprof, a CPU-profile switch and a GC'd memory reading.
// The figures of a -pprof run are still comparable; the default run uses
// the binaries built by go build.

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	_ "net/http/pprof"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/nanodems/connector/agent"
	"github.com/nanodems/connector/cli"
	"github.com/nanodems/connector/internal/gctune"
	"github.com/nanodems/connector/relay"
)

// runRole runs role ("relay", "agent" or "tunnel") with args, serving debug
// endpoints on debugAddr.
func runRole(role, debugAddr string, args []string) error {
	gctune.Apply() // as the product's mains do
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := serveDebug(debugAddr); err != nil {
		return err
	}
	switch role {
	case "relay":
		fs := flag.NewFlagSet("relay", flag.ExitOnError)
		var cfg relay.Config
		fs.StringVar(&cfg.DataDir, "data-dir", "", "")
		fs.StringVar(&cfg.AgentAddr, "agent-addr", "", "")
		fs.StringVar(&cfg.APIAddr, "api-addr", "", "")
		fs.StringVar(&cfg.NodeName, "node", "", "")
		fs.StringVar(&cfg.PeerAddr, "peer-addr", "", "")
		fs.BoolVar(&cfg.PlainHTTP, "plain-http", false, "")
		fs.StringVar(&cfg.MetricsAddr, "metrics-addr", "", "")
		fs.IntVar(&cfg.MaxConnsPerAddr, "max-conns-per-addr", 0, "")
		fs.StringVar(&cfg.RTSPAddr, "rtsp-addr", ":9554", "")
		fs.StringVar(&cfg.RTSPSAddr, "rtsps-addr", ":322", "")
		level := fs.String("log-level", "info", "")
		fs.Parse(args)
		var l slog.Level
		l.UnmarshalText([]byte(*level))
		cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: l}))
		srv, err := relay.New(cfg)
		if err != nil {
			return err
		}
		if err := srv.Start(); err != nil {
			srv.Close()
			return err
		}
		if pin := srv.APIPin(); pin != "" {
			fmt.Fprintf(os.Stderr, "API certificate is self-signed; agents and CLIs pin it with --ca-pin %s\n", pin)
		}
		<-ctx.Done()
		return srv.Close()
	case "agent":
		fs := flag.NewFlagSet("agent", flag.ExitOnError)
		var cfg agent.Config
		fs.StringVar(&cfg.Dir, "data-dir", "", "")
		fs.Int64Var(&cfg.DedicatedRate, "dedicated-rate", 0, "")
		fs.BoolVar(&cfg.AllowLoopback, "allow-loopback", false, "")
		fs.Parse(args)
		cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, nil))
		a, err := agent.New(cfg)
		if err != nil {
			return err
		}
		return a.Run(ctx)
	case "tunnel":
		// nanodems-tunnel run, as cmd/nanodems-tunnel does it.
		fs := flag.NewFlagSet("tunnel", flag.ExitOnError)
		var o cli.Options
		fs.StringVar(&o.Relay.URL, "relay", "", "")
		fs.StringVar(&o.Relay.Token, "token", "", "")
		fs.StringVar(&o.Relay.Pin, "ca-pin", "", "")
		fs.StringVar(&o.Transport, "relay-transport", "", "")
		fs.Parse(args)
		o.Logger = slog.New(slog.NewTextHandler(os.Stderr, nil))
		return cli.Run(ctx, o)
	}
	return fmt.Errorf("unknown role %q", role)
}

// memStats is what /perf/mem answers, after a full GC.
type memStats struct {
	HeapInuse  uint64 `json:"heap_inuse"`
	HeapAlloc  uint64 `json:"heap_alloc"`
	StackInuse uint64 `json:"stack_inuse"`
	Sys        uint64 `json:"sys"`
	Goroutines int    `json:"goroutines"`
}

func serveDebug(addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("debug listener: %w", err)
	}
	var (
		mu  sync.Mutex
		cpu *os.File
	)
	http.HandleFunc("/perf/mem", func(w http.ResponseWriter, r *http.Request) {
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		json.NewEncoder(w).Encode(memStats{HeapInuse: ms.HeapInuse, HeapAlloc: ms.HeapAlloc, StackInuse: ms.StackInuse, Sys: ms.Sys, Goroutines: runtime.NumGoroutine()})
	})
	http.HandleFunc("/perf/cpu/start", func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		if cpu != nil {
			http.Error(w, "already profiling", http.StatusConflict)
			return
		}
		f, err := os.Create(r.URL.Query().Get("file"))
		if err == nil {
			if err = pprof.StartCPUProfile(f); err != nil {
				f.Close()
			}
		}
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		cpu = f
	})
	http.HandleFunc("/perf/cpu/stop", func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		if cpu != nil {
			pprof.StopCPUProfile()
			cpu.Close()
			cpu = nil
		}
	})
	go http.Serve(ln, nil)
	return nil
}

// debugGet asks a role's debug listener (-pprof mode).
func debugGet(ctx context.Context, addr, path string, out any) error {
	if addr == "" {
		return errors.New("no debug listener")
	}
	req, _ := http.NewRequestWithContext(ctx, "GET", "http://"+addr+path, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		b, _ := io.ReadAll(resp.Body)
		return fmt.Errorf("%s: %s", path, b)
	}
	if out != nil {
		return json.NewDecoder(resp.Body).Decode(out)
	}
	return nil
}

// saveProfile fetches /debug/pprof/NAME of relay, agent and
// nanodems-tunnel (-pprof).
func (e *env) saveProfile(ctx context.Context, name, tag string) {
	for _, x := range []struct{ who, addr string }{{"relay", e.relayDebug}, {"agent", e.agentDebug}, {"cli", e.cliDebug}} {
		if x.addr == "" {
			continue
		}
		file := filepath.Join(profileDir(), x.who+"-"+name+"-"+tag+".pprof")
		q := "?gc=1"
		if name == "goroutine" {
			q = ""
		}
		if err := fetchProfile(ctx, "http://"+x.addr+"/debug/pprof/"+name+q, file); err != nil {
			logf("%s profile of %s: %v", name, x.who, err)
			continue
		}
		logf("%s profile of %s (%s): %s", name, x.who, tag, file)
		e.profiles = append(e.profiles, file)
	}
}

// saveCPUProfiles takes a CPU profile of relay, agent and nanodems-tunnel
// at the same time, over d.
func (e *env) saveCPUProfiles(ctx context.Context, d time.Duration, tag string) {
	var wg sync.WaitGroup
	for _, x := range []struct{ who, addr string }{{"relay", e.relayDebug}, {"agent", e.agentDebug}, {"cli", e.cliDebug}} {
		if x.addr == "" {
			continue
		}
		wg.Go(func() {
			file := filepath.Join(profileDir(), x.who+"-cpu-"+tag+".pprof")
			url := fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", x.addr, int(d.Seconds()))
			if err := fetchProfile(ctx, url, file); err != nil {
				logf("cpu profile of %s: %v", x.who, err)
				return
			}
			logf("cpu profile of %s (%s): %s", x.who, tag, file)
		})
	}
	wg.Wait()
}

// fetchProfile saves what a debug listener answers at url into file.
func fetchProfile(ctx context.Context, url, file string) error {
	req, err := http.NewRequestWithContext(ctx, "GET", url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return err
	}
	return os.WriteFile(file, b, 0o644)
}

func profileDir() string {
	dir := filepath.Join(os.TempDir(), "nanodems-perf-pprof")
	os.MkdirAll(dir, 0o755)
	return dir
}

// profile starts or stops CPU profiles of relay and agent (-pprof).
func (e *env) profile(ctx context.Context, what, name string) {
	e.profileOf(ctx, what, name, []debugTarget{{"relay", e.relayDebug}, {"agent", e.agentDebug}})
}

// debugTarget is a role's debug listener.
type debugTarget struct{ who, addr string }

// profileOf starts or stops CPU profiles of the roles at targets.
func (e *env) profileOf(ctx context.Context, what, name string, targets []debugTarget) {
	for _, x := range targets {
		file := filepath.Join(profileDir(), x.who+"-cpu-"+name+".pprof")
		q := ""
		if what == "start" {
			q = "?file=" + url.QueryEscape(file)
		}
		if err := debugGet(ctx, x.addr, "/perf/cpu/"+what+q, nil); err != nil {
			logf("profile %s %s: %v", what, x.who, err)
		} else if what == "stop" {
			logf("CPU profile of %s during %s: %s", x.who, name, file)
			e.profiles = append(e.profiles, file)
		}
	}
}

// topLists renders the heaviest functions of each profile with go tool
// pprof, for the report.
func topLists(ctx context.Context, files []string) []string {
	var out []string
	for _, f := range files {
		for _, mode := range []string{"-top", "-top -cum"} {
			args := append([]string{"tool", "pprof"}, strings.Fields(mode)...)
			args = append(args, "-nodecount=30", f)
			b, err := execCommand(ctx, "go", args...).Output()
			if err != nil {
				continue
			}
			out = append(out, fmt.Sprintf("`go tool pprof %s %s`:\n\n```\n%s```\n", mode, filepath.Base(f), b))
		}
	}
	return out
}
