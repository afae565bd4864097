package controllers

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	authv1alpha1 "github.com/authframework/authframework/api/v1alpha1"
)

func TestCanarySlice(t *testing.T) {
	as := &authv1alpha1.AuthServer{ObjectMeta: metav1.ObjectMeta{Namespace: "auth", Name: "auth"}, Spec: authv1alpha1.AuthServerSpec{Port: 8080,
		TokenReviewWebhook: &authv1alpha1.TokenReviewWebhookSpec{Port: 8443}}}
	borrowed := []discoveryv1.Endpoint{{Addresses: []string{"10.0.0.7"}, NodeName: ptr.To("node-a"), Zone: ptr.To("a"),
		TargetRef: &corev1.ObjectReference{Kind: "Pod", Namespace: "auth", Name: "auth-green-1"},
		Hints:     &discoveryv1.EndpointHints{ForZones: []discoveryv1.ForZone{{Name: "a"}}}}}
	s := canarySlice(as, discoveryv1.AddressTypeIPv4, borrowed)
	if s.Name != "auth-canary" || s.Namespace != "auth" || s.Labels[discoveryv1.LabelServiceName] != "auth" ||
		s.Labels[discoveryv1.LabelManagedBy] != EndpointSliceManager || s.Labels[authv1alpha1.LabelManagedBy] != authv1alpha1.ManagedByValue {
		t.Errorf("metadata %s/%s %v", s.Namespace, s.Name, s.Labels)
	}
	if s.AddressType != discoveryv1.AddressTypeIPv4 || len(s.Endpoints) != 1 {
		t.Fatalf("%s with %d endpoints", s.AddressType, len(s.Endpoints))
	}
	e := s.Endpoints[0]
	if e.Addresses[0] != "10.0.0.7" || !ptr.Deref(e.Conditions.Ready, false) || !ptr.Deref(e.Conditions.Serving, false) || ptr.Deref(e.Conditions.Terminating, true) ||
		e.TargetRef.Name != "auth-green-1" || ptr.Deref(e.NodeName, "") != "node-a" || ptr.Deref(e.Zone, "") != "a" || e.Hints != nil {
		t.Errorf("endpoint %+v", e)
	}
	// The active Service's port names, with the ports the pods listen on.
	if len(s.Ports) != 2 || *s.Ports[0].Name != "http" || *s.Ports[0].Port != 8080 || *s.Ports[1].Name != tokenReviewPortName || *s.Ports[1].Port != 8443 {
		t.Errorf("ports %+v", s.Ports)
	}
	if c := colorService(as, "green"); c.Name != "auth-green-pods" || c.Spec.ClusterIP != corev1.ClusterIPNone || c.Spec.Selector[LabelColor] != "green" || len(c.Spec.Ports) != 2 {
		t.Errorf("color Service %+v", c)
	}
}
