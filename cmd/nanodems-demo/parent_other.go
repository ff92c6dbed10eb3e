//go:build !linux

package main

// exitWithParent has no portable equivalent of PR_SET_PDEATHSIG; Ctrl-C
// reaches the demo through the terminal's process group.
func exitWithParent() {}
