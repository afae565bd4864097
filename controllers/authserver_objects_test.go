package controllers

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"slices"
	"testing"

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
