package verify

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/utils/clock"
	clocktesting "k8s.io/utils/clock/testing"

	"github.com/authframework/authframework/internal/keys"
	"github.com/authframework/authframework/internal/token"
	"github.com/authframework/authframework/pkg/serverapi"
)

const testAudience = "orders"

var testSubject = token.Subject{ClientID: "shop", Namespace: "team-a", UID: "uid-shop", Roles: []string{"reader"}}

// fakeIssuer serves an issuer's discovery document and JWKS on httptest,
// counts the fetches, and mints tokens; tests add /introspect and
// /revocations handlers as they need.
type fakeIssuer struct {
	srv    *httptest.Server
	issuer string
	clk    clock.PassiveClock

	mu           sync.Mutex
	published    []keys.Key
	active       keys.Key
	cacheControl string
	handlers     map[string]http.HandlerFunc

	jwksFetches atomic.Int64
}

func newFakeIssuer(t testing.TB, clk clock.PassiveClock) *fakeIssuer {
	t.Helper()
	f := &fakeIssuer{clk: clk, cacheControl: "public, max-age=300", handlers: map[string]http.HandlerFunc{}}
	f.rotate(t)
	path := serverapi.IssuerPath("team-a", "default")
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+serverapi.DiscoveryPath("team-a", "default"), func(w http.ResponseWriter, r *http.Request) {
		_ = json.NewEncoder(w).Encode(discoveryDoc{
			Issuer: f.issuer, JWKSURI: f.srv.URL + serverapi.JWKSPath("team-a", "default"),
			TokenEndpoint: f.srv.URL + serverapi.PathToken, IntrospectionEndpoint: f.srv.URL + serverapi.PathIntrospect,
		})
	})
	mux.HandleFunc("GET "+serverapi.JWKSPath("team-a", "default"), func(w http.ResponseWriter, r *http.Request) {
		f.jwksFetches.Add(1)
		f.mu.Lock()
		set := keys.PublicSet(f.published)
		w.Header().Set("Cache-Control", f.cacheControl)
		f.mu.Unlock()
		_ = json.NewEncoder(w).Encode(set)
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		h := f.handlers[r.URL.Path]
		f.mu.Unlock()
		if h == nil {
			http.NotFound(w, r)
			return
		}
		h(w, r)
	})
	f.srv = httptest.NewServer(mux)
	t.Cleanup(f.srv.Close)
	f.issuer = f.srv.URL + path
	return f
}

// handle serves path with h.
func (f *fakeIssuer) handle(path string, h http.HandlerFunc) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.handlers[path] = h
}

// rotate publishes a new key and signs with it from now on.
func (f *fakeIssuer) rotate(t testing.TB) keys.Key {
	t.Helper()
	k, err := keys.Generate(jose.ES256, 0, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.published = append(f.published, k)
	f.active = k
	return k
}

// mint signs a token for testSubject and testAudience with perms.
func (f *fakeIssuer) mint(t testing.TB, perms ...string) string {
	t.Helper()
	raw, _ := f.mintFor(t, testSubject, testAudience, time.Hour, perms...)
	return raw
}

func (f *fakeIssuer) mintFor(t testing.TB, s token.Subject, aud string, ttl time.Duration, perms ...string) (string, token.Claims) {
	t.Helper()
	f.mu.Lock()
	k := f.active
	f.mu.Unlock()
	raw, c, err := token.Mint(f.issuer, ttl, k, f.clk, rand.Reader, s, aud, perms)
	if err != nil {
		t.Fatal(err)
	}
	return raw, c
}

// newVerifier is a verifier of f's issuer on clk, with its metrics on a
// registry of its own.
func newVerifier(t testing.TB, f *fakeIssuer, clk clock.Clock, mutate func(*Options)) (*Verifier, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	opts := Options{Issuer: f.issuer, Audiences: []string{testAudience}, Clock: clk, Registerer: reg}
	if mutate != nil {
		mutate(&opts)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	v, err := New(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	return v, reg
}

// counter reads a counter of reg by name and label values.
func counter(t testing.TB, reg *prometheus.Registry, name string, labels ...string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	metric:
		for _, m := range mf.GetMetric() {
			for i, l := range m.GetLabel() {
				if i*2+1 >= len(labels) || l.GetName() != labels[i*2] || l.GetValue() != labels[i*2+1] {
					continue metric
				}
			}
			if c := m.GetCounter(); c != nil {
				return c.GetValue()
			}
			return m.GetGauge().GetValue()
		}
	}
	return 0
}

func fakeClock() *clocktesting.FakeClock {
	return clocktesting.NewFakeClock(time.Now().Truncate(time.Second))
}

// until polls cond (every 2ms, apimachinery's wait) until it holds or d
// passes.
func until(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	err := wait.PollUntilContextTimeout(context.Background(), 2*time.Millisecond, d, true, func(context.Context) (bool, error) {
		return cond(), nil
	})
	if err != nil {
		t.Fatalf("timed out after %s waiting for %s", d, what)
	}
}
