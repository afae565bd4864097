package integration

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	authv1alpha1 "github.com/authframework/authframework/api/v1alpha1"
	"github.com/authframework/authframework/test/testenv"
)

// kubernetesState is an account's status.kubernetesServiceAccounts as
// "ns/name=State[+also,...]" and its KubernetesServiceAccountsResolved
// reason, once reconciled for its generation.
func kubernetesState(sa *authv1alpha1.ServiceAccount) (entries []string, reason string, err error) {
	c := meta.FindStatusCondition(sa.Status.Conditions, authv1alpha1.ConditionKubernetesServiceAccountsResolved)
	if c == nil || c.ObservedGeneration != sa.Generation {
		return nil, "", fmt.Errorf("no current %s condition: %+v", authv1alpha1.ConditionKubernetesServiceAccountsResolved, c)
	}
	for _, e := range sa.Status.KubernetesServiceAccounts {
		s := e.Namespace + "/" + e.Name + "=" + string(e.State)
		if len(e.AlsoListedBy) > 0 {
			s += "+" + strings.Join(e.AlsoListedBy, ",")
		}
		entries = append(entries, s)
	}
	return entries, c.Reason, nil
}

func waitKubernetesState(t *testing.T, key types.NamespacedName, what, wantReason string, want ...string) *authv1alpha1.ServiceAccount {
	t.Helper()
	// Status lists them sorted by namespace/name; the namespaces are
	// generated, so the order to expect is found here.
	want = slices.Sorted(slices.Values(want))
	return waitAccount(t, key, what, func(sa *authv1alpha1.ServiceAccount) error {
		entries, reason, err := kubernetesState(sa)
		if err != nil {
			return err
		}
		if reason != wantReason || !slices.Equal(entries, want) {
			return fmt.Errorf("%s %v, want %s %v", reason, entries, wantReason, want)
		}
		return nil
	})
}

func createKubernetesServiceAccount(t *testing.T, ns, name string) {
	t.Helper()
	if err := k8sClient.Create(context.Background(), &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}); err != nil {
		t.Fatal(err)
	}
}

// TestKubernetesServiceAccountsStatus: an account's status says which
// Kubernetes service accounts map to it; one that does not exist yet is a
// warning that clears when it is created, and one listed by two accounts
// is a conflict on both that clears when one lets go. None of it keeps the
// account from being Ready.
// consent annotates the Kubernetes service account ns/name with its
// namespace's consent to token exchange by the accounts named.
func consent(t *testing.T, ns, name, accounts string) {
	t.Helper()
	ksa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}
	testenv.Update(t, k8sClient, ksa, func() {
		if ksa.Annotations == nil {
			ksa.Annotations = map[string]string{}
		}
		ksa.Annotations[authv1alpha1.AnnotationTokenExchangeFor] = accounts
	})
}

func TestKubernetesServiceAccountsStatus(t *testing.T) {
	ctx := context.Background()
	ns, policy := accountFixture(t)
	batch := newNamespace(t)
	createKubernetesServiceAccount(t, ns, "api")
	sync := types.NamespacedName{Namespace: ns, Name: "sync"}
	if err := k8sClient.Create(ctx, &authv1alpha1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: sync.Name},
		Spec: authv1alpha1.ServiceAccountSpec{TokenPolicyRef: authv1alpha1.LocalRef{Name: policy.Name},
			KubernetesServiceAccounts: []authv1alpha1.KubernetesServiceAccountRef{{Name: "api"}, {Namespace: batch, Name: "worker"}}}}); err != nil {
		t.Fatal(err)
	}
	sa := waitKubernetesState(t, sync, "worker missing", authv1alpha1.ReasonKubernetesServiceAccountNotFound,
		batch+"/worker=NotFound", ns+"/api=Mapped")
	if err := ready(sa); err != nil {
		t.Errorf("a missing Kubernetes service account kept the account from Ready: %v", err)
	}
	c := meta.FindStatusCondition(sa.Status.Conditions, authv1alpha1.ConditionKubernetesServiceAccountsResolved)
	if c.Status != metav1.ConditionFalse || !strings.Contains(c.Message, batch+"/worker") {
		t.Errorf("condition %+v", c)
	}
	testenv.Eventually(t, "NotFound Warning event", func() error {
		reasons, err := eventReasons(ns, sync.Name)
		if err != nil || !reasons[authv1alpha1.ReasonKubernetesServiceAccountNotFound] {
			return fmt.Errorf("events %v, %v", reasons, err)
		}
		return nil
	})

	// Created later: the watch on core ServiceAccounts brings the account
	// back without any change to it — as NotPermitted, for it is another
	// namespace's, which has not consented.
	createKubernetesServiceAccount(t, batch, "worker")
	waitKubernetesState(t, sync, "worker created", authv1alpha1.ReasonKubernetesServiceAccountNotPermitted, batch+"/worker=NotPermitted", ns+"/api=Mapped")
	// Its namespace consents with the annotation: Mapped.
	consent(t, batch, "worker", sync.String())
	waitKubernetesState(t, sync, "worker consented", authv1alpha1.ReasonKubernetesServiceAccountsMapped, batch+"/worker=Mapped", ns+"/api=Mapped")

	// An account of the worker's own namespace lists it too: both show the
	// conflict and name each other.
	other := types.NamespacedName{Namespace: batch, Name: "other"}
	if err := k8sClient.Create(ctx, &authv1alpha1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: batch, Name: other.Name},
		Spec: authv1alpha1.ServiceAccountSpec{TokenPolicyRef: authv1alpha1.LocalRef{Name: "none"},
			KubernetesServiceAccounts: []authv1alpha1.KubernetesServiceAccountRef{{Name: "worker"}}}}); err != nil {
		t.Fatal(err)
	}
	waitKubernetesState(t, other, "conflict on the new account", authv1alpha1.ReasonKubernetesServiceAccountConflict, batch+"/worker=Conflict+"+ns+"/sync")
	sa = waitKubernetesState(t, sync, "conflict on the first account", authv1alpha1.ReasonKubernetesServiceAccountConflict,
		batch+"/worker=Conflict+"+batch+"/other", ns+"/api=Mapped")
	if err := ready(sa); err != nil {
		t.Errorf("a conflict kept the account from Ready: %v", err)
	}
	testenv.Eventually(t, "Conflict Warning events on both", func() error {
		for _, key := range []types.NamespacedName{sync, other} {
			reasons, err := eventReasons(key.Namespace, key.Name)
			if err != nil || !reasons[authv1alpha1.ReasonKubernetesServiceAccountConflict] {
				return fmt.Errorf("%s: events %v, %v", key, reasons, err)
			}
		}
		return nil
	})

	// The other lets go (a spec change): the first is clear again.
	o := getAccount(t, other)
	testenv.Update(t, k8sClient, o, func() { o.Spec.KubernetesServiceAccounts = []authv1alpha1.KubernetesServiceAccountRef{{Name: "cron"}} })
	waitKubernetesState(t, sync, "conflict cleared by a spec change", authv1alpha1.ReasonKubernetesServiceAccountsMapped, batch+"/worker=Mapped", ns+"/api=Mapped")

	// The other lists ns/api, without ns's consent: it maps nothing, and
	// the first account, in api's own namespace, sees no conflict — another
	// tenant cannot switch off its exchanges.
	o = getAccount(t, other)
	testenv.Update(t, k8sClient, o, func() {
		o.Spec.KubernetesServiceAccounts = []authv1alpha1.KubernetesServiceAccountRef{{Namespace: ns, Name: "api"}}
	})
	waitKubernetesState(t, other, "api not permitted", authv1alpha1.ReasonKubernetesServiceAccountNotPermitted, ns+"/api=NotPermitted")
	waitKubernetesState(t, sync, "no conflict without consent", authv1alpha1.ReasonKubernetesServiceAccountsMapped, batch+"/worker=Mapped", ns+"/api=Mapped")
	// With ns's consent it counts, and conflicts; deleting the other clears it.
	consent(t, ns, "api", other.String())
	waitKubernetesState(t, sync, "conflict on api", authv1alpha1.ReasonKubernetesServiceAccountConflict, batch+"/worker=Mapped", ns+"/api=Conflict+"+batch+"/other")
	if err := k8sClient.Delete(ctx, o); err != nil {
		t.Fatal(err)
	}
	waitKubernetesState(t, sync, "conflict cleared by deletion", authv1alpha1.ReasonKubernetesServiceAccountsMapped, batch+"/worker=Mapped", ns+"/api=Mapped")

	// A Kubernetes service account deleted: NotFound again.
	if err := k8sClient.Delete(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "api"}}); err != nil {
		t.Fatal(err)
	}
	waitKubernetesState(t, sync, "api deleted", authv1alpha1.ReasonKubernetesServiceAccountNotFound, batch+"/worker=Mapped", ns+"/api=NotFound")

	// Nothing listed: no status, no condition.
	s := getAccount(t, sync)
	testenv.Update(t, k8sClient, s, func() { s.Spec.KubernetesServiceAccounts = nil })
	waitAccount(t, sync, "nothing listed", func(sa *authv1alpha1.ServiceAccount) error {
		if sa.Status.ObservedGeneration != sa.Generation || len(sa.Status.KubernetesServiceAccounts) > 0 ||
			meta.FindStatusCondition(sa.Status.Conditions, authv1alpha1.ConditionKubernetesServiceAccountsResolved) != nil {
			return fmt.Errorf("status %+v", sa.Status)
		}
		return nil
	})
}

// TestKubernetesServiceAccountsAdmission: `kubectl apply` prints the
// webhook's warnings for a Kubernetes service account that does not exist
// or is listed by another account, and refuses one listed twice.
func TestKubernetesServiceAccountsAdmission(t *testing.T) {
	ns, policy := accountFixture(t)
	createKubernetesServiceAccount(t, ns, "stock-sync")
	manifest := func(name string, refs ...string) string {
		return fmt.Sprintf("apiVersion: auth.authframework.dev/v1alpha1\nkind: ServiceAccount\nmetadata:\n  name: %s\n  namespace: %s\nspec:\n  tokenPolicyRef: {name: %s}\n  kubernetesServiceAccounts:\n%s",
			name, ns, policy.Name, "    - "+strings.Join(refs, "\n    - ")+"\n")
	}

	out, err := kubectl.Try(manifest("first", "{name: stock-sync}", "{name: not-yet}"), "apply", "-f", "-")
	if err != nil {
		t.Fatalf("kubectl apply: %v\n%s", err, out)
	}
	if !strings.Contains(out, "Warning: spec.kubernetesServiceAccounts[1]: Kubernetes ServiceAccount "+ns+"/not-yet does not exist") {
		t.Errorf("no warning for the missing Kubernetes service account:\n%s", out)
	}
	if strings.Contains(out, "stock-sync") && strings.Contains(out, "Warning: spec.kubernetesServiceAccounts[0]") {
		t.Errorf("a warning for an existing, unshared service account:\n%s", out)
	}
	// The webhook reads the other accounts from the manager's cache: wait
	// until the controller has seen the first.
	waitKubernetesState(t, types.NamespacedName{Namespace: ns, Name: "first"}, "first reconciled", authv1alpha1.ReasonKubernetesServiceAccountNotFound,
		ns+"/not-yet=NotFound", ns+"/stock-sync=Mapped")

	out, err = kubectl.Try(manifest("second", "{namespace: "+ns+", name: stock-sync}"), "apply", "-f", "-")
	if err != nil {
		t.Fatalf("kubectl apply: %v\n%s", err, out)
	}
	if !strings.Contains(out, "Warning: spec.kubernetesServiceAccounts[0]: Kubernetes ServiceAccount "+ns+"/stock-sync is already listed by ServiceAccount "+ns+"/first") {
		t.Errorf("no warning for the service account listed by another account:\n%s", out)
	}

	// Listed twice in one list: the same name once without and once with
	// its (default) namespace is refused by the webhook, the same entry
	// twice already by the schema.
	out, err = kubectl.Try(manifest("third", "{name: stock-sync}", "{namespace: "+ns+", name: stock-sync}"), "apply", "-f", "-")
	if err == nil || !strings.Contains(out, `spec.kubernetesServiceAccounts[1]: Duplicate value: "`+ns+`/stock-sync"`) {
		t.Errorf("a Kubernetes service account listed twice (namespace defaulted): %v\n%s", err, out)
	}
	out, err = kubectl.Try(manifest("third", "{name: stock-sync}", "{name: stock-sync}"), "apply", "-f", "-")
	if err == nil || !strings.Contains(out, "each Kubernetes service account may be listed once") {
		t.Errorf("the same entry twice: %v\n%s", err, out)
	}
}

// TestAuthServerKubernetesIdentity: an AuthServer with spec.tokenExchange
// has its pods bound to the tokenreviews ClusterRole, and they may create
// TokenReviews; the flag reaches the pods. Without it, neither. The
// /tokenreview webhook mounts its Secrets and is exposed on the Services.
func TestAuthServerKubernetesIdentity(t *testing.T) {
	ctx := context.Background()
	ns := newNamespace(t)
	create := func(name string, spec func(*authv1alpha1.AuthServerSpec)) types.NamespacedName {
		as := &authv1alpha1.AuthServer{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
			Spec: authv1alpha1.AuthServerSpec{Image: "ghcr.io/authframework/authframework:v1", Replicas: ptr.To[int32](1), WatchNamespaces: []string{ns}}}
		spec(&as.Spec)
		if err := k8sClient.Create(ctx, as); err != nil {
			t.Fatal(err)
		}
		return client.ObjectKeyFromObject(as)
	}
	exchanging := create("exchange", func(s *authv1alpha1.AuthServerSpec) {
		s.TokenExchange = &authv1alpha1.TokenExchangeSpec{}
		s.TokenReviewWebhook = &authv1alpha1.TokenReviewWebhookSpec{TLSSecretName: "exchange-tls",
			ClientCA: authv1alpha1.CABundleSource{ConfigMap: &authv1alpha1.KeyRef{Name: "apiserver-client-ca"}}}
	})
	plain := create("plain", func(*authv1alpha1.AuthServerSpec) {})

	as := permissionsGranted(t, exchanging, metav1.ConditionTrue, authv1alpha1.ReasonGranted)
	if c := meta.FindStatusCondition(as.Status.Conditions, authv1alpha1.ConditionPermissionsGranted); !strings.Contains(c.Message, "creates TokenReviews") {
		t.Errorf("PermissionsGranted does not mention TokenReviews: %s", c.Message)
	}
	if as.Spec.TokenExchange.Audience != "authframework" || as.Spec.TokenReviewWebhook.Port != 8443 || as.Spec.TokenReviewWebhook.ClientCA.ConfigMap.Key != "ca.crt" {
		t.Errorf("defaults not applied: %+v %+v", as.Spec.TokenExchange, as.Spec.TokenReviewWebhook)
	}
	crbName := "authframework-server-tokenreview:" + ns + ":exchange"
	var crb rbacv1.ClusterRoleBinding
	if err := k8sClient.Get(ctx, types.NamespacedName{Name: crbName}, &crb); err != nil {
		t.Fatal(err)
	}
	if crb.RoleRef.Name != "authframework-server-tokenreview" || len(crb.Subjects) != 1 || crb.Subjects[0].Namespace != ns || crb.Subjects[0].Name != "exchange" {
		t.Errorf("ClusterRoleBinding %+v %+v", crb.RoleRef, crb.Subjects)
	}
	permissionsGranted(t, plain, metav1.ConditionTrue, authv1alpha1.ReasonGranted)
	if err := k8sClient.Get(ctx, types.NamespacedName{Name: "authframework-server-tokenreview:" + ns + ":plain"}, &rbacv1.ClusterRoleBinding{}); !apierrors.IsNotFound(err) {
		t.Errorf("an AuthServer without tokenExchange was bound to tokenreviews: %v", err)
	}

	// What the bindings mean to the API server: the exchanging pods may
	// create TokenReviews, the others may not.
	review := func(sa string) error {
		c := rest.CopyConfig(cfg)
		c.Impersonate = rest.ImpersonationConfig{UserName: "system:serviceaccount:" + ns + ":" + sa}
		cl, err := client.New(c, client.Options{Scheme: scheme})
		if err != nil {
			t.Fatal(err)
		}
		return cl.Create(ctx, &authenticationv1.TokenReview{Spec: authenticationv1.TokenReviewSpec{Token: "not-a-token", Audiences: []string{"authframework"}}})
	}
	if err := review("exchange"); err != nil {
		t.Errorf("the exchanging AuthServer's pods cannot create TokenReviews: %v", err)
	}
	if err := review("plain"); !apierrors.IsForbidden(err) {
		t.Errorf("an AuthServer without tokenExchange can create TokenReviews: %v", err)
	}

	// The pods: flags, mounts and ports; the Services expose 443.
	deployment := func(key types.NamespacedName) *appsv1.Deployment {
		var d appsv1.Deployment
		testenv.Eventually(t, "Deployment of "+key.Name, func() error {
			return k8sClient.Get(ctx, types.NamespacedName{Namespace: ns, Name: key.Name + "-blue"}, &d)
		})
		return &d
	}
	c := deployment(exchanging).Spec.Template.Spec.Containers[0]
	for _, want := range []string{"--token-exchange-audience=authframework", "--tokenreview-listen=:8443", "--tokenreview-client-ca-file=/etc/authframework/tokenreview/client-ca/ca.crt"} {
		if !slices.Contains(c.Args, want) {
			t.Errorf("args %v lack %s", c.Args, want)
		}
	}
	if len(c.VolumeMounts) != 2 || !slices.ContainsFunc(c.Ports, func(p corev1.ContainerPort) bool { return p.Name == "tokenreview" && p.ContainerPort == 8443 }) {
		t.Errorf("mounts %+v ports %+v", c.VolumeMounts, c.Ports)
	}
	if args := strings.Join(deployment(plain).Spec.Template.Spec.Containers[0].Args, " "); strings.Contains(args, "--token-exchange") || strings.Contains(args, "--tokenreview") {
		t.Errorf("an AuthServer without tokenExchange got its flags: %s", args)
	}
	for _, name := range []string{"exchange", "exchange-preview"} {
		testenv.Eventually(t, "Service "+name+" exposes /tokenreview", func() error {
			var svc corev1.Service
			if err := k8sClient.Get(ctx, types.NamespacedName{Namespace: ns, Name: name}, &svc); err != nil {
				return err
			}
			if !slices.ContainsFunc(svc.Spec.Ports, func(p corev1.ServicePort) bool { return p.Name == "tokenreview" && p.Port == 443 }) {
				return fmt.Errorf("ports %+v", svc.Spec.Ports)
			}
			return nil
		})
	}

	// Token exchange switched off: the binding goes, and with it the
	// finalizer it needed (it was the only binding outside the namespace).
	a := getAuthServer(t, exchanging)
	testenv.Update(t, k8sClient, a, func() { a.Spec.TokenExchange = nil })
	testenv.Eventually(t, "tokenreviews binding removed", func() error {
		if err := k8sClient.Get(ctx, types.NamespacedName{Name: crbName}, &rbacv1.ClusterRoleBinding{}); !apierrors.IsNotFound(err) {
			return fmt.Errorf("still there: %v", err)
		}
		if a := getAuthServer(t, exchanging); slices.Contains(a.Finalizers, authv1alpha1.FinalizerServerBindings) {
			return fmt.Errorf("finalizers %v", a.Finalizers)
		}
		return nil
	})
}
