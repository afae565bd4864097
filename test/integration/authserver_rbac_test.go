package integration

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	authv1alpha1 "github.com/authframework/authframework/api/v1alpha1"
	"github.com/authframework/authframework/test/testenv"
	"github.com/authframework/authframework/webhook/auth"
)

// installServerRoles creates the server ClusterRoles as config/rbac ships
// them, with the prefix config/default gives them.
func installServerRoles(t *testing.T) {
	t.Helper()
	if err := createServerRoles(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// createServerRoles is installServerRoles for the suite's start: a cluster
// the operator is installed in has them, and an AuthServer is not Ready
// without them. The suite's operator runs with token exchange enabled, so
// the tokenreviews ClusterRole of config/tokenexchange is among them.
func createServerRoles(ctx context.Context) error {
	for _, f := range [][]string{{"config", "rbac", "server_role.yaml"}, {"config", "tokenexchange", "server_tokenreview_role.yaml"}} {
		if err := createPrefixedRoles(ctx, testenv.Path(f...)); err != nil {
			return err
		}
	}
	return nil
}

func createPrefixedRoles(ctx context.Context, path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	dec := yaml.NewYAMLOrJSONDecoder(f, 4096)
	for {
		obj := &unstructured.Unstructured{}
		if err := dec.Decode(&obj.Object); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
		if len(obj.Object) == 0 {
			continue
		}
		obj.SetName("authframework-" + obj.GetName())
		if err := k8sClient.Create(ctx, obj); err != nil && !apierrors.IsAlreadyExists(err) {
			return err
		}
	}
}

func permissionsGranted(t *testing.T, key types.NamespacedName, want metav1.ConditionStatus, reason string) *authv1alpha1.AuthServer {
	t.Helper()
	var as authv1alpha1.AuthServer
	testenv.Eventually(t, fmt.Sprintf("PermissionsGranted %s/%s", want, reason), func() error {
		if err := k8sClient.Get(context.Background(), key, &as); err != nil {
			return err
		}
		c := meta.FindStatusCondition(as.Status.Conditions, authv1alpha1.ConditionPermissionsGranted)
		if c == nil || c.Status != want || c.Reason != reason {
			return fmt.Errorf("condition %+v", c)
		}
		return nil
	})
	return &as
}

// TestAuthServerPermissions: the operator binds each AuthServer's
// ServiceAccount to the server ClusterRoles, and those are enough for the
// real informer feed and revocation writer to run as that ServiceAccount,
// and no more. Cross-namespace reads are only for AuthServers in the
// trusted namespace; bindings outside the AuthServer's namespace go with it.
func TestAuthServerPermissions(t *testing.T) {
	ctx := context.Background()
	installServerRoles(t)
	if err := k8sClient.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: trustedNamespace}}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	team := newNamespace(t)
	if err := k8sClient.Create(ctx, &authv1alpha1.TokenPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: team, Name: "orders"},
		Spec: authv1alpha1.TokenPolicySpec{Issuer: "https://auth.example.com/orders", Audiences: []string{"orders-api"}}}); err != nil {
		t.Fatal(err)
	}
	newAuthServer := func(ns string, watch ...string) types.NamespacedName {
		if err := k8sClient.Create(ctx, &authv1alpha1.AuthServer{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "auth"},
			Spec: authv1alpha1.AuthServerSpec{Image: "ghcr.io/authframework/authframework:v1", Replicas: ptr.To[int32](1), WatchNamespaces: watch}}); err != nil {
			t.Fatal(err)
		}
		return types.NamespacedName{Namespace: ns, Name: "auth"}
	}

	// In the trusted namespace, watching everything: a ClusterRoleBinding,
	// the revocations RoleBinding, and the finalizer that cleans up.
	key := newAuthServer(trustedNamespace)
	as := permissionsGranted(t, key, metav1.ConditionTrue, "Granted")
	if !slices.Contains(as.Finalizers, authv1alpha1.FinalizerServerBindings) {
		t.Errorf("finalizers %v", as.Finalizers)
	}
	crbName := "authframework-server:" + trustedNamespace + ":auth"
	var crb rbacv1.ClusterRoleBinding
	if err := k8sClient.Get(ctx, types.NamespacedName{Name: crbName}, &crb); err != nil {
		t.Fatal(err)
	}
	if crb.RoleRef.Name != "authframework-server" || len(crb.Subjects) != 1 || crb.Subjects[0].Name != "auth" || crb.Subjects[0].Namespace != trustedNamespace {
		t.Errorf("ClusterRoleBinding %+v %+v", crb.RoleRef, crb.Subjects)
	}

	// The auth server's own code, as its ServiceAccount: the informer feed
	// syncs across namespaces and serves the team's policy, and a revocation
	// is written.
	saCfg := rest.CopyConfig(cfg)
	saCfg.Impersonate = rest.ImpersonationConfig{UserName: "system:serviceaccount:" + trustedNamespace + ":auth"}
	// StartAuthServer fails the test unless the feed syncs as the server's
	// ServiceAccount.
	fctx, stopServer := context.WithCancel(ctx)
	defer stopServer()
	srv := testenv.StartAuthServer(t, fctx, saCfg, scheme, auth.ProcessOptions{RevocationNamespace: trustedNamespace,
		Server: auth.Options{Clock: fakeClock}})
	revs := srv.Revocations
	saClient, err := client.New(saCfg, client.Options{Scheme: scheme})
	if err != nil {
		t.Fatal(err)
	}
	if err := revs.Revoke(ctx, "rbac-test-jti", fakeClock.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, "the revocation is written as the server's ServiceAccount", func() error {
		var cms corev1.ConfigMapList
		if err := k8sClient.List(ctx, &cms, client.InNamespace(trustedNamespace), client.MatchingLabels{authv1alpha1.LabelRevocations: "true"}); err != nil {
			return err
		}
		for _, cm := range cms.Items {
			if _, ok := cm.Data["rbac-test-jti"]; ok {
				return nil
			}
		}
		return fmt.Errorf("not in %d shards", len(cms.Items))
	})
	stopServer()
	// And nothing beyond: no writes to policies, no ConfigMaps elsewhere.
	var p authv1alpha1.TokenPolicy
	if err := saClient.Get(ctx, types.NamespacedName{Namespace: team, Name: "orders"}, &p); err != nil {
		t.Fatalf("reading a policy in another namespace: %v", err)
	}
	p.Spec.Audiences = append(p.Spec.Audiences, "more")
	if err := saClient.Update(ctx, &p); !apierrors.IsForbidden(err) {
		t.Errorf("the server's ServiceAccount could update a policy: %v", err)
	}
	if err := saClient.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: team, Name: "x"}}); !apierrors.IsForbidden(err) {
		t.Errorf("the server's ServiceAccount could create a ConfigMap in %s: %v", team, err)
	}
	if err := saClient.List(ctx, &corev1.PodList{}); !apierrors.IsForbidden(err) {
		t.Errorf("the server's ServiceAccount could list pods: %v", err)
	}

	// Narrowed to the team's namespace: a RoleBinding there, the
	// ClusterRoleBinding is gone.
	testenv.Update(t, k8sClient, as, func() { as.Spec.WatchNamespaces = []string{team} })
	testenv.Eventually(t, "the ClusterRoleBinding is replaced by a RoleBinding in the team's namespace", func() error {
		if err := k8sClient.Get(ctx, types.NamespacedName{Name: crbName}, &rbacv1.ClusterRoleBinding{}); !apierrors.IsNotFound(err) {
			return fmt.Errorf("ClusterRoleBinding: %v", err)
		}
		return k8sClient.Get(ctx, types.NamespacedName{Namespace: team, Name: crbName}, &rbacv1.RoleBinding{})
	})

	// Deleted: the binding in the other namespace goes too, then the
	// AuthServer.
	if err := k8sClient.Delete(ctx, as); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, "the AuthServer and its binding in the team's namespace are gone", func() error {
		if err := k8sClient.Get(ctx, types.NamespacedName{Namespace: team, Name: crbName}, &rbacv1.RoleBinding{}); !apierrors.IsNotFound(err) {
			return fmt.Errorf("RoleBinding: %v", err)
		}
		if err := k8sClient.Get(ctx, key, &authv1alpha1.AuthServer{}); !apierrors.IsNotFound(err) {
			return fmt.Errorf("AuthServer: %v", err)
		}
		return nil
	})

	// Outside the trusted namespace an AuthServer may read only its own
	// namespace: it gets that, no finalizer, and status says why not more.
	key = newAuthServer(team)
	as = permissionsGranted(t, key, metav1.ConditionFalse, "CrossNamespaceNotAllowed")
	if len(as.Finalizers) != 0 {
		t.Errorf("finalizers %v on an AuthServer with bindings only in its namespace", as.Finalizers)
	}
	var own rbacv1.RoleBinding
	if err := k8sClient.Get(ctx, types.NamespacedName{Namespace: team, Name: "authframework-server:" + team + ":auth"}, &own); err != nil {
		t.Fatal(err)
	}
	if !metav1.IsControlledBy(&own, as) {
		t.Errorf("the RoleBinding in the AuthServer's namespace is not owned by it: %v", own.OwnerReferences)
	}
	if err := k8sClient.Get(ctx, types.NamespacedName{Name: "authframework-server:" + team + ":auth"}, &rbacv1.ClusterRoleBinding{}); !apierrors.IsNotFound(err) {
		t.Errorf("an untrusted AuthServer got a ClusterRoleBinding: %v", err)
	}
	testenv.Update(t, k8sClient, as, func() { as.Spec.WatchNamespaces = []string{team} })
	permissionsGranted(t, key, metav1.ConditionTrue, "Granted")
}
