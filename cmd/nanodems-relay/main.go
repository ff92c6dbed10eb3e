// Command nanodems-relay runs the relay: the agent listener, the operator
// API and browser proxy, and the RTSP gateway. The demo installation is
// its own program, cmd/nanodems-demo, so this binary links no test
// fixtures.
package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/nanodems/connector/internal/cmdline"
	"github.com/nanodems/connector/internal/gctune"
	"github.com/nanodems/connector/internal/metrics"
	"github.com/nanodems/connector/relay"
	"github.com/nanodems/connector/relay/store"
)

func main() {
	gctune.Apply()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	prog := cmdline.Program{
		Name:    "nanodems-relay",
		Summary: "the cloud side: agents dial in, operators reach their devices through it",
		Default: "serve",
		Commands: []cmdline.Command{
			{Name: "serve", Args: "[--data-dir DIR] [--database postgres://…] [--api-addr ADDR] [--agent-addr ADDR] …", Summary: "run the relay (the default command)", Run: serve},
		},
		Footer: "To try the product on one machine, run the demo instead: go run ./cmd/nanodems-demo",
	}
	os.Exit(prog.Main(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

func serve(ctx context.Context, args []string) error {
	fs := cmdline.FlagSet("nanodems-relay", "serve", "[flags]")
	var cfg relay.Config
	fs.StringVar(&cfg.DataDir, "data-dir", cmdline.Env("NANODEMS_DATA_DIR", "nanodems-data"), "state directory: database, CA, keys (default $NANODEMS_DATA_DIR)")
	database := fs.String("database", "", "the store: postgres://… (relays that run as one share it; docs/ha.md), or an SQLite file (default: $NANODEMS_DATABASE, which keeps a password off the command line and out of this help, else relay.db in the data directory)")
	var pgo store.PostgresOptions
	fs.IntVar(&pgo.MaxConns, "database-max-conns", store.DefaultPostgresConns, "PostgreSQL connections this relay pools (plus one that listens for other relays' changes)")
	fs.StringVar(&cfg.AgentAddr, "agent-addr", ":8443", "agent listener (mTLS)")
	fs.StringVar(&cfg.APIAddr, "api-addr", ":9443", "operator API listener")
	fs.BoolVar(&cfg.PlainHTTP, "plain-http", false, "serve the API without TLS (loopback addresses only)")
	fs.StringVar(&cfg.TLSCertFile, "tls-cert", "", "API certificate (default: a self-signed one kept in the data directory)")
	fs.StringVar(&cfg.TLSKeyFile, "tls-key", "", "API certificate key")
	fs.StringVar(&cfg.PublicAgentAddr, "public-agent-addr", "", "host:port agents dial (default: the host they enrolled at)")
	fs.StringVar(&cfg.RTSPAddr, "rtsp-addr", ":9554", `RTSP gateway listener ("off" disables it)`)
	fs.StringVar(&cfg.RTSPSAddr, "rtsps-addr", ":322", `RTSPS listener of the RTSP gateway, TLS with the API's certificate ("off" disables it)`)
	fs.DurationVar(&cfg.RTSPResumeFor, "rtsp-resume", 0, "how long RTSP viewers are held while a lost camera session is opened again (default 20s; negative: not held)")
	fs.StringVar(&cfg.MetricsAddr, "metrics-addr", metrics.DefaultRelayAddr, `serve Prometheus metrics at http://ADDR/metrics (docs/metrics.md; "" turns it off)`)
	fs.StringVar(&cfg.DebugAddr, "debug-addr", "", "serve pprof here (loopback only), e.g. 127.0.0.1:6060")
	fs.StringVar(&cfg.NodeName, "node", "", "this relay's name (default: hostname)")
	fs.StringVar(&cfg.PeerAddr, "peer-addr", ":7443", `inter-relay listener (BridgeTunnel, mTLS under the internal CA; "" turns it off)`)
	fs.StringVar(&cfg.PeerEndpoint, "peer-endpoint", "", "host:port the other relays dial for this one (default: the node name with the peer port)")
	fs.StringVar(&cfg.InternalCADir, "internal-ca-dir", "", "directory of the internal CA, the same for every relay of a fleet (default: the data directory)")
	fs.StringVar(&cfg.AppsDomain, "apps-domain", "", "serve each handle at {label}.DOMAIN (browser proxy subdomain mode; needs wildcard DNS and certificate)")
	fs.StringVar(&cfg.PublicURL, "public-url", "", "the relay's origin as browsers reach it (subdomain mode sign-in), e.g. https://relay.example.com")
	fs.DurationVar(&cfg.CameraTimeout, "camera-timeout", 0, "how long a camera may take to answer a proxied request before 504 (default 30s)")
	fs.IntVar(&cfg.MaxConnsPerAddr, "max-conns-per-addr", 0, "API connections one client address may hold open (default: a quarter of the open-file limit; -1: no bound)")
	fs.StringVar(&cfg.DownloadsDir, "downloads-dir", "", "serve the binaries in this directory at /downloads/ (fill it with: go run ./cmd/nanodems-dist -out DIR)")
	drainTimeout := fs.Duration("drain-timeout", 30*time.Second, "on SIGTERM, how long open tunnels may take to finish after the relay stops taking new ones and tells its agents to move")
	fs.DurationVar(&cfg.JobTick, "job-tick", 0, "for tests: the tick of every locked job (lease reaper, stats rollups), each TTL three ticks; 0: their own (docs/ha.md, Locks)")
	cmdline.Hide(fs, "job-tick")
	level := cmdline.LogLevel(fs, slog.LevelInfo)
	if err := cmdline.Parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		return cmdline.Usagef("takes no arguments, got %q", fs.Args())
	}
	cfg.Logger = cmdline.Logger(level)
	if *database == "" {
		*database = os.Getenv("NANODEMS_DATABASE")
	}
	if *database != "" {
		pgo.Log = cfg.Logger
		st, err := store.Open(ctx, *database, pgo)
		if err != nil {
			return err
		}
		cfg.Store = st // the relay closes it
	}
	srv, err := relay.New(cfg)
	if err != nil {
		return err
	}
	if err := srv.Start(); err != nil {
		srv.Close()
		return err
	}
	if f := srv.AdminKeyFile(); f != "" {
		fmt.Fprintf(os.Stderr, "initial admin key written to %s (mode 0600); keep it safe, then delete the file\n", f)
	}
	if pin := srv.APIPin(); pin != "" {
		fmt.Fprintf(os.Stderr, "API certificate is self-signed; agents and CLIs pin it with --ca-pin %s\n", pin)
	}
	<-ctx.Done()
	// SIGTERM or Ctrl-C: drain first (relay/drain.go), then close. The
	// drain's error (the bound reached) is logged by Drain itself; what is
	// left is cut by Close.
	dctx, cancel := context.WithTimeout(context.Background(), *drainTimeout)
	srv.Drain(dctx)
	cancel()
	return srv.Close()
}
