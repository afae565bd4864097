package auth

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	authenticationv1 "k8s.io/api/authentication/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/authframework/authframework/internal/kubeuser"
	"github.com/authframework/authframework/internal/token"
	"github.com/authframework/authframework/pkg/serverapi"
)

func TestReviewStatus(t *testing.T) {
	account := &Account{Key: types.NamespacedName{Namespace: "team", Name: "billing"}, UID: "uid-1", ClientID: "team.billing",
		Roles: []string{"orders-reader", "auditor", "added-later"}}
	claims := &token.Claims{ID: "jti-1", Audience: []string{"https://kubernetes.default.svc", "orders-api"},
		Roles: []string{"auditor", "orders-reader", "since-removed"}}
	user := authenticationv1.UserInfo{Username: "authframework:team:billing", UID: "uid-1",
		Groups: []string{"authframework:team:orders-reader", "authframework:team:auditor"},
		Extra:  map[string]authenticationv1.ExtraValue{kubeuser.ExtraClientID: {"team.billing"}, kubeuser.ExtraTokenID: {"jti-1"}}}
	implicit := TokenReviewOptions{ImplicitAudiences: []string{"https://kubernetes.default.svc"}}
	cases := []struct {
		name     string
		ref      *refusal
		spec     []string
		opts     TokenReviewOptions
		want     authenticationv1.TokenReviewStatus
		wantCode string
	}{
		{"one of the asked audiences", nil, []string{"https://kubernetes.default.svc", "other"}, TokenReviewOptions{},
			authenticationv1.TokenReviewStatus{Authenticated: true, Audiences: []string{"https://kubernetes.default.svc"}, User: user}, ""},
		{"every asked audience it carries, once", nil, []string{"orders-api", "https://kubernetes.default.svc", "orders-api"}, TokenReviewOptions{},
			authenticationv1.TokenReviewStatus{Authenticated: true, Audiences: []string{"orders-api", "https://kubernetes.default.svc"}, User: user}, ""},
		{"none of the asked audiences", nil, []string{"https://other.cluster"}, implicit,
			authenticationv1.TokenReviewStatus{Error: "wrong_audience: the token carries none of the audiences the API server accepts (https://other.cluster); request one of them from the token endpoint"}, "wrong_audience"},
		{"no audience asked: the API server's own", nil, nil, implicit,
			authenticationv1.TokenReviewStatus{Authenticated: true, User: user}, ""},
		{"no audience asked, the API server's own not carried", nil, nil, TokenReviewOptions{ImplicitAudiences: []string{"https://other.cluster"}},
			authenticationv1.TokenReviewStatus{Error: "wrong_audience: the token carries none of the audiences the API server accepts (https://other.cluster); request one of them from the token endpoint"}, "wrong_audience"},
		{"no audience asked and none known", nil, nil, TokenReviewOptions{},
			authenticationv1.TokenReviewStatus{Error: "wrong_audience: the review names no audience and this server knows no implicit API server audience (tokenreview-audiences)"}, "wrong_audience"},
		{"refused by the token decision", newRefusal("token_revoked", "the token has been revoked"), []string{"https://kubernetes.default.svc"}, TokenReviewOptions{},
			authenticationv1.TokenReviewStatus{Error: "token_revoked: the token has been revoked"}, "token_revoked"},
		{"other prefixes", nil, []string{"orders-api"}, TokenReviewOptions{Names: kubeuser.Names{UsernamePrefix: "af-", GroupsPrefix: "af:"}},
			authenticationv1.TokenReviewStatus{Authenticated: true, Audiences: []string{"orders-api"}, User: authenticationv1.UserInfo{
				Username: "af-team:billing", UID: "uid-1", Groups: []string{"af:team:orders-reader", "af:team:auditor"}, Extra: user.Extra}}, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			a := account
			if c.ref != nil {
				a = nil
			}
			got, ref := reviewStatus(claims, a, c.ref, c.spec, c.opts)
			if !reflect.DeepEqual(got, c.want) {
				t.Errorf("status\n got %+v\nwant %+v", got, c.want)
			}
			if code := ""; ref != nil {
				code = ref.code
				if code != c.wantCode {
					t.Errorf("refusal %q, want %q", code, c.wantCode)
				}
			} else if c.wantCode != "" {
				t.Errorf("no refusal, want %q", c.wantCode)
			}
		})
	}
}

// reviewFixture is the handler fixture with /tokenreview configured: the
// API server's own audience is inventory-api, one of the policy's.
func reviewFixture(t *testing.T) *fixture {
	f := newFixture(t)
	f.server = NewServer(f.store, Options{Clock: f.clock, Log: testLogger(f.logs), Audit: testLogger(f.logs), CacheSize: 1000, Revocations: f.revs,
		TokenReview: TokenReviewOptions{ImplicitAudiences: []string{"inventory-api"}}})
	return f
}

// review posts body to the tokenreview handler.
func (f *fixture) review(method, contentType, body string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, serverapi.PathTokenReview, strings.NewReader(body))
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	w := httptest.NewRecorder()
	f.server.TokenReviewHandler().ServeHTTP(w, req)
	return w
}

func reviewBody(tok string, audiences ...string) string {
	b, _ := json.Marshal(authenticationv1.TokenReview{TypeMeta: metav1.TypeMeta{APIVersion: "authentication.k8s.io/v1", Kind: "TokenReview"},
		Spec: authenticationv1.TokenReviewSpec{Token: tok, Audiences: audiences}})
	return string(b)
}

func TestTokenReviewHandler(t *testing.T) {
	inventory := url.Values{"audience": {"inventory-api"}}
	cases := []struct {
		name string
		// body prepares the fixture and returns the review to post.
		body      func(f *fixture) string
		wantError string // status.error's code; "" for authenticated
		wantAuds  []string
	}{
		{"valid, asked audience", func(f *fixture) string { return reviewBody(f.token(inventory), "inventory-api", "elsewhere") }, "", []string{"inventory-api"}},
		{"valid, implicit audience", func(f *fixture) string { return reviewBody(f.token(inventory)) }, "", nil},
		{"a token for another service", func(f *fixture) string { return reviewBody(f.token(nil)) }, "wrong_audience", nil},
		{"asked audience not carried", func(f *fixture) string { return reviewBody(f.token(inventory), "orders-api") }, "wrong_audience", nil},
		{"no token", func(f *fixture) string { return reviewBody("", "inventory-api") }, "missing_token", nil},
		{"garbage", func(f *fixture) string { return reviewBody("not.a.token", "inventory-api") }, "invalid_token", nil},
		{"wrong signature", func(f *fixture) string {
			tok := f.token(inventory)
			parts := strings.Split(tok, ".")
			sig := []byte(parts[2])
			sig[5] ^= 1
			return reviewBody(parts[0]+"."+parts[1]+"."+string(sig), "inventory-api")
		}, "bad_signature", nil},
		{"wrong issuer", func(f *fixture) string {
			tok, _, err := token.Mint("https://evil.example.com", 15*time.Minute, f.key, f.clock, rand.Reader,
				token.Subject{ClientID: clientID, Namespace: ns, UID: accountUID, Name: "billing"}, "inventory-api", nil)
			if err != nil {
				t.Fatal(err)
			}
			return reviewBody(tok, "inventory-api")
		}, "invalid_token", nil},
		{"account_name of another account", func(f *fixture) string {
			tok, _, err := token.Mint(f.store.policies[types.NamespacedName{Namespace: ns, Name: "orders"}].Issuer, 15*time.Minute, f.key, f.clock, rand.Reader,
				token.Subject{ClientID: clientID, Namespace: ns, UID: accountUID, Name: "admin"}, "inventory-api", nil)
			if err != nil {
				t.Fatal(err)
			}
			return reviewBody(tok, "inventory-api")
		}, "invalid_token", nil},
		{"expired", func(f *fixture) string {
			tok := f.token(inventory)
			f.clock.Step(16 * time.Minute)
			return reviewBody(tok, "inventory-api")
		}, "token_expired", nil},
		{"revoked", func(f *fixture) string {
			tok := f.token(inventory)
			if w := f.do("POST", "/revoke", url.Values{"token": {tok}}, basic(clientID, secret)); w.Code != 200 {
				t.Fatalf("revoke: %d %s", w.Code, w.Body)
			}
			return reviewBody(tok, "inventory-api")
		}, "token_revoked", nil},
		{"disabled account", func(f *fixture) string {
			tok := f.token(inventory)
			f.updateAccount(func(a *Account) { a.Disabled = true })
			return reviewBody(tok, "inventory-api")
		}, "client_disabled", nil},
		{"deleted account", func(f *fixture) string {
			tok := f.token(inventory)
			f.store.DeleteAccount(types.NamespacedName{Namespace: ns, Name: "billing"})
			return reviewBody(tok, "inventory-api")
		}, "unknown_client", nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := reviewFixture(t)
			body := c.body(f)
			f.logs.Reset()
			w := f.review("POST", "application/json", body)
			if w.Code != http.StatusOK {
				t.Fatalf("status %d, want 200: %s", w.Code, w.Body)
			}
			var got authenticationv1.TokenReview
			if err := json.Unmarshal(w.Body.Bytes(), &got); err != nil {
				t.Fatal(err)
			}
			if got.APIVersion != "authentication.k8s.io/v1" || got.Kind != "TokenReview" || got.Spec.Token != "" {
				t.Errorf("answer %s: want a TokenReview that does not echo the token", w.Body)
			}
			st := got.Status
			result := "authenticated"
			if c.wantError == "" {
				want := authenticationv1.UserInfo{Username: "authframework:team:billing", UID: accountUID, Groups: []string{"authframework:team:orders-reader"},
					Extra: map[string]authenticationv1.ExtraValue{kubeuser.ExtraClientID: {clientID}, kubeuser.ExtraTokenID: {st.User.Extra[kubeuser.ExtraTokenID][0]}}}
				if !st.Authenticated || st.Error != "" || !reflect.DeepEqual(st.User, want) || !reflect.DeepEqual(st.Audiences, c.wantAuds) {
					t.Errorf("status %+v, want authenticated as %+v for audiences %v", st, want, c.wantAuds)
				}
			} else {
				result = "unauthenticated"
				if st.Authenticated || !strings.HasPrefix(st.Error, c.wantError+": ") || st.User.Username != "" {
					t.Errorf("status %+v, want unauthenticated with %s", st, c.wantError)
				}
			}
			if n := testutil.ToFloat64(f.server.tokenReviews.WithLabelValues(result)); n != 1 {
				t.Errorf("%s{result=%q} = %v, want 1", serverapi.MetricTokenReviewWebhook, result, n)
			}
			logs := f.logs.String()
			if strings.Count(logs, `"event":"token_reviewed"`) != 1 {
				t.Errorf("want one audit line, got %s", logs)
			}
			var review authenticationv1.TokenReview
			_ = json.Unmarshal([]byte(body), &review)
			if review.Spec.Token != "" && strings.Contains(logs, review.Spec.Token) {
				t.Error("the token was logged")
			}
		})
	}
}

func TestTokenReviewRefusesWhatIsNotAReview(t *testing.T) {
	cases := []struct {
		name, method, path, contentType, body string
		status                                int
		reason                                metav1.StatusReason
	}{
		{"not JSON", "POST", serverapi.PathTokenReview, "application/json", "{", 400, metav1.StatusReasonBadRequest},
		{"two values", "POST", serverapi.PathTokenReview, "application/json", reviewBody("a") + reviewBody("b"), 400, metav1.StatusReasonBadRequest},
		{"another kind", "POST", serverapi.PathTokenReview, "application/json", `{"apiVersion":"v1","kind":"Pod"}`, 400, metav1.StatusReasonBadRequest},
		{"v1alpha1", "POST", serverapi.PathTokenReview, "application/json", `{"apiVersion":"authentication.k8s.io/v1alpha1","kind":"TokenReview","spec":{"token":"x"}}`, 400, metav1.StatusReasonBadRequest},
		{"too large", "POST", serverapi.PathTokenReview, "application/json", reviewBody(strings.Repeat("a", MaxTokenReviewBytes)), 400, metav1.StatusReasonBadRequest},
		{"form body", "POST", serverapi.PathTokenReview, "application/x-www-form-urlencoded", "token=x", 415, metav1.StatusReasonUnsupportedMediaType},
		{"GET", "GET", serverapi.PathTokenReview, "", "", 405, metav1.StatusReasonMethodNotAllowed},
		{"another path", "POST", serverapi.PathToken, "application/json", reviewBody("x"), 404, metav1.StatusReasonNotFound},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := reviewFixture(t)
			req := httptest.NewRequest(c.method, c.path, strings.NewReader(c.body))
			if c.contentType != "" {
				req.Header.Set("Content-Type", c.contentType)
			}
			w := httptest.NewRecorder()
			f.server.TokenReviewHandler().ServeHTTP(w, req)
			var st metav1.Status
			if err := json.Unmarshal(w.Body.Bytes(), &st); err != nil {
				t.Fatalf("body is not JSON: %s", w.Body)
			}
			if w.Code != c.status || st.Kind != "Status" || st.Status != metav1.StatusFailure || st.Reason != c.reason || int(st.Code) != c.status || st.Message == "" {
				t.Errorf("%d %s, want %d with a Status of reason %s", w.Code, w.Body, c.status, c.reason)
			}
			if c.path == serverapi.PathTokenReview && c.method == "POST" && testutil.ToFloat64(f.server.tokenReviews.WithLabelValues("malformed")) != 1 {
				t.Errorf("%s{result=malformed} not counted", serverapi.MetricTokenReviewWebhook)
			}
		})
	}
}

// TestTokenReviewV1beta1 answers kube-apiserver's default
// --authentication-token-webhook-version in its own version.
func TestTokenReviewV1beta1(t *testing.T) {
	f := reviewFixture(t)
	body := strings.Replace(reviewBody(f.token(url.Values{"audience": {"inventory-api"}}), "inventory-api"), `"authentication.k8s.io/v1"`, `"authentication.k8s.io/v1beta1"`, 1)
	w := f.review("POST", "application/json", body)
	var got authenticationv1.TokenReview
	if err := json.Unmarshal(w.Body.Bytes(), &got); err != nil || w.Code != http.StatusOK {
		t.Fatalf("%d %s", w.Code, w.Body)
	}
	if got.APIVersion != "authentication.k8s.io/v1beta1" || !got.Status.Authenticated || got.Status.User.Username != "authframework:team:billing" {
		t.Errorf("answer %s", w.Body)
	}
}

// TestMainListenerDoesNotServeTokenReview: the main listener is what
// ingress controllers reach over plain HTTP; /tokenreview is not there.
func TestMainListenerDoesNotServeTokenReview(t *testing.T) {
	f := reviewFixture(t)
	req := httptest.NewRequest("POST", serverapi.PathTokenReview, bytes.NewBufferString(reviewBody(f.token(url.Values{"audience": {"inventory-api"}}))))
	req.Header.Set("Content-Type", "application/json")
	w := httptest.NewRecorder()
	f.server.ServeHTTP(w, req)
	if w.Code != http.StatusNotFound || strings.Contains(w.Body.String(), "authenticated") {
		t.Errorf("main handler answered %d %s, want 404", w.Code, w.Body)
	}
}
