package relay

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"strings"
	"time"

	"github.com/nanodems/connector/internal/dist"
	"github.com/nanodems/connector/relay/store"
)

// The downloads (docs/api.md, "Downloads"): nanodems-tunnel and
// nanodems-agent per platform from Config.DownloadsDir, with their
// SHA-256. They need no sign-in: the binaries are not secret (they are
// built from this source), a site PC's installer fetches the agent with
// nothing but its one-shot enrollment token, and an operator fetches the
// CLI before holding any credential the relay knows; what protects them
// is the sum, served beside them. A relay that should offer none is
// started without a downloads directory.

// downloadFileJSON is one entry of GET /api/downloads.
type downloadFileJSON struct {
	Name     string    `json:"name"`
	Program  string    `json:"program"`
	OS       string    `json:"os"`
	Arch     string    `json:"arch"`
	Size     int64     `json:"size"`
	SHA256   string    `json:"sha256"`
	Modified time.Time `json:"modified"`
	URL      string    `json:"url"` // path on this relay
}

// downloadsPart serves Config.DownloadsDir's catalog; catalog is nil
// without a downloads directory.
type downloadsPart struct {
	base
	catalog *dist.Catalog
}

// downloadFiles is the catalog's list; empty without a downloads
// directory.
func (s *downloadsPart) downloadFiles() ([]dist.File, error) {
	if s.catalog == nil {
		return nil, nil
	}
	return s.catalog.Files()
}

// close releases the catalog's directory.
func (s *downloadsPart) close() {
	if s.catalog != nil {
		s.catalog.Close()
	}
}

// handleDownloadList answers GET /api/downloads.
func (s *downloadsPart) handleDownloadList(w http.ResponseWriter, r *http.Request) {
	files, err := s.downloadFiles()
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	out := make([]downloadFileJSON, 0, len(files))
	for _, f := range files {
		out = append(out, downloadFileJSON{Name: f.Name, Program: f.Program, OS: f.OS, Arch: f.Arch, Size: f.Size, SHA256: f.SHA256, Modified: f.ModTime.UTC(), URL: "/downloads/" + f.Name})
	}
	writeJSON(w, http.StatusOK, out)
}

// handleDownload answers GET and HEAD /downloads/{file}: a binary as an
// attachment, or SHA256SUMS. http.ServeContent gives Content-Length,
// ranges (resumed downloads), Last-Modified and the conditional answers;
// the ETag is the file's SHA-256, so a client revalidating a binary that
// was rebuilt identically gets its 304.
func (s *downloadsPart) handleDownload(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("file")
	if name == "" || strings.ContainsAny(name, `/\`) || strings.HasPrefix(name, ".") {
		s.writeError(w, r, fmt.Errorf("%w: %q is not a download's name", errBadRequest, name))
		return
	}
	if s.catalog == nil {
		s.writeError(w, r, errNoDownload(name))
		return
	}
	if name == dist.SumsName {
		files, err := s.catalog.Files()
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		sums := dist.Sums(files)
		h := sha256.Sum256(sums)
		var newest time.Time
		for _, f := range files {
			if f.ModTime.After(newest) {
				newest = f.ModTime
			}
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("ETag", `"`+hex.EncodeToString(h[:])+`"`)
		w.Header().Set("Cache-Control", "no-cache")
		http.ServeContent(w, r, name, newest, bytes.NewReader(sums))
		return
	}
	f, e, err := s.catalog.Open(name)
	if errors.Is(err, dist.ErrNotOffered) {
		err = errNoDownload(name)
	}
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	defer f.Close()
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Disposition", mime.FormatMediaType("attachment", map[string]string{"filename": e.Name}))
	w.Header().Set("ETag", `"`+e.SHA256+`"`)
	w.Header().Set("X-Checksum-Sha256", e.SHA256)
	// Revalidated on every use: a rebuilt binary is fetched at once, an
	// unchanged one costs a 304.
	w.Header().Set("Cache-Control", "no-cache")
	http.ServeContent(w, r, e.Name, e.ModTime, f)
}

// errNoDownload is the 404 for a name the relay does not offer.
func errNoDownload(name string) error {
	return lookup(store.ErrNotFound, "download "+name)
}
