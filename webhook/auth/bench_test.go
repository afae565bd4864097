package auth

import (
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/go-logr/logr"
	"k8s.io/apimachinery/pkg/types"
	clocktesting "k8s.io/utils/clock/testing"

	"github.com/authframework/authframework/internal/authz"
	"github.com/authframework/authframework/internal/credentials"
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

// scaleFixture is a store with accounts ServiceAccounts under one ES256
// policy, each holding roles Roles with one route rule each (only the last
// role's rule matches the benchmark's request, so every rule is read), and
// the server over it with the given result cache size. It returns a token
// of one account in the middle, narrowed to orders:read so that its size
// does not grow with the account's permissions.
func scaleFixture(b *testing.B, accounts, roles, cacheSize int) (*Server, *clocktesting.FakeClock, string, map[string]string) {
	b.Helper()
	f := newFixture(b)
	// The fixture's account stays; the others join it.
	verifier := &credentials.Verifier{Current: credentials.Hash(secret)}
	roleNames := make([]string, roles)
	perms := []string{"orders:read"}
	for j := range roles {
		roleNames[j] = fmt.Sprintf("role-%03d", j)
		host := fmt.Sprintf("svc%03d.example.com", j)
		if j == roles-1 {
			host = "api.example.com"
		}
		f.store.SetRole(types.NamespacedName{Namespace: ns, Name: roleNames[j]}, []authz.Route{
			{Hosts: []string{host}, Paths: []string{"/api/orders/**"}, Methods: []string{"GET", "HEAD"}},
		})
		perms = append(perms, fmt.Sprintf("svc%03d:read", j))
	}
	slices.Sort(perms)
	for i := range accounts {
		key := types.NamespacedName{Namespace: ns, Name: fmt.Sprintf("client-%05d", i)}
		uid := types.UID(fmt.Sprintf("uid-%05d", i))
		f.store.SetVerifier(key, uid, verifier)
		f.store.SetAccount(Account{Key: key, UID: uid, ClientID: fmt.Sprintf("team.client-%05d", i), Policy: "orders",
			Roles: roleNames, Permissions: perms})
	}
	srv := NewServer(f.store, Options{Clock: f.clock, Log: logr.Discard(), Audit: logr.Discard(), CacheSize: cacheSize})
	f.server = srv
	hdr := basic(fmt.Sprintf("team.client-%05d", accounts/2), secret)
	w := f.do("POST", "/token", url.Values{"grant_type": {"client_credentials"}, "scope": {"orders:read"}}, hdr)
	var body struct {
		AccessToken string `json:"access_token"`
	}
	if w.Code != 200 || json.Unmarshal(w.Body.Bytes(), &body) != nil {
		b.Fatal(w.Code, w.Body)
	}
	return srv, f.clock, body.AccessToken, hdr
}

// BenchmarkValidateScale shows /validate's cost against the number of
// accounts the server holds (10 to 10,000, one role each) and the number of
// roles of the token's account (1 to 100, among 1,000 accounts), cached and
// uncached. Flat is the target: a request reads its own account and roles
// by key, never a list of all.
func BenchmarkValidateScale(b *testing.B) {
	type size struct {
		name            string
		accounts, roles int
	}
	var sizes []size
	for _, n := range []int{10, 100, 1000, 10000} {
		sizes = append(sizes, size{fmt.Sprintf("accounts=%d", n), n, 1})
	}
	for _, r := range []int{1, 10, 100} {
		sizes = append(sizes, size{fmt.Sprintf("roles=%d", r), 1000, r})
	}
	for _, sz := range sizes {
		for _, mode := range []struct {
			name  string
			cache int
		}{{"cached", 1000}, {"uncached", 0}} {
			b.Run(sz.name+"/"+mode.name, func(b *testing.B) {
				srv, _, tok, _ := scaleFixture(b, sz.accounts, sz.roles, mode.cache)
				req := httptest.NewRequest("GET", "/validate?aud=orders-api&permission=orders:read&routes=true", nil)
				req.Header.Set("Authorization", "Bearer "+tok)
				req.Header.Set("X-Original-URL", "https://api.example.com/api/orders/42")
				req.Header.Set("X-Original-Method", "GET")
				b.ReportAllocs()
				for b.Loop() {
					w := httptest.NewRecorder()
					srv.ServeHTTP(w, req)
					if w.Code != 200 {
						b.Fatal(w.Code, w.Body)
					}
				}
			})
		}
	}
}

// BenchmarkTokenScale shows the token endpoint's cost (client
// authentication by client id, ES256 signing) against the number of
// accounts the server holds.
func BenchmarkTokenScale(b *testing.B) {
	for _, n := range []int{10, 100, 1000, 10000} {
		b.Run(fmt.Sprintf("accounts=%d", n), func(b *testing.B) {
			srv, clk, _, hdr := scaleFixture(b, n, 1, 0)
			form := url.Values{"grant_type": {"client_credentials"}, "scope": {"orders:read"}}
			b.ReportAllocs()
			for b.Loop() {
				// Step time so the per-client rate limit measures nothing.
				clk.Step(1e7)
				req := httptest.NewRequest("POST", "/token", strings.NewReader(form.Encode()))
				req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
				req.Header.Set("Authorization", hdr["Authorization"])
				w := httptest.NewRecorder()
				srv.ServeHTTP(w, req)
				if w.Code != 200 {
					b.Fatal(w.Code, w.Body)
				}
			}
		})
	}
}
