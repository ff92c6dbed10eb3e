// Package netstack will hold the CLI's gVisor netstack of issue 5, which
// serves 127.0.0.X:port plan addresses without OS binds. Nothing is built
// here yet.
package netstack
