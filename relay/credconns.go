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
// can show. Each use is also indexed by the user the credential belongs
// to, so that disabling a user (DELETE /api/users/{userId}) cuts every
// use of every credential of theirs, passwords included. The tunnels of an agent are indexed on its session instead
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
	errUserDisabled = fmt.Errorf("%w: user disabled", errBadCredential)
)

// userCred is the key under which a user's uses are remembered as cut
// (credIndex.cutUser), and the credential of a grant minted with a
// password, which only the user's disabling revokes.
func userCred(userID string) string { return "user:" + userID }

// credConns is the index of every relay Server of the process (tests run
// several): credential ids are random, so they never collide, and no field
// has to be added to Server for it.
var credConns = &credIndex{
	byCred:  map[string]map[*credEntry]struct{}{},
	byUser:  map[string]map[*credEntry]struct{}{},
	revoked: map[string]revocation{},
}

// revokedMemory is how long a cut credential is remembered, so that a use
// authenticated just before the revocation but registered just after it
// is cut on arrival. Between the check and the registration lie at most a
// Dial (openTimeout, 15 s) and a WebSocket handshake; two minutes covers
// both with room.
const revokedMemory = 2 * time.Minute

type credIndex struct {
	mu      sync.Mutex
	byCred  map[string]map[*credEntry]struct{}
	byUser  map[string]map[*credEntry]struct{}
	revoked map[string]revocation // by credential id, and userCred(user)
}

type revocation struct {
	at     time.Time
	reason error
}

type credEntry struct {
	cred, user, tenant string
	cut                func(reason error)
}

// addUse registers a use of p's credential (p.Cred); cut ends it with a
// reason. The returned func unregisters it. A use of a credential cut
// moments ago is cut at once. It is registered under the credential and
// under p's user: revoking either cuts it. A password's use (no Cred)
// is registered under the user alone; the admin key's, nowhere.
func (x *credIndex) addUse(p Principal, cut func(reason error)) (remove func()) {
	if p.Cred == "" && p.UserID == "" {
		return func() {}
	}
	e := &credEntry{cred: p.Cred, user: p.UserID, tenant: p.TenantID, cut: cut}
	x.mu.Lock()
	for _, k := range []string{e.cred, userCred(e.user)} {
		if rv, ok := x.revoked[k]; ok && k != "" && k != userCred("") && time.Since(rv.at) < revokedMemory {
			x.mu.Unlock()
			go cut(rv.reason)
			return func() {}
		}
	}
	put(x.byCred, e.cred, e)
	put(x.byUser, e.user, e)
	x.mu.Unlock()
	return func() {
		x.mu.Lock()
		x.drop(e)
		x.mu.Unlock()
	}
}

func put(m map[string]map[*credEntry]struct{}, k string, e *credEntry) {
	if k == "" {
		return
	}
	if m[k] == nil {
		m[k] = map[*credEntry]struct{}{}
	}
	m[k][e] = struct{}{}
}

func del(m map[string]map[*credEntry]struct{}, k string, e *credEntry) {
	delete(m[k], e)
	if len(m[k]) == 0 {
		delete(m, k)
	}
}

// drop unregisters e; x.mu is held.
func (x *credIndex) drop(e *credEntry) {
	del(x.byCred, e.cred, e)
	del(x.byUser, e.user, e)
}

// cut ends every use of credential cred and returns how many there were.
// The cuts run in their own goroutines: a WebSocket close handshake may
// wait seconds for a slow peer, and the revoking request must not.
func (x *credIndex) cut(cred string, reason error) int {
	n, _ := x.cutUses(cred, "", reason)
	return n
}

// cutUser ends every use of every credential of the user, and the uses
// of credentials of theirs registered in the next revokedMemory.
func (x *credIndex) cutUser(userID string, reason error) int {
	n, _ := x.cutUses("", userID, reason)
	return n
}

// cutUses ends the uses of credential cred, or of user userID, and says
// how many it ended in each tenant (for the audit rows of the cut).
func (x *credIndex) cutUses(cred, userID string, reason error) (int, map[string]int) {
	now := time.Now()
	key, m := cred, x.byCred
	if cred == "" {
		key, m = userCred(userID), x.byUser
		cred = userID
	}
	x.mu.Lock()
	for k, rv := range x.revoked {
		if now.Sub(rv.at) >= revokedMemory {
			delete(x.revoked, k)
		}
	}
	x.revoked[key] = revocation{at: now, reason: reason}
	es := make([]*credEntry, 0, len(m[cred]))
	for e := range m[cred] {
		es = append(es, e)
	}
	tenants := map[string]int{}
	for _, e := range es {
		x.drop(e)
		tenants[e.tenant]++
	}
	x.mu.Unlock()
	for _, e := range es {
		go e.cut(reason)
	}
	return len(es), tenants
}

// count is how many uses of cred are registered.
func (x *credIndex) count(cred string) int {
	x.mu.Lock()
	defer x.mu.Unlock()
	return len(x.byCred[cred])
}
