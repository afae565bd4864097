package e2e

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	authv1alpha1 "github.com/authframework/authframework/api/v1alpha1"
	"github.com/authframework/authframework/controllers"
	"github.com/authframework/authframework/test/testenv"
	"github.com/authframework/authframework/webhook/auth"
)

// TestAuthServerOnSimulatedCluster runs the AuthServer controller on a
// simulated cluster (kube-controller-manager, kube-scheduler and a kwok node
// run the Deployments, pods, EndpointSlices and HPA for real), with real auth
// server processes on loopback standing in for each color's pods in smoke
// tests, analysis, and a client validating tokens in a loop throughout.
func TestAuthServerOnSimulatedCluster(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sim := startSim(t, ctx)
	cfg, cl, clk, urls, scheme, dir := sim.cfg, sim.cl, sim.clk, sim.urls, sim.scheme, sim.dir

	replica := func() string {
		return testenv.StartAuthServer(t, ctx, cfg, scheme, auth.ProcessOptions{RevocationNamespace: "default",
			Server: auth.Options{Clock: clk, CacheSize: 1000}}).URL
	}
	key := types.NamespacedName{Namespace: "default", Name: "auth"}
	blueURL, greenURL := replica(), replica()
	urls.Set(key, authv1alpha1.Blue, blueURL)
	urls.Set(key, authv1alpha1.Green, greenURL)

	ns := "default"
	sim.ordersAccount(t, ctx, ns)
	must(t, cl.Create(ctx, &authv1alpha1.AuthServer{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "auth"}, Spec: authv1alpha1.AuthServerSpec{
		Image: "ghcr.io/authframework/authframework:v1", Port: 8080,
		Resources:   corev1.ResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("100m")}},
		Autoscaling: &authv1alpha1.AutoscalingSpec{MinReplicas: 3, MaxReplicas: 6, TargetCPUUtilizationPercentage: 70},
		Rollout: authv1alpha1.RolloutSpec{AvailableTimeout: metav1.Duration{Duration: 2 * time.Minute},
			Analysis:       authv1alpha1.AnalysisSpec{BakeTime: metav1.Duration{Duration: time.Minute}, MinRequests: ptr.To[int32](1000000)},
			ScaleDownDelay: metav1.Duration{Duration: 90 * time.Second}},
		PodDisruptionBudget: authv1alpha1.PodDisruptionBudgetSpec{Enabled: ptr.To(true), MaxUnavailable: ptr.To[int32](1)},
		ResponseHeaders:     authv1alpha1.IdentityHeaders{UserID: "X-User-ID", Permissions: "X-User-Permissions", Namespace: "X-User-Namespace", ClientID: "X-Client-ID", Roles: "X-User-Roles", TokenID: "X-Token-ID"},
	}}))

	defer func() {
		if !t.Failed() {
			return
		}
		var pods corev1.PodList
		_ = cl.List(context.Background(), &pods, client.InNamespace(ns))
		for _, p := range pods.Items {
			t.Logf("pod %s phase %s node %q conditions %v", p.Name, p.Status.Phase, p.Spec.NodeName, p.Status.Conditions)
		}
		var deps appsv1.DeploymentList
		_ = cl.List(context.Background(), &deps, client.InNamespace(ns))
		for _, d := range deps.Items {
			t.Logf("deployment %s replicas %v available %d conditions %v", d.Name, ptr.Deref(d.Spec.Replicas, -1), d.Status.AvailableReplicas, d.Status.Conditions)
		}
		var as authv1alpha1.AuthServer
		_ = cl.Get(context.Background(), key, &as)
		t.Logf("authserver status %+v", as.Status)
		b, _ := os.ReadFile(filepath.Join(dir, "cluster.log"))
		var lines []string
		for _, l := range strings.Split(string(b), "\n") {
			if !strings.Contains(l, "horizontal.go") && !strings.Contains(l, "DEBUG") {
				lines = append(lines, l)
			}
		}
		t.Logf("cluster log (first lines):\n%s", strings.Join(lines[:min(len(lines), 40)], "\n"))
	}()
	phase := func(want authv1alpha1.RolloutPhase) *authv1alpha1.AuthServer {
		t.Helper()
		var as authv1alpha1.AuthServer
		testenv.Until(t, 2*time.Minute, "phase "+string(want), func() bool {
			if err := cl.Get(ctx, key, &as); err != nil {
				return false
			}
			return as.Status.Phase == want
		})
		return &as
	}
	as := phase(authv1alpha1.PhaseStable)
	readyPods := func(color string) int {
		var slices discoveryv1.EndpointSliceList
		if err := cl.List(ctx, &slices, client.InNamespace(ns), client.MatchingLabels{discoveryv1.LabelServiceName: "auth"}); err != nil {
			return -1
		}
		n := 0
		for _, s := range slices.Items {
			for _, e := range s.Endpoints {
				if e.Conditions.Ready != nil && *e.Conditions.Ready && e.TargetRef != nil && strings.HasPrefix(e.TargetRef.Name, "auth-"+color+"-") {
					n++
				}
			}
		}
		return n
	}
	testenv.Until(t, 2*time.Minute, "the active Service has blue's 3 ready endpoints", func() bool { return readyPods("blue") == 3 })
	var h autoscalingv2.HorizontalPodAutoscaler
	must(t, cl.Get(ctx, key, &h))
	if h.Spec.ScaleTargetRef.Name != "auth-blue" || *h.Spec.MinReplicas != 3 {
		t.Errorf("HPA %+v", h.Spec)
	}
	var pdb policyv1.PodDisruptionBudget
	must(t, cl.Get(ctx, key, &pdb))

	// A client validates tokens through whichever color is active, in a loop,
	// for the whole rollout.
	tok := sim.token(t, ctx, key)
	var validations, failures atomic.Int64
	stop := make(chan struct{})
	loopDone := make(chan struct{})
	go func() {
		defer close(loopDone)
		for {
			select {
			case <-stop:
				return
			default:
			}
			var current authv1alpha1.AuthServer
			if cl.Get(ctx, key, &current) != nil {
				continue
			}
			validations.Add(1)
			if !validate(urls.URL(&current, true), tok, "") {
				failures.Add(1)
			}
		}
	}()
	testenv.Until(t, 2*time.Minute, "the client validates", func() bool { return validations.Load() > 10 })

	// Roll out v2.
	testenv.Update(t, cl, as, func() { as.Spec.Image = "ghcr.io/authframework/authframework:v2" })
	as = phase(authv1alpha1.PhaseAnalysing)
	var green appsv1.Deployment
	must(t, cl.Get(ctx, types.NamespacedName{Namespace: ns, Name: "auth-green"}, &green))
	if ptr.Deref(green.Spec.Replicas, 0) != 3 || green.Status.AvailableReplicas != 3 {
		t.Errorf("green: %d replicas, %d available; want blue's 3", ptr.Deref(green.Spec.Replicas, 0), green.Status.AvailableReplicas)
	}
	testenv.Until(t, 2*time.Minute, "the active Service routes to green", func() bool { return readyPods("green") == 3 })
	must(t, cl.Get(ctx, key, &h))
	if h.Spec.ScaleTargetRef.Name != "auth-green" {
		t.Errorf("the HPA did not follow the active color: %s", h.Spec.ScaleTargetRef.Name)
	}
	clk.Step(time.Minute)
	testenv.Poke(t, cl, &authv1alpha1.AuthServer{}, key)
	phase(authv1alpha1.PhaseScalingDown)
	clk.Step(90 * time.Second)
	testenv.Poke(t, cl, &authv1alpha1.AuthServer{}, key)
	as = phase(authv1alpha1.PhaseStable)
	testenv.Until(t, 2*time.Minute, "blue's pods are gone", func() bool {
		var pods corev1.PodList
		_ = cl.List(ctx, &pods, client.InNamespace(ns), client.MatchingLabels{controllers.LabelColor: "blue"})
		return len(pods.Items) == 0
	})

	// A broken v3 (accepts forged tokens) is rolled back; traffic stays green.
	broken := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusOK) }))
	defer broken.Close()
	urls.Set(key, authv1alpha1.Blue, broken.URL)
	testenv.Update(t, cl, as, func() { as.Spec.Image = "ghcr.io/authframework/authframework:v3" })
	as = phase(authv1alpha1.PhaseRolledBack)
	if as.Status.PhaseReason != "SmokeTestFailed" || as.Status.ActiveColor != authv1alpha1.Green || !meta.IsStatusConditionTrue(as.Status.Conditions, authv1alpha1.ConditionRolledBack) {
		t.Errorf("rollback: %+v", as.Status)
	}
	close(stop)
	<-loopDone
	t.Logf("%d validations through the active color during two rollouts, %d failed", validations.Load(), failures.Load())
	if failures.Load() != 0 {
		t.Errorf("%d of %d validations failed during the rollouts", failures.Load(), validations.Load())
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
