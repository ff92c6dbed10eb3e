package relay

import (
	"bytes"
	"embed"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"mime"
	"net"
	"net/http"
	"net/url"
	"strings"
	"text/template"

	"github.com/nanodems/connector/relay/store"
)

// installers serves POST /api/sites/{siteId}/installers/{os}: a script
// made for one site that installs the agent on a site PC with nothing to
// paste. Each holds a fresh one-shot enrollment token, the relay's API URL
// and its API key pin; it downloads the agent from the relay's downloads
// (downloads.go), checks it against the relay's SHA256SUMS, enrolls it
// and registers it as a service (nanodems-agent service install). Making
// one mints a token, so it is a POST and the token is never in a URL.
// docs/install.md says what the scripts do and what they trust.
type installers struct {
	base
	mgmt   *managementAPI // mints the enrollment token
	apiPin string         // "sha256:<hex>", "" with a public CA's certificate
}

//go:embed installers/install.sh.tmpl installers/install.cmd.tmpl
var installerFiles embed.FS

var installerTemplates = template.Must(template.New("").Option("missingkey=error").ParseFS(installerFiles, "installers/*.tmpl"))

// installerKind is one installer: its template, file name and media type.
type installerKind struct {
	template  string
	extension string
	mediaType string
	crlf      bool // cmd.exe reads batch files with CRLF line ends
}

var installerKinds = map[string]installerKind{
	"linux":   {template: "install.sh.tmpl", extension: ".sh", mediaType: "text/x-shellscript; charset=utf-8"},
	"windows": {template: "install.cmd.tmpl", extension: ".cmd", mediaType: "application/x-bat; charset=utf-8", crlf: true},
}

// installerParams are what a script is made with. Every value is from a
// fixed alphabet (ids, base64url tokens, hex and base64 pins, a checked
// URL), so none needs quoting beyond the script's own quotes.
type installerParams struct {
	SiteID    string
	RelayURL  string
	Token     string
	Pin       string // as nanodems-agent --ca-pin takes it
	CurlPin   string // as curl --pinnedpubkey takes it
	ExpiresAt string
	FileName  string
}

// curlPin turns the relay's pin, "sha256:<hex of the SHA-256 of the
// certificate's SubjectPublicKeyInfo>" (internal/pin), into curl's
// --pinnedpubkey form, "sha256//<base64 of the same digest>": curl hashes
// the same DER SubjectPublicKeyInfo, so both check exactly one key.
func curlPin(p string) (string, error) {
	if p == "" {
		return "", nil
	}
	h, ok := strings.CutPrefix(p, "sha256:")
	sum, err := hex.DecodeString(h)
	if !ok || err != nil || len(sum) != 32 {
		return "", fmt.Errorf("relay API pin %q is not sha256:<64 hex digits>", p)
	}
	return "sha256//" + base64.StdEncoding.EncodeToString(sum), nil
}

// installerURL is the API URL a script downloads from and enrolls at: the
// URL the caller reached, checked to be one the scripts can quote as is.
// A plain-HTTP URL is refused unless it is loopback, as enrollment
// refuses it: the token and the binary would travel unprotected.
func (s *installers) installerURL(r *http.Request) (string, error) {
	raw := s.publicAPIURL(r)
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || u.Path != "" || u.User != nil {
		return "", fmt.Errorf("%w: the relay's URL %q as this request reached it cannot go into an installer", errBadRequest, raw)
	}
	for _, c := range u.Host {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.ContainsRune(".-:[]", c)) {
			return "", fmt.Errorf("%w: the relay's host %q as this request reached it cannot go into an installer", errBadRequest, u.Host)
		}
	}
	if u.Scheme == "http" {
		if ip := net.ParseIP(u.Hostname()); u.Hostname() != "localhost" && (ip == nil || !ip.IsLoopback()) {
			return "", fmt.Errorf("%w: this relay's API is plain HTTP at %s; an installer would send its token and fetch the agent unprotected, so it needs HTTPS", errBadRequest, u.Host)
		}
	}
	return raw, nil
}

// createInstaller answers the script as an attachment, with a fresh
// enrollment token of the site in it.
func (s *installers) createInstaller(w http.ResponseWriter, r *http.Request, p Principal) error {
	site, err := s.siteFor(r, p, r.PathValue("siteId"))
	if err != nil {
		return err
	}
	osName := r.PathValue("os")
	kind, ok := installerKinds[osName]
	if !ok {
		return lookup(store.ErrNotFound, fmt.Sprintf("installer %q (there are linux and windows)", osName))
	}
	relayURL, err := s.installerURL(r)
	if err != nil {
		return err
	}
	cp, err := curlPin(s.apiPin)
	if err != nil {
		return err
	}
	// Everything is checked: now the token is minted.
	enr, err := s.mgmt.mintEnrollment(r, site.ID)
	if err != nil {
		return err
	}
	exp, _ := enr["enrollment_expires_at"].(string)
	params := installerParams{
		SiteID: site.ID, RelayURL: relayURL, Token: enr["enrollment_token"].(string),
		Pin: s.apiPin, CurlPin: cp, ExpiresAt: exp,
		FileName: "nanodems-agent-install-" + site.ID + kind.extension,
	}
	script, err := renderInstaller(kind, params)
	if err != nil {
		return err
	}
	s.audit(store.AuditEvent{TenantID: site.TenantID, Actor: p.Actor, Action: "site.installer", Target: site.ID,
		Detail: fmt.Sprintf("%s installer with a new enrollment token, expires %s", osName, exp)})
	w.Header().Set("Content-Type", kind.mediaType)
	w.Header().Set("Content-Disposition", mime.FormatMediaType("attachment", map[string]string{"filename": params.FileName}))
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("X-Enrollment-Expires-At", exp)
	w.WriteHeader(http.StatusOK)
	w.Write(script)
	return nil
}

// renderInstaller fills a script's template.
func renderInstaller(kind installerKind, p installerParams) ([]byte, error) {
	var b bytes.Buffer
	if err := installerTemplates.ExecuteTemplate(&b, kind.template, p); err != nil {
		return nil, fmt.Errorf("installer %s: %w", kind.template, err)
	}
	out := b.Bytes()
	if kind.crlf {
		out = bytes.ReplaceAll(out, []byte("\n"), []byte("\r\n"))
	}
	return out, nil
}
