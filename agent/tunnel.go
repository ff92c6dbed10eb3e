package agent

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"syscall"
	"time"

	"github.com/xtaci/smux"

	"github.com/nanodems/connector/mux"
)

// serveTunnel answers one stream the relay opened: read the header, check
// the allowlist, dial, answer with a status, then pipe bytes until both
// directions end.
func (a *Agent) serveTunnel(st *smux.Stream) {
	defer st.Close()
	st.SetReadDeadline(time.Now().Add(10 * time.Second))
	h, err := mux.ReadHeader(st)
	if err != nil {
		mux.WriteStatus(st, mux.BadRequest, err.Error())
		return
	}
	st.SetReadDeadline(time.Time{})
	if !a.allow.Allows(h.Host, h.Port) {
		a.log.Warn("refusing target not in allowlist", "target", net.JoinHostPort(h.Host, strconv.Itoa(int(h.Port))), "allowlist_version", a.allow.Version())
		mux.WriteStatus(st, mux.NotAllowed, fmt.Sprintf("%s not in allowlist v%d", net.JoinHostPort(h.Host, strconv.Itoa(int(h.Port))), a.allow.Version()))
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), a.cfg.DialTimeout)
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", net.JoinHostPort(h.Host, strconv.Itoa(int(h.Port))))
	cancel()
	if err != nil {
		mux.WriteStatus(st, classify(err), err.Error())
		return
	}
	if err := mux.WriteStatus(st, mux.OK, ""); err != nil {
		conn.Close()
		return
	}
	a.tunnels.Add(1)
	a.active.Add(1)
	defer a.active.Add(-1)
	t := &liveTunnel{target: mux.Target{Host: h.Host, Port: h.Port}, conn: conn}
	a.live.Store(t, struct{}{})
	defer a.live.Delete(t)
	mux.Pipe(mux.NewStream(st), conn, &a.bytesOut, &a.bytesIn)
}

// liveTunnel is an open tunnel, kept so an allowlist change can end the
// tunnels to targets it removes.
type liveTunnel struct {
	target mux.Target
	conn   net.Conn
}

// cutDisallowed ends the open tunnels whose target the allowlist no longer
// holds: taking a camera off the list takes it off now, not at the next
// connection.
func (a *Agent) cutDisallowed() {
	a.live.Range(func(k, _ any) bool {
		t := k.(*liveTunnel)
		if !a.allow.Allows(t.target.Host, t.target.Port) {
			a.log.Info("closing tunnel to a target no longer in the allowlist", "target", net.JoinHostPort(t.target.Host, strconv.Itoa(int(t.target.Port))))
			t.conn.Close()
		}
		return true
	})
}

// classify maps a dial error to the status the operator needs to see.
func classify(err error) mux.Code {
	var dnsErr *net.DNSError
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return mux.Refused
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, os.ErrDeadlineExceeded), errors.Is(err, syscall.ETIMEDOUT):
		return mux.TimedOut
	case errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, syscall.ENETUNREACH), errors.As(err, &dnsErr):
		return mux.Unreachable
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return mux.TimedOut
	}
	return mux.Unreachable
}
