// Package dist is the relay's downloads: which binaries an installation
// offers (nanodems-tunnel and nanodems-agent per platform), how their files
// are named, building them cross-compiled and static, and a catalog of a
// downloads directory with each file's SHA-256.
package dist

import (
	"fmt"
	"slices"
	"strings"
)

// Programs are the binaries operators and site PCs download.
var Programs = []string{"nanodems-tunnel", "nanodems-agent"}

// Platform is a GOOS/GOARCH pair.
type Platform struct{ OS, Arch string }

func (p Platform) String() string { return p.OS + "/" + p.Arch }

// Platforms are the platforms an installation offers by default.
var Platforms = []Platform{
	{"linux", "amd64"}, {"linux", "arm64"},
	{"darwin", "arm64"}, {"darwin", "amd64"},
	{"windows", "amd64"},
}

// Target is one program for one platform: one file of a downloads
// directory.
type Target struct {
	Program string
	Platform
}

// FileName is the target's file name: nanodems-tunnel-linux-amd64,
// nanodems-agent-windows-amd64.exe. The name alone tells a downloaded
// file's program and platform, so several sit side by side in one folder.
func (t Target) FileName() string {
	n := t.Program + "-" + t.OS + "-" + t.Arch
	if t.OS == "windows" {
		n += ".exe"
	}
	return n
}

// ParseFileName is FileName's inverse; ok is false for any other name,
// including every name that is not a plain file name.
func ParseFileName(name string) (t Target, ok bool) {
	for _, prog := range Programs {
		rest, found := strings.CutPrefix(name, prog+"-")
		if !found {
			continue
		}
		goos, arch, found := strings.Cut(rest, "-")
		if !found {
			return Target{}, false
		}
		if goos == "windows" {
			if arch, found = strings.CutSuffix(arch, ".exe"); !found {
				return Target{}, false
			}
		}
		t := Target{Program: prog, Platform: Platform{goos, arch}}
		if !validWord(goos) || !validWord(arch) || t.FileName() != name {
			return Target{}, false
		}
		return t, true
	}
	return Target{}, false
}

// validWord is a GOOS or GOARCH: lower-case letters and digits.
func validWord(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range s {
		if (c < 'a' || c > 'z') && (c < '0' || c > '9') {
			return false
		}
	}
	return true
}

// ParsePlatforms reads a comma list of os/arch pairs ("linux/amd64,
// windows/amd64"); "" is the default Platforms.
func ParsePlatforms(s string) ([]Platform, error) {
	if strings.TrimSpace(s) == "" {
		return slices.Clone(Platforms), nil
	}
	var out []Platform
	for _, f := range strings.Split(s, ",") {
		goos, arch, ok := strings.Cut(strings.TrimSpace(f), "/")
		if !ok || !validWord(goos) || !validWord(arch) {
			return nil, fmt.Errorf("platform %q is not os/arch (e.g. linux/amd64)", strings.TrimSpace(f))
		}
		if p := (Platform{goos, arch}); !slices.Contains(out, p) {
			out = append(out, p)
		}
	}
	return out, nil
}

// ParsePrograms reads a comma list of Programs; "" is all of them.
func ParsePrograms(s string) ([]string, error) {
	if strings.TrimSpace(s) == "" {
		return slices.Clone(Programs), nil
	}
	var out []string
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if !slices.Contains(Programs, f) {
			return nil, fmt.Errorf("program %q is not one of %s", f, strings.Join(Programs, ", "))
		}
		if !slices.Contains(out, f) {
			out = append(out, f)
		}
	}
	return out, nil
}

// Targets is every program for every platform.
func Targets(programs []string, platforms []Platform) []Target {
	var out []Target
	for _, p := range platforms {
		for _, prog := range programs {
			out = append(out, Target{Program: prog, Platform: p})
		}
	}
	return out
}
