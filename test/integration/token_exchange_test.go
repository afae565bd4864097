package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	clocktesting "k8s.io/utils/clock/testing"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	authv1alpha1 "github.com/authframework/authframework/api/v1alpha1"
	"github.com/authframework/authframework/controllers"
	"github.com/authframework/authframework/internal/breaker"
	"github.com/authframework/authframework/pkg/serverapi"
	"github.com/authframework/authframework/test/testenv"
	"github.com/authframework/authframework/webhook/auth"
)

// exchangeAudience is the audience pods request for tokens they exchange.
const exchangeAudience = "authframework"

// exchangeAnswer is a token endpoint answer: a token or an RFC 6749 error.
type exchangeAnswer struct {
	status           int
	retryAfter       string
	AccessToken      string `json:"access_token"`
	IssuedTokenType  string `json:"issued_token_type"`
	Error            string `json:"error"`
	ErrorDescription string `json:"error_description"`
}

func exchange(t *testing.T, serverURL, subject string, extra ...string) exchangeAnswer {
	t.Helper()
	form := url.Values{"grant_type": {serverapi.GrantTypeTokenExchange}, "subject_token": {subject}, "subject_token_type": {serverapi.TokenTypeJWT}}
	for i := 0; i+1 < len(extra); i += 2 {
		form.Set(extra[i], extra[i+1])
	}
	resp, err := http.Post(serverURL+serverapi.PathToken, "application/x-www-form-urlencoded", strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatalf("token exchange: %v", err)
	}
	defer resp.Body.Close()
	a := exchangeAnswer{status: resp.StatusCode, retryAfter: resp.Header.Get("Retry-After")}
	if err := json.NewDecoder(resp.Body).Decode(&a); err != nil {
		t.Fatalf("token exchange answer: %v", err)
	}
	return a
}

// kubeServiceAccounts creates core/v1 ServiceAccounts.
func kubeServiceAccounts(t *testing.T, ns string, names ...string) {
	t.Helper()
	for _, n := range names {
		if err := k8sClient.Create(context.Background(), &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: n}}); err != nil {
			t.Fatal(err)
		}
	}
}

// listingAccount creates a ServiceAccount of ours listing Kubernetes
// service accounts of its namespace, and waits until it is Ready.
func listingAccount(t *testing.T, ns, name string, roles []string, kubeSAs ...string) {
	t.Helper()
	sa := &authv1alpha1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: authv1alpha1.ServiceAccountSpec{TokenPolicyRef: authv1alpha1.LocalRef{Name: "orders"}}}
	for _, r := range roles {
		sa.Spec.Roles = append(sa.Spec.Roles, r)
	}
	for _, k := range kubeSAs {
		sa.Spec.KubernetesServiceAccounts = append(sa.Spec.KubernetesServiceAccounts, authv1alpha1.KubernetesServiceAccountRef{Name: k})
	}
	if err := k8sClient.Create(context.Background(), sa); err != nil {
		t.Fatal(err)
	}
	waitAccount(t, types.NamespacedName{Namespace: ns, Name: name}, name+" Ready", ready)
}

// TestTokenExchangeWithKubernetes: tokens from the real API server
// (`kubectl create token`) are exchanged for ours, verified with TokenReview.
func TestTokenExchangeWithKubernetes(t *testing.T) {
	ctx := t.Context()
	ns, _ := accountFixture(t)
	tenantB, _ := accountFixture(t)
	createRole(t, ns, "orders-reader", "orders:read")
	kubeServiceAccounts(t, ns, "stock-sync", "shared", "nobody")
	listingAccount(t, ns, "stock-sync", []string{"orders-reader"}, "stock-sync")
	listingAccount(t, ns, "dup-a", nil, "shared")
	listingAccount(t, ns, "dup-b", nil, "shared")

	// The server's own clock, at the time the API server stamps on its
	// tokens, so the test can move it past the TokenReview cache's TTL and
	// the subject tokens' expiry.
	clk := clocktesting.NewFakeClock(time.Now())
	srv := testenv.StartAuthServer(t, ctx, cfg, scheme, auth.ProcessOptions{Namespaces: []string{ns, tenantB}, RevocationNamespace: ns,
		Server: auth.Options{Clock: clk, TokenExchange: auth.TokenExchange{Audience: exchangeAudience, CacheTTL: 10 * time.Second}}})

	createToken := func(sa string, args ...string) string {
		return strings.TrimSpace(kubectl.Run(t, append([]string{"create", "token", sa, "-n", ns, "--duration=1h"}, args...)...))
	}

	// A service-account token for our audience is exchanged for an access
	// token of the ServiceAccount listing it, which passes /validate.
	var got exchangeAnswer
	sub := createToken("stock-sync", "--audience="+exchangeAudience)
	testenv.Eventually(t, "the exchange", func() error { // the server's informers may not have the account yet
		if got = exchange(t, srv.URL, sub, "audience", "orders-api"); got.status != 200 {
			return fmt.Errorf("%d %s: %s", got.status, got.Error, got.ErrorDescription)
		}
		return nil
	})
	if got.IssuedTokenType != serverapi.TokenTypeAccessToken {
		t.Errorf("issued_token_type %q", got.IssuedTokenType)
	}
	policy, ok := srv.Store.PolicyByName(types.NamespacedName{Namespace: ns, Name: "orders"})
	if !ok {
		t.Fatal("the server does not know the policy")
	}
	c, err := policy.Verify(got.AccessToken)
	if err != nil {
		t.Fatal(err)
	}
	if c.ClientID != ns+".stock-sync" || c.Actor == nil || c.Actor.Subject != "system:serviceaccount:"+ns+":stock-sync" || c.Actor.Kubernetes.Pod != nil {
		t.Errorf("claims %+v, act %+v", c, c.Actor)
	}
	validate := func(tok string) (int, string) {
		req, _ := http.NewRequest(http.MethodGet, srv.URL+serverapi.PathValidate+"?aud=orders-api&permission=orders:read&namespace="+ns, nil) // tenantB lists orders-api too
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode, resp.Header.Get(serverapi.HeaderAuthErrorDescription)
	}
	if code, why := validate(got.AccessToken); code != 200 {
		t.Errorf("/validate of the exchanged token: %d %s", code, why)
	}

	// Another tenant lists stock-sync: without the consent of stock-sync's
	// namespace its listing maps nothing and takes nothing away.
	thief := &authv1alpha1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: tenantB, Name: "thief"},
		Spec: authv1alpha1.ServiceAccountSpec{TokenPolicyRef: authv1alpha1.LocalRef{Name: "orders"},
			KubernetesServiceAccounts: []authv1alpha1.KubernetesServiceAccountRef{{Namespace: ns, Name: "stock-sync"}}}}
	if err := k8sClient.Create(ctx, thief); err != nil {
		t.Fatal(err)
	}
	waitAccount(t, client.ObjectKeyFromObject(thief), "thief not permitted", func(sa *authv1alpha1.ServiceAccount) error {
		if len(sa.Status.KubernetesServiceAccounts) != 1 || sa.Status.KubernetesServiceAccounts[0].State != authv1alpha1.KubernetesServiceAccountNotPermitted {
			return fmt.Errorf("status %+v", sa.Status.KubernetesServiceAccounts)
		}
		return ready(sa)
	})
	if got := exchange(t, srv.URL, sub); got.status != 200 {
		t.Fatalf("an unconsented listing in another namespace disturbed the exchange: %d %s", got.status, got.ErrorDescription)
	}
	// The namespace consents: two accounts map stock-sync, and exchanges
	// are refused until one lets go.
	ksa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "stock-sync"}}
	testenv.Update(t, k8sClient, ksa, func() {
		ksa.Annotations = map[string]string{authv1alpha1.AnnotationTokenExchangeFor: tenantB + "/thief"}
	})
	testenv.Eventually(t, "a consented second listing conflicts", func() error {
		if got := exchange(t, srv.URL, sub); got.status != 400 || !strings.Contains(got.ErrorDescription, "listed by 2") {
			return fmt.Errorf("%d %s", got.status, got.ErrorDescription)
		}
		return nil
	})
	testenv.Update(t, k8sClient, ksa, func() { delete(ksa.Annotations, authv1alpha1.AnnotationTokenExchangeFor) })
	testenv.Eventually(t, "consent withdrawn", func() error {
		if got := exchange(t, srv.URL, sub); got.status != 200 {
			return fmt.Errorf("%d %s", got.status, got.ErrorDescription)
		}
		return nil
	})

	// A pod-bound token: the claim names the pod, and once the pod is
	// deleted the API server refuses the token (after our cache's TTL).
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "stock-sync-0"},
		Spec: corev1.PodSpec{ServiceAccountName: "stock-sync", Containers: []corev1.Container{{Name: "c", Image: "example.invalid/c"}}}}
	if err := k8sClient.Create(ctx, pod); err != nil {
		t.Fatal(err)
	}
	bound := createToken("stock-sync", "--audience="+exchangeAudience, "--bound-object-kind=Pod", "--bound-object-name="+pod.Name)
	if got = exchange(t, srv.URL, bound); got.status != 200 {
		t.Fatalf("pod-bound exchange: %d %s", got.status, got.ErrorDescription)
	}
	if c, err = policy.Verify(got.AccessToken); err != nil {
		t.Fatal(err)
	}
	if p := c.Actor.Kubernetes.Pod; p == nil || p.Name != pod.Name || p.UID != string(pod.UID) {
		t.Errorf("act.kubernetes.io.pod %+v, want %s %s", p, pod.Name, pod.UID)
	}
	if err := k8sClient.Delete(ctx, pod, client.GracePeriodSeconds(0)); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, "the deleted pod's token is refused", func() error {
		clk.Step(11 * time.Second)
		if got := exchange(t, srv.URL, bound); got.status != 400 || got.Error != "invalid_request" {
			return fmt.Errorf("%d %s %s", got.status, got.Error, got.ErrorDescription)
		}
		return nil
	})

	refusals := []struct {
		name, subject, want string
	}{
		{"the API server's audience (a pod's API credential)", createToken("stock-sync"), "audience must include"},
		{"another audience", createToken("stock-sync", "--audience=orders-api"), "audience must include"},
		{"a service account nobody lists", createToken("nobody", "--audience="+exchangeAudience), "not listed"},
		{"a service account listed twice", createToken("shared", "--audience="+exchangeAudience), "listed by 2"},
		{"a malformed token", "not.a.jwt", "not a signed JWT"},
		{"a forged token", forge(t, sub), "did not authenticate the subject token"},
		{"a token for us and the API server", createToken("stock-sync", "--audience="+exchangeAudience, "--audience=https://kubernetes.default.svc"), "alone"},
	}
	for _, r := range refusals {
		if got := exchange(t, srv.URL, r.subject); got.status != 400 || got.Error != "invalid_request" || !strings.Contains(got.ErrorDescription, r.want) {
			t.Errorf("%s: %d %s %q, want 400 invalid_request %q", r.name, got.status, got.Error, got.ErrorDescription, r.want)
		}
	}
	// An expired one: the server's clock moves past its exp.
	clk.Step(2 * time.Hour)
	if got := exchange(t, srv.URL, sub); got.status != 400 || !strings.Contains(got.ErrorDescription, "expired") {
		t.Errorf("expired subject token: %d %s", got.status, got.ErrorDescription)
	}
}

// forge changes one character of a real token's signature, so the token
// looks right and only the API server can tell it is not.
func forge(t *testing.T, raw string) string {
	t.Helper()
	parts := strings.Split(raw, ".")
	if len(parts) != 3 {
		t.Fatalf("not a JWS: %q", raw)
	}
	sig := []byte(parts[2])
	if sig[4] == 'A' {
		sig[4] = 'B'
	} else {
		sig[4] = 'A'
	}
	return parts[0] + "." + parts[1] + "." + string(sig)
}

// TestTokenExchangeSurvivesTheAPIServer: while the API server is down,
// exchanges are answered 503 with Retry-After and the circuit breaker opens
// after three failures, answering without asking; tokens already issued
// still validate; when the API server is back, exchanges work again without
// restarting the auth server. It runs against a control plane of its own,
// which it stops and starts.
func TestTokenExchangeSurvivesTheAPIServer(t *testing.T) {
	apiServer, err := testenv.RestartableAPIServer(filepath.Join(t.TempDir(), "apiserver"))
	if err != nil {
		t.Fatal(err)
	}
	env := &envtest.Environment{CRDDirectoryPaths: []string{testenv.Path("config", "crd", "bases")}, ErrorIfCRDPathMissing: true,
		BinaryAssetsDirectory: testenv.K8sBinDir(), Scheme: scheme, ControlPlane: envtest.ControlPlane{APIServer: apiServer}}
	c, err := env.Start()
	if err != nil {
		_ = env.Stop()
		t.Fatal(err)
	}
	defer func() { _ = env.Stop() }()
	kc2 := testenv.AdminKubectl(t, env, "exchange-admin")

	mgrCtx, stopManager := context.WithCancel(context.Background())
	defer stopManager()
	testenv.RunManager(t, mgrCtx, c, controllers.ManagerOptions{Scheme: scheme, Controllers: controllers.Options{Clock: clocktesting.NewFakeClock(time.Now())}})
	cl, err := client.New(c, client.Options{Scheme: scheme})
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range []client.Object{
		&authv1alpha1.TokenPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "orders"},
			Spec: authv1alpha1.TokenPolicySpec{Issuer: "https://auth.example.com/orders", Audiences: []string{"orders-api"}}},
		&authv1alpha1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "job"},
			Spec: authv1alpha1.ServiceAccountSpec{TokenPolicyRef: authv1alpha1.LocalRef{Name: "orders"},
				KubernetesServiceAccounts: []authv1alpha1.KubernetesServiceAccountRef{{Name: "job"}}}},
		&corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "job"}},
	} {
		if err := cl.Create(t.Context(), o); err != nil {
			t.Fatal(err)
		}
	}
	feedCtx, stopFeed := context.WithCancel(context.Background())
	defer stopFeed()
	clk := clocktesting.NewFakeClock(time.Now())
	open := breaker.Settings{Failures: 3, OpenFor: 5 * time.Second}
	srv := testenv.StartAuthServer(t, feedCtx, c, scheme, auth.ProcessOptions{RevocationNamespace: "default",
		Server: auth.Options{Clock: clk, TokenExchange: auth.TokenExchange{Audience: exchangeAudience, Breaker: open}}})
	createToken := func() string {
		return strings.TrimSpace(kc2.Run(t, "create", "token", "job", "-n", "default", "--duration=1h", "--audience="+exchangeAudience))
	}
	before, during := createToken(), createToken()
	var issued string
	testenv.Eventually(t, "an exchange", func() error {
		got := exchange(t, srv.URL, before)
		issued = got.AccessToken
		if got.status != 200 {
			return fmt.Errorf("%d %s", got.status, got.ErrorDescription)
		}
		return nil
	})

	stopManager()
	// kube-apiserver stops listening at once on SIGTERM but may take a while
	// to exit (envtest kills it after its stop timeout).
	stopped := make(chan error, 1)
	go func() { stopped <- env.ControlPlane.APIServer.Stop() }()
	testenv.Until(t, 30*time.Second, "the API server stops listening", func() bool {
		resp, err := http.Get(c.Host + "/readyz")
		if err == nil {
			resp.Body.Close()
		}
		return err != nil
	})
	for i := range open.Failures {
		got := exchange(t, srv.URL, during)
		if got.status != 503 || got.Error != "temporarily_unavailable" || got.retryAfter == "" {
			t.Fatalf("exchange %d without the API server: %+v", i, got)
		}
	}
	got := exchange(t, srv.URL, during)
	if got.status != 503 || got.retryAfter != "5" || !strings.Contains(got.ErrorDescription, "circuit breaker open") {
		t.Fatalf("exchange with the breaker open: %+v", got)
	}
	if !strings.Contains(metricsOf(t, srv.URL), serverapi.MetricTokenExchangeBreaker+" 2") {
		t.Error("the breaker's state is not open in /metrics")
	}
	req, _ := http.NewRequest(http.MethodGet, srv.URL+serverapi.PathValidate+"?aud=orders-api", nil)
	req.Header.Set("Authorization", "Bearer "+issued)
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("/validate of an exchanged token without the API server: %v %v", resp, err)
	}
	resp.Body.Close()

	if err := <-stopped; err != nil {
		t.Logf("stopping the API server: %v", err)
	}
	if err := env.ControlPlane.APIServer.Start(); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, "exchanges after the API server is back", func() error {
		clk.Step(open.OpenFor) // the next probe is due
		if got := exchange(t, srv.URL, during); got.status != 200 {
			return fmt.Errorf("%d %s", got.status, got.ErrorDescription)
		}
		return nil
	})
	if !strings.Contains(metricsOf(t, srv.URL), serverapi.MetricTokenExchangeBreaker+" 0") {
		t.Error("the breaker's state is not closed in /metrics")
	}
}

func metricsOf(t *testing.T, serverURL string) string {
	t.Helper()
	resp, err := http.Get(serverURL + serverapi.PathMetrics)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}
