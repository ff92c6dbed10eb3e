//go:build linux

package netstack

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/nanodems/connector/cli"
	"github.com/nanodems/connector/demo"
)

// TestExecThroughRelay is `nanodems-tunnel exec` end to end: an unprivileged tool in its
// own namespaces reaches a plan address, and the bytes go netstack → CLI
// mux session → relay → agent → echo target, sha256-checked both ways.
func TestExecThroughRelay(t *testing.T) {
	opt, uid := rootless(t)
	quiet := slog.New(slog.NewTextHandler(&logBuf{}, nil))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	d, err := demo.Start(ctx, demo.Options{DataDir: t.TempDir(), Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	var s struct {
		Token string `json:"token"`
	}
	if err := d.API.Do(ctx, "POST", "/api/cli/sessions", map[string]any{"site_ids": []string{d.Info.SiteID}}, &s, demo.Bearer(d.Info.Token)); err != nil {
		t.Fatal(err)
	}
	tun, err := cli.Open(ctx, cli.Options{Relay: cli.Relay{URL: d.Info.RelayURL, Token: s.Token, Pin: d.Info.CAPin}, NoBind: true, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer tun.Close()
	var target string
	for ap := range tun.PlanAddrs() {
		if int(ap.Port()) == d.Echo.Addr().Port {
			target = ap.String()
		}
	}
	if target == "" {
		t.Fatalf("echo port %d not in plan %v", d.Echo.Addr().Port, tun.PlanAddrs())
	}
	var out, errOut bytes.Buffer
	opt.Stdout, opt.Stderr = &out, &errOut
	opt.Stdin = strings.NewReader("")
	opt.Env = withTool(os.Environ(), "echo", fmt.Sprintf("NETSTACK_TEST_UID=%d", uid))
	opt.Logger = quiet
	code, err := Exec(ctx, tun.DialPlan, tun.PlanAddrs, []string{opt.Self, target}, opt)
	if err != nil || code != 0 || strings.TrimSpace(out.String()) != "ok" {
		t.Fatalf("Exec = %d, %v; tool said %q %q", code, err, out.String(), errOut.String())
	}
}
