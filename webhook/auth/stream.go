package auth

import (
	"crypto/rand"
	"encoding/hex"
	"net/http"
	"time"

	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/clock"

	"github.com/authframework/authframework/internal/revstream"
	"github.com/authframework/authframework/pkg/serverapi"
)

// DefaultMaxStreams bounds the revocation streams one server holds open:
// each costs a goroutine, two timers and a connection.
const DefaultMaxStreams = 4096

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
// The store's lock is held.
func (s *Store) emit(scope string, ev revstream.Event, tombstoneID string, ttl time.Duration) {
	if tombstoneID != "" {
		if s.stream.tombstones[scope] == nil {
			s.stream.tombstones[scope] = map[string]tombstone{}
		}
		s.stream.tombstones[scope][tombstoneID] = tombstone{ev: ev, until: s.clock.Now().Add(ttl)}
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
	s.mu.Lock()
	defer s.mu.Unlock()
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
	for id, t := range s.stream.tombstones[scope] {
		if now.After(t.until) {
			delete(s.stream.tombstones[scope], id)
			continue
		}
		out = append(out, t.ev)
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
	claims, p, ref := s.verify(raw)
	if ref == nil {
		_, ref = s.authorize(claims, p, requirements{})
	}
	if ref != nil {
		w.Header().Set("WWW-Authenticate", `Bearer realm="authframework", error="invalid_token"`)
		s.writeAPIError(w, r, http.StatusUnauthorized, ref.code, ref.msg, nil, 0)
		return
	}
	limit := int64(s.opts.MaxStreams)
	if limit <= 0 {
		limit = DefaultMaxStreams
	}
	if s.streams.Add(1) > limit {
		s.streams.Add(-1)
		s.writeAPIError(w, r, http.StatusServiceUnavailable, "too_many_streams",
			"this server has as many revocation streams open as it serves; retry later or at another replica", nil, 5*time.Second)
		return
	}
	defer s.streams.Add(-1)
	s.metrics.streams.Inc()
	defer s.metrics.streams.Dec()
	s.opts.Audit.Info("revocation stream opened", "event", "revocation_stream", "clientID", claims.ClientID, "policy", p.Key.String(),
		"requestID", requestID(r))
	revstream.Stream{Log: s.store.stream.log, Scope: scopeOf(p.Key), AlsoScope: allScopes, Policy: p.Key.String(), Issuer: p.Issuer,
		Snapshot: func() []revstream.Event { return s.store.snapshot(p.Key) },
		Until:    claims.Expiry.Time(), Clock: s.streamClock(), Heartbeat: s.opts.StreamHeartbeat}.Serve(w, r)
}

// streamClock is the server's clock when it has timers (clock.RealClock and
// the fake clocks of tests do), else the real clock.
func (s *Server) streamClock() clock.WithTicker {
	if c, ok := s.opts.Clock.(clock.WithTicker); ok {
		return c
	}
	return clock.RealClock{}
}
