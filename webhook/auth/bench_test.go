package auth

import (
	"net/http/httptest"
	"net/url"
	"testing"

	"github.com/go-logr/logr"
)

// BenchmarkValidate measures /validate through the whole handler, with the
// result cache (the same token again) and without it.
func BenchmarkValidate(b *testing.B) {
	for _, mode := range []struct {
		name  string
		cache int
	}{{"cached", 1000}, {"uncached", 0}} {
		b.Run(mode.name, func(b *testing.B) {
			f := newFixture(&testing.T{})
			f.server = NewServer(f.store, Options{Clock: f.clock, Log: logr.Discard(), Audit: logr.Discard(), CacheSize: mode.cache})
			tok := f.token(nil)
			req := httptest.NewRequest("GET", "/validate?aud=orders-api&permission=orders:read", nil)
			req.Header.Set("Authorization", "Bearer "+tok)
			b.ReportAllocs()
			for b.Loop() {
				w := httptest.NewRecorder()
				f.server.ServeHTTP(w, req)
				if w.Code != 200 {
					b.Fatal(w.Code)
				}
			}
		})
	}
}

// BenchmarkToken measures the token endpoint (client authentication and
// ES256 signing).
func BenchmarkToken(b *testing.B) {
	f := newFixture(&testing.T{})
	f.server = NewServer(f.store, Options{Clock: f.clock, Log: logr.Discard(), Audit: logr.Discard()})
	form := url.Values{"grant_type": {"client_credentials"}}
	hdr := basic(clientID, secret)
	b.ReportAllocs()
	for b.Loop() {
		// The fixture's bucket allows 100 requests a second; step time so the
		// rate limit measures nothing here.
		f.clock.Step(1e7)
		if w := f.do("POST", "/token", form, hdr); w.Code != 200 {
			b.Fatal(w.Code, w.Body)
		}
	}
}
