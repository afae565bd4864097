package credentials

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"testing"
	"time"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func TestNewSecretHas256Bits(t *testing.T) {
	s, err := NewSecret(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil || len(b) != 32 {
		t.Fatalf("secret %d bytes, %v", len(b), err)
	}
	other, _ := NewSecret(rand.Reader)
	if other == s {
		t.Error("two secrets are equal")
	}
	if _, err := NewSecret(bytes.NewReader(make([]byte, 10))); err == nil {
		t.Error("short randomness accepted")
	}
}

func TestVerifierCheck(t *testing.T) {
	v := Verifier{Current: Hash("new"), Previous: Hash("old"), PreviousExpiresAt: t0.Add(time.Hour)}
	cases := []struct {
		secret string
		at     time.Time
		want   bool
	}{
		{"new", t0, true},
		{"old", t0, true},
		{"old", t0.Add(time.Hour - time.Second), true},
		{"old", t0.Add(time.Hour), false},
		{"new", t0.Add(48 * time.Hour), true},
		{"other", t0, false},
		{"", t0, false},
		{Hash("new"), t0, false}, // the hash itself is not a credential
	}
	for _, c := range cases {
		if got := v.Check(c.secret, c.at); got != c.want {
			t.Errorf("Check(%q, %v) = %v, want %v", c.secret, c.at, got, c.want)
		}
	}
	if (Verifier{Current: Hash("a")}).Check("", t0) {
		t.Error("empty secret matched an empty previous hash")
	}
}

// TestSecretRotationAtEveryInstant simulates a year of minutes-to-days steps
// with a fake clock: at every instant at least one secret works; during the
// grace both work; after it only the new one.
func TestSecretRotationAtEveryInstant(t *testing.T) {
	period, grace := 72*time.Hour, 6*time.Hour
	secrets := map[string]string{} // name -> secret
	var v Verifier
	var st SecretState
	now := t0
	var current, previous string
	n := 0
	for now.Before(t0.AddDate(1, 0, 0)) {
		d := SecretPlan(SecretInput{State: st, Period: period, Grace: grace, Now: now, Rotate: now.Equal(t0.Add(100 * time.Hour))})
		if d.Rotate {
			n++
			previous, current = current, string(rune('a'+n%26))+now.String()
			secrets[current] = current
			v = Verifier{Current: Hash(current)}
			if previous != "" && !d.State.PreviousUntil.IsZero() {
				v.Previous, v.PreviousExpiresAt = Hash(previous), d.State.PreviousUntil
			}
		}
		if d.DropPrevious {
			v.Previous, v.PreviousExpiresAt = "", time.Time{}
		}
		st = d.State
		if !v.Check(current, now) {
			t.Fatalf("%v: the current secret does not work", now)
		}
		inGrace := !st.PreviousUntil.IsZero() && now.Before(st.PreviousUntil)
		if previous != "" && v.Check(previous, now) != inGrace {
			t.Fatalf("%v: previous secret works=%v, in grace=%v", now, v.Check(previous, now), inGrace)
		}
		if !d.Next.After(now) {
			t.Fatalf("%v: next %v not in the future", now, d.Next)
		}
		// Visit the next change, the second before it, and hourly instants.
		next := d.Next.Add(-time.Second)
		if !next.After(now) {
			next = d.Next
		}
		if h := now.Add(time.Hour); h.Before(next) {
			next = h
		}
		now = next
	}
	if n < 120 {
		t.Errorf("only %d rotations in a year with a 72h period", n)
	}
}

func TestSecretPlanCases(t *testing.T) {
	period, grace := 90*24*time.Hour, 24*time.Hour
	first := SecretPlan(SecretInput{Period: period, Grace: grace, Now: t0})
	if !first.Rotate || !first.State.PreviousUntil.IsZero() || !first.Next.Equal(t0.Add(period)) {
		t.Fatalf("first secret: %+v", first)
	}
	// Annotation: rotate now; the old secret works for the grace.
	at := t0.Add(10 * 24 * time.Hour)
	rot := SecretPlan(SecretInput{State: first.State, Period: period, Grace: grace, Now: at, Rotate: true})
	if !rot.Rotate || !rot.State.PreviousUntil.Equal(at.Add(grace)) || !rot.Next.Equal(at.Add(grace)) {
		t.Fatalf("rotate now: %+v", rot)
	}
	// Compromise: the previous secret is revoked before its grace ends.
	rev := SecretPlan(SecretInput{State: rot.State, Period: period, Grace: grace, Now: at.Add(time.Hour), RevokePrevious: true})
	if rev.Rotate || !rev.DropPrevious || !rev.State.PreviousUntil.IsZero() || !rev.Next.Equal(at.Add(period)) {
		t.Fatalf("revoke previous: %+v", rev)
	}
	// No grace: the old secret stops at once.
	nog := SecretPlan(SecretInput{State: first.State, Period: period, Now: at, Rotate: true})
	if !nog.Rotate || !nog.State.PreviousUntil.IsZero() {
		t.Fatalf("zero grace: %+v", nog)
	}
	// Nothing due: nothing changes.
	idle := SecretPlan(SecretInput{State: first.State, Period: period, Grace: grace, Now: t0.Add(time.Hour)})
	if idle.Rotate || idle.DropPrevious || idle.State != first.State {
		t.Fatalf("idle: %+v", idle)
	}
}

func TestTokenRefresh(t *testing.T) {
	iat, exp := t0, t0.Add(15*time.Minute)
	if got := RefreshAt(iat, exp); !got.Equal(t0.Add(12 * time.Minute)) {
		t.Errorf("RefreshAt = %v, want 80%% of 15m", got)
	}
	if got := RefreshAt(iat, iat.Add(2*time.Second)); !got.Before(iat.Add(2 * time.Second)) {
		t.Errorf("a very short token must be refreshed before it expires: %v", got)
	}
	refresh := RefreshAt(iat, exp)
	base := TokenInput{Has: true, RefreshAt: refresh, KeyPublished: true, ClaimsCurrent: true}
	cases := []struct {
		name string
		mod  func(*TokenInput)
		want bool
	}{
		{"fresh", func(in *TokenInput) { in.Now = t0.Add(time.Minute) }, false},
		{"second before refresh", func(in *TokenInput) { in.Now = refresh.Add(-time.Second) }, false},
		{"at refresh", func(in *TokenInput) { in.Now = refresh }, true},
		{"none yet", func(in *TokenInput) { in.Has = false; in.Now = t0 }, true},
		{"key revoked", func(in *TokenInput) { in.KeyPublished = false; in.Now = t0 }, true},
		{"roles changed", func(in *TokenInput) { in.ClaimsCurrent = false; in.Now = t0 }, true},
	}
	for _, c := range cases {
		in := base
		c.mod(&in)
		if got := TokenPlan(in); got != c.want {
			t.Errorf("%s: TokenPlan = %v, want %v", c.name, got, c.want)
		}
	}
}
