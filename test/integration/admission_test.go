package integration

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	authv1alpha1 "github.com/authframework/authframework/api/v1alpha1"
	"github.com/authframework/authframework/internal/certs"
	"github.com/authframework/authframework/test/testenv"
)

// warnings records the admission warnings the API server relays.
type warnings struct {
	mu   sync.Mutex
	list []string
}

func (w *warnings) HandleWarningHeader(_ int, _ string, text string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.list = append(w.list, text)
}

func (w *warnings) take() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := w.list
	w.list = nil
	return out
}

// warningClient is a client whose warnings a test can read.
func warningClient(t *testing.T) (client.Client, *warnings) {
	t.Helper()
	w := &warnings{}
	c := rest.CopyConfig(cfg)
	c.WarningHandler = w
	cl, err := client.New(c, client.Options{Scheme: scheme})
	if err != nil {
		t.Fatal(err)
	}
	return cl, w
}

func hasWarning(ws []string, sub string) bool {
	for _, w := range ws {
		if strings.Contains(w, sub) {
			return true
		}
	}
	return false
}

// TestAdmissionWebhooks exercises every webhook rule: allowed, denied with a
// message, and warnings returned.
func TestAdmissionWebhooks(t *testing.T) {
	ctx := context.Background()
	cl, w := warningClient(t)
	ns := newNamespace(t)
	account := func(name string, mod func(*authv1alpha1.ServiceAccount)) *authv1alpha1.ServiceAccount {
		sa := &authv1alpha1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
			Spec: authv1alpha1.ServiceAccountSpec{TokenPolicyRef: authv1alpha1.LocalRef{Name: "orders"}}}
		if mod != nil {
			mod(sa)
		}
		return sa
	}

	// ServiceAccount: warnings for references that do not resolve.
	sa := account("early", func(sa *authv1alpha1.ServiceAccount) { sa.Spec.Roles = []string{"reader", "writer"} })
	if err := cl.Create(ctx, sa); err != nil {
		t.Fatalf("an account with missing references must be allowed: %v", err)
	}
	ws := w.take()
	if !hasWarning(ws, `TokenPolicy "orders" does not exist`) || !hasWarning(ws, "Role(s) reader, writer do not exist") {
		t.Errorf("warnings %q", ws)
	}
	// The defaulter made the client id explicit (and so immutable).
	if sa.Spec.ClientID != ns+".early" {
		t.Errorf("defaulted client id %q", sa.Spec.ClientID)
	}

	// Client ids are unique across the cluster.
	other := newNamespace(t)
	dup := &authv1alpha1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: other, Name: "copy"},
		Spec: authv1alpha1.ServiceAccountSpec{TokenPolicyRef: authv1alpha1.LocalRef{Name: "orders"}, ClientID: ns + ".early"}}
	err := cl.Create(ctx, dup)
	if !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), "spec.clientID: Duplicate value") || !strings.Contains(err.Error(), ns+"/early") {
		t.Errorf("a duplicate client id: %v", err)
	}

	// With the policy present: its audiences bound tokenSecret.audience.
	if err := cl.Create(ctx, &authv1alpha1.TokenPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "orders"},
		Spec: authv1alpha1.TokenPolicySpec{Issuer: "https://auth.example.com/a", Audiences: []string{"orders-api"}}}); err != nil {
		t.Fatal(err)
	}
	w.take()
	err = cl.Create(ctx, account("wrong-aud", func(sa *authv1alpha1.ServiceAccount) {
		sa.Spec.TokenSecret = &authv1alpha1.TokenSecretSpec{Audience: "payments-api"}
	}))
	if !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), "spec.tokenSecret.audience: Unsupported value") {
		t.Errorf("tokenSecret for an audience the policy does not have: %v", err)
	}
	if err := cl.Create(ctx, account("right-aud", func(sa *authv1alpha1.ServiceAccount) {
		sa.Spec.TokenSecret = &authv1alpha1.TokenSecretSpec{Audience: "orders-api"}
	})); err != nil {
		t.Errorf("tokenSecret for the policy's audience: %v", err)
	}
	if ws := w.take(); len(ws) != 0 {
		t.Errorf("a fully resolved account got warnings %q", ws)
	}

	// TokenPolicy: changes that affect live tokens are explained.
	p := &authv1alpha1.TokenPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "orders"}}
	if err := cl.Get(ctx, client.ObjectKeyFromObject(p), p); err != nil {
		t.Fatal(err)
	}
	if err := testenv.UpdateWithRetry(ctx, cl, p, func() {
		p.Spec.Algorithm = authv1alpha1.EdDSA
		p.Spec.Issuer = "https://auth.example.com/b"
		p.Spec.Rotation.PrePublish = metav1.Duration{Duration: 5 * time.Minute}
		p.Spec.RevokedKeys = []string{strings.Repeat("A", 43)}
	}); err != nil {
		t.Fatalf("policy changes are allowed: %v", err)
	}
	ws = w.take()
	for _, want := range []string{"rolls the keys over through a rotation", "spec.issuer: tokens issued before carry", "shorter than the 10m", "is not a key of this policy"} {
		if !hasWarning(ws, want) {
			t.Errorf("no warning %q among %q", want, ws)
		}
	}

	// An audience another namespace already lists is that namespace's.
	first, second := newNamespace(t), newNamespace(t)
	shared := func(n string) *authv1alpha1.TokenPolicy {
		return &authv1alpha1.TokenPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: n, Name: "shared"},
			Spec: authv1alpha1.TokenPolicySpec{Issuer: "https://auth.example.com/" + n, Audiences: []string{"shared-api-" + first}}}
	}
	if err := cl.Create(ctx, shared(first)); err != nil {
		t.Fatal(err)
	}
	if ws := w.take(); hasWarning(ws, "is already listed") {
		t.Errorf("the first policy to list an audience got %q", ws)
	}
	// The webhook reads the manager's cache: a dry run until it has seen the first.
	testenv.Eventually(t, "a second namespace's policy is warned", func() error {
		if err := cl.Create(ctx, shared(second), client.DryRunAll); err != nil {
			return err
		}
		if ws := w.take(); !hasWarning(ws, "is already listed by TokenPolicy "+first+"/shared") {
			return fmt.Errorf("warnings %q", ws)
		}
		return nil
	})

	// Deprecated fields that no longer do anything say so.
	if err := testenv.UpdateWithRetry(ctx, cl, p, func() { p.Spec.TokenEndpoint.MaxFailedAttempts = 5 }); err != nil {
		t.Fatal(err)
	}
	if ws := w.take(); !hasWarning(ws, "deprecated and ignored") {
		t.Errorf("no warning for the deprecated lockout fields among %q", ws)
	}

	// Role: rules that can never match are refused; redundancy is a warning.
	err = cl.Create(ctx, &authv1alpha1.Role{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "dup"}, Spec: authv1alpha1.RoleSpec{
		Routes: []authv1alpha1.RouteRule{{Paths: []string{"/a"}}, {Paths: []string{"/a"}}}}})
	if !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), "routes[1] duplicates routes[0]") {
		t.Errorf("duplicate route rules: %v", err)
	}
	err = cl.Create(ctx, &authv1alpha1.Role{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "enc"}, Spec: authv1alpha1.RoleSpec{
		Routes: []authv1alpha1.RouteRule{{Paths: []string{"/a/%7euser"}}}}})
	if !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), "can never match") {
		t.Errorf("a pattern not in normal form: %v", err)
	}
	if err := cl.Create(ctx, &authv1alpha1.Role{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "wide"}, Spec: authv1alpha1.RoleSpec{
		Permissions: []string{"orders:*", "orders:read"}}}); err != nil {
		t.Errorf("a redundant permission is allowed: %v", err)
	}
	if ws := w.take(); !hasWarning(ws, `"orders:read" is already covered`) {
		t.Errorf("warnings %q", ws)
	}

	// AuthServer: advice as warnings.
	if err := cl.Create(ctx, &authv1alpha1.AuthServer{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "auth"}, Spec: authv1alpha1.AuthServerSpec{
		Image: "ghcr.io/authframework/authframework:latest", Autoscaling: &authv1alpha1.AutoscalingSpec{MaxReplicas: 4}}}); err != nil {
		t.Fatal(err)
	}
	ws = w.take()
	if !hasWarning(ws, "resources.requests.cpu") || !hasWarning(ws, "pin a tag or digest") {
		t.Errorf("auth server warnings %q", ws)
	}
	if err := cl.Create(ctx, &authv1alpha1.AuthServer{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "auth2"}, Spec: authv1alpha1.AuthServerSpec{
		Image: "ghcr.io/authframework/authframework:v0.1.0", Autoscaling: &authv1alpha1.AutoscalingSpec{MaxReplicas: 4},
		Resources: corev1.ResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("100m")}}}}); err != nil {
		t.Fatal(err)
	}
	if ws := w.take(); len(ws) != 0 {
		t.Errorf("a well-formed auth server got warnings %q", ws)
	}
}

// servedCertificate is the serial of the certificate the webhook server
// presents now.
func servedCertificate(t *testing.T) string {
	t.Helper()
	wh := testEnv.WebhookInstallOptions
	conn, err := tls.Dial("tcp", net.JoinHostPort(wh.LocalServingHost, strconv.Itoa(wh.LocalServingPort)), &tls.Config{InsecureSkipVerify: true}) //nolint:gosec // reading the certificate only
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0].SerialNumber.String()
}

// TestWebhookCertificateRotation steps the certificate clock past the
// renewal time: a new certificate is served, the CA bundle stays current,
// and admission requests keep succeeding through the change.
func TestWebhookCertificateRotation(t *testing.T) {
	ctx := context.Background()
	ns := newNamespace(t)
	secretKey := types.NamespacedName{Namespace: "default", Name: "authframework-webhook-certs"}
	var secret corev1.Secret
	testenv.Eventually(t, "webhook certificate Secret", func() error { return k8sClient.Get(ctx, secretKey, &secret) })
	var vwc admissionregistrationv1.ValidatingWebhookConfiguration
	if err := k8sClient.Get(ctx, types.NamespacedName{Name: "validating-webhook-configuration"}, &vwc); err != nil {
		t.Fatal(err)
	}
	for _, wh := range vwc.Webhooks {
		if !strings.Contains(string(wh.ClientConfig.CABundle), strings.TrimSpace(string(secret.Data["ca.crt"]))) {
			t.Fatalf("%s: caBundle is not the operator's CA", wh.Name)
		}
	}
	before := servedCertificate(t)

	// Admission keeps working while the certificate changes.
	stop := make(chan struct{})
	failures := make(chan error, 100)
	var created atomic.Int64
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		pace := time.NewTicker(20 * time.Millisecond)
		defer pace.Stop()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-pace.C:
			}
			role := &authv1alpha1.Role{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: fmt.Sprintf("r%d", i)}, Spec: authv1alpha1.RoleSpec{Permissions: []string{"a:read"}}}
			if err := k8sClient.Create(ctx, role); err != nil {
				failures <- err
			} else {
				created.Add(1)
			}
		}
	}()

	certClock.Step(certs.ServingLifetime*2/3 + 2*time.Hour)
	patch := []byte(fmt.Sprintf(`{"metadata":{"annotations":{"test.authframework.dev/poke":"%d"}}}`, time.Now().UnixNano()))
	if err := k8sClient.Patch(ctx, &secret, client.RawPatch(types.MergePatchType, patch)); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, "a new certificate is served", func() error {
		if servedCertificate(t) == before {
			return fmt.Errorf("still the old certificate")
		}
		return nil
	})
	// A few more admission requests on the new certificate.
	after := created.Load()
	testenv.Eventually(t, "admission requests on the new certificate", func() error {
		if created.Load() < after+5 {
			return fmt.Errorf("%d requests since the switch", created.Load()-after)
		}
		return nil
	})
	close(stop)
	wg.Wait()
	close(failures)
	for err := range failures {
		t.Errorf("an admission request failed during the rotation: %v", err)
	}
	var roles authv1alpha1.RoleList
	if err := k8sClient.List(ctx, &roles, client.InNamespace(ns)); err != nil || len(roles.Items) < 5 {
		t.Errorf("only %d roles created during the rotation (%v)", len(roles.Items), err)
	}
}
