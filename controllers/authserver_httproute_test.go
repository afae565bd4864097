package controllers

import (
	"reflect"
	"strconv"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	authv1alpha1 "github.com/authframework/authframework/api/v1alpha1"
)

func backend(name string, weight *int32) gatewayv1.HTTPBackendRef {
	return gatewayv1.HTTPBackendRef{BackendRef: gatewayv1.BackendRef{
		BackendObjectReference: gatewayv1.BackendObjectReference{Name: gatewayv1.ObjectName(name), Port: ptr.To(gatewayv1.PortNumber(80))},
		Weight:                 weight}}
}

func rule(refs ...gatewayv1.HTTPBackendRef) gatewayv1.HTTPRouteRule {
	return gatewayv1.HTTPRouteRule{BackendRefs: refs}
}

func httpRoute(rules ...gatewayv1.HTTPRouteRule) *gatewayv1.HTTPRoute {
	return &gatewayv1.HTTPRoute{ObjectMeta: metav1.ObjectMeta{Namespace: "auth", Name: "api", Annotations: map[string]string{"team": "platform"}},
		Spec: gatewayv1.HTTPRouteSpec{Rules: rules}}
}

// weights lists each rule's backendRefs as name=weight ("-" for unset).
func weights(rt *gatewayv1.HTTPRoute) [][]string {
	var out [][]string
	for _, r := range rt.Spec.Rules {
		var refs []string
		for _, b := range r.BackendRefs {
			w := "-"
			if b.Weight != nil {
				w = strconv.Itoa(int(*b.Weight))
			}
			refs = append(refs, string(b.Name)+"="+w)
		}
		out = append(out, refs)
	}
	return out
}

func TestWeightedRoute(t *testing.T) {
	as := &authv1alpha1.AuthServer{ObjectMeta: metav1.ObjectMeta{Namespace: "auth", Name: "auth"}}
	base := httpRoute(
		rule(backend("auth", ptr.To[int32](1))),
		rule(backend("docs", nil)),
		rule(backend("auth-preview", nil)), // the user's route to the preview: never touched
		rule(backend("auth", ptr.To[int32](7))),
	)
	// The filters of the active backendRef go with its copy.
	base.Spec.Rules[0].BackendRefs[0].Filters = []gatewayv1.HTTPRouteFilter{{Type: gatewayv1.HTTPRouteFilterRequestHeaderModifier,
		RequestHeaderModifier: &gatewayv1.HTTPHeaderFilter{Set: []gatewayv1.HTTPHeader{{Name: "X-Env", Value: "prod"}}}}}
	pristine := base.DeepCopy()

	at10, err := weightedRoute(as, base, 10)
	if err != nil {
		t.Fatal(err)
	}
	want := [][]string{{"auth=90", "auth-preview=10"}, {"docs=-"}, {"auth-preview=-"}, {"auth=90", "auth-preview=10"}}
	if got := weights(at10); !reflect.DeepEqual(got, want) {
		t.Fatalf("at 10%%: %v, want %v", got, want)
	}
	if f := at10.Spec.Rules[0].BackendRefs[1].Filters; len(f) != 1 || f[0].RequestHeaderModifier.Set[0].Value != "prod" {
		t.Errorf("the preview backendRef lost the filters: %+v", f)
	}
	if at10.Annotations["team"] != "platform" || at10.Annotations[AnnotationRouteCanary] != `{"authServer":"auth","weights":[1,7]}` {
		t.Errorf("annotations %v", at10.Annotations)
	}
	if !reflect.DeepEqual(base, pristine) {
		t.Error("the route was modified")
	}

	// The next step starts from the stepped route and keeps the weights it
	// recorded before the first step.
	at50, err := weightedRoute(as, at10, 50)
	if err != nil {
		t.Fatal(err)
	}
	want = [][]string{{"auth=50", "auth-preview=50"}, {"docs=-"}, {"auth-preview=-"}, {"auth=50", "auth-preview=50"}}
	if got := weights(at50); !reflect.DeepEqual(got, want) || at50.Annotations[AnnotationRouteCanary] != at10.Annotations[AnnotationRouteCanary] {
		t.Fatalf("at 50%%: %v %v", got, at50.Annotations)
	}
	if sameRoute(at10, at50) {
		t.Error("a new weight is a change")
	}
	if again, _ := weightedRoute(as, at50, 50); !sameRoute(at50, again) {
		t.Error("the same weight again must write nothing")
	}

	// Weight 0 restores the route as it was.
	for name, from := range map[string]*gatewayv1.HTTPRoute{"after the steps": at50, "never stepped": base} {
		restored, err := weightedRoute(as, from, 0)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(restored.Spec, pristine.Spec) || !reflect.DeepEqual(restored.Annotations, pristine.Annotations) {
			t.Errorf("%s: restored %v %v, want %v", name, weights(restored), restored.Annotations, weights(pristine))
		}
	}

	// A route the user changed mid-canary (another backend beside ours) is
	// still restored: the preview, about to scale to zero, goes.
	changed := at50.DeepCopy()
	changed.Spec.Rules[0].BackendRefs = append(changed.Spec.Rules[0].BackendRefs, backend("legacy", nil))
	if _, err := weightedRoute(as, changed, 75); err == nil {
		t.Error("a rule with another backend must not be weighted")
	}
	restored := restoredRoute(as, changed)
	if got := weights(restored); !reflect.DeepEqual(got[0], []string{"auth=1", "legacy=-"}) || !reflect.DeepEqual(got[3], []string{"auth=7"}) {
		t.Errorf("restored after a change: %v", got)
	}

	// Another AuthServer's steps are not undone by this one.
	other := &authv1alpha1.AuthServer{ObjectMeta: metav1.ObjectMeta{Namespace: "auth", Name: "auth2"}}
	if r := restoredRoute(other, at50); !reflect.DeepEqual(r, at50) {
		t.Error("restored another AuthServer's route")
	}
}

func TestWeightedRouteRefusals(t *testing.T) {
	as := &authv1alpha1.AuthServer{ObjectMeta: metav1.ObjectMeta{Namespace: "auth", Name: "auth"}}
	otherNamespace := backend("auth", nil)
	otherNamespace.Namespace = ptr.To(gatewayv1.Namespace("elsewhere"))
	notService := backend("auth", nil)
	notService.Kind = ptr.To(gatewayv1.Kind("ServiceImport"))
	notService.Group = ptr.To(gatewayv1.Group("multicluster.x-k8s.io"))
	stepped := httpRoute(rule(backend("auth", nil)))
	stepped.Annotations[AnnotationRouteCanary] = `{"authServer":"auth2","weights":[null]}`
	garbled := httpRoute(rule(backend("auth", nil)))
	garbled.Annotations[AnnotationRouteCanary] = `{`
	for name, tc := range map[string]struct {
		route *gatewayv1.HTTPRoute
		want  string
	}{
		"no rule to the Service":            {httpRoute(rule(backend("docs", nil))), "no rule that sends to Service auth"},
		"the Service of another namespace":  {httpRoute(rule(otherNamespace)), "no rule that sends to Service auth"},
		"a backend of another kind":         {httpRoute(rule(notService)), "no rule that sends to Service auth"},
		"mixed with another backend":        {httpRoute(rule(backend("auth", ptr.To[int32](3)), backend("docs", ptr.To[int32](1)))), "rule 0 sends to Service auth and to other backends"},
		"the Service twice":                 {httpRoute(rule(backend("auth", nil), backend("auth", nil))), "rule 0 sends to Service auth twice"},
		"a split the operator did not make": {httpRoute(rule(backend("auth", ptr.To[int32](80)), backend("auth-preview", ptr.To[int32](20)))), "no step of this AuthServer put it there"},
		"stepped by another AuthServer":     {stepped, "being stepped by AuthServer auth2"},
		"an annotation not ours":            {garbled, "not what the operator writes"},
	} {
		if _, err := weightedRoute(as, tc.route, 10); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", name, err, tc.want)
		}
	}
}
