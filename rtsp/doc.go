// Package rtsp is the relay's RTSP gateway (docs/rtsp.md):
// rtsp://relay:9554/{handle}/{camera path} reaches the RTSP port of the
// camera behind a handle, for VLC, ffmpeg, GStreamer, NVRs and VMS
// software, which all take an rtsp:// URL and nothing else.
//
// The package holds the protocol and the gateway, and knows nothing of
// the relay beyond Backend (authorize a grant, dial a handle, the stored
// camera login): package relay implements it (relay/rtsp.go); the arrow
// goes relay → rtsp only.
//
// Protocol (RFC 2326, RTSP 1.0; RFC 7826, RTSP 2.0, where clients speak
// it): message.go parses and writes messages with bounded header and body
// sizes, frame.go reads the byte stream of a connection (messages and
// '$'-framed interleaved RTP/RTCP, §10.12) and resynchronises on camera
// junk, headers.go reads Transport and Session and rewrites RTP-Info,
// sdp.go rewrites a=control lines and reads what sharing needs, url.go
// maps gateway URLs to camera URLs and back, keyframe.go finds where a
// decoder can start in H.264, H.265 and JPEG.
//
// Gateway: every client connection is authorized by a grant in its first
// URL (nd_grant=…, minted by the relay's API), then either
//
//   - drives its own camera connection (passthrough.go): requests and
//     answers are forwarded with URLs rewritten both ways, Session ids and
//     timeouts untouched, the camera's challenge answered with the stored
//     login (upstream.go), UDP asked of the gateway converted to
//     interleaved TCP towards the camera (udp.go), and the camera session
//     torn down when the client vanishes; or
//   - views a shared camera session (fanout.go): viewers of one tenant
//     pulling the same handle and path share one camera session, the
//     gateway copies each packet to all, and a slow viewer skips to the
//     next keyframe or is dropped, never slowing the others.
//
// Either way, a camera that refuses interleaved TCP (461) is set up over
// UDP to a relay on its LAN (camudp.go, UDPBackend), whose datagrams
// become the camera connection's interleaved frames.
//
// Listeners: gnet event loops (listen_gnet.go, the default, as the
// design card asks) or goroutine per connection (listen_std.go, the
// comparison point of docs/perf-rtsp.md); both carry RTSP over HTTP
// (tunnel.go) on the same port.
package rtsp
