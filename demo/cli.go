package demo

import (
	"context"
	"fmt"
	"strings"
)

// openCLISession mints a CLI session for the demo site, as an operator
// does from the console, and keeps the ready command with `go run` so it
// works from a checkout.
func (d *Demo) openCLISession(ctx context.Context) error {
	var out struct {
		Token   string `json:"token"`
		Command string `json:"command"`
	}
	body := map[string]any{"site_ids": []string{d.Info.SiteID}, "label": "demo"}
	if err := d.API.Do(ctx, "POST", "/api/cli/sessions", body, &out, Bearer(d.Info.Token)); err != nil {
		return fmt.Errorf("demo: open CLI session: %w", err)
	}
	d.Info.CLIToken = out.Token
	d.Info.CLICommand = strings.Replace(out.Command, "nanodems-tunnel", "go run ./cmd/nanodems-tunnel", 1)
	return nil
}
