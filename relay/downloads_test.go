package relay_test

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nanodems/connector/demo"
	"github.com/nanodems/connector/relay"
)

// fetchDL sends an unauthenticated request to the demo's relay.
func fetchDL(t *testing.T, d *demo.Demo, method, path string, hdr ...string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(method, d.Info.RelayURL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	c := *d.API.Client
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(b)
}

func hexSum(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

// TestDownloads: the relay offers the binaries of its downloads directory
// without sign-in, with sums that match the bytes it serves, answers
// HEAD, ranges and revalidation, lists no directory and reaches no file
// outside it.
func TestDownloads(t *testing.T) {
	dir := t.TempDir()
	files := map[string][]byte{
		"nanodems-tunnel-linux-amd64":      []byte("\x7fELF tunnel for linux"),
		"nanodems-agent-windows-amd64.exe": []byte("MZ agent for windows"),
	}
	for n, b := range files {
		if err := os.WriteFile(filepath.Join(dir, n), b, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	os.WriteFile(filepath.Join(dir, "notes.txt"), []byte("not offered"), 0o644)
	os.Mkdir(filepath.Join(dir, ".build"), 0o755)
	os.WriteFile(filepath.Join(dir, ".build", "nanodems-tunnel-linux-amd64"), []byte("build output"), 0o755)
	d := startDemo(t, func(c *relay.Config) { c.DownloadsDir = dir })

	resp, body := fetchDL(t, d, "GET", "/api/downloads")
	var list []struct {
		Name, Program, OS, Arch, SHA256, URL string
		Size                                 int64
	}
	if resp.StatusCode != 200 || json.Unmarshal([]byte(body), &list) != nil || len(list) != 2 {
		t.Fatalf("GET /api/downloads: %d %s", resp.StatusCode, body)
	}
	if l := list[0]; l.Name != "nanodems-agent-windows-amd64.exe" || l.Program != "nanodems-agent" || l.OS != "windows" || l.Arch != "amd64" || l.URL != "/downloads/"+l.Name {
		t.Errorf("first entry %+v", l)
	}
	for _, l := range list {
		b := files[l.Name]
		if l.SHA256 != hexSum(b) || l.Size != int64(len(b)) {
			t.Errorf("%s: listed size %d sum %s; the file has %d bytes, sum %s", l.Name, l.Size, l.SHA256, len(b), hexSum(b))
		}
		resp, got := fetchDL(t, d, "GET", l.URL)
		if resp.StatusCode != 200 || got != string(b) || hexSum([]byte(got)) != l.SHA256 {
			t.Errorf("GET %s: %d, %q", l.URL, resp.StatusCode, got)
		}
		if cd := resp.Header.Get("Content-Disposition"); cd != "attachment; filename="+l.Name {
			t.Errorf("%s: Content-Disposition %q", l.Name, cd)
		}
		if resp.ContentLength != l.Size || resp.Header.Get("Content-Type") != "application/octet-stream" {
			t.Errorf("%s: Content-Length %d, Content-Type %q", l.Name, resp.ContentLength, resp.Header.Get("Content-Type"))
		}
		etag := resp.Header.Get("ETag")
		if etag != `"`+l.SHA256+`"` {
			t.Errorf("%s: ETag %q", l.Name, etag)
		}

		resp, got = fetchDL(t, d, "HEAD", l.URL)
		if resp.StatusCode != 200 || got != "" || resp.ContentLength != l.Size {
			t.Errorf("HEAD %s: %d, length %d, body %q", l.URL, resp.StatusCode, resp.ContentLength, got)
		}
		resp, got = fetchDL(t, d, "GET", l.URL, "If-None-Match", etag)
		if resp.StatusCode != http.StatusNotModified || got != "" {
			t.Errorf("GET %s If-None-Match its ETag: %d %q", l.URL, resp.StatusCode, got)
		}
		resp, got = fetchDL(t, d, "GET", l.URL, "Range", "bytes=3-")
		if resp.StatusCode != http.StatusPartialContent || got != string(b[3:]) {
			t.Errorf("GET %s Range bytes=3-: %d %q", l.URL, resp.StatusCode, got)
		}
	}

	// SHA256SUMS: sha256sum's format, over exactly the listed files.
	resp, body = fetchDL(t, d, "GET", "/downloads/SHA256SUMS")
	want := hexSum(files["nanodems-agent-windows-amd64.exe"]) + "  nanodems-agent-windows-amd64.exe\n" +
		hexSum(files["nanodems-tunnel-linux-amd64"]) + "  nanodems-tunnel-linux-amd64\n"
	if resp.StatusCode != 200 || body != want {
		t.Errorf("SHA256SUMS: %d\n%s\nwant\n%s", resp.StatusCode, body, want)
	}

	// A binary replaced in place is offered with its new sum.
	nb := []byte("\x7fELF tunnel, rebuilt")
	tunnel := filepath.Join(dir, "nanodems-tunnel-linux-amd64")
	os.WriteFile(tunnel, nb, 0o755)
	os.Chtimes(tunnel, time.Now(), time.Now().Add(time.Minute))
	if resp, got := fetchDL(t, d, "GET", "/downloads/nanodems-tunnel-linux-amd64"); got != string(nb) || resp.Header.Get("ETag") != `"`+hexSum(nb)+`"` {
		t.Errorf("after a rebuild: %q, ETag %s", got, resp.Header.Get("ETag"))
	}
	if _, body := fetchDL(t, d, "GET", "/api/downloads"); !strings.Contains(body, hexSum(nb)) {
		t.Errorf("the list does not carry the rebuilt sum:\n%s", body)
	}

	for _, c := range []struct {
		path   string
		status int
		reason string
	}{
		{"/downloads/notes.txt", 404, "download notes.txt not found"},
		{"/downloads/nanodems-agent-linux-arm64", 404, "download nanodems-agent-linux-arm64 not found"},
		{"/downloads/..%2f..%2fetc%2fpasswd", 400, "is not a download's name"},
		{"/downloads/..%2frelay%2fadmin-key", 400, "is not a download's name"},
		{"/downloads/.build", 400, "is not a download's name"},
		{"/downloads/nanodems-tunnel-linux-amd64%5c..%5c..%5cx", 400, "is not a download's name"},
		{"/downloads/", 404, "no page"}, // no listing
	} {
		resp, body := fetchDL(t, d, "GET", c.path)
		if resp.StatusCode != c.status || !strings.Contains(body, c.reason) || strings.Contains(body, "ak_") {
			t.Errorf("GET %s: %d %q; want %d %q", c.path, resp.StatusCode, body, c.status, c.reason)
		}
	}
	// A path with ".." segments is cleaned by the router to one outside
	// /downloads/ and redirected, never served from the directory.
	if resp, body := fetchDL(t, d, "GET", "/downloads/../relay/admin-key"); resp.StatusCode == 200 || strings.Contains(body, "ak_") {
		t.Errorf("GET /downloads/../relay/admin-key: %d %q", resp.StatusCode, body)
	}
}

// TestDownloadsOff: without a directory the list is empty and every
// download is a 404; a directory that does not exist stops the start.
func TestDownloadsOff(t *testing.T) {
	d := startDemo(t)
	if resp, body := fetchDL(t, d, "GET", "/api/downloads"); resp.StatusCode != 200 || strings.TrimSpace(body) != "[]" {
		t.Errorf("GET /api/downloads: %d %q; want []", resp.StatusCode, body)
	}
	for _, p := range []string{"/downloads/nanodems-tunnel-linux-amd64", "/downloads/SHA256SUMS"} {
		if resp, _ := fetchDL(t, d, "GET", p); resp.StatusCode != 404 {
			t.Errorf("GET %s: %d; want 404", p, resp.StatusCode)
		}
	}
	_, err := relay.New(relay.Config{DataDir: t.TempDir(), DownloadsDir: filepath.Join(t.TempDir(), "missing"), Logger: quietLogger()})
	if err == nil || !strings.Contains(err.Error(), "downloads directory") {
		t.Errorf("relay.New with a missing downloads directory: %v", err)
	}
}
