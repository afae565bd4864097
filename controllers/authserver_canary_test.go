package controllers

import (
	"strings"
	"testing"

	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	authv1alpha1 "github.com/authframework/authframework/api/v1alpha1"
)

func ingressPath(path, service string) networkingv1.HTTPIngressPath {
	return networkingv1.HTTPIngressPath{Path: path, PathType: ptr.To(networkingv1.PathTypePrefix),
		Backend: networkingv1.IngressBackend{Service: &networkingv1.IngressServiceBackend{Name: service, Port: networkingv1.ServiceBackendPort{Name: "http"}}}}
}

func ingressRule(host string, paths ...networkingv1.HTTPIngressPath) networkingv1.IngressRule {
	return networkingv1.IngressRule{Host: host, IngressRuleValue: networkingv1.IngressRuleValue{HTTP: &networkingv1.HTTPIngressRuleValue{Paths: paths}}}
}

func TestCanaryIngress(t *testing.T) {
	as := &authv1alpha1.AuthServer{ObjectMeta: metav1.ObjectMeta{Namespace: "auth", Name: "auth"},
		Spec: authv1alpha1.AuthServerSpec{Rollout: authv1alpha1.RolloutSpec{TrafficRouting: &authv1alpha1.TrafficRoutingSpec{Ingress: "api"}}}}
	base := &networkingv1.Ingress{ObjectMeta: metav1.ObjectMeta{Namespace: "auth", Name: "api",
		Annotations: map[string]string{"nginx.ingress.kubernetes.io/proxy-body-size": "1m"}},
		Spec: networkingv1.IngressSpec{IngressClassName: ptr.To("nginx"), Rules: []networkingv1.IngressRule{
			ingressRule("auth.example.com", ingressPath("/oauth2", "auth"), ingressPath("/docs", "docs")),
			ingressRule("other.example.com", ingressPath("/", "other")),
			{Host: "no-http.example.com"},
		}}}

	got, err := canaryIngress(as, base, 25)
	if err != nil {
		t.Fatal(err)
	}
	if got.Name != "api-canary" || got.Namespace != "auth" || ptr.Deref(got.Spec.IngressClassName, "") != "nginx" {
		t.Errorf("metadata %s/%s class %v", got.Namespace, got.Name, got.Spec.IngressClassName)
	}
	if got.Annotations[AnnotationNginxCanary] != "true" || got.Annotations[AnnotationNginxCanaryWeight] != "25" || len(got.Annotations) != 2 {
		t.Errorf("annotations %v", got.Annotations)
	}
	if len(got.Spec.Rules) != 1 || got.Spec.Rules[0].Host != "auth.example.com" || len(got.Spec.Rules[0].HTTP.Paths) != 1 {
		t.Fatalf("only the paths to the active Service: %+v", got.Spec.Rules)
	}
	p := got.Spec.Rules[0].HTTP.Paths[0]
	if p.Path != "/oauth2" || p.Backend.Service.Name != "auth-preview" || p.Backend.Service.Port.Name != "http" {
		t.Errorf("path %+v backend %+v", p, p.Backend.Service)
	}
	if base.Spec.Rules[0].HTTP.Paths[0].Backend.Service.Name != "auth" {
		t.Error("the base Ingress was modified")
	}

	for name, tc := range map[string]struct {
		base *networkingv1.Ingress
		want string
	}{
		"no path to the Service": {&networkingv1.Ingress{ObjectMeta: metav1.ObjectMeta{Name: "api"},
			Spec: networkingv1.IngressSpec{Rules: []networkingv1.IngressRule{ingressRule("x", ingressPath("/", "other"))}}}, "no path to Service auth"},
		"a canary itself": {&networkingv1.Ingress{ObjectMeta: metav1.ObjectMeta{Name: "api", Annotations: map[string]string{AnnotationNginxCanary: "true"}},
			Spec: networkingv1.IngressSpec{Rules: []networkingv1.IngressRule{ingressRule("x", ingressPath("/", "auth"))}}}, "itself a canary"},
	} {
		if _, err := canaryIngress(as, tc.base, 10); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v", name, err)
		}
	}
}
