package integration

import (
	"context"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	authv1alpha1 "github.com/authframework/authframework/api/v1alpha1"
	"github.com/authframework/authframework/controllers"
	"github.com/authframework/authframework/test/testenv"
)

func serviceRef(name string) gatewayv1.HTTPBackendRef {
	return gatewayv1.HTTPBackendRef{BackendRef: gatewayv1.BackendRef{BackendObjectReference: gatewayv1.BackendObjectReference{
		Name: gatewayv1.ObjectName(name), Port: ptr.To(gatewayv1.PortNumber(80))}}}
}

// routeWeights waits for the route's rule 0 to send to the active and the
// preview Service with these weights (only the active Service with its
// weight as before the steps when preview is 0), and returns the route.
func routeWeights(t *testing.T, key types.NamespacedName, active, preview int32) *gatewayv1.HTTPRoute {
	t.Helper()
	var rt gatewayv1.HTTPRoute
	testenv.Eventually(t, fmt.Sprintf("HTTPRoute at %d/%d", active, preview), func() error {
		if err := k8sClient.Get(context.Background(), key, &rt); err != nil {
			return err
		}
		var got []string
		for _, b := range rt.Spec.Rules[0].BackendRefs {
			got = append(got, fmt.Sprintf("%s=%d", b.Name, ptr.Deref(b.Weight, -1)))
		}
		want := []string{fmt.Sprintf("auth=%d", active)}
		if preview > 0 {
			want = append(want, fmt.Sprintf("auth-preview=%d", preview))
		}
		if !reflect.DeepEqual(got, want) {
			return fmt.Errorf("rule 0 sends %v, want %v", got, want)
		}
		return nil
	})
	return &rt
}

// TestAuthServerHTTPRouteCanary: with spec.rollout.trafficRouting.httpRoute,
// a rollout that passed its smoke tests moves the traffic of the route's
// rules to the active Service in weighted steps, by setting the weights of
// the active and preview Services' backendRefs, analysing the new color at
// each step; then the active Service switches and the route is restored as
// it was. An abort restores it at once. Rules to other backends are never
// touched, and a route that cannot be weighted safely is refused with a
// condition and an event. No Gateway controller runs: the test checks what
// the operator writes against the Gateway API's own CRDs.
func TestAuthServerHTTPRouteCanary(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ns, key := colorsOnLoopback(t, ctx)
	withFilter := serviceRef("auth")
	withFilter.Filters = []gatewayv1.HTTPRouteFilter{{Type: gatewayv1.HTTPRouteFilterRequestHeaderModifier,
		RequestHeaderModifier: &gatewayv1.HTTPHeaderFilter{Set: []gatewayv1.HTTPHeader{{Name: "X-Env", Value: "prod"}}}}}
	route := &gatewayv1.HTTPRoute{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "api"}, Spec: gatewayv1.HTTPRouteSpec{
		CommonRouteSpec: gatewayv1.CommonRouteSpec{ParentRefs: []gatewayv1.ParentReference{{Name: "eg"}}},
		Hostnames:       []gatewayv1.Hostname{"auth.example.com"},
		Rules: []gatewayv1.HTTPRouteRule{
			{Matches: []gatewayv1.HTTPRouteMatch{{Path: &gatewayv1.HTTPPathMatch{Type: ptr.To(gatewayv1.PathMatchPathPrefix), Value: ptr.To("/oauth2")}}},
				BackendRefs: []gatewayv1.HTTPBackendRef{withFilter}},
			{Matches: []gatewayv1.HTTPRouteMatch{{Path: &gatewayv1.HTTPPathMatch{Type: ptr.To(gatewayv1.PathMatchPathPrefix), Value: ptr.To("/docs")}}},
				BackendRefs: []gatewayv1.HTTPBackendRef{serviceRef("docs")}},
			{Matches: []gatewayv1.HTTPRouteMatch{{Path: &gatewayv1.HTTPPathMatch{Type: ptr.To(gatewayv1.PathMatchPathPrefix), Value: ptr.To("/preview")}}},
				BackendRefs: []gatewayv1.HTTPBackendRef{serviceRef("auth-preview")}},
		}}}
	if err := k8sClient.Create(ctx, route); err != nil {
		t.Fatal(err)
	}
	routeKey := types.NamespacedName{Namespace: ns, Name: "api"}
	// As the API server defaulted it (weight 1, kind Service, ...).
	original := routeWeights(t, routeKey, 1, 0)
	as := stableCanaryServer(t, ns, key, authv1alpha1.TrafficRoutingSpec{HTTPRoute: "api"})
	if c := meta.FindStatusCondition(as.Status.Conditions, authv1alpha1.ConditionTrafficRoutingReady); c == nil || c.Status != metav1.ConditionTrue || c.Reason != authv1alpha1.ReasonHTTPRouteFound {
		t.Errorf("TrafficRoutingReady %+v", c)
	}
	untouched := func(rt *gatewayv1.HTTPRoute) {
		t.Helper()
		if !reflect.DeepEqual(rt.Spec.Rules[1:], original.Spec.Rules[1:]) || !reflect.DeepEqual(rt.Spec.Hostnames, original.Spec.Hostnames) ||
			!reflect.DeepEqual(rt.Spec.ParentRefs, original.Spec.ParentRefs) || !reflect.DeepEqual(rt.Spec.Rules[0].Matches, original.Spec.Rules[0].Matches) {
			t.Errorf("the operator touched what is not its own: %+v", rt.Spec)
		}
	}
	restored := func() {
		t.Helper()
		rt := routeWeights(t, routeKey, 1, 0)
		if !reflect.DeepEqual(rt.Spec, original.Spec) {
			t.Errorf("not restored as it was:\n%+v\nwant\n%+v", rt.Spec, original.Spec)
		}
		if _, ok := rt.Annotations[controllers.AnnotationRouteCanary]; ok {
			t.Errorf("annotations %v", rt.Annotations)
		}
	}

	// v2 reaches its first step; an abort restores the route at once.
	as = toFirstStep(t, ns, key, as, "ghcr.io/authframework/authframework:v2")
	rt := routeWeights(t, routeKey, 90, 10)
	untouched(rt)
	if f := rt.Spec.Rules[0].BackendRefs[1].Filters; len(f) != 1 || f[0].RequestHeaderModifier.Set[0].Value != "prod" {
		t.Errorf("the preview backendRef must carry the active one's filters: %+v", f)
	}
	if rt.Annotations[controllers.AnnotationRouteCanary] != `{"authServer":"auth","weights":[1]}` {
		t.Errorf("annotations %v", rt.Annotations)
	}
	testenv.Update(t, k8sClient, as, func() { as.Annotations = map[string]string{authv1alpha1.AnnotationAbort: "1"} })
	as = waitPhase(t, key, authv1alpha1.PhaseRolledBack)
	if as.Status.PhaseReason != "Aborted" || as.Status.CanaryWeight != 0 || activeSelector(t, ns, "auth") != "blue" {
		t.Errorf("aborted: %+v", as.Status)
	}
	restored()
	makeAvailable(t, ns, "auth-green") // the Deployment controller's view: no pods

	// v3 goes through both steps, each held for the step interval, then the
	// active Service switches and the route is as it was.
	as = toFirstStep(t, ns, key, as, "ghcr.io/authframework/authframework:v3")
	routeWeights(t, routeKey, 90, 10)
	nextStep(t, ns, key, 50)
	untouched(routeWeights(t, routeKey, 50, 50))
	nextStep(t, ns, key, 0)
	restored()

	// A route the operator cannot weight safely is refused before a rollout
	// needs it: a condition and a Warning event.
	mixed := &gatewayv1.HTTPRoute{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "api"}}
	testenv.Update(t, k8sClient, mixed, func() {
		mixed.Spec.Rules[0].BackendRefs = append(mixed.Spec.Rules[0].BackendRefs, serviceRef("legacy-auth"))
	})
	testenv.Eventually(t, "TrafficRoutingReady False", func() error {
		c := meta.FindStatusCondition(getAuthServer(t, key).Status.Conditions, authv1alpha1.ConditionTrafficRoutingReady)
		if c == nil || c.Status != metav1.ConditionFalse || c.Reason != authv1alpha1.ReasonHTTPRouteUnusable || !strings.Contains(c.Message, "rule 0 sends to Service auth and to other backends") {
			return fmt.Errorf("%+v", c)
		}
		return nil
	})
	testenv.Eventually(t, "step and refusal events", func() error {
		reasons, err := eventReasons(ns, "auth")
		if err != nil || !reasons["CanaryStep"] || !reasons["Aborted"] || !reasons["Promoted"] || !reasons[authv1alpha1.ReasonHTTPRouteUnusable] {
			return fmt.Errorf("events %v %v", reasons, err)
		}
		return nil
	})
}
