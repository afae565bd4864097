package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	authv1alpha1 "github.com/authframework/authframework/api/v1alpha1"
	"github.com/authframework/authframework/internal/credentials"
	"github.com/authframework/authframework/internal/keys"
	"github.com/authframework/authframework/internal/token"
	"github.com/authframework/authframework/test/testenv"
)

// accountFixture creates a ready policy in a fresh namespace.
func accountFixture(t *testing.T) (ns string, policy types.NamespacedName) {
	t.Helper()
	ns = newNamespace(t)
	policy = types.NamespacedName{Namespace: ns, Name: "orders"}
	if err := k8sClient.Create(context.Background(), &authv1alpha1.TokenPolicy{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: policy.Name},
		Spec:       authv1alpha1.TokenPolicySpec{Issuer: "https://auth.example.com/issuers/" + ns + "/orders", Audiences: []string{"orders-api", "inventory-api"}},
	}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, policy, "policy ready", func(p *authv1alpha1.TokenPolicy) error {
		if p.Status.ActiveKeyID == "" {
			return fmt.Errorf("no active key")
		}
		return nil
	})
	return ns, policy
}

func createRole(t *testing.T, ns, name string, perms ...string) {
	t.Helper()
	if err := k8sClient.Create(context.Background(), &authv1alpha1.Role{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec:       authv1alpha1.RoleSpec{Permissions: perms},
	}); err != nil {
		t.Fatal(err)
	}
}

func getAccount(t *testing.T, key types.NamespacedName) *authv1alpha1.ServiceAccount {
	t.Helper()
	var sa authv1alpha1.ServiceAccount
	if err := k8sClient.Get(context.Background(), key, &sa); err != nil {
		t.Fatal(err)
	}
	return &sa
}

func waitAccount(t *testing.T, key types.NamespacedName, what string, cond func(*authv1alpha1.ServiceAccount) error) *authv1alpha1.ServiceAccount {
	t.Helper()
	var sa *authv1alpha1.ServiceAccount
	testenv.Eventually(t, what, func() error {
		sa = getAccount(t, key)
		return cond(sa)
	})
	return sa
}

func ready(sa *authv1alpha1.ServiceAccount) error {
	c := meta.FindStatusCondition(sa.Status.Conditions, authv1alpha1.ConditionReady)
	if c == nil || c.Status != metav1.ConditionTrue || c.ObservedGeneration != sa.Generation {
		return fmt.Errorf("not Ready: %+v", c)
	}
	return nil
}

func secretData(t *testing.T, ns, name, key string) string {
	t.Helper()
	var s corev1.Secret
	if err := k8sClient.Get(context.Background(), types.NamespacedName{Namespace: ns, Name: name}, &s); err != nil {
		t.Fatalf("Secret %s: %v", name, err)
	}
	return string(s.Data[key])
}

func verifier(t *testing.T, ns, account string) credentials.Verifier {
	t.Helper()
	var v credentials.Verifier
	if err := json.Unmarshal([]byte(secretData(t, ns, account+authv1alpha1.VerifierSecretSuffix, authv1alpha1.VerifierKey)), &v); err != nil {
		t.Fatal(err)
	}
	return v
}

// TestServiceAccountRecoversWhenRoleAppears: a missing Role is a condition and
// a Warning event; creating the Role makes the account Ready without any
// change to the account.
func TestServiceAccountRecoversWhenRoleAppears(t *testing.T) {
	ns, policy := accountFixture(t)
	key := types.NamespacedName{Namespace: ns, Name: "billing"}
	if err := k8sClient.Create(context.Background(), &authv1alpha1.ServiceAccount{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: key.Name},
		Spec:       authv1alpha1.ServiceAccountSpec{TokenPolicyRef: authv1alpha1.LocalRef{Name: policy.Name}, Roles: []string{"orders-reader"}},
	}); err != nil {
		t.Fatal(err)
	}
	sa := waitAccount(t, key, "roles unresolved", func(sa *authv1alpha1.ServiceAccount) error {
		c := meta.FindStatusCondition(sa.Status.Conditions, authv1alpha1.ConditionRolesResolved)
		if c == nil || c.Status != metav1.ConditionFalse || c.Reason != authv1alpha1.ReasonRoleNotFound {
			return fmt.Errorf("RolesResolved %+v", c)
		}
		return nil
	})
	if ready(sa) == nil {
		t.Error("Ready with a missing role")
	}
	if sa.Status.ClientID != ns+".billing" || sa.Status.CredentialsSecretName != "billing-credentials" {
		t.Errorf("credentials are created even while a role is missing: %+v", sa.Status)
	}
	testenv.Eventually(t, "RoleNotFound event", func() error {
		reasons, err := eventReasons(ns, key.Name)
		if err != nil || !reasons[authv1alpha1.ReasonRoleNotFound] {
			return fmt.Errorf("events %v, %v", reasons, err)
		}
		return nil
	})
	generation := sa.Generation

	createRole(t, ns, "orders-reader", "orders:read", "orders:items:read")
	sa = waitAccount(t, key, "ready after the role appears", ready)
	if sa.Generation != generation {
		t.Errorf("the account was modified (generation %d -> %d)", generation, sa.Generation)
	}
	if !slices.Equal(sa.Status.Permissions, []string{"orders:items:read", "orders:read"}) || !slices.Equal(sa.Status.Roles, []string{"orders-reader"}) {
		t.Errorf("resolved roles %v, permissions %v", sa.Status.Roles, sa.Status.Permissions)
	}

	// A change to the role reaches the account.
	var role authv1alpha1.Role
	if err := k8sClient.Get(context.Background(), types.NamespacedName{Namespace: ns, Name: "orders-reader"}, &role); err != nil {
		t.Fatal(err)
	}
	testenv.Update(t, k8sClient, &role, func() { role.Spec.Permissions = append(role.Spec.Permissions, "orders:write") })
	waitAccount(t, key, "permissions follow the role", func(sa *authv1alpha1.ServiceAccount) error {
		if !slices.Contains(sa.Status.Permissions, "orders:write") {
			return fmt.Errorf("permissions %v", sa.Status.Permissions)
		}
		return nil
	})
	// The role reports who uses it.
	testenv.Eventually(t, "role status", func() error {
		var r authv1alpha1.Role
		if err := k8sClient.Get(context.Background(), types.NamespacedName{Namespace: ns, Name: "orders-reader"}, &r); err != nil {
			return err
		}
		if r.Status.ServiceAccountCount != 1 || !slices.Equal(r.Status.ServiceAccounts, []string{"billing"}) || !meta.IsStatusConditionTrue(r.Status.Conditions, authv1alpha1.ConditionReady) {
			return fmt.Errorf("role status %+v", r.Status)
		}
		return nil
	})
}

// TestClientSecretRotation: the rotate annotation writes a new secret; both
// work until the grace period ends on the fake clock; then only the new one.
func TestClientSecretRotation(t *testing.T) {
	ns, policy := accountFixture(t)
	createRole(t, ns, "reader", "orders:read")
	key := types.NamespacedName{Namespace: ns, Name: "billing"}
	if err := k8sClient.Create(context.Background(), &authv1alpha1.ServiceAccount{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: key.Name},
		Spec: authv1alpha1.ServiceAccountSpec{TokenPolicyRef: authv1alpha1.LocalRef{Name: policy.Name}, Roles: []string{"reader"},
			ClientSecretRotation: authv1alpha1.SecretRotation{Period: metav1.Duration{Duration: 720 * time.Hour}, GracePeriod: metav1.Duration{Duration: 2 * time.Hour}}},
	}); err != nil {
		t.Fatal(err)
	}
	waitAccount(t, key, "ready", ready)
	old := secretData(t, ns, "billing-credentials", authv1alpha1.ClientSecretKey)
	if len(old) != 43 || secretData(t, ns, "billing-credentials", authv1alpha1.ClientIDKey) != ns+".billing" {
		t.Fatalf("credentials Secret: secret of %d chars", len(old))
	}
	if !verifier(t, ns, "billing").Check(old, fakeClock.Now()) {
		t.Fatal("the verifier does not accept the secret")
	}
	// The verifier Secret holds no plaintext.
	if raw := secretData(t, ns, "billing-client-verifier", authv1alpha1.VerifierKey); strings.Contains(raw, old) {
		t.Fatal("the verifier Secret contains the plaintext secret")
	}

	testenv.Annotate(t, k8sClient, &authv1alpha1.ServiceAccount{}, key, authv1alpha1.AnnotationRotate, "r1")
	sa := waitAccount(t, key, "rotated", func(sa *authv1alpha1.ServiceAccount) error {
		if sa.Status.LastRotateRequest != "r1" || sa.Status.PreviousSecretExpiresAt == nil {
			return fmt.Errorf("status %+v", sa.Status)
		}
		return nil
	})
	fresh := secretData(t, ns, "billing-credentials", authv1alpha1.ClientSecretKey)
	if fresh == old {
		t.Fatal("rotation did not change the secret")
	}
	now := fakeClock.Now()
	v := verifier(t, ns, "billing")
	if !v.Check(old, now) || !v.Check(fresh, now) {
		t.Fatalf("during the grace both secrets must work: old %v, new %v", v.Check(old, now), v.Check(fresh, now))
	}
	if want := now.Truncate(time.Second).Add(2 * time.Hour); !sa.Status.PreviousSecretExpiresAt.Time.Equal(want) {
		t.Errorf("grace ends %v, want %v", sa.Status.PreviousSecretExpiresAt, want)
	}

	fakeClock.Step(2 * time.Hour)
	testenv.Poke(t, k8sClient, &authv1alpha1.ServiceAccount{}, key)
	waitAccount(t, key, "grace over", func(sa *authv1alpha1.ServiceAccount) error {
		if sa.Status.PreviousSecretExpiresAt != nil {
			return fmt.Errorf("previous secret still listed until %v", sa.Status.PreviousSecretExpiresAt)
		}
		return nil
	})
	v = verifier(t, ns, "billing")
	if v.Check(old, fakeClock.Now()) || !v.Check(fresh, fakeClock.Now()) {
		t.Errorf("after the grace only the new secret works: old %v, new %v", v.Check(old, fakeClock.Now()), v.Check(fresh, fakeClock.Now()))
	}

	// Compromise: rotate, then revoke the previous secret at once.
	testenv.Annotate(t, k8sClient, &authv1alpha1.ServiceAccount{}, key, authv1alpha1.AnnotationRotate, "r2")
	waitAccount(t, key, "rotated again", func(sa *authv1alpha1.ServiceAccount) error {
		if sa.Status.LastRotateRequest != "r2" {
			return fmt.Errorf("lastRotateRequest %q", sa.Status.LastRotateRequest)
		}
		return nil
	})
	third := secretData(t, ns, "billing-credentials", authv1alpha1.ClientSecretKey)
	testenv.Annotate(t, k8sClient, &authv1alpha1.ServiceAccount{}, key, authv1alpha1.AnnotationRevokePreviousSecret, "compromised")
	waitAccount(t, key, "previous revoked", func(sa *authv1alpha1.ServiceAccount) error {
		if sa.Status.LastRevokeRequest != "compromised" || sa.Status.PreviousSecretExpiresAt != nil {
			return fmt.Errorf("status %+v", sa.Status)
		}
		return nil
	})
	v = verifier(t, ns, "billing")
	if v.Check(fresh, fakeClock.Now()) || !v.Check(third, fakeClock.Now()) {
		t.Error("after revocation only the newest secret works")
	}
}

// credentialsReason waits for the CredentialsReady condition's reason.
func credentialsReason(t *testing.T, key types.NamespacedName, reason string) {
	t.Helper()
	waitAccount(t, key, "CredentialsReady "+reason, func(sa *authv1alpha1.ServiceAccount) error {
		c := meta.FindStatusCondition(sa.Status.Conditions, authv1alpha1.ConditionCredentialsReady)
		if c == nil || c.Status != metav1.ConditionTrue || c.Reason != reason {
			return fmt.Errorf("CredentialsReady %+v", c)
		}
		return nil
	})
}

// replacedSecret waits until the credentials Secret holds a client secret
// other than any of old.
func replacedSecret(t *testing.T, ns, account string, old ...string) string {
	t.Helper()
	var got string
	testenv.Eventually(t, "a new client secret", func() error {
		var s corev1.Secret
		if err := k8sClient.Get(context.Background(), types.NamespacedName{Namespace: ns, Name: account + authv1alpha1.CredentialsSecretSuffix}, &s); err != nil {
			return err
		}
		got = string(s.Data[authv1alpha1.ClientSecretKey])
		if got == "" || slices.Contains(old, got) {
			return fmt.Errorf("client secret not replaced yet")
		}
		return nil
	})
	return got
}

// TestLostCredentialsKeepWorking: a deleted credentials Secret, a removed
// client_secret and a deleted verifier Secret never refuse a secret a
// workload may hold: a lost secret keeps working for the grace period (on
// the fake clock), an earlier rotation's grace is not cut short, and the
// verifier is rebuilt with every hash it held.
func TestLostCredentialsKeepWorking(t *testing.T) {
	ns, policy := accountFixture(t)
	key := types.NamespacedName{Namespace: ns, Name: "billing"}
	if err := k8sClient.Create(context.Background(), &authv1alpha1.ServiceAccount{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: key.Name},
		Spec: authv1alpha1.ServiceAccountSpec{TokenPolicyRef: authv1alpha1.LocalRef{Name: policy.Name},
			ClientSecretRotation: authv1alpha1.SecretRotation{Period: metav1.Duration{Duration: 720 * time.Hour}, GracePeriod: metav1.Duration{Duration: 2 * time.Hour}}},
	}); err != nil {
		t.Fatal(err)
	}
	waitAccount(t, key, "ready", ready)
	credsName := key.Name + authv1alpha1.CredentialsSecretSuffix
	first := secretData(t, ns, credsName, authv1alpha1.ClientSecretKey)

	// A rotation: first works for 2h.
	testenv.Annotate(t, k8sClient, &authv1alpha1.ServiceAccount{}, key, authv1alpha1.AnnotationRotate, "r1")
	second := replacedSecret(t, ns, key.Name, first)
	rotatedAt := fakeClock.Now().Truncate(time.Second)
	fakeClock.Step(30 * time.Minute)

	// The credentials Secret is deleted during that grace.
	var creds corev1.Secret
	if err := k8sClient.Get(context.Background(), types.NamespacedName{Namespace: ns, Name: credsName}, &creds); err != nil {
		t.Fatal(err)
	}
	if err := k8sClient.Delete(context.Background(), &creds); err != nil {
		t.Fatal(err)
	}
	third := replacedSecret(t, ns, key.Name, first, second)
	lostAt := fakeClock.Now().Truncate(time.Second)
	credentialsReason(t, key, authv1alpha1.ReasonSecretLost)
	now := fakeClock.Now()
	v := verifier(t, ns, key.Name)
	for _, s := range []string{first, second, third} {
		if !v.Check(s, now) {
			t.Fatalf("after the credentials Secret was deleted a secret the workload may hold is refused: first %v, second (lost) %v, third (new) %v",
				v.Check(first, now), v.Check(second, now), v.Check(third, now))
		}
	}
	testenv.Eventually(t, "ClientSecretLost Warning event", func() error {
		reasons, err := eventReasons(ns, key.Name)
		if err != nil || !reasons[authv1alpha1.ReasonSecretLost] {
			return fmt.Errorf("events %v, %v", reasons, err)
		}
		return nil
	})

	// client_secret is removed from the new Secret.
	fakeClock.Step(10 * time.Minute)
	var s corev1.Secret
	if err := k8sClient.Get(context.Background(), types.NamespacedName{Namespace: ns, Name: credsName}, &s); err != nil {
		t.Fatal(err)
	}
	testenv.Update(t, k8sClient, &s, func() { delete(s.Data, authv1alpha1.ClientSecretKey) })
	fourth := replacedSecret(t, ns, key.Name, first, second, third)
	removedAt := fakeClock.Now().Truncate(time.Second)

	// The verifier Secret is deleted: it is rebuilt from the credentials
	// Secret with every hash it held.
	var vs corev1.Secret
	if err := k8sClient.Get(context.Background(), types.NamespacedName{Namespace: ns, Name: key.Name + authv1alpha1.VerifierSecretSuffix}, &vs); err != nil {
		t.Fatal(err)
	}
	if err := k8sClient.Delete(context.Background(), &vs); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, "verifier rebuilt", func() error {
		var got corev1.Secret
		if err := k8sClient.Get(context.Background(), types.NamespacedName{Namespace: ns, Name: key.Name + authv1alpha1.VerifierSecretSuffix}, &got); err != nil {
			return err
		}
		if got.UID == vs.UID {
			return fmt.Errorf("not deleted yet")
		}
		return nil
	})
	testenv.Eventually(t, "ClientVerifierRestored event", func() error {
		reasons, err := eventReasons(ns, key.Name)
		if err != nil || !reasons[authv1alpha1.ReasonVerifierRestored] {
			return fmt.Errorf("events %v, %v", reasons, err)
		}
		return nil
	})
	if secretData(t, ns, credsName, authv1alpha1.ClientSecretKey) != fourth {
		t.Fatal("rebuilding the verifier replaced the workload's secret")
	}
	now = fakeClock.Now()
	v = verifier(t, ns, key.Name)
	for i, s := range []string{first, second, third, fourth} {
		if !v.Check(s, now) {
			t.Errorf("secret %d refused after the losses", i+1)
		}
	}

	// Each earlier secret works until its own grace ends, on the fake clock.
	steps := []struct {
		at      time.Time
		works   []string
		refused []string
	}{
		{rotatedAt.Add(2*time.Hour - time.Second), []string{first, second, third, fourth}, nil},
		{rotatedAt.Add(2 * time.Hour), []string{second, third, fourth}, []string{first}},
		{lostAt.Add(2*time.Hour - time.Second), []string{second, third, fourth}, []string{first}},
		{lostAt.Add(2 * time.Hour), []string{third, fourth}, []string{first, second}},
		{removedAt.Add(2 * time.Hour), []string{fourth}, []string{first, second, third}},
	}
	for i, st := range steps {
		fakeClock.SetTime(st.at)
		testenv.Poke(t, k8sClient, &authv1alpha1.ServiceAccount{}, key)
		testenv.Eventually(t, fmt.Sprintf("step %d", i), func() error {
			v := verifier(t, ns, key.Name)
			for _, s := range st.works {
				if !v.Check(s, st.at) {
					return fmt.Errorf("at %v a secret in its grace is refused", st.at)
				}
			}
			for _, s := range st.refused {
				if v.Check(s, st.at) || slices.ContainsFunc(v.Graces(), func(g credentials.Grace) bool { return g.Hash == credentials.Hash(s) }) {
					return fmt.Errorf("at %v a secret past its grace is still listed", st.at)
				}
			}
			return nil
		})
	}
	sa := waitAccount(t, key, "every grace over", func(sa *authv1alpha1.ServiceAccount) error {
		if sa.Status.PreviousSecretExpiresAt != nil {
			return fmt.Errorf("previousSecretExpiresAt %v", sa.Status.PreviousSecretExpiresAt)
		}
		return nil
	})
	if c := meta.FindStatusCondition(sa.Status.Conditions, authv1alpha1.ConditionCredentialsReady); c == nil || c.Reason != authv1alpha1.ReasonReconciled {
		t.Errorf("after the grace the loss is no longer reported: %+v", c)
	}
	if ready(sa) != nil {
		t.Errorf("not Ready: %+v", sa.Status.Conditions)
	}
}

// TestTokenSecret: a token minted with the policy's active key, re-minted at
// 80% of its lifetime and, after a key rotation, with the new key; the token
// in the Secret never expires before its replacement is written.
func TestTokenSecret(t *testing.T) {
	ns, policy := accountFixture(t)
	createRole(t, ns, "reader", "orders:read", "inventory:read")
	key := types.NamespacedName{Namespace: ns, Name: "sync"}
	if err := k8sClient.Create(context.Background(), &authv1alpha1.ServiceAccount{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: key.Name},
		Spec: authv1alpha1.ServiceAccountSpec{TokenPolicyRef: authv1alpha1.LocalRef{Name: policy.Name}, Roles: []string{"reader"},
			ExtraClaims: map[string]string{"team": "stock"},
			TokenSecret: &authv1alpha1.TokenSecretSpec{Audience: "inventory-api", Permissions: []string{"inventory:read"}}},
	}); err != nil {
		t.Fatal(err)
	}
	sa := waitAccount(t, key, "token minted", func(sa *authv1alpha1.ServiceAccount) error {
		if sa.Status.TokenExpiresAt == nil {
			return fmt.Errorf("no token yet: %+v", sa.Status.Conditions)
		}
		return ready(sa)
	})
	first := secretData(t, ns, "sync-token", authv1alpha1.TokenKey)
	claims := verifyWithPolicy(t, policy, first)
	if claims.ClientID != ns+".sync" || !slices.Equal(claims.Permissions, []string{"inventory:read"}) || claims.Audience[0] != "inventory-api" || claims.Namespace != ns {
		t.Errorf("token claims %+v", claims)
	}
	exp, refresh := sa.Status.TokenExpiresAt.Time, sa.Status.TokenRefreshAt.Time
	if !refresh.Before(exp) || refresh.Sub(claims.IssuedAt.Time()) != 12*time.Minute {
		t.Errorf("refresh at %v for a token issued %v expiring %v; want 80%% of 15m", refresh, claims.IssuedAt.Time(), exp)
	}

	// At the refresh time a new token replaces it, before it expires.
	fakeClock.SetTime(refresh)
	testenv.Poke(t, k8sClient, &authv1alpha1.ServiceAccount{}, key)
	sa = waitAccount(t, key, "re-minted", func(sa *authv1alpha1.ServiceAccount) error {
		if !sa.Status.TokenExpiresAt.Time.After(exp) {
			return fmt.Errorf("token still expires %v", sa.Status.TokenExpiresAt)
		}
		return nil
	})
	second := secretData(t, ns, "sync-token", authv1alpha1.TokenKey)
	if second == first || !fakeClock.Now().Before(exp) {
		t.Errorf("re-mint: same token or written after the old one expired")
	}
	verifyWithPolicy(t, policy, second)

	// The policy's keys rotate; the next re-mint uses the new key.
	testenv.Annotate(t, k8sClient, &authv1alpha1.TokenPolicy{}, policy, authv1alpha1.AnnotationRotate, "tok")
	waitFor(t, policy, "next key published", func(p *authv1alpha1.TokenPolicy) error {
		if p.Status.LastRotateRequest != "tok" {
			return fmt.Errorf("not yet")
		}
		return nil
	})
	fakeClock.Step(time.Hour)
	testenv.Poke(t, k8sClient, &authv1alpha1.TokenPolicy{}, policy)
	p := waitFor(t, policy, "next key active", func(p *authv1alpha1.TokenPolicy) error {
		if p.Status.Keys[0].State != authv1alpha1.KeyActive {
			return fmt.Errorf("keys %v", keyStates(p))
		}
		return nil
	})
	newKid := p.Status.ActiveKeyID
	// The token in the Secret stays valid (its key is retired, still
	// published); the next re-mint, at its refresh time, uses the new key.
	testenv.Eventually(t, "token re-minted after the policy changed", func() error {
		sa := getAccount(t, key)
		if !sa.Status.TokenRefreshAt.After(fakeClock.Now()) {
			return fmt.Errorf("refresh at %v is not after now %v", sa.Status.TokenRefreshAt, fakeClock.Now())
		}
		return nil
	})
	verifyWithPolicy(t, policy, secretData(t, ns, "sync-token", authv1alpha1.TokenKey))
	fakeClock.SetTime(getAccount(t, key).Status.TokenRefreshAt.Time)
	testenv.Poke(t, k8sClient, &authv1alpha1.ServiceAccount{}, key)
	waitAccount(t, key, "re-minted with the new key", func(sa *authv1alpha1.ServiceAccount) error {
		if kidOf(t, secretData(t, ns, "sync-token", authv1alpha1.TokenKey)) != newKid {
			return fmt.Errorf("token not signed by %s yet", newKid)
		}
		return nil
	})
	verifyWithPolicy(t, policy, secretData(t, ns, "sync-token", authv1alpha1.TokenKey))

	// Asking for permissions the roles do not grant is refused with a reason.
	sa = getAccount(t, key)
	testenv.Update(t, k8sClient, sa, func() { sa.Spec.TokenSecret.Permissions = []string{"admin:*"} })
	waitAccount(t, key, "stalled on a bad token request", func(sa *authv1alpha1.ServiceAccount) error {
		c := meta.FindStatusCondition(sa.Status.Conditions, authv1alpha1.ConditionReady)
		if c == nil || c.Status != metav1.ConditionFalse || c.Reason != authv1alpha1.ReasonInvalidSpec {
			return fmt.Errorf("Ready %+v", c)
		}
		return nil
	})
}

// TestDeletingAnAccountRemovesItsSecrets relies on the real garbage
// collector (kube-controller-manager) and the owner references.
func TestDeletingAnAccountRemovesItsSecrets(t *testing.T) {
	ns, policy := accountFixture(t)
	key := types.NamespacedName{Namespace: ns, Name: "temp"}
	sa := &authv1alpha1.ServiceAccount{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: key.Name},
		Spec:       authv1alpha1.ServiceAccountSpec{TokenPolicyRef: authv1alpha1.LocalRef{Name: policy.Name}, TokenSecret: &authv1alpha1.TokenSecretSpec{}},
	}
	if err := k8sClient.Create(context.Background(), sa); err != nil {
		t.Fatal(err)
	}
	waitAccount(t, key, "token minted", func(sa *authv1alpha1.ServiceAccount) error {
		if sa.Status.TokenSecretName == "" {
			return fmt.Errorf("no token Secret")
		}
		return nil
	})
	names := []string{"temp-credentials", "temp-client-verifier", "temp-token"}
	if err := k8sClient.Delete(context.Background(), sa); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, "owned Secrets garbage-collected", func() error {
		for _, n := range names {
			err := k8sClient.Get(context.Background(), types.NamespacedName{Namespace: ns, Name: n}, &corev1.Secret{})
			if !apierrors.IsNotFound(err) {
				return fmt.Errorf("Secret %s still exists (%v)", n, err)
			}
		}
		return nil
	})
}

// TestThousandServiceAccounts creates 1,000 accounts at once and waits for
// all to become Ready. It records how long that took; it asserts no timing.
func TestThousandServiceAccounts(t *testing.T) {
	ns, policy := accountFixture(t)
	createRole(t, ns, "reader", "orders:read")
	const n = 1000
	start := time.Now()
	errs := make(chan error, n)
	sem := make(chan struct{}, 16)
	for i := range n {
		sem <- struct{}{}
		go func() {
			defer func() { <-sem }()
			errs <- k8sClient.Create(context.Background(), &authv1alpha1.ServiceAccount{
				ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: fmt.Sprintf("client-%04d", i)},
				Spec:       authv1alpha1.ServiceAccountSpec{TokenPolicyRef: authv1alpha1.LocalRef{Name: policy.Name}, Roles: []string{"reader"}},
			})
		}()
	}
	for range n {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	created := time.Since(start)
	testenv.EventuallyFor(t, 5*time.Minute, "1,000 accounts Ready", func() error {
		var list authv1alpha1.ServiceAccountList
		if err := k8sClient.List(context.Background(), &list, client.InNamespace(ns)); err != nil {
			return err
		}
		readyN := 0
		for i := range list.Items {
			if ready(&list.Items[i]) == nil {
				readyN++
			}
		}
		if readyN != n {
			return fmt.Errorf("%d of %d accounts Ready", readyN, n)
		}
		return nil
	})
	t.Logf("1,000 ServiceAccounts: created in %s, all Ready %s after the first create", created.Round(time.Millisecond), time.Since(start).Round(time.Millisecond))
	testenv.Eventually(t, "the role counts 1,000 users", func() error {
		var r authv1alpha1.Role
		if err := k8sClient.Get(context.Background(), types.NamespacedName{Namespace: ns, Name: "reader"}, &r); err != nil {
			return err
		}
		if r.Status.ServiceAccountCount != n || len(r.Status.ServiceAccounts) != 100 {
			return fmt.Errorf("count %d, listed %d", r.Status.ServiceAccountCount, len(r.Status.ServiceAccounts))
		}
		return nil
	})
}

// verifyWithPolicy checks a token against the policy's published keys, as
// any verifier fetching its JWKS would.
func verifyWithPolicy(t *testing.T, policy types.NamespacedName, raw string) *token.Claims {
	t.Helper()
	p := getPolicy(t, policy)
	ks, err := keys.ParsePrivate([]byte(secretData(t, policy.Namespace, policy.Name+authv1alpha1.KeySecretSuffix, authv1alpha1.KeySetDataKey)))
	if err != nil {
		t.Fatal(err)
	}
	v := &token.Verifier{Issuer: p.Spec.Issuer, Audiences: p.Spec.Audiences, Algorithms: []jose.SignatureAlgorithm{jose.SignatureAlgorithm(p.Spec.Algorithm)},
		Keys: map[string]token.PublicKey{}, MaxTTL: p.Spec.AccessTokenTTL.Duration, Leeway: p.Spec.ClockSkew.Duration, Clock: fakeClock}
	for _, k := range ks {
		v.Keys[k.ID] = token.PublicKey{Algorithm: k.Algorithm, Key: k.Public()}
	}
	c, err := v.Verify(raw)
	if err != nil {
		t.Fatalf("the token Secret's token does not verify: %v", err)
	}
	return c
}

func kidOf(t *testing.T, raw string) string {
	t.Helper()
	jws, err := jose.ParseSignedCompact(raw, keys.Algorithms)
	if err != nil {
		t.Fatal(err)
	}
	return jws.Signatures[0].Header.KeyID
}
