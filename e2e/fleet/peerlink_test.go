package fleet

import (
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/nanodems/connector/cli"
	"github.com/nanodems/connector/internal/testnet"
)

// checkPeerLink breaks the inter-relay link to relay holder (the one
// that holds handle's agent, the site's only one) while a tunnel from
// relay via is bridged over it, twice: once cut (its connections reset,
// the port still open), once refused and cut (the port closed, as for a
// peer whose listener is down or firewalled). Each time the bridged
// tunnel must end on the client's side, a tunnel through holder itself
// must go on, and once the link is back a new bridged tunnel must work;
// while it is refused, a new bridged tunnel is refused with 503 and
// counted in the bridge's failures.
func checkPeerLink(t *testing.T, via cli.Relay, vp *relayProc, holder cli.Relay, hp *relayProc, handle string) {
	viaNode := vp.node
	ctx := context.Background()
	for _, refuse := range []bool{false, true} {
		what := "cut"
		if refuse {
			what = "refused and cut"
		}
		bridged := openEcho(t, via, handle)
		local := openEcho(t, holder, handle)
		ended := make(chan error, 1)
		go func() {
			_, err := io.Copy(io.Discard, bridged)
			ended <- err
		}()
		if refuse {
			hp.link.refuse()
		}
		broke := time.Now()
		if n := hp.link.cut(); n == 0 {
			t.Fatalf("link to %s carried no connection under a bridged tunnel from %s", hp.node, viaNode)
		}
		var seen error
		select {
		case seen = <-ended:
		case <-time.After(30 * time.Second):
			bridged.Close()
			<-ended
			t.Fatalf("link to %s %s: the bridged tunnel from %s still open 30 s later", hp.node, what, viaNode)
		}
		endedAfter := time.Since(broke)
		bridged.Close()
		if err := testnet.RoundTrip(local, 64<<10); err != nil {
			t.Fatalf("link to %s %s: a tunnel through %s itself broke too: %v", hp.node, what, hp.node, err)
		}
		local.Close()
		if seen == nil {
			seen = io.EOF
		}
		if strings.Contains(seen.Error(), "rpc error") || strings.Contains(seen.Error(), "127.0.0.1") {
			t.Fatalf("link to %s %s: the client of the bridged tunnel through %s was told %q: transport words", hp.node, what, viaNode, seen)
		}
		t.Logf("link to %s %s: the client of the bridged tunnel through %s saw %v %v later; a tunnel through %s itself went on",
			hp.node, what, viaNode, seen, endedAfter.Round(time.Millisecond), hp.node)
		back := time.Now()
		if refuse {
			before := vp.bridgeStats(t)
			start := time.Now()
			_, err := cli.DialTunnel(ctx, via, handle)
			var re *cli.RelayError
			if !errors.As(err, &re) || re.Status != 503 {
				t.Fatalf("link to %s refused: a new tunnel through %s: %v, want 503", hp.node, viaNode, err)
			}
			if want := "relay " + hp.node + ", which holds the site's agent, cannot be reached"; !strings.Contains(re.Reason, want) || strings.Contains(re.Reason, "127.0.0.1") || strings.Contains(re.Reason, "rpc error") {
				t.Fatalf("link to %s refused: reason %q, want %q and no address or transport words", hp.node, re.Reason, want)
			}
			if after := vp.bridgeStats(t); after.Failures <= before.Failures {
				t.Fatalf("%s bridge failures %d → %d: the refused bridge was not counted", viaNode, before.Failures, after.Failures)
			}
			t.Logf("link to %s refused: a new tunnel through %s answered %d %q after %v", hp.node, viaNode, re.Status, re.Reason, time.Since(start).Round(time.Millisecond))
			hp.link.restore(t)
			back = time.Now()
		}
		at := newTunnel(t, via, handle, back.Add(60*time.Second))
		t.Logf("link to %s back (after %s): a new bridged tunnel through %s worked %v later", hp.node, what, viaNode, at.Sub(back).Round(time.Millisecond))
	}
}

// openEcho opens a tunnel to the echo handle and checks that it echoes.
func openEcho(t *testing.T, r cli.Relay, handle string) net.Conn {
	t.Helper()
	c, err := cli.DialTunnel(context.Background(), r, handle)
	must(t, err)
	if _, err := c.Write([]byte("hello")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 5)
	if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "hello" {
		t.Fatalf("echo through %s: %q, %v", r.URL, buf, err)
	}
	return c
}
