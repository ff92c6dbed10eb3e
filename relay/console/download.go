package console

import (
	"fmt"
	"net/http"
	"strings"
)

// DownloadFile is one file of GET /api/downloads.
type DownloadFile struct {
	Name    string `json:"name"`
	Program string `json:"program"`
	OS      string `json:"os"`
	Arch    string `json:"arch"`
	Size    int64  `json:"size"`
	SHA256  string `json:"sha256"`
	URL     string `json:"url"`
}

// downloadPrograms and downloadPlatforms are what the guide offers: each
// program for each platform, in the Download page's order.
var (
	downloadPrograms  = []string{"nanodems-tunnel", "nanodems-agent"}
	downloadPlatforms = []string{"linux/amd64", "linux/arm64", "darwin/arm64", "darwin/amd64", "windows/amd64"}
)

// downloadRow is one program on one platform: its file, or nil when the
// relay's downloads directory lacks it.
type downloadRow struct {
	Platform string
	File     *DownloadFile
}

type downloadProgram struct {
	Name    string
	Rows    []downloadRow
	Missing []string // platforms not built
}

type downloadView struct {
	Programs []downloadProgram
	// Build is the command that builds what is missing (docs/api.md,
	// Downloads), "" when nothing is.
	Build string
}

// downloadPage (GET /download) lists nanodems-tunnel and nanodems-agent
// per platform with their SHA-256 sums and links, and says how to build
// the ones the relay's directory lacks.
func (h *Handler) downloadPage(w http.ResponseWriter, r *http.Request, c *call) error {
	var files []DownloadFile
	if err := c.Call("GET", "/api/downloads", nil, &files); err != nil {
		return err
	}
	have := map[string]*DownloadFile{}
	for i := range files {
		f := &files[i]
		have[f.Program+" "+f.OS+"/"+f.Arch] = f
	}
	var v downloadView
	missing := map[string]bool{}
	for _, prog := range downloadPrograms {
		p := downloadProgram{Name: prog}
		for _, plat := range downloadPlatforms {
			f := have[prog+" "+plat]
			p.Rows = append(p.Rows, downloadRow{Platform: plat, File: f})
			if f == nil {
				p.Missing = append(p.Missing, plat)
				missing[plat] = true
			}
		}
		v.Programs = append(v.Programs, p)
	}
	var missPlats []string
	for _, plat := range downloadPlatforms {
		if missing[plat] {
			missPlats = append(missPlats, plat)
		}
	}
	if len(missPlats) > 0 {
		v.Build = fmt.Sprintf("go run ./cmd/nanodems-dist -out DOWNLOADS_DIR -platforms %s", strings.Join(missPlats, ","))
	}
	return h.render(w, r, c, http.StatusOK, "download", "download", v)
}
