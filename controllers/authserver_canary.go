package controllers

import (
	"context"
	"fmt"
	"strconv"

	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	authv1alpha1 "github.com/authframework/authframework/api/v1alpha1"
	"github.com/authframework/authframework/internal/rollout"
)

// defaultCanarySteps are the weights of a stepped rollout when
// spec.rollout.trafficRouting lists none (the API server defaults them too).
var defaultCanarySteps = []int32{5, 10, 25, 50, 75, 90}

// The ingress-nginx annotations of a canary Ingress.
const (
	AnnotationNginxCanary       = "nginx.ingress.kubernetes.io/canary"
	AnnotationNginxCanaryWeight = "nginx.ingress.kubernetes.io/canary-weight"
)

// canaryIngressName is the canary Ingress kept beside the named one.
func canaryIngressName(as *authv1alpha1.AuthServer) string {
	return as.Spec.Rollout.TrafficRouting.Ingress + "-canary"
}

// canaryIngress is the ingress-nginx canary beside base: the rules of base
// whose backend is the AuthServer's active Service, pointed at its preview
// Service, with weight percent of their traffic. It refuses a base that
// routes nowhere near the AuthServer or is itself a canary.
func canaryIngress(as *authv1alpha1.AuthServer, base *networkingv1.Ingress, weight int32) (*networkingv1.Ingress, error) {
	if base.Annotations[AnnotationNginxCanary] == "true" {
		return nil, fmt.Errorf("Ingress %s is itself a canary", base.Name)
	}
	var rules []networkingv1.IngressRule
	for _, rule := range base.Spec.Rules {
		if rule.HTTP == nil {
			continue
		}
		var paths []networkingv1.HTTPIngressPath
		for _, p := range rule.HTTP.Paths {
			if p.Backend.Service == nil || p.Backend.Service.Name != as.Name {
				continue
			}
			p = *p.DeepCopy()
			p.Backend.Service.Name = as.Name + "-preview"
			paths = append(paths, p)
		}
		if len(paths) > 0 {
			rules = append(rules, networkingv1.IngressRule{Host: rule.Host,
				IngressRuleValue: networkingv1.IngressRuleValue{HTTP: &networkingv1.HTTPIngressRuleValue{Paths: paths}}})
		}
	}
	if len(rules) == 0 {
		return nil, fmt.Errorf("Ingress %s has no path to Service %s", base.Name, as.Name)
	}
	annotations := map[string]string{
		AnnotationNginxCanary:       "true",
		AnnotationNginxCanaryWeight: strconv.Itoa(int(weight)),
	}
	// The class as the legacy annotation names it, for controllers that
	// still read it.
	if class, ok := base.Annotations["kubernetes.io/ingress.class"]; ok {
		annotations["kubernetes.io/ingress.class"] = class
	}
	return &networkingv1.Ingress{
		ObjectMeta: metav1.ObjectMeta{Namespace: as.Namespace, Name: canaryIngressName(as), Annotations: annotations,
			Labels: map[string]string{authv1alpha1.LabelManagedBy: authv1alpha1.ManagedByValue, LabelInstance: as.Name}},
		Spec: networkingv1.IngressSpec{IngressClassName: base.Spec.IngressClassName, Rules: rules},
	}, nil
}

// routing is what spec.rollout.trafficRouting names, as observed: the
// Ingress a canary Ingress can be made from, or the HTTPRoute (kept even
// when it cannot be weighted, so that a route stepped before is restored).
type routing struct {
	ingress *networkingv1.Ingress
	route   *gatewayv1.HTTPRoute
}

// observeRouting reads the Ingress or HTTPRoute spec.rollout.trafficRouting
// names and tells the state machine when it cannot carry a canary.
func (r *AuthServerReconciler) observeRouting(ctx context.Context, as *authv1alpha1.AuthServer, in *rollout.Input) (routing, error) {
	tr := as.Spec.Rollout.TrafficRouting
	switch {
	case tr == nil:
		return routing{}, nil
	case tr.HTTPRoute != "":
		return r.observeHTTPRoute(ctx, as, tr.HTTPRoute, in)
	}
	var base networkingv1.Ingress
	switch err := r.Get(ctx, types.NamespacedName{Namespace: as.Namespace, Name: tr.Ingress}, &base); {
	case apierrors.IsNotFound(err):
		in.Results.RoutingProblem = fmt.Sprintf("Ingress %s not found in %s", tr.Ingress, as.Namespace)
		return routing{}, nil
	case err != nil:
		return routing{}, err
	}
	if _, err := canaryIngress(as, &base, 1); err != nil {
		in.Results.RoutingProblem = err.Error()
		return routing{}, nil
	}
	var existing networkingv1.Ingress
	switch err := r.Get(ctx, types.NamespacedName{Namespace: as.Namespace, Name: canaryIngressName(as)}, &existing); {
	case err == nil && !metav1.IsControlledBy(&existing, as):
		in.Results.RoutingProblem = fmt.Sprintf("Ingress %s exists and is not this AuthServer's", existing.Name)
		return routing{}, nil
	case err != nil && !apierrors.IsNotFound(err):
		return routing{}, err
	}
	return routing{ingress: &base}, nil
}

func (r *AuthServerReconciler) observeHTTPRoute(ctx context.Context, as *authv1alpha1.AuthServer, name string, in *rollout.Input) (routing, error) {
	if !r.GatewayAPI {
		in.Results.RoutingProblem = "the cluster served no gateway.networking.k8s.io/v1 HTTPRoute when the operator started: install the Gateway API CRDs, then restart the operator"
		return routing{}, nil
	}
	var route gatewayv1.HTTPRoute
	switch err := r.Get(ctx, types.NamespacedName{Namespace: as.Namespace, Name: name}, &route); {
	case apierrors.IsNotFound(err):
		in.Results.RoutingProblem = fmt.Sprintf("HTTPRoute %s not found in %s", name, as.Namespace)
		return routing{}, nil
	case err != nil:
		return routing{}, err
	}
	if _, err := weightedRoute(as, &route, 1); err != nil {
		in.Results.RoutingProblem = err.Error()
	}
	return routing{route: &route}, nil
}

// route keeps the canary Ingress, or the HTTPRoute's weights, at weight,
// and with no weight deletes every canary Ingress of this AuthServer and
// restores every HTTPRoute it stepped.
func (r *AuthServerReconciler) route(ctx context.Context, as *authv1alpha1.AuthServer, weight int32, rt routing) error {
	keep := ""
	if weight > 0 && rt.ingress != nil {
		want, err := canaryIngress(as, rt.ingress, weight)
		if err != nil {
			return err
		}
		ing := &networkingv1.Ingress{ObjectMeta: metav1.ObjectMeta{Namespace: want.Namespace, Name: want.Name}}
		if err := r.ensure(ctx, as, ing, func() { ing.Labels, ing.Annotations, ing.Spec = want.Labels, want.Annotations, want.Spec }); err != nil {
			return err
		}
		keep = want.Name
	}
	var list networkingv1.IngressList
	if err := r.List(ctx, &list, client.InNamespace(as.Namespace),
		client.MatchingLabels{authv1alpha1.LabelManagedBy: authv1alpha1.ManagedByValue, LabelInstance: as.Name}); err != nil {
		return err
	}
	for i := range list.Items {
		ing := &list.Items[i]
		if ing.Name != keep && metav1.IsControlledBy(ing, as) {
			if err := r.Delete(ctx, ing); client.IgnoreNotFound(err) != nil {
				return err
			}
		}
	}
	return r.weighRoutes(ctx, as, weight, rt.route)
}

// weighRoutes sets the named HTTPRoute's weights and restores any other
// route this AuthServer stepped (one named before the spec changed).
func (r *AuthServerReconciler) weighRoutes(ctx context.Context, as *authv1alpha1.AuthServer, weight int32, named *gatewayv1.HTTPRoute) error {
	if !r.GatewayAPI {
		return nil
	}
	var list gatewayv1.HTTPRouteList
	if err := r.List(ctx, &list, client.InNamespace(as.Namespace)); err != nil {
		return err
	}
	routes := list.Items
	if named != nil {
		want, err := weightedRoute(as, named, weight)
		if err != nil {
			return err
		}
		if err := r.updateRoute(ctx, named, want); err != nil {
			return err
		}
	}
	for i := range routes {
		rt := &routes[i]
		if named != nil && rt.Name == named.Name {
			continue
		}
		if err := r.updateRoute(ctx, rt, restoredRoute(as, rt)); err != nil {
			return err
		}
	}
	return nil
}

func (r *AuthServerReconciler) updateRoute(ctx context.Context, have, want *gatewayv1.HTTPRoute) error {
	if sameRoute(have, want) {
		return nil
	}
	return r.Update(ctx, want)
}
