package relay_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
)

// getJSON fetches url with client and decodes its JSON answer.
func getJSON(t *testing.T, client *http.Client, url string) (int, map[string]string) {
	t.Helper()
	resp, err := client.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body map[string]string
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatalf("%s: %v", url, err)
	}
	return resp.StatusCode, body
}

// /healthz/live answers while the process serves; /healthz/ready only
// while the database answers too, and says why not with a 503; /healthz
// is as it was.
func TestHealthzLiveAndReady(t *testing.T) {
	d := startDemo(t)
	client := operator(d).HTTPClient()
	defer client.CloseIdleConnections()
	base := d.Info.RelayURL
	if code, body := getJSON(t, client, base+"/healthz/live"); code != 200 || body["status"] != "live" {
		t.Fatalf("live: %d %v", code, body)
	}
	if code, body := getJSON(t, client, base+"/healthz/ready"); code != 200 || body["status"] != "ready" || body["node"] != "demo-relay" {
		t.Fatalf("ready: %d %v", code, body)
	}

	// The database goes away.
	d.Relay.Store().Close()
	code, body := getJSON(t, client, base+"/healthz/ready")
	if code != http.StatusServiceUnavailable || body["status"] != "not ready" || !strings.HasPrefix(body["reason"], "database: ") {
		t.Fatalf("ready without a database: %d %v", code, body)
	}
	t.Logf("ready without a database: %d %s", code, body["reason"])
	if code, body := getJSON(t, client, base+"/healthz/live"); code != 200 {
		t.Fatalf("live without a database: %d %v", code, body)
	}
	if code, body := getJSON(t, client, base+"/healthz"); code != 200 || body["status"] != "ok" {
		t.Fatalf("healthz: %d %v", code, body)
	}
}
