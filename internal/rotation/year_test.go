package rotation_test

import (
	"crypto/rand"
	"errors"
	"fmt"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	clocktesting "k8s.io/utils/clock/testing"

	"github.com/authframework/authframework/internal/keys"
	"github.com/authframework/authframework/internal/rotation"
	"github.com/authframework/authframework/internal/token"
)

const issuer = "https://auth.example.com/issuers/sim/policy"

type issued struct {
	raw string
	kid string
	exp time.Time
	at  time.Time
}

// scenario changes the input on some days: a rotate request, a revocation,
// a new algorithm.
type scenario func(day int, in *rotation.Input, s *sim)

type sim struct {
	t        *testing.T
	material map[string]keys.Key
	keys     []rotation.Key
	tokens   []issued
	revoked  map[string]bool
	seq      int
}

// TestAYearOfRotations steps several policies through a year, visiting every
// day, every transition and the second before it. At every step exactly one
// key is active, and every token issued at any earlier step that has not
// expired verifies with the key set published at this step, unless its key
// was revoked, in which case it is refused.
func TestAYearOfRotations(t *testing.T) {
	cases := []struct {
		name   string
		policy rotation.Policy
		events scenario
	}{
		{"ES256 defaults", rotation.Policy{Algorithm: "ES256", Period: 720 * time.Hour, PrePublish: time.Hour, MaxTokenTTL: 15 * time.Minute, ClockSkew: 30 * time.Second}, nil},
		{"EdDSA every two days, day-long tokens", rotation.Policy{Algorithm: "EdDSA", Period: 48 * time.Hour, PrePublish: 10 * time.Minute, MaxTokenTTL: 24 * time.Hour, ClockSkew: 5 * time.Minute}, nil},
		{"RS256 monthly, no skew", rotation.Policy{Algorithm: "RS256", Period: 720 * time.Hour, PrePublish: 6 * time.Hour, MaxTokenTTL: time.Hour}, nil},
		{"ES384 weekly with requests, revocations and an algorithm change", rotation.Policy{Algorithm: "ES384", Period: 168 * time.Hour, PrePublish: 2 * time.Hour, MaxTokenTTL: 12 * time.Hour, ClockSkew: time.Minute},
			func(day int, in *rotation.Input, s *sim) {
				switch {
				case day%45 == 10:
					in.RotateNow = true
				case day == 100:
					in.Policy.Algorithm = "ES256"
				case day%60 == 30:
					// Compromise: revoke whichever key is active.
					if a, ok := rotation.ActiveKey(s.keys); ok {
						in.Revoke = append(in.Revoke, a.ID)
						s.revoked[a.ID] = true
					}
				}
			}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := &sim{t: t, material: map[string]keys.Key{}, revoked: map[string]bool{}}
			s.run(tc.policy, tc.events)
		})
	}
}

func (s *sim) run(policy rotation.Policy, events scenario) {
	t := s.t
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	end := start.AddDate(1, 0, 0)
	now := start
	var revokes []string
	steps, verified := 0, 0
	for now.Before(end) {
		day := int(now.Sub(start) / (24 * time.Hour))
		in := rotation.Input{Policy: policy, Keys: s.keys, Now: now, Revoke: revokes}
		if events != nil && now.Equal(start.AddDate(0, 0, day)) {
			events(day, &in, s)
			policy = in.Policy
			revokes = in.Revoke
		}
		r := s.next(in)
		s.keys = r.Keys
		steps++

		s.checkOneActive(now)
		if !r.Next.After(now) {
			t.Fatalf("%v: Next %v is not in the future", now, r.Next)
		}
		verified += s.verifyAll(now, policy)
		s.issue(now, policy)

		// Visit the next day, the next transition, and the second before it.
		candidates := []time.Time{start.AddDate(0, 0, day+1), r.Next, r.Next.Add(-time.Second)}
		next := end
		for _, c := range candidates {
			if c.After(now) && c.Before(next) {
				next = c
			}
		}
		now = next
	}
	t.Logf("%d steps, %d token verifications, %d keys generated", steps, verified, len(s.material))
	if steps < 365 {
		t.Errorf("only %d steps in a year", steps)
	}
}

func (s *sim) next(in rotation.Input) rotation.Result {
	r := rotation.Next(in)
	if r.NeedKey == "" {
		return r
	}
	k, err := keys.Generate(jose.SignatureAlgorithm(r.NeedKey), 0, rand.Reader)
	if err != nil {
		s.t.Fatal(err)
	}
	s.material[k.ID] = k
	in.Spare = &rotation.Spare{ID: k.ID, Algorithm: r.NeedKey}
	r = rotation.Next(in)
	if r.NeedKey != "" {
		s.t.Fatalf("%v: still needs a key", in.Now)
	}
	return r
}

func (s *sim) checkOneActive(now time.Time) {
	active := 0
	for _, k := range s.keys {
		if k.State == rotation.Active {
			active++
		}
		for _, tm := range []time.Time{k.CreatedAt, k.ActivatesAt, k.RetiresAt, k.RemoveAfter} {
			if tm.Nanosecond() != 0 {
				s.t.Fatalf("%v: key %s has a time that is not whole seconds: %v", now, k.ID, tm)
			}
		}
	}
	if active != 1 {
		s.t.Fatalf("%v: %d active keys, want exactly 1: %+v", now, active, s.keys)
	}
}

func (s *sim) issue(now time.Time, policy rotation.Policy) {
	a, _ := rotation.ActiveKey(s.keys)
	is, err := token.NewIssuer(issuer, policy.MaxTokenTTL, s.material[a.ID], clocktesting.NewFakeClock(now))
	if err != nil {
		s.t.Fatal(err)
	}
	s.seq++
	raw, c, err := is.Issue(token.Request{Subject: "sim", ClientID: "sim", Audience: "api", ID: fmt.Sprint(s.seq), AccountUID: "sim-uid"})
	if err != nil {
		s.t.Fatal(err)
	}
	s.tokens = append(s.tokens, issued{raw: raw, kid: a.ID, exp: c.Expiry.Time(), at: now})
}

// verifyAll checks every token that has not expired against the key set
// published now, and forgets expired ones.
func (s *sim) verifyAll(now time.Time, policy rotation.Policy) int {
	v := &token.Verifier{
		Issuer: issuer, Audiences: []string{"api"}, Keys: map[string]token.PublicKey{},
		MaxTTL: policy.MaxTokenTTL, Leeway: policy.ClockSkew, Clock: clocktesting.NewFakeClock(now),
	}
	algs := map[jose.SignatureAlgorithm]bool{}
	for _, k := range s.keys {
		if k.State.Publishes() {
			alg := jose.SignatureAlgorithm(k.Algorithm)
			v.Keys[k.ID] = token.PublicKey{Algorithm: alg, Key: s.material[k.ID].Public()}
			if !algs[alg] {
				algs[alg] = true
				v.Algorithms = append(v.Algorithms, alg)
			}
		}
	}
	n := 0
	live := s.tokens[:0]
	for _, tok := range s.tokens {
		if !now.Before(tok.exp.Add(policy.ClockSkew)) {
			continue // expired, even with the leeway
		}
		live = append(live, tok)
		n++
		_, err := v.Verify(tok.raw)
		switch {
		case s.revoked[tok.kid]:
			if !errors.Is(err, token.ErrUnknownKey) && !errors.Is(err, token.ErrAlgorithm) {
				s.t.Fatalf("%v: token of revoked key %s (issued %v) was not refused: %v", now, tok.kid, tok.at, err)
			}
		case err != nil:
			s.t.Fatalf("%v: a valid token issued %v (expires %v) by key %s was refused: %v\nkeys: %+v", now, tok.at, tok.exp, tok.kid, err, s.keys)
		}
	}
	s.tokens = live
	return n
}
