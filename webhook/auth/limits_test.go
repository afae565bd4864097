package auth

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"k8s.io/apimachinery/pkg/types"

	"github.com/authframework/authframework/internal/keys"
)

var grantForm = url.Values{"grant_type": {"client_credentials"}}

// doFrom sends a request from the TCP peer addr (host:port).
func doFrom(h http.Handler, peer, method, target string, body url.Values, hdr map[string]string) *httptest.ResponseRecorder {
	var req *http.Request
	if body != nil {
		req = httptest.NewRequest(method, target, strings.NewReader(body.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	} else {
		req = httptest.NewRequest(method, target, nil)
	}
	req.RemoteAddr = peer
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	return w
}

func with(a, b map[string]string) map[string]string {
	out := map[string]string{}
	for k, v := range a {
		out[k] = v
	}
	for k, v := range b {
		out[k] = v
	}
	return out
}

func TestFailedAuthNeverRefusesTheCorrectSecret(t *testing.T) {
	f := newFixture(t)
	const attacker, other = "198.51.100.1:4000", "198.51.100.2:4000"
	for i := range 5 {
		if w := doFrom(f.server, attacker, "POST", "/token", grantForm, basic(clientID, "wrong")); w.Code != 401 {
			t.Fatalf("wrong secret %d: %d", i, w.Code)
		}
	}
	w := doFrom(f.server, attacker, "POST", "/token", grantForm, basic(clientID, "wrong"))
	if w.Code != 429 || w.Header().Get("Retry-After") != "60" || !strings.Contains(w.Body.String(), `"error":"invalid_client"`) {
		t.Fatalf("sixth wrong secret from the same address: %d Retry-After %q %s", w.Code, w.Header().Get("Retry-After"), w.Body)
	}
	// Five wrong secrets then the correct one, from the very same address.
	if w := doFrom(f.server, attacker, "POST", "/token", grantForm, basic(clientID, secret)); w.Code != 200 {
		t.Fatalf("the correct secret after five wrong ones: %d %s", w.Code, w.Body)
	}
	// The pair budget is per address: another address still gets 401.
	if w := doFrom(f.server, other, "POST", "/token", grantForm, basic(clientID, "wrong")); w.Code != 401 {
		t.Errorf("wrong secret from another address: %d", w.Code)
	}
	// One failure is forgiven per minute.
	f.clock.Step(time.Minute)
	if w := doFrom(f.server, attacker, "POST", "/token", grantForm, basic(clientID, "wrong")); w.Code != 401 {
		t.Errorf("a minute later: %d", w.Code)
	}
	if w := doFrom(f.server, attacker, "POST", "/token", grantForm, basic(clientID, "wrong")); w.Code != 429 {
		t.Errorf("and then throttled again: %d", w.Code)
	}
	if !strings.Contains(f.logs.String(), `"reason":"wrong secret; throttled"`) || strings.Contains(f.logs.String(), "wrong\"") {
		t.Errorf("audit log: %s", f.logs)
	}
}

func TestFailedAuthPerSource(t *testing.T) {
	f := newFixture(t)
	const attacker = "198.51.100.1:4000"
	// Many ids from one address: the source budget (100) runs out whatever
	// the id.
	for i := range 100 {
		if w := doFrom(f.server, attacker, "POST", "/token", grantForm, basic(fmt.Sprintf("team.guess%d", i), "x")); w.Code != 401 {
			t.Fatalf("guess %d: %d", i, w.Code)
		}
	}
	if w := doFrom(f.server, attacker, "POST", "/token", grantForm, basic("team.fresh", "x")); w.Code != 429 {
		t.Errorf("a fresh id from an exhausted address: %d", w.Code)
	}
	if w := doFrom(f.server, attacker, "POST", "/token", grantForm, basic(clientID, secret)); w.Code != 200 {
		t.Errorf("the correct secret from the exhausted address: %d", w.Code)
	}
	// Failures never take from the client's request bucket (burst 100).
	for i := range 150 {
		doFrom(f.server, fmt.Sprintf("203.0.113.%d:1", i%250), "POST", "/token", grantForm, basic(clientID, "wrong"))
	}
	if w := doFrom(f.server, "192.0.2.50:1", "POST", "/token", grantForm, basic(clientID, secret)); w.Code != 200 {
		t.Errorf("correct secret after 150 failures from other addresses: %d", w.Code)
	}
}

// TestFailedAuthUnknownAndKnownAlike runs the same attempts against an
// existing and an unknown id: every answer, throttled or not, is the same
// bytes (the request id is fixed and the clock is fake, so nothing differs).
func TestFailedAuthUnknownAndKnownAlike(t *testing.T) {
	type answer struct {
		code int
		hdr  http.Header
		body string
	}
	run := func(id string) []answer {
		f := newFixture(t)
		var out []answer
		for i := range 8 {
			for _, form := range []map[string]string{basic(id, "wrong")} {
				w := doFrom(f.server, "198.51.100.1:4000", "POST", "/token", grantForm, with(form, map[string]string{HeaderRequestID: fmt.Sprintf("req-%d", i)}))
				out = append(out, answer{w.Code, w.Header(), w.Body.String()})
			}
			post := url.Values{"grant_type": {"client_credentials"}, "client_id": {id}, "client_secret": {"wrong"}}
			w := doFrom(f.server, "198.51.100.9:4000", "POST", "/token", post, map[string]string{HeaderRequestID: fmt.Sprintf("post-%d", i)})
			out = append(out, answer{w.Code, w.Header(), w.Body.String()})
			f.clock.Step(7 * time.Second)
		}
		return out
	}
	known, unknown := run(clientID), run("team.nobody")
	if !reflect.DeepEqual(known, unknown) {
		for i := range known {
			if !reflect.DeepEqual(known[i], unknown[i]) {
				t.Errorf("attempt %d differs:\nknown   %d %v %s\nunknown %d %v %s", i, known[i].code, known[i].hdr, known[i].body, unknown[i].code, unknown[i].hdr, unknown[i].body)
			}
		}
	}
	var throttled int
	for _, a := range known {
		if a.code == 429 {
			throttled++
		}
	}
	if throttled == 0 {
		t.Error("the sequence never reached the throttle; it compares too little")
	}
}

// TestFailedAuthReplicas: each replica keeps its own counters, so N replicas
// give a caller N times the budget. Two Servers over one store are two
// replicas.
func TestFailedAuthReplicas(t *testing.T) {
	f := newFixture(t)
	f.server.opts.TrustedProxies = someProxy
	replicas := []*Server{f.server, NewServer(f.store, Options{Clock: f.clock, Log: logr.Discard(), Audit: logr.Discard(), TrustedProxies: someProxy})}
	refusedBeforeThrottle := 0
	for i := range 40 {
		w := doFrom(replicas[i%2], "198.51.100.1:4000", "POST", "/token", grantForm, basic(clientID, "wrong"))
		if w.Code == 401 {
			refusedBeforeThrottle++
		}
	}
	if want := 2 * DefaultThrottles.FailedAuthPerClientSource.N; refusedBeforeThrottle != want {
		t.Errorf("failed attempts answered before the throttle over 2 replicas: %d, want %d", refusedBeforeThrottle, want)
	}
	// The per-source budget multiplies the same way.
	checked := 0
	for i := range 300 {
		w := doFrom(replicas[i%2], "198.51.100.2:4000", "POST", "/token", grantForm, basic(fmt.Sprintf("team.g%d", i), "wrong"))
		if w.Code == 401 {
			checked++
		}
	}
	if want := 2 * DefaultThrottles.FailedAuthPerSource.N; checked != want {
		t.Errorf("per-source failures over 2 replicas: %d, want %d", checked, want)
	}
	// And /validate's budget of refused tokens per source.
	valid := f.token(nil)
	verified := 0
	for i := range 100 {
		w := doFrom(replicas[i%2], "198.51.100.3:4000", "GET", "/validate", nil, bearerHdr(forge(t, valid)))
		if w.Header().Get(HeaderAuthError) == "bad_signature" {
			verified++
		}
	}
	if want := 2 * DefaultThrottles.FailedTokensPerSource.N; verified != want {
		t.Errorf("forged tokens checked over 2 replicas: %d, want %d", verified, want)
	}
}

func TestSpoofedSourceHeaders(t *testing.T) {
	// Nobody trusted: X-Real-IP and X-Forwarded-For change nothing.
	f := newFixture(t)
	codes := map[int]int{}
	for i := range 10 {
		spoof := map[string]string{"X-Real-IP": fmt.Sprintf("203.0.113.%d", i), "X-Forwarded-For": fmt.Sprintf("203.0.114.%d", i)}
		codes[doFrom(f.server, "198.51.100.1:4000", "POST", "/token", grantForm, with(basic(clientID, "wrong"), spoof)).Code]++
	}
	if codes[401] != 5 || codes[429] != 5 {
		t.Errorf("spoofed headers from an untrusted peer: %v, want 5 x 401 and 5 x 429", codes)
	}
	// The same headers from a trusted proxy name distinct sources.
	g := newFixture(t)
	g.server = NewServer(g.store, Options{Clock: g.clock, Log: logr.Discard(), Audit: logr.Discard(), TrustedProxies: []netip.Prefix{netip.MustParsePrefix("198.51.100.1/32")}})
	codes = map[int]int{}
	for i := range 10 {
		hdr := map[string]string{"X-Real-IP": fmt.Sprintf("203.0.113.%d", i)}
		codes[doFrom(g.server, "198.51.100.1:4000", "POST", "/token", grantForm, with(basic(clientID, "wrong"), hdr)).Code]++
	}
	if codes[401] != 10 {
		t.Errorf("distinct clients behind a trusted proxy: %v, want 10 x 401", codes)
	}
}

func TestThrottleMemoryBounded(t *testing.T) {
	f := newFixture(t)
	const entries = 500
	f.server = NewServer(f.store, Options{Clock: f.clock, Log: logr.Discard(), Audit: logr.Discard(), CacheSize: 1000, Throttles: Throttles{Entries: entries}})
	for i := range 5000 {
		peer := fmt.Sprintf("10.%d.%d.%d:1", i>>16&255, i>>8&255, i&255)
		doFrom(f.server, peer, "POST", "/token", grantForm, basic(randomID(), "x"))
		doFrom(f.server, peer, "GET", "/validate", nil, bearerHdr(randomID()+"."+randomID()+"."+randomID()))
	}
	for name, n := range map[string]int{
		"failed auth per source": f.server.auth.perSource.Len(), "failed auth per pair": f.server.auth.perPair.Len(),
		"refused tokens per source": f.server.guard.perSource.Len(), "refused token hashes": f.server.guard.refused.Len(),
		"client request buckets": f.server.limits.lru.Len(),
	} {
		if n > entries {
			t.Errorf("%s: %d entries, bound %d", name, n, entries)
		}
		if name != "client request buckets" && n < entries {
			t.Errorf("%s: %d entries; the flood did not fill the table, so the bound was not tested", name, n)
		}
	}
}

func randomID() string {
	b := make([]byte, 12)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// forge keeps a token's header and claims (so its kid is valid) and gives it
// a random signature of the right size.
func forge(t *testing.T, tok string) string {
	t.Helper()
	parts := strings.Split(tok, ".")
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil {
		t.Fatal(err)
	}
	_, _ = rand.Read(sig)
	return parts[0] + "." + parts[1] + "." + base64.RawURLEncoding.EncodeToString(sig)
}

// someProxy is a trusted proxy none of the test requests come through: it
// tells the server the topology is configured, so peers are clients.
var someProxy = []netip.Prefix{netip.MustParsePrefix("10.0.0.1/32")}

func TestValidateFloodOfForgedTokens(t *testing.T) {
	f := newFixture(t)
	f.server.opts.TrustedProxies = someProxy
	const attacker, client = "198.51.100.1:4000", "192.0.2.10:4000"
	valid := f.token(nil)
	if w := doFrom(f.server, attacker, "GET", "/validate", nil, bearerHdr(valid)); w.Code != 200 {
		t.Fatalf("valid token: %d", w.Code)
	}
	budget := DefaultThrottles.FailedTokensPerSource.N
	for i := range budget {
		w := doFrom(f.server, attacker, "GET", "/validate", nil, bearerHdr(forge(t, valid)))
		if w.Code != 401 || w.Header().Get(HeaderAuthError) != "bad_signature" {
			t.Fatalf("forged token %d within the budget: %d %s", i, w.Code, w.Header().Get(HeaderAuthError))
		}
	}
	w := doFrom(f.server, attacker, "GET", "/validate", nil, bearerHdr(forge(t, valid)))
	if w.Code != 401 || w.Header().Get(HeaderAuthError) != "too_many_invalid_tokens" || w.Header().Get("Retry-After") != "1" ||
		!strings.Contains(w.Header().Get("WWW-Authenticate"), `error="invalid_token"`) {
		t.Fatalf("forged token over the budget: %d %v", w.Code, w.Header())
	}
	var body apiError
	if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil || body.Error.Code != "too_many_invalid_tokens" || body.Error.RetryAfter != 1 || body.RequestID == "" {
		t.Errorf("body %s", w.Body)
	}
	// A valid token the cache holds is never refused, even from the
	// throttled address.
	if w := doFrom(f.server, attacker, "GET", "/validate", nil, bearerHdr(valid)); w.Code != 200 {
		t.Errorf("cached valid token from the throttled address: %d", w.Code)
	}
	// Another address is not affected, with a token never seen before.
	fresh := f.token(url.Values{"scope": {"orders:read"}})
	if w := doFrom(f.server, client, "GET", "/validate", nil, bearerHdr(fresh)); w.Code != 200 {
		t.Errorf("new valid token from another address: %d", w.Code)
	}
	// A new token from the throttled address is not checked until the
	// budget refills (the documented cost of skipping the check).
	fresh2 := f.token(url.Values{"scope": {"inventory:read"}})
	if w := doFrom(f.server, attacker, "GET", "/validate", nil, bearerHdr(fresh2)); w.Header().Get(HeaderAuthError) != "too_many_invalid_tokens" {
		t.Errorf("new token from the throttled address: %d %s", w.Code, w.Header().Get(HeaderAuthError))
	}
	f.clock.Step(time.Second)
	if w := doFrom(f.server, attacker, "GET", "/validate", nil, bearerHdr(fresh2)); w.Code != 200 {
		t.Errorf("after the refill the new valid token is checked and allowed: %d", w.Code)
	}
	// A flood goes on for half a minute: still one audit line.
	for range 30 {
		for range 40 {
			doFrom(f.server, attacker, "GET", "/validate", nil, bearerHdr(forge(t, valid)))
		}
		f.clock.Step(time.Second)
	}
	if n := strings.Count(f.logs.String(), `"event":"source_throttled"`); n != 1 {
		t.Errorf("source_throttled logged %d times in half a minute of flood, want once", n)
	}
}

// TestValidateFloodWithoutTrustedProxies: with no trusted proxies the peer
// may be an ingress every client shares, so a flood through it never gets
// another client's new token refused unchecked.
func TestValidateFloodWithoutTrustedProxies(t *testing.T) {
	f := newFixture(t)
	const ingress = "10.1.2.3:4000"
	valid := f.token(nil)
	for range 10 * DefaultThrottles.FailedTokensPerSource.N {
		if w := doFrom(f.server, ingress, "GET", "/validate", nil, bearerHdr(forge(t, valid))); w.Header().Get(HeaderAuthError) != "bad_signature" {
			t.Fatalf("forged token: %d %s", w.Code, w.Header().Get(HeaderAuthError))
		}
	}
	fresh := f.token(url.Values{"scope": {"orders:read"}})
	if w := doFrom(f.server, ingress, "GET", "/validate", nil, bearerHdr(fresh)); w.Code != 200 {
		t.Errorf("a new valid token through the same ingress: %d %s", w.Code, w.Header().Get(HeaderAuthError))
	}
}

func TestValidateRefusedTokenCache(t *testing.T) {
	f := newFixture(t)
	forged := forge(t, f.token(nil))
	checks := func() float64 { return testutil.ToFloat64(f.server.metrics.cacheMisses) }
	before := checks()
	// The same forged token again and again costs one check: the budget is
	// never exhausted and every answer is the original refusal.
	for i := range 3 * DefaultThrottles.FailedTokensPerSource.N {
		w := doFrom(f.server, "198.51.100.1:4000", "GET", "/validate", nil, bearerHdr(forged))
		if w.Code != 401 || w.Header().Get(HeaderAuthError) != "bad_signature" {
			t.Fatalf("attempt %d: %d %s", i, w.Code, w.Header().Get(HeaderAuthError))
		}
	}
	if n := checks() - before; n != 1 {
		t.Errorf("the same forged token was checked %v times, want once", n)
	}
	// An account change cannot make a bad signature good: still one check.
	f.updateAccount(func(a *Account) { a.Roles = []string{"other"} })
	doFrom(f.server, "198.51.100.1:4000", "GET", "/validate", nil, bearerHdr(forged))
	if n := checks() - before; n != 1 {
		t.Errorf("after an account change the token was checked %v times in all, want 1", n)
	}
	// A change to the policies or their keys makes the entry stale: checked again.
	f.store.SetKeys(types.NamespacedName{Namespace: ns, Name: "orders"}, "", []keys.Key{f.key})
	if w := doFrom(f.server, "198.51.100.1:4000", "GET", "/validate", nil, bearerHdr(forged)); w.Header().Get(HeaderAuthError) != "bad_signature" {
		t.Errorf("after a key change: %s", w.Header().Get(HeaderAuthError))
	}
	if n := checks() - before; n != 2 {
		t.Errorf("after a key change the token was checked %v times in all, want 2", n)
	}
	// And the entry lives a minute at most.
	f.clock.Step(refusedTokenTTL)
	doFrom(f.server, "198.51.100.1:4000", "GET", "/validate", nil, bearerHdr(forged))
	if n := checks() - before; n != 3 {
		t.Errorf("after a minute the token was checked %v times in all, want 3", n)
	}
}

func TestParseBudget(t *testing.T) {
	for in, want := range map[string]Budget{"5/5m": {5, 5 * time.Minute}, "100/1s": {100, time.Second}, " 7/90s": {}} {
		got, err := ParseBudget(in)
		if got != want || (err != nil) != (want == Budget{}) {
			t.Errorf("%q: %v %v", in, got, err)
		}
	}
	if s := (Budget{5, 5 * time.Minute}).String(); s != "5/5m0s" {
		t.Errorf("String %q", s)
	}
	for _, bad := range []string{"", "5", "0/1m", "-1/1m", "5/0s", "5/-1m", "x/1m", "5/x"} {
		if _, err := ParseBudget(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}
