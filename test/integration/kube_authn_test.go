package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2/clientcredentials"
	authenticationv1 "k8s.io/api/authentication/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/yaml"

	authv1alpha1 "github.com/authframework/authframework/api/v1alpha1"
	"github.com/authframework/authframework/internal/certs/certstest"
	"github.com/authframework/authframework/internal/kubeuser"
	"github.com/authframework/authframework/pkg/serverapi"
	"github.com/authframework/authframework/test/testenv"
	"github.com/authframework/authframework/webhook/auth"
)

// kubeAudience is the audience of the kube-apiservers these tests start
// (their --api-audiences): a token must carry it to be a Kubernetes
// credential.
const kubeAudience = "https://kubernetes.default.svc"

// apiServerTokenCacheTTL is how long kube-apiserver caches a successful
// bearer token authentication in front of all its token authenticators
// (BuiltInAuthenticationOptions.TokenSuccessCacheTTL, no flag).
const apiServerTokenCacheTTL = 10 * time.Second

// whoami runs `kubectl auth whoami` with a bearer token against an API
// server and returns the user it saw, or kubectl's error and output.
func whoami(kube *testenv.KubeAPIServer, tok string) (authenticationv1.UserInfo, error) {
	out, err := kube.Anonymous.Try("", "auth", "whoami", "--token="+tok, "-o", "json")
	if err != nil {
		return authenticationv1.UserInfo{}, fmt.Errorf("%v: %s", err, out)
	}
	var r authenticationv1.SelfSubjectReview
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		return authenticationv1.UserInfo{}, fmt.Errorf("%v: %s", err, out)
	}
	return r.Status.UserInfo, nil
}

// TestKubeAPIServerAuthenticatesOurTokens starts two real kube-apiservers
// besides the suite's: one asks our /tokenreview webhook (over mutual TLS),
// the other verifies our tokens itself with the structured authentication
// configuration printed for the TokenPolicy. `kubectl auth whoami` with one
// of our access tokens is the same user on both; RBAC bound to one of our
// groups lets it read a ConfigMap and not delete it; after /revoke the
// webhook's API server refuses the token within its cache TTL, while the
// other keeps accepting it until it expires: the trade-off the docs state.
func TestKubeAPIServerAuthenticatesOurTokens(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ns := newNamespace(t)

	// PKI: our serving certificate, and the client certificate the
	// webhook's API server presents.
	dir := t.TempDir()
	servingCA, apiServerCA := certstest.NewCA(t, "authframework-serving"), certstest.NewCA(t, "kube-apiserver-clients")
	serving, apiServerClient := servingCA.Serving(t), apiServerCA.Client(t, "kube-apiserver")

	// Our auth server on the real clock: kube-apiserver checks exp itself.
	as := testenv.StartAuthServer(t, ctx, cfg, scheme, auth.ProcessOptions{Namespaces: []string{ns}, RevocationNamespace: ns,
		Server: auth.Options{Clock: clock.RealClock{}, CacheSize: 1000, Audit: ctrl.Log.WithName("audit")}})
	issuerBase := as.ServeTLS(t, serving.CertPEM, serving.KeyPEM)
	reviewURL := as.ServeTokenReview(t, certstest.WriteFile(t, dir, "tls.crt", serving.CertPEM),
		certstest.WriteFile(t, dir, "tls.key", serving.KeyPEM), certstest.WriteFile(t, dir, "client-ca.crt", apiServerCA.CertPEM))

	// A policy whose https issuer is that server, an account holding the
	// Role configmap-reader.
	policy := types.NamespacedName{Namespace: ns, Name: "kube"}
	if err := k8sClient.Create(ctx, &authv1alpha1.TokenPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: policy.Name},
		Spec: authv1alpha1.TokenPolicySpec{Issuer: issuerBase + serverapi.IssuerPath(ns, policy.Name), Audiences: []string{kubeAudience, "orders-api"}}}); err != nil {
		t.Fatal(err)
	}
	createRole(t, ns, "configmap-reader", "configmaps:read")
	account := types.NamespacedName{Namespace: ns, Name: "deployer"}
	if err := k8sClient.Create(ctx, &authv1alpha1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: account.Name},
		Spec: authv1alpha1.ServiceAccountSpec{TokenPolicyRef: authv1alpha1.LocalRef{Name: policy.Name}, Roles: []string{"configmap-reader"}}}); err != nil {
		t.Fatal(err)
	}
	sa := waitAccount(t, account, "account ready", ready)
	cc := clientcredentials.Config{
		ClientID:     secretData(t, ns, account.Name+authv1alpha1.CredentialsSecretSuffix, authv1alpha1.ClientIDKey),
		ClientSecret: secretData(t, ns, account.Name+authv1alpha1.CredentialsSecretSuffix, authv1alpha1.ClientSecretKey),
		TokenURL:     as.URL + serverapi.PathToken, EndpointParams: url.Values{"audience": {kubeAudience}},
	}
	var tok string
	testenv.Eventually(t, "a token for the Kubernetes API", func() error {
		tk, err := cc.Token(ctx)
		if err == nil {
			tok = tk.AccessToken
		}
		return err
	})
	servicesToken, err := (&clientcredentials.Config{ClientID: cc.ClientID, ClientSecret: cc.ClientSecret, TokenURL: cc.TokenURL,
		EndpointParams: url.Values{"audience": {"orders-api"}}}).Token(ctx)
	if err != nil {
		t.Fatal(err)
	}

	// The webhook's API server: its kubeconfig names our mutual-TLS
	// endpoint, trusts our CA and presents its client certificate.
	webhookConfig := filepath.Join(dir, "tokenreview.kubeconfig")
	testenv.WriteKubeconfig(t, webhookConfig, reviewURL, servingCA.CertPEM, apiServerClient.CertPEM, apiServerClient.KeyPEM)
	const cacheTTL = time.Second
	viaWebhook := testenv.StartKubeAPIServer(t, map[string][]string{
		"authentication-token-webhook-config-file": {webhookConfig},
		"authentication-token-webhook-cache-ttl":   {cacheTTL.String()},
		"authentication-token-webhook-version":     {"v1"},
		"api-audiences":                            {kubeAudience},
	})

	// The JWT API server: the configuration the CLI prints for the policy,
	// read back from the cluster as `authframework kube-authn-config` reads it.
	p := getPolicy(t, policy)
	ac, err := kubeuser.DefaultNames.ConfigFor(kubeuser.Policy{Namespace: p.Namespace, Name: p.Name, Issuer: p.Spec.Issuer, Audiences: p.Spec.Audiences},
		kubeuser.Issuer{Audiences: []string{kubeAudience}, CertificateAuthority: string(servingCA.CertPEM)})
	if err != nil {
		t.Fatal(err)
	}
	acYAML, err := yaml.Marshal(ac)
	if err != nil {
		t.Fatal(err)
	}
	viaJWT := testenv.StartKubeAPIServer(t, map[string][]string{
		"authentication-config": {certstest.WriteFile(t, dir, "authentication-config.yaml", acYAML)},
	})

	// whoami: our user name, groups, uid and extra, the same on both.
	wantUser := func(u authenticationv1.UserInfo) error {
		if u.Username != "authframework:"+ns+":deployer" || u.UID != string(sa.UID) ||
			!slices.Contains(u.Groups, "authframework:"+ns+":configmap-reader") || !slices.Contains(u.Groups, "system:authenticated") ||
			!slices.Equal(u.Extra[kubeuser.ExtraClientID], []string{cc.ClientID}) || len(u.Extra[kubeuser.ExtraTokenID]) != 1 {
			return fmt.Errorf("user %+v", u)
		}
		return nil
	}
	var byWebhook, byJWT authenticationv1.UserInfo
	testenv.Eventually(t, "whoami through the /tokenreview webhook", func() (err error) {
		if byWebhook, err = whoami(viaWebhook, tok); err != nil {
			return err
		}
		return wantUser(byWebhook)
	})
	// The JWT authenticator fetches our discovery document and JWKS after
	// it starts; until then it refuses.
	testenv.Eventually(t, "whoami through the structured authentication configuration", func() (err error) {
		if byJWT, err = whoami(viaJWT, tok); err != nil {
			return err
		}
		return wantUser(byJWT)
	})
	if !equalUsers(byWebhook, byJWT) {
		t.Errorf("the two ways disagree:\n webhook %+v\n     jwt %+v", byWebhook, byJWT)
	}
	t.Logf("kubectl auth whoami: %s %v", byWebhook.Username, byWebhook.Groups)
	for name, kube := range map[string]*testenv.KubeAPIServer{"webhook": viaWebhook, "jwt": viaJWT} {
		if u, err := whoami(kube, servicesToken.AccessToken); err == nil || !strings.Contains(err.Error(), "Unauthorized") {
			t.Errorf("%s: a token for another service (audience orders-api) is a Kubernetes credential: %+v %v", name, u, err)
		}
	}

	// RBAC bound to our group: get, not delete.
	viaWebhook.Admin.Run(t, "create", "configmap", "settings", "--namespace=default", "--from-literal=mode=blue")
	viaWebhook.Admin.Run(t, "create", "role", "configmap-getter", "--namespace=default", "--verb=get", "--resource=configmaps")
	viaWebhook.Admin.Run(t, "create", "rolebinding", "configmap-getter", "--namespace=default", "--role=configmap-getter",
		"--group=authframework:"+ns+":configmap-reader")
	asUs := func(args ...string) (string, error) {
		return viaWebhook.Anonymous.Try("", append([]string{"--token=" + tok, "--namespace=default"}, args...)...)
	}
	testenv.Eventually(t, "our token reads the ConfigMap", func() error {
		out, err := asUs("get", "configmap", "settings", "-o", "jsonpath={.data.mode}")
		if err != nil || out != "blue" {
			return fmt.Errorf("%v: %s", err, out)
		}
		return nil
	})
	out, err := asUs("delete", "configmap", "settings")
	if err == nil || !strings.Contains(out, `User "authframework:`+ns+`:deployer" cannot delete resource "configmaps"`) {
		t.Errorf("delete with a get-only binding: %v: %s", err, out)
	}
	viaWebhook.Admin.Run(t, "get", "configmap", "settings", "--namespace=default")

	// Revoked: the webhook's API server refuses once its caches let go of
	// the token: the webhook cache TTL, and the 10 s for which
	// kube-apiserver caches every successful token authentication (not a
	// flag). The JWT API server cannot know until the token expires.
	revoke := url.Values{"token": {tok}}
	req, _ := http.NewRequest(http.MethodPost, as.URL+serverapi.PathRevoke, strings.NewReader(revoke.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(url.QueryEscape(cc.ClientID), url.QueryEscape(cc.ClientSecret))
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("revoke: %v %v", resp, err)
	}
	resp.Body.Close()
	revokedAt := time.Now()
	bound := max(cacheTTL, apiServerTokenCacheTTL)
	testenv.EventuallyFor(t, bound+5*time.Second, "the webhook's API server refuses the revoked token", func() error {
		if out, err := asUs("get", "configmap", "settings"); err == nil || !strings.Contains(out, "Unauthorized") {
			return fmt.Errorf("still accepted: %v %s", err, out)
		}
		return nil
	})
	t.Logf("refused by kube-apiserver %s after /revoke returned (caches: webhook %s, kube-apiserver's own %s)",
		time.Since(revokedAt).Round(10*time.Millisecond), cacheTTL, apiServerTokenCacheTTL)
	if _, err := whoami(viaJWT, tok); err != nil {
		t.Errorf("the JWT authenticator has no way to learn of a revocation, yet refused: %v", err)
	}
}

// equalUsers compares users with groups in any order, and the extra we
// map: kube-apiserver adds keys of its own under authentication.kubernetes.io/
// (the JWT authenticator a credential-id of the token's jti).
func equalUsers(a, b authenticationv1.UserInfo) bool {
	ga, gb := slices.Sorted(slices.Values(a.Groups)), slices.Sorted(slices.Values(b.Groups))
	ours := func(x map[string]authenticationv1.ExtraValue) map[string]authenticationv1.ExtraValue {
		out := map[string]authenticationv1.ExtraValue{}
		for k, v := range x {
			if !strings.HasPrefix(k, "authentication.kubernetes.io/") {
				out[k] = v
			}
		}
		return out
	}
	ea, eb := ours(a.Extra), ours(b.Extra)
	if a.Username != b.Username || a.UID != b.UID || !slices.Equal(ga, gb) || len(ea) != len(eb) {
		return false
	}
	for k, v := range ea {
		if !slices.Equal(v, eb[k]) {
			return false
		}
	}
	return true
}
