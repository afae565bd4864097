package token

import (
	"crypto/ecdsa"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	clocktesting "k8s.io/utils/clock/testing"

	"github.com/authframework/authframework/internal/keys"
)

const testIssuer = "https://auth.example.com/issuers/team/orders"

var epoch = time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)

type fixture struct {
	key, other, es384 keys.Key
	clock             *clocktesting.FakeClock
	verifier          *Verifier
}

func newFixture(t testing.TB) *fixture {
	t.Helper()
	gen := func(alg jose.SignatureAlgorithm) keys.Key {
		k, err := keys.Generate(alg, 0, rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	f := &fixture{key: gen(jose.ES256), other: gen(jose.ES256), es384: gen(jose.ES384), clock: clocktesting.NewFakeClock(epoch)}
	f.verifier = &Verifier{
		Issuer:     testIssuer,
		Audiences:  []string{"orders-api"},
		Algorithms: []jose.SignatureAlgorithm{jose.ES256, jose.ES384},
		Keys: map[string]PublicKey{
			f.key.ID:   {Algorithm: jose.ES256, Key: f.key.Public()},
			f.es384.ID: {Algorithm: jose.ES384, Key: f.es384.Public()},
		},
		MaxTTL: 15 * time.Minute,
		Leeway: 30 * time.Second,
		Clock:  f.clock,
	}
	return f
}

// claims returns valid claims as a map the cases can break.
func (f *fixture) claims() map[string]any {
	now := f.clock.Now().Unix()
	return map[string]any{
		"iss": testIssuer, "sub": "team/billing-MARKER", "aud": []string{"orders-api"},
		"exp": now + 600, "nbf": now, "iat": now, "jti": "jti-MARKER", "client_id": "team.billing",
		"scope": "orders:read", "account_uid": "0d5c5f6e-uid",
	}
}

func (f *fixture) header(k keys.Key) map[string]any {
	return map[string]any{"alg": string(k.Algorithm), "kid": k.ID, "typ": "at+jwt"}
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

// compact builds a token from raw header and payload JSON, signed by k with
// ECDSA. Building tokens by hand lets every forged case carry a valid
// signature, so each fails at the check it targets, not at the signature.
func compact(k keys.Key, head, payload []byte) string {
	input := b64(head) + "." + b64(payload)
	return input + "." + signECDSA(k, input)
}

func signECDSA(k keys.Key, input string) string {
	priv := k.Private.(*ecdsa.PrivateKey)
	size := (priv.Curve.Params().BitSize + 7) / 8
	h := sha256.New()
	if size == 48 {
		h = sha512.New384()
	}
	h.Write([]byte(input))
	r, s, err := ecdsa.Sign(rand.Reader, priv, h.Sum(nil))
	if err != nil {
		panic(err)
	}
	sig := make([]byte, 2*size)
	r.FillBytes(sig[:size])
	s.FillBytes(sig[size:])
	return b64(sig)
}

func (f *fixture) token(head, claims map[string]any) string {
	return compact(f.key, mustJSON(head), mustJSON(claims))
}

func TestIssueAndVerifyEveryAlgorithm(t *testing.T) {
	for _, alg := range keys.Algorithms {
		t.Run(string(alg), func(t *testing.T) {
			k, err := keys.Generate(alg, 0, rand.Reader)
			if err != nil {
				t.Fatal(err)
			}
			clk := clocktesting.NewFakeClock(epoch)
			is, err := NewIssuer(testIssuer, 15*time.Minute, k, clk)
			if err != nil {
				t.Fatal(err)
			}
			req := Request{
				Subject: "team/billing", ClientID: "team.billing", Audience: "orders-api", ID: "j1",
				Permissions: []string{"orders:read", "orders:items:read"}, Roles: []string{"orders-reader"},
				Namespace: "team", AccountUID: "6f1c2d9e-2b1a-4c55-9a63-3f1c0c1e9b10", Extra: map[string]string{"tenant": "acme"},
				Actor: &Actor{Subject: "system:serviceaccount:team:billing", Kubernetes: KubernetesActor{
					Namespace: "team", ServiceAccount: ObjectRef{Name: "billing", UID: "sa-uid"}, Pod: &ObjectRef{Name: "billing-0", UID: "pod-uid"}}},
			}
			raw, issued, err := is.Issue(req)
			if err != nil {
				t.Fatal(err)
			}
			size, err := EncodedSize(testIssuer, 15*time.Minute, alg, k.ID, keys.SignatureSize(alg, 0), req)
			if err != nil || size != len(raw) {
				t.Errorf("EncodedSize = %d (%v), the issued token is %d bytes", size, err, len(raw))
			}
			v := &Verifier{Issuer: testIssuer, Audiences: []string{"orders-api"}, Algorithms: []jose.SignatureAlgorithm{alg},
				Keys: map[string]PublicKey{k.ID: {Algorithm: alg, Key: k.Public()}}, MaxTTL: 15 * time.Minute, Clock: clk}
			got, err := v.Verify(raw)
			if err != nil {
				t.Fatalf("Verify: %v", err)
			}
			if got.Subject != "team/billing" || got.ClientID != "team.billing" || got.ID != "j1" || got.Namespace != "team" ||
				got.Scope != "orders:read orders:items:read" || len(got.Permissions) != 2 || got.Roles[0] != "orders-reader" ||
				got.AccountUID != req.AccountUID || got.Actor == nil || got.Actor.Subject != req.Actor.Subject ||
				got.Actor.Kubernetes.Pod == nil || *got.Actor.Kubernetes.Pod != *req.Actor.Kubernetes.Pod {
				t.Errorf("claims did not round-trip: %+v", got)
			}
			if !got.Expiry.Time().Equal(issued.Expiry.Time()) || got.Expiry.Time().Sub(got.IssuedAt.Time()) != 15*time.Minute {
				t.Errorf("exp %v, iat %v", got.Expiry.Time(), got.IssuedAt.Time())
			}
			// The extra claim is in the token.
			parts := strings.Split(raw, ".")
			payload, _ := base64.RawURLEncoding.DecodeString(parts[1])
			if !strings.Contains(string(payload), `"tenant":"acme"`) {
				t.Errorf("extra claim missing from %s", payload)
			}
			// Permissions are carried once, in scope (RFC 9068 §2.2.3).
			if strings.Contains(string(payload), `"permissions"`) || strings.Count(string(payload), "orders:items:read") != 1 {
				t.Errorf("permissions are carried more than once: %s", payload)
			}
			head, _ := base64.RawURLEncoding.DecodeString(parts[0])
			var h map[string]any
			_ = json.Unmarshal(head, &h)
			if h["typ"] != "at+jwt" || h["kid"] != k.ID || h["alg"] != string(alg) {
				t.Errorf("header %v", h)
			}
		})
	}
}

func TestIssueRefusesReservedExtraClaims(t *testing.T) {
	f := newFixture(t)
	is, _ := NewIssuer(testIssuer, time.Minute, f.key, f.clock)
	for _, name := range []string{"sub", "aud", "permissions", "client_id", "account_uid", "SUB", "Scope", "Account_UID"} {
		if _, _, err := is.Issue(Request{Subject: "s", ClientID: "c", Audience: "a", ID: "j", AccountUID: "u", Extra: map[string]string{name: "x"}}); err == nil {
			t.Errorf("extra claim %q was accepted", name)
		}
	}
}

// TestVerifyRefusesForgedAndMalformedTokens is the RFC 8725 table: each token
// is refused with the typed error of the check it targets.
func TestVerifyRefusesForgedAndMalformedTokens(t *testing.T) {
	f := newFixture(t)
	now := f.clock.Now().Unix()
	with := func(m map[string]any, k string, v any) map[string]any {
		if v == nil {
			delete(m, k)
		} else {
			m[k] = v
		}
		return m
	}
	h := func() map[string]any { return f.header(f.key) }
	c := f.claims
	valid := f.token(h(), c())
	parts := strings.Split(valid, ".")

	// HS256 with the public key as the HMAC secret: the classic key confusion.
	hsHead := mustJSON(map[string]any{"alg": "HS256", "kid": f.key.ID, "typ": "at+jwt"})
	pubJSON, _ := json.Marshal(keys.PublicSet([]keys.Key{f.key}).Keys[0])
	mac := hmac.New(sha256.New, pubJSON)
	hsInput := b64(hsHead) + "." + parts[1]
	mac.Write([]byte(hsInput))
	hsToken := hsInput + "." + b64(mac.Sum(nil))

	attacker, _ := keys.Generate(jose.ES256, 0, rand.Reader)
	attackerJWK, _ := json.Marshal(keys.PublicSet([]keys.Key{attacker}).Keys[0])

	tampered := parts[0] + "." + b64(mustJSON(with(c(), "permissions", []string{"*"}))) + "." + parts[2]

	cases := []struct {
		name  string
		token string
		want  error
	}{
		{"alg none", b64(mustJSON(with(h(), "alg", "none"))) + "." + parts[1] + ".", ErrAlgorithm},
		{"alg None", b64(mustJSON(with(h(), "alg", "None"))) + "." + parts[1] + ".", ErrAlgorithm},
		{"HS256 signed with the public key", hsToken, ErrAlgorithm},
		{"RS256 claimed for an EC key", f.token(with(h(), "alg", "RS256"), c()), ErrAlgorithm},
		{"ES384 claimed for an ES256 key", f.token(with(h(), "alg", "ES384"), c()), ErrKeyAlgorithm},
		{"kid of another policy", compact(f.other, mustJSON(f.header(f.other)), mustJSON(c())), ErrUnknownKey},
		{"path-like kid", f.token(with(h(), "kid", "../../../etc/passwd-MARKER"), c()), ErrUnknownKey},
		{"URL kid", f.token(with(h(), "kid", "https://evil.example/key-MARKER"), c()), ErrUnknownKey},
		{"missing kid", f.token(with(h(), "kid", nil), c()), ErrMissingKeyID},
		{"jku header", f.token(with(h(), "jku", "https://evil.example/jwks-MARKER"), c()), ErrForbiddenHeader},
		{"x5u header", f.token(with(h(), "x5u", "https://evil.example/cert-MARKER"), c()), ErrForbiddenHeader},
		{"embedded jwk", compact(attacker, mustJSON(with(with(f.header(attacker), "jwk", json.RawMessage(attackerJWK)), "kid", f.key.ID)), mustJSON(c())), ErrForbiddenHeader},
		{"x5c header", f.token(with(h(), "x5c", []string{"MIIB-MARKER"}), c()), ErrForbiddenHeader},
		{"crit header", f.token(with(with(h(), "crit", []string{"exp"}), "exp", 1), c()), ErrForbiddenHeader},
		{"typ JWT", f.token(with(h(), "typ", "JWT"), c()), ErrType},
		{"typ missing", f.token(with(h(), "typ", nil), c()), ErrType},
		{"expired", f.token(h(), with(with(c(), "exp", now-60), "iat", now-660)), ErrExpired},
		{"nbf in the future", f.token(h(), with(c(), "nbf", now+3600)), ErrNotYetValid},
		{"iat far in the future", f.token(h(), with(with(c(), "iat", now+86400), "exp", now+86400+600)), ErrIssuedInFuture},
		{"wrong issuer", f.token(h(), with(c(), "iss", "https://evil.example-MARKER")), ErrIssuer},
		{"another tenant's audience", f.token(h(), with(c(), "aud", []string{"payments-api"})), ErrAudience},
		{"missing exp", f.token(h(), with(c(), "exp", nil)), ErrMissingClaim},
		{"missing iat", f.token(h(), with(c(), "iat", nil)), ErrMissingClaim},
		{"missing client_id", f.token(h(), with(c(), "client_id", nil)), ErrMissingClaim},
		{"missing account_uid (not bound to an account)", f.token(h(), with(c(), "account_uid", nil)), ErrMissingClaim},
		{"empty account_uid", f.token(h(), with(c(), "account_uid", "")), ErrMissingClaim},
		{"missing aud", f.token(h(), with(c(), "aud", nil)), ErrMissingClaim},
		{"ten-day lifetime", f.token(h(), with(c(), "exp", now+10*86400)), ErrLifetime},
		{"oversized", f.token(h(), with(c(), "pad", strings.Repeat("A", DefaultMaxSize))), ErrTooLarge},
		{"bad base64 header", "eyJ!!!." + parts[1] + "." + parts[2], ErrMalformed},
		{"header not an object", compact(f.key, []byte(`["alg","ES256"]`), mustJSON(c())), ErrMalformed},
		{"two parts", parts[0] + "." + parts[1], ErrMalformed},
		{"four parts", valid + ".AAAA", ErrMalformed},
		{"five parts (JWE shape)", valid + ".AAAA.BBBB", ErrMalformed},
		{"empty", "", ErrMalformed},
		{"duplicate alg in header", compact(f.key, []byte(`{"alg":"ES256","alg":"none","kid":"`+f.key.ID+`","typ":"at+jwt"}`), mustJSON(c())), ErrMalformed},
		{"duplicate sub in claims", compact(f.key, mustJSON(h()), []byte(strings.Replace(string(mustJSON(c())), `"sub":`, `"sub":"admin","sub":`, 1))), ErrMalformed},
		{"duplicate sub hidden by an escape", compact(f.key, mustJSON(h()), []byte(strings.Replace(string(mustJSON(c())), `"sub":`, `"s\u0075b":"admin","sub":`, 1))), ErrMalformed},
		{"duplicate nested under an array is fine but top-level repeat is not", compact(f.key, mustJSON(h()), []byte(strings.Replace(string(mustJSON(c())), `"jti":`, `"x":[{"jti":1},"}\""],"jti":"a","jti":`, 1))), ErrMalformed},
		{"claims not JSON", compact(f.key, mustJSON(h()), []byte("not json MARKER")), ErrMalformed},
		{"payload tampered", tampered, ErrSignature},
		{"signed by another key under our kid", compact(f.other, mustJSON(h()), mustJSON(c())), ErrSignature},
		{"signature stripped", parts[0] + "." + parts[1] + ".", ErrSignature},
	}
	if len(cases) < 25 {
		t.Fatalf("table has %d cases, want at least 25", len(cases))
	}
	if _, err := f.verifier.Verify(valid); err != nil {
		t.Fatalf("the valid token the cases are built from is refused: %v", err)
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := f.verifier.Verify(tc.token)
			if err == nil || got != nil {
				t.Fatalf("accepted (claims %+v)", got)
			}
			if !errors.Is(err, tc.want) {
				t.Errorf("got %v, want %v", err, tc.want)
			}
			if strings.Contains(err.Error(), "MARKER") || (len(tc.token) > 20 && strings.Contains(err.Error(), tc.token[:20])) {
				t.Errorf("error echoes token contents: %v", err)
			}
		})
	}
}

func TestVerifyLeeway(t *testing.T) {
	f := newFixture(t)
	now := f.clock.Now().Unix()
	tok := f.token(f.header(f.key), map[string]any{
		"iss": testIssuer, "sub": "s", "aud": "orders-api", "exp": now + 60, "iat": now - 60, "jti": "j", "client_id": "c", "account_uid": "u",
	})
	f.clock.SetTime(epoch.Add(60*time.Second + 29*time.Second))
	if _, err := f.verifier.Verify(tok); err != nil {
		t.Errorf("29s past exp with 30s leeway: %v", err)
	}
	f.clock.SetTime(epoch.Add(60*time.Second + 30*time.Second))
	if _, err := f.verifier.Verify(tok); !errors.Is(err, ErrExpired) {
		t.Errorf("30s past exp with 30s leeway: %v", err)
	}
	// A huge configured leeway is capped.
	f.verifier.Leeway = 24 * time.Hour
	f.clock.SetTime(epoch.Add(60*time.Second + MaxLeeway))
	if _, err := f.verifier.Verify(tok); !errors.Is(err, ErrExpired) {
		t.Errorf("leeway was not capped at %v: %v", MaxLeeway, err)
	}
}

// TestIssueRefusesTooLargeTokens: the issuer never signs a token its own
// verifier or nginx would refuse; the error says how to narrow it.
func TestIssueRefusesTooLargeTokens(t *testing.T) {
	f := newFixture(t)
	is, _ := NewIssuer(testIssuer, time.Minute, f.key, f.clock)
	perms := func(n int) []string {
		out := make([]string, n)
		for i := range out {
			out[i] = fmt.Sprintf("service-%03d:resource-name:read", i)
		}
		return out
	}
	base := Request{Subject: "team.billing", ClientID: "team.billing", Audience: "orders-api", ID: "0123456789abcdef0123456789abcdef", AccountUID: "u"}
	for _, c := range []struct {
		n    int
		fits bool
	}{{10, true}, {120, true}, {200, false}, {256, false}} {
		r := base
		r.Permissions = perms(c.n)
		want, _ := EncodedSize(testIssuer, time.Minute, f.key.Algorithm, f.key.ID, keys.SignatureSize(f.key.Algorithm, 0), r)
		raw, _, err := is.Issue(r)
		if c.fits {
			if err != nil || len(raw) != want || len(raw) > MaxIssuedSize {
				t.Errorf("%d permissions: %d bytes (estimated %d), %v", c.n, len(raw), want, err)
			}
			if _, err := f.verifier.Verify(raw); err != nil && !errors.Is(err, ErrAudience) {
				t.Errorf("%d permissions: an issued token is refused by the verifier: %v", c.n, err)
			}
			continue
		}
		var se *SizeError
		if !errors.Is(err, ErrTooLargeToIssue) || !errors.As(err, &se) || se.Size != want || raw != "" {
			t.Errorf("%d permissions: %q, %v; want a SizeError of %d bytes", c.n, raw, err, want)
		}
		if !strings.Contains(err.Error(), "scope") {
			t.Errorf("the error does not say how to narrow the token: %v", err)
		}
	}
}
