package controllers

import (
	"testing"
	"time"

	authv1alpha1 "github.com/authframework/authframework/api/v1alpha1"
	"github.com/authframework/authframework/internal/credentials"
)

func TestNextVerifierKeepsTheDeliveredSecret(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	// An interrupted rotation left the verifier with an undelivered secret;
	// the workload still holds "delivered". The next rotation must keep
	// "delivered" working, not the secret nobody has.
	old := credentials.Verifier{Current: credentials.Hash("undelivered"), Previous: credentials.Hash("delivered"), PreviousExpiresAt: now.Add(time.Hour)}
	d := credentials.SecretDecision{Rotate: true, State: credentials.SecretState{CurrentSince: now, PreviousUntil: now.Add(24 * time.Hour)}}
	v := nextVerifier(old, d, "delivered", "fresh")
	if !v.Check("fresh", now) || !v.Check("delivered", now) || v.Check("undelivered", now) {
		t.Errorf("verifier after rotation: fresh %v, delivered %v, undelivered %v", v.Check("fresh", now), v.Check("delivered", now), v.Check("undelivered", now))
	}
	// Dropping the previous secret keeps only the current one.
	d = credentials.SecretDecision{DropPrevious: true, State: credentials.SecretState{CurrentSince: now}}
	v = nextVerifier(v, d, "fresh", "fresh")
	if v.Previous != "" || !v.Check("fresh", now) || v.Check("delivered", now) {
		t.Errorf("after dropping the previous: %+v", v)
	}
}

func TestClientIDAndTokenSecretName(t *testing.T) {
	sa := &authv1alpha1.ServiceAccount{}
	sa.Namespace, sa.Name = "team", "billing"
	if got := ClientID(sa); got != "team.billing" {
		t.Errorf("default client id %q", got)
	}
	sa.Spec.ClientID = "billing-prod"
	if got := ClientID(sa); got != "billing-prod" {
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
