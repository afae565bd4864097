package main

import (
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	authv1alpha1 "github.com/authframework/authframework/api/v1alpha1"
	"github.com/authframework/authframework/internal/kubeuser"
)

func TestKubeAuthnConfig(t *testing.T) {
	policy := func(issuer string) *authv1alpha1.TokenPolicy {
		return &authv1alpha1.TokenPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: "team", Name: "orders"},
			Spec: authv1alpha1.TokenPolicySpec{Issuer: issuer, Audiences: []string{"orders-api", "https://kubernetes.default.svc", "kube-b"}}}
	}
	opts := func(auds ...string) kubeAuthnOptions {
		return kubeAuthnOptions{audiences: auds, names: kubeuser.DefaultNames}
	}
	cases := []struct {
		name    string
		p       *authv1alpha1.TokenPolicy
		o       kubeAuthnOptions
		wantErr string
	}{
		{"one audience", policy("https://auth.example.com/issuers/team/orders"), opts("https://kubernetes.default.svc"), ""},
		{"two audiences", policy("https://auth.example.com/issuers/team/orders"), opts("https://kubernetes.default.svc", "kube-b"), ""},
		{"http issuer", policy("http://127.0.0.1:8080/issuers/team/orders"), opts("https://kubernetes.default.svc"), "needs an https issuer"},
		{"audience the policy lacks", policy("https://auth.example.com/issuers/team/orders"), opts("https://other"), `audience "https://other" is not one of TokenPolicy team/orders's audiences`},
		{"empty prefix", policy("https://auth.example.com/issuers/team/orders"), kubeAuthnOptions{audiences: []string{"kube-b"}, names: kubeuser.Names{UsernamePrefix: "a:"}}, "groups prefix"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ac, err := kubeAuthnConfig(c.p, c.o, "CA PEM")
			if c.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), c.wantErr) {
					t.Fatalf("error %v, want %q", err, c.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			is := ac.JWT[0].Issuer
			if ac.Kind != "AuthenticationConfiguration" || ac.APIVersion != "apiserver.config.k8s.io/v1" || len(ac.JWT) != 1 ||
				is.URL != c.p.Spec.Issuer || strings.Join(is.Audiences, ",") != strings.Join(c.o.audiences, ",") || is.CertificateAuthority != "CA PEM" {
				t.Errorf("config %+v", ac)
			}
			if (len(c.o.audiences) > 1) != (is.AudienceMatchPolicy == "MatchAny") {
				t.Errorf("audienceMatchPolicy %q for %d audiences", is.AudienceMatchPolicy, len(c.o.audiences))
			}
		})
	}
}
