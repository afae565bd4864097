package integration

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"

	authv1alpha1 "github.com/authframework/authframework/api/v1alpha1"
	"github.com/authframework/authframework/controllers"
	"github.com/authframework/authframework/test/testenv"
)

// makeAvailable plays the Deployment controller, which envtest does not run:
// every pod of the Deployment is ready.
func makeAvailable(t *testing.T, ns, name string) {
	t.Helper()
	testenv.Eventually(t, "deployment "+name+" exists", func() error {
		var d appsv1.Deployment
		if err := k8sClient.Get(context.Background(), types.NamespacedName{Namespace: ns, Name: name}, &d); err != nil {
			return err
		}
		n := ptr.Deref(d.Spec.Replicas, 1)
		d.Status.Replicas, d.Status.ReadyReplicas, d.Status.AvailableReplicas, d.Status.UpdatedReplicas = n, n, n, n
		d.Status.ObservedGeneration = d.Generation
		return k8sClient.Status().Update(context.Background(), &d)
	})
}

func getAuthServer(t *testing.T, key types.NamespacedName) *authv1alpha1.AuthServer {
	t.Helper()
	var as authv1alpha1.AuthServer
	if err := k8sClient.Get(context.Background(), key, &as); err != nil {
		t.Fatal(err)
	}
	return &as
}

func waitPhase(t *testing.T, key types.NamespacedName, phase authv1alpha1.RolloutPhase) *authv1alpha1.AuthServer {
	t.Helper()
	var as *authv1alpha1.AuthServer
	testenv.Eventually(t, "phase "+string(phase), func() error {
		as = getAuthServer(t, key)
		if as.Status.Phase != phase {
			return fmt.Errorf("phase %s (%s)", as.Status.Phase, as.Status.PhaseReason)
		}
		return nil
	})
	return as
}

func deploymentReplicas(t *testing.T, ns, name string) int32 {
	t.Helper()
	var d appsv1.Deployment
	if err := k8sClient.Get(context.Background(), types.NamespacedName{Namespace: ns, Name: name}, &d); err != nil {
		t.Fatal(err)
	}
	return ptr.Deref(d.Spec.Replicas, 1)
}

func activeSelector(t *testing.T, ns, name string) string {
	t.Helper()
	var s corev1.Service
	if err := k8sClient.Get(context.Background(), types.NamespacedName{Namespace: ns, Name: name}, &s); err != nil {
		t.Fatal(err)
	}
	return s.Spec.Selector[controllers.LabelColor]
}

// colorsOnLoopback starts a namespace with a policy and an account to mint
// smoke-test tokens for, and two real auth server processes standing in for
// the blue and green pods of the AuthServer "auth" there.
func colorsOnLoopback(t *testing.T, ctx context.Context) (ns string, key types.NamespacedName) {
	t.Helper()
	ns = newNamespace(t)
	blue := startReplica(t, ctx, ns)
	green := startReplica(t, ctx, ns)
	if err := k8sClient.Create(ctx, &authv1alpha1.TokenPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "orders"},
		Spec: authv1alpha1.TokenPolicySpec{Issuer: blue.url + "/issuers/" + ns + "/orders", Audiences: []string{"orders-api"}}}); err != nil {
		t.Fatal(err)
	}
	createRole(t, ns, "reader", "orders:read")
	if err := k8sClient.Create(ctx, &authv1alpha1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "probe"},
		Spec: authv1alpha1.ServiceAccountSpec{TokenPolicyRef: authv1alpha1.LocalRef{Name: "orders"}, Roles: []string{"reader"}}}); err != nil {
		t.Fatal(err)
	}
	waitAccount(t, types.NamespacedName{Namespace: ns, Name: "probe"}, "probe account ready", ready)
	key = types.NamespacedName{Namespace: ns, Name: "auth"}
	colorEndpoints.Set(key, authv1alpha1.Blue, blue.url)
	colorEndpoints.Set(key, authv1alpha1.Green, green.url)
	return ns, key
}

// TestAuthServerBlueGreen runs the AuthServer controller against the real
// API server, playing only the Deployment controller; the smoke tests and the
// analysis talk to real auth server processes on loopback standing in for
// each color's pods.
func TestAuthServerBlueGreen(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ns, key := colorsOnLoopback(t, ctx)
	if err := k8sClient.Create(ctx, &authv1alpha1.AuthServer{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "auth"}, Spec: authv1alpha1.AuthServerSpec{
		Image: "ghcr.io/authframework/authframework:v1", Replicas: ptr.To[int32](2),
		Rollout: authv1alpha1.RolloutSpec{
			Analysis:       authv1alpha1.AnalysisSpec{BakeTime: metav1.Duration{Duration: time.Minute}},
			ScaleDownDelay: metav1.Duration{Duration: 90 * time.Second},
		}}}); err != nil {
		t.Fatal(err)
	}

	// Install: blue, both Services, a PDB.
	makeAvailable(t, ns, "auth-blue")
	as := waitPhase(t, key, authv1alpha1.PhaseStable)
	if as.Status.ActiveColor != authv1alpha1.Blue || activeSelector(t, ns, "auth") != "blue" || activeSelector(t, ns, "auth-preview") != "green" {
		t.Fatalf("installed: %+v", as.Status)
	}
	var budget policyv1.PodDisruptionBudget
	if err := k8sClient.Get(ctx, key, &budget); err != nil || budget.Spec.Selector.MatchLabels[controllers.LabelColor] != "blue" {
		t.Errorf("PDB %+v %v", budget.Spec, err)
	}

	// A new image rolls out to green at blue's size, is smoke-tested against
	// the real server standing in for green, and takes the traffic.
	testenv.Update(t, k8sClient, as, func() { as.Spec.Image = "ghcr.io/authframework/authframework:v2" })
	waitPhase(t, key, authv1alpha1.PhaseDeploying)
	if got := deploymentReplicas(t, ns, "auth-green"); got != 2 {
		t.Errorf("green starts with %d pods, want blue's 2", got)
	}
	makeAvailable(t, ns, "auth-green")
	as = waitPhase(t, key, authv1alpha1.PhaseAnalysing)
	if as.Status.ActiveColor != authv1alpha1.Green || activeSelector(t, ns, "auth") != "green" {
		t.Fatalf("promoted: %+v", as.Status)
	}
	if deploymentReplicas(t, ns, "auth-blue") != 2 {
		t.Error("blue must keep its pods during analysis for an instant rollback")
	}
	fakeClock.Step(time.Minute)
	testenv.Poke(t, k8sClient, &authv1alpha1.AuthServer{}, key)
	waitPhase(t, key, authv1alpha1.PhaseScalingDown)
	fakeClock.Step(90 * time.Second)
	testenv.Poke(t, k8sClient, &authv1alpha1.AuthServer{}, key)
	as = waitPhase(t, key, authv1alpha1.PhaseStable)
	if deploymentReplicas(t, ns, "auth-blue") != 0 || as.Status.ActiveTemplateHash != as.Status.DesiredTemplateHash {
		t.Errorf("after the rollout blue must be scaled to zero: %d pods, %+v", deploymentReplicas(t, ns, "auth-blue"), as.Status)
	}
	makeAvailable(t, ns, "auth-blue") // the Deployment controller's view: no pods

	// A release that accepts forged tokens fails its smoke test: traffic
	// stays on green and the status says why.
	broken := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusOK) }))
	defer broken.Close()
	colorEndpoints.Set(key, authv1alpha1.Blue, broken.URL)
	testenv.Update(t, k8sClient, as, func() { as.Spec.Image = "ghcr.io/authframework/authframework:v3-broken" })
	waitPhase(t, key, authv1alpha1.PhaseDeploying)
	makeAvailable(t, ns, "auth-blue")
	as = waitPhase(t, key, authv1alpha1.PhaseRolledBack)
	if as.Status.PhaseReason != "SmokeTestFailed" || as.Status.ActiveColor != authv1alpha1.Green || activeSelector(t, ns, "auth") != "green" {
		t.Errorf("rolled back: %+v", as.Status)
	}
	if deploymentReplicas(t, ns, "auth-blue") != 0 {
		t.Error("the failed color must scale down")
	}
	testenv.Eventually(t, "rollback event", func() error {
		reasons, err := eventReasons(ns, "auth")
		if err != nil || !reasons["SmokeTestFailed"] || !reasons["Promoted"] {
			return fmt.Errorf("events %v %v", reasons, err)
		}
		return nil
	})
}

// setDeployment plays the HPA and the Deployment controller: spec.replicas
// (when replicas > 0) and how many pods are available.
func setDeployment(t *testing.T, ns, name string, replicas, available int32) {
	t.Helper()
	testenv.Eventually(t, "deployment "+name+" updated", func() error {
		var d appsv1.Deployment
		if err := k8sClient.Get(context.Background(), types.NamespacedName{Namespace: ns, Name: name}, &d); err != nil {
			return err
		}
		if replicas > 0 && ptr.Deref(d.Spec.Replicas, 1) != replicas {
			d.Spec.Replicas = ptr.To(replicas)
			if err := k8sClient.Update(context.Background(), &d); err != nil {
				return err
			}
		}
		// During a scale-down the pods being removed still count.
		n := max(ptr.Deref(d.Spec.Replicas, 1), available)
		d.Status.Replicas, d.Status.UpdatedReplicas = n, n
		d.Status.ReadyReplicas, d.Status.AvailableReplicas, d.Status.UnavailableReplicas = available, available, n-available
		d.Status.ObservedGeneration = d.Generation
		return k8sClient.Status().Update(context.Background(), &d)
	})
}

// waitHealth waits until the AuthServer reports replicas/available and
// returns it; then checks its phase and Ready and Available conditions.
func waitHealth(t *testing.T, key types.NamespacedName, replicas, available int32, phase authv1alpha1.RolloutPhase, ready bool, availableReason string) {
	t.Helper()
	testenv.Eventually(t, fmt.Sprintf("%d of %d available, %s", available, replicas, phase), func() error {
		as := getAuthServer(t, key)
		st := as.Status
		if st.Replicas != replicas || st.AvailableReplicas != available {
			return fmt.Errorf("status shows %d of %d", st.AvailableReplicas, st.Replicas)
		}
		r := meta.FindStatusCondition(st.Conditions, authv1alpha1.ConditionReady)
		a := meta.FindStatusCondition(st.Conditions, authv1alpha1.ConditionAvailable)
		if st.Phase != phase || r == nil || (r.Status == metav1.ConditionTrue) != ready || a == nil || a.Reason != availableReason || (a.Status == metav1.ConditionTrue) != ready {
			return fmt.Errorf("phase %s (%s), Ready %+v, Available %+v", st.Phase, st.PhaseReason, r, a)
		}
		return nil
	})
}

// TestAuthServerHealthIsLostCapacity: an HPA scale-up of the active color
// from 4 to 6 keeps the AuthServer Stable and Ready with no Warning; losing
// a pod that served makes it Degraded with a Warning until every pod is back;
// a scale-down is no loss; no pod available is. The test plays the HPA and
// the Deployment controller, which envtest does not run.
func TestAuthServerHealthIsLostCapacity(t *testing.T) {
	ctx := context.Background()
	ns := newNamespace(t)
	key := types.NamespacedName{Namespace: ns, Name: "auth"}
	if err := k8sClient.Create(ctx, &authv1alpha1.AuthServer{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "auth"}, Spec: authv1alpha1.AuthServerSpec{
		Image: "ghcr.io/authframework/authframework:v1", Autoscaling: &authv1alpha1.AutoscalingSpec{MinReplicas: 2, MaxReplicas: 10}}}); err != nil {
		t.Fatal(err)
	}
	makeAvailable(t, ns, "auth-blue")
	waitPhase(t, key, authv1alpha1.PhaseStable)
	setDeployment(t, ns, "auth-blue", 4, 4)
	waitHealth(t, key, 4, 4, authv1alpha1.PhaseStable, true, "AllAvailable")

	// The HPA scales 4 -> 6: the new pods are starting, none was lost.
	setDeployment(t, ns, "auth-blue", 6, 4)
	waitHealth(t, key, 6, 4, authv1alpha1.PhaseStable, true, "ScalingUp")
	setDeployment(t, ns, "auth-blue", 0, 5)
	waitHealth(t, key, 6, 5, authv1alpha1.PhaseStable, true, "ScalingUp")
	if reasons, err := eventReasons(ns, "auth"); err != nil || reasons["CapacityLost"] {
		t.Fatalf("a scale-up was reported as a loss: events %v, %v", reasons, err)
	}
	if deploymentReplicas(t, ns, "auth-blue") != 6 {
		t.Fatal("the operator overrode the HPA's count")
	}

	// A pod that served is lost mid-scale-up: Degraded, with a Warning.
	setDeployment(t, ns, "auth-blue", 0, 4)
	waitHealth(t, key, 6, 4, authv1alpha1.PhaseDegraded, false, "CapacityLost")
	testenv.Eventually(t, "CapacityLost event", func() error {
		reasons, err := eventReasons(ns, "auth")
		if err != nil || !reasons["CapacityLost"] {
			return fmt.Errorf("events %v, %v", reasons, err)
		}
		return nil
	})
	// Pods come back: Degraded until all are.
	setDeployment(t, ns, "auth-blue", 0, 5)
	waitHealth(t, key, 6, 5, authv1alpha1.PhaseDegraded, false, "CapacityLost")
	setDeployment(t, ns, "auth-blue", 0, 6)
	waitHealth(t, key, 6, 6, authv1alpha1.PhaseStable, true, "AllAvailable")
	if as := getAuthServer(t, key); as.Status.PhaseReason != "CapacityRestored" {
		t.Errorf("phase reason %q", as.Status.PhaseReason)
	}

	// The HPA scales 6 -> 3, pods still terminating, then gone: no loss.
	setDeployment(t, ns, "auth-blue", 3, 6)
	waitHealth(t, key, 3, 6, authv1alpha1.PhaseStable, true, "AllAvailable")
	setDeployment(t, ns, "auth-blue", 0, 3)
	waitHealth(t, key, 3, 3, authv1alpha1.PhaseStable, true, "AllAvailable")

	// No pod available is a loss.
	setDeployment(t, ns, "auth-blue", 0, 0)
	waitHealth(t, key, 3, 0, authv1alpha1.PhaseDegraded, false, "CapacityLost")
}
