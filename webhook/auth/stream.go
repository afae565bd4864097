package auth

import (
	"crypto/rand"
	"encoding/hex"
	"net/http"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/clock"

	"github.com/authframework/authframework/internal/revstream"
	"github.com/authframework/authframework/pkg/serverapi"
)

// DefaultMaxStreams bounds the revocation streams one server holds open:
// each costs a goroutine, two timers and a connection.
const DefaultMaxStreams = 4096

// MaxStreamsPerClient bounds the streams one client id holds open, so one
// tenant cannot take the others' share of DefaultMaxStreams.
const MaxStreamsPerClient = 8

// maxSnapshots bounds the snapshots being built and sent at once: each
// holds every revocation of the server in memory until it is written.
const maxSnapshots = 8

// allScopes is the scope of events every stream gets: token revocations.
// The server keeps revocations as RevocationKeys, hashes that name their
// policy but cannot be read back to it, so every stream gets every policy's;
// a subscriber can match only its own tokens' keys.
const allScopes = "*"

// tombstone remembers something removed until tokens it could affect have
// expired, so a stream that starts after the removal still hears of it.
type tombstone struct {
	ev    revstream.Event
	until time.Time
}

// streamState is the part of the store the revocation stream needs beyond
// what it already keeps: the event log and the tombstones, by scope.
type streamState struct {
	log        *revstream.Log
	tombstones map[string]map[string]tombstone // scope -> account UID or kid -> event
}

func newStreamState() streamState {
	epoch := make([]byte, 6)
	_, _ = rand.Read(epoch)
	return streamState{log: revstream.NewLog(hex.EncodeToString(epoch), 0), tombstones: map[string]map[string]tombstone{}}
}

func scopeOf(policy types.NamespacedName) string { return policy.String() }

// tombstoneTTL bounds how long a removal is remembered: the longest any
// token of the policy lives, with its leeway; a day when the policy is gone.
func (s *Store) tombstoneTTL(policy types.NamespacedName) time.Duration {
	if p, ok := s.policies[policy]; ok {
		return p.TTL + p.Skew
	}
	return 24 * time.Hour
}

// emit appends ev to scope's events; with id set it is also a tombstone.
// Expired tombstones of the scope are dropped here, on the write path, so
// snapshots only read. The store's lock is held.
func (s *Store) emit(scope string, ev revstream.Event, tombstoneID string, ttl time.Duration) {
	if tombstoneID != "" {
		now := s.clock.Now()
		ts := s.stream.tombstones[scope]
		if ts == nil {
			ts = map[string]tombstone{}
			s.stream.tombstones[scope] = ts
		}
		for id, t := range ts {
			if now.After(t.until) {
				delete(ts, id)
			}
		}
		ts[tombstoneID] = tombstone{ev: ev, until: now.Add(ttl)}
	}
	s.stream.log.Append(scope, ev)
}

// accountEvents emits what changed for streams between two versions of an
// account (either may be nil). The store's lock is held.
func (s *Store) accountEvents(old, a *Account) {
	if old != nil && (a == nil || old.UID != a.UID || old.Policy != a.Policy) {
		policy := types.NamespacedName{Namespace: old.Key.Namespace, Name: old.Policy}
		s.emit(scopeOf(policy), revstream.Event{Type: serverapi.EventAccountDeleted, AccountUID: string(old.UID), ClientID: old.ClientID},
			"account:"+string(old.UID), s.tombstoneTTL(policy))
		old = nil
	}
	if a == nil {
		return
	}
	if old == nil && !a.Disabled && a.RevokeTokensIssuedBefore.IsZero() {
		return
	}
	if old != nil && old.Disabled == a.Disabled && old.RevokeTokensIssuedBefore.Equal(a.RevokeTokensIssuedBefore) {
		return
	}
	s.stream.log.Append(scopeOf(types.NamespacedName{Namespace: a.Key.Namespace, Name: a.Policy}), accountEvent(a))
}

func accountEvent(a *Account) revstream.Event {
	ev := revstream.Event{Type: serverapi.EventAccount, AccountUID: string(a.UID), ClientID: a.ClientID, Disabled: a.Disabled}
	if !a.RevokeTokensIssuedBefore.IsZero() {
		ev.RevokedBefore = a.RevokeTokensIssuedBefore.Unix()
	}
	return ev
}

// keyEvents emits a key_revoked event for each kid old published and p (nil
// when the policy is gone) does not. The store's lock is held.
func (s *Store) keyEvents(key types.NamespacedName, old, p *Policy) {
	if old == nil {
		return
	}
	ttl := old.TTL + old.Skew
	for kid := range old.Published {
		if p != nil {
			if _, ok := p.Published[kid]; ok {
				continue
			}
		}
		s.emit(scopeOf(key), revstream.Event{Type: serverapi.EventKeyRevoked, KeyID: kid}, "key:"+kid, ttl)
	}
}

// revocationEvents emits token_revoked for new or extended revocations.
// The store's lock is held.
func (s *Store) revocationEvent(key string, exp time.Time) {
	s.stream.log.Append(allScopes, revstream.Event{Type: serverapi.EventTokenRevoked, RevocationKey: key, Expiry: exp.Unix()})
}

// snapshot is a scope's state for a stream that cannot resume: every
// revocation, the accounts of the policy that are disabled or refuse older
// tokens, and the recent removals of accounts and keys.
func (s *Store) snapshot(policy types.NamespacedName) []revstream.Event {
	s.mu.RLock()
	defer s.mu.RUnlock()
	now := s.clock.Now()
	var out []revstream.Event
	for key, exp := range s.revoked {
		out = append(out, revstream.Event{Type: serverapi.EventTokenRevoked, RevocationKey: key, Expiry: exp.Unix()})
	}
	for _, a := range s.accounts {
		if a.Key.Namespace == policy.Namespace && a.Policy == policy.Name && (a.Disabled || !a.RevokeTokensIssuedBefore.IsZero()) {
			out = append(out, accountEvent(a))
		}
	}
	scope := scopeOf(policy)
	for _, t := range s.stream.tombstones[scope] {
		if !now.After(t.until) {
			out = append(out, t.ev)
		}
	}
	return out
}

// handleRevocations serves the revocation stream of the policy whose valid
// access token the caller presents (serverapi.PathRevocations).
func (s *Server) handleRevocations(w http.ResponseWriter, r *http.Request) {
	raw, ok := bearer(r)
	if !ok {
		w.Header().Set("WWW-Authenticate", `Bearer realm="authframework"`)
		s.writeAPIError(w, r, http.StatusUnauthorized, "missing_token", "the revocation stream takes an access token of the policy it covers", nil, 0)
		return
	}
	// The flood guard of /validate: a source sending bad tokens stops
	// costing signature checks.
	claims, p, ref, handled := s.verifyFrom(w, r, raw)
	if handled {
		return
	}
	if ref == nil {
		_, ref = s.authorize(claims, p, requirements{})
	}
	if ref != nil {
		w.Header().Set("WWW-Authenticate", `Bearer realm="authframework", error="invalid_token"`)
		s.writeAPIError(w, r, http.StatusUnauthorized, ref.code, ref.msg, nil, 0)
		return
	}
	release, refusal := s.streamSlots.take(claims.ClientID, s.opts.MaxStreams)
	if refusal != "" {
		s.writeAPIError(w, r, http.StatusServiceUnavailable, "too_many_streams", refusal, nil, 5*time.Second)
		return
	}
	defer release()
	s.metrics.streams.Inc()
	defer s.metrics.streams.Dec()
	s.opts.Audit.Info("revocation stream opened", "event", "revocation_stream", "clientID", claims.ClientID, "policy", p.Key.String(),
		"requestID", requestID(r))
	revstream.Stream{Log: s.store.stream.log, Scope: scopeOf(p.Key), AlsoScope: allScopes, Policy: p.Key.String(), Issuer: p.Issuer,
		Snapshot:      func() []revstream.Event { return s.store.snapshot(p.Key) },
		SnapshotSlots: s.snapshots,
		Until:         claims.Expiry.Time(), Clock: s.streamClock(), Heartbeat: s.opts.StreamHeartbeat}.Serve(w, r)
}

// streamClock is the server's clock when it has timers (clock.RealClock and
// the fake clocks of tests do), else the real clock.
func (s *Server) streamClock() clock.WithTicker {
	if c, ok := s.opts.Clock.(clock.WithTicker); ok {
		return c
	}
	return clock.RealClock{}
}

// streamSlots counts open revocation streams, in all and per client id.
type streamSlots struct {
	mu        sync.Mutex
	total     int
	perClient map[string]int
}

// take reserves a stream for clientID, or says why not.
func (c *streamSlots) take(clientID string, limit int) (release func(), refusal string) {
	if limit <= 0 {
		limit = DefaultMaxStreams
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case c.total >= limit:
		return nil, "this server has as many revocation streams open as it serves; retry later or at another replica"
	case c.perClient[clientID] >= MaxStreamsPerClient:
		return nil, "this client has as many revocation streams open as one client may; close one first"
	}
	if c.perClient == nil {
		c.perClient = map[string]int{}
	}
	c.total++
	c.perClient[clientID]++
	return func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		c.total--
		if c.perClient[clientID]--; c.perClient[clientID] == 0 {
			delete(c.perClient, clientID)
		}
	}, ""
}
