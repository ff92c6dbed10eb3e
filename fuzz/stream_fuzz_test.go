package fuzz

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"testing"
	"testing/iotest"
	"time"

	"github.com/xtaci/smux"

	"github.com/nanodems/connector/internal/pipe"
	"github.com/nanodems/connector/mux"
)

// frames encodes chunks as a peer's mux.Stream would: data frames, then an
// EOF frame when eof is set.
func frames(eof bool, chunks ...[]byte) []byte {
	var b []byte
	for _, c := range chunks {
		b = append(b, 0)
		b = binary.BigEndian.AppendUint16(b, uint16(len(c)))
		b = append(b, c...)
	}
	if eof {
		b = append(b, 1, 0, 0)
	}
	return b
}

// errMoveFrame marks input that moves the stream to a dedicated
// connection: the reader then waits for one (mux/move_test.go covers it).
var errMoveFrame = errors.New("move frame")

// decodeFrames is the reference reader: the payload a mux.Stream must
// deliver for raw, and how it must end (nil, io.ErrUnexpectedEOF or
// mux.ErrBadFrame).
func decodeFrames(raw []byte) ([]byte, error) {
	var payload []byte
	for {
		if len(raw) < 3 {
			return payload, io.ErrUnexpectedEOF
		}
		n := int(binary.BigEndian.Uint16(raw[1:]))
		switch raw[0] {
		case 0:
			if len(raw)-3 < n {
				return append(payload, raw[3:]...), io.ErrUnexpectedEOF
			}
			payload = append(payload, raw[3:3+n]...)
			raw = raw[3+n:]
		case 1:
			if n != 0 {
				return payload, mux.ErrBadFrame
			}
			return payload, nil
		case 2:
			if n != 0 {
				return payload, mux.ErrBadFrame
			}
			return payload, errMoveFrame
		default:
			return payload, mux.ErrBadFrame
		}
	}
}

func FuzzStreamFrames(f *testing.F) {
	big := bytes.Repeat([]byte{0xa5}, mux.MaxPayload)
	for _, seed := range [][]byte{
		frames(true),
		frames(true, []byte("hello"), nil, []byte(" world")),
		frames(true, big), // largest frame
		frames(false, []byte("cut before EOF")),
		append(frames(true, []byte("x")), frames(true, []byte("after EOF"))...),
		{0, 0},          // truncated header
		{0, 0, 9, 'a'},  // truncated payload
		{0, 0xff, 0xff}, // 64 KiB announced, nothing sent
		{1, 0, 1},       // EOF frame with a length
		{2, 0, 0},       // unknown type
		{},
	} {
		for mode := range uint8(3) {
			f.Add(seed, mode)
		}
	}

	// One session pair for the whole run; each input gets a fresh stream.
	c1, c2 := net.Pipe()
	client, err := smux.Client(c1, mux.Config())
	if err != nil {
		f.Fatal(err)
	}
	server, err := smux.Server(c2, mux.Config())
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { client.Close(); server.Close() })

	f.Fuzz(func(t *testing.T, raw []byte, mode uint8) {
		if _, err := decodeFrames(raw); err == errMoveFrame {
			t.Skip("a move frame waits for a dedicated connection")
		}
		deadline := time.Now().Add(10 * time.Second)
		out, err := client.OpenStream()
		if err != nil {
			t.Fatal(err)
		}
		wrote := make(chan struct{})
		go func() {
			defer close(wrote)
			out.Write(raw) // may fail once the reader gave up
			out.Close()
		}()
		server.SetDeadline(deadline)
		in, err := server.AcceptStream()
		if err != nil {
			t.Fatal(err)
		}
		in.SetReadDeadline(deadline)
		st := mux.NewStream(in)

		var got []byte
		switch mode % 3 {
		case 0:
			got, err = io.ReadAll(st)
		case 1:
			got, err = io.ReadAll(iotest.OneByteReader(st))
		case 2: // Copy waits for a frame before it takes a buffer
			var b bytes.Buffer
			_, err = pipe.Copy(&b, st, nil)
			got = b.Bytes()
		}
		st.Close()
		out.Close() // unblocks a Write stuck on a window the reader will not open
		<-wrote

		if errors.Is(err, smux.ErrTimeout) {
			t.Fatalf("reading %d bytes hung", len(raw))
		}
		want, wantErr := decodeFrames(raw)
		if !errors.Is(err, wantErr) {
			t.Fatalf("read ended with %v, want %v", err, wantErr)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("read %d bytes %.40x…, want %d bytes %.40x…", len(got), got, len(want), want)
		}
	})
}
