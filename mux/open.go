package mux

import "github.com/xtaci/smux"

// OpenTunnel opens a stream on sess that starts with the header h. The
// SYN and the header leave in one write (smux's OpenStreamWith, a patch of
// third_party/smux): one system call and one wake-up of the peer per open
// instead of two.
func OpenTunnel(sess *smux.Session, h Header) (*smux.Stream, error) {
	var arr [5 + MaxHostLen]byte
	b, err := AppendHeader(arr[:0], h)
	if err != nil {
		return nil, err
	}
	return sess.OpenStreamWith(b)
}
