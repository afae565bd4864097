package controllers

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	authv1alpha1 "github.com/authframework/authframework/api/v1alpha1"
	"github.com/authframework/authframework/internal/rollout"
)

func TestTrustedProxiesReachThePods(t *testing.T) {
	as := &authv1alpha1.AuthServer{Spec: authv1alpha1.AuthServerSpec{Image: "img", Port: 8080}}
	as.Name, as.Namespace = "auth", "ns"
	// Without the field the hash is what it was before the field existed,
	// so an operator upgrade rolls nothing out.
	s := as.Spec
	b, _ := json.Marshal([]any{s.Image, s.ImagePullPolicy, s.ImagePullSecrets, s.Args, s.Env, s.Resources, s.Port,
		s.WatchNamespaces, s.ResponseHeaders, s.ResultCacheSize, s.NodeSelector, s.Tolerations, s.PriorityClassName})
	sum := sha256.Sum256(b)
	before := TemplateHash(as)
	if before != hex.EncodeToString(sum[:5]) {
		t.Errorf("template hash without trustedProxies changed: %s", before)
	}
	if args := podTemplate(as, rollout.Blue, before).Spec.Containers[0].Args; slices.ContainsFunc(args, func(a string) bool { return len(a) > 17 && a[:17] == "--trusted-proxies" }) {
		t.Errorf("args without trustedProxies: %v", args)
	}

	as.Spec.TrustedProxies = []string{"10.0.0.0/8", "fd00::/8"}
	after := TemplateHash(as)
	if after == before {
		t.Error("trustedProxies must change the template (it changes the pods' args)")
	}
	args := podTemplate(as, rollout.Blue, after).Spec.Containers[0].Args
	if !slices.Contains(args, "--trusted-proxies=10.0.0.0/8,fd00::/8") {
		t.Errorf("args %v", args)
	}
}

func TestKubernetesIdentityReachesThePods(t *testing.T) {
	base := &authv1alpha1.AuthServer{Spec: authv1alpha1.AuthServerSpec{Image: "img", Port: 8080}}
	base.Name, base.Namespace = "auth", "ns"
	plain := TemplateHash(base)
	pod := podTemplate(base, rollout.Blue, plain).Spec
	if args := strings.Join(pod.Containers[0].Args, " "); strings.Contains(args, "--token-exchange") || strings.Contains(args, "--tokenreview") {
		t.Errorf("args without tokenExchange or tokenReviewWebhook: %s", args)
	}
	if len(pod.Volumes) != 0 || len(service(base, "auth", rollout.Blue).Spec.Ports) != 1 {
		t.Errorf("volumes %v or Service ports without tokenReviewWebhook", pod.Volumes)
	}

	ttl := metav1.Duration{Duration: 30 * time.Second}
	for _, tc := range []struct {
		name      string
		spec      func(*authv1alpha1.AuthServerSpec)
		wantArgs  []string
		wantPort  int32
		wantCAKey string
		caFrom    string
	}{
		{name: "token exchange, audience and cache TTL",
			spec: func(s *authv1alpha1.AuthServerSpec) {
				s.TokenExchange = &authv1alpha1.TokenExchangeSpec{Audience: "ours", CacheTTL: &ttl}
			},
			wantArgs: []string{"--token-exchange-audience=ours", "--token-exchange-cache-ttl=30s"}},
		{name: "token exchange stored before the audience default existed",
			spec:     func(s *authv1alpha1.AuthServerSpec) { s.TokenExchange = &authv1alpha1.TokenExchangeSpec{} },
			wantArgs: []string{"--token-exchange-audience=authframework"}},
		{name: "tokenreview webhook, client CA in a ConfigMap, prefixes",
			spec: func(s *authv1alpha1.AuthServerSpec) {
				s.TokenReviewWebhook = &authv1alpha1.TokenReviewWebhookSpec{Port: 9443, TLSSecretName: "auth-tls",
					ClientCA:       authv1alpha1.CABundleSource{ConfigMap: &authv1alpha1.KeyRef{Name: "apiserver-ca", Key: "client-ca.pem"}},
					UsernamePrefix: ptr.To("af:"), GroupsPrefix: ptr.To("")}
			},
			wantArgs: []string{"--tokenreview-listen=:9443", "--tokenreview-tls-cert-file=/etc/authframework/tokenreview/tls/tls.crt",
				"--tokenreview-tls-key-file=/etc/authframework/tokenreview/tls/tls.key", "--tokenreview-client-ca-file=/etc/authframework/tokenreview/client-ca/ca.crt",
				"--tokenreview-username-prefix=af:", "--tokenreview-groups-prefix="},
			wantPort: 9443, wantCAKey: "client-ca.pem", caFrom: "configMap"},
		{name: "tokenreview webhook, client CA in a Secret, default key and port",
			spec: func(s *authv1alpha1.AuthServerSpec) {
				s.TokenReviewWebhook = &authv1alpha1.TokenReviewWebhookSpec{TLSSecretName: "auth-tls",
					ClientCA: authv1alpha1.CABundleSource{Secret: &authv1alpha1.KeyRef{Name: "apiserver-ca"}}}
			},
			wantArgs: []string{"--tokenreview-listen=:8443"}, wantPort: 8443, wantCAKey: "ca.crt", caFrom: "secret"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			as := base.DeepCopy()
			tc.spec(&as.Spec)
			hash := TemplateHash(as)
			if hash == plain {
				t.Error("the template hash did not change: the pods would not roll out")
			}
			pod := podTemplate(as, rollout.Blue, hash).Spec
			c := pod.Containers[0]
			for _, want := range tc.wantArgs {
				if !slices.Contains(c.Args, want) {
					t.Errorf("args %v lack %s", c.Args, want)
				}
			}
			if tc.wantPort == 0 {
				if len(pod.Volumes) != 0 || len(c.Ports) != 1 {
					t.Errorf("volumes %v ports %v without the webhook", pod.Volumes, c.Ports)
				}
				return
			}
			if len(c.Ports) != 2 || c.Ports[1].Name != "tokenreview" || c.Ports[1].ContainerPort != tc.wantPort {
				t.Errorf("container ports %+v", c.Ports)
			}
			svc := service(as, "auth", rollout.Blue).Spec.Ports
			if len(svc) != 2 || svc[1].Port != 443 || svc[1].TargetPort.StrVal != "tokenreview" {
				t.Errorf("Service ports %+v", svc)
			}
			if len(pod.Volumes) != 2 || pod.Volumes[0].Secret == nil || pod.Volumes[0].Secret.SecretName != "auth-tls" {
				t.Fatalf("volumes %+v", pod.Volumes)
			}
			ca := pod.Volumes[1]
			var items []corev1.KeyToPath
			switch {
			case tc.caFrom == "configMap" && ca.ConfigMap != nil && ca.ConfigMap.Name == "apiserver-ca":
				items = ca.ConfigMap.Items
			case tc.caFrom == "secret" && ca.Secret != nil && ca.Secret.SecretName == "apiserver-ca":
				items = ca.Secret.Items
			default:
				t.Fatalf("client CA volume %+v, want from a %s", ca, tc.caFrom)
			}
			if len(items) != 1 || items[0].Key != tc.wantCAKey || items[0].Path != "ca.crt" {
				t.Errorf("client CA items %+v", items)
			}
			for _, m := range c.VolumeMounts {
				if !m.ReadOnly {
					t.Errorf("mount %s is writable", m.Name)
				}
			}
		})
	}
}
