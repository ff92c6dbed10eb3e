package cmdline

import (
	"flag"
	"strings"
)

// listFlag is a flag that takes several values, comma-separated or by
// repeating the flag; the first use replaces the default (an environment
// variable's list, say) instead of adding to it.
type listFlag struct {
	vals *[]string
	set  bool
}

func (l *listFlag) String() string {
	if l.vals == nil {
		return ""
	}
	return strings.Join(*l.vals, ",")
}

func (l *listFlag) Set(v string) error {
	if !l.set {
		*l.vals, l.set = nil, true
	}
	*l.vals = append(*l.vals, Split(v)...)
	return nil
}

// List adds a flag of several values (--relay a,b or --relay a --relay b)
// and returns them, def (comma-separated) until the flag is given.
func List(fs *flag.FlagSet, name, def, usage string) *[]string {
	vals := Split(def)
	fs.Var(&listFlag{vals: &vals}, name, usage)
	return &vals
}

// Split cuts a comma-separated list, dropping blanks around and between
// its items.
func Split(s string) []string {
	var out []string
	for _, v := range strings.Split(s, ",") {
		if v = strings.TrimSpace(v); v != "" {
			out = append(out, v)
		}
	}
	return out
}
