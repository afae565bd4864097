package auth

import (
	"crypto/rand"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/types"

	"github.com/authframework/authframework/internal/authz"
	"github.com/authframework/authframework/internal/credentials"
	"github.com/authframework/authframework/internal/keys"
	"github.com/authframework/authframework/internal/token"
)

// shapeCall builds an external-auth call for the original request
// (method, host, raw request URI) as each proxy sends it.
type shapeCall func(tok, method, host, uri string, extra map[string]string) *httptest.ResponseRecorder

func (f *fixture) shapes(requirements string) map[string]shapeCall {
	send := func(method, target, host string, hdr map[string]string) *httptest.ResponseRecorder {
		req := httptest.NewRequest(method, target, nil)
		if host != "" {
			req.Host = host
		}
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		w := httptest.NewRecorder()
		f.server.ServeHTTP(w, req)
		return w
	}
	merge := func(tok string, a, b map[string]string) map[string]string {
		out := bearerHdr(tok)
		for k, v := range a {
			out[k] = v
		}
		for k, v := range b {
			out[k] = v
		}
		return out
	}
	query := ""
	matrix := ""
	if requirements != "" {
		query = "?" + requirements
		matrix = ";" + strings.ReplaceAll(requirements, "&", ";")
	}
	return map[string]shapeCall{
		"nginx": func(tok, method, host, uri string, extra map[string]string) *httptest.ResponseRecorder {
			return send("GET", PathValidate+query, "auth.internal", merge(tok, map[string]string{
				"X-Original-URL": "https://" + host + uri, "X-Original-Method": method, "X-Sent-From": "nginx-ingress-controller",
			}, extra))
		},
		"traefik": func(tok, method, host, uri string, extra map[string]string) *httptest.ResponseRecorder {
			return send("GET", PathForwardAuth+query, "auth.internal", merge(tok, map[string]string{
				"X-Forwarded-Method": method, "X-Forwarded-Host": host, "X-Forwarded-Uri": uri, "X-Forwarded-Proto": "https",
			}, extra))
		},
		"envoy": func(tok, method, host, uri string, extra map[string]string) *httptest.ResponseRecorder {
			return send(method, PathExtAuthz+matrix+uri, host, merge(tok, nil, extra))
		},
	}
}

// TestExternalAuthSameVerdictInEveryShape: one table of original requests
// gets the same verdict whichever proxy shape carries it, read raw, with no
// redirect and no requirement taken from the forwarded part.
func TestExternalAuthSameVerdictInEveryShape(t *testing.T) {
	f := newFixture(t)
	f.store.SetRole(types.NamespacedName{Namespace: ns, Name: "orders-reader"}, []authz.Route{
		{Hosts: []string{"api.example.com"}, Paths: []string{"/api/orders/**"}, Methods: []string{"GET", "HEAD"}},
	})
	tok := f.token(nil)
	cases := []struct {
		name, method, host, uri string
		status                  int
		code                    string
	}{
		{"allowed", "GET", "api.example.com", "/api/orders/42", 200, ""},
		{"allowed with the upstream's query", "GET", "api.example.com", "/api/orders/42?page=2", 200, ""},
		{"duplicate slash, no redirect", "GET", "api.example.com", "/api/orders//42", 200, ""},
		{"method not allowed", "POST", "api.example.com", "/api/orders/42", 403, "route_not_allowed"},
		{"DELETE an admin path", "DELETE", "api.example.com", "/api/admin/users/1", 403, "route_not_allowed"},
		{"path outside", "GET", "api.example.com", "/api/admin", 403, "route_not_allowed"},
		{"dot-dot out of the prefix", "GET", "api.example.com", "/api/orders/../admin", 403, "route_not_allowed"},
		{"encoded dot-dot out of the prefix", "GET", "api.example.com", "/api/orders/%2e%2e/%2e%2e/admin", 403, "route_not_allowed"},
		{"encoded slash read raw", "GET", "api.example.com", "/api/orders/a%2Fb", 403, "unsafe_path"},
		{"encoded slash and dot-dot", "GET", "api.example.com", "/api/orders%2F..%2Fadmin", 403, "unsafe_path"},
		{"encoded backslash", "GET", "api.example.com", "/api/orders/a%5Cb", 403, "unsafe_path"},
		{"dot-dot with a path parameter (Tomcat, Spring)", "GET", "api.example.com", "/api/orders/..;/admin", 403, "unsafe_path"},
		{"dot-dot with an encoded path parameter", "GET", "api.example.com", "/api/orders/..%3B/admin", 403, "unsafe_path"},
		{"a path parameter that is not a dot segment", "GET", "api.example.com", "/api/orders/42;v=1", 200, ""},
		{"other host", "GET", "evil.example.com", "/api/orders/42", 403, "route_not_allowed"},
		{"host with port", "GET", "api.example.com:443", "/api/orders/42", 200, ""},
		{"lower-case method", "get", "api.example.com", "/api/orders/42", 403, "route_not_allowed"},
	}
	for shapeName, call := range f.shapes("routes=true") {
		for _, c := range cases {
			if shapeName == "envoy" && c.method == "get" {
				continue // Envoy forwards the method it parsed; Go's client sends it as given, the verdict is the same
			}
			t.Run(shapeName+"/"+c.name, func(t *testing.T) {
				w := call(tok, c.method, c.host, c.uri, nil)
				if w.Code != c.status || w.Header().Get(HeaderAuthError) != c.code {
					t.Errorf("%d %q (%s), want %d %q", w.Code, w.Header().Get(HeaderAuthError), w.Body, c.status, c.code)
				}
				if loc := w.Header().Get("Location"); loc != "" {
					t.Errorf("redirected to %q", loc)
				}
			})
		}
	}
}

// TestExternalAuthRefusesConflictingSources: a header any client can send
// never overrides the proxy's own word; two sources that disagree are
// refused.
func TestExternalAuthRefusesConflictingSources(t *testing.T) {
	f := newFixture(t)
	f.store.SetRole(types.NamespacedName{Namespace: ns, Name: "orders-reader"}, []authz.Route{
		{Hosts: []string{"api.example.com"}, Paths: []string{"/api/orders/**"}, Methods: []string{"GET"}},
	})
	tok := f.token(nil)
	shapes := f.shapes("routes=true")
	cases := []struct {
		name, shape, method, uri string
		extra                    map[string]string
		status                   int
		code                     string
	}{
		// The issue's input: Traefik sends DELETE /api/admin/users/1, the
		// client adds an X-Original-URL for an allowed GET.
		{"Traefik with a client's X-Original-URL", "traefik", "DELETE", "/api/admin/users/1", map[string]string{
			"X-Original-URL": "http://api.example.com/api/orders/42", "X-Original-Method": "GET"}, 403, codeConflictingRequest},
		{"Traefik with a client's X-Original-Method", "traefik", "DELETE", "/api/orders/42", map[string]string{
			"X-Original-Method": "GET"}, 403, codeConflictingRequest},
		{"Traefik with an agreeing X-Original-URL", "traefik", "GET", "/api/orders/42", map[string]string{
			"X-Original-URL": "https://api.example.com/api/orders/42", "X-Original-Method": "GET"}, 200, ""},
		{"nginx with a client's X-Forwarded-Uri", "nginx", "DELETE", "/api/admin/users/1", map[string]string{
			"X-Forwarded-Uri": "/api/orders/42", "X-Forwarded-Method": "GET"}, 403, codeConflictingRequest},
		{"nginx with a client's X-Forwarded-Method", "nginx", "DELETE", "/api/orders/42", map[string]string{
			"X-Forwarded-Method": "GET"}, 403, codeConflictingRequest},
		{"Envoy with a client's X-Original-URL", "envoy", "DELETE", "/api/admin/users/1", map[string]string{
			"X-Original-URL": "http://api.example.com/api/orders/42", "X-Original-Method": "GET"}, 403, codeConflictingRequest},
		{"Envoy with a client's X-Forwarded-Uri", "envoy", "GET", "/api/admin", map[string]string{
			"X-Forwarded-Uri": "/api/orders/42"}, 403, codeConflictingRequest},
		{"Envoy with a malformed X-Original-URL", "envoy", "GET", "/api/orders/42", map[string]string{
			"X-Original-URL": "::not a url"}, 403, codeConflictingRequest},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			w := shapes[c.shape](tok, c.method, "api.example.com", c.uri, c.extra)
			if w.Code != c.status || w.Header().Get(HeaderAuthError) != c.code {
				t.Errorf("%d %q, want %d %q", w.Code, w.Header().Get(HeaderAuthError), c.status, c.code)
			}
		})
	}
}

// TestExternalAuthRequirements: requirements come from the proxy's
// configuration only — the auth URL's query for nginx and Traefik, the
// prefix's matrix parameters for Envoy — never from the upstream's query.
func TestExternalAuthRequirements(t *testing.T) {
	f := newFixture(t)
	tok := f.token(url.Values{"scope": {"orders:read"}})
	cases := []struct {
		name, target, host string
		hdr                map[string]string
		status             int
		code               string
	}{
		{"Envoy: the upstream's ?aud= is not a requirement", PathExtAuthz + "/api/orders/42?aud=payments-api", "api.example.com", nil, 200, ""},
		{"Envoy: the upstream's ?permission= is not a requirement", PathExtAuthz + "/api/orders/42?permission=admin:all", "api.example.com", nil, 200, ""},
		{"Envoy: the upstream's ?routes= is not a requirement", PathExtAuthz + "/api/orders/42?routes=true", "api.example.com", nil, 200, ""},
		{"Envoy: prefix audience held", PathExtAuthz + ";aud=orders-api/api/orders/42", "api.example.com", nil, 200, ""},
		{"Envoy: prefix audience not held", PathExtAuthz + ";aud=payments-api/api/orders/42", "api.example.com", nil, 401, "wrong_audience"},
		{"Envoy: prefix permission not held", PathExtAuthz + ";permission=inventory:read/api/orders/42", "api.example.com", nil, 403, "insufficient_scope"},
		{"Envoy: prefix permission held", PathExtAuthz + ";aud=orders-api;permission=orders:read/x", "api.example.com", nil, 200, ""},
		{"Envoy: escaped audience URL in the prefix", PathExtAuthz + ";aud=https:%2F%2Fpayments.example.com/x", "api.example.com", nil, 401, "wrong_audience"},
		{"Envoy: unknown requirement", PathExtAuthz + ";audience=orders-api/x", "api.example.com", nil, 403, codeBadRequirements},
		{"Envoy: no original path", PathExtAuthz + ";aud=orders-api", "api.example.com", nil, 403, codeMalformedRequest},
		{"Envoy: root", PathExtAuthz + "/", "api.example.com", nil, 200, ""},
		{"nginx: unknown requirement fails closed", PathValidate + "?permision=admin:all", "", nil, 403, codeBadRequirements},
		{"nginx: routes must be a boolean", PathValidate + "?routes=yes", "", nil, 403, codeBadRequirements},
		{"nginx: routes=true without X-Original-URL", PathValidate + "?routes=true", "", nil, 403, codeMissingRequest},
		{"Traefik: routes=true without X-Forwarded-Uri", PathForwardAuth + "?routes=true", "", nil, 403, codeMissingRequest},
		{"nginx: X-Original-URL without a method", PathValidate + "?routes=true", "", map[string]string{"X-Original-URL": "https://api.example.com/"}, 403, codeMissingRequest},
		{"nginx: a relative X-Original-URL", PathValidate, "", map[string]string{"X-Original-URL": "/api/orders/42"}, 403, codeMalformedRequest},
		{"the old Envoy shape under /validate is gone, not redirected", PathValidate + "/api/orders//42", "", nil, 404, "not_found"},
		{"an unclean path is not redirected", "/./validate", "", nil, 404, "not_found"},
		{"an unclean path is not redirected (double slash)", "//validate", "", nil, 404, "not_found"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			req := httptest.NewRequest("GET", c.target, nil)
			if c.host != "" {
				req.Host = c.host
			}
			req.Header.Set("Authorization", "Bearer "+tok)
			for k, v := range c.hdr {
				req.Header.Set(k, v)
			}
			w := httptest.NewRecorder()
			f.server.ServeHTTP(w, req)
			if w.Code != c.status || w.Header().Get(HeaderAuthError) != c.code {
				t.Errorf("%d %q (%s), want %d %q", w.Code, w.Header().Get(HeaderAuthError), w.Body, c.status, c.code)
			}
			if loc := w.Header().Get("Location"); loc != "" {
				t.Errorf("redirected to %q", loc)
			}
		})
	}
}

// TestTokenBoundToAccountObject: a token outlives neither its account
// object nor a mismatch between its identity claims and that account.
func TestTokenBoundToAccountObject(t *testing.T) {
	key := types.NamespacedName{Namespace: ns, Name: "billing"}
	recreate := func(f *fixture) {
		a, _, _ := f.store.Client(clientID)
		c := *a
		f.store.DeleteAccount(key)
		c.UID = "9a1d0c7e-2222-4f00-8b1e-billing-v2"
		c.Roles, c.Permissions = []string{"admin"}, []string{"*"}
		f.store.SetAccount(c)
		// Until the new object's verifier Secret arrives, the old object's
		// (garbage collection is asynchronous) authenticates nobody.
		if w := f.do("POST", "/token", url.Values{"grant_type": {"client_credentials"}}, basic(clientID, secret)); w.Code != 401 {
			f.t.Errorf("the deleted account's client secret authenticated the new account: %d", w.Code)
		}
		f.store.SetVerifier(key, c.UID, &credentials.Verifier{Current: credentials.Hash(secret)})
	}
	t.Run("deleted and recreated account", func(t *testing.T) {
		f := newFixture(t)
		old := f.token(nil)
		if w := f.do("GET", "/validate", nil, bearerHdr(old)); w.Code != 200 {
			t.Fatalf("before: %d", w.Code)
		}
		recreate(f)
		// Every endpoint that accepts a token refuses the old one.
		if w := f.do("GET", "/validate", nil, bearerHdr(old)); w.Code != 401 || w.Header().Get(HeaderAuthError) != "unknown_client" || w.Header().Get("X-User-Roles") != "" {
			t.Errorf("/validate: %d %q roles %q", w.Code, w.Header().Get(HeaderAuthError), w.Header().Get("X-User-Roles"))
		}
		if m := introspectMap(t, f, old); m["active"] != false {
			t.Errorf("/introspect of the old account's token: %v", m)
		}
		// The new account cannot revoke (and so learn about) the old one's token.
		if w := f.do("POST", "/revoke", url.Values{"token": {old}}, basic(clientID, secret)); w.Code != 200 || len(f.revs) != 0 {
			t.Errorf("/revoke: %d, stored %v", w.Code, f.revs)
		}
		// The new account's own tokens work.
		if w := f.do("GET", "/validate", nil, bearerHdr(f.token(nil))); w.Code != 200 || w.Header().Get("X-User-Roles") != "admin" {
			t.Errorf("new account's token: %d", w.Code)
		}
	})
	t.Run("identity claims that differ from the account", func(t *testing.T) {
		f := newFixture(t)
		p, _ := f.store.PolicyByName(types.NamespacedName{Namespace: ns, Name: "orders"})
		a, _, _ := f.store.Client(clientID)
		signed := func(mod func(*token.Request)) string {
			is, err := token.NewIssuer(p.Issuer, p.TTL, p.Published[p.ActiveKey], f.clock)
			if err != nil {
				t.Fatal(err)
			}
			r := token.Request{Subject: a.ClientID, ClientID: a.ClientID, Audience: "orders-api", ID: "forged-jti",
				Permissions: []string{"orders:read"}, Namespace: ns, AccountUID: string(a.UID)}
			mod(&r)
			raw, _, err := is.Issue(r)
			if err != nil {
				t.Fatal(err)
			}
			return raw
		}
		for name, mod := range map[string]func(*token.Request){
			"sub of a ghost account":      func(r *token.Request) { r.Subject = "ghost-account" },
			"namespace of another tenant": func(r *token.Request) { r.Namespace = "other" },
			"UID of another object":       func(r *token.Request) { r.AccountUID = "another-uid" },
		} {
			raw := signed(mod)
			w := f.do("GET", "/validate", nil, bearerHdr(raw))
			if w.Code != 401 || w.Header().Get("X-User-ID") != "" {
				t.Errorf("%s: %d %q, X-User-ID %q", name, w.Code, w.Header().Get(HeaderAuthError), w.Header().Get("X-User-ID"))
			}
			if m := introspectMap(t, f, raw); m["active"] != false {
				t.Errorf("%s: introspection %v", name, m)
			}
		}
		// The same signer with the account's own claims is accepted: the
		// refusals above are the claims', not the signer's.
		if w := f.do("GET", "/validate", nil, bearerHdr(signed(func(*token.Request) {}))); w.Code != 200 || w.Header().Get("X-User-ID") != clientID {
			t.Errorf("control: %d %q", w.Code, w.Header().Get("X-User-ID"))
		}
	})
}

func introspectMap(t *testing.T, f *fixture, tok string) map[string]any {
	t.Helper()
	return introspectMapWith(t, f, url.Values{"token": {tok}})
}

func introspectMapWith(t *testing.T, f *fixture, form url.Values) map[string]any {
	t.Helper()
	w := f.do("POST", "/introspect", form, basic(clientID, secret))
	var m map[string]any
	if w.Code != 200 || json.Unmarshal(w.Body.Bytes(), &m) != nil {
		t.Fatalf("introspect: %d %s", w.Code, w.Body)
	}
	return m
}

// TestIntrospectionAgreesWithValidation: a permission taken from the account
// after issue is gone from both answers.
func TestIntrospectionAgreesWithValidation(t *testing.T) {
	f := newFixture(t)
	tok := f.token(nil)
	f.updateAccount(func(a *Account) { a.Permissions = []string{"inventory:read"} })
	w := f.do("GET", "/validate", nil, bearerHdr(tok))
	if w.Code != 200 || w.Header().Get("X-User-Permissions") != "inventory:read" {
		t.Fatalf("/validate: %d %q", w.Code, w.Header().Get("X-User-Permissions"))
	}
	if m := introspectMap(t, f, tok); m["active"] != true || m["scope"] != "inventory:read" {
		t.Errorf("introspection %v, want scope inventory:read as /validate allows", m)
	}
}

// TestOptionalParametersAreHints: optional parameters are read as their RFCs
// define them, not enforced as constraints.
func TestOptionalParametersAreHints(t *testing.T) {
	f := newFixture(t)
	for _, hint := range []string{"refresh_token", "access_token", "urn:example:unknown"} {
		tok := f.token(nil)
		// RFC 7662 §2.1: the hint does not change the answer.
		if m := introspectMapWith(t, f, url.Values{"token": {tok}, "token_type_hint": {hint}}); m["active"] != true {
			t.Errorf("introspection with hint %q: %v", hint, m)
		}
		// RFC 7009 §2.1: the hint only speeds up the lookup; the token is revoked.
		if w := f.do("POST", "/revoke", url.Values{"token": {tok}, "token_type_hint": {hint}}, basic(clientID, secret)); w.Code != 200 {
			t.Errorf("revoke with hint %q: %d %s", hint, w.Code, w.Body)
		}
		if w := f.do("GET", "/validate", nil, bearerHdr(tok)); w.Code != 401 || w.Header().Get(HeaderAuthError) != "token_revoked" {
			t.Errorf("after revoke with hint %q the token still validates: %d", hint, w.Code)
		}
	}
	// RFC 6749 §3.2.1: the client may repeat its own client_id in the body.
	form := url.Values{"grant_type": {"client_credentials"}, "client_id": {clientID}}
	if w := f.do("POST", "/token", form, basic(clientID, secret)); w.Code != 200 {
		t.Errorf("client_id repeated in the body: %d %s", w.Code, w.Body)
	}
	form.Set("client_id", "team.other")
	if w := f.do("POST", "/token", form, basic(clientID, secret)); w.Code != 400 || !strings.Contains(w.Body.String(), "invalid_request") {
		t.Errorf("another client_id in the body: %d %s", w.Code, w.Body)
	}
}

// TestTokenSizeBound: the authority never issues a token its own endpoints
// refuse; the client is told to narrow it with scope.
func TestTokenSizeBound(t *testing.T) {
	f := newFixture(t)
	perms := make([]string, 0, 256)
	for i := range 256 {
		perms = append(perms, "inventory-service:warehouse-"+strings.Repeat("x", 20)+":"+string(rune('a'+i%26))+strings.Repeat("y", i%7)+":read")
	}
	f.updateAccount(func(a *Account) { a.Permissions = perms })
	w := f.do("POST", "/token", url.Values{"grant_type": {"client_credentials"}}, basic(clientID, secret))
	if w.Code != 400 || !strings.Contains(w.Body.String(), `"invalid_scope"`) || !strings.Contains(w.Body.String(), "scope") {
		t.Fatalf("an oversized token: %d %s", w.Code, w.Body)
	}
	// Narrowed, the same account gets a token every endpoint accepts.
	tok := f.token(url.Values{"scope": {strings.Join(perms[:50], " ")}})
	if w := f.do("GET", "/validate", nil, bearerHdr(tok)); w.Code != 200 {
		t.Errorf("/validate of a narrowed token: %d %s", w.Code, w.Body)
	}
	if m := introspectMap(t, f, tok); m["active"] != true {
		t.Errorf("/introspect of a narrowed token: %v", m)
	}
}

// TestRevocationIsScopedToThePolicy: a tenant that signs a token of its own
// carrying another tenant's jti revokes its own token, not the other's —
// and cannot shorten a revocation either.
func TestRevocationIsScopedToThePolicy(t *testing.T) {
	f := newFixture(t)
	victim := f.token(nil)
	jti := introspectJTI(t, f, victim)
	evilKey := f.addTenant("evil", "evil-api")
	is, _ := token.NewIssuer("https://evil.example", time.Minute, evilKey, f.clock)
	forged, _, err := is.Issue(token.Request{Subject: "evil.mallory", ClientID: "evil.mallory", Audience: "evil-api", ID: jti,
		Namespace: "evil", AccountUID: "mallory-uid"})
	if err != nil {
		t.Fatal(err)
	}
	if w := f.do("POST", "/revoke", url.Values{"token": {forged}}, basic("evil.mallory", "mallory-secret")); w.Code != 200 {
		t.Fatalf("revoking its own token: %d", w.Code)
	}
	if w := f.do("GET", "/validate", nil, bearerHdr(victim)); w.Code != 200 {
		t.Errorf("another tenant's revocation of a token with the same jti revoked the victim's: %d %s", w.Code, w.Header().Get(HeaderAuthError))
	}
	if w := f.do("GET", "/validate", nil, bearerHdr(forged)); w.Header().Get(HeaderAuthError) != "token_revoked" {
		t.Errorf("the revoker's own token: %d %s", w.Code, w.Header().Get(HeaderAuthError))
	}
	// A revocation's expiry only grows.
	key := RevocationKey(types.NamespacedName{Namespace: ns, Name: "orders"}, jti)
	f.store.SetRevoked(map[string]time.Time{key: epoch.Add(time.Hour)}, nil)
	f.store.SetRevoked(map[string]time.Time{key: epoch.Add(time.Second)}, nil)
	if f.store.revoked[key] != epoch.Add(time.Hour) {
		t.Errorf("a later revocation shortened an earlier one: %v", f.store.revoked[key])
	}
}

// addTenant adds a policy (audiences auds) and an account mallory with
// secret "mallory-secret" and every permission in namespace ns, created
// after the fixture's: another tenant of the same auth server.
func (f *fixture) addTenant(ns string, auds ...string) keys.Key {
	f.t.Helper()
	pol := types.NamespacedName{Namespace: ns, Name: ns}
	k, err := keys.Generate("ES256", 0, rand.Reader)
	if err != nil {
		f.t.Fatal(err)
	}
	f.store.SetKeys(pol, "", []keys.Key{k})
	f.store.SetPolicy(PolicySource{Policy: Policy{Key: pol, Created: epoch.Add(time.Hour), Issuer: "https://" + ns + ".example", Audiences: auds,
		Algorithm: "ES256", TTL: 15 * time.Minute, Skew: 30 * time.Second, ActiveKey: k.ID, RequestsPerSecond: 100, Burst: 100}, PublishedKids: []string{k.ID}})
	acct := types.NamespacedName{Namespace: ns, Name: "mallory"}
	f.store.SetVerifier(acct, "mallory-uid", &credentials.Verifier{Current: credentials.Hash("mallory-secret")})
	f.store.SetAccount(Account{Key: acct, UID: "mallory-uid", ClientID: ns + ".mallory", Policy: ns, Permissions: []string{"*"}})
	return k
}

// TestTenantIsolation: another namespace that lists our audience in its own
// policy does not get through our ingress; introspection tells a client
// nothing about another tenant's tokens.
func TestTenantIsolation(t *testing.T) {
	f := newFixture(t)
	f.addTenant("evil", "orders-api")
	evil := f.do("POST", "/token", url.Values{"grant_type": {"client_credentials"}, "audience": {"orders-api"}}, basic("evil.mallory", "mallory-secret"))
	var tr tokenResponse
	if err := json.Unmarshal(evil.Body.Bytes(), &tr); err != nil || evil.Code != 200 {
		t.Fatalf("the other tenant's token: %d %s", evil.Code, evil.Body)
	}
	ours := f.token(nil)
	cases := []struct {
		name, target, tok string
		status            int
		code              string
	}{
		{"our token, our audience", "/validate?aud=orders-api", ours, 200, ""},
		{"their token for our audience", "/validate?aud=orders-api", tr.AccessToken, 401, "wrong_audience"},
		{"their token, no audience required", "/validate", tr.AccessToken, 200, ""},
		{"their token where their namespace is accepted", "/validate?aud=orders-api&namespace=team,evil", tr.AccessToken, 200, ""},
		{"their token where only ours is", "/validate?aud=orders-api&namespace=team", tr.AccessToken, 401, "wrong_namespace"},
		{"our token where only ours is", "/validate?namespace=team", ours, 200, ""},
		{"Envoy: their token for our audience", "/ext-authz;aud=orders-api/x", tr.AccessToken, 401, "wrong_audience"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			w := f.do("GET", c.target, nil, bearerHdr(c.tok))
			if w.Code != c.status || w.Header().Get(HeaderAuthError) != c.code {
				t.Errorf("%d %q, want %d %q", w.Code, w.Header().Get(HeaderAuthError), c.status, c.code)
			}
		})
	}
	// Introspection by another tenant's client: inactive, nothing else.
	w := f.do("POST", "/introspect", url.Values{"token": {ours}}, basic("evil.mallory", "mallory-secret"))
	var m map[string]any
	if err := json.Unmarshal(w.Body.Bytes(), &m); err != nil || m["active"] != false || len(m) != 1 {
		t.Errorf("another tenant's introspection: %d %s", w.Code, w.Body)
	}
	if m := introspectMap(t, f, ours); m["active"] != true {
		t.Errorf("our own introspection: %v", m)
	}
}

// TestDuplicateClientIDKeepsTheFirstAccount: an account of another
// namespace claiming an existing client id (the admission webhook absent
// or racing) neither takes the id over nor breaks its owner, and its going
// away changes nothing.
func TestDuplicateClientIDKeepsTheFirstAccount(t *testing.T) {
	f := newFixture(t)
	tok := f.token(nil)
	spoof := types.NamespacedName{Namespace: "evil", Name: "spoof"}
	f.store.SetVerifier(spoof, "spoof-uid", &credentials.Verifier{Current: credentials.Hash("spoof-secret")})
	f.store.SetAccount(Account{Key: spoof, UID: "spoof-uid", Created: epoch.Add(time.Hour), ClientID: clientID, Policy: "orders", Permissions: []string{"*"}})
	check := func(when string) {
		t.Helper()
		if w := f.do("GET", "/validate", nil, bearerHdr(tok)); w.Code != 200 || w.Header().Get("X-User-Namespace") != ns {
			t.Errorf("%s: the owner's token: %d %v", when, w.Code, w.Header())
		}
		if w := f.do("POST", "/token", url.Values{"grant_type": {"client_credentials"}}, basic(clientID, secret)); w.Code != 200 {
			t.Errorf("%s: the owner's secret: %d", when, w.Code)
		}
	}
	check("with a duplicate")
	if w := f.do("POST", "/token", url.Values{"grant_type": {"client_credentials"}}, basic(clientID, "spoof-secret")); w.Code != 401 {
		t.Errorf("the duplicate's secret authenticated as the owner's client id: %d", w.Code)
	}
	f.store.DeleteAccount(spoof)
	check("after the duplicate is deleted")
}

// TestRefusalKinds: every refusal code the handlers use has one status and
// RFC 6750 code in the table, and refusals are only 401 or 403 (nginx turns
// anything else into a 500).
func TestRefusalKinds(t *testing.T) {
	files, _ := filepath.Glob("*.go")
	used := map[string]bool{}
	lit := regexp.MustCompile(`newRefusal\("([a-z_]+)"`)
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range lit.FindAllStringSubmatch(string(b), -1) {
			used[m[1]] = true
		}
	}
	if len(used) < 10 {
		t.Fatalf("found only %d refusal codes in the source; the scan is broken", len(used))
	}
	for code := range used {
		if _, ok := refusalKinds[code]; !ok {
			t.Errorf("refusal code %q has no kind", code)
		}
	}
	for code, k := range refusalKinds {
		if k.status != http.StatusUnauthorized && k.status != http.StatusForbidden {
			t.Errorf("%s: status %d", code, k.status)
		}
		if (k.rfc6750 == "insufficient_scope") != (code == "insufficient_scope") || (k.status == http.StatusUnauthorized) != (k.rfc6750 == "invalid_token" || code == "missing_token") {
			t.Errorf("%s: RFC 6750 code %q with status %d", code, k.rfc6750, k.status)
		}
	}
}
