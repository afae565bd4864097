package controllers

import (
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	authv1alpha1 "github.com/authframework/authframework/api/v1alpha1"
	"github.com/authframework/authframework/internal/keys"
	"github.com/authframework/authframework/internal/rotation"
)

// rotationPolicy is what of a TokenPolicy's spec the key schedule needs.
func rotationPolicy(p *authv1alpha1.TokenPolicy) rotation.Policy {
	return rotation.Policy{
		Algorithm:   string(p.Spec.Algorithm),
		Period:      p.Spec.Rotation.Period.Duration,
		PrePublish:  p.Spec.Rotation.PrePublish.Duration,
		MaxTokenTTL: p.Spec.AccessTokenTTL.Duration,
		ClockSkew:   p.Spec.ClockSkew.Duration,
	}
}

// scheduleFromStatus converts the status key list to the rotation core's.
func scheduleFromStatus(ks []authv1alpha1.KeyStatus) []rotation.Key {
	out := make([]rotation.Key, 0, len(ks))
	for _, k := range ks {
		out = append(out, rotation.Key{
			ID:          k.KeyID,
			Algorithm:   string(k.Algorithm),
			State:       rotation.State(k.State),
			CreatedAt:   k.CreatedAt.UTC(),
			ActivatesAt: k.ActivatesAt.UTC(),
			RetiresAt:   timeOf(k.RetiresAt),
			RemoveAfter: timeOf(k.RemoveAfter),
		})
	}
	return out
}

// scheduleToStatus converts the rotation core's key list to status.
func scheduleToStatus(ks []rotation.Key) []authv1alpha1.KeyStatus {
	out := make([]authv1alpha1.KeyStatus, 0, len(ks))
	for _, k := range ks {
		out = append(out, authv1alpha1.KeyStatus{
			KeyID:       k.ID,
			Algorithm:   authv1alpha1.SigningAlgorithm(k.Algorithm),
			State:       authv1alpha1.KeyState(k.State),
			CreatedAt:   metav1.NewTime(k.CreatedAt),
			ActivatesAt: metav1.NewTime(k.ActivatesAt),
			RetiresAt:   metaTimeOf(k.RetiresAt),
			RemoveAfter: metaTimeOf(k.RemoveAfter),
		})
	}
	return out
}

// keyAccounting splits the keys status lists by whether their private
// material is still held. Revoked keys never need material. Lost keys are
// published keys with no material anywhere: their tokens can no longer be
// verified by anyone who fetches the JWKS anew.
func keyAccounting(schedule []rotation.Key, held map[string]keys.Key) (usable []rotation.Key, lost []string) {
	for _, k := range schedule {
		if _, ok := held[k.ID]; ok || !k.State.Publishes() {
			usable = append(usable, k)
			continue
		}
		lost = append(lost, k.ID)
	}
	return usable, lost
}

// nextRotation is when the next key becomes active: the pending key's
// activation, else the active key's planned retirement.
func nextRotation(ks []rotation.Key) time.Time {
	for _, k := range ks {
		if k.State == rotation.Published {
			return k.ActivatesAt
		}
	}
	if a, ok := rotation.ActiveKey(ks); ok {
		return a.RetiresAt
	}
	return time.Time{}
}

// requeueAfter turns the next transition into a requeue delay that is never
// zero or negative: a transition already due is looked at again in a second.
func requeueAfter(next, now time.Time) time.Duration {
	d := next.Sub(now)
	if d < time.Second {
		return time.Second
	}
	return d
}

func timeOf(t *metav1.Time) time.Time {
	if t == nil {
		return time.Time{}
	}
	return t.UTC()
}

func metaTimeOf(t time.Time) *metav1.Time {
	if t.IsZero() {
		return nil
	}
	mt := metav1.NewTime(t)
	return &mt
}
