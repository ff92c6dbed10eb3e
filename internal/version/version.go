// Package version tells which build of a program is running: the module
// version and the commit it was built from, as the Go toolchain records
// them in the binary. Agents report it in their hello, the relay on
// /healthz, and every program's `version` subcommand prints it.
package version

import (
	"runtime"
	"runtime/debug"
	"sync"
)

// Release overrides the module version when set at link time
// (-ldflags "-X github.com/nanodems/connector/internal/version.Release=v1.2.3"),
// for builds made outside a tagged module (release scripts, `go build` in a
// checkout, where the toolchain records "(devel)").
var Release string

// Info is a build's identity.
type Info struct {
	Version  string `json:"version"`            // module version, "(devel)" for a checkout build
	Commit   string `json:"commit,omitempty"`   // VCS revision, shortened to 12 characters
	Modified bool   `json:"modified,omitempty"` // built from a work tree with uncommitted changes
	Go       string `json:"go"`                 // toolchain version
}

// Get returns this binary's build identity.
var Get = sync.OnceValue(func() Info {
	in := Info{Version: "(devel)", Go: runtime.Version()}
	if bi, ok := debug.ReadBuildInfo(); ok {
		if v := bi.Main.Version; v != "" {
			in.Version = v
		}
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				in.Commit = s.Value
				if len(in.Commit) > 12 {
					in.Commit = in.Commit[:12]
				}
			case "vcs.modified":
				in.Modified = s.Value == "true"
			}
		}
	}
	if Release != "" {
		in.Version = Release
	}
	return in
})

// String is the one-line form: "v1.2.3 (commit 0123456789ab, go1.26.3)",
// "(devel) (commit 0123456789ab+dirty, go1.26.3)".
func (in Info) String() string {
	s := in.Version + " ("
	if in.Commit != "" {
		s += "commit " + in.Commit
		if in.Modified {
			s += "+dirty"
		}
		s += ", "
	}
	return s + in.Go + ")"
}
