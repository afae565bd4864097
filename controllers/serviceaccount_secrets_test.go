package controllers

import (
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	authv1alpha1 "github.com/authframework/authframework/api/v1alpha1"
	"github.com/authframework/authframework/internal/credentials"
)

func TestDecodeVerifier(t *testing.T) {
	if decodeVerifier(nil) != nil || decodeVerifier([]byte("{")) != nil || decodeVerifier([]byte(`{"previous":"ab"}`)) != nil {
		t.Error("a missing, damaged or current-less verifier must read as lost")
	}
	v := decodeVerifier([]byte(`{"current":"aa","previous":"bb","previousExpiresAt":"2026-01-01T00:00:00Z","earlier":[{"hash":"cc","expiresAt":"2026-01-01T00:00:00Z"}]}`))
	if v == nil || v.Current != "aa" || len(v.Graces()) != 2 {
		t.Errorf("decoded %+v", v)
	}
}

func TestSecretFaultReason(t *testing.T) {
	sa := &authv1alpha1.ServiceAccount{}
	sa.Name = "billing"
	until := time.Date(2026, 1, 2, 0, 0, 0, 0, time.UTC)
	cases := []struct {
		d      credentials.SecretDecision
		reason string
		says   string
	}{
		{credentials.SecretDecision{Fault: credentials.SecretLost, LostUntil: until}, authv1alpha1.ReasonSecretLost, "keeps working until 2026-01-02T00:00:00Z"},
		{credentials.SecretDecision{Fault: credentials.SecretLost}, authv1alpha1.ReasonSecretLost, "stopped working at once"},
		{credentials.SecretDecision{Fault: credentials.SecretsLost}, authv1alpha1.ReasonSecretsLost, "no longer works"},
		{credentials.SecretDecision{Fault: credentials.VerifierRestored}, authv1alpha1.ReasonVerifierRestored, "rebuilt from Secret billing-credentials"},
		{credentials.SecretDecision{}, "", ""},
	}
	for _, c := range cases {
		reason, msg := secretFaultReason(sa, c.d)
		if reason != c.reason || !strings.Contains(msg, c.says) {
			t.Errorf("%s: reason %q, message %q", c.d.Fault, reason, msg)
		}
	}
}

func TestClientIDAndTokenSecretName(t *testing.T) {
	sa := &authv1alpha1.ServiceAccount{}
	sa.Namespace, sa.Name = "team", "billing"
	if got := sa.EffectiveClientID(); got != "team.billing" {
		t.Errorf("default client id %q", got)
	}
	sa.Spec.ClientID = "billing-prod"
	if got := sa.EffectiveClientID(); got != "billing-prod" {
		t.Errorf("explicit client id %q", got)
	}
	if got := tokenSecretName(sa); got != "billing-token" {
		t.Errorf("default token Secret %q", got)
	}
	sa.Spec.TokenSecret = &authv1alpha1.TokenSecretSpec{SecretName: "mounted"}
	if got := tokenSecretName(sa); got != "mounted" {
		t.Errorf("token Secret %q", got)
	}
}

// TestOwnData: a Secret controlled by a deleted object of the same name is
// not the new object's, whatever its name says.
func TestOwnData(t *testing.T) {
	sa := &authv1alpha1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "billing", UID: "new"}}
	ctrl := func(uid types.UID) *corev1.Secret {
		yes := true
		return &corev1.Secret{ObjectMeta: metav1.ObjectMeta{OwnerReferences: []metav1.OwnerReference{{Kind: "ServiceAccount", Name: "billing", UID: uid, Controller: &yes}}}}
	}
	for _, c := range []struct {
		name string
		s    *corev1.Secret
		own  bool
	}{{"absent", nil, false}, {"no controller", &corev1.Secret{}, true}, {"this object", ctrl("new"), true}, {"a deleted object of the same name", ctrl("old"), false}} {
		if got := ownData(c.s, sa) != nil; got != c.own {
			t.Errorf("%s: own %v", c.name, got)
		}
	}
}
