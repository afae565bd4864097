package integration

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	clocktesting "k8s.io/utils/clock/testing"

	authv1alpha1 "github.com/authframework/authframework/api/v1alpha1"
	"github.com/authframework/authframework/pkg/authclient"
	"github.com/authframework/authframework/pkg/issuertest"
	"github.com/authframework/authframework/pkg/serverapi"
	"github.com/authframework/authframework/test/testenv"
	"github.com/authframework/authframework/webhook/auth"
)

// tokenRequests records what the client sent to /token: which secret (by
// name, never the value) and the answer.
type tokenRequests struct {
	mu      sync.Mutex
	secrets map[string]string // secret -> name
	log     []string          // "name status"
}

func (tr *tokenRequests) RoundTrip(r *http.Request) (*http.Response, error) {
	_, secret, _ := r.BasicAuth()
	secret, _ = url.QueryUnescape(secret)
	resp, err := http.DefaultTransport.RoundTrip(r)
	tr.mu.Lock()
	defer tr.mu.Unlock()
	name := tr.secrets[secret]
	if name == "" {
		name = "unknown"
	}
	if err != nil {
		tr.log = append(tr.log, name+" error")
	} else {
		tr.log = append(tr.log, fmt.Sprintf("%s %d", name, resp.StatusCode))
	}
	return resp, err
}

// since returns the requests after the first n.
func (tr *tokenRequests) since(n int) []string {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	return append([]string(nil), tr.log[n:]...)
}

func (tr *tokenRequests) count() int {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	return len(tr.log)
}

// TestClientAcrossSecretRotation: a workload calls a protected endpoint
// (the real auth server's /validate) through authclient's transport, with
// its credentials Secret mounted as kubelet mounts it, while the
// controller rotates the secret with a grace period and the grace ends. No
// call fails; the new secret is used once kubelet has written it, and the
// old one is no longer needed when the grace is over.
func TestClientAcrossSecretRotation(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ns := newNamespace(t)
	r := startReplica(t, ctx, ns)
	policy := types.NamespacedName{Namespace: ns, Name: "orders"}
	if err := k8sClient.Create(ctx, &authv1alpha1.TokenPolicy{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: policy.Name},
		Spec:       authv1alpha1.TokenPolicySpec{Issuer: r.url + serverapi.IssuerPath(ns, "orders"), Audiences: []string{"orders-api"}},
	}); err != nil {
		t.Fatal(err)
	}
	createRole(t, ns, "reader", "orders:read")
	key := types.NamespacedName{Namespace: ns, Name: "billing"}
	if err := k8sClient.Create(ctx, &authv1alpha1.ServiceAccount{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: key.Name},
		Spec: authv1alpha1.ServiceAccountSpec{TokenPolicyRef: authv1alpha1.LocalRef{Name: policy.Name}, Roles: []string{"reader"},
			ClientSecretRotation: authv1alpha1.SecretRotation{Period: metav1.Duration{Duration: 720 * time.Hour}, GracePeriod: metav1.Duration{Duration: 2 * time.Hour}}},
	}); err != nil {
		t.Fatal(err)
	}
	waitAccount(t, key, "ready", ready)

	// The volume holds the Secret's keys under the names the client reads.
	if authclient.ClientIDFile != authv1alpha1.ClientIDKey || authclient.ClientSecretFile != authv1alpha1.ClientSecretKey || authclient.TokenFileName != authv1alpha1.TokenKey {
		t.Fatal("authclient's file names are not the Secrets' data keys")
	}
	credsSecret := key.Name + authv1alpha1.CredentialsSecretSuffix
	clientID := secretData(t, ns, credsSecret, authv1alpha1.ClientIDKey)
	old := secretData(t, ns, credsSecret, authv1alpha1.ClientSecretKey)
	dir := t.TempDir()
	kubelet := func() { // kubelet syncs the volume with the Secret
		issuertest.WriteSecretVolume(t, dir, map[string]string{
			authclient.ClientIDFile:     secretData(t, ns, credsSecret, authv1alpha1.ClientIDKey),
			authclient.ClientSecretFile: secretData(t, ns, credsSecret, authv1alpha1.ClientSecretKey),
		})
	}
	kubelet()

	// The client's own clock: stepping it makes the next call fetch a new
	// token, with whatever secret the volume holds then.
	clientClock := clocktesting.NewFakeClock(time.Now())
	requests := &tokenRequests{secrets: map[string]string{old: "old"}}
	src := authclient.ClientCredentials(r.url+serverapi.PathToken, dir, authclient.Options{
		Scopes: []string{"orders:read"}, Audience: "orders-api", Clock: clientClock, HTTPClient: &http.Client{Transport: requests},
	})
	httpClient := src.Client()
	var calls atomic.Int64
	call := func() error {
		req, _ := http.NewRequest(http.MethodGet, r.url+serverapi.PathValidate+"?aud=orders-api&permission=orders:read", nil)
		req.Header.Set("X-Original-URL", "https://orders.example.com/api/orders/1")
		req.Header.Set("X-Original-Method", "GET")
		resp, err := httpClient.Do(req)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("answered %d (%s)", resp.StatusCode, resp.Header.Get(serverapi.HeaderAuthError))
		}
		calls.Add(1)
		return nil
	}
	// A second caller keeps calling, back to back, through every stage,
	// except while the fake clock jumps: a jump of hours makes a token
	// minted a moment before it expire in flight, which real time never does.
	var failed []error
	var jump sync.RWMutex
	stop, stopped := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(stopped)
		for {
			select {
			case <-stop:
				return
			default:
			}
			jump.RLock()
			if err := call(); err != nil {
				failed = append(failed, err)
			}
			jump.RUnlock()
		}
	}()
	// keepCalling calls on every poll until cond holds.
	keepCalling := func(stage string, cond func() error) {
		t.Helper()
		testenv.Eventually(t, stage, func() error {
			if err := call(); err != nil {
				t.Fatalf("%s: a call failed: %v", stage, err)
			}
			return cond()
		})
	}
	// fetchedWith: the client got a token with the named secret after the
	// first n requests, and every one of those was answered 200.
	fetchedWith := func(n int, name string) func() error {
		return func() error {
			got := requests.since(n)
			for _, g := range got {
				if !strings.HasSuffix(g, " 200") {
					return errors.New("a token request failed: " + g)
				}
			}
			if len(got) == 0 || got[len(got)-1] != name+" 200" {
				return fmt.Errorf("token requests %v, want one with the %s secret", got, name)
			}
			return nil
		}
	}

	keepCalling("before the rotation", fetchedWith(0, "old"))

	testenv.Annotate(t, k8sClient, &authv1alpha1.ServiceAccount{}, key, authv1alpha1.AnnotationRotate, "client-test")
	var fresh string
	keepCalling("the secret rotates", func() error {
		if fresh = secretData(t, ns, credsSecret, authv1alpha1.ClientSecretKey); fresh == old {
			return errors.New("the Secret still holds the old secret")
		}
		return nil
	})
	requests.mu.Lock()
	requests.secrets[fresh] = "new"
	requests.mu.Unlock()
	// The auth server learns the new secret from its informer; a kubelet
	// takes longer (its sync period) to write it into the volume.
	direct := clientcredentials.Config{ClientID: clientID, ClientSecret: fresh, TokenURL: r.url + serverapi.PathToken}
	keepCalling("the auth server accepts the new secret", func() error {
		_, err := direct.Token(ctx)
		return err
	})

	// Before kubelet writes it, the client still uses the old secret,
	// which the grace period keeps working.
	n := requests.count()
	clientClock.Step(time.Hour)
	keepCalling("old secret during the grace", fetchedWith(n, "old"))

	n = requests.count()
	kubelet()
	clientClock.Step(time.Hour)
	keepCalling("new secret once kubelet wrote it", fetchedWith(n, "new"))

	// The grace ends (the controllers' and the server's fake clock): the
	// old secret is refused from now on. The client's cached token is past
	// its exp on the server's clock: the transport gets a new one on the
	// 401, with the new secret.
	n = requests.count()
	jump.Lock()
	fakeClock.Step(2 * time.Hour)
	jump.Unlock()
	testenv.Poke(t, k8sClient, &authv1alpha1.ServiceAccount{}, key)
	oldDirect := clientcredentials.Config{ClientID: clientID, ClientSecret: old, TokenURL: r.url + serverapi.PathToken}
	keepCalling("the grace is over", func() error {
		_, err := oldDirect.Token(ctx)
		var re *oauth2.RetrieveError
		if !errors.As(err, &re) || re.ErrorCode != "invalid_client" {
			return fmt.Errorf("the old secret still works: %v", err)
		}
		return fetchedWith(n, "new")()
	})
	n = requests.count()
	clientClock.Step(time.Hour)
	keepCalling("new secret after the grace", fetchedWith(n, "new"))
	close(stop)
	<-stopped
	if len(failed) > 0 {
		t.Fatalf("%d calls failed, the first: %v", len(failed), failed[0])
	}
	t.Logf("%d calls, token requests: %v", calls.Load(), requests.since(0))
}

// TestTokenExchangeClient: authclient.TokenExchange exchanges a token of
// the real API server (kubectl create token with our audience), mounted as
// kubelet mounts a projected token, and uses the refreshed file once the
// old token has expired.
func TestTokenExchangeClient(t *testing.T) {
	ctx := t.Context()
	ns, _ := accountFixture(t)
	createRole(t, ns, "orders-reader", "orders:read")
	kubeServiceAccounts(t, ns, "stock-sync")
	listingAccount(t, ns, "stock-sync", []string{"orders-reader"}, "stock-sync")
	clk := clocktesting.NewFakeClock(time.Now())
	srv := testenv.StartAuthServer(t, ctx, cfg, scheme, auth.ProcessOptions{Namespaces: []string{ns}, RevocationNamespace: ns,
		Server: auth.Options{Clock: clk, TokenExchange: auth.TokenExchange{Audience: exchangeAudience, CacheTTL: 10 * time.Second}}})
	vol := t.TempDir() // the pod's projected volume
	project := func(duration string) {
		sub := strings.TrimSpace(kubectl.Run(t, "create", "token", "stock-sync", "-n", ns, "--audience="+exchangeAudience, "--duration="+duration))
		issuertest.WriteSecretVolume(t, vol, map[string]string{"token": sub})
	}
	project("1h")
	clientClock := clocktesting.NewFakeClock(time.Now())
	src := authclient.TokenExchange(srv.URL+serverapi.PathToken, filepath.Join(vol, "token"), authclient.Options{
		Audience: "orders-api", Clock: clientClock, Retry: authclient.Retry{Attempts: 1},
	})
	policy := types.NamespacedName{Namespace: ns, Name: "orders"}
	check := func(what string) {
		t.Helper()
		var tok *oauth2.Token
		testenv.Eventually(t, what, func() error { // the server's informers may not have the account yet
			var err error
			tok, err = src.Token()
			return err
		})
		p, ok := srv.Store.PolicyByName(policy)
		if !ok {
			t.Fatal("the server does not know the policy")
		}
		c, err := p.Verify(tok.AccessToken)
		if err != nil || c.ClientID != ns+".stock-sync" || c.Actor == nil {
			t.Fatalf("%s: %v %+v", what, err, c)
		}
	}
	check("the projected token is exchanged")

	// kubelet refreshes the projected token; the first one expires.
	project("2h")
	clk.Step(90 * time.Minute)
	clientClock.Step(time.Hour)
	check("the refreshed projected token is exchanged")
}
