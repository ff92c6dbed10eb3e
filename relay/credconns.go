package relay

import (
	"encoding/hex"
	"fmt"
	"sync"
	"time"
)

// Revoking a credential ends what it opened, not only what it would open
// next. Every long-lived use of a revocable credential registers here
// under the credential's id: a WebSocket tunnel (/api/tunnel), a /c/ proxy
// request (with the WebSocket it may upgrade to), a CLI mux connection or
// raw tunnel. Revoking the credential (DELETE of an nt_ token, POST
// /logout, DELETE of a CLI session) cuts them all with a reason the client
// can show. The tunnels of an agent are indexed on its session instead
// (agentSession.tunnels), and end with it.

// Credential ids, the keys of credConns: an API token's id (tok_…), a CLI
// session's id (cli_…), and a browser session by the hash of its cookie,
// which is how the store names it.
func sessionCred(hash []byte) string { return "session:" + hex.EncodeToString(hash) }

// Reasons of a cut, as the client reads them (WebSocket close reason, or
// the /c/ error page); both answer 401 where a status can still be sent.
var (
	errTokenRevoked = fmt.Errorf("%w: API token revoked", errBadCredential)
	errSignedOut    = fmt.Errorf("%w: signed out", errBadCredential)
)

// credConns is the index of every relay Server of the process (tests run
// several): credential ids are random, so they never collide, and no field
// has to be added to Server for it.
var credConns = &credIndex{byCred: map[string]map[*credEntry]struct{}{}, revoked: map[string]revocation{}}

// revokedMemory is how long a cut credential is remembered, so that a use
// authenticated just before the revocation but registered just after it
// is cut on arrival. Between the check and the registration lie at most a
// Dial (openTimeout, 15 s) and a WebSocket handshake; two minutes covers
// both with room.
const revokedMemory = 2 * time.Minute

type credIndex struct {
	mu      sync.Mutex
	byCred  map[string]map[*credEntry]struct{}
	revoked map[string]revocation
}

type revocation struct {
	at     time.Time
	reason error
}

type credEntry struct{ cut func(reason error) }

// add registers a use of credential cred; cut ends it with a reason. The
// returned func unregisters it. A use of a credential cut moments ago is
// cut at once. An empty cred (the admin key, a password: not revocable one
// by one) registers nothing.
func (x *credIndex) add(cred string, cut func(reason error)) (remove func()) {
	if cred == "" {
		return func() {}
	}
	e := &credEntry{cut: cut}
	x.mu.Lock()
	if rv, ok := x.revoked[cred]; ok && time.Since(rv.at) < revokedMemory {
		x.mu.Unlock()
		go cut(rv.reason)
		return func() {}
	}
	if x.byCred[cred] == nil {
		x.byCred[cred] = map[*credEntry]struct{}{}
	}
	x.byCred[cred][e] = struct{}{}
	x.mu.Unlock()
	return func() {
		x.mu.Lock()
		delete(x.byCred[cred], e)
		if len(x.byCred[cred]) == 0 {
			delete(x.byCred, cred)
		}
		x.mu.Unlock()
	}
}

// cut ends every use of credential cred and returns how many there were.
// The cuts run in their own goroutines: a WebSocket close handshake may
// wait seconds for a slow peer, and the revoking request must not.
func (x *credIndex) cut(cred string, reason error) int {
	now := time.Now()
	x.mu.Lock()
	for k, rv := range x.revoked {
		if now.Sub(rv.at) >= revokedMemory {
			delete(x.revoked, k)
		}
	}
	x.revoked[cred] = revocation{at: now, reason: reason}
	es := make([]*credEntry, 0, len(x.byCred[cred]))
	for e := range x.byCred[cred] {
		es = append(es, e)
	}
	delete(x.byCred, cred)
	x.mu.Unlock()
	for _, e := range es {
		go e.cut(reason)
	}
	return len(es)
}

// count is how many uses of cred are registered.
func (x *credIndex) count(cred string) int {
	x.mu.Lock()
	defer x.mu.Unlock()
	return len(x.byCred[cred])
}
