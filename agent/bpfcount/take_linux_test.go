package bpfcount_test

import (
	"fmt"
	"io"
	"net"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/nanodems/connector/agent/bpfcount"
)

// Take returns what Read would and drops the entry, in one call or, as
// on a kernel before 5.14, in two; a second Take of the key fails and
// leaves the other tracked sockets alone.
func TestKernelTake(t *testing.T) {
	for _, mode := range []string{"one call", "two calls"} {
		t.Run(mode, func(t *testing.T) {
			c, _ := openKernel(t)
			if mode == "two calls" {
				bpfcount.TakeInTwo(c)
			}
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			const n = 70_000
			go func() {
				s, err := ln.Accept()
				if err != nil {
					return
				}
				defer s.Close()
				io.CopyN(s, s, n) // echo n bytes
			}()
			var key bpfcount.Key
			d := net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error {
				var err error
				key, err = c.Track(rc)
				return err
			}}
			conn, err := d.Dial("tcp", ln.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			other := trackSockets(t, c, 1)[0]
			go conn.Write(make([]byte, n))
			if _, err := io.ReadFull(conn, make([]byte, n)); err != nil {
				t.Fatal(err)
			}
			rin, rout, err := c.Read(key)
			if err != nil {
				t.Fatal(err)
			}
			in, out, err := c.Take(key)
			if err != nil {
				t.Fatal(err)
			}
			exact(t, "in", in, n)
			exact(t, "out", out, n)
			if in != rin || out != rout {
				t.Errorf("Take: in %d out %d, Read before it: in %d out %d", in, out, rin, rout)
			}
			if _, _, err := c.Read(key); err == nil {
				t.Error("a taken socket still has an entry")
			}
			if _, _, err := c.Take(key); err == nil {
				t.Error("a second Take of the same socket succeeded")
			}
			if _, _, err := c.Read(other); err != nil {
				t.Errorf("another tracked socket lost its entry: %v", err)
			}
			if mode == "one call" && bpfcount.TookInTwo(c) && kernelAtLeast(5, 14) {
				t.Error("Take fell back to two calls on a kernel with lookup-and-delete for hash maps")
			}
		})
	}
}

// kernelAtLeast says whether the running kernel is version major.minor
// or later.
func kernelAtLeast(major, minor int) bool {
	var u unix.Utsname
	if unix.Uname(&u) != nil {
		return false
	}
	var ma, mi int
	fmt.Sscanf(unix.ByteSliceToString(u.Release[:]), "%d.%d", &ma, &mi)
	return ma > major || ma == major && mi >= minor
}
