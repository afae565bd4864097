package auth

import (
	"encoding/json"
	"net/netip"
	"net/url"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/types"

	"github.com/authframework/authframework/internal/authz"
)

func TestTokenEndpoint(t *testing.T) {
	grant := url.Values{"grant_type": {"client_credentials"}}
	with := func(extra url.Values) url.Values {
		v := url.Values{}
		for k, vs := range grant {
			v[k] = vs
		}
		for k, vs := range extra {
			v[k] = vs
		}
		return v
	}
	cases := []struct {
		name     string
		body     url.Values
		hdr      map[string]string
		status   int
		errCode  string
		wantAuth bool
	}{
		{"basic", grant, basic(clientID, secret), 200, "", false},
		{"post", with(url.Values{"client_id": {clientID}, "client_secret": {secret}}), nil, 200, "", false},
		{"previous secret in grace", grant, basic(clientID, oldSec), 200, "", false},
		{"both methods", with(url.Values{"client_id": {clientID}, "client_secret": {secret}}), basic(clientID, secret), 400, "invalid_request", false},
		{"no client authentication", grant, nil, 401, "invalid_client", true},
		{"wrong secret", grant, basic(clientID, "nope"), 401, "invalid_client", true},
		{"unknown client", grant, basic("team.nobody", secret), 401, "invalid_client", true},
		{"unsupported grant", url.Values{"grant_type": {"password"}}, basic(clientID, secret), 400, "unsupported_grant_type", false},
		{"missing grant", url.Values{}, basic(clientID, secret), 400, "invalid_request", false},
		{"repeated parameter", url.Values{"grant_type": {"client_credentials", "client_credentials"}}, basic(clientID, secret), 400, "invalid_request", false},
		{"scope within grants", with(url.Values{"scope": {"orders:read"}}), basic(clientID, secret), 200, "", false},
		{"scope beyond grants", with(url.Values{"scope": {"orders:read admin:*"}}), basic(clientID, secret), 400, "invalid_scope", false},
		{"audience of the policy", with(url.Values{"audience": {"inventory-api"}}), basic(clientID, secret), 200, "", false},
		{"resource of the policy", with(url.Values{"resource": {"inventory-api"}}), basic(clientID, secret), 200, "", false},
		{"audience of another tenant", with(url.Values{"audience": {"payments-api"}}), basic(clientID, secret), 400, "invalid_target", false},
		{"audience and resource agree", with(url.Values{"audience": {"inventory-api"}, "resource": {"inventory-api"}}), basic(clientID, secret), 200, "", false},
		{"audience and resource disagree", with(url.Values{"audience": {"orders-api"}, "resource": {"inventory-api"}}), basic(clientID, secret), 400, "invalid_target", false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := newFixture(t)
			w := f.do("POST", "/token", c.body, c.hdr)
			if w.Code != c.status {
				t.Fatalf("status %d, want %d: %s", w.Code, c.status, w.Body)
			}
			if w.Header().Get("Cache-Control") != "no-store" {
				t.Errorf("Cache-Control %q", w.Header().Get("Cache-Control"))
			}
			var body map[string]any
			if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil {
				t.Fatalf("body is not JSON: %s", w.Body)
			}
			if c.status == 200 {
				if body["token_type"] != "Bearer" || body["expires_in"] != float64(900) || body["access_token"] == "" {
					t.Errorf("response %v", body)
				}
				if _, ok := body["refresh_token"]; ok {
					t.Error("a refresh token was issued for client credentials")
				}
				return
			}
			if body["error"] != c.errCode || body["request_id"] == "" || body["timestamp"] == "" {
				t.Errorf("error body %v, want error %q with request_id and timestamp", body, c.errCode)
			}
			if c.wantAuth != (w.Header().Get("WWW-Authenticate") != "") {
				t.Errorf("WWW-Authenticate %q", w.Header().Get("WWW-Authenticate"))
			}
		})
	}
}

func TestTokenEndpointScopeAndDisabled(t *testing.T) {
	f := newFixture(t)
	tok := f.token(url.Values{"scope": {"orders:read"}, "audience": {"inventory-api"}})
	p, _ := f.store.PolicyByName(types.NamespacedName{Namespace: ns, Name: "orders"})
	c, err := p.Verify(tok)
	if err != nil {
		t.Fatal(err)
	}
	if c.Scope != "orders:read" || c.Audience[0] != "inventory-api" || c.ClientID != clientID || c.Namespace != ns {
		t.Errorf("claims %+v", c)
	}
	// After the grace the previous secret fails.
	f.clock.Step(time.Hour)
	if w := f.do("POST", "/token", url.Values{"grant_type": {"client_credentials"}}, basic(clientID, oldSec)); w.Code != 401 {
		t.Errorf("previous secret after grace: %d", w.Code)
	}
	a, _, _ := f.store.Client(clientID)
	d := *a
	d.Disabled = true
	f.store.SetAccount(d)
	if w := f.do("POST", "/token", url.Values{"grant_type": {"client_credentials"}}, basic(clientID, secret)); w.Code != 400 || !strings.Contains(w.Body.String(), "unauthorized_client") {
		t.Errorf("disabled client: %d %s", w.Code, w.Body)
	}
}

// TestTokenEndpointRateLimit is the policy's per-client request rate, which
// only authenticated requests take from (brute-force throttling is in
// limits_test.go).
func TestTokenEndpointRateLimit(t *testing.T) {
	// Burst of 100, then the bucket is empty until time passes.
	g := newFixture(t)
	codes := map[int]int{}
	for range 120 {
		codes[g.do("POST", "/token", url.Values{"grant_type": {"client_credentials"}}, basic(clientID, secret)).Code]++
	}
	if codes[200] != 100 || codes[429] != 20 {
		t.Errorf("rate limit: %v, want 100 allowed and 20 refused", codes)
	}
	w := g.do("POST", "/token", url.Values{"grant_type": {"client_credentials"}}, basic(clientID, secret))
	if w.Header().Get("Retry-After") != "1" || !strings.Contains(w.Body.String(), `"error":"temporarily_unavailable"`) {
		t.Errorf("rate limited: Retry-After %q, body %s", w.Header().Get("Retry-After"), w.Body)
	}
	g.clock.Step(time.Second)
	if w := g.do("POST", "/token", url.Values{"grant_type": {"client_credentials"}}, basic(clientID, secret)); w.Code != 200 {
		t.Errorf("after a second the bucket refills: %d", w.Code)
	}
}

func TestValidate(t *testing.T) {
	type check struct {
		status int
		code   string
	}
	cases := []struct {
		name   string
		setup  func(f *fixture) (target string, hdr map[string]string)
		want   check
		verify func(t *testing.T, f *fixture, hdr map[string][]string)
	}{
		{"valid token", func(f *fixture) (string, map[string]string) {
			return "/validate", bearerHdr(f.token(nil))
		}, check{200, ""}, func(t *testing.T, f *fixture, h map[string][]string) {
			if h["X-User-Id"][0] != clientID || h["X-User-Permissions"][0] != "orders:*,inventory:read" || h["X-User-Namespace"][0] != ns || h["X-User-Roles"][0] != "orders-reader" || h["X-Token-Id"][0] == "" {
				t.Errorf("identity headers %v", h)
			}
		}},
		{"any method and sub-path (Envoy shape)", func(f *fixture) (string, map[string]string) {
			return "/ext-authz/api/orders", bearerHdr(f.token(nil))
		}, check{200, ""}, nil},
		{"no token", func(f *fixture) (string, map[string]string) { return "/validate", nil }, check{401, "missing_token"}, func(t *testing.T, f *fixture, h map[string][]string) {
			if h["Www-Authenticate"][0] != `Bearer realm="authframework"` {
				t.Errorf("WWW-Authenticate %v", h["Www-Authenticate"])
			}
		}},
		{"not a bearer", func(f *fixture) (string, map[string]string) {
			return "/validate", map[string]string{"Authorization": "Basic abc"}
		}, check{401, "missing_token"}, nil},
		{"garbage", func(f *fixture) (string, map[string]string) { return "/validate", bearerHdr("not.a.token") }, check{401, "invalid_token"}, nil},
		{"expired", func(f *fixture) (string, map[string]string) {
			tok := f.token(nil)
			f.clock.Step(16 * time.Minute)
			return "/validate", bearerHdr(tok)
		}, check{401, "token_expired"}, nil},
		{"required permission held", func(f *fixture) (string, map[string]string) {
			return "/validate?aud=orders-api&permission=orders:read", bearerHdr(f.token(nil))
		}, check{200, ""}, nil},
		{"required permission missing", func(f *fixture) (string, map[string]string) {
			return "/validate?permission=orders:read,billing:read", bearerHdr(f.token(nil))
		}, check{403, "insufficient_scope"}, func(t *testing.T, f *fixture, h map[string][]string) {
			if !strings.Contains(h["Www-Authenticate"][0], `error="insufficient_scope"`) || !strings.Contains(h["X-Auth-Error-Description"][0], "billing:read") {
				t.Errorf("403 headers %v", h)
			}
		}},
		{"narrowed token lacks a permission", func(f *fixture) (string, map[string]string) {
			return "/validate?permission=inventory:read", bearerHdr(f.token(url.Values{"scope": {"orders:read"}}))
		}, check{403, "insufficient_scope"}, nil},
		{"another tenant's audience", func(f *fixture) (string, map[string]string) {
			return "/validate?aud=payments-api", bearerHdr(f.token(nil))
		}, check{401, "wrong_audience"}, func(t *testing.T, f *fixture, h map[string][]string) {
			if !strings.Contains(h["Www-Authenticate"][0], `error="invalid_token"`) {
				t.Errorf("WWW-Authenticate %v", h["Www-Authenticate"])
			}
		}},
		{"disabled account", func(f *fixture) (string, map[string]string) {
			tok := f.token(nil)
			f.updateAccount(func(a *Account) { a.Disabled = true })
			return "/validate", bearerHdr(tok)
		}, check{401, "client_disabled"}, nil},
		{"deleted account", func(f *fixture) (string, map[string]string) {
			tok := f.token(nil)
			f.store.DeleteAccount(types.NamespacedName{Namespace: ns, Name: "billing"})
			return "/validate", bearerHdr(tok)
		}, check{401, "unknown_client"}, nil},
		{"issued before revokeTokensIssuedBefore", func(f *fixture) (string, map[string]string) {
			tok := f.token(nil)
			f.clock.Step(time.Minute)
			f.updateAccount(func(a *Account) { a.RevokeTokensIssuedBefore = f.clock.Now() })
			return "/validate", bearerHdr(tok)
		}, check{401, "token_revoked"}, nil},
		{"revoked jti", func(f *fixture) (string, map[string]string) {
			tok := f.token(nil)
			if w := f.do("POST", "/revoke", url.Values{"token": {tok}}, basic(clientID, secret)); w.Code != 200 {
				t.Fatalf("revoke: %d %s", w.Code, w.Body)
			}
			return "/validate", bearerHdr(tok)
		}, check{401, "token_revoked"}, nil},
		{"key revoked", func(f *fixture) (string, map[string]string) {
			tok := f.token(nil)
			f.store.SetKeys(types.NamespacedName{Namespace: ns, Name: "orders"}, "", nil)
			return "/validate", bearerHdr(tok)
		}, check{401, "unknown_key"}, nil},
		{"permission removed from the account", func(f *fixture) (string, map[string]string) {
			tok := f.token(nil)
			f.updateAccount(func(a *Account) { a.Permissions = []string{"inventory:read"} })
			return "/validate?permission=orders:read", bearerHdr(tok)
		}, check{403, "insufficient_scope"}, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := newFixture(t)
			target, hdr := c.setup(f)
			if hdr == nil {
				hdr = map[string]string{}
			}
			hdr["X-Request-ID"] = "req-123"
			w := f.do("GET", target, nil, hdr)
			if w.Code != c.want.status {
				t.Fatalf("status %d, want %d: %s", w.Code, c.want.status, w.Body)
			}
			if w.Header().Get("X-Request-ID") != "req-123" {
				t.Errorf("request id not echoed: %q", w.Header().Get("X-Request-ID"))
			}
			if c.want.status != 200 {
				var body apiError
				if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil || body.Error.Code != c.want.code || body.RequestID != "req-123" || body.Timestamp == "" {
					t.Errorf("error body %s (%v), want code %q", w.Body, err, c.want.code)
				}
				if w.Header().Get(HeaderAuthError) != c.want.code {
					t.Errorf("%s header %q, want %q (nginx drops the body)", HeaderAuthError, w.Header().Get(HeaderAuthError), c.want.code)
				}
			}
			if c.verify != nil {
				c.verify(t, f, w.Header())
			}
			f.assertNoSecretsLogged(hdr)
		})
	}
}

func (f *fixture) updateAccount(mod func(*Account)) {
	a, _, _ := f.store.Client(clientID)
	c := *a
	mod(&c)
	f.store.SetAccount(c)
}

// assertNoSecretsLogged: no token or client secret in any log or audit line.
func (f *fixture) assertNoSecretsLogged(hdr map[string]string) {
	f.t.Helper()
	logs := f.logs.String()
	for _, s := range []string{secret, oldSec} {
		if strings.Contains(logs, s) {
			f.t.Error("a client secret was logged")
		}
	}
	if a := hdr["Authorization"]; len(a) > 20 && strings.Contains(logs, a[7:]) {
		f.t.Error("a token was logged")
	}
}

func TestValidateCache(t *testing.T) {
	f := newFixture(t)
	tok := f.token(nil)
	for range 3 {
		if w := f.do("GET", "/validate", nil, bearerHdr(tok)); w.Code != 200 {
			t.Fatal(w.Code)
		}
	}
	if f.server.cache.lru.Len() != 1 {
		t.Errorf("cache has %d entries", f.server.cache.lru.Len())
	}
	// A change to the account after caching is seen at once.
	f.updateAccount(func(a *Account) { a.Disabled = true })
	if w := f.do("GET", "/validate", nil, bearerHdr(tok)); w.Code != 401 {
		t.Errorf("cached result outlived a disable: %d", w.Code)
	}
	// An entry never outlives its token.
	f.updateAccount(func(a *Account) { a.Disabled = false })
	f.do("GET", "/validate", nil, bearerHdr(tok))
	f.clock.Step(15*time.Minute + 31*time.Second)
	if w := f.do("GET", "/validate", nil, bearerHdr(tok)); w.Code != 401 {
		t.Errorf("expired token served from cache: %d", w.Code)
	}
}

func TestRevokeAndIntrospect(t *testing.T) {
	f := newFixture(t)
	tok := f.token(nil)
	introspect := func() map[string]any {
		w := f.do("POST", "/introspect", url.Values{"token": {tok}}, basic(clientID, secret))
		var m map[string]any
		if w.Code != 200 || json.Unmarshal(w.Body.Bytes(), &m) != nil {
			t.Fatalf("introspect: %d %s", w.Code, w.Body)
		}
		return m
	}
	if m := introspect(); m["active"] != true || m["client_id"] != clientID || m["scope"] != "orders:* inventory:read" {
		t.Errorf("introspection of a live token %v", m)
	}
	if w := f.do("POST", "/introspect", url.Values{"token": {tok}}, nil); w.Code != 401 {
		t.Errorf("introspection without client authentication: %d", w.Code)
	}
	if w := f.do("POST", "/revoke", url.Values{"token": {tok}}, nil); w.Code != 401 {
		t.Errorf("revocation without client authentication: %d", w.Code)
	}
	if w := f.do("POST", "/revoke", url.Values{"token": {"garbage"}}, basic(clientID, secret)); w.Code != 200 {
		t.Errorf("RFC 7009: an invalid token still answers 200, got %d", w.Code)
	}
	if w := f.do("POST", "/revoke", url.Values{"token": {tok}}, basic(clientID, secret)); w.Code != 200 {
		t.Fatalf("revoke: %d", w.Code)
	}
	if _, ok := f.revs[RevocationKey(types.NamespacedName{Namespace: ns, Name: "orders"}, introspectJTI(t, f, tok))]; !ok {
		t.Error("the revocation was not stored")
	}
	if m := introspect(); m["active"] != false || len(m) != 1 {
		t.Errorf("introspection of a revoked token %v", m)
	}
}

func introspectJTI(t *testing.T, f *fixture, tok string) string {
	p, _ := f.store.PolicyByName(types.NamespacedName{Namespace: ns, Name: "orders"})
	c, err := p.Verify(tok)
	if err != nil {
		t.Fatal(err)
	}
	return c.ID
}

func TestDiscoveryAndJWKS(t *testing.T) {
	f := newFixture(t)
	w := f.do("GET", "/issuers/team/orders/.well-known/openid-configuration", nil, nil)
	var d discovery
	if w.Code != 200 || json.Unmarshal(w.Body.Bytes(), &d) != nil {
		t.Fatalf("discovery %d %s", w.Code, w.Body)
	}
	if d.Issuer != "https://auth.example.com/issuers/team/orders" || !strings.HasSuffix(d.JWKSURI, "/issuers/team/orders/jwks.json") || d.TokenEndpoint == "" {
		t.Errorf("discovery %+v", d)
	}
	if cc := w.Header().Get("Cache-Control"); cc != "public, max-age=300" {
		t.Errorf("Cache-Control %q: must be shorter than the 1h pre-publish lead", cc)
	}
	w = f.do("GET", "/issuers/team/orders/jwks.json", nil, nil)
	var set struct {
		Keys []map[string]any `json:"keys"`
	}
	if w.Code != 200 || json.Unmarshal(w.Body.Bytes(), &set) != nil || len(set.Keys) != 1 {
		t.Fatalf("jwks %d %s", w.Code, w.Body)
	}
	if _, private := set.Keys[0]["d"]; private || set.Keys[0]["kid"] != f.key.ID {
		t.Errorf("jwks key %v", set.Keys[0])
	}
	if w := f.do("GET", "/issuers/team/nope/jwks.json", nil, nil); w.Code != 404 {
		t.Errorf("unknown issuer: %d", w.Code)
	}
	// Discovery advertises only what the server does: no authorization
	// endpoint, so no response type.
	if len(d.ResponseTypesSupported) != 0 || d.GrantTypesSupported[0] != "client_credentials" {
		t.Errorf("discovery advertises %v / %v", d.ResponseTypesSupported, d.GrantTypesSupported)
	}
	// X-Forwarded-Host and -Proto are a trusted proxy's word only: a
	// client's would put its own jwks_uri into a shared cache.
	poison := map[string]string{"X-Forwarded-Host": "evil.example", "X-Forwarded-Proto": "https"}
	discover := func() discovery {
		var d discovery
		_ = json.Unmarshal(doFrom(f.server, "192.0.2.7:5000", "GET", "/issuers/team/orders/.well-known/openid-configuration", nil, poison).Body.Bytes(), &d)
		return d
	}
	if d := discover(); strings.Contains(d.JWKSURI, "evil.example") || strings.HasPrefix(d.JWKSURI, "https:") {
		t.Errorf("an untrusted client's forwarded headers reached discovery: %s", d.JWKSURI)
	}
	f.server.opts.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")}
	if d := discover(); d.JWKSURI != "https://evil.example/issuers/team/orders/jwks.json" {
		t.Errorf("a trusted proxy's forwarded headers were ignored: %s", d.JWKSURI)
	}
}

func TestHealthAndReadiness(t *testing.T) {
	f := newFixture(t)
	if w := f.do("GET", "/healthz", nil, nil); w.Code != 200 {
		t.Errorf("healthz %d", w.Code)
	}
	if w := f.do("GET", "/readyz", nil, nil); w.Code != 200 {
		t.Errorf("readyz %d", w.Code)
	}
	unready := NewServer(NewStore(f.clock), Options{Clock: f.clock})
	w := httptestDo(unready, "GET", "/readyz")
	if w.Code != 503 {
		t.Errorf("readyz before the store loaded: %d", w.Code)
	}
	f.token(nil)
	m := f.do("GET", "/metrics", nil, nil).Body.String()
	for _, want := range []string{`authframework_requests_total{code="200",endpoint="token"} 1`, `authframework_tokens_issued_total{namespace="team",policy="orders"} 1`, "authframework_request_duration_seconds_bucket"} {
		if !strings.Contains(m, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}

// TestValidateRoutes: with routes=true the original request must match a
// route rule of the client's roles.
func TestValidateRoutes(t *testing.T) {
	f := newFixture(t)
	f.store.SetRole(types.NamespacedName{Namespace: ns, Name: "orders-reader"}, []authz.Route{
		{Hosts: []string{"api.example.com"}, Paths: []string{"/api/orders/**"}, Methods: []string{"GET", "HEAD"}},
	})
	tok := f.token(nil)
	cases := []struct {
		name, method, url string
		hdr               map[string]string
		status            int
		code              string
	}{
		{"allowed (nginx headers)", "GET", "https://api.example.com/api/orders/42", nil, 200, ""},
		{"method not allowed", "POST", "https://api.example.com/api/orders/42", nil, 403, "route_not_allowed"},
		{"path outside", "GET", "https://api.example.com/api/admin", nil, 403, "route_not_allowed"},
		{"dot-dot out of the prefix", "GET", "https://api.example.com/api/orders/%2e%2e/%2e%2e/admin", nil, 403, "route_not_allowed"},
		{"encoded slash", "GET", "https://api.example.com/api/orders%2F..%2Fadmin", nil, 403, "unsafe_path"},
		{"other host", "GET", "https://evil.example.com/api/orders/42", nil, 403, "route_not_allowed"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			hdr := bearerHdr(tok)
			if c.url != "" {
				hdr["X-Original-URL"], hdr["X-Original-Method"] = c.url, c.method
			}
			for k, v := range c.hdr {
				hdr[k] = v
			}
			w := f.do("GET", "/validate?routes=true", nil, hdr)
			if w.Code != c.status || w.Header().Get(HeaderAuthError) != c.code {
				t.Errorf("%d %q, want %d %q", w.Code, w.Header().Get(HeaderAuthError), c.status, c.code)
			}
		})
	}
	// Without routes=true the ingress does not ask for route checks.
	hdr := bearerHdr(tok)
	hdr["X-Original-URL"], hdr["X-Original-Method"] = "https://api.example.com/api/admin", "DELETE"
	if w := f.do("GET", "/validate", nil, hdr); w.Code != 200 {
		t.Errorf("without routes=true: %d", w.Code)
	}
}

// TestSwappedCredentialsAreNotLogged: a caller who swaps client id and
// secret sends its secret as the id; the audit line carries a label, not
// the value.
func TestSwappedCredentialsAreNotLogged(t *testing.T) {
	f := newFixture(t)
	if w := f.do("POST", "/token", url.Values{"grant_type": {"client_credentials"}}, basic(secret, clientID)); w.Code != 401 {
		t.Fatalf("swapped credentials: %d", w.Code)
	}
	if !strings.Contains(f.logs.String(), `"clientID":"unknown:`) {
		t.Errorf("the failure was not audited with a label: %s", f.logs)
	}
	f.assertNoSecretsLogged(nil)
}
