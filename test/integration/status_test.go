package integration

import (
	"context"
	"fmt"
	"strings"
	"testing"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	authv1alpha1 "github.com/authframework/authframework/api/v1alpha1"
	"github.com/authframework/authframework/controllers"
	"github.com/authframework/authframework/test/testenv"
)

// readyIs checks Ready and, when cond is not Ready, that condition too, in
// one read of the object: both come from the same status patch.
func readyIs(conds []metav1.Condition, generation int64, status metav1.ConditionStatus, reason string) error {
	r := meta.FindStatusCondition(conds, authv1alpha1.ConditionReady)
	if r == nil || r.Status != status || r.Reason != reason || r.ObservedGeneration != generation {
		return fmt.Errorf("Ready %+v, want %s/%s at generation %d", r, status, reason, generation)
	}
	return nil
}

// refuseKeySecret makes the key Secret of policy in ns unwritable for
// everyone with a ValidatingAdmissionPolicy (built into kube-apiserver, so
// envtest needs no webhook server or second manager), and returns a
// function that removes it. It waits until the API server enforces it,
// probing with a dry run.
func refuseKeySecret(t *testing.T, ns, policy string) (remove func()) {
	t.Helper()
	ctx := context.Background()
	name := "refuse-key-secret-" + ns
	secret := policy + authv1alpha1.KeySecretSuffix
	vap := &admissionregistrationv1.ValidatingAdmissionPolicy{ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: admissionregistrationv1.ValidatingAdmissionPolicySpec{
			FailurePolicy: ptr.To(admissionregistrationv1.Fail),
			MatchConstraints: &admissionregistrationv1.MatchResources{ResourceRules: []admissionregistrationv1.NamedRuleWithOperations{{
				RuleWithOperations: admissionregistrationv1.RuleWithOperations{
					Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create, admissionregistrationv1.Update},
					Rule:       admissionregistrationv1.Rule{APIGroups: []string{""}, APIVersions: []string{"v1"}, Resources: []string{"secrets"}},
				}}}},
			Validations: []admissionregistrationv1.Validation{{Expression: fmt.Sprintf("object.metadata.name != %q", secret), Message: "the test refuses writes to the key Secret"}},
		}}
	binding := &admissionregistrationv1.ValidatingAdmissionPolicyBinding{ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: admissionregistrationv1.ValidatingAdmissionPolicyBindingSpec{PolicyName: name,
			ValidationActions: []admissionregistrationv1.ValidationAction{admissionregistrationv1.Deny},
			MatchResources: &admissionregistrationv1.MatchResources{NamespaceSelector: &metav1.LabelSelector{
				MatchLabels: map[string]string{corev1.LabelMetadataName: ns}}}}}
	for _, obj := range []client.Object{vap, binding} {
		if err := k8sClient.Create(ctx, obj); err != nil {
			t.Fatal(err)
		}
	}
	remove = func() {
		for _, obj := range []client.Object{binding, vap} {
			if err := k8sClient.Delete(ctx, obj); client.IgnoreNotFound(err) != nil {
				t.Error(err)
			}
		}
	}
	t.Cleanup(remove)
	testenv.Eventually(t, "the admission policy refuses the key Secret", func() error {
		probe := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: secret}}
		if err := k8sClient.Create(ctx, probe, client.DryRunAll); err == nil {
			return fmt.Errorf("a dry-run write was admitted")
		}
		return nil
	})
	return remove
}

// TestTokenPolicyKeySecretUnwritable: when the key Secret cannot be written,
// the reconcile that failed reports it (Ready False, KeySecretWriteFailed,
// naming the refusal), status lists no key the Secret lacks, a Warning is
// recorded, and the policy recovers by itself once writes are allowed: the
// failure is transient, returned and retried with backoff.
func TestTokenPolicyKeySecretUnwritable(t *testing.T) {
	ctx := context.Background()
	ns := newNamespace(t)
	key := types.NamespacedName{Namespace: ns, Name: "orders"}
	remove := refuseKeySecret(t, ns, key.Name)
	if err := k8sClient.Create(ctx, &authv1alpha1.TokenPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: key.Name},
		Spec: authv1alpha1.TokenPolicySpec{Issuer: "https://auth.example.com/issuers/" + ns + "/orders", Audiences: []string{"orders-api"}}}); err != nil {
		t.Fatal(err)
	}

	// One reconcile, run here: it returns the error for backoff, and its
	// deferred patch has already written the failure when it returns.
	var err error
	for i := 0; i < 10; i++ {
		if _, err = ctrls.TokenPolicy.Reconcile(ctx, ctrl.Request{NamespacedName: key}); !apierrors.IsConflict(err) {
			break // a conflict only means the manager's reconcile wrote first
		}
	}
	if err == nil || !strings.Contains(err.Error(), "the test refuses writes to the key Secret") {
		t.Fatalf("Reconcile returned %v, want the refusal", err)
	}
	p := getPolicy(t, key)
	if err := readyIs(p.Status.Conditions, p.Generation, metav1.ConditionFalse, authv1alpha1.ReasonKeySecretWriteFailed); err != nil {
		t.Fatal(err)
	}
	kr := meta.FindStatusCondition(p.Status.Conditions, authv1alpha1.ConditionKeysReady)
	if kr == nil || kr.Status != metav1.ConditionFalse || kr.Reason != authv1alpha1.ReasonKeySecretWriteFailed || !strings.Contains(kr.Message, key.Name+authv1alpha1.KeySecretSuffix) {
		t.Errorf("KeysReady %+v", kr)
	}
	if p.Status.ActiveKeyID != "" || len(p.Status.Keys) != 0 {
		t.Errorf("status lists keys the Secret does not hold: active %q, %d keys", p.Status.ActiveKeyID, len(p.Status.Keys))
	}
	testenv.Eventually(t, "KeySecretWriteFailed Warning event", func() error {
		reasons, err := eventReasons(ns, key.Name)
		if err != nil || !reasons[authv1alpha1.ReasonKeySecretWriteFailed] {
			return fmt.Errorf("events %v, %v", reasons, err)
		}
		return nil
	})

	// The cause goes; the controller's own retries bring it back.
	remove()
	waitFor(t, key, "Ready after writes are allowed again", func(p *authv1alpha1.TokenPolicy) error {
		if err := readyIs(p.Status.Conditions, p.Generation, metav1.ConditionTrue, authv1alpha1.ReasonReconciled); err != nil {
			return err
		}
		if p.Status.ActiveKeyID == "" || !meta.IsStatusConditionTrue(p.Status.Conditions, authv1alpha1.ConditionKeysReady) {
			return fmt.Errorf("active key %q, conditions %+v", p.Status.ActiveKeyID, p.Status.Conditions)
		}
		return nil
	})
	if s := secretData(t, ns, key.Name+authv1alpha1.KeySecretSuffix, authv1alpha1.KeySetDataKey); !strings.Contains(s, getPolicy(t, key).Status.ActiveKeyID) {
		t.Error("the key Secret does not hold the active key")
	}
}

// TestServiceAccountRoleDeleted: deleting a Role an account uses turns
// RolesResolved and Ready False (RoleNotFound) in the same status write;
// recreating it makes the account Ready again, with no change to it.
func TestServiceAccountRoleDeleted(t *testing.T) {
	ctx := context.Background()
	ns, policy := accountFixture(t)
	createRole(t, ns, "orders-reader", "orders:read")
	key := types.NamespacedName{Namespace: ns, Name: "billing"}
	if err := k8sClient.Create(ctx, &authv1alpha1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: key.Name},
		Spec: authv1alpha1.ServiceAccountSpec{TokenPolicyRef: authv1alpha1.LocalRef{Name: policy.Name}, Roles: []string{"orders-reader"}}}); err != nil {
		t.Fatal(err)
	}
	sa := waitAccount(t, key, "ready", ready)
	generation := sa.Generation

	if err := k8sClient.Delete(ctx, &authv1alpha1.Role{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "orders-reader"}}); err != nil {
		t.Fatal(err)
	}
	sa = waitAccount(t, key, "RolesResolved False", func(sa *authv1alpha1.ServiceAccount) error {
		c := meta.FindStatusCondition(sa.Status.Conditions, authv1alpha1.ConditionRolesResolved)
		if c == nil || c.Status != metav1.ConditionFalse || c.Reason != authv1alpha1.ReasonRoleNotFound {
			return fmt.Errorf("RolesResolved %+v", c)
		}
		return nil
	})
	if err := readyIs(sa.Status.Conditions, sa.Generation, metav1.ConditionFalse, authv1alpha1.ReasonRoleNotFound); err != nil {
		t.Errorf("in the status write that resolved the roles: %v", err)
	}
	if len(sa.Status.Permissions) != 0 {
		t.Errorf("permissions of a deleted role are still granted: %v", sa.Status.Permissions)
	}

	createRole(t, ns, "orders-reader", "orders:read")
	sa = waitAccount(t, key, "ready after the role is recreated", ready)
	if err := readyIs(sa.Status.Conditions, generation, metav1.ConditionTrue, authv1alpha1.ReasonReconciled); err != nil {
		t.Errorf("the account was changed or is not Ready: %v", err)
	}
}

// TestAuthServerClusterRoleMissing: a server ClusterRole the operator binds
// is deleted: PermissionsGranted and Ready turn False (ClusterRoleMissing)
// in the reconcile that sees it, with a Warning. ClusterRoles are not
// watched, so the controller waits: it looks again after
// ClusterRoleRecheck and is Ready again once the role exists, with nothing
// else changed.
func TestAuthServerClusterRoleMissing(t *testing.T) {
	ctx := context.Background()
	ns := newNamespace(t)
	key := types.NamespacedName{Namespace: ns, Name: "auth"}
	if err := k8sClient.Create(ctx, &authv1alpha1.AuthServer{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: key.Name},
		Spec: authv1alpha1.AuthServerSpec{Image: "ghcr.io/authframework/authframework:v1", Replicas: ptr.To[int32](1), WatchNamespaces: []string{ns}}}); err != nil {
		t.Fatal(err)
	}
	makeAvailable(t, ns, "auth-blue")
	testenv.Eventually(t, "Ready with its permissions granted", func() error {
		as := getAuthServer(t, key)
		if !meta.IsStatusConditionTrue(as.Status.Conditions, authv1alpha1.ConditionPermissionsGranted) {
			return fmt.Errorf("conditions %+v", as.Status.Conditions)
		}
		return readyIs(as.Status.Conditions, as.Generation, metav1.ConditionTrue, "Installed")
	})

	role := "authframework-server-revocations"
	if err := k8sClient.Delete(ctx, &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: role}}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { installServerRoles(t) })
	testenv.Poke(t, k8sClient, &authv1alpha1.AuthServer{}, key) // ClusterRoles are not watched; a real cluster would wait for the next check
	as := permissionsGranted(t, key, metav1.ConditionFalse, authv1alpha1.ReasonClusterRoleMissing)
	if err := readyIs(as.Status.Conditions, as.Generation, metav1.ConditionFalse, authv1alpha1.ReasonClusterRoleMissing); err != nil {
		t.Errorf("in the status write that found the role missing: %v", err)
	}
	if c := meta.FindStatusCondition(as.Status.Conditions, authv1alpha1.ConditionReady); c != nil && !strings.Contains(c.Message, role) {
		t.Errorf("Ready does not name the missing ClusterRole: %q", c.Message)
	}
	testenv.Eventually(t, "ClusterRoleMissing Warning event", func() error {
		reasons, err := eventReasons(ns, key.Name)
		if err != nil || !reasons[authv1alpha1.ReasonClusterRoleMissing] {
			return fmt.Errorf("events %v, %v", reasons, err)
		}
		return nil
	})

	installServerRoles(t)
	// No poke: the waiting reconcile looks again by itself.
	testenv.EventuallyFor(t, 3*controllers.ClusterRoleRecheck, "Ready again once the ClusterRole exists", func() error {
		as := getAuthServer(t, key)
		if !meta.IsStatusConditionTrue(as.Status.Conditions, authv1alpha1.ConditionPermissionsGranted) {
			return fmt.Errorf("PermissionsGranted %+v", meta.FindStatusCondition(as.Status.Conditions, authv1alpha1.ConditionPermissionsGranted))
		}
		return readyIs(as.Status.Conditions, as.Generation, metav1.ConditionTrue, "Installed")
	})
}
