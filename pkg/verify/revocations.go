package verify

import (
	"strings"
	"time"

	"github.com/authframework/authframework/pkg/serverapi"
)

// revocationSet is what the revocation stream has said: revoked tokens (by
// serverapi.RevocationKey) until their expiry, accounts disabled, deleted or refusing tokens issued
// before a time, and revoked signing keys. It is pure: events in, decisions
// out.
type revocationSet struct {
	tokens   map[string]time.Time // serverapi.RevocationKey -> exp
	accounts map[string]accountRevocation
	keys     map[string]struct{}
}

// accountRevocation is what an account's events said; the zero value is an
// account with nothing against it.
type accountRevocation struct {
	disabled      bool
	deleted       bool
	revokedBefore time.Time
}

func newRevocationSet() *revocationSet {
	return &revocationSet{tokens: map[string]time.Time{}, accounts: map[string]accountRevocation{}, keys: map[string]struct{}{}}
}

// apply records one state event; other types (snapshot, synced, bookmark,
// and types this version does not know) change nothing here.
func (s *revocationSet) apply(ev serverapi.RevocationEvent) {
	switch ev.Type {
	case serverapi.EventTokenRevoked:
		if ev.RevocationKey != "" {
			s.tokens[ev.RevocationKey] = time.Unix(ev.Expiry, 0)
		}
	case serverapi.EventAccount:
		if ev.AccountUID == "" {
			return
		}
		a := accountRevocation{disabled: ev.Disabled}
		if ev.RevokedBefore > 0 {
			a.revokedBefore = time.Unix(ev.RevokedBefore, 0)
		}
		if a == (accountRevocation{}) {
			delete(s.accounts, ev.AccountUID)
		} else {
			s.accounts[ev.AccountUID] = a
		}
	case serverapi.EventAccountDeleted:
		if ev.AccountUID != "" {
			s.accounts[ev.AccountUID] = accountRevocation{deleted: true}
		}
	case serverapi.EventKeyRevoked:
		if ev.KeyID != "" {
			s.keys[ev.KeyID] = struct{}{}
		}
	}
}

// refuse is the one decision about a verified token whose
// serverapi.RevocationKey is revocationKey: the refusal when the
// revocations say it may no longer be used, nil otherwise.
func (s *revocationSet) refuse(id *Identity, revocationKey string) *Error {
	if _, ok := s.keys[id.KeyID]; ok {
		return refusal(CodeUnknownKey, "the token's signing key is unknown or revoked")
	}
	if _, ok := s.tokens[revocationKey]; ok {
		return refusal(CodeTokenRevoked, "the token has been revoked")
	}
	a, ok := s.accounts[id.AccountUID]
	switch {
	case !ok:
		return nil
	case a.deleted:
		return refusal(CodeUnknownClient, "the token's client no longer exists")
	case a.disabled:
		return refusal(CodeClientDisabled, "the token's client is disabled")
	case !a.revokedBefore.IsZero() && id.IssuedAt.Before(a.revokedBefore):
		return refusal(CodeTokenRevoked, "the token was issued before the client's tokens were revoked")
	}
	return nil
}

// prune forgets revoked tokens that expired before cutoff: a verifier
// refuses them by their exp anyway.
func (s *revocationSet) prune(cutoff time.Time) {
	for jti, exp := range s.tokens {
		if exp.Before(cutoff) {
			delete(s.tokens, jti)
		}
	}
}

// streamState is a subscriber's view of the stream: the set it enforces,
// the set a snapshot is building (nil outside one), and where it is.
type streamState struct {
	current *revocationSet
	// building is the state a snapshot is replaying. Until EventSynced the
	// current set stays in force, and gets every event too, so nothing
	// revoked is forgotten halfway.
	building *revocationSet
	// synced is true once the stream delivered a full state (EventSynced).
	synced bool
	cursor string
	// policy is the stream's TokenPolicy, "namespace/name", which scopes
	// revocation keys.
	policy string
}

func newStreamState() *streamState { return &streamState{current: newRevocationSet()} }

// handle applies one event of the stream (serverapi's framing): a snapshot
// starts a new set, synced puts it in force, state events change both sets,
// every event moves the cursor.
func (st *streamState) handle(ev serverapi.RevocationEvent) {
	switch ev.Type {
	case serverapi.EventSnapshot:
		st.building = newRevocationSet()
	case serverapi.EventSynced:
		if st.building != nil {
			st.current, st.building = st.building, nil
		}
		st.synced = true
	default:
		st.current.apply(ev)
		if st.building != nil {
			st.building.apply(ev)
		}
	}
	if ev.Cursor != "" {
		st.cursor = ev.Cursor
	}
	if ev.Policy != "" {
		st.policy = ev.Policy
	}
}

// revocationKey is serverapi.RevocationKey of a token of policy
// ("namespace/name") with id jti; "" while the policy is not known.
func revocationKey(policy, jti string) string {
	ns, name, ok := strings.Cut(policy, "/")
	if !ok {
		return ""
	}
	return serverapi.RevocationKey(ns, name, jti)
}
