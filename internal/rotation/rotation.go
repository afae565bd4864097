// Package rotation decides the lifecycle of a policy's signing keys as a pure
// function of the policy, the current keys and the time.
//
// A key is Published (in the JWKS, not signing) for the pre-publish lead, then
// Active (it signs), then Retired (still published, no longer signing) until
// every token it signed has expired: retirement + the longest token lifetime +
// clock skew. Then it is removed. Exactly one key is Active whenever any key
// exists. A Revoked key is no longer published; it stays listed until its
// tokens would have expired so the revocation is visible.
package rotation

import (
	"slices"
	"time"
)

// State is where a key is in its lifecycle.
type State string

// The key states.
const (
	Published State = "Published"
	Active    State = "Active"
	Retired   State = "Retired"
	Revoked   State = "Revoked"
)

// Key is one key's schedule. Zero times are unset.
type Key struct {
	ID          string
	Algorithm   string
	State       State
	CreatedAt   time.Time
	ActivatesAt time.Time
	RetiresAt   time.Time
	RemoveAfter time.Time
}

// Policy is what of a TokenPolicy the schedule depends on.
type Policy struct {
	Algorithm  string
	Period     time.Duration
	PrePublish time.Duration
	// MaxTokenTTL is the longest lifetime of a token signed under the policy.
	MaxTokenTTL time.Duration
	ClockSkew   time.Duration
}

// Spare is a freshly generated key the caller offers for Next to use when the
// schedule needs a new key.
type Spare struct {
	ID        string
	Algorithm string
}

// Input is everything Next decides from.
type Input struct {
	Policy Policy
	Keys   []Key
	Now    time.Time
	// RotateNow begins a rotation now: a new key is published at once and
	// becomes active after the pre-publish lead (at once if none is active).
	RotateNow bool
	// Revoke lists key ids to revoke now.
	Revoke []string
	// Spare, when set, is used if a new key is needed.
	Spare *Spare
}

// Reason says why a key changed.
type Reason string

// The reasons of Events.
const (
	KeyGenerated       Reason = "KeyGenerated"
	KeyActivated       Reason = "KeyActivated"
	KeyRetired         Reason = "KeyRetired"
	KeyRemoved         Reason = "KeyRemoved"
	KeyRevoked         Reason = "KeyRevoked"
	RotationRequested  Reason = "RotationRequested"
	AlgorithmChanged   Reason = "AlgorithmChanged"
	PendingKeyReplaced Reason = "PendingKeyReplaced"
)

// Event is one change Next made, for events and logs.
type Event struct {
	Reason Reason
	KeyID  string
}

// Result is the next key list and when it must next be looked at.
type Result struct {
	// NeedKey is set, and nothing else, when a new key of this algorithm is
	// needed and Input.Spare does not provide one: generate it and call Next
	// again with it as the spare.
	NeedKey string
	// Keys is the next key list, newest first.
	Keys []Key
	// UsedSpare reports that Keys contains the spare.
	UsedSpare bool
	// Next is the earliest time at which the schedule changes again; always
	// after Now. Zero when there are no keys.
	Next   time.Time
	Events []Event
}

// Next applies every transition due at in.Now and returns the resulting keys.
// It is deterministic: the same input gives the same result.
func Next(in Input) Result {
	now := in.Now.Truncate(time.Second)
	p := in.Policy
	// Status stores whole seconds; rounding durations up keeps every derived
	// time whole and never ends a key's publication before its tokens expire.
	p.Period, p.PrePublish = ceilSecond(p.Period), ceilSecond(p.PrePublish)
	p.MaxTokenTTL, p.ClockSkew = ceilSecond(p.MaxTokenTTL), ceilSecond(p.ClockSkew)
	s := &step{now: now, policy: p, spare: in.Spare}
	s.keys = make([]Key, len(in.Keys))
	copy(s.keys, in.Keys)

	s.revoke(in.Revoke)
	s.removeExpired()

	// The schedule converges in a few passes: activating a pending key can
	// make a new pending key due, and so on. Bounded for safety.
	rotate := in.RotateNow
	for range 4 {
		changed := s.activateDue()
		if s.active() < 0 {
			if !s.activateNewestPending() && !s.addKey(now, now, KeyGenerated) {
				return Result{NeedKey: p.Algorithm}
			}
			changed = true
		}
		if rotate {
			rotate = false
			if !s.beginRotation(RotationRequested) {
				return Result{NeedKey: p.Algorithm}
			}
			changed = true
		}
		if s.algorithmChanged() {
			if !s.beginRotation(AlgorithmChanged) {
				return Result{NeedKey: p.Algorithm}
			}
			changed = true
		}
		ok, scheduled := s.schedule()
		if !ok {
			return Result{NeedKey: p.Algorithm}
		}
		if !changed && !scheduled {
			break
		}
	}

	slices.SortStableFunc(s.keys, func(a, b Key) int { return b.CreatedAt.Compare(a.CreatedAt) })
	return Result{Keys: s.keys, UsedSpare: s.usedSpare, Next: s.nextTransition(), Events: s.events}
}

type step struct {
	now       time.Time
	policy    Policy
	keys      []Key
	spare     *Spare
	usedSpare bool
	events    []Event
}

func (s *step) emit(r Reason, id string) { s.events = append(s.events, Event{Reason: r, KeyID: id}) }

// tokensOutlive is when every token signed by a key that stops signing at t
// has expired.
func (s *step) tokensOutlive(t time.Time) time.Time {
	return t.Add(s.policy.MaxTokenTTL + s.policy.ClockSkew)
}

func (s *step) active() int {
	return slices.IndexFunc(s.keys, func(k Key) bool { return k.State == Active })
}

func (s *step) pending() int {
	return slices.IndexFunc(s.keys, func(k Key) bool { return k.State == Published })
}

// algorithmChanged reports that the policy's algorithm is neither the active
// key's nor that of a pending key about to take over, or that a pending key
// has an algorithm the policy no longer uses.
func (s *step) algorithmChanged() bool {
	alg := s.policy.Algorithm
	if p := s.pending(); p >= 0 {
		return s.keys[p].Algorithm != alg
	}
	return s.keys[s.active()].Algorithm != alg
}

func (s *step) revoke(ids []string) {
	for i := range s.keys {
		k := &s.keys[i]
		if k.State == Revoked || !slices.Contains(ids, k.ID) {
			continue
		}
		if k.State == Active || k.State == Published {
			k.RetiresAt = s.now
		}
		k.RemoveAfter = s.tokensOutlive(s.now)
		k.State = Revoked
		s.emit(KeyRevoked, k.ID)
	}
}

func (s *step) removeExpired() {
	s.keys = slices.DeleteFunc(s.keys, func(k Key) bool {
		gone := (k.State == Retired || k.State == Revoked) && !k.RemoveAfter.After(s.now)
		if gone {
			s.emit(KeyRemoved, k.ID)
		}
		return gone
	})
}

// activateDue activates the pending key whose time has come and retires the
// active one.
func (s *step) activateDue() bool {
	p := s.pending()
	if p < 0 || s.keys[p].ActivatesAt.After(s.now) {
		return false
	}
	s.retireActive()
	s.keys[p].State = Active
	s.keys[p].RetiresAt = s.keys[p].ActivatesAt.Add(s.policy.Period)
	s.emit(KeyActivated, s.keys[p].ID)
	return true
}

// activateNewestPending makes a pending key active now when none is (the
// active key was revoked).
func (s *step) activateNewestPending() bool {
	p := s.pending()
	if p < 0 {
		return false
	}
	s.keys[p].State = Active
	s.keys[p].ActivatesAt = s.now
	s.keys[p].RetiresAt = s.now.Add(s.policy.Period)
	s.emit(KeyActivated, s.keys[p].ID)
	return true
}

func (s *step) retireActive() {
	a := s.active()
	if a < 0 {
		return
	}
	s.keys[a].State = Retired
	s.keys[a].RetiresAt = s.now
	s.keys[a].RemoveAfter = s.tokensOutlive(s.now)
	s.emit(KeyRetired, s.keys[a].ID)
}

// addKey adds the spare as a key that activates at activatesAt (Active at
// once when that is now and no key is active). It reports false when there is
// no suitable spare.
func (s *step) addKey(createdAt, activatesAt time.Time, why Reason) bool {
	if s.usedSpare || s.spare == nil || s.spare.Algorithm != s.policy.Algorithm {
		return false
	}
	k := Key{ID: s.spare.ID, Algorithm: s.spare.Algorithm, State: Published, CreatedAt: createdAt, ActivatesAt: activatesAt}
	if !activatesAt.After(s.now) && s.active() < 0 {
		k.State = Active
		k.RetiresAt = activatesAt.Add(s.policy.Period)
	}
	s.keys = append(s.keys, k)
	s.usedSpare = true
	s.emit(why, k.ID)
	if k.State == Active {
		s.emit(KeyActivated, k.ID)
	}
	return true
}

// beginRotation publishes a new key now that activates after the pre-publish
// lead. A pending key of the policy's algorithm is kept and brought forward
// instead; one of another algorithm never signed anything and is replaced.
func (s *step) beginRotation(why Reason) bool {
	activatesAt := s.now.Add(s.policy.PrePublish)
	if p := s.pending(); p >= 0 {
		k := &s.keys[p]
		if k.Algorithm == s.policy.Algorithm {
			earliest := k.CreatedAt.Add(s.policy.PrePublish)
			if earliest.Before(k.ActivatesAt) {
				k.ActivatesAt = maxTime(earliest, s.now)
			}
			s.keys[s.active()].RetiresAt = k.ActivatesAt
			s.emit(why, k.ID)
			return true
		}
		if s.spare == nil || s.usedSpare || s.spare.Algorithm != s.policy.Algorithm {
			return false
		}
		s.emit(PendingKeyReplaced, k.ID)
		s.keys = slices.Delete(s.keys, p, p+1)
	}
	if !s.addKey(s.now, activatesAt, KeyGenerated) {
		return false
	}
	s.emit(why, s.spare.ID)
	s.keys[s.active()].RetiresAt = activatesAt
	return true
}

// schedule publishes the next key once the active key's end minus the
// pre-publish lead has come. It reports whether it could (false: a spare is
// needed) and whether it changed anything.
func (s *step) schedule() (ok, changed bool) {
	a := s.active()
	if s.pending() >= 0 {
		s.keys[a].RetiresAt = s.keys[s.pending()].ActivatesAt
		return true, false
	}
	end := s.keys[a].ActivatesAt.Add(s.policy.Period)
	s.keys[a].RetiresAt = end
	if s.now.Before(end.Add(-s.policy.PrePublish)) {
		return true, false
	}
	// Late (the controller was down, or the period was shortened): the new
	// key still gets its full pre-publish lead.
	activatesAt := maxTime(end, s.now.Add(s.policy.PrePublish))
	if !s.addKey(s.now, activatesAt, KeyGenerated) {
		return false, false
	}
	s.keys[a].RetiresAt = activatesAt
	return true, true
}

func (s *step) nextTransition() time.Time {
	var next time.Time
	consider := func(t time.Time) {
		if t.After(s.now) && (next.IsZero() || t.Before(next)) {
			next = t
		}
	}
	for _, k := range s.keys {
		switch k.State {
		case Published:
			consider(k.ActivatesAt)
		case Active:
			if s.pending() < 0 {
				consider(k.RetiresAt.Add(-s.policy.PrePublish))
			}
			consider(k.RetiresAt)
		case Retired, Revoked:
			consider(k.RemoveAfter)
		}
	}
	return next
}

// Publishes reports whether a key in this state belongs in the public JWKS.
func (st State) Publishes() bool { return st == Published || st == Active || st == Retired }

// ActiveKey returns the key that signs, if any.
func ActiveKey(keys []Key) (Key, bool) {
	i := slices.IndexFunc(keys, func(k Key) bool { return k.State == Active })
	if i < 0 {
		return Key{}, false
	}
	return keys[i], true
}

func ceilSecond(d time.Duration) time.Duration {
	if r := d % time.Second; r != 0 {
		return d - r + time.Second
	}
	return d
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}
