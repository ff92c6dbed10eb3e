package store

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
)

// Changes between relays. Every relay caches what it reads on the hot
// path (routes, API tokens) and holds live state (agent sessions,
// tunnels, credential uses). When one relay revokes or changes something,
// the others must drop their caches and act on their live state; the
// store carries the news, because the store is what they share.
//
// Store writes that revoke or change what relays cache note a Change in
// the same transaction (RevokeAgent, RevokeAPIToken, RevokeCLISession,
// RevokeRTSPCredential, DeleteSession, RevokeHandle, ApplyDeviceChange,
// UpdateSite, SetDeviceCredentials): it reaches the other stores on the same database
// if and only if the write commits. Notify sends one that no write made.
// A store never hands a relay the changes it made itself: the relay that
// wrote has acted already.

// ChangeKind is what a Change reports.
type ChangeKind string

// Kinds of change. ID names the row: an agent, token, CLI session,
// license, partner key or device id, a handle, the hex SHA-256 of a browser session's cookie, a
// site id.
const (
	ChangeAgentRevoked      ChangeKind = "agent.revoke"
	ChangeTokenRevoked      ChangeKind = "token.revoke"
	ChangeCLISessionRevoked ChangeKind = "cli_session.revoke"
	ChangeSessionEnded      ChangeKind = "session.end"
	// ChangeRTSPCredentialRevoked: an RTSP credential was revoked; the
	// RTSP sessions it opened end.
	ChangeRTSPCredentialRevoked ChangeKind = "rtsp_credential.revoke"
	ChangeHandleRevoked         ChangeKind = "handle.revoke"
	// ChangeUserDisabled: a user was disabled, with every credential of
	// theirs (ID is the user's id).
	ChangeUserDisabled ChangeKind = "user.disable"
	// ChangeHandlePinned: a handle got its agent on first use.
	ChangeHandlePinned ChangeKind = "handle.pin"
	// ChangeDevice: a device was created, edited or deleted (its
	// handles with it); its site's allowlist changed.
	ChangeDevice ChangeKind = "device"
	// ChangeDeviceCredentials: a device's stored login changed.
	ChangeDeviceCredentials ChangeKind = "device.credentials"
	// ChangeSite: a site's settings changed.
	ChangeSite ChangeKind = "site"
	// ChangeResync: changes may have been lost (the store's connection
	// to the notifications broke, or a subscriber fell behind): drop
	// every cache and check every live use against the store.
	ChangeResync ChangeKind = "resync"
)

// Kinds of change of the credentials of programs (licenses.go,
// partnerkeys.go).
const (
	ChangeLicenseRevoked ChangeKind = "license.revoke"
	// ChangePartnerKeyRevoked: an nk_ key was revoked; each CLI session
	// it issued comes with its own ChangeCLISessionRevoked, whose By is
	// the key.
	ChangePartnerKeyRevoked ChangeKind = "partner_key.revoke"
)

// Change is one change another relay made.
type Change struct {
	Kind     ChangeKind `json:"k"`
	ID       string     `json:"i,omitempty"`
	SiteID   string     `json:"s,omitempty"`
	TenantID string     `json:"t,omitempty"`
	// By names the credential whose revocation this change follows: the
	// partner key of a ChangeCLISessionRevoked that RevokePartnerKey
	// made, so that the relays cutting the session say the key did it.
	By string `json:"b,omitempty"`
}

// notify notes c as part of the transaction.
func (t *txn) notify(ctx context.Context, c Change) error {
	if t.d.notify {
		if _, err := t.ExecContext(ctx, `SELECT pg_notify(?, ?)`, notifyChannel, encodeChange(t.origin, c)); err != nil {
			return fmt.Errorf("notify %s: %w", c.Kind, err)
		}
	}
	t.changes = append(t.changes, c)
	return nil
}

// Changes returns the changes other stores on the same database make from
// now on, until ctx ends; then the channel is closed. A subscriber that
// falls behind gets ChangeResync in place of what it missed.
func (s *sqlStore) Changes(ctx context.Context) <-chan Change { return s.feed.subscribe(ctx) }

// feed fans changes out to the subscribers of one store.
type feed struct {
	mu     sync.Mutex
	subs   map[*subscriber]struct{}
	closed bool
}

func newFeed() *feed { return &feed{subs: map[*subscriber]struct{}{}} }

// subscriberQueue bounds what a subscriber may have pending; beyond it the
// pending changes collapse into one ChangeResync.
const subscriberQueue = 1024

type subscriber struct {
	mu      sync.Mutex
	pending []Change
	wake    chan struct{} // capacity 1
}

func (f *feed) subscribe(ctx context.Context) <-chan Change {
	out := make(chan Change)
	sub := &subscriber{wake: make(chan struct{}, 1)}
	f.mu.Lock()
	if f.closed {
		f.mu.Unlock()
		close(out)
		return out
	}
	f.subs[sub] = struct{}{}
	f.mu.Unlock()
	go func() {
		defer close(out)
		defer func() {
			f.mu.Lock()
			delete(f.subs, sub)
			f.mu.Unlock()
		}()
		for {
			select {
			case <-ctx.Done():
				return
			case _, ok := <-sub.wake:
				if !ok {
					return
				}
			}
			for {
				sub.mu.Lock()
				if len(sub.pending) == 0 {
					sub.mu.Unlock()
					break
				}
				c := sub.pending[0]
				sub.pending = sub.pending[1:]
				sub.mu.Unlock()
				select {
				case out <- c:
				case <-ctx.Done():
					return
				}
			}
		}
	}()
	return out
}

// send queues cs for every subscriber.
func (f *feed) send(cs ...Change) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for sub := range f.subs {
		sub.mu.Lock()
		if len(sub.pending)+len(cs) > subscriberQueue {
			sub.pending = append(sub.pending[:0], Change{Kind: ChangeResync})
		} else {
			sub.pending = append(sub.pending, cs...)
		}
		sub.mu.Unlock()
		select {
		case sub.wake <- struct{}{}:
		default:
		}
	}
}

// close ends every subscription: the store is closing.
func (f *feed) close() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return
	}
	f.closed = true
	for sub := range f.subs {
		close(sub.wake)
	}
	f.subs = map[*subscriber]struct{}{}
}

// notifyChannel is the PostgreSQL channel of the changes.
const notifyChannel = "nanodems_changes"

// wireChange is a Change as sent between processes: with the id of the
// store that made it, so that store can skip its own.
type wireChange struct {
	Origin string `json:"o"`
	Change
}

func encodeChange(origin string, c Change) string {
	b, _ := json.Marshal(wireChange{Origin: origin, Change: c})
	return string(b)
}

// localFiles links the SQLite stores of this process that have the same
// file open: each hands its committed changes to the others. Relays in
// other processes on the same file are not told (one SQLite file is one
// relay's; several relays share PostgreSQL).
var localFiles = &fileStores{byPath: map[string]map[*SQLite]struct{}{}}

type fileStores struct {
	mu     sync.Mutex
	byPath map[string]map[*SQLite]struct{}
}

func (x *fileStores) join(s *SQLite) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.byPath[s.path] == nil {
		x.byPath[s.path] = map[*SQLite]struct{}{}
	}
	x.byPath[s.path][s] = struct{}{}
}

func (x *fileStores) leave(s *SQLite) {
	x.mu.Lock()
	defer x.mu.Unlock()
	delete(x.byPath[s.path], s)
	if len(x.byPath[s.path]) == 0 {
		delete(x.byPath, s.path)
	}
}

// publish hands cs to the other stores on from's file.
func (x *fileStores) publish(from *SQLite, cs []Change) {
	x.mu.Lock()
	var to []*SQLite
	for s := range x.byPath[from.path] {
		if s != from {
			to = append(to, s)
		}
	}
	x.mu.Unlock()
	for _, s := range to {
		s.feed.send(cs...)
	}
}
