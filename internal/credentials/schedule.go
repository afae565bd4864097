package credentials

import (
	"slices"
	"time"
)

// SecretState is the client secret schedule kept in the account's status.
type SecretState struct {
	// CurrentSince is when the current secret was written; zero when there is
	// none yet (or the status was lost).
	CurrentSince time.Time
	// PreviousUntil is when the last earlier secret stops working; zero when
	// none works. Output only: each earlier secret's end is in the verifier.
	PreviousUntil time.Time
}

// SecretInput is what SecretPlan decides from: the schedule in status and
// what the two Secrets still hold.
type SecretInput struct {
	State SecretState
	// Delivered is Hash of the client secret in the credentials Secret; empty
	// when the Secret, its client_secret key or its value is missing.
	Delivered string
	// Verifier is the verifier Secret's content; nil when that Secret is
	// missing or cannot be decoded.
	Verifier *Verifier
	// Copy is the copy of the verifier kept on the credentials Secret; nil
	// when missing. Each of the two Secrets can rebuild the other.
	Copy   *Verifier
	Period time.Duration
	Grace  time.Duration
	Now    time.Time
	// Rotate writes a new secret now (the rotate annotation).
	Rotate bool
	// RevokePrevious ends every earlier secret's grace now (compromise).
	RevokePrevious bool
}

// Fault says which managed Secret was found lost or damaged.
type Fault string

const (
	// NoFault: both Secrets hold what was written.
	NoFault Fault = ""
	// SecretLost: the credentials Secret, or its client_secret, was lost (or
	// replaced by a value this controller did not write) while the hash of
	// the lost secret is still held. A new secret is written and the lost one
	// keeps working for the grace period, like a rotation; earlier secrets
	// keep their own grace.
	SecretLost Fault = "SecretLost"
	// SecretsLost: the plaintext and every hash of it were lost (both
	// Secrets): a new secret is written and the old one no longer works.
	SecretsLost Fault = "SecretsLost"
	// VerifierRestored: the verifier Secret was missing, damaged or edited
	// and is rebuilt from the credentials Secret; no secret is refused.
	VerifierRestored Fault = "VerifierRestored"
)

func (g Grace) same(o Grace) bool { return g.Hash == o.Hash && g.ExpiresAt.Equal(o.ExpiresAt) }

// SecretDecision says what to write.
type SecretDecision struct {
	// Rotate: write a new current secret.
	Rotate bool
	// Current is the hash of the current secret to keep when not rotating.
	Current string
	// Grace are the earlier secrets that keep working, each until its end.
	Grace []Grace
	// DropPrevious: an earlier secret's grace ended or was revoked.
	DropPrevious bool
	// Fault says what was found lost, if anything; LostUntil is when a lost
	// secret stops working (zero: at once, there is no grace period).
	Fault     Fault
	LostUntil time.Time
	// State after the decision.
	State SecretState
	// Next is when the plan changes again: the next rotation or the end of
	// a grace period, whichever is first. Always after Now.
	Next time.Time
}

// Verifier is the verifier to write; current is the hash of the secret that
// will be in the credentials Secret (the new one when Rotate).
func (d SecretDecision) Verifier(current string) Verifier {
	v := NewVerifier(current, d.Grace)
	v.Since = d.State.CurrentSince
	return v
}

// SecretPlan decides the client secret: a new secret every Period, the
// previous one working for Grace after it, so that at every instant at least
// one secret the workload holds works and during the grace both do. A
// rotation during another's grace retires the oldest secret at once.
//
// Loss is not a rotation without grace: when the plaintext is gone but its
// hash is held (in the verifier, or the copy on the credentials Secret), a
// new secret is written and the lost one keeps working for Grace, and no
// earlier secret's grace is cut short. A lost or damaged verifier is rebuilt
// from the credentials Secret. Only when both are gone is nothing left to
// keep working (SecretsLost).
func SecretPlan(in SecretInput) SecretDecision {
	now := in.Now.Truncate(time.Second)
	st := in.State
	d := SecretDecision{}

	// What the system still holds: earlier secrets from both copies, and the
	// current hash from the verifier, else from the copy.
	var graces []Grace
	held := ""
	if in.Verifier != nil {
		graces = append(graces, in.Verifier.Graces()...)
		held = in.Verifier.Current
	}
	if in.Copy != nil {
		graces = append(graces, in.Copy.Graces()...)
		if held == "" {
			held = in.Copy.Current
		}
	}
	verifierIntact := in.Verifier != nil && in.Verifier.Current == in.Delivered
	if verifierIntact && in.Copy != nil {
		for _, g := range in.Copy.Graces() {
			if now.Before(g.ExpiresAt) && !slices.ContainsFunc(in.Verifier.Graces(), g.same) {
				verifierIntact = false // an earlier secret is missing from the verifier
			}
		}
	}

	lost, replace := "", false
	switch {
	case in.Delivered == "" && held != "":
		d.Fault, lost, replace = SecretLost, held, true
	case in.Delivered == "" && (!st.CurrentSince.IsZero() || len(graces) > 0):
		d.Fault, replace = SecretsLost, true
	case in.Delivered == "":
		replace = true // the first secret
	case in.Delivered == held:
		d.Current = in.Delivered
		if !verifierIntact {
			d.Fault = VerifierRestored
		}
	case slices.ContainsFunc(graces, func(g Grace) bool { return g.Hash == in.Delivered }):
		// An interrupted rotation (the verifier holds a secret the workload
		// never received; the status was not updated, so the rotation is
		// still due and completes), or an earlier secret put back: the one
		// the workload holds is current, and the one the verifier held keeps
		// working for the grace in case some pod has it.
		d.Current = in.Delivered
		if in.Grace > 0 {
			graces = append(graces, Grace{Hash: held, ExpiresAt: now.Add(in.Grace)})
		}
	case (in.Copy != nil && in.Copy.Current == in.Delivered) || (in.Verifier == nil && in.Copy == nil):
		// The verifier was lost or edited: the credentials Secret says what
		// the workload holds.
		d.Current, d.Fault = in.Delivered, VerifierRestored
	default:
		// The plaintext is not one this controller wrote: the managed secret
		// was lost from the Secret. The value found there is never accepted.
		d.Fault, lost, replace = SecretLost, held, true
	}
	graces = slices.DeleteFunc(graces, func(g Grace) bool { return g.Hash == d.Current })
	// The time the kept secret was written, as the Secrets recorded it, when
	// the status does not say (lost, or its last write failed): a status
	// behind the Secrets must not rotate again and cut a grace short.
	for _, v := range []*Verifier{in.Verifier, in.Copy} {
		if d.Current != "" && v != nil && v.Current == d.Current && v.Since.After(st.CurrentSince) && !v.Since.After(now) {
			st.CurrentSince = v.Since
		}
	}

	due := replace || st.CurrentSince.IsZero() || !now.Before(st.CurrentSince.Add(in.Period)) || in.Rotate
	if due {
		d.Rotate = true
		switch {
		case replace && lost != "" && in.Grace > 0:
			d.LostUntil = now.Add(in.Grace)
			graces = append(graces, Grace{Hash: lost, ExpiresAt: d.LostUntil})
		case replace:
		case in.Grace > 0:
			graces = []Grace{{Hash: d.Current, ExpiresAt: now.Add(in.Grace)}}
		default:
			graces = nil
		}
		d.Current = ""
		st.CurrentSince = now
	}
	kept := graces[:0]
	for _, g := range graces {
		// No secret works longer than one grace period from now: the copy on
		// the credentials Secret is editable by whoever may update that
		// Secret, and an entry written there must not outlive the grace
		// (a hash added with a far expiry would be a backdoor).
		if limit := now.Add(in.Grace); g.ExpiresAt.After(limit) {
			g.ExpiresAt = limit
		}
		if in.RevokePrevious || !now.Before(g.ExpiresAt) {
			d.DropPrevious = true
			continue
		}
		kept = append(kept, g)
	}
	if !d.LostUntil.IsZero() && in.RevokePrevious {
		d.LostUntil = time.Time{}
	}
	d.Grace = NewVerifier(d.Current, kept).Graces()

	st.PreviousUntil = time.Time{}
	d.Next = st.CurrentSince.Add(in.Period)
	for _, g := range d.Grace {
		if g.ExpiresAt.After(st.PreviousUntil) {
			st.PreviousUntil = g.ExpiresAt
		}
		if g.ExpiresAt.Before(d.Next) {
			d.Next = g.ExpiresAt
		}
	}
	d.State = st
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
