package relay

import (
	"errors"
	"fmt"
	"io"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/mem"

	"github.com/nanodems/connector/mux"
)

// The BridgeTunnel service is defined by hand, without generated code:
// one bidirectional streaming method whose messages are raw frames,
// carried by bridgeCodec. Its wire is still ordinary gRPC over HTTP/2
// (path /nanodems.relay.v1.Bridge/Tunnel, content-type
// application/grpc+nanodems-frame), so no protoc step joins the build.

// bridgeMethod is the full method name of BridgeTunnel.
const bridgeMethod = "/nanodems.relay.v1.Bridge/Tunnel"

// bridgeStreamDesc describes the one method for clients.
var bridgeStreamDesc = grpc.StreamDesc{StreamName: "Tunnel", ServerStreams: true, ClientStreams: true}

// bridgeServiceDesc registers the handler on the peer listener's server.
func bridgeServiceDesc(h grpc.StreamHandler) *grpc.ServiceDesc {
	return &grpc.ServiceDesc{
		ServiceName: "nanodems.relay.v1.Bridge",
		HandlerType: (*any)(nil),
		Streams:     []grpc.StreamDesc{{StreamName: "Tunnel", Handler: h, ServerStreams: true, ClientStreams: true}},
	}
}

// A frame is one message of a BridgeTunnel stream: a kind byte, then the
// body. The first message of the caller is an open, the first of the
// callee a status; after that both send data, one eof each (half-close),
// or an abort (a cut, so the other side's Read fails rather than ends).
type frame struct {
	kind byte
	body []byte // outgoing frames, and incoming frames but data
	// data is an incoming data frame's payload, in gRPC's own buffers
	// until it is read: no copy between the HTTP/2 frames and Read.
	data *mem.Reader
}

// free releases an incoming data frame's buffers to gRPC's pool.
func (f *frame) free() {
	if f.data != nil {
		f.data.Close()
		f.data = nil
	}
}

const (
	frameData   byte = 'd'
	frameEOF    byte = 'e'
	frameAbort  byte = 'x'
	frameOpen   byte = 'o' // body: JSON bridgeOpen
	frameStatus byte = 's' // body: status code byte, then the reason
)

// bridgeCodec marshals frames as kind byte + body, the body in
// bridgeBuffers. Marshal copies the body: gRPC writes it after SendMsg has
// returned, when the caller may reuse it. Unmarshal keeps a reference to
// a data frame's buffers instead of copying them; Read frees them. One
// reference, the Reader's: a second one would keep every buffer from its
// pool, and the receiving relay then allocated and zeroed each 16 KiB
// HTTP/2 frame afresh (2.1 bytes allocated per byte bridged,
// docs/perf-ha.md).
type bridgeCodec struct{}

func (bridgeCodec) Name() string { return "nanodems-frame" }

func (bridgeCodec) Marshal(v any) (mem.BufferSlice, error) {
	f, ok := v.(*frame)
	if !ok {
		return nil, fmt.Errorf("bridge codec: cannot marshal %T", v)
	}
	kind := frameKinds[f.kind]
	if kind == nil {
		kind = mem.SliceBuffer{f.kind}
	}
	if len(f.body) == 0 {
		return mem.BufferSlice{kind}, nil
	}
	b := bridgeBuffers.Get(len(f.body))
	copy(*b, f.body)
	return mem.BufferSlice{kind, mem.NewBuffer(b, bridgeBuffers)}, nil
}

// frameKinds are the kind bytes as read-only buffers: a frame is sent as
// two, its kind and its body, so that a body of a power of two (a 64 KiB
// tunnel write) takes a buffer of its own size rather than of twice it.
var frameKinds = func() map[byte]mem.Buffer {
	m := map[byte]mem.Buffer{}
	for _, k := range []byte{frameData, frameEOF, frameAbort, frameOpen, frameStatus} {
		m[k] = mem.SliceBuffer([]byte{k})
	}
	return m
}()

func (bridgeCodec) Unmarshal(data mem.BufferSlice, v any) error {
	f, ok := v.(*frame)
	if !ok {
		return fmt.Errorf("bridge codec: cannot unmarshal into %T", v)
	}
	r := data.Reader() // takes a reference: ours until read, gRPC frees its own
	kind, err := r.ReadByte()
	if err != nil {
		r.Close()
		return errors.New("bridge codec: empty frame")
	}
	f.kind = kind
	if kind == frameData {
		f.data = r
		return nil
	}
	f.body = make([]byte, r.Remaining())
	_, err = io.ReadFull(r, f.body)
	r.Close()
	return err
}

// bridgeOpen is what the calling relay asks for: the handle it resolved
// and checked, the agent it chose, and the tunnel's flags. The callee
// re-checks that the handle still resolves and that the agent is its own.
type bridgeOpen struct {
	Handle string `json:"handle"`
	Agent  string `json:"agent"`
	Flags  uint8  `json:"flags"`
}

// Status codes of a bridge's first answer: Dial's errors, so that the
// caller's access path answers exactly as it would for a local agent.
const (
	bridgeOK          byte = 0
	bridgeUnknown     byte = 1
	bridgeOffline     byte = 2
	bridgeNotAllowed  byte = 3
	bridgeUnreachable byte = 4
	bridgeTimeout     byte = 5
	bridgeBadHeader   byte = 6
	bridgeFailed      byte = 7
)

var bridgeErrors = []struct {
	code byte
	err  error
}{
	{bridgeUnknown, ErrUnknownHandle},
	{bridgeOffline, ErrAgentOffline},
	{bridgeNotAllowed, ErrNotAllowed},
	{bridgeUnreachable, ErrUnreachable},
	{bridgeTimeout, ErrTimeout},
	{bridgeBadHeader, mux.ErrBadHeader},
}

// encodeStatus is the status frame body for Dial's outcome on the callee:
// the code of the sentinel err wraps and what the message adds to it.
func encodeStatus(reason string, err error) []byte {
	if err == nil {
		return append([]byte{bridgeOK}, reason...)
	}
	for _, e := range bridgeErrors {
		if errors.Is(err, e.err) {
			return append([]byte{e.code}, strings.TrimPrefix(err.Error(), e.err.Error())...)
		}
	}
	return append([]byte{bridgeFailed}, err.Error()...)
}

// decodeStatus is the inverse: the OK status's reason, or the error the
// caller's Dial returns, wrapping the same sentinel as on the callee.
func decodeStatus(body []byte) (string, error) {
	if len(body) == 0 {
		return "", errors.New("bridge: empty status")
	}
	code, rest := body[0], string(body[1:])
	if code == bridgeOK {
		return rest, nil
	}
	if code == bridgeUnreachable && rest == strings.TrimPrefix(errRefused.Error(), ErrUnreachable.Error()) {
		return "", errRefused // the same bytes as any unreachable, told apart for the counters
	}
	for _, e := range bridgeErrors {
		if e.code == code {
			if rest == "" {
				return "", e.err
			}
			return "", fmt.Errorf("%w%s", e.err, rest)
		}
	}
	return "", fmt.Errorf("%w: bridge: %s", ErrAgentOffline, rest)
}
