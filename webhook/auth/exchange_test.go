package auth

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	authnv1 "k8s.io/api/authentication/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/authframework/authframework/internal/breaker"
	"github.com/authframework/authframework/pkg/serverapi"
)

const exchangeAudience = "authframework"

// subjectToken signs a JWT shaped like a Kubernetes service-account token,
// with a throwaway key: the fake reviewer, not the signature, decides.
func subjectToken(t testing.TB, aud []string, exp time.Time) string {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	sig, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: k}, nil)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := jwt.Signed(sig).Claims(jwt.Claims{Issuer: "https://kubernetes.default.svc", Subject: "system:serviceaccount:team:stock-sync",
		Audience: aud, Expiry: jwt.NewNumericDate(exp), IssuedAt: jwt.NewNumericDate(exp.Add(-time.Hour))}).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

func TestCheckExchangeForm(t *testing.T) {
	good := url.Values{"subject_token": {"x"}, "subject_token_type": {serverapi.TokenTypeJWT}}
	with := func(k, v string) url.Values {
		f := url.Values{}
		for k, vs := range good {
			f[k] = vs
		}
		f.Set(k, v)
		return f
	}
	cases := []struct {
		name       string
		form       url.Values
		clientAuth bool
		want       string // substring of the refusal; "" for none
	}{
		{"complete", good, false, ""},
		{"an access token is asked for", with("requested_token_type", serverapi.TokenTypeAccessToken), false, ""},
		{"a JWT is asked for", with("requested_token_type", serverapi.TokenTypeJWT), false, ""},
		{"client authentication", good, true, "no client authentication"},
		{"no subject token", with("subject_token", ""), false, "subject_token is required"},
		{"no subject token type", with("subject_token_type", ""), false, "subject_token_type must be"},
		{"an access token as subject", with("subject_token_type", serverapi.TokenTypeAccessToken), false, "subject_token_type must be"},
		{"an actor token", with("actor_token", "y"), false, "actor tokens"},
		{"a refresh token is asked for", with("requested_token_type", "urn:ietf:params:oauth:token-type:refresh_token"), false, "requested_token_type"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ref := checkExchangeForm(c.form, c.clientAuth)
			switch {
			case c.want == "" && ref != nil:
				t.Fatalf("refused: %s", ref.msg)
			case c.want != "" && (ref == nil || ref.code != "invalid_request" || !strings.Contains(ref.msg, c.want)):
				t.Fatalf("got %+v, want invalid_request %q", ref, c.want)
			}
		})
	}
}

func TestPeekSubjectToken(t *testing.T) {
	exp := epoch.Add(time.Hour)
	cases := []struct {
		name string
		raw  string
		want string
	}{
		{"for us", subjectToken(t, []string{exchangeAudience}, exp), ""},
		{"for us and the API server", subjectToken(t, []string{"https://kubernetes.default.svc", exchangeAudience}, exp), "alone"},
		{"the API server's audience only", subjectToken(t, []string{"https://kubernetes.default.svc"}, exp), "audience must include"},
		{"expired", subjectToken(t, []string{exchangeAudience}, epoch), "expired"},
		{"not a JWT", "not-a-jwt", "not a signed JWT"},
		{"unsigned", "eyJhbGciOiJub25lIn0.eyJhdWQiOiJhdXRoZnJhbWV3b3JrIn0.", "not a signed JWT"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, ref := peekSubjectToken(c.raw, exchangeAudience, epoch)
			switch {
			case c.want == "" && (ref != nil || !got.Equal(exp)):
				t.Fatalf("got %v, %+v; want exp %v", got, ref, exp)
			case c.want != "" && (ref == nil || !strings.Contains(ref.msg, c.want)):
				t.Fatalf("got %+v, want a refusal with %q", ref, c.want)
			}
		})
	}
}

func TestKubeIdentityOf(t *testing.T) {
	user := authnv1.UserInfo{Username: "system:serviceaccount:team:stock-sync", UID: "sa-uid"}
	podUser := user
	podUser.Extra = map[string]authnv1.ExtraValue{extraPodName: {"stock-sync-7f9"}, extraPodUID: {"pod-uid"}}
	cases := []struct {
		name string
		st   authnv1.TokenReviewStatus
		want kubeIdentity
		ref  string
	}{
		{"service account", authnv1.TokenReviewStatus{Authenticated: true, User: user, Audiences: []string{exchangeAudience}},
			kubeIdentity{ServiceAccount: types.NamespacedName{Namespace: "team", Name: "stock-sync"}, UID: "sa-uid"}, ""},
		{"pod-bound", authnv1.TokenReviewStatus{Authenticated: true, User: podUser, Audiences: []string{exchangeAudience}},
			kubeIdentity{ServiceAccount: types.NamespacedName{Namespace: "team", Name: "stock-sync"}, UID: "sa-uid", PodName: "stock-sync-7f9", PodUID: "pod-uid"}, ""},
		{"refused, the API server's reason kept from the caller", authnv1.TokenReviewStatus{Error: `pod "stock-sync-7f9" not found`}, kubeIdentity{}, `did not authenticate`},
		{"refused without a reason", authnv1.TokenReviewStatus{}, kubeIdentity{}, "did not authenticate"},
		{"another audience confirmed", authnv1.TokenReviewStatus{Authenticated: true, User: user, Audiences: []string{"api"}}, kubeIdentity{}, "did not confirm"},
		{"no audience confirmed", authnv1.TokenReviewStatus{Authenticated: true, User: user}, kubeIdentity{}, "did not confirm"},
		{"a user, not a service account", authnv1.TokenReviewStatus{Authenticated: true, User: authnv1.UserInfo{Username: "alice"}, Audiences: []string{exchangeAudience}},
			kubeIdentity{}, "not a Kubernetes service-account token"},
		{"a malformed service account name", authnv1.TokenReviewStatus{Authenticated: true,
			User: authnv1.UserInfo{Username: "system:serviceaccount:Team:"}, Audiences: []string{exchangeAudience}}, kubeIdentity{}, "not a Kubernetes service-account token"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, ref := kubeIdentityOf(c.st, exchangeAudience)
			if c.ref == "" {
				if ref != nil || got != c.want {
					t.Fatalf("got %+v, %+v; want %+v", got, ref, c.want)
				}
				return
			}
			if ref == nil || ref.code != "invalid_request" || ref.status != http.StatusBadRequest || !strings.Contains(ref.msg, c.ref) {
				t.Fatalf("got %+v, want invalid_request with %q", ref, c.ref)
			}
			if ref.detail != truncate(c.st.Error, 200) || c.st.Error != "" && strings.Contains(ref.msg, c.st.Error) {
				t.Errorf("the API server's reason %q: in the answer %q, in the audit %q", c.st.Error, ref.msg, ref.detail)
			}
		})
	}
}

func TestExchangeTarget(t *testing.T) {
	id := kubeIdentity{ServiceAccount: types.NamespacedName{Namespace: "team", Name: "stock-sync"}}
	pol := &Policy{ActiveKey: "k1"}
	acct := func(name string, mutate func(*Account)) Listing {
		a := &Account{Key: types.NamespacedName{Namespace: "team", Name: name}, ClientID: "team." + name, Policy: "orders"}
		if mutate != nil {
			mutate(a)
		}
		return Listing{Account: a, Policy: pol}
	}
	one := acct("stock-sync", nil)
	cases := []struct {
		name     string
		listings []Listing
		clientID string
		status   int
		ref      string
	}{
		{"listed once", []Listing{one}, "", 200, ""},
		{"listed once, client_id repeated", []Listing{one}, "team.stock-sync", 200, ""},
		{"listed by nobody", nil, "", 400, "not listed"},
		{"listed twice", []Listing{one, acct("other", nil)}, "", 400, "listed by 2 ServiceAccounts"},
		{"disabled", []Listing{acct("stock-sync", func(a *Account) { a.Disabled = true })}, "", 400, "disabled"},
		{"client_id of another", []Listing{one}, "team.billing", 400, "client_id"},
		{"no client id yet", []Listing{acct("stock-sync", func(a *Account) { a.ClientID = "" })}, "", 503, "not ready"},
		{"no policy", []Listing{{Account: one.Account}}, "", 503, "not ready"},
		{"no active key", []Listing{{Account: one.Account, Policy: &Policy{}}}, "", 503, "not ready"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, ref := exchangeTarget(id, c.listings, c.clientID)
			if c.ref == "" {
				if ref != nil || got.Account != one.Account {
					t.Fatalf("got %+v, %+v", got, ref)
				}
				return
			}
			if ref == nil || ref.status != c.status || !strings.Contains(ref.msg, c.ref) {
				t.Fatalf("got %+v, want %d with %q", ref, c.status, c.ref)
			}
			if c.status == 503 && ref.retryAfter <= 0 {
				t.Error("503 without Retry-After")
			}
		})
	}
}

func TestCheckExchangeAudience(t *testing.T) {
	for _, aud := range []string{"https://kubernetes.default.svc", "https://kubernetes.default.svc.cluster.local", "https://issuer.example.com"} {
		if CheckExchangeAudience(aud, "https://issuer.example.com") == nil {
			t.Errorf("audience %q accepted", aud)
		}
	}
	if err := CheckExchangeAudience("authframework", "https://issuer.example.com", ""); err != nil {
		t.Errorf("authframework refused: %v", err)
	}
}

// fakeReviewer answers TokenReviews from a table and counts them; failing
// makes it return errors as an API server that is down.
type fakeReviewer struct {
	mu      sync.Mutex
	answers map[string]authnv1.TokenReviewStatus
	failing bool
	calls   int
}

func (f *fakeReviewer) Review(_ context.Context, tok string, aud []string) (authnv1.TokenReviewStatus, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	if f.failing {
		return authnv1.TokenReviewStatus{}, errors.New("connection refused")
	}
	st, ok := f.answers[tok]
	if !ok {
		return authnv1.TokenReviewStatus{Error: "invalid bearer token"}, nil
	}
	st.Audiences = aud
	return st, nil
}

func (f *fakeReviewer) set(tok string, st authnv1.TokenReviewStatus, failing bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.answers == nil {
		f.answers = map[string]authnv1.TokenReviewStatus{}
	}
	if tok != "" {
		f.answers[tok] = st
	}
	f.failing = failing
}

func (f *fakeReviewer) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls
}

// exchangeFixture is the handler fixture with token exchange on, and the
// account "billing" listing the Kubernetes service account team/stock-sync.
func exchangeFixture(t *testing.T) (*fixture, *fakeReviewer) {
	f := newFixture(t)
	rev := &fakeReviewer{}
	f.server = NewServer(f.store, Options{Clock: f.clock, Log: testLogger(f.logs), Audit: testLogger(f.logs), CacheSize: 1000, Revocations: f.revs,
		TokenExchange: TokenExchange{Audience: exchangeAudience, Reviewer: rev, CacheTTL: 10 * time.Second,
			Breaker: breaker.Settings{Failures: 3, OpenFor: 5 * time.Second}}})
	a, _, _ := f.store.Client(clientID)
	listed := *a
	listed.KubernetesServiceAccounts = []string{ns + "/stock-sync"}
	f.store.SetAccount(listed)
	return f, rev
}

func exchangeForm(subject string, extra ...string) url.Values {
	v := url.Values{"grant_type": {serverapi.GrantTypeTokenExchange}, "subject_token": {subject}, "subject_token_type": {serverapi.TokenTypeJWT}}
	for i := 0; i+1 < len(extra); i += 2 {
		v.Set(extra[i], extra[i+1])
	}
	return v
}

func TestTokenExchange(t *testing.T) {
	f, rev := exchangeFixture(t)
	sub := subjectToken(t, []string{exchangeAudience}, epoch.Add(time.Hour))
	rev.set(sub, authnv1.TokenReviewStatus{Authenticated: true, User: authnv1.UserInfo{Username: "system:serviceaccount:team:stock-sync", UID: "sa-uid",
		Extra: map[string]authnv1.ExtraValue{extraPodName: {"stock-sync-0"}, extraPodUID: {"pod-uid"}}}}, false)

	w := f.do("POST", "/token", exchangeForm(sub, "scope", "orders:read", "audience", "inventory-api"), nil)
	if w.Code != 200 {
		t.Fatalf("exchange: %d %s", w.Code, w.Body)
	}
	var resp tokenResponse
	if err := json.Unmarshal(w.Body.Bytes(), &resp); err != nil {
		t.Fatal(err)
	}
	if resp.IssuedTokenType != serverapi.TokenTypeAccessToken || resp.TokenType != "Bearer" || resp.Scope != "orders:read" || resp.ExpiresIn != 900 {
		t.Errorf("response %+v", resp)
	}
	p, _ := f.store.PolicyByName(types.NamespacedName{Namespace: ns, Name: "orders"})
	c, err := p.Verify(resp.AccessToken)
	if err != nil {
		t.Fatal(err)
	}
	if c.ClientID != clientID || c.AccountUID != accountUID || c.Audience[0] != "inventory-api" || c.Actor == nil ||
		c.Actor.Subject != "system:serviceaccount:team:stock-sync" || c.Actor.Kubernetes.Pod == nil || c.Actor.Kubernetes.Pod.Name != "stock-sync-0" ||
		c.Actor.Kubernetes.Pod.UID != "pod-uid" || c.Actor.Kubernetes.ServiceAccount.UID != "sa-uid" {
		t.Errorf("claims %+v, actor %+v", c, c.Actor)
	}
	// The exchanged token is an ordinary access token of the account.
	if w := f.do("GET", "/validate", nil, map[string]string{"Authorization": "Bearer " + resp.AccessToken}); w.Code != 200 {
		t.Errorf("/validate of the exchanged token: %d %s", w.Code, w.Body)
	}
	if !strings.Contains(f.logs.String(), `"event":"token_exchanged"`) || !strings.Contains(f.logs.String(), `"pod":"stock-sync-0"`) ||
		strings.Contains(f.logs.String(), sub) {
		t.Errorf("audit: %s", f.logs)
	}

	// Scope narrowing is the client credentials grant's.
	if w := f.do("POST", "/token", exchangeForm(sub, "scope", "admin:*"), nil); w.Code != 400 || !strings.Contains(w.Body.String(), "invalid_scope") {
		t.Errorf("scope beyond the account's: %d %s", w.Code, w.Body)
	}
	if w := f.do("POST", "/token", exchangeForm(sub, "audience", "payments-api"), nil); w.Code != 400 || !strings.Contains(w.Body.String(), "invalid_target") {
		t.Errorf("audience beyond the policy's: %d %s", w.Code, w.Body)
	}
	// One TokenReview so far: the others were answered from the cache.
	if n := rev.count(); n != 1 {
		t.Errorf("%d TokenReviews, want 1", n)
	}
	// Past the cache TTL the API server is asked again.
	f.clock.Step(11 * time.Second)
	if w := f.do("POST", "/token", exchangeForm(sub), nil); w.Code != 200 || rev.count() != 2 {
		t.Errorf("after the cache TTL: %d, %d reviews", w.Code, rev.count())
	}
	// Revoking the account's tokens covers exchanged ones.
	a, _, _ := f.store.Client(clientID)
	d := *a
	d.Disabled = true
	f.store.SetAccount(d)
	if w := f.do("GET", "/validate", nil, map[string]string{"Authorization": "Bearer " + resp.AccessToken}); w.Code != 401 {
		t.Errorf("/validate after the account is disabled: %d", w.Code)
	}
	if w := f.do("POST", "/token", exchangeForm(sub), nil); w.Code != 400 || !strings.Contains(w.Body.String(), "disabled") {
		t.Errorf("exchange for a disabled account: %d %s", w.Code, w.Body)
	}
}

func TestTokenExchangeCacheNeverPastExp(t *testing.T) {
	f, rev := exchangeFixture(t)
	sub := subjectToken(t, []string{exchangeAudience}, epoch.Add(3*time.Second))
	rev.set(sub, authnv1.TokenReviewStatus{Authenticated: true, User: authnv1.UserInfo{Username: "system:serviceaccount:team:stock-sync"}}, false)
	if w := f.do("POST", "/token", exchangeForm(sub), nil); w.Code != 200 {
		t.Fatalf("exchange: %d %s", w.Code, w.Body)
	}
	f.clock.Step(3 * time.Second)
	if w := f.do("POST", "/token", exchangeForm(sub), nil); w.Code != 400 || !strings.Contains(w.Body.String(), "expired") {
		t.Errorf("expired subject token: %d %s", w.Code, w.Body)
	}
	if rev.count() != 1 {
		t.Errorf("%d reviews, want 1", rev.count())
	}
}

func TestTokenExchangeRefusals(t *testing.T) {
	f, rev := exchangeFixture(t)
	user := func(name string) authnv1.TokenReviewStatus {
		return authnv1.TokenReviewStatus{Authenticated: true, User: authnv1.UserInfo{Username: "system:serviceaccount:team:" + name}}
	}
	unlisted := subjectToken(t, []string{exchangeAudience}, epoch.Add(time.Hour))
	rev.set(unlisted, user("nobody-lists-me"), false)
	refused := subjectToken(t, []string{exchangeAudience}, epoch.Add(time.Hour)) // unknown to the reviewer
	apiOnly := subjectToken(t, []string{"https://kubernetes.default.svc"}, epoch.Add(time.Hour))
	rev.set(apiOnly, user("stock-sync"), false)
	cases := []struct {
		name   string
		form   url.Values
		hdr    map[string]string
		status int
		code   string
		msg    string
	}{
		{"unlisted service account", exchangeForm(unlisted), nil, 400, "invalid_request", "not listed"},
		{"refused by the API server", exchangeForm(refused), nil, 400, "invalid_request", "did not authenticate"},
		{"the pod's API credential", exchangeForm(apiOnly), nil, 400, "invalid_request", "audience must include"},
		{"malformed", exchangeForm("garbage"), nil, 400, "invalid_request", "not a signed JWT"},
		{"with client authentication", exchangeForm(unlisted), basic(clientID, secret), 400, "invalid_request", "no client authentication"},
		{"with a malformed Authorization header", exchangeForm(unlisted), map[string]string{"Authorization": "Basic !!"}, 400, "invalid_request", "no client authentication"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			w := f.do("POST", "/token", c.form, c.hdr)
			var body map[string]string
			_ = json.Unmarshal(w.Body.Bytes(), &body)
			if w.Code != c.status || body["error"] != c.code || !strings.Contains(body["error_description"], c.msg) || body["request_id"] == "" {
				t.Fatalf("got %d %s, want %d %s %q", w.Code, w.Body, c.status, c.code, c.msg)
			}
		})
	}
	// Listed twice: a second account lists team/stock-sync too.
	sub := subjectToken(t, []string{exchangeAudience}, epoch.Add(time.Hour))
	rev.set(sub, user("stock-sync"), false)
	f.store.SetAccount(Account{Key: types.NamespacedName{Namespace: ns, Name: "other"}, UID: "other-uid", ClientID: "team.other", Policy: "orders",
		KubernetesServiceAccounts: []string{ns + "/stock-sync"}})
	if w := f.do("POST", "/token", exchangeForm(sub), nil); w.Code != 400 || !strings.Contains(w.Body.String(), "listed by 2") {
		t.Errorf("listed twice: %d %s", w.Code, w.Body)
	}
	f.store.DeleteAccount(types.NamespacedName{Namespace: ns, Name: "other"})
	if w := f.do("POST", "/token", exchangeForm(sub), nil); w.Code != 200 {
		t.Errorf("listed once again: %d %s", w.Code, w.Body)
	}
}

func TestTokenExchangeOff(t *testing.T) {
	f := newFixture(t)
	sub := subjectToken(t, []string{exchangeAudience}, epoch.Add(time.Hour))
	if w := f.do("POST", "/token", exchangeForm(sub), nil); w.Code != 400 || !strings.Contains(w.Body.String(), "unsupported_grant_type") ||
		!strings.Contains(w.Body.String(), serverapi.FlagTokenExchangeAudience) {
		t.Errorf("exchange while off: %d %s", w.Code, w.Body)
	}
}

// TestTokenExchangeBreaker: while the API server fails, exchanges are
// answered 503 with Retry-After; after Failures failures the breaker opens
// and answers without asking; after OpenFor one probe goes, and a success
// closes it. Validation never asks the API server.
func TestTokenExchangeBreaker(t *testing.T) {
	f, rev := exchangeFixture(t)
	sub := subjectToken(t, []string{exchangeAudience}, epoch.Add(time.Hour))
	rev.set(sub, authnv1.TokenReviewStatus{Authenticated: true, User: authnv1.UserInfo{Username: "system:serviceaccount:team:stock-sync"}}, true)
	issued := f.token(nil)
	for i := range 3 {
		w := f.do("POST", "/token", exchangeForm(sub), nil)
		if w.Code != 503 || w.Header().Get("Retry-After") == "" || !strings.Contains(w.Body.String(), "temporarily_unavailable") {
			t.Fatalf("failure %d: %d %s", i, w.Code, w.Body)
		}
	}
	if rev.count() != 3 {
		t.Fatalf("%d reviews, want 3", rev.count())
	}
	w := f.do("POST", "/token", exchangeForm(sub), nil)
	if w.Code != 503 || w.Header().Get("Retry-After") != "5" || !strings.Contains(w.Body.String(), "circuit breaker open") || rev.count() != 3 {
		t.Fatalf("open breaker: %d %q %s, %d reviews", w.Code, w.Header().Get("Retry-After"), w.Body, rev.count())
	}
	if !strings.Contains(f.logs.String(), `"event":"token_exchange_breaker"`) || !strings.Contains(f.logs.String(), `"to":"open"`) {
		t.Errorf("no audit line for the open breaker: %s", f.logs)
	}
	metrics := f.do("GET", "/metrics", nil, nil).Body.String()
	if !strings.Contains(metrics, serverapi.MetricTokenExchangeBreaker+" 2") || !strings.Contains(metrics, serverapi.MetricTokenExchangeReviews+`{result="refused_breaker_open"} 1`) {
		t.Errorf("metrics:\n%s", metrics)
	}
	if w := f.do("GET", "/validate", nil, map[string]string{"Authorization": "Bearer " + issued}); w.Code != 200 {
		t.Errorf("/validate while the breaker is open: %d", w.Code)
	}
	// The API server is back; after OpenFor the probe closes the breaker.
	rev.set("", authnv1.TokenReviewStatus{}, false)
	f.clock.Step(5 * time.Second)
	if w := f.do("POST", "/token", exchangeForm(sub), nil); w.Code != 200 {
		t.Fatalf("after OpenFor: %d %s", w.Code, w.Body)
	}
	metrics = f.do("GET", "/metrics", nil, nil).Body.String()
	if !strings.Contains(metrics, serverapi.MetricTokenExchangeBreaker+" 0") {
		t.Errorf("breaker not closed:\n%s", metrics)
	}
}

// TestTokenExchangeFloodCostsItsSender: a source whose subject tokens the
// API server keeps refusing stops reaching it; other sources do not notice.
func TestTokenExchangeFloodCostsItsSender(t *testing.T) {
	f, rev := exchangeFixture(t)
	// The guard engages with trusted proxies (a known topology), as
	// /validate's does; the peer here is not one, so it is the source.
	f.server = NewServer(f.store, Options{Clock: f.clock, Log: testLogger(f.logs), Audit: testLogger(f.logs), Revocations: f.revs,
		Throttles:      Throttles{FailedAuthPerSource: Budget{N: 3, Per: time.Minute}},
		TrustedProxies: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")},
		TokenExchange:  TokenExchange{Audience: exchangeAudience, Reviewer: rev}})
	// Failed client secrets from the same address spend a budget of their
	// own, not the exchanges'.
	for range 3 {
		f.do("POST", "/token", url.Values{"grant_type": {"client_credentials"}}, basic(clientID, "wrong"))
	}
	for i := range 3 {
		forged := subjectToken(t, []string{exchangeAudience}, epoch.Add(time.Hour)) // unknown to the reviewer: refused
		if w := f.do("POST", "/token", exchangeForm(forged), nil); w.Code != 400 {
			t.Fatalf("forged token %d: %d %s", i, w.Code, w.Body)
		}
	}
	w := f.do("POST", "/token", exchangeForm(subjectToken(t, []string{exchangeAudience}, epoch.Add(time.Hour))), nil)
	if w.Code != 429 || w.Header().Get("Retry-After") == "" || !strings.Contains(w.Body.String(), "too many refused token exchanges") {
		t.Fatalf("fourth forged token: %d %s", w.Code, w.Body)
	}
	if rev.count() != 3 {
		t.Errorf("%d TokenReviews, want 3: the throttled one must not reach the API server", rev.count())
	}
	if strings.Contains(f.logs.String(), "invalid bearer token") == false {
		t.Error("the API server's reason is not in the audit line")
	}
	// Another pod (another address) exchanges its real token.
	sub := subjectToken(t, []string{exchangeAudience}, epoch.Add(time.Hour))
	rev.set(sub, authnv1.TokenReviewStatus{Authenticated: true, User: authnv1.UserInfo{Username: "system:serviceaccount:team:stock-sync"}}, false)
	req := httptest.NewRequest("POST", "/token", strings.NewReader(exchangeForm(sub).Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.RemoteAddr = "198.51.100.7:4000"
	rec := httptest.NewRecorder()
	f.server.ServeHTTP(rec, req)
	if rec.Code != 200 {
		t.Errorf("another source: %d %s", rec.Code, rec.Body)
	}
	// A token whose review is cached is not held back: it costs the API
	// server nothing.
	if w := f.do("POST", "/token", exchangeForm(sub), nil); w.Code != 200 {
		t.Errorf("a cached token from the throttled source: %d %s", w.Code, w.Body)
	}
	// The budget refills.
	f.clock.Step(time.Minute)
	if w := f.do("POST", "/token", exchangeForm(sub), nil); w.Code != 200 {
		t.Errorf("after the budget refilled: %d %s", w.Code, w.Body)
	}
}
