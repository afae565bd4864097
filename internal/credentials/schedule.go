package credentials

import "time"

// SecretState is what the controller knows of a client's secrets.
type SecretState struct {
	// CurrentSince is when the current secret was written; zero when there is
	// none yet.
	CurrentSince time.Time
	// PreviousUntil is when the previous secret stops working; zero when
	// there is none.
	PreviousUntil time.Time
}

// SecretInput is what SecretPlan decides from.
type SecretInput struct {
	State  SecretState
	Period time.Duration
	Grace  time.Duration
	Now    time.Time
	// Rotate writes a new secret now (the rotate annotation).
	Rotate bool
	// RevokePrevious ends the previous secret's grace now (compromise).
	RevokePrevious bool
}

// SecretDecision says what to write.
type SecretDecision struct {
	// Rotate: write a new current secret; the old current one becomes the
	// previous and works until State.PreviousUntil.
	Rotate bool
	// DropPrevious: forget the previous secret.
	DropPrevious bool
	// State after the decision.
	State SecretState
	// Next is when the plan changes again: the next rotation or the end of
	// the grace period, whichever is first. Always after Now.
	Next time.Time
}

// SecretPlan decides rotations of a client secret: a new secret every
// Period, the previous one working for Grace after it, so that at every
// instant at least one secret works and during the grace both do. A rotation
// during another's grace retires the oldest secret at once: at most two
// secrets are ever valid.
func SecretPlan(in SecretInput) SecretDecision {
	now := in.Now.Truncate(time.Second)
	st := in.State
	d := SecretDecision{}
	due := st.CurrentSince.IsZero() || !now.Before(st.CurrentSince.Add(in.Period)) || in.Rotate
	if due {
		d.Rotate = true
		if !st.CurrentSince.IsZero() && in.Grace > 0 {
			st.PreviousUntil = now.Add(in.Grace)
		} else {
			st.PreviousUntil = time.Time{}
		}
		st.CurrentSince = now
	}
	if !st.PreviousUntil.IsZero() && (in.RevokePrevious || !now.Before(st.PreviousUntil)) {
		d.DropPrevious = true
		st.PreviousUntil = time.Time{}
	}
	d.State = st
	d.Next = st.CurrentSince.Add(in.Period)
	if !st.PreviousUntil.IsZero() && st.PreviousUntil.Before(d.Next) {
		d.Next = st.PreviousUntil
	}
	if !d.Next.After(now) {
		d.Next = now.Add(time.Second)
	}
	return d
}

// RefreshFraction is the share of a token's lifetime after which the token
// Secret is re-minted, as kubelet does for projected service account tokens.
const RefreshFraction = 0.8

// RefreshAt is when a token issued at iat and expiring at exp is re-minted:
// at 80% of its lifetime, in whole seconds, and never later than one second
// before it expires.
func RefreshAt(iat, exp time.Time) time.Time {
	life := exp.Sub(iat)
	at := iat.Add(time.Duration(float64(life) * RefreshFraction)).Truncate(time.Second)
	if latest := exp.Add(-time.Second); at.After(latest) {
		at = latest
	}
	return at
}

// TokenInput is what TokenPlan decides from.
type TokenInput struct {
	// Has: a token exists in the Secret.
	Has       bool
	RefreshAt time.Time
	// KeyPublished: the key that signed it is still published (not revoked).
	KeyPublished bool
	// ClaimsCurrent: it carries the account's current claims (roles,
	// permissions, audience, extra claims).
	ClaimsCurrent bool
	Now           time.Time
}

// TokenPlan reports whether the token Secret must be re-minted now.
func TokenPlan(in TokenInput) bool {
	return !in.Has || !in.KeyPublished || !in.ClaimsCurrent || !in.Now.Before(in.RefreshAt)
}
