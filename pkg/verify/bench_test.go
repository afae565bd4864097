package verify

import (
	"context"
	"net/http"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

// discard is a ResponseWriter that keeps nothing, so that the benchmarks
// measure verification, not recording.
type discard struct {
	h    http.Header
	code int
}

func (d *discard) Header() http.Header         { return d.h }
func (d *discard) Write(b []byte) (int, error) { return len(b), nil }
func (d *discard) WriteHeader(code int)        { d.code = code }

var ok200 = http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusOK) })

func benchRequest(b *testing.B, raw string) *http.Request {
	r, err := http.NewRequest(http.MethodGet, "http://svc/orders", nil)
	if err != nil {
		b.Fatal(err)
	}
	r.Header.Set("Authorization", "Bearer "+raw)
	return r
}

func runHandler(b *testing.B, h http.Handler, r *http.Request) {
	w := &discard{h: http.Header{}}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		w.code = 0
		h.ServeHTTP(w, r)
		if w.code != http.StatusOK {
			b.Fatalf("status %d", w.code)
		}
	}
}

// BenchmarkBareGoJose is the baseline: a handler that reads the bearer
// token and verifies it with go-jose alone (signature, iss, aud, exp).
func BenchmarkBareGoJose(b *testing.B) {
	clk := fakeClock()
	f := newFakeIssuer(b, clk)
	raw := f.mint(b, "orders:read")
	pub := f.active.Public()
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tok, ok := bearer(r.Header)
		if !ok {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		parsed, err := jwt.ParseSigned(tok, []jose.SignatureAlgorithm{jose.ES256})
		if err != nil {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		var c jwt.Claims
		if err := parsed.Claims(pub, &c); err != nil {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		if err := c.ValidateWithLeeway(jwt.Expected{Issuer: f.issuer, AnyAudience: jwt.Audience{testAudience}, Time: clk.Now()}, 30*time.Second); err != nil {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		w.WriteHeader(http.StatusOK)
	})
	runHandler(b, h, benchRequest(b, raw))
}

// BenchmarkMiddlewareLocal is the middleware verifying every request (the
// result cache off): internal/token's full RFC 8725 checks, the key by kid
// from the cached key set, the Identity in the context.
func BenchmarkMiddlewareLocal(b *testing.B) {
	clk := fakeClock()
	f := newFakeIssuer(b, clk)
	v, _ := newVerifier(b, f, clk, func(o *Options) { o.CacheSize = -1 })
	if err := v.WaitForSync(context.Background()); err != nil {
		b.Fatal(err)
	}
	runHandler(b, v.Handler(ok200, RequirePermission("orders:read")), benchRequest(b, f.mint(b, "orders:read")))
}

// BenchmarkMiddlewareCached is a token seen before: SHA-256, a cache
// lookup, the revocation check, the requirement and the context.
func BenchmarkMiddlewareCached(b *testing.B) {
	clk := fakeClock()
	f := newFakeIssuer(b, clk)
	v, _ := newVerifier(b, f, clk, nil)
	runHandler(b, v.Handler(ok200, RequirePermission("orders:read")), benchRequest(b, f.mint(b, "orders:read")))
}
