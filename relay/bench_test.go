package relay_test

import (
	"context"
	"io"
	"net"
	"testing"

	"github.com/nanodems/connector/cli"
	"github.com/nanodems/connector/demo"
)

// benchEcho pushes b.N chunks of 64 KiB through c to an echo target while
// reading them back; b.SetBytes makes the MB/s one direction's rate.
func benchEcho(b *testing.B, c net.Conn) {
	chunk := make([]byte, 64<<10)
	b.SetBytes(int64(len(chunk)))
	b.ReportAllocs()
	b.ResetTimer()
	done := make(chan error, 1)
	go func() {
		_, err := io.CopyN(io.Discard, c, int64(b.N)*int64(len(chunk)))
		done <- err
	}()
	for range b.N {
		if _, err := c.Write(chunk); err != nil {
			b.Fatal(err)
		}
	}
	if err := <-done; err != nil {
		b.Fatal(err)
	}
}

func benchDemo(b *testing.B) *demo.Demo {
	d, err := demo.Start(context.Background(), demo.Options{DataDir: b.TempDir(), Logger: quietLogger()})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(d.Close)
	return d
}

// BenchmarkDirectTCP is the baseline: the same echo target over loopback.
func BenchmarkDirectTCP(b *testing.B) {
	d := benchDemo(b)
	c, err := net.Dial("tcp", d.Echo.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	benchEcho(b, c)
}

// BenchmarkTunnelWebSocket: client → wss → relay → TLS+smux → agent → echo.
func BenchmarkTunnelWebSocket(b *testing.B) {
	d := benchDemo(b)
	c, err := cli.DialTunnel(context.Background(), operator(d), d.Info.EchoHandle)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	benchEcho(b, c)
}

// BenchmarkTunnelOpen opens a tunnel, moves one byte each way, closes it.
func BenchmarkTunnelOpen(b *testing.B) {
	d := benchDemo(b)
	buf := make([]byte, 1)
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		c, err := cli.DialTunnel(context.Background(), operator(d), d.Info.EchoHandle)
		if err != nil {
			b.Fatal(err)
		}
		c.Write(buf)
		if _, err := io.ReadFull(c, buf); err != nil {
			b.Fatal(err)
		}
		c.Close()
	}
}
