// Package udpbuf sizes UDP sockets for video and counts the datagrams a
// socket lost because its receive buffer was full.
//
// A 4 Mbit/s camera stream fills Linux's default receive buffer
// (net.core.rmem_default, 208 KiB) in 0.4 s. A reader that a loaded host
// does not schedule for that long (load 7–15 on a small box is enough)
// loses datagrams, and every viewer of the stream then shows the same
// gaps. The kernel drops them silently; SO_RXQ_OVFL makes it say how many.
package udpbuf

// Video is the buffer size asked for a socket that carries video: about
// 8 s of a 4 Mbit/s stream, so scheduling stalls of seconds lose nothing.
// It is a limit, not an allocation: the kernel charges only what is
// queued.
const Video = 4 << 20
