package integration

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/oauth2/clientcredentials"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/utils/clock"

	authv1alpha1 "github.com/authframework/authframework/api/v1alpha1"
	"github.com/authframework/authframework/pkg/serverapi"
	"github.com/authframework/authframework/pkg/verify"
	"github.com/authframework/authframework/test/testenv"
	"github.com/authframework/authframework/webhook/auth"
)

// suiteTime is the verifiers' clock in this suite: the time is the suite's
// fake clock (tokens are minted in it), waits are real, so that the
// revocation stream reconnects without a test stepping the clock.
type suiteTime struct{ clock.RealClock }

func (suiteTime) Now() time.Time                  { return fakeClock.Now() }
func (suiteTime) Since(t time.Time) time.Duration { return fakeClock.Since(t) }

// outage is a reverse proxy in front of the auth server that can be cut:
// while down every connection is dropped, as if the server were stopped.
type outage struct {
	srv  *httptest.Server
	down atomic.Bool
}

func newOutage(t *testing.T, target string) *outage {
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	o := &outage{}
	proxy := httputil.NewSingleHostReverseProxy(u)
	proxy.FlushInterval = -1 // the revocation stream
	o.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if o.down.Load() {
			panic(http.ErrAbortHandler) // the connection is dropped, no answer
		}
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(o.srv.Close)
	return o
}

func (o *outage) stop() {
	o.down.Store(true)
	o.srv.CloseClientConnections()
}

func (o *outage) start() { o.down.Store(false) }

// TestMiddlewareAgainstAuthServer runs pkg/verify against the real auth
// server and API server: tokens from /token pass the middleware; /revoke
// reaches a local-mode verifier through the revocation stream within a
// second; a key rotation is picked up without a restart; with the server
// unreachable the remote-mode breaker opens, valid tokens pass offline and
// tokens revoked before the outage are still refused; with the server back
// the breaker closes.
func TestMiddlewareAgainstAuthServer(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ns := newNamespace(t)
	as := testenv.StartAuthServer(t, ctx, cfg, scheme, auth.ProcessOptions{RevocationNamespace: ns, Namespaces: []string{ns},
		Server: auth.Options{Clock: fakeClock, CacheSize: 1000}})
	front := newOutage(t, as.URL)
	base := front.srv.URL

	issuer := base + serverapi.IssuerPath(ns, "orders")
	policy := types.NamespacedName{Namespace: ns, Name: "orders"}
	if err := k8sClient.Create(ctx, &authv1alpha1.TokenPolicy{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: policy.Name},
		Spec:       authv1alpha1.TokenPolicySpec{Issuer: issuer, Audiences: []string{"orders-api"}},
	}); err != nil {
		t.Fatal(err)
	}
	createRole(t, ns, "orders-reader", "orders:read")
	clientOf := map[string]clientcredentials.Config{}
	for _, name := range []string{"billing", "orders-service"} {
		if err := k8sClient.Create(ctx, &authv1alpha1.ServiceAccount{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
			Spec:       authv1alpha1.ServiceAccountSpec{TokenPolicyRef: authv1alpha1.LocalRef{Name: policy.Name}, Roles: []string{"orders-reader"}},
		}); err != nil {
			t.Fatal(err)
		}
		waitAccount(t, types.NamespacedName{Namespace: ns, Name: name}, "account ready", ready)
		clientOf[name] = clientcredentials.Config{
			ClientID:       secretData(t, ns, name+authv1alpha1.CredentialsSecretSuffix, authv1alpha1.ClientIDKey),
			ClientSecret:   secretData(t, ns, name+authv1alpha1.CredentialsSecretSuffix, authv1alpha1.ClientSecretKey),
			TokenURL:       base + serverapi.PathToken,
			EndpointParams: url.Values{"audience": {"orders-api"}},
		}
	}
	billing, service := clientOf["billing"], clientOf["orders-service"]
	mint := func() string {
		t.Helper()
		var raw string
		testenv.Eventually(t, "a token from /token", func() error {
			tk, err := billing.Token(ctx)
			if err == nil {
				raw = tk.AccessToken
			}
			return err
		})
		return raw
	}
	// The service opens the stream with a token of its own, fresh on each
	// connection: x/oauth2's cache would judge its expiry by the real clock.
	streamToken := func(ctx context.Context) (string, error) {
		tk, err := service.Token(ctx)
		if err != nil {
			return "", err
		}
		return tk.AccessToken, nil
	}
	revocations := func() *verify.RevocationOptions {
		return &verify.RevocationOptions{Token: streamToken, MinBackoff: 20 * time.Millisecond, MaxBackoff: 200 * time.Millisecond, MaxStaleness: time.Hour}
	}
	newVerifier := func(remote *verify.RemoteOptions) (*verify.Verifier, *prometheus.Registry) {
		reg := prometheus.NewRegistry()
		cacheSize := 0 // the default
		if remote != nil {
			cacheSize = -1 // the fake clock stands still: every request asks
		}
		v, err := verify.New(ctx, verify.Options{Issuer: issuer, Audiences: []string{"orders-api"}, Clock: suiteTime{}, CacheSize: cacheSize,
			KeySetRefreshInterval: time.Second, Registerer: reg, Revocations: revocations(), Remote: remote})
		if err != nil {
			t.Fatal(err)
		}
		wctx, wcancel := context.WithTimeout(ctx, 30*time.Second)
		defer wcancel()
		if err := v.WaitForSync(wctx); err != nil {
			t.Fatal(err)
		}
		return v, reg
	}
	local, _ := newVerifier(nil)
	remote, remoteMetrics := newVerifier(&verify.RemoteOptions{
		ClientCredentials: verify.StaticCredentials(service.ClientID, service.ClientSecret),
		BreakerFailures:   2, BreakerOpenFor: 10 * time.Second, Timeout: time.Second,
	})
	ok := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, _ := verify.FromContext(r.Context())
		fmt.Fprint(w, id.ClientID)
	})
	protected := map[string]http.Handler{
		"local":  local.Handler(ok, verify.RequirePermission("orders:read")),
		"remote": remote.Handler(ok, verify.RequirePermission("orders:read")),
	}
	call := func(mode, raw string) (int, string) {
		r := httptest.NewRequest(http.MethodGet, "/orders", nil)
		r.Header.Set("Authorization", "Bearer "+raw)
		w := httptest.NewRecorder()
		protected[mode].ServeHTTP(w, r)
		return w.Code, w.Header().Get(serverapi.HeaderAuthError)
	}
	mustPass := func(what, raw string, modes ...string) {
		t.Helper()
		for _, m := range modes {
			if code, why := call(m, raw); code != http.StatusOK {
				t.Fatalf("%s, %s mode: %d %s", what, m, code, why)
			}
		}
	}
	mustRefuse := func(what, raw, code string, modes ...string) {
		t.Helper()
		for _, m := range modes {
			if got, why := call(m, raw); got != http.StatusUnauthorized || why != code {
				t.Fatalf("%s, %s mode: %d %s, want 401 %s", what, m, got, why, code)
			}
		}
	}

	// Tokens from /token pass.
	tok := mint()
	mustPass("a token from /token", tok, "local", "remote")

	// /revoke reaches the local-mode verifier through the stream, with no
	// call per request, within a second.
	revoke(t, base, billing, tok)
	revoked := time.Now()
	err := wait.PollUntilContextTimeout(t.Context(), 5*time.Millisecond, time.Second, true, func(context.Context) (bool, error) {
		code, why := call("local", tok)
		return code == http.StatusUnauthorized && why == verify.CodeTokenRevoked, nil
	})
	if err != nil {
		t.Fatalf("the local-mode middleware still accepts a token revoked %v ago", time.Since(revoked))
	}
	t.Logf("the local-mode middleware refused the revoked token %v after /revoke returned", time.Since(revoked).Round(10*time.Microsecond))
	mustRefuse("a revoked token", tok, verify.CodeTokenRevoked, "remote")

	// A key rotation is picked up without a restart.
	testenv.Annotate(t, k8sClient, &authv1alpha1.TokenPolicy{}, policy, authv1alpha1.AnnotationRotate, "verify")
	waitFor(t, policy, "next key published", func(p *authv1alpha1.TokenPolicy) error {
		if p.Status.LastRotateRequest != "verify" {
			return fmt.Errorf("not yet")
		}
		return nil
	})
	oldKid := kidOf(t, mint())
	fakeClock.Step(time.Hour)
	testenv.Poke(t, k8sClient, &authv1alpha1.TokenPolicy{}, policy)
	waitFor(t, policy, "new key active", func(p *authv1alpha1.TokenPolicy) error {
		if p.Status.ActiveKeyID == oldKid {
			return fmt.Errorf("old key still active")
		}
		return nil
	})
	var rotated string
	testenv.Eventually(t, "a token signed with the new key", func() error {
		rotated = mint()
		if kidOf(t, rotated) == oldKid {
			return fmt.Errorf("still signed with the old key")
		}
		return nil
	})
	mustPass("a token of the rotated key", rotated, "local", "remote")

	// The server becomes unreachable: the breaker opens after two failed
	// calls; valid tokens pass offline, a token revoked before the outage
	// is still refused.
	valid, revokedBefore := mint(), mint()
	revoke(t, base, billing, revokedBefore)
	testenv.Until(t, 5*time.Second, "the revocation reaches the local verifier", func() bool {
		code, _ := call("local", revokedBefore)
		return code == http.StatusUnauthorized
	})
	front.stop()
	for i := range 4 {
		mustPass(fmt.Sprintf("a valid token, call %d of the outage", i+1), valid, "local", "remote")
	}
	if s := metricValue(t, remoteMetrics, verify.MetricBreaker); s != 2 {
		t.Fatalf("breaker state %v during the outage, want 2 (open)", s)
	}
	if n := metricValue(t, remoteMetrics, verify.MetricOffline); n != 4 {
		t.Errorf("%v offline verifications counted, want 4", n)
	}
	mustRefuse("a token revoked before the outage", revokedBefore, verify.CodeTokenRevoked, "local", "remote")

	// The server is back: after BreakerOpenFor the probe closes the
	// breaker, and the server's answers count again.
	front.start()
	fakeClock.Step(10 * time.Second)
	mustPass("a valid token, the probe", valid, "remote")
	if s := metricValue(t, remoteMetrics, verify.MetricBreaker); s != 0 {
		t.Fatalf("breaker state %v after the server answered the probe, want 0 (closed)", s)
	}
	mustPass("a valid token, the breaker closed", valid, "remote")
}

// revoke revokes raw at the token endpoint's server (RFC 7009) as c.
func revoke(t *testing.T, base string, c clientcredentials.Config, raw string) {
	t.Helper()
	form := url.Values{"token": {raw}}
	req, _ := http.NewRequest(http.MethodPost, base+serverapi.PathRevoke, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(url.QueryEscape(c.ClientID), url.QueryEscape(c.ClientSecret))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("revoke: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("revoke: %s", resp.Status)
	}
}

// metricValue is the value of the first series of the metric name in reg
// (0 when there is none).
func metricValue(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name && len(mf.GetMetric()) > 0 {
			m := mf.GetMetric()[0]
			return m.GetGauge().GetValue() + m.GetCounter().GetValue()
		}
	}
	return 0
}
