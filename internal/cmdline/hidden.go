package cmdline

import (
	"flag"
	"sync"
)

// hidden holds the flags Hide took out of usage texts.
var hidden sync.Map // *flag.Flag → struct{}

// Hide leaves the named flags of fs out of its usage text: flags that
// exist for tests (a relay's --job-tick), which an operator should not
// meet in `help`. They parse as any other. fs is a FlagSet of this
// package's; call Hide after the flags are defined.
func Hide(fs *flag.FlagSet, names ...string) {
	for _, n := range names {
		if f := fs.Lookup(n); f != nil {
			hidden.Store(f, struct{}{})
		}
	}
}

// printShown is fs.PrintDefaults without the hidden flags.
func printShown(fs *flag.FlagSet) {
	shown := flag.NewFlagSet(fs.Name(), flag.ContinueOnError)
	shown.SetOutput(fs.Output())
	fs.VisitAll(func(f *flag.Flag) {
		if _, ok := hidden.Load(f); !ok {
			shown.Var(f.Value, f.Name, f.Usage)
			shown.Lookup(f.Name).DefValue = f.DefValue
		}
	})
	shown.PrintDefaults()
}
