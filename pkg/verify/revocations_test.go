package verify

import (
	"context"
	"errors"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"k8s.io/utils/clock"

	"github.com/authframework/authframework/internal/revstream"
	"github.com/authframework/authframework/pkg/serverapi"
)

func TestRevocationSetRefuses(t *testing.T) {
	t0 := time.Unix(1_800_000_000, 0)
	id := &Identity{TokenID: "jti-1", AccountUID: "uid-1", KeyID: "kid-1", IssuedAt: t0}
	ev := func(typ string, mutate func(*serverapi.RevocationEvent)) serverapi.RevocationEvent {
		e := serverapi.RevocationEvent{Type: typ}
		if mutate != nil {
			mutate(&e)
		}
		return e
	}
	tests := []struct {
		name   string
		events []serverapi.RevocationEvent
		want   string
	}{
		{"nothing", nil, ""},
		{"this token revoked", []serverapi.RevocationEvent{ev(serverapi.EventTokenRevoked, func(e *serverapi.RevocationEvent) { e.RevocationKey, e.Expiry = "rk-1", t0.Unix()+60 })}, CodeTokenRevoked},
		{"another token revoked", []serverapi.RevocationEvent{ev(serverapi.EventTokenRevoked, func(e *serverapi.RevocationEvent) { e.RevocationKey = "rk-2" })}, ""},
		{"account disabled", []serverapi.RevocationEvent{ev(serverapi.EventAccount, func(e *serverapi.RevocationEvent) { e.AccountUID, e.Disabled = "uid-1", true })}, CodeClientDisabled},
		{"account disabled then enabled", []serverapi.RevocationEvent{
			ev(serverapi.EventAccount, func(e *serverapi.RevocationEvent) { e.AccountUID, e.Disabled = "uid-1", true }),
			ev(serverapi.EventAccount, func(e *serverapi.RevocationEvent) { e.AccountUID = "uid-1" }),
		}, ""},
		{"another account disabled", []serverapi.RevocationEvent{ev(serverapi.EventAccount, func(e *serverapi.RevocationEvent) { e.AccountUID, e.Disabled = "uid-2", true })}, ""},
		{"revoked before issue", []serverapi.RevocationEvent{ev(serverapi.EventAccount, func(e *serverapi.RevocationEvent) { e.AccountUID, e.RevokedBefore = "uid-1", t0.Unix()+1 })}, CodeTokenRevoked},
		{"revoked before, at issue", []serverapi.RevocationEvent{ev(serverapi.EventAccount, func(e *serverapi.RevocationEvent) { e.AccountUID, e.RevokedBefore = "uid-1", t0.Unix() })}, ""},
		{"account deleted", []serverapi.RevocationEvent{ev(serverapi.EventAccountDeleted, func(e *serverapi.RevocationEvent) { e.AccountUID = "uid-1" })}, CodeUnknownClient},
		{"key revoked", []serverapi.RevocationEvent{ev(serverapi.EventKeyRevoked, func(e *serverapi.RevocationEvent) { e.KeyID = "kid-1" })}, CodeUnknownKey},
		{"another key revoked", []serverapi.RevocationEvent{ev(serverapi.EventKeyRevoked, func(e *serverapi.RevocationEvent) { e.KeyID = "kid-2" })}, ""},
		{"unknown event type", []serverapi.RevocationEvent{ev("something_new", func(e *serverapi.RevocationEvent) { e.RevocationKey, e.AccountUID, e.KeyID = "rk-1", "uid-1", "kid-1" })}, ""},
		{"event without its subject", []serverapi.RevocationEvent{ev(serverapi.EventTokenRevoked, nil), ev(serverapi.EventAccountDeleted, nil), ev(serverapi.EventKeyRevoked, nil)}, ""},
	}
	for _, tc := range tests {
		s := newRevocationSet()
		for _, e := range tc.events {
			s.apply(e)
		}
		got := ""
		if e := s.refuse(id, "rk-1"); e != nil {
			got = e.Code
			if e.Status != http.StatusUnauthorized {
				t.Errorf("%s: status %d", tc.name, e.Status)
			}
		}
		if got != tc.want {
			t.Errorf("%s: %q, want %q", tc.name, got, tc.want)
		}
	}
}

func TestRevocationKey(t *testing.T) {
	if got, want := revocationKey("team-a/default", "jti-1"), serverapi.RevocationKey("team-a", "default", "jti-1"); got != want {
		t.Errorf("revocationKey %q, want serverapi's %q", got, want)
	}
	if got := revocationKey("", "jti-1"); got != "" {
		t.Errorf("without a policy: %q", got)
	}
}

func TestRevocationSetPrune(t *testing.T) {
	t0 := time.Unix(1_800_000_000, 0)
	s := newRevocationSet()
	s.apply(serverapi.RevocationEvent{Type: serverapi.EventTokenRevoked, RevocationKey: "old", Expiry: t0.Unix() - 1})
	s.apply(serverapi.RevocationEvent{Type: serverapi.EventTokenRevoked, RevocationKey: "live", Expiry: t0.Unix() + 1})
	s.prune(t0)
	if _, ok := s.tokens["old"]; ok {
		t.Error("an expired revocation was kept")
	}
	if _, ok := s.tokens["live"]; !ok {
		t.Error("a live revocation was pruned")
	}
}

// TestStreamStateSnapshot: a snapshot replaces the state only once it is
// complete (EventSynced); until then the old state and the new events both
// hold.
func TestStreamStateSnapshot(t *testing.T) {
	st := newStreamState()
	revoke := func(key, cursor string) serverapi.RevocationEvent {
		return serverapi.RevocationEvent{Type: serverapi.EventTokenRevoked, RevocationKey: key, Cursor: cursor}
	}
	refused := func(key string) bool { return st.current.refuse(&Identity{}, key) != nil }
	steps := []struct {
		ev            serverapi.RevocationEvent
		a, b, c       bool // a, b, c refused after the event
		synced        bool
		cursor        string
		buildingAfter bool
	}{
		{serverapi.RevocationEvent{Type: serverapi.EventSnapshot, Cursor: "10"}, false, false, false, false, "10", true},
		{revoke("a", ""), true, false, false, false, "10", true},
		{serverapi.RevocationEvent{Type: serverapi.EventSynced, Cursor: "10"}, true, false, false, true, "10", false},
		{revoke("b", "11"), true, true, false, true, "11", false},
		// A new snapshot (the cursor was too old): a is gone from the
		// server's state, but stays refused until the snapshot is complete.
		{serverapi.RevocationEvent{Type: serverapi.EventSnapshot, Cursor: "20"}, true, true, false, true, "20", true},
		{revoke("b", ""), true, true, false, true, "20", true},
		{revoke("c", "21"), true, true, true, true, "21", true},
		{serverapi.RevocationEvent{Type: serverapi.EventSynced, Cursor: "21"}, false, true, true, true, "21", false},
		{serverapi.RevocationEvent{Type: serverapi.EventBookmark, Cursor: "22"}, false, true, true, true, "22", false},
	}
	for i, s := range steps {
		st.handle(s.ev)
		if refused("a") != s.a || refused("b") != s.b || refused("c") != s.c || st.synced != s.synced || st.cursor != s.cursor || (st.building != nil) != s.buildingAfter {
			t.Fatalf("after step %d (%s): a %v b %v c %v synced %v cursor %q building %v", i, s.ev.Type,
				refused("a"), refused("b"), refused("c"), st.synced, st.cursor, st.building != nil)
		}
	}
}

func TestBackoff(t *testing.T) {
	lo, hi := 250*time.Millisecond, 30*time.Second
	tests := []struct {
		n        int
		r        float64
		want     time.Duration
		describe string
	}{
		{0, 0, 125 * time.Millisecond, "first attempt, no jitter: half of min"},
		{0, 0.999999, 250 * time.Millisecond, "first attempt, full jitter: about min"},
		{1, 0, 250 * time.Millisecond, "doubles"},
		{3, 0.5, 1500 * time.Millisecond, "2 s, jitter in the upper half"},
		{7, 0, 15 * time.Second, "capped at max"},
		{100, 0, 15 * time.Second, "no overflow"},
	}
	for _, tc := range tests {
		if got := backoff(tc.n, lo, hi, tc.r); got.Round(time.Millisecond) != tc.want {
			t.Errorf("%s: backoff(%d, %v) = %v, want %v", tc.describe, tc.n, tc.r, got, tc.want)
		}
	}
}

// sseServer serves the revocation stream on the fake issuer with the auth
// server's own stream core (internal/revstream): a log of events with
// cursors, a snapshot of the state for a client that cannot resume.
type sseServer struct {
	f      *fakeIssuer
	token  string
	log    *revstream.Log
	stream revstream.Stream

	mu      sync.Mutex
	state   []serverapi.RevocationEvent
	resumes []string // Last-Event-ID of each connection

	connects, refused atomic.Int64
}

const testPolicy = "team-a/default"

func newSSEServer(f *fakeIssuer, token string) *sseServer {
	s := &sseServer{f: f, token: token, log: revstream.NewLog("epoch", 0)}
	s.stream = revstream.Stream{Log: s.log, Scope: testPolicy, Policy: testPolicy, Issuer: f.issuer, Clock: clock.RealClock{},
		Snapshot: func() []serverapi.RevocationEvent {
			s.mu.Lock()
			defer s.mu.Unlock()
			return append([]serverapi.RevocationEvent(nil), s.state...)
		}}
	f.handle(serverapi.PathRevocations, s.serve)
	return s
}

// publish adds a state event and sends it to the streams.
func (s *sseServer) publish(ev serverapi.RevocationEvent) {
	s.mu.Lock()
	s.state = append(s.state, ev)
	s.mu.Unlock()
	s.log.Append(testPolicy, ev)
}

// drop cuts every connection (a restart, a network cut).
func (s *sseServer) drop() { s.f.srv.CloseClientConnections() }

func (s *sseServer) serve(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("Authorization") != "Bearer "+s.token {
		s.refused.Add(1)
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	s.connects.Add(1)
	s.mu.Lock()
	s.resumes = append(s.resumes, r.Header.Get("Last-Event-ID"))
	s.mu.Unlock()
	st := s.stream
	st.Until = time.Now().Add(time.Hour)
	st.Serve(w, r)
}

func TestRevocationStream(t *testing.T) {
	clk := fakeClock() // mints; the verifier runs on the real clock
	f := newFakeIssuer(t, clk)
	sse := newSSEServer(f, "stream-token")
	revokedEarly, early := f.mintFor(t, testSubject, testAudience, time.Hour, "orders:read")
	sse.publish(serverapi.RevocationEvent{Type: serverapi.EventTokenRevoked, RevocationKey: serverapi.RevocationKey("team-a", "default", early.ID), Expiry: early.Expiry.Time().Unix()})
	v, _ := newVerifier(t, f, clock.RealClock{}, func(o *Options) {
		o.Revocations = &RevocationOptions{Token: func(context.Context) (string, error) { return "stream-token", nil }, MinBackoff: time.Millisecond, MaxBackoff: 10 * time.Millisecond}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := v.WaitForSync(ctx); err != nil {
		t.Fatal(err)
	}
	refusedWith := func(raw, code string) func() bool {
		return func() bool {
			_, err := v.Verify(context.Background(), raw)
			var e *Error
			return errors.As(err, &e) && e.Code == code
		}
	}
	if !refusedWith(revokedEarly, CodeTokenRevoked)() {
		t.Fatal("a token revoked before the subscription passed")
	}
	raw, c := f.mintFor(t, testSubject, testAudience, time.Hour, "orders:read")
	if _, err := v.Verify(context.Background(), raw); err != nil {
		t.Fatal(err) // and now cached
	}

	start := time.Now()
	sse.publish(serverapi.RevocationEvent{Type: serverapi.EventTokenRevoked, RevocationKey: serverapi.RevocationKey("team-a", "default", c.ID), Expiry: c.Expiry.Time().Unix()})
	until(t, time.Second, "the revocation to reach the verifier", refusedWith(raw, CodeTokenRevoked))
	t.Logf("a revoked (and cached) token was refused %v after the event was published", time.Since(start))

	// The connection drops; the subscriber comes back with its cursor and
	// gets what it missed, without a snapshot.
	sse.drop()
	until(t, 2*time.Second, "a reconnect", func() bool { return sse.connects.Load() == 2 })
	other := token2(t, f, "uid-other")
	sse.publish(serverapi.RevocationEvent{Type: serverapi.EventAccount, AccountUID: "uid-other", Disabled: true})
	until(t, 2*time.Second, "the disabled account after a reconnect", refusedWith(other, CodeClientDisabled))
	sse.mu.Lock()
	resumes := append([]string(nil), sse.resumes...)
	sse.mu.Unlock()
	if len(resumes) != 2 || resumes[0] != "" || resumes[1] != "epoch-2" {
		t.Errorf("Last-Event-ID of the connections %q, want \"\" then the last cursor \"epoch-2\"", resumes)
	}

	sse.publish(serverapi.RevocationEvent{Type: serverapi.EventKeyRevoked, KeyID: f.active.ID})
	until(t, time.Second, "the revoked key", refusedWith(f.mint(t), CodeUnknownKey))
}

// token2 mints a token of another account.
func token2(t *testing.T, f *fakeIssuer, uid string) string {
	s := testSubject
	s.UID = uid
	raw, _ := f.mintFor(t, s, testAudience, time.Hour)
	return raw
}

func TestRevocationStreamRefusedToken(t *testing.T) {
	clk := fakeClock()
	f := newFakeIssuer(t, clk)
	sse := newSSEServer(f, "stream-token")
	reg := func(o *Options) {
		o.Revocations = &RevocationOptions{Token: func(context.Context) (string, error) { return "wrong", nil }, MinBackoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond}
	}
	v, metrics := newVerifier(t, f, clock.RealClock{}, reg)
	until(t, 2*time.Second, "several refused attempts", func() bool { return sse.refused.Load() >= 3 })
	// The server counts a refusal before the client has read it: wait for
	// the client's count to catch up.
	until(t, 2*time.Second, "the failed connections counted", func() bool {
		return counter(t, metrics, MetricStreamConnects, "result", "error") >= 3
	})
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := v.WaitForSync(ctx); err == nil {
		t.Error("WaitForSync returned without a synced stream")
	}
}

// TestStaleness: once the stream is silent past MaxStaleness, KeepValidating
// verifies and counts; Refuse answers 503; an event makes it current again.
func TestStaleness(t *testing.T) {
	for _, policy := range []StalePolicy{KeepValidating, Refuse} {
		t.Run(policy.String(), func(t *testing.T) {
			clk := fakeClock()
			f := newFakeIssuer(t, clk)
			sse := newSSEServer(f, "stream-token")
			v, reg := newVerifier(t, f, clk, func(o *Options) {
				o.Revocations = &RevocationOptions{Token: func(context.Context) (string, error) { return "stream-token", nil },
					MaxStaleness: time.Minute, OnStale: policy, IdleTimeout: time.Hour}
			})
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if err := v.WaitForSync(ctx); err != nil {
				t.Fatal(err)
			}
			raw := f.mint(t)
			if _, err := v.Verify(ctx, raw); err != nil {
				t.Fatal(err)
			}
			clk.Step(time.Minute + time.Second)
			_, err := v.Verify(ctx, raw)
			switch policy {
			case KeepValidating:
				if err != nil {
					t.Fatalf("stale, keep validating: %v", err)
				}
			case Refuse:
				var e *Error
				if !errors.As(err, &e) || e.Status != http.StatusServiceUnavailable || e.RetryAfter <= 0 {
					t.Fatalf("stale, refuse: %v", err)
				}
			}
			if got := counter(t, reg, MetricStale, "policy", policy.String()); got != 1 {
				t.Errorf("%s{policy=%s} = %v, want 1", MetricStale, policy, got)
			}
			sse.publish(serverapi.RevocationEvent{Type: serverapi.EventAccount, AccountUID: "uid-other", Disabled: true})
			until(t, 2*time.Second, "the stream to be current again", func() bool {
				return !v.subs.isStale(clk.Now())
			})
			if _, err := v.Verify(ctx, raw); err != nil {
				t.Fatalf("current again: %v", err)
			}
			if got := counter(t, reg, MetricStale, "policy", policy.String()); got != 1 {
				t.Errorf("%s = %v after the stream is current, want still 1", MetricStale, got)
			}
		})
	}
}
