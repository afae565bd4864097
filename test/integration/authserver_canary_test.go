package integration

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"

	authv1alpha1 "github.com/authframework/authframework/api/v1alpha1"
	"github.com/authframework/authframework/controllers"
	"github.com/authframework/authframework/test/testenv"
)

// canaryAt waits for the canary Ingress to send weight percent to the
// preview Service (weight 0: for it to be gone).
func canaryAt(t *testing.T, ns string, weight int) {
	t.Helper()
	testenv.Eventually(t, fmt.Sprintf("canary Ingress at %d%%", weight), func() error {
		var ing networkingv1.Ingress
		err := k8sClient.Get(context.Background(), types.NamespacedName{Namespace: ns, Name: "api-canary"}, &ing)
		if weight == 0 {
			if !apierrors.IsNotFound(err) {
				return fmt.Errorf("still there: %v", err)
			}
			return nil
		}
		if err != nil {
			return err
		}
		if ing.Annotations[controllers.AnnotationNginxCanary] != "true" || ing.Annotations[controllers.AnnotationNginxCanaryWeight] != fmt.Sprint(weight) {
			return fmt.Errorf("annotations %v", ing.Annotations)
		}
		b := ing.Spec.Rules[0].HTTP.Paths[0].Backend.Service
		if b.Name != "auth-preview" || b.Port.Name != "http" || ing.Spec.Rules[0].Host != "auth.example.com" || ptr.Deref(ing.Spec.IngressClassName, "") != "nginx" {
			return fmt.Errorf("spec %+v", ing.Spec)
		}
		return nil
	})
}

// stableCanaryServer creates the AuthServer "auth" with 2 replicas and a
// minute's bake time whose rollouts go through tr in steps of 10% and 50%,
// 30s each, makes blue available and returns it Stable.
func stableCanaryServer(t *testing.T, ns string, key types.NamespacedName, tr authv1alpha1.TrafficRoutingSpec) *authv1alpha1.AuthServer {
	t.Helper()
	tr.Steps, tr.StepInterval = []int32{10, 50}, metav1.Duration{Duration: 30 * time.Second}
	if err := k8sClient.Create(context.Background(), &authv1alpha1.AuthServer{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: key.Name}, Spec: authv1alpha1.AuthServerSpec{
		Image: "ghcr.io/authframework/authframework:v1", Replicas: ptr.To[int32](2),
		Rollout: authv1alpha1.RolloutSpec{Analysis: authv1alpha1.AnalysisSpec{BakeTime: metav1.Duration{Duration: time.Minute}}, TrafficRouting: &tr}}}); err != nil {
		t.Fatal(err)
	}
	makeAvailable(t, ns, key.Name+"-blue")
	return waitPhase(t, key, authv1alpha1.PhaseStable)
}

// toFirstStep rolls image out to green (blue active) and returns the
// AuthServer at its first canary step: 10% on green, the Services as before.
func toFirstStep(t *testing.T, ns string, key types.NamespacedName, as *authv1alpha1.AuthServer, image string) *authv1alpha1.AuthServer {
	t.Helper()
	testenv.Update(t, k8sClient, as, func() { as.Spec.Image = image })
	waitPhase(t, key, authv1alpha1.PhaseDeploying)
	makeAvailable(t, ns, key.Name+"-green")
	as = waitPhase(t, key, authv1alpha1.PhaseCanary)
	if as.Status.CanaryWeight != 10 || as.Status.ActiveColor != authv1alpha1.Blue || activeSelector(t, ns, key.Name) != "blue" || activeSelector(t, ns, key.Name+"-preview") != "green" {
		t.Fatalf("first step: %+v", as.Status)
	}
	return as
}

// nextStep steps the fake clock past the step interval and returns the
// AuthServer at its next step: weight percent on green with blue still
// active, or, after the last step (weight 0), promoted to green.
func nextStep(t *testing.T, ns string, key types.NamespacedName, weight int32) *authv1alpha1.AuthServer {
	t.Helper()
	fakeClock.Step(30 * time.Second)
	testenv.Poke(t, k8sClient, &authv1alpha1.AuthServer{}, key)
	if weight == 0 {
		as := waitPhase(t, key, authv1alpha1.PhaseAnalysing)
		if as.Status.ActiveColor != authv1alpha1.Green || as.Status.CanaryWeight != 0 || activeSelector(t, ns, key.Name) != "green" {
			t.Errorf("after the last step: %+v", as.Status)
		}
		return as
	}
	var as *authv1alpha1.AuthServer
	testenv.Eventually(t, fmt.Sprintf("step %d%%", weight), func() error {
		if as = getAuthServer(t, key); as.Status.Phase != authv1alpha1.PhaseCanary || as.Status.CanaryWeight != weight {
			return fmt.Errorf("%s at %d%%", as.Status.Phase, as.Status.CanaryWeight)
		}
		return nil
	})
	if activeSelector(t, ns, key.Name) != "blue" {
		t.Errorf("the active Service left blue at %d%%", weight)
	}
	return as
}

// TestAuthServerCanary: with spec.rollout.trafficRouting, a rollout that
// passed its smoke tests moves the named Ingress's traffic in weighted steps
// through an ingress-nginx canary Ingress to the preview Service, analysing
// the new color at each step, then switches the active Service and removes
// the canary. An abort mid-canary removes it at once.
func TestAuthServerCanary(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ns, key := colorsOnLoopback(t, ctx)
	prefix := networkingv1.PathTypePrefix
	if err := k8sClient.Create(ctx, &networkingv1.Ingress{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "api"},
		Spec: networkingv1.IngressSpec{IngressClassName: ptr.To("nginx"), Rules: []networkingv1.IngressRule{{Host: "auth.example.com",
			IngressRuleValue: networkingv1.IngressRuleValue{HTTP: &networkingv1.HTTPIngressRuleValue{Paths: []networkingv1.HTTPIngressPath{{
				Path: "/", PathType: &prefix, Backend: networkingv1.IngressBackend{Service: &networkingv1.IngressServiceBackend{
					Name: "auth", Port: networkingv1.ServiceBackendPort{Name: "http"}}}}}}}}}}}); err != nil {
		t.Fatal(err)
	}
	as := stableCanaryServer(t, ns, key, authv1alpha1.TrafficRoutingSpec{Ingress: "api"})
	if c := meta.FindStatusCondition(as.Status.Conditions, authv1alpha1.ConditionTrafficRoutingReady); c == nil || c.Status != metav1.ConditionTrue {
		t.Errorf("TrafficRoutingReady %+v", c)
	}

	// v2 reaches its first step; an abort takes the canary away at once.
	as = toFirstStep(t, ns, key, as, "ghcr.io/authframework/authframework:v2")
	canaryAt(t, ns, 10)
	testenv.Update(t, k8sClient, as, func() { as.Annotations = map[string]string{authv1alpha1.AnnotationAbort: "1"} })
	as = waitPhase(t, key, authv1alpha1.PhaseRolledBack)
	if as.Status.PhaseReason != "Aborted" || as.Status.CanaryWeight != 0 || activeSelector(t, ns, "auth") != "blue" {
		t.Errorf("aborted: %+v", as.Status)
	}
	canaryAt(t, ns, 0)
	if deploymentReplicas(t, ns, "auth-green") != 0 {
		t.Error("the aborted color must scale down")
	}
	makeAvailable(t, ns, "auth-green") // the Deployment controller's view: no pods

	// v3 goes through both steps, each held for the step interval.
	as = toFirstStep(t, ns, key, as, "ghcr.io/authframework/authframework:v3")
	canaryAt(t, ns, 10)
	nextStep(t, ns, key, 50)
	canaryAt(t, ns, 50)
	as = nextStep(t, ns, key, 0)
	canaryAt(t, ns, 0)
	var base networkingv1.Ingress
	if err := k8sClient.Get(ctx, types.NamespacedName{Namespace: ns, Name: "api"}, &base); err != nil || base.Spec.Rules[0].HTTP.Paths[0].Backend.Service.Name != "auth" {
		t.Errorf("the user's Ingress must be left as it was: %v %+v", err, base.Spec)
	}
	// A name that is no Ingress shows at once, before a rollout needs it.
	testenv.Update(t, k8sClient, as, func() { as.Spec.Rollout.TrafficRouting.Ingress = "no-such-ingress" })
	testenv.Eventually(t, "TrafficRoutingReady False", func() error {
		c := meta.FindStatusCondition(getAuthServer(t, key).Status.Conditions, authv1alpha1.ConditionTrafficRoutingReady)
		if c == nil || c.Status != metav1.ConditionFalse || !strings.Contains(c.Message, "no-such-ingress not found") {
			return fmt.Errorf("%+v", c)
		}
		return nil
	})
	testenv.Eventually(t, "step events", func() error {
		reasons, err := eventReasons(ns, "auth")
		if err != nil || !reasons["CanaryStep"] || !reasons["Aborted"] || !reasons["Promoted"] {
			return fmt.Errorf("events %v %v", reasons, err)
		}
		return nil
	})
}
