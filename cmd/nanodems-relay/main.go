// Command nanodems-relay runs the relay: the agent listener and the
// operator API. `nanodems-relay demo` runs a whole installation on loopback.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/nanodems/connector/demo"
	"github.com/nanodems/connector/relay"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	args := os.Args[1:]
	cmd := "serve"
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		cmd, args = args[0], args[1:]
	}
	var err error
	switch cmd {
	case "serve":
		err = serve(ctx, args)
	case "demo":
		err = runDemo(ctx, args)
	default:
		err = fmt.Errorf("unknown command %q; use serve or demo", cmd)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "nanodems-relay:", err)
		os.Exit(1)
	}
}

func logger(level string) *slog.Logger {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		l = slog.LevelInfo
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: l}))
}

func serve(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("serve", flag.ExitOnError)
	var cfg relay.Config
	fs.StringVar(&cfg.DataDir, "data-dir", "nanodems-data", "state directory (database, CA, keys)")
	fs.StringVar(&cfg.AgentAddr, "agent-addr", ":8443", "agent listener (mTLS)")
	fs.StringVar(&cfg.APIAddr, "api-addr", ":9443", "operator API listener")
	fs.BoolVar(&cfg.PlainHTTP, "plain-http", false, "serve the API without TLS (loopback addresses only)")
	fs.StringVar(&cfg.TLSCertFile, "tls-cert", "", "API certificate (default: a self-signed one kept in the data directory)")
	fs.StringVar(&cfg.TLSKeyFile, "tls-key", "", "API certificate key")
	fs.StringVar(&cfg.PublicAgentAddr, "public-agent-addr", "", "host:port agents dial (default: the host they enrolled at)")
	fs.StringVar(&cfg.RTSPAddr, "rtsp-addr", ":9554", `RTSP gateway listener ("off" disables it)`)
	fs.StringVar(&cfg.DebugAddr, "debug-addr", "", "serve pprof here (loopback only), e.g. 127.0.0.1:6060")
	fs.StringVar(&cfg.NodeName, "node", "", "this relay's name (default: hostname)")
	fs.StringVar(&cfg.AppsDomain, "apps-domain", "", "serve each handle at {label}.DOMAIN (browser proxy subdomain mode; needs wildcard DNS and certificate)")
	fs.StringVar(&cfg.PublicURL, "public-url", "", "the relay's origin as browsers reach it (subdomain mode sign-in), e.g. https://relay.example.com")
	fs.DurationVar(&cfg.CameraTimeout, "camera-timeout", 0, "how long a camera may take to answer a proxied request before 504 (default 30s)")
	fs.IntVar(&cfg.MaxConnsPerAddr, "max-conns-per-addr", 0, "API connections one client address may hold open (default: a quarter of the open-file limit; -1: no bound)")
	level := fs.String("log-level", "info", "debug, info, warn or error")
	fs.Parse(args)
	cfg.Logger = logger(*level)
	srv, err := relay.New(cfg)
	if err != nil {
		return err
	}
	if err := srv.Start(); err != nil {
		srv.Close()
		return err
	}
	if f := srv.AdminKeyFile(); f != "" {
		fmt.Fprintf(os.Stderr, "initial admin key written to %s (mode 0600)\n", f)
	}
	if pin := srv.APIPin(); pin != "" {
		fmt.Fprintf(os.Stderr, "API certificate is self-signed; agents and CLIs pin it with --ca-pin %s\n", pin)
	}
	<-ctx.Done()
	return srv.Close()
}

func runDemo(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("demo", flag.ExitOnError)
	var o demo.Options
	asJSON := fs.Bool("json", false, "print one JSON object instead of text")
	fs.StringVar(&o.DataDir, "data-dir", "", "state directory (default: a temporary one, removed on exit)")
	fs.StringVar(&o.APIAddr, "api-addr", "127.0.0.1:9443", "operator API listener")
	fs.StringVar(&o.AgentAddr, "agent-addr", "127.0.0.1:8443", "agent listener")
	fs.StringVar(&o.RTSPAddr, "rtsp-addr", "127.0.0.1:9554", `RTSP gateway listener ("off" disables it)`)
	level := fs.String("log-level", "warn", "debug, info, warn or error")
	fs.Parse(args)
	o.Logger = logger(*level)
	o.RTSPCamera = o.RTSPAddr != "off"
	d, err := demo.Start(ctx, o)
	if err != nil {
		return err
	}
	defer d.Close()
	in := d.Info
	if *asJSON {
		json.NewEncoder(os.Stdout).Encode(in)
	} else {
		fmt.Printf(`nanodems demo is running (Ctrl-C stops it)

  relay API      %s
  API key pin    %s
  admin key      %s
  tenant / site  %s / %s
  API token      %s
  agent          %s (connected)

  stand-in camera web UI    handle %s
  TCP echo target           handle %s

Open the camera's web UI through the relay (accept the self-signed
certificate; sign in as %s / %s, then log in to the
camera as %s / %s):

  %s

Open a tunnel to the echo target (prints "hello" back):

  %s
%s
`, in.RelayURL, in.CAPin, in.AdminKey, in.TenantID, in.SiteID, in.Token, in.AgentID, in.HTTPHandle, in.EchoHandle,
			demo.OperatorEmail, demo.OperatorPassword, demo.CameraUser, demo.CameraPassword, in.BrowserURL, in.ConnectCommand, rtspHint(in))
	}
	<-ctx.Done()
	return nil
}

// rtspHint tells how to play the demo's RTSP camera, when there is one.
func rtspHint(in demo.Info) string {
	if in.RTSPURL == "" {
		return ""
	}
	return fmt.Sprintf(`
Play the synthetic RTSP camera through the gateway (handle %s; the
relay answers the camera's Digest login itself):

  ffplay -rtsp_transport tcp '%s'
`, in.RTSPHandle, in.RTSPURL)
}
