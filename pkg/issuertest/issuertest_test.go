package issuertest_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	jose "github.com/go-jose/go-jose/v4"
	"golang.org/x/oauth2/clientcredentials"
	clocktesting "k8s.io/utils/clock/testing"

	"github.com/authframework/authframework/internal/revstream"
	"github.com/authframework/authframework/internal/token"
	"github.com/authframework/authframework/pkg/issuertest"
	"github.com/authframework/authframework/pkg/serverapi"
)

// TestStandardValidatorAcceptsItsTokens: go-oidc, a validator that knows
// nothing of this project, finds the keys from the discovery document and
// verifies a minted token; a forged one and one of a revoked key fail.
func TestStandardValidatorAcceptsItsTokens(t *testing.T) {
	ctx := context.Background()
	iss := issuertest.New(t, issuertest.Options{Audiences: []string{"orders-api"}})
	provider, err := oidc.NewProvider(ctx, iss.URL())
	if err != nil {
		t.Fatal(err)
	}
	verifier := provider.Verifier(&oidc.Config{ClientID: "orders-api", SupportedSigningAlgs: []string{"ES256"}})
	raw := iss.Mint(t, issuertest.Identity{ClientID: "team.billing", Permissions: []string{"orders:read"}})
	idt, err := verifier.Verify(ctx, raw)
	if err != nil || idt.Subject != "team.billing" {
		t.Fatalf("go-oidc: %v", err)
	}
	var claims struct {
		Scope      string `json:"scope"`
		AccountUID string `json:"account_uid"`
		Namespace  string `json:"namespace"`
	}
	if err := idt.Claims(&claims); err != nil || claims.Scope != "orders:read" || claims.AccountUID == "" || claims.Namespace != "default" {
		t.Errorf("claims %+v %v", claims, err)
	}
	if _, err := verifier.Verify(ctx, iss.Forge(t, issuertest.Identity{})); err == nil {
		t.Error("go-oidc accepted a forged token")
	}

	old := iss.KeyIDs()[0]
	kid := iss.RotateKey(t)
	if ids := iss.KeyIDs(); len(ids) != 2 || ids[1] != kid {
		t.Fatalf("keys after rotation %v", ids)
	}
	fresh := iss.Mint(t, issuertest.Identity{})
	// A new verifier: go-oidc's RemoteKeySet may answer a refetch that
	// follows another closely with the previous fetch's keys (its in-flight
	// fetch is released only after its waiters are).
	verifier = oidc.NewVerifier(iss.URL(), oidc.NewRemoteKeySet(ctx, iss.JWKSURL()), &oidc.Config{ClientID: "orders-api", SupportedSigningAlgs: []string{"ES256"}})
	if _, err := verifier.Verify(ctx, fresh); err != nil {
		t.Fatalf("a token of the new key: %v", err)
	}
	if _, _, _, err := iss.Verify(raw); err != nil {
		t.Fatalf("a token of the retired key stopped verifying: %v", err)
	}
	iss.RevokeKey(t, old)
	if _, _, _, err := iss.Verify(raw); !errors.Is(err, token.ErrUnknownKey) {
		t.Errorf("a token of a revoked key: %v", err)
	}
}

// TestDocumentsHaveTheServersShape: the discovery document's members and
// the cache headers are the real server's.
func TestDocumentsHaveTheServersShape(t *testing.T) {
	iss := issuertest.New(t, issuertest.Options{Namespace: "team", Policy: "orders", Algorithm: "EdDSA", JWKSMaxAge: 30 * time.Second})
	if want := iss.BaseURL() + "/issuers/team/orders"; iss.URL() != want {
		t.Fatalf("issuer %s, want %s", iss.URL(), want)
	}
	resp, err := http.Get(iss.DiscoveryURL())
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var doc map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&doc); err != nil {
		t.Fatal(err)
	}
	var members []string
	for k := range doc {
		members = append(members, k)
	}
	slices.Sort(members)
	want := []string{"grant_types_supported", "id_token_signing_alg_values_supported", "introspection_endpoint", "issuer", "jwks_uri",
		"response_types_supported", "revocation_endpoint", "subject_types_supported", "token_endpoint", "token_endpoint_auth_methods_supported"}
	if !slices.Equal(members, want) || doc["jwks_uri"] != iss.JWKSURL() || doc["token_endpoint"] != iss.TokenURL() {
		t.Errorf("discovery %v", doc)
	}
	if cc := resp.Header.Get("Cache-Control"); cc != "public, max-age=30" {
		t.Errorf("Cache-Control %q", cc)
	}
	resp, err = http.Get(iss.JWKSURL())
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var set jose.JSONWebKeySet
	if err := json.NewDecoder(resp.Body).Decode(&set); err != nil || len(set.Keys) != 1 || set.Keys[0].Algorithm != "EdDSA" ||
		!set.Keys[0].IsPublic() || resp.Header.Get("Content-Type") != "application/jwk-set+json" {
		t.Errorf("JWKS %+v %v", set, err)
	}
	if n := iss.Requests(serverapi.JWKSPath("team", "orders")); n != 1 {
		t.Errorf("%d JWKS requests counted", n)
	}
}

func TestMintIdentityAndExpiry(t *testing.T) {
	clk := clocktesting.NewFakeClock(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	iss := issuertest.New(t, issuertest.Options{Clock: clk, TTL: 5 * time.Minute, Audiences: []string{"a", "b"}})
	raw := iss.Mint(t, issuertest.Identity{ClientID: "x", Audience: "b", Permissions: []string{"p:r", "p:w"}, TTL: time.Minute})
	if _, client, perms, err := iss.Verify(raw); err != nil || client != "x" || !slices.Equal(perms, []string{"p:r", "p:w"}) {
		t.Fatalf("%s %v %v", client, perms, err)
	}
	clk.Step(time.Minute)
	if _, _, _, err := iss.Verify(raw); !errors.Is(err, token.ErrExpired) {
		t.Errorf("after its TTL: %v", err)
	}
	old := iss.Mint(t, issuertest.Identity{IssuedAt: clk.Now().Add(-time.Hour)})
	if _, _, _, err := iss.Verify(old); !errors.Is(err, token.ErrExpired) {
		t.Errorf("issued an hour ago: %v", err)
	}
}

// TestEndpoints: /token (basic and post, scope, audience, disabled,
// exchange), /introspect and /revoke behave as the real server's.
func TestEndpoints(t *testing.T) {
	ctx := context.Background()
	iss := issuertest.New(t, issuertest.Options{Audiences: []string{"orders-api", "billing-api"}})
	iss.AddClient(issuertest.Client{ID: "team.billing", Secrets: []string{"old", "new"}, Identity: issuertest.Identity{Permissions: []string{"orders:read", "orders:write"}}})
	iss.AddClient(issuertest.Client{ID: "team.off", Secrets: []string{"s"}, Disabled: true})

	cc := clientcredentials.Config{ClientID: "team.billing", ClientSecret: "old", TokenURL: iss.TokenURL(), Scopes: []string{"orders:read"},
		EndpointParams: url.Values{"audience": {"billing-api"}}}
	tok, err := cc.Token(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, perms, err := iss.Verify(tok.AccessToken); err != nil || !slices.Equal(perms, []string{"orders:read"}) {
		t.Fatalf("%v %v", perms, err)
	}
	if tok.Extra("expires_in").(float64) != 600 {
		t.Errorf("expires_in %v", tok.Extra("expires_in"))
	}
	for _, tc := range []struct {
		name   string
		form   url.Values
		status int
		code   string
	}{
		{"wrong secret", url.Values{"grant_type": {"client_credentials"}, "client_id": {"team.billing"}, "client_secret": {"x"}}, 401, "invalid_client"},
		{"post auth, second secret", url.Values{"grant_type": {"client_credentials"}, "client_id": {"team.billing"}, "client_secret": {"new"}}, 200, ""},
		{"scope not held", url.Values{"grant_type": {"client_credentials"}, "client_id": {"team.billing"}, "client_secret": {"new"}, "scope": {"admin"}}, 400, "invalid_scope"},
		{"foreign audience", url.Values{"grant_type": {"client_credentials"}, "client_id": {"team.billing"}, "client_secret": {"new"}, "audience": {"x"}}, 400, "invalid_target"},
		{"disabled", url.Values{"grant_type": {"client_credentials"}, "client_id": {"team.off"}, "client_secret": {"s"}}, 400, "unauthorized_client"},
		{"unknown subject", url.Values{"grant_type": {serverapi.GrantTypeTokenExchange}, "subject_token": {"k8s"}, "subject_token_type": {serverapi.TokenTypeJWT}}, 400, "invalid_request"},
		{"password grant", url.Values{"grant_type": {"password"}}, 400, "unsupported_grant_type"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, body := post(t, iss.TokenURL(), tc.form)
			if code, _ := body["error"].(string); status != tc.status || code != tc.code {
				t.Errorf("%d %v", status, body)
			}
		})
	}

	iss.AddSubjectToken("k8s", "team.billing")
	status, body := post(t, iss.TokenURL(), url.Values{"grant_type": {serverapi.GrantTypeTokenExchange}, "subject_token": {"k8s"}, "subject_token_type": {serverapi.TokenTypeJWT}})
	if status != 200 || body["issued_token_type"] != serverapi.TokenTypeAccessToken {
		t.Fatalf("exchange: %d %v", status, body)
	}

	auth := url.Values{"client_id": {"team.billing"}, "client_secret": {"new"}}
	introspect := func(raw string) map[string]any {
		f := url.Values{"token": {raw}}
		for k, v := range auth {
			f[k] = v
		}
		_, b := post(t, iss.BaseURL()+serverapi.PathIntrospect, f)
		return b
	}
	if got := introspect(tok.AccessToken); got["active"] != true || got["client_id"] != "team.billing" || got["scope"] != "orders:read" {
		t.Errorf("introspect %v", got)
	}
	f := url.Values{"token": {tok.AccessToken}}
	for k, v := range auth {
		f[k] = v
	}
	if status, _ := post(t, iss.BaseURL()+serverapi.PathRevoke, f); status != 200 {
		t.Fatalf("revoke: %d", status)
	}
	if got := introspect(tok.AccessToken); got["active"] != false || len(got) != 1 {
		t.Errorf("introspect after revoke %v", got)
	}
	if _, _, _, err := iss.Verify(tok.AccessToken); !errors.Is(err, issuertest.ErrRevoked) {
		t.Errorf("Verify after revoke: %v", err)
	}
}

// TestFailures: queued faults, the 503 outage and a stopped listener, and
// recovery from each.
func TestFailures(t *testing.T) {
	iss := issuertest.New(t, issuertest.Options{})
	iss.FailNext(serverapi.PathToken, 2, http.StatusTooManyRequests, 1500*time.Millisecond)
	form := url.Values{"grant_type": {"client_credentials"}}
	for range 2 {
		resp, err := http.PostForm(iss.TokenURL(), form)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 429 || resp.Header.Get("Retry-After") != "2" {
			t.Fatalf("%d Retry-After %q", resp.StatusCode, resp.Header.Get("Retry-After"))
		}
	}
	if status, _ := post(t, iss.TokenURL(), form); status != 401 {
		t.Fatalf("after the faults: %d", status)
	}

	iss.SetUnavailable(true)
	resp, err := http.Get(iss.JWKSURL())
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 503 || resp.Header.Get("Retry-After") != "1" {
		t.Fatalf("unavailable: %d", resp.StatusCode)
	}
	iss.SetUnavailable(false)

	raw := iss.Mint(t, issuertest.Identity{})
	iss.Stop()
	if _, err := http.Get(iss.JWKSURL()); err == nil || !strings.Contains(err.Error(), "refused") {
		t.Fatalf("stopped: %v", err)
	}
	iss.Restart(t)
	resp, err = http.Get(iss.JWKSURL())
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if _, _, _, err := iss.Verify(raw); resp.StatusCode != 200 || err != nil {
		t.Fatalf("after restart: %d %v", resp.StatusCode, err)
	}
}

func post(t *testing.T, u string, form url.Values) (int, map[string]any) {
	t.Helper()
	resp, err := http.PostForm(u, form)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body := map[string]any{}
	_ = json.NewDecoder(resp.Body).Decode(&body)
	return resp.StatusCode, body
}

// TestRevocationStream: a subscriber with a valid token gets a snapshot,
// then revoked tokens, revoked keys and disabled clients as they happen,
// and resumes after its last cursor; without a valid token it is refused.
func TestRevocationStream(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	iss := issuertest.New(t, issuertest.Options{Namespace: "team", Policy: "orders"})
	iss.AddClient(issuertest.Client{ID: "team.billing", Secrets: []string{"s"}})
	early := iss.Mint(t, issuertest.Identity{})
	iss.Revoke(t, early)
	earlyJTI := jtiOf(t, iss.Mint(t, issuertest.Identity{})) // not revoked

	open := func(cursor string) (*http.Response, *revstream.Reader) {
		sub := iss.Mint(t, issuertest.Identity{ClientID: "team.orders"})
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, iss.BaseURL()+serverapi.PathRevocations, nil)
		req.Header.Set("Authorization", "Bearer "+sub)
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
	next := func(rd *revstream.Reader) serverapi.RevocationEvent {
		t.Helper()
		ev, err := rd.Next()
		if err != nil {
			t.Fatal(err)
		}
		if ev.Policy != "team/orders" || ev.Issuer != iss.URL() {
			t.Fatalf("event of %q %q", ev.Policy, ev.Issuer)
		}
		return ev
	}
	resp, rd := open("")
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("%d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	if ev := next(rd); ev.Type != serverapi.EventSnapshot {
		t.Fatalf("first event %s", ev.Type)
	}
	if ev := next(rd); ev.Type != serverapi.EventTokenRevoked || ev.RevocationKey != serverapi.RevocationKey("team", "orders", jtiOf(t, early)) {
		t.Fatalf("snapshot %+v", ev)
	}
	if ev := next(rd); ev.Type != serverapi.EventSynced {
		t.Fatalf("after the snapshot %s", ev.Type)
	}

	late := iss.Mint(t, issuertest.Identity{})
	iss.Revoke(t, late)
	ev := next(rd)
	if ev.Type != serverapi.EventTokenRevoked || ev.RevocationKey != serverapi.RevocationKey("team", "orders", jtiOf(t, late)) ||
		ev.RevocationKey == serverapi.RevocationKey("team", "orders", earlyJTI) {
		t.Fatalf("revocation %+v", ev)
	}
	old := iss.KeyIDs()[0]
	iss.RotateKey(t)
	iss.RevokeKey(t, old)
	if ev := next(rd); ev.Type != serverapi.EventKeyRevoked || ev.KeyID != old {
		t.Fatalf("key %+v", ev)
	}
	resp.Body.Close()

	// Resumed after the revocation (with a token of the new key): the key
	// event, then the disabled client.
	iss.SetDisabled(t, "team.billing", true)
	_, rd = open(ev.Cursor)
	if ev := next(rd); ev.Type != serverapi.EventKeyRevoked {
		t.Fatalf("resumed with %+v", ev)
	}
	if ev := next(rd); ev.Type != serverapi.EventAccount || ev.ClientID != "team.billing" || !ev.Disabled || ev.AccountUID == "" {
		t.Fatalf("account %+v", ev)
	}

	req, _ := http.NewRequest(http.MethodGet, iss.BaseURL()+serverapi.PathRevocations, nil)
	req.Header.Set("Authorization", "Bearer "+iss.Forge(t, issuertest.Identity{}))
	bad, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	bad.Body.Close()
	if bad.StatusCode != 401 || !strings.Contains(bad.Header.Get("WWW-Authenticate"), "invalid_token") {
		t.Errorf("forged subscriber: %d", bad.StatusCode)
	}
}

func jtiOf(t *testing.T, raw string) string {
	t.Helper()
	// Read without verification: a revoked token no longer verifies.
	parts := strings.Split(raw, ".")
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	var c struct{ Jti string }
	if err != nil || json.Unmarshal(b, &c) != nil || c.Jti == "" {
		t.Fatalf("no jti in %d-part token", len(parts))
	}
	return c.Jti
}
