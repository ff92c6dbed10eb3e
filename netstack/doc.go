// Package netstack serves the operator's plan addresses (127.0.0.X:port)
// from a gVisor TCP/IP stack inside the CLI, reached through a TUN device.
package netstack
