package credentials

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"fmt"
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
	// Earlier secrets (kept after a loss during another's grace) work each
	// until its own end.
	e := NewVerifier(Hash("new"), []Grace{{Hash("lost"), t0.Add(2 * time.Hour)}, {Hash("old"), t0.Add(time.Hour)}})
	if e.Previous != Hash("lost") || len(e.Earlier) != 1 {
		t.Fatalf("the secret that works longest is Previous: %+v", e)
	}
	for _, c := range []struct {
		secret string
		at     time.Time
		want   bool
	}{
		{"old", t0.Add(time.Hour - time.Second), true},
		{"old", t0.Add(time.Hour), false},
		{"lost", t0.Add(time.Hour), true},
		{"lost", t0.Add(2 * time.Hour), false},
		{"new", t0.Add(2 * time.Hour), true},
	} {
		if got := e.Check(c.secret, c.at); got != c.want {
			t.Errorf("earlier: Check(%q, %v) = %v, want %v", c.secret, c.at, got, c.want)
		}
	}
}

func TestNewVerifierBoundsAndOrders(t *testing.T) {
	var gs []Grace
	for i := range MaxGrace + 3 {
		gs = append(gs, Grace{Hash: Hash(fmt.Sprint(i)), ExpiresAt: t0.Add(time.Duration(i) * time.Hour)})
	}
	gs = append(gs, Grace{Hash: Hash("cur"), ExpiresAt: t0.Add(99 * time.Hour)}, Grace{Hash: Hash("6"), ExpiresAt: t0}, Grace{})
	v := NewVerifier(Hash("cur"), gs)
	got := v.Graces()
	if len(got) != MaxGrace {
		t.Fatalf("kept %d earlier secrets, want at most %d: %+v", len(got), MaxGrace, got)
	}
	for i, g := range got {
		if want := Hash(fmt.Sprint(MaxGrace + 2 - i)); g.Hash != want {
			t.Errorf("earlier[%d] = %s, want the one ending latest first, without the current hash or duplicates", i, g.Hash[:8])
		}
	}
	if got[0].ExpiresAt != t0.Add(time.Duration(MaxGrace+2)*time.Hour) {
		t.Errorf("a duplicate keeps its latest end: %v", got[0].ExpiresAt)
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
