package controllers

import (
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/event"

	authv1alpha1 "github.com/authframework/authframework/api/v1alpha1"
)

// TestPolicySigningWatch: a policy's update reaches its accounts when it
// changes what they read (spec, active key, published keys), and not when
// only its conditions or next rotation time move.
func TestPolicySigningWatch(t *testing.T) {
	base := func() *authv1alpha1.TokenPolicy {
		return &authv1alpha1.TokenPolicy{
			ObjectMeta: metav1.ObjectMeta{Name: "orders", Generation: 3},
			Status: authv1alpha1.TokenPolicyStatus{ActiveKeyID: "k1",
				Keys: []authv1alpha1.KeyStatus{{KeyID: "k1", State: "Active"}}},
		}
	}
	cases := []struct {
		name   string
		change func(p *authv1alpha1.TokenPolicy)
		want   bool
	}{
		{"nothing", func(*authv1alpha1.TokenPolicy) {}, false},
		{"conditions only", func(p *authv1alpha1.TokenPolicy) {
			p.Status.Conditions = []metav1.Condition{{Type: authv1alpha1.ConditionReady, Status: metav1.ConditionTrue}}
		}, false},
		{"next rotation only", func(p *authv1alpha1.TokenPolicy) { p.Status.NextRotationTime = &metav1.Time{} }, false},
		{"spec (generation)", func(p *authv1alpha1.TokenPolicy) { p.Generation++ }, true},
		{"active key", func(p *authv1alpha1.TokenPolicy) { p.Status.ActiveKeyID = "k2" }, true},
		{"a key published", func(p *authv1alpha1.TokenPolicy) {
			p.Status.Keys = append(p.Status.Keys, authv1alpha1.KeyStatus{KeyID: "k2", State: "Published"})
		}, true},
		{"a key's state", func(p *authv1alpha1.TokenPolicy) { p.Status.Keys[0].State = "Retired" }, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			old, updated := base(), base()
			c.change(updated)
			if got := policySigningWatch.Update(event.UpdateEvent{ObjectOld: old, ObjectNew: updated}); got != c.want {
				t.Errorf("passes the update: got %v, want %v", got, c.want)
			}
		})
	}
}
