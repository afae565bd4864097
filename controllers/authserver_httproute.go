package controllers

import (
	"encoding/json"
	"fmt"
	"reflect"
	"slices"

	"k8s.io/utils/ptr"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	authv1alpha1 "github.com/authframework/authframework/api/v1alpha1"
)

// AnnotationRouteCanary marks an HTTPRoute whose weights an AuthServer's
// canary has set. It holds what restoring the route needs: the AuthServer
// and the weights its Service's backendRefs had, one per weighted rule in
// order (null where none was set).
const AnnotationRouteCanary = "auth.authframework.dev/route-canary"

// routeCanary is the value of AnnotationRouteCanary.
type routeCanary struct {
	AuthServer string   `json:"authServer"`
	Weights    []*int32 `json:"weights"`
}

// isServiceRef says whether ref names the Service name in namespace ns (the
// route's own when ref names none).
func isServiceRef(ref gatewayv1.BackendObjectReference, ns, name string) bool {
	group, kind := ptr.Deref(ref.Group, ""), ptr.Deref(ref.Kind, "Service")
	return (group == "" || group == "core") && kind == "Service" && string(ref.Name) == name &&
		(ref.Namespace == nil || string(*ref.Namespace) == ns)
}

// weightedRoute returns the route with weight percent of the traffic of
// every rule whose backendRef is the AuthServer's active Service moved to
// its preview Service: the active backendRef gets 100-weight and a copy
// pointing at the preview Service gets weight, right after it; the route
// is annotated (AnnotationRouteCanary) with what restoring it needs. Weight
// 0 is restoredRoute. Rules that do not send to the active Service are left
// as they are. It refuses, with an error that says why, a route it cannot
// weight safely: one with no rule to the active Service, a rule that sends
// to the active Service and to other backends (weighting it would change
// their share too) or to the active Service twice, a rule that sends to the
// preview Service beside the active one when no step of this AuthServer put
// it there, and a route another AuthServer is stepping. route is not
// modified.
func weightedRoute(as *authv1alpha1.AuthServer, route *gatewayv1.HTTPRoute, weight int32) (*gatewayv1.HTTPRoute, error) {
	if weight <= 0 {
		return restoredRoute(as, route), nil
	}
	active, preview := as.Name, as.Name+"-preview"
	marked, err := routeMark(route)
	if err != nil {
		return nil, err
	}
	if marked != nil && marked.AuthServer != as.Name {
		return nil, fmt.Errorf("HTTPRoute %s is being stepped by AuthServer %s", route.Name, marked.AuthServer)
	}
	out := route.DeepCopy()
	var original []*int32
	for i := range out.Spec.Rules {
		rule := &out.Spec.Rules[i]
		at, previewAt, others := -1, -1, 0
		for j, ref := range rule.BackendRefs {
			switch {
			case isServiceRef(ref.BackendObjectReference, route.Namespace, active):
				if at >= 0 {
					return nil, fmt.Errorf("HTTPRoute %s rule %d sends to Service %s twice", route.Name, i, active)
				}
				at = j
			case isServiceRef(ref.BackendObjectReference, route.Namespace, preview):
				previewAt = j
			default:
				others++
			}
		}
		if at < 0 {
			continue // not ours: a rule to the preview alone is the user's
		}
		if others > 0 {
			return nil, fmt.Errorf("HTTPRoute %s rule %d sends to Service %s and to other backends; weighting it would change their share", route.Name, i, active)
		}
		if previewAt >= 0 && marked == nil {
			return nil, fmt.Errorf("HTTPRoute %s rule %d already sends to Service %s, and no step of this AuthServer put it there", route.Name, i, preview)
		}
		before := rule.BackendRefs[at].Weight
		if marked != nil {
			before = marked.weight(len(original))
		}
		original = append(original, before)
		ref := *rule.BackendRefs[at].DeepCopy()
		ref.Weight = ptr.To(100 - weight)
		canary := *ref.DeepCopy()
		canary.Name = gatewayv1.ObjectName(preview)
		canary.Weight = ptr.To(weight)
		rule.BackendRefs = []gatewayv1.HTTPBackendRef{ref, canary}
	}
	if len(original) == 0 {
		return nil, fmt.Errorf("HTTPRoute %s has no rule that sends to Service %s", route.Name, active)
	}
	b, _ := json.Marshal(routeCanary{AuthServer: as.Name, Weights: original})
	if out.Annotations == nil {
		out.Annotations = map[string]string{}
	}
	out.Annotations[AnnotationRouteCanary] = string(b)
	return out, nil
}

// restoredRoute returns the route as it was before the first step of the
// AuthServer's canary: in every rule that sends to the active Service, the
// preview Service's backendRefs are dropped and the active one's weight is
// what AnnotationRouteCanary recorded; the annotation goes. It never
// refuses, so a route the user changed mid-canary still loses the preview
// (which scales to zero after an abort). A route this AuthServer did not
// step comes back unchanged.
func restoredRoute(as *authv1alpha1.AuthServer, route *gatewayv1.HTTPRoute) *gatewayv1.HTTPRoute {
	out := route.DeepCopy()
	marked, err := routeMark(route)
	if err != nil || marked == nil || marked.AuthServer != as.Name {
		return out
	}
	active, preview := as.Name, as.Name+"-preview"
	n := 0
	for i := range out.Spec.Rules {
		rule := &out.Spec.Rules[i]
		if !slices.ContainsFunc(rule.BackendRefs, func(ref gatewayv1.HTTPBackendRef) bool {
			return isServiceRef(ref.BackendObjectReference, route.Namespace, active)
		}) {
			continue // a rule to the preview alone is the user's
		}
		var refs []gatewayv1.HTTPBackendRef
		restored := false
		for _, ref := range rule.BackendRefs {
			switch {
			case isServiceRef(ref.BackendObjectReference, route.Namespace, preview):
				continue
			case isServiceRef(ref.BackendObjectReference, route.Namespace, active) && !restored:
				ref.Weight, restored = marked.weight(n), true
			}
			refs = append(refs, ref)
		}
		rule.BackendRefs = refs
		n++
	}
	delete(out.Annotations, AnnotationRouteCanary)
	return out
}

// routeMark reads AnnotationRouteCanary; nil when the route has none.
func routeMark(route *gatewayv1.HTTPRoute) (*routeCanary, error) {
	v, ok := route.Annotations[AnnotationRouteCanary]
	if !ok {
		return nil, nil
	}
	var m routeCanary
	if err := json.Unmarshal([]byte(v), &m); err != nil {
		return nil, fmt.Errorf("HTTPRoute %s: annotation %s is not what the operator writes: %v", route.Name, AnnotationRouteCanary, err)
	}
	return &m, nil
}

// weight is the recorded weight of the i-th weighted rule; nil (the API's
// default, 1) for a rule added since.
func (m *routeCanary) weight(i int) *int32 {
	if i < len(m.Weights) {
		return m.Weights[i]
	}
	return nil
}

// sameRoute says whether writing want over have would change anything the
// operator sets.
func sameRoute(have, want *gatewayv1.HTTPRoute) bool {
	return reflect.DeepEqual(have.Spec.Rules, want.Spec.Rules) &&
		have.Annotations[AnnotationRouteCanary] == want.Annotations[AnnotationRouteCanary]
}
