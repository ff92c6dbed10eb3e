package relay_test

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nanodems/connector/demo"
	"github.com/nanodems/connector/relay"
)

// fromAddr is a client of d's API whose connections come from ip, a
// loopback address of its own (Linux routes all of 127/8 to lo), so the
// relay sees a distinct client address. Its connections close when the
// test ends.
func fromAddr(t *testing.T, d *demo.Demo, ip string) *http.Client {
	tr := operator(d).HTTPClient().Transport.(*http.Transport)
	t.Cleanup(tr.CloseIdleConnections)
	nd := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}}
	tr.DialContext = nd.DialContext
	return &http.Client{
		Transport:     tr,
		Timeout:       90 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

type answer struct {
	status     int
	retryAfter string
	location   string
	body       string
	took       time.Duration
	err        error
}

func do(c *http.Client, req *http.Request) answer {
	start := time.Now()
	resp, err := c.Do(req)
	if err != nil {
		return answer{err: err, took: time.Since(start)}
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return answer{status: resp.StatusCode, retryAfter: resp.Header.Get("Retry-After"), location: resp.Header.Get("Location"), body: string(b), took: time.Since(start)}
}

// basicCall calls an API route with Basic email:password.
func basicCall(d *demo.Demo, c *http.Client, email, password string) answer {
	req, _ := http.NewRequest("GET", d.Info.RelayURL+"/api/sites/"+d.Info.SiteID, nil)
	req.SetBasicAuth(email, password)
	return do(c, req)
}

// postLogin posts the sign-in form with a double-submit token of its own.
func postLogin(d *demo.Demo, c *http.Client, email, password, next string) answer {
	form := url.Values{"csrf": {"t0ken"}, "email": {email}, "password": {password}, "next": {next}}
	req, _ := http.NewRequest("POST", d.Info.RelayURL+"/login", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.AddCookie(&http.Cookie{Name: "nd_csrf", Value: "t0ken"})
	return do(c, req)
}

func wantAnswer(t *testing.T, what string, a answer, status int, retryAfter, reason string) {
	t.Helper()
	if a.err != nil || a.status != status || a.retryAfter != retryAfter || !strings.Contains(a.body, reason) {
		t.Fatalf("%s: %d Retry-After %q %q (err %v); want %d Retry-After %q and %q", what, a.status, a.retryAfter, strings.TrimSpace(a.body), a.err, status, retryAfter, reason)
	}
}

// vmRSS is this process's resident set, from /proc/self/status; 0 if it
// cannot be read.
func vmRSS() uint64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, _ := strconv.ParseUint(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10
		}
	}
	return 0
}

// 100 concurrent wrong-password Basic calls and 100 concurrent sign-in
// posts, each from its own address, half against a real account and half
// against unknown emails: every one is answered (401, 429 or 503, with
// Retry-After on the last two) within a bounded time, the relay's memory
// stays bounded, at most one hash runs per core, and /healthz keeps
// answering throughout. Unbounded, 50 such attempts took a relay from 80 to
// 920 MiB.
func TestPasswordFloodBounded(t *testing.T) {
	d := startDemo(t)
	const perKind = 100
	// Generous: with the gate a refused attempt waits at most ~1 s; the
	// bound only has to tell that from the tens of seconds a flood of
	// unbounded hashes takes on 2 cores.
	const answerBound = 15 * time.Second
	const memBound = 200 << 20

	// /healthz on a connection opened before the flood, as a monitor's
	// would be, and every attempt on its own warm connection: what is
	// measured is the relay's work, not 200 TLS handshakes at once.
	hc := fromAddr(t, d, "127.0.9.1")
	hc.Timeout = answerBound
	healthz := func(c *http.Client) answer {
		req, _ := http.NewRequest("GET", d.Info.RelayURL+"/healthz", nil)
		return do(c, req)
	}
	if a := healthz(hc); a.status != 200 {
		t.Fatalf("/healthz before the flood: %d %v", a.status, a.err)
	}
	clients := make([]*http.Client, 2*perKind)
	for i := range clients {
		clients[i] = fromAddr(t, d, fmt.Sprintf("127.0.%d.%d", 10+i/perKind, 1+i%perKind))
		clients[i].Timeout = 4 * answerBound
		if a := healthz(clients[i]); a.status != 200 {
			t.Fatalf("warming client %d: %d %v", i, a.status, a.err)
		}
	}
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	heap0, rss0 := ms.HeapInuse, vmRSS()
	if rss0 == 0 {
		t.Fatal("cannot read VmRSS from /proc/self/status")
	}
	var heapPeak, rssPeak uint64
	stop := make(chan struct{})
	var bg sync.WaitGroup
	bg.Add(2)
	go func() { // memory, every 20 ms
		defer bg.Done()
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			heapPeak, rssPeak = max(heapPeak, ms.HeapInuse), max(rssPeak, vmRSS())
			select {
			case <-stop:
				return
			case <-tick.C:
			}
		}
	}()
	var health []time.Duration
	var healthErrs []string
	go func() { // /healthz, back to back
		defer bg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			a := healthz(hc)
			health = append(health, a.took)
			if a.err != nil || a.status != 200 {
				healthErrs = append(healthErrs, fmt.Sprintf("%d %v", a.status, a.err))
			}
			time.Sleep(10 * time.Millisecond) // pacing: a health probe every 10 ms
		}
	}()

	start := make(chan struct{})
	answers := make([]answer, 2*perKind)
	var wg sync.WaitGroup
	for i := range 2 * perKind {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := clients[i]
			email := demo.OperatorEmail
			if i%2 == 1 {
				email = fmt.Sprintf("nobody-%d@flood.invalid", i)
			}
			<-start
			if i < perKind {
				answers[i] = basicCall(d, c, email, "wrong-password")
			} else {
				answers[i] = postLogin(d, c, email, "wrong-password", "")
			}
		}()
	}
	t0 := time.Now()
	close(start)
	wg.Wait()
	flood := time.Since(t0)
	close(stop)
	bg.Wait()

	counts := map[string]int{}
	var slowest time.Duration
	unanswered := 0
	for i, a := range answers {
		kind := "basic"
		if i >= perKind {
			kind = "login"
		}
		slowest = max(slowest, a.took)
		if a.err != nil || a.took > answerBound {
			unanswered++
			if unanswered <= 5 {
				t.Errorf("%s attempt %d: no answer within %v (took %v, err %v)", kind, i, answerBound, a.took.Round(time.Millisecond), a.err)
			}
			continue
		}
		counts[fmt.Sprintf("%s %d", kind, a.status)]++
		switch a.status {
		case 401:
		case 429, 503:
			if n, err := strconv.Atoi(a.retryAfter); err != nil || n < 1 {
				t.Errorf("%s attempt %d: %d with Retry-After %q", kind, i, a.status, a.retryAfter)
			}
		default:
			t.Errorf("%s attempt %d: %d %q, want 401, 429 or 503", kind, i, a.status, a.body)
		}
	}
	slices.Sort(health)
	var hMedian, hMax time.Duration
	if len(health) > 0 {
		hMedian, hMax = health[len(health)/2], health[len(health)-1]
	}
	heapGrowth, rssGrowth := int64(heapPeak)-int64(heap0), int64(rssPeak)-int64(rss0)
	t.Logf("flood of %d attempts: all done in %v, slowest answer %v, %d unanswered within %v; answers %v",
		len(answers), flood.Round(time.Millisecond), slowest.Round(time.Millisecond), unanswered, answerBound, counts)
	t.Logf("memory: heap in use %d → peak %d MiB (+%d), RSS %d → peak %d MiB (+%d); password hashes %d, at most %d at once (GOMAXPROCS %d)",
		heap0>>20, heapPeak>>20, heapGrowth>>20, rss0>>20, rssPeak>>20, rssGrowth>>20,
		relay.PasswordHashes(d.Relay), relay.PeakPasswordHashing(d.Relay), runtime.GOMAXPROCS(0))
	t.Logf("/healthz during the flood: %d answers, median %v, max %v", len(health), hMedian.Round(time.Millisecond), hMax.Round(time.Millisecond))
	if unanswered > 0 {
		t.Errorf("%d of %d attempts unanswered within %v", unanswered, len(answers), answerBound)
	}
	rssBound := int64(memBound)
	if raceEnabled {
		rssBound *= 4
	}
	if heapGrowth > memBound || rssGrowth > rssBound {
		t.Errorf("memory grew by %d MiB heap (bound %d), %d MiB RSS (bound %d) during the flood", heapGrowth>>20, memBound>>20, rssGrowth>>20, rssBound>>20)
	}
	if len(health) == 0 || len(healthErrs) > 0 || hMax > answerBound {
		t.Errorf("/healthz during the flood: %d answers, max %v, failures %v", len(health), hMax, healthErrs)
	}
	if p := relay.PeakPasswordHashing(d.Relay); p > runtime.GOMAXPROCS(0) {
		t.Errorf("%d password hashes ran at once; at most one per core (%d)", p, runtime.GOMAXPROCS(0))
	}
}

// An unknown email costs the same argon2id hash as a known one with a
// wrong password, on both password paths, so timing does not tell which
// emails exist.
func TestUnknownEmailCostsAHash(t *testing.T) {
	d := startDemo(t)
	c := fromAddr(t, d, "127.0.5.1")
	for _, tc := range []struct {
		what string
		call func() answer
	}{
		{"Basic, unknown email", func() answer { return basicCall(d, c, "nobody@demo.invalid", "wrong-password") }},
		{"Basic, known email", func() answer { return basicCall(d, c, demo.OperatorEmail, "wrong-password") }},
		{"POST /login, unknown email", func() answer { return postLogin(d, c, "nobody@demo.invalid", "wrong-password", "") }},
		{"POST /login, known email", func() answer { return postLogin(d, c, demo.OperatorEmail, "wrong-password", "") }},
	} {
		before := relay.PasswordHashes(d.Relay)
		a := tc.call()
		if got := relay.PasswordHashes(d.Relay) - before; a.status != 401 || got != 1 {
			t.Errorf("%s: %d, %d hashes computed; want 401 after exactly 1", tc.what, a.status, got)
		}
	}
}

// Failed attempts are limited per client address and per account: past
// the limit the answer is 429 with Retry-After and a one-line reason, even
// for the right password, without computing a hash; successes cost
// nothing; waiting Retry-After lets the next attempt through.
func TestSigninLockout(t *testing.T) {
	// A clock that stands still unless advanced: the buckets refill with
	// the relay's clock, and real seconds pass while 40 hashes run.
	clk := &stillClock{t: time.Now()}
	d := startDemo(t, func(c *relay.Config) { c.Now = clk.Now })

	t.Run("per address", func(t *testing.T) {
		a := fromAddr(t, d, "127.0.6.1")
		for range 5 { // successes are not counted
			wantAnswer(t, "right password", basicCall(d, a, demo.OperatorEmail, d.Info.UserPassword), 200, "", "")
		}
		// 20 failures, each against another (unknown) account, so only the
		// address limit can trip.
		for i := range 20 {
			wantAnswer(t, fmt.Sprintf("failure %d", i+1), basicCall(d, a, fmt.Sprintf("nobody-%d@demo.invalid", i), "wrong"), 401, "", "invalid or revoked credential")
		}
		hashes := relay.PasswordHashes(d.Relay)
		wantAnswer(t, "21st failure", basicCall(d, a, "nobody-x@demo.invalid", "wrong"), 429, "3", `"error": "too many failed sign-ins from this address; try again in 3 s"`)
		wantAnswer(t, "right password, address locked", basicCall(d, a, demo.OperatorEmail, d.Info.UserPassword), 429, "3", "from this address")
		wantAnswer(t, "sign-in form, address locked", postLogin(d, a, demo.OperatorEmail, d.Info.UserPassword, ""), 429, "3", "too many failed sign-ins from this address; try again in 3 s")
		if n := relay.PasswordHashes(d.Relay) - hashes; n != 0 {
			t.Errorf("refused attempts computed %d hashes", n)
		}
		wantAnswer(t, "another address", basicCall(d, fromAddr(t, d, "127.0.6.2"), "nobody-y@demo.invalid", "wrong"), 401, "", "invalid or revoked credential")
		clk.advance(3 * time.Second)
		wantAnswer(t, "after Retry-After", basicCall(d, a, demo.OperatorEmail, d.Info.UserPassword), 200, "", "")
		wantAnswer(t, "one failure regained", basicCall(d, a, "nobody-z@demo.invalid", "wrong"), 401, "", "invalid or revoked credential")
		wantAnswer(t, "and spent", basicCall(d, a, "nobody-z@demo.invalid", "wrong"), 429, "3", "from this address")
	})

	t.Run("per account", func(t *testing.T) {
		// Each attempt from a fresh address, so only the account limit can
		// trip; the email's case and spaces do not make another account.
		for i := range 10 {
			email := demo.OperatorEmail
			if i%2 == 1 {
				email = " " + strings.ToUpper(email)
			}
			wantAnswer(t, fmt.Sprintf("failure %d", i+1), basicCall(d, fromAddr(t, d, fmt.Sprintf("127.0.7.%d", i+1)), email, "wrong"), 401, "", "invalid or revoked credential")
		}
		wantAnswer(t, "11th failure", basicCall(d, fromAddr(t, d, "127.0.7.50"), demo.OperatorEmail, "wrong"), 429, "30", `"error": "too many failed sign-ins for this account; try again in 30 s"`)
		wantAnswer(t, "right password, account locked", basicCall(d, fromAddr(t, d, "127.0.7.51"), demo.OperatorEmail, d.Info.UserPassword), 429, "30", "for this account")
		wantAnswer(t, "sign-in form, account locked", postLogin(d, fromAddr(t, d, "127.0.7.52"), demo.OperatorEmail, d.Info.UserPassword, ""), 429, "30", "too many failed sign-ins for this account")
		wantAnswer(t, "another account", basicCall(d, fromAddr(t, d, "127.0.7.53"), "nobody@demo.invalid", "wrong"), 401, "", "invalid or revoked credential")
		clk.advance(30 * time.Second)
		wantAnswer(t, "after Retry-After", postLogin(d, fromAddr(t, d, "127.0.7.54"), demo.OperatorEmail, d.Info.UserPassword, ""), 303, "", "")
	})
}

type stillClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *stillClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *stillClock) advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}
