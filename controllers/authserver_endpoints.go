package controllers

import (
	"context"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	authv1alpha1 "github.com/authframework/authframework/api/v1alpha1"
	"github.com/authframework/authframework/internal/rollout"
)

// EndpointSliceManager is the endpointslice.kubernetes.io/managed-by value
// of the EndpointSlice the operator adds to the active Service during a
// canary; the EndpointSlice controller leaves slices of other managers alone.
const EndpointSliceManager = "auth.authframework.dev"

// canarySliceName is the EndpointSlice that lists the borrowed endpoints
// beside the active Service's own.
func canarySliceName(as *authv1alpha1.AuthServer) string { return as.Name + "-canary" }

// colorServiceName is the headless Service of one color, made once
// spec.rollout.trafficRouting is set: the EndpointSlice controller lists
// that color's ready pods in its slices, which is where the operator reads
// them (it may not read pods).
func colorServiceName(as *authv1alpha1.AuthServer, c rollout.Color) string {
	return as.Name + "-" + string(c) + "-pods"
}

// colorService is the headless Service of one color.
func colorService(as *authv1alpha1.AuthServer, c rollout.Color) *corev1.Service {
	s := service(as, colorServiceName(as, c), c)
	s.Spec.ClusterIP = corev1.ClusterIPNone
	return s
}

// serviceSplit is what the active Service serves during a canary step: the
// split (rollout.SplitService), the color its selector picks, and the
// EndpointSlice of the borrowed endpoints (nil when none are borrowed).
type serviceSplit struct {
	rollout.ServiceSplit
	selector rollout.Color
	slice    *discoveryv1.EndpointSlice
}

// readyEndpoints are each color's ready endpoints as the EndpointSlice
// controller lists them for the color's headless Service, one per address,
// sorted by pod name so that the same ones are borrowed from one step to the
// next, with the slices' address type.
func (r *AuthServerReconciler) readyEndpoints(ctx context.Context, as *authv1alpha1.AuthServer, c rollout.Color) ([]discoveryv1.Endpoint, discoveryv1.AddressType, error) {
	var list discoveryv1.EndpointSliceList
	if err := r.List(ctx, &list, client.InNamespace(as.Namespace), client.MatchingLabels{discoveryv1.LabelServiceName: colorServiceName(as, c)}); err != nil {
		return nil, "", err
	}
	var ready []discoveryv1.Endpoint
	family := discoveryv1.AddressTypeIPv4
	seen := map[string]bool{}
	for _, s := range list.Items {
		if len(ready) > 0 && s.AddressType != family {
			continue // one family: the first slice's
		}
		for _, e := range s.Endpoints {
			// Unknown readiness counts as ready, as for every consumer.
			if !ptr.Deref(e.Conditions.Ready, true) || ptr.Deref(e.Conditions.Terminating, false) || len(e.Addresses) == 0 || seen[e.Addresses[0]] {
				continue
			}
			seen[e.Addresses[0]], family = true, s.AddressType
			ready = append(ready, e)
		}
	}
	name := func(e discoveryv1.Endpoint) string {
		if e.TargetRef != nil {
			return e.TargetRef.Name
		}
		return e.Addresses[0]
	}
	slices.SortFunc(ready, func(a, b discoveryv1.Endpoint) int { return strings.Compare(name(a), name(b)) })
	return ready, family, nil
}

// splitService decides what the active Service serves for a plan: during a
// canary step, the nearest split of the colors' ready endpoints to the
// step's weight; otherwise the active color alone.
func (r *AuthServerReconciler) splitService(ctx context.Context, as *authv1alpha1.AuthServer, plan rollout.Plan) (serviceSplit, error) {
	active := plan.Status.ActiveColor
	out := serviceSplit{selector: active}
	if plan.Status.CanaryWeight <= 0 {
		return out, nil
	}
	oldReady, oldFamily, err := r.readyEndpoints(ctx, as, active)
	if err != nil {
		return out, err
	}
	newReady, newFamily, err := r.readyEndpoints(ctx, as, active.Other())
	if err != nil {
		return out, err
	}
	out.ServiceSplit = rollout.SplitService(plan.Status.CanaryWeight, len(oldReady), len(newReady))
	borrowed, family := newReady, newFamily
	if out.SelectNew {
		out.selector, borrowed, family = active.Other(), oldReady, oldFamily
	}
	if out.Borrow > 0 {
		out.slice = canarySlice(as, family, borrowed[:out.Borrow])
	}
	return out, nil
}

// canarySlice is an EndpointSlice of the active Service listing endpoints,
// with the Service's ports as the pods serve them.
func canarySlice(as *authv1alpha1.AuthServer, family discoveryv1.AddressType, endpoints []discoveryv1.Endpoint) *discoveryv1.EndpointSlice {
	ports := []discoveryv1.EndpointPort{{Name: ptr.To("http"), Protocol: ptr.To(corev1.ProtocolTCP), Port: ptr.To(as.Spec.Port)}}
	if w := as.Spec.TokenReviewWebhook; w != nil {
		ports = append(ports, discoveryv1.EndpointPort{Name: ptr.To(tokenReviewPortName), Protocol: ptr.To(corev1.ProtocolTCP), Port: ptr.To(tokenReviewPort(w))})
	}
	var out []discoveryv1.Endpoint
	for _, e := range endpoints {
		// Topology hints belong to the Service they were computed for.
		out = append(out, discoveryv1.Endpoint{Addresses: e.Addresses, TargetRef: e.TargetRef, NodeName: e.NodeName, Zone: e.Zone,
			Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(true), Serving: ptr.To(true), Terminating: ptr.To(false)}})
	}
	return &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{Namespace: as.Namespace, Name: canarySliceName(as), Labels: map[string]string{
			discoveryv1.LabelServiceName: as.Name, discoveryv1.LabelManagedBy: EndpointSliceManager,
			authv1alpha1.LabelManagedBy: authv1alpha1.ManagedByValue, LabelInstance: as.Name}},
		AddressType: family, Endpoints: out, Ports: ports,
	}
}

// writeSlice keeps the canary EndpointSlice as the split says, and deletes
// it when nothing is borrowed.
func (r *AuthServerReconciler) writeSlice(ctx context.Context, as *authv1alpha1.AuthServer, split serviceSplit) error {
	if split.slice == nil {
		return r.deleteIfOwned(ctx, as, &discoveryv1.EndpointSlice{ObjectMeta: metav1.ObjectMeta{Namespace: as.Namespace, Name: canarySliceName(as)}})
	}
	want := split.slice
	s := &discoveryv1.EndpointSlice{ObjectMeta: metav1.ObjectMeta{Namespace: want.Namespace, Name: want.Name}}
	return r.ensure(ctx, as, s, func() {
		s.Labels, s.AddressType, s.Endpoints, s.Ports = want.Labels, want.AddressType, want.Endpoints, want.Ports
	})
}

// writeColorServices keeps the colors' headless Services once
// spec.rollout.trafficRouting is set. They stay when it is unset (they
// cost no cluster IP; the operator may not delete Services) and go with the
// AuthServer.
func (r *AuthServerReconciler) writeColorServices(ctx context.Context, as *authv1alpha1.AuthServer) error {
	if as.Spec.Rollout.TrafficRouting == nil {
		return nil
	}
	for _, c := range []rollout.Color{rollout.Blue, rollout.Green} {
		want := colorService(as, c)
		svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: as.Namespace, Name: want.Name}}
		if err := r.ensure(ctx, as, svc, func() {
			svc.Labels, svc.Spec.Selector, svc.Spec.Ports, svc.Spec.ClusterIP = want.Labels, want.Spec.Selector, want.Spec.Ports, want.Spec.ClusterIP
		}); err != nil {
			return err
		}
	}
	return nil
}

// slicesOfAuthServer enqueues the AuthServer whose Services' EndpointSlices
// changed (the EndpointSlice controller copies the Services' labels onto
// them), so a borrowed endpoint that goes unready leaves the canary
// EndpointSlice at once.
func slicesOfAuthServer() handler.EventHandler {
	return handler.EnqueueRequestsFromMapFunc(func(_ context.Context, obj client.Object) []reconcile.Request {
		name := obj.GetLabels()[LabelInstance]
		if name == "" {
			return nil
		}
		return []reconcile.Request{{NamespacedName: client.ObjectKey{Namespace: obj.GetNamespace(), Name: name}}}
	})
}
