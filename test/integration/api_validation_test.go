package integration

import (
	"context"
	"strings"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	authv1alpha1 "github.com/authframework/authframework/api/v1alpha1"
	"github.com/authframework/authframework/internal/token"
	"github.com/authframework/authframework/test/testenv"
)

// Valid specs that the invalid cases below break one field at a time.
const (
	validPolicy = `
apiVersion: auth.authframework.dev/v1alpha1
kind: TokenPolicy
spec:
  issuer: https://auth.example.com/issuers/team/orders
  audiences: [orders-api]
`
	validRole = `
apiVersion: auth.authframework.dev/v1alpha1
kind: Role
spec:
  permissions: ["orders:read"]
`
	validAccount = `
apiVersion: auth.authframework.dev/v1alpha1
kind: ServiceAccount
spec:
  tokenPolicyRef: {name: orders}
  roles: [orders-reader]
`
	validAuthServer = `
apiVersion: auth.authframework.dev/v1alpha1
kind: AuthServer
spec:
  image: ghcr.io/authframework/authframework:v0.1.0
`
)

// object builds an unstructured object from a base manifest and a spec patch
// (merged key by key at the top of spec; a null value deletes the key).
func object(t *testing.T, base, specPatch string) *unstructured.Unstructured {
	t.Helper()
	u := &unstructured.Unstructured{}
	if err := yaml.Unmarshal([]byte(base), &u.Object); err != nil {
		t.Fatalf("base manifest: %v", err)
	}
	if specPatch != "" {
		patch := map[string]any{}
		if err := yaml.Unmarshal([]byte(specPatch), &patch); err != nil {
			t.Fatalf("spec patch: %v", err)
		}
		spec, _ := u.Object["spec"].(map[string]any)
		if spec == nil {
			spec = map[string]any{}
		}
		for k, v := range patch {
			if v == nil {
				delete(spec, k)
				continue
			}
			spec[k] = v
		}
		u.Object["spec"] = spec
	}
	return u
}

// TestInvalidObjectsAreRefused checks that the API server itself refuses bad
// specs, with a message naming the field and the reason: users learn of a
// mistake at `kubectl apply`, not later from a controller.
func TestInvalidObjectsAreRefused(t *testing.T) {
	ns := newNamespace(t)
	cases := []struct {
		name      string
		base      string
		patch     string
		wantField string
		wantWhy   string
	}{
		// TokenPolicy
		{"policy: HMAC algorithm", validPolicy, `algorithm: HS256`, "spec.algorithm", `Unsupported value: "HS256"`},
		{"policy: none algorithm", validPolicy, `algorithm: none`, "spec.algorithm", `Unsupported value: "none"`},
		{"policy: plain http issuer", validPolicy, `issuer: http://auth.example.com`, "spec.issuer", "must be an https URL"},
		{"policy: issuer with query", validPolicy, `issuer: "https://auth.example.com/?tenant=a"`, "spec.issuer", "without query or fragment"},
		{"policy: no audiences", validPolicy, `audiences: []`, "spec.audiences", "should have at least 1 items"},
		{"policy: audiences missing", validPolicy, `audiences: null`, "spec.audiences", "Required value"},
		{"policy: zero TTL", validPolicy, `accessTokenTTL: 0s`, "spec.accessTokenTTL", "between 1m and 24h"},
		{"policy: TTL of two days", validPolicy, `accessTokenTTL: 48h`, "spec.accessTokenTTL", "between 1m and 24h"},
		{"policy: TTL not a duration", validPolicy, `accessTokenTTL: 15 minutes`, "spec.accessTokenTTL", "between 1m and 24h"},
		{"policy: skew too large", validPolicy, `clockSkew: 10m`, "spec.clockSkew", "between 0s and 5m"},
		{"policy: rotation period too short", validPolicy, `rotation: {period: 30m, prePublish: 1m}`, "spec.rotation.period", "between 1h and 8760h"},
		{"policy: rotation shorter than prePublish+TTL+skew", validPolicy, `{accessTokenTTL: 1h, rotation: {period: 2h, prePublish: 1h}}`, "spec.rotation.period", "at least rotation.prePublish + accessTokenTTL + clockSkew"},
		{"policy: prePublish too short", validPolicy, `rotation: {prePublish: 10s}`, "spec.rotation.prePublish", "between 1m and 720h"},
		{"policy: RSA size for an EC algorithm", validPolicy, `rsaKeyBits: 2048`, "spec.rsaKeyBits", "applies only to the RS256 and PS256"},
		{"policy: weak RSA key", validPolicy, `{algorithm: RS256, rsaKeyBits: 1024}`, "spec.rsaKeyBits", `Unsupported value: 1024`},
		{"policy: revoked key id not a thumbprint", validPolicy, `revokedKeys: [abc]`, "spec.revokedKeys[0]", "should match"},
		{"policy: zero rate limit", validPolicy, `tokenEndpoint: {requestsPerSecond: 0}`, "spec.tokenEndpoint.requestsPerSecond", "greater than or equal to 1"},
		// Role
		{"role: wildcard in the middle", validRole, `permissions: ["orders:*:read"]`, "spec.permissions[0]", "should match"},
		{"role: space in permission", validRole, `permissions: ["orders read"]`, "spec.permissions[0]", "should match"},
		{"role: neither permissions nor routes", validRole, `permissions: null`, "spec", "at least one permission or one route"},
		{"role: relative path", validRole, `routes: [{paths: [api/orders]}]`, "spec.routes[0].paths[0]", "should match"},
		{"role: dot-dot segment", validRole, `routes: [{paths: [/api/../admin]}]`, "spec.routes[0].paths[0]", "must not contain . or .. segments"},
		{"role: ** not last", validRole, `routes: [{paths: ["/api/**/x"]}]`, "spec.routes[0].paths[0]", "** may only be the last segment"},
		{"role: partial-segment wildcard", validRole, `routes: [{paths: ["/api/ord*"]}]`, "spec.routes[0].paths[0]", "must be whole path segments"},
		{"role: double slash", validRole, `routes: [{paths: ["/api//orders"]}]`, "spec.routes[0].paths[0]", "should match"},
		{"role: lower-case method", validRole, `routes: [{paths: [/api], methods: [get]}]`, "spec.routes[0].methods[0]", `Unsupported value: "get"`},
		{"role: nested wildcard host", validRole, `routes: [{paths: [/api], hosts: ["*.*.example.com"]}]`, "spec.routes[0].hosts[0]", "should match"},
		{"role: route without paths", validRole, `routes: [{hosts: [api.example.com]}]`, "spec.routes[0].paths", "Required value"},
		// ServiceAccount
		{"account: no policy", validAccount, `tokenPolicyRef: null`, "spec.tokenPolicyRef", "Required value"},
		{"account: reserved claim", validAccount, `extraClaims: {sub: admin}`, "spec.extraClaims", "must not set a registered or framework claim"},
		{"account: bad claim name", validAccount, `extraClaims: {"bad claim": x}`, "spec.extraClaims", "claim names must match"},
		{"account: grace longer than period", validAccount, `clientSecretRotation: {period: 48h, gracePeriod: 100h}`, "spec.clientSecretRotation.gracePeriod", "shorter than period"},
		{"account: role name with capitals", validAccount, `roles: [Orders_Reader]`, "spec.roles[0]", "should match"},
		{"account: client id with a space", validAccount, `clientID: "billing service"`, "spec.clientID", "should match"},
		{"account: a Kubernetes service account listed twice", validAccount, `kubernetesServiceAccounts: [{name: sync}, {name: sync}]`, "spec.kubernetesServiceAccounts", "each Kubernetes service account may be listed once"},
		{"account: the same twice with a namespace", validAccount, `kubernetesServiceAccounts: [{namespace: batch, name: sync}, {name: sync}, {namespace: batch, name: sync}]`, "spec.kubernetesServiceAccounts", "each Kubernetes service account may be listed once"},
		// AuthServer
		{"server: token exchange for the API server's audience", validAuthServer, `tokenExchange: {audience: "https://kubernetes.default.svc.cluster.local"}`, "spec.tokenExchange.audience", "must not be an audience of the Kubernetes API server"},
		{"server: token exchange cache TTL too long", validAuthServer, `tokenExchange: {cacheTTL: 1h}`, "spec.tokenExchange.cacheTTL", "between 1s and 10m"},
		{"server: token exchange cache TTL of zero", validAuthServer, `tokenExchange: {cacheTTL: 0s}`, "spec.tokenExchange.cacheTTL", "between 1s and 10m"},
		{"server: tokenreview on the main port", validAuthServer, `{port: 8443, tokenReviewWebhook: {tlsSecretName: tls, clientCA: {secret: {name: ca}}}}`, "spec.tokenReviewWebhook.port", "must differ from port"},
		{"server: tokenreview client CA from both", validAuthServer, `tokenReviewWebhook: {tlsSecretName: tls, clientCA: {secret: {name: ca}, configMap: {name: ca}}}`, "spec.tokenReviewWebhook.clientCA", "exactly one of configMap or secret"},
		{"server: tokenreview client CA from neither", validAuthServer, `tokenReviewWebhook: {tlsSecretName: tls, clientCA: {}}`, "spec.tokenReviewWebhook.clientCA", "exactly one of configMap or secret"},
		{"server: tokenreview without a serving certificate", validAuthServer, `tokenReviewWebhook: {clientCA: {secret: {name: ca}}}`, "spec.tokenReviewWebhook.tlsSecretName", "Required value"},
		{"server: tokenreview user names as system users", validAuthServer, `tokenReviewWebhook: {tlsSecretName: tls, clientCA: {secret: {name: ca}}, usernamePrefix: "system:"}`, "spec.tokenReviewWebhook.usernamePrefix", "must not start with system:"},
		{"server: tokenreview groups a namespace completes to system:", validAuthServer, `tokenReviewWebhook: {tlsSecretName: tls, clientCA: {secret: {name: ca}}, groupsPrefix: "s"}`, "spec.tokenReviewWebhook.groupsPrefix", "or be the start of it"},
		{"server: tokenreview empty groups prefix", validAuthServer, `tokenReviewWebhook: {tlsSecretName: tls, clientCA: {secret: {name: ca}}, groupsPrefix: ""}`, "spec.tokenReviewWebhook.groupsPrefix", "at least 1"},
		{"server: tokenreview prefix with a quote", validAuthServer, `tokenReviewWebhook: {tlsSecretName: tls, clientCA: {secret: {name: ca}}, usernamePrefix: "a'b:"}`, "spec.tokenReviewWebhook.usernamePrefix", "should match"},
		{"server: min above max", validAuthServer, `autoscaling: {minReplicas: 5, maxReplicas: 2}`, "spec.autoscaling.minReplicas", "must not exceed maxReplicas"},
		{"server: replicas and autoscaling", validAuthServer, `{replicas: 3, autoscaling: {maxReplicas: 4}}`, "spec.replicas", "either replicas or autoscaling"},
		{"server: no image", validAuthServer, `image: ""`, "spec.image", "at least 1 chars"},
		{"server: zero replicas", validAuthServer, `replicas: 0`, "spec.replicas", "greater than or equal to 1"},
		{"server: decreasing canary steps", validAuthServer, `rollout: {trafficRouting: {ingress: api, steps: [50, 10]}}`, "spec.rollout.trafficRouting.steps", "strictly increasing"},
		{"server: canary through both an HTTPRoute and an Ingress", validAuthServer, `rollout: {trafficRouting: {httpRoute: api, ingress: api}}`, "spec.rollout.trafficRouting", "name exactly one of httpRoute or ingress"},
		{"server: canary through nothing", validAuthServer, `rollout: {trafficRouting: {steps: [10]}}`, "spec.rollout.trafficRouting", "name exactly one of httpRoute or ingress"},
		{"server: negative scale-down delay", validAuthServer, `rollout: {scaleDownDelay: -5s}`, "spec.rollout.scaleDownDelay", "between 0s and 24h"},
		{"server: privileged port", validAuthServer, `port: 80`, "spec.port", "greater than or equal to 1024"},
		{"server: trusted proxy not a CIDR", validAuthServer, `trustedProxies: [10.0.0.0/8, ingress.example]`, "spec.trustedProxies", "must be a CIDR"},
		{"server: trusted proxy without a prefix length", validAuthServer, `trustedProxies: [10.1.2.3]`, "spec.trustedProxies", "must be a CIDR"},
		{"server: trusted proxy prefix too long", validAuthServer, `trustedProxies: [10.0.0.0/33]`, "spec.trustedProxies", "must be a CIDR"},
	}
	if len(cases) < 20 {
		t.Fatalf("the table must cover at least 20 invalid objects, has %d", len(cases))
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			obj := object(t, tc.base, tc.patch)
			obj.SetNamespace(ns)
			obj.SetName("invalid-" + itoa(i))
			err := k8sClient.Create(context.Background(), obj)
			if err == nil {
				t.Fatalf("the API server accepted an invalid %s", obj.GetKind())
			}
			if !apierrors.IsInvalid(err) {
				t.Fatalf("want an Invalid error, got %v", err)
			}
			msg := err.Error()
			if !strings.Contains(msg, tc.wantField+":") {
				t.Errorf("message does not name the field %q: %s", tc.wantField, msg)
			}
			if !strings.Contains(msg, tc.wantWhy) {
				t.Errorf("message does not give the reason %q: %s", tc.wantWhy, msg)
			}
			if strings.Contains(msg, "evaluation error") || strings.Contains(msg, "no such key") {
				t.Errorf("message carries a CEL evaluation error instead of a reason: %s", msg)
			}
		})
	}
}

// TestEveryReservedClaimIsRefused: the API refuses, in spec.extraClaims,
// every claim name the issuer reserves — so no account can be created whose
// tokens cannot be issued.
func TestEveryReservedClaimIsRefused(t *testing.T) {
	ns := newNamespace(t)
	var names []string
	for _, n := range token.ReservedClaims() {
		names = append(names, n, strings.ToUpper(n))
	}
	for i, name := range names {
		obj := object(t, validAccount, "extraClaims: {"+name+": x}")
		obj.SetNamespace(ns)
		obj.SetName("reserved-" + itoa(i))
		err := k8sClient.Create(context.Background(), obj)
		if !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), "must not set a registered or framework claim") {
			t.Errorf("extraClaims.%s: %v", name, err)
		}
	}
}

func itoa(i int) string {
	const digits = "0123456789"
	if i < 10 {
		return digits[i : i+1]
	}
	return itoa(i/10) + digits[i%10:i%10+1]
}

// TestDefaults checks the defaults a user relies on when writing a minimal
// policy, account and server.
func TestDefaults(t *testing.T) {
	ctx := context.Background()
	ns := newNamespace(t)

	policy := object(t, validPolicy, "")
	policy.SetNamespace(ns)
	policy.SetName("minimal")
	if err := k8sClient.Create(ctx, policy); err != nil {
		t.Fatalf("creating minimal policy: %v", err)
	}
	var got authv1alpha1.TokenPolicy
	if err := k8sClient.Get(ctx, client.ObjectKeyFromObject(policy), &got); err != nil {
		t.Fatal(err)
	}
	checks := []struct {
		what      string
		got, want any
	}{
		{"algorithm", got.Spec.Algorithm, authv1alpha1.ES256},
		{"accessTokenTTL", got.Spec.AccessTokenTTL.Duration, 15 * time.Minute},
		{"clockSkew", got.Spec.ClockSkew.Duration, 30 * time.Second},
		{"rotation.period", got.Spec.Rotation.Period.Duration, 30 * 24 * time.Hour},
		{"rotation.prePublish", got.Spec.Rotation.PrePublish.Duration, time.Hour},
		{"tokenEndpoint.requestsPerSecond", got.Spec.TokenEndpoint.RequestsPerSecond, int32(10)},
		{"tokenEndpoint.burst", got.Spec.TokenEndpoint.Burst, int32(20)},
		// Deprecated and ignored: no longer defaulted.
		{"tokenEndpoint.maxFailedAttempts", got.Spec.TokenEndpoint.MaxFailedAttempts, int32(0)},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("policy %s defaulted to %v, want %v", c.what, c.got, c.want)
		}
	}
	// The pre-publish lead must outlast the 10m JWKS caches of common verifiers.
	if got.Spec.Rotation.PrePublish.Duration <= 10*time.Minute {
		t.Errorf("default prePublish %v is not longer than a 10m JWKS cache", got.Spec.Rotation.PrePublish.Duration)
	}

	account := object(t, validAccount, "")
	account.SetNamespace(ns)
	account.SetName("minimal")
	if err := k8sClient.Create(ctx, account); err != nil {
		t.Fatalf("creating minimal account: %v", err)
	}
	var sa authv1alpha1.ServiceAccount
	if err := k8sClient.Get(ctx, client.ObjectKeyFromObject(account), &sa); err != nil {
		t.Fatal(err)
	}
	if sa.Spec.ClientSecretRotation.Period.Duration != 90*24*time.Hour || sa.Spec.ClientSecretRotation.GracePeriod.Duration != 24*time.Hour {
		t.Errorf("secret rotation defaulted to %+v, want 2160h period and 24h grace", sa.Spec.ClientSecretRotation)
	}

	server := object(t, validAuthServer, "")
	server.SetNamespace(ns)
	server.SetName("minimal")
	if err := k8sClient.Create(ctx, server); err != nil {
		t.Fatalf("creating minimal auth server: %v", err)
	}
	var as authv1alpha1.AuthServer
	if err := k8sClient.Get(ctx, client.ObjectKeyFromObject(server), &as); err != nil {
		t.Fatal(err)
	}
	r := as.Spec.Rollout
	if r.AutoPromote == nil || !*r.AutoPromote || r.SmokeTests.Enabled == nil || !*r.SmokeTests.Enabled {
		t.Errorf("rollout defaults: autoPromote and smoke tests should be on, got %+v", r)
	}
	// The old color must outlive ingress-nginx's 60s upstream keep-alive.
	if r.ScaleDownDelay.Duration <= 60*time.Second {
		t.Errorf("default scaleDownDelay %v does not outlast a 60s keep-alive", r.ScaleDownDelay.Duration)
	}
	if as.Spec.ResponseHeaders.UserID != "X-User-ID" || as.Spec.ResponseHeaders.Permissions != "X-User-Permissions" {
		t.Errorf("identity headers defaulted to %+v", as.Spec.ResponseHeaders)
	}
	if len(as.Spec.TrustedProxies) != 0 {
		t.Errorf("trustedProxies defaulted to %v, want none (trust nobody's headers)", as.Spec.TrustedProxies)
	}
	proxied := object(t, validAuthServer, `trustedProxies: [10.0.0.0/8, 10.1.2.3/32, "fd00::/8"]`)
	proxied.SetNamespace(ns)
	proxied.SetName("proxied")
	if err := k8sClient.Create(ctx, proxied); err != nil {
		t.Errorf("valid trustedProxies refused: %v", err)
	}
}

// TestClientIDIsImmutable checks the transition rule: once set, a client id
// cannot change, because clients and audit trails know the account by it.
func TestClientIDIsImmutable(t *testing.T) {
	ctx := context.Background()
	ns := newNamespace(t)
	sa := &authv1alpha1.ServiceAccount{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "billing"},
		Spec: authv1alpha1.ServiceAccountSpec{
			TokenPolicyRef: authv1alpha1.LocalRef{Name: "orders"},
			ClientID:       "billing-prod",
		},
	}
	if err := k8sClient.Create(ctx, sa); err != nil {
		t.Fatalf("creating account: %v", err)
	}
	sa.Spec.ClientID = "billing-other"
	err := k8sClient.Update(ctx, sa)
	if !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), "spec.clientID") || !strings.Contains(err.Error(), "immutable") {
		t.Fatalf("changing clientID: want an Invalid error naming spec.clientID as immutable, got %v", err)
	}

	// Other fields remain editable.
	testenv.Update(t, k8sClient, sa, func() { sa.Spec.Disabled = true })
}
