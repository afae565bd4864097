package integration

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2/clientcredentials"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	authv1alpha1 "github.com/authframework/authframework/api/v1alpha1"
	"github.com/authframework/authframework/test/testenv"
	"github.com/authframework/authframework/webhook/auth"
)

// replica is one auth server process: its own informers, store and handler.
type replica struct {
	url string
}

// startReplica starts an auth server replica as main wires one, on the fake
// clock, storing revocations in revocationNS.
func startReplica(t *testing.T, ctx context.Context, revocationNS string) replica {
	t.Helper()
	// One tenant's auth server, as an AuthServer with watchNamespaces runs:
	// the suite's other namespaces list the same audiences in their own
	// policies, and an audience belongs to the namespace that listed it first.
	as := testenv.StartAuthServer(t, ctx, cfg, scheme, auth.ProcessOptions{RevocationNamespace: revocationNS, Namespaces: []string{revocationNS},
		Server: auth.Options{Clock: fakeClock, CacheSize: 1000}})
	return replica{url: as.URL}
}

func (r replica) validate(t *testing.T, tok, query string) (int, http.Header) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, r.url+"/validate"+query, nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("X-Original-URL", "https://api.example.com/api/orders/1")
	req.Header.Set("X-Original-Method", "GET")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode, resp.Header
}

// TestAuthServerFlow is the guide's end-to-end flow against a real
// kube-apiserver with the controllers and two auth server replicas running:
// a standard OAuth2 client gets a token with the credentials the controller
// wrote, /validate accepts it, a standard OIDC validator verifies it from our
// discovery document alone, revocation reaches the other replica, disabling
// the account refuses its tokens, and a key rotation never refuses a token
// that is still valid.
func TestAuthServerFlow(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ns := newNamespace(t)
	r1 := startReplica(t, ctx, ns)
	r2 := startReplica(t, ctx, ns)

	issuer := r1.url + "/issuers/" + ns + "/orders"
	policy := types.NamespacedName{Namespace: ns, Name: "orders"}
	if err := k8sClient.Create(ctx, &authv1alpha1.TokenPolicy{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: policy.Name},
		Spec:       authv1alpha1.TokenPolicySpec{Issuer: issuer, Audiences: []string{"orders-api"}},
	}); err != nil {
		t.Fatal(err)
	}
	createRole(t, ns, "orders-reader", "orders:read", "orders:items:read")
	account := types.NamespacedName{Namespace: ns, Name: "billing"}
	if err := k8sClient.Create(ctx, &authv1alpha1.ServiceAccount{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: account.Name},
		Spec:       authv1alpha1.ServiceAccountSpec{TokenPolicyRef: authv1alpha1.LocalRef{Name: policy.Name}, Roles: []string{"orders-reader"}},
	}); err != nil {
		t.Fatal(err)
	}
	waitAccount(t, account, "account ready", ready)

	// The workload reads its credentials Secret and uses a standard client.
	cc := clientcredentials.Config{
		ClientID:       secretData(t, ns, "billing"+authv1alpha1.CredentialsSecretSuffix, authv1alpha1.ClientIDKey),
		ClientSecret:   secretData(t, ns, "billing"+authv1alpha1.CredentialsSecretSuffix, authv1alpha1.ClientSecretKey),
		TokenURL:       r1.url + "/token",
		Scopes:         []string{"orders:read"},
		EndpointParams: url.Values{"audience": {"orders-api"}},
	}
	var tok string
	testenv.Eventually(t, "token from the token endpoint", func() error {
		tk, err := cc.Token(ctx)
		if err != nil {
			return err
		}
		tok = tk.AccessToken
		return nil
	})

	code, hdr := r1.validate(t, tok, "?aud=orders-api&permission=orders:read")
	if code != 200 || hdr.Get("X-Client-ID") != ns+".billing" || hdr.Get("X-User-Permissions") != "orders:read" {
		t.Fatalf("/validate: %d %v", code, hdr)
	}
	if code, _ := r1.validate(t, tok, "?permission=orders:items:read"); code != 403 {
		t.Errorf("a token narrowed to orders:read passed a check for orders:items:read: %d", code)
	}

	// A third-party validator needs nothing but our discovery document.
	provider, err := oidc.NewProvider(ctx, issuer)
	if err != nil {
		t.Fatalf("go-oidc discovery: %v", err)
	}
	idt, err := provider.Verifier(&oidc.Config{ClientID: "orders-api", Now: fakeClock.Now, SupportedSigningAlgs: []string{"ES256"}}).Verify(ctx, tok)
	if err != nil {
		t.Fatalf("go-oidc verification: %v", err)
	}
	if idt.Subject != ns+".billing" {
		t.Errorf("go-oidc subject %q", idt.Subject)
	}

	// Revoke through replica 1; replica 2 refuses it too.
	revoke := url.Values{"token": {tok}}
	req, _ := http.NewRequest(http.MethodPost, r1.url+"/revoke", strings.NewReader(revoke.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(url.QueryEscape(cc.ClientID), url.QueryEscape(cc.ClientSecret))
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("revoke: %v %v", resp, err)
	}
	revokedAt := time.Now()
	if code, _ := r1.validate(t, tok, ""); code != 401 {
		t.Errorf("replica 1 accepts a token it revoked: %d", code)
	}
	testenv.Eventually(t, "replica 2 refuses the revoked token", func() error {
		if code, hdr := r2.validate(t, tok, ""); code != 401 || hdr.Get(auth.HeaderAuthError) != "token_revoked" {
			return fmt.Errorf("%d %s", code, hdr.Get(auth.HeaderAuthError))
		}
		return nil
	})
	t.Logf("revocation reached the other replica %s after the revoke call returned", time.Since(revokedAt).Round(time.Millisecond))

	// Disabling the account refuses its tokens on every replica.
	fresh, err := cc.Token(ctx)
	if err != nil {
		t.Fatal(err)
	}
	setDisabled(t, account, true)
	testenv.Eventually(t, "disabled account refused", func() error {
		for _, r := range []replica{r1, r2} {
			if code, _ := r.validate(t, fresh.AccessToken, ""); code != 401 {
				return fmt.Errorf("%s: %d", r.url, code)
			}
		}
		return nil
	})
	setDisabled(t, account, false)
	testenv.Eventually(t, "re-enabled account accepted", func() error {
		if code, _ := r1.validate(t, fresh.AccessToken, ""); code != 200 {
			return fmt.Errorf("%d", code)
		}
		return nil
	})

	// Rotate the policy's keys: a token issued before the new key activates
	// still validates until it expires.
	testenv.Annotate(t, k8sClient, &authv1alpha1.TokenPolicy{}, policy, authv1alpha1.AnnotationRotate, "flow")
	waitFor(t, policy, "next key published", func(p *authv1alpha1.TokenPolicy) error {
		if p.Status.LastRotateRequest != "flow" {
			return fmt.Errorf("not yet")
		}
		return nil
	})
	fakeClock.Step(59 * time.Minute)
	before, err := cc.Token(ctx)
	if err != nil {
		t.Fatal(err)
	}
	oldKid := kidOf(t, before.AccessToken)
	fakeClock.Step(time.Minute)
	testenv.Poke(t, k8sClient, &authv1alpha1.TokenPolicy{}, policy)
	waitFor(t, policy, "new key active", func(p *authv1alpha1.TokenPolicy) error {
		if p.Status.ActiveKeyID == oldKid {
			return fmt.Errorf("old key still active")
		}
		return nil
	})
	testenv.Eventually(t, "new tokens use the new key", func() error {
		tk, err := (&clientcredentials.Config{ClientID: cc.ClientID, ClientSecret: cc.ClientSecret, TokenURL: cc.TokenURL}).Token(ctx)
		if err != nil {
			return err
		}
		if kidOf(t, tk.AccessToken) == oldKid {
			return fmt.Errorf("still signed with the old key")
		}
		return nil
	})
	for _, r := range []replica{r1, r2} {
		if code, hdr := r.validate(t, before.AccessToken, ""); code != 200 {
			t.Errorf("%s refused a valid token issued before the rotation: %d %s", r.url, code, hdr.Get(auth.HeaderAuthError))
		}
	}
	fakeClock.Step(15*time.Minute + 31*time.Second)
	if code, hdr := r1.validate(t, before.AccessToken, ""); code != 401 || hdr.Get(auth.HeaderAuthError) != "token_expired" {
		t.Errorf("after its lifetime the token must be refused as expired: %d %s", code, hdr.Get(auth.HeaderAuthError))
	}
}

func setDisabled(t *testing.T, key types.NamespacedName, disabled bool) {
	t.Helper()
	sa := getAccount(t, key)
	testenv.Update(t, k8sClient, sa, func() { sa.Spec.Disabled = disabled })
}
