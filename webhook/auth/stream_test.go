package auth

import (
	"crypto/rand"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"k8s.io/apimachinery/pkg/types"

	"github.com/authframework/authframework/internal/keys"
	"github.com/authframework/authframework/internal/revstream"
	"github.com/authframework/authframework/pkg/serverapi"
)

func openStream(t *testing.T, url, tok, cursor string) (*http.Response, *revstream.Reader) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url+serverapi.PathRevocations, nil)
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	if cursor != "" {
		req.Header.Set("Last-Event-ID", cursor)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp, revstream.NewReader(resp.Body)
}

func nextEvent(t *testing.T, rd *revstream.Reader) revstream.Event {
	t.Helper()
	ev, err := rd.Next()
	if err != nil {
		t.Fatalf("stream: %v", err)
	}
	return ev
}

// untilSynced reads a snapshot through its synced event.
func untilSynced(t *testing.T, rd *revstream.Reader) (state []revstream.Event, synced revstream.Event) {
	t.Helper()
	if ev := nextEvent(t, rd); ev.Type != serverapi.EventSnapshot {
		t.Fatalf("first event %+v, want a snapshot", ev)
	}
	for {
		ev := nextEvent(t, rd)
		if ev.Type == serverapi.EventSynced {
			return state, ev
		}
		state = append(state, ev)
	}
}

func TestRevocationStreamRefusesWithoutAValidToken(t *testing.T) {
	f := newFixture(t)
	srv := httptest.NewServer(f.server)
	t.Cleanup(srv.Close)
	for name, tok := range map[string]string{"no token": "", "garbage": "not-a-token"} {
		resp, _ := openStream(t, srv.URL, tok, "")
		if resp.StatusCode != 401 || !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Bearer") || resp.Header.Get("Content-Type") != "application/json" {
			t.Errorf("%s: %d %v", name, resp.StatusCode, resp.Header)
		}
	}
	// A disabled account's token opens nothing.
	tok := f.token(nil)
	a, _, _ := f.store.Client(clientID)
	d := *a
	d.Disabled = true
	f.store.SetAccount(d)
	if resp, _ := openStream(t, srv.URL, tok, ""); resp.StatusCode != 401 {
		t.Errorf("disabled account: %d", resp.StatusCode)
	}
}

func TestRevocationStream(t *testing.T) {
	f := newFixture(t)
	srv := httptest.NewServer(f.server)
	t.Cleanup(srv.Close)
	pol := types.NamespacedName{Namespace: ns, Name: "orders"}
	p, _ := f.store.PolicyByName(pol)
	tok := f.token(nil)
	victim, _ := p.Verify(f.token(nil))

	resp, rd := openStream(t, srv.URL, tok, "")
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("stream: %d %v", resp.StatusCode, resp.Header)
	}
	state, _ := untilSynced(t, rd)
	if len(state) != 0 {
		t.Errorf("state of a fresh store: %+v", state)
	}

	// A revocation: its key matches what a client computes from the jti.
	f.store.SetRevoked(map[string]time.Time{RevocationKey(pol, victim.ID): victim.Expiry.Time()}, nil)
	ev := nextEvent(t, rd)
	if ev.Type != serverapi.EventTokenRevoked || ev.RevocationKey != serverapi.RevocationKey(ns, "orders", victim.ID) ||
		ev.Expiry != victim.Expiry.Time().Unix() || ev.Policy != "team/orders" || ev.Issuer != p.Issuer {
		t.Fatalf("revocation event %+v", ev)
	}
	// Another account of the policy refuses older tokens, then is deleted.
	ops := Account{Key: types.NamespacedName{Namespace: ns, Name: "ops"}, UID: "ops-uid", ClientID: "team.ops", Policy: "orders"}
	f.store.SetAccount(ops)
	ops.RevokeTokensIssuedBefore = epoch.Add(time.Minute)
	f.store.SetAccount(ops)
	if ev := nextEvent(t, rd); ev.Type != serverapi.EventAccount || ev.AccountUID != "ops-uid" || ev.RevokedBefore != epoch.Add(time.Minute).Unix() || ev.Disabled {
		t.Fatalf("account event %+v", ev)
	}
	// A change that decides nothing for tokens is no event; the next one is
	// the deletion.
	ops.Roles = []string{"x"}
	f.store.SetAccount(ops)
	f.store.DeleteAccount(ops.Key)
	last := nextEvent(t, rd)
	if last.Type != serverapi.EventAccountDeleted || last.AccountUID != "ops-uid" {
		t.Fatalf("deletion event %+v", last)
	}

	// A stream that resumes gets only what came after its cursor.
	_, rd2 := openStream(t, srv.URL, tok, last.Cursor)
	f.store.SetRevoked(map[string]time.Time{"k2": epoch.Add(time.Hour)}, nil)
	if ev := nextEvent(t, rd2); ev.Type != serverapi.EventTokenRevoked || ev.RevocationKey != "k2" {
		t.Fatalf("resumed stream: %+v", ev)
	}
	// One that cannot resume gets the state: the revocations and the
	// tombstone of the deleted account.
	_, rd3 := openStream(t, srv.URL, tok, "another-replica-7")
	state, _ = untilSynced(t, rd3)
	if got := countTypes(state); got[serverapi.EventTokenRevoked] != 2 || got[serverapi.EventAccountDeleted] != 1 || len(state) != 3 {
		t.Errorf("snapshot %+v", state)
	}

	// The policy's key goes: every stream hears, and later snapshots keep
	// a tombstone until the key's tokens would have expired.
	k2, err := keys.Generate(jose.ES256, 0, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	f.store.SetKeys(pol, "", []keys.Key{k2})
	for _, r := range []*revstream.Reader{rd, rd2, rd3} {
		for {
			ev := nextEvent(t, r)
			if ev.Type == serverapi.EventTokenRevoked {
				continue // rd has not read k2's revocation yet
			}
			if ev.Type != serverapi.EventKeyRevoked || ev.KeyID != f.key.ID {
				t.Fatalf("key event %+v", ev)
			}
			break
		}
	}
	if got := countTypes(f.store.snapshot(pol)); got[serverapi.EventKeyRevoked] != 1 {
		t.Errorf("snapshot after the key went: %v", got)
	}
	f.clock.Step(p.TTL + p.Skew + time.Second)
	if got := countTypes(f.store.snapshot(pol)); got[serverapi.EventKeyRevoked] != 0 || got[serverapi.EventAccountDeleted] != 0 {
		t.Errorf("tombstones outlived the tokens: %v", got)
	}
}

func countTypes(evs []revstream.Event) map[string]int {
	n := map[string]int{}
	for _, ev := range evs {
		n[ev.Type]++
	}
	return n
}

func TestRevocationStreamsAreBounded(t *testing.T) {
	f := newFixture(t)
	f.server = NewServer(f.store, Options{Clock: f.clock, Log: testLogger(f.logs), Audit: testLogger(f.logs), Revocations: f.revs,
		CacheSize: 100, MaxStreams: 2})
	srv := httptest.NewServer(f.server)
	t.Cleanup(srv.Close)
	tok := f.token(nil)
	for range 2 {
		resp, rd := openStream(t, srv.URL, tok, "")
		if resp.StatusCode != 200 {
			t.Fatalf("stream: %d", resp.StatusCode)
		}
		untilSynced(t, rd)
	}
	resp, _ := openStream(t, srv.URL, tok, "")
	if resp.StatusCode != 503 || resp.Header.Get("Retry-After") != "5" {
		t.Fatalf("third stream: %d %v", resp.StatusCode, resp.Header)
	}
}

func TestRevocationStreamsPerClient(t *testing.T) {
	f := newFixture(t)
	srv := httptest.NewServer(f.server)
	t.Cleanup(srv.Close)
	tok := f.token(nil)
	for range MaxStreamsPerClient {
		resp, rd := openStream(t, srv.URL, tok, "")
		if resp.StatusCode != 200 {
			t.Fatalf("stream: %d", resp.StatusCode)
		}
		untilSynced(t, rd)
	}
	resp, _ := openStream(t, srv.URL, tok, "")
	if resp.StatusCode != 503 || resp.Header.Get("Retry-After") != "5" {
		t.Fatalf("one stream more than a client may hold: %d %v", resp.StatusCode, resp.Header)
	}
	// Another client is not affected.
	f.store.SetVerifier(types.NamespacedName{Namespace: ns, Name: "ops"}, "ops-uid", nil)
	other := Account{Key: types.NamespacedName{Namespace: ns, Name: "ops"}, UID: "ops-uid", ClientID: "team.ops", Policy: "orders"}
	f.store.SetAccount(other)
	p, _ := f.store.PolicyByName(types.NamespacedName{Namespace: ns, Name: "orders"})
	otherTok, _, err := f.server.issue(&other, p, "orders-api", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp, _ := openStream(t, srv.URL, otherTok, ""); resp.StatusCode != 200 {
		t.Errorf("another client: %d", resp.StatusCode)
	}
}
