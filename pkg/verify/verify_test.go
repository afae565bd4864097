package verify

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/authframework/authframework/internal/keys"
	"github.com/authframework/authframework/internal/token"
	"github.com/authframework/authframework/pkg/serverapi"
)

// serve runs h on a GET with the given Authorization header.
func serve(h http.Handler, authorization string) *httptest.ResponseRecorder {
	r := httptest.NewRequest(http.MethodGet, "/orders", nil)
	if authorization != "" {
		r.Header.Set("Authorization", authorization)
	}
	r.Header.Set(serverapi.HeaderRequestID, "req-1")
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

// echoIdentity answers 200 with the identity the middleware put in the
// context.
var echoIdentity = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	id, ok := FromContext(r.Context())
	if !ok {
		http.Error(w, "no identity", http.StatusInternalServerError)
		return
	}
	_ = json.NewEncoder(w).Encode(id)
})

func TestMiddlewareDecisions(t *testing.T) {
	clk := fakeClock()
	f := newFakeIssuer(t, clk)
	v, _ := newVerifier(t, f, clk, nil)
	other := newFakeIssuer(t, clk) // another issuer, keys unknown to f
	unpublished, err := keys.Generate(jose.ES256, 0, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	forged, _, err := token.Mint(f.issuer, time.Hour, keys.Key{ID: f.active.ID, Algorithm: jose.ES256, Private: unpublished.Private}, clk, rand.Reader, testSubject, testAudience, []string{"orders:read"})
	if err != nil {
		t.Fatal(err)
	}
	expired, _ := f.mintFor(t, testSubject, testAudience, time.Minute, "orders:read")
	wrongAudience, _ := f.mintFor(t, testSubject, "billing", time.Hour, "orders:read")
	noneAlg := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none","typ":"at+jwt","kid":"`+f.active.ID+`"}`)) + "." +
		strings.Split(f.mint(t, "orders:read"), ".")[1] + "."
	wildcard := f.mint(t, "orders:*")
	readOnly := f.mint(t, "orders:read")
	// the expired token is minted before the clock moves past its exp.
	clk.Step(2 * time.Minute)

	h := v.Handler(echoIdentity, RequirePermission("orders:read"))
	write := v.Handler(echoIdentity, RequirePermission("orders:read", "orders:write"))
	tests := []struct {
		name      string
		h         http.Handler
		auth      string
		status    int
		code      string
		challenge string // WWW-Authenticate must contain it
	}{
		{"valid token", h, "Bearer " + readOnly, 200, "", ""},
		{"scheme in any case", h, "bEaReR " + readOnly, 200, "", ""},
		{"wildcard covers", write, "Bearer " + wildcard, 200, "", ""},
		{"no token", h, "", 401, CodeMissingToken, `Bearer realm="orders"`},
		{"basic, not bearer", h, "Basic Zm9vOmJhcg==", 401, CodeMissingToken, `Bearer realm="orders"`},
		{"garbage", h, "Bearer not-a-jwt", 401, CodeInvalidToken, `error="invalid_token"`},
		{"too large", h, "Bearer " + strings.Repeat("a", token.DefaultMaxSize+1), 401, CodeTokenTooLarge, `error="invalid_token"`},
		{"expired", h, "Bearer " + expired, 401, CodeTokenExpired, `error="invalid_token"`},
		{"wrong audience", h, "Bearer " + wrongAudience, 401, CodeWrongAudience, `error="invalid_token"`},
		{"another issuer's key", h, "Bearer " + other.mint(t, "orders:read"), 401, CodeUnknownKey, `error="invalid_token"`},
		{"forged with a published kid", h, "Bearer " + forged, 401, CodeBadSignature, `error="invalid_token"`},
		{"alg none", h, "Bearer " + noneAlg, 401, CodeInvalidToken, `error="invalid_token"`},
		{"missing permission", write, "Bearer " + readOnly, 403, CodeInsufficientScope, `error="insufficient_scope", error_description="the token lacks a required permission: orders:write", scope="orders:write"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			w := serve(tc.h, tc.auth)
			if w.Code != tc.status {
				t.Fatalf("status %d, want %d: %s", w.Code, tc.status, w.Body)
			}
			if tc.status == 200 {
				var id Identity
				if err := json.Unmarshal(w.Body.Bytes(), &id); err != nil {
					t.Fatal(err)
				}
				if id.Subject != "shop" || id.ClientID != "shop" || id.Namespace != "team-a" || id.AccountUID != "uid-shop" || id.TokenID == "" || id.KeyID != f.active.ID || id.Expiry.IsZero() {
					t.Errorf("identity %+v", id)
				}
				return
			}
			if got := w.Header().Get("WWW-Authenticate"); !strings.Contains(got, tc.challenge) || !strings.HasPrefix(got, `Bearer realm="orders"`) {
				t.Errorf("WWW-Authenticate %q, want it to contain %q", got, tc.challenge)
			}
			if tc.code == CodeMissingToken && strings.Contains(w.Header().Get("WWW-Authenticate"), "error=") {
				t.Errorf("RFC 6750 §3.1: no error code without credentials: %q", w.Header().Get("WWW-Authenticate"))
			}
			var body struct {
				Error struct {
					Code, Message string
					Details       map[string][]string
				}
				RequestID string `json:"request_id"`
				Timestamp string
			}
			if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil {
				t.Fatalf("body %q: %v", w.Body, err)
			}
			if body.Error.Code != tc.code || body.Error.Message == "" || body.RequestID != "req-1" || body.Timestamp != clk.Now().UTC().Format(time.RFC3339) {
				t.Errorf("body %+v, want code %s", body, tc.code)
			}
			if w.Header().Get(serverapi.HeaderAuthError) != tc.code || w.Header().Get("Content-Type") != "application/json" {
				t.Errorf("headers %v", w.Header())
			}
			if strings.Contains(w.Body.String(), strings.TrimPrefix(tc.auth, "Bearer ")) && len(tc.auth) > 20 {
				t.Error("the refusal echoes the token")
			}
		})
	}
}

func TestRequirementsCompose(t *testing.T) {
	clk := fakeClock()
	f := newFakeIssuer(t, clk)
	v, reg := newVerifier(t, f, clk, func(o *Options) { o.Audiences = []string{"orders", "billing"} })
	billing, _ := f.mintFor(t, testSubject, "billing", time.Hour, "orders:read")
	// The outer middleware verifies once; the route adds requirements
	// without verifying again.
	outer := v.Middleware()
	route := outer(v.Middleware(RequireAudience("orders"), RequireScope("orders:read"))(echoIdentity))
	if w := serve(route, "Bearer "+f.mint(t, "orders:read")); w.Code != 200 {
		t.Fatalf("status %d: %s", w.Code, w.Body)
	}
	if w := serve(route, "Bearer "+billing); w.Code != 401 || !strings.Contains(w.Body.String(), CodeWrongAudience) {
		t.Fatalf("a billing token on an orders route: %d %s", w.Code, w.Body)
	}
	if got := counter(t, reg, MetricCache, "result", "miss"); got != 2 {
		t.Errorf("%v cache misses for two tokens through two middlewares, want 2 (one verification each)", got)
	}
}

func TestResultCacheBoundedByExpiryAndSize(t *testing.T) {
	clk := fakeClock()
	f := newFakeIssuer(t, clk)
	v, reg := newVerifier(t, f, clk, func(o *Options) { o.CacheSize = 2; o.Leeway = time.Second })
	raw, _ := f.mintFor(t, testSubject, testAudience, time.Minute, "orders:read")
	ctx := context.Background()
	for range 3 {
		if _, err := v.Verify(ctx, raw); err != nil {
			t.Fatal(err)
		}
	}
	if hit, miss := counter(t, reg, MetricCache, "result", "hit"), counter(t, reg, MetricCache, "result", "miss"); hit != 2 || miss != 1 {
		t.Fatalf("hits %v misses %v, want 2 and 1", hit, miss)
	}
	clk.Step(time.Minute + 2*time.Second)
	if _, err := v.Verify(ctx, raw); err == nil || err.(*Error).Code != CodeTokenExpired {
		t.Fatalf("past exp: %v, want token_expired (not a cached success)", err)
	}
	for range 3 {
		if _, err := v.Verify(ctx, f.mint(t)); err != nil {
			t.Fatal(err)
		}
	}
	if n := v.cache.Len(); n != 2 {
		t.Errorf("cache holds %d results, want its size 2", n)
	}
}

// TestUnknownKidFlood: tokens with made-up kids, however many and however
// concurrent, fetch the key set at most once per refresh interval.
func TestUnknownKidFlood(t *testing.T) {
	clk := fakeClock()
	f := newFakeIssuer(t, clk)
	const interval = 30 * time.Second
	v, reg := newVerifier(t, f, clk, func(o *Options) { o.KeySetRefreshInterval = interval })
	if err := v.WaitForSync(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n := f.jwksFetches.Load(); n != 1 {
		t.Fatalf("%d fetches after sync, want 1", n)
	}
	attacker, err := keys.Generate(jose.ES256, 0, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	flood := func() {
		var wg sync.WaitGroup
		for i := range 200 {
			wg.Go(func() {
				k := attacker
				k.ID = fmt.Sprintf("made-up-%d", i)
				raw, _, err := token.Mint(f.issuer, time.Hour, k, clk, rand.Reader, testSubject, testAudience, nil)
				if err != nil {
					t.Error(err)
					return
				}
				if _, err := v.Verify(context.Background(), raw); err == nil || err.(*Error).Code != CodeUnknownKey {
					t.Errorf("a made-up kid: %v", err)
				}
			})
		}
		wg.Wait()
	}
	flood()
	if n := f.jwksFetches.Load(); n != 1 {
		t.Fatalf("%d fetches after a flood within the interval, want still 1", n)
	}
	for round := 2; round <= 4; round++ {
		clk.Step(interval)
		flood()
		if n := f.jwksFetches.Load(); n != int64(round) {
			t.Fatalf("%d fetches after %d intervals with a flood each, want %d", n, round-1, round)
		}
	}
	if got := counter(t, reg, MetricKeySetThrottled); got < 200 {
		t.Errorf("%v throttled unknown kids, want at least the first flood's 200", got)
	}

	// A rotated key is picked up as soon as the interval allows, and
	// concurrent requests with it share one fetch.
	f.rotate(t)
	clk.Step(interval)
	raw := f.mint(t)
	var wg sync.WaitGroup
	for range 50 {
		wg.Go(func() {
			if _, err := v.Verify(context.Background(), raw); err != nil {
				t.Errorf("a token of the rotated key: %v", err)
			}
		})
	}
	wg.Wait()
	if n := f.jwksFetches.Load(); n != 5 {
		t.Errorf("%d fetches, want 5", n)
	}
}

// TestKeySetRefreshedAheadOfExpiry: the key set is fetched again in the
// background once 3/4 of its max-age has passed, while the old one serves.
func TestKeySetRefreshedAheadOfExpiry(t *testing.T) {
	clk := fakeClock()
	f := newFakeIssuer(t, clk)
	f.cacheControl = "max-age=100"
	v, _ := newVerifier(t, f, clk, func(o *Options) { o.KeySetRefreshInterval = time.Second })
	ctx := context.Background()
	if _, err := v.Verify(ctx, f.mint(t)); err != nil {
		t.Fatal(err)
	}
	clk.Step(74 * time.Second)
	if _, err := v.Verify(ctx, f.mint(t)); err != nil {
		t.Fatal(err)
	}
	if n := f.jwksFetches.Load(); n != 1 {
		t.Fatalf("%d fetches before 3/4 of max-age, want 1", n)
	}
	old := f.mint(t)
	next := f.rotate(t)
	clk.Step(2 * time.Second)
	// A token of the old key, served by the cached set, sets off the
	// refresh; the next key arrives without any token asking for it.
	if _, err := v.Verify(ctx, old); err != nil {
		t.Fatal(err)
	}
	until(t, 5*time.Second, "the refresh ahead of expiry", func() bool { return v.keys.has(next.ID) })
	if n := f.jwksFetches.Load(); n != 2 {
		t.Errorf("%d fetches, want 2", n)
	}
}

func TestCacheLifetime(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	date := now.Format(http.TimeFormat)
	tests := []struct {
		name   string
		header map[string]string
		want   time.Duration
		ok     bool
	}{
		{"nothing", nil, 0, false},
		{"max-age", map[string]string{"Cache-Control": "public, max-age=120"}, 2 * time.Minute, true},
		{"max-age wins over Expires", map[string]string{"Cache-Control": "max-age=60", "Expires": now.Add(time.Hour).Format(http.TimeFormat)}, time.Minute, true},
		{"no-store", map[string]string{"Cache-Control": "no-store, max-age=60"}, 0, true},
		{"no-cache", map[string]string{"Cache-Control": "no-cache"}, 0, true},
		{"invalid max-age is stale", map[string]string{"Cache-Control": "max-age=soon"}, 0, true},
		{"huge max-age is capped", map[string]string{"Cache-Control": "max-age=99999999999"}, MaxKeySetLifetime, true},
		{"Expires minus Date", map[string]string{"Date": date, "Expires": now.Add(10 * time.Minute).Format(http.TimeFormat)}, 10 * time.Minute, true},
		{"Expires in the past", map[string]string{"Date": date, "Expires": now.Add(-time.Minute).Format(http.TimeFormat)}, 0, true},
		{"invalid Expires is stale", map[string]string{"Expires": "0"}, 0, true},
	}
	for _, tc := range tests {
		h := http.Header{}
		for k, v := range tc.header {
			h.Set(k, v)
		}
		got, ok := CacheLifetime(h, now)
		if got != tc.want || ok != tc.ok {
			t.Errorf("%s: %v %v, want %v %v", tc.name, got, ok, tc.want, tc.ok)
		}
	}
}

// TestNoKeysIsUnavailable: when the issuer cannot be reached at all, the
// answer is 503 with Retry-After, not a 401 the caller could not fix.
func TestNoKeysIsUnavailable(t *testing.T) {
	clk := fakeClock()
	f := newFakeIssuer(t, clk)
	raw := f.mint(t)
	f.srv.Close()
	v, _ := newVerifier(t, f, clk, nil)
	w := serve(v.Handler(echoIdentity), "Bearer "+raw)
	if w.Code != http.StatusServiceUnavailable || w.Header().Get("Retry-After") != "1" || !strings.Contains(w.Body.String(), CodeUnavailable) {
		t.Fatalf("%d %v %s", w.Code, w.Header(), w.Body)
	}
	if err := v.WaitForSync(context.Background()); err == nil {
		t.Error("WaitForSync succeeded without keys")
	}
}

func TestOptionsRefused(t *testing.T) {
	for name, o := range map[string]Options{
		"no issuer":                 {Audiences: []string{"a"}},
		"relative issuer":           {Issuer: "/issuers/a/b", Audiences: []string{"a"}},
		"no audience":               {Issuer: "https://x/issuers/a/b"},
		"introspect, no credential": {Issuer: "https://x/issuers/a/b", Audiences: []string{"a"}, Remote: &RemoteOptions{}},
		"stream, no token":          {Issuer: "https://x/issuers/a/b", Audiences: []string{"a"}, Revocations: &RevocationOptions{}},
	} {
		if _, err := New(context.Background(), o); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
