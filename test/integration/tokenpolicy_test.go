package integration

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	authv1alpha1 "github.com/authframework/authframework/api/v1alpha1"
	"github.com/authframework/authframework/controllers"
	"github.com/authframework/authframework/internal/keys"
	"github.com/authframework/authframework/test/testenv"
)

func getPolicy(t *testing.T, key types.NamespacedName) *authv1alpha1.TokenPolicy {
	t.Helper()
	var p authv1alpha1.TokenPolicy
	if err := k8sClient.Get(context.Background(), key, &p); err != nil {
		t.Fatal(err)
	}
	return &p
}

// secretKids reads the key ids in the policy's key Secret.
func secretKids(key types.NamespacedName) ([]string, error) {
	var s corev1.Secret
	if err := k8sClient.Get(context.Background(), types.NamespacedName{Namespace: key.Namespace, Name: key.Name + authv1alpha1.KeySecretSuffix}, &s); err != nil {
		return nil, err
	}
	ks, err := keys.ParsePrivate(s.Data[authv1alpha1.KeySetDataKey])
	if err != nil {
		return nil, err
	}
	var ids []string
	for _, k := range ks {
		ids = append(ids, k.ID)
	}
	sort.Strings(ids)
	return ids, nil
}

func publishedKids(p *authv1alpha1.TokenPolicy) []string {
	var ids []string
	for _, k := range p.Status.Keys {
		if k.State != authv1alpha1.KeyRevoked {
			ids = append(ids, k.KeyID)
		}
	}
	sort.Strings(ids)
	return ids
}

func keyStates(p *authv1alpha1.TokenPolicy) map[string]authv1alpha1.KeyState {
	m := map[string]authv1alpha1.KeyState{}
	for _, k := range p.Status.Keys {
		m[k.KeyID] = k.State
	}
	return m
}

// waitFor polls the policy until cond holds, then returns it.
func waitFor(t *testing.T, key types.NamespacedName, what string, cond func(p *authv1alpha1.TokenPolicy) error) *authv1alpha1.TokenPolicy {
	t.Helper()
	var p *authv1alpha1.TokenPolicy
	testenv.Eventually(t, what, func() error {
		p = getPolicy(t, key)
		return cond(p)
	})
	return p
}

func TestTokenPolicyKeysRotate(t *testing.T) {
	ctx := context.Background()
	ns := newNamespace(t)
	key := types.NamespacedName{Namespace: ns, Name: "orders"}
	policy := &authv1alpha1.TokenPolicy{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: key.Name},
		Spec: authv1alpha1.TokenPolicySpec{
			Issuer:    "https://auth.example.com/issuers/" + ns + "/orders",
			Audiences: []string{"orders-api"},
		},
	}
	if err := k8sClient.Create(ctx, policy); err != nil {
		t.Fatal(err)
	}

	// 1. A key Secret and status appear.
	p := waitFor(t, key, "first key", func(p *authv1alpha1.TokenPolicy) error {
		if p.Status.ActiveKeyID == "" || !meta.IsStatusConditionTrue(p.Status.Conditions, authv1alpha1.ConditionReady) {
			return fmt.Errorf("status %+v", p.Status)
		}
		return nil
	})
	first := p.Status.ActiveKeyID
	if p.Status.ObservedGeneration != p.Generation || p.Status.KeySecretName != key.Name+authv1alpha1.KeySecretSuffix {
		t.Errorf("status: observedGeneration %d (generation %d), secret %q", p.Status.ObservedGeneration, p.Generation, p.Status.KeySecretName)
	}
	k0 := p.Status.Keys[0]
	if k0.Algorithm != authv1alpha1.ES256 || k0.RetiresAt == nil || k0.RetiresAt.Sub(k0.ActivatesAt.Time) != 720*time.Hour {
		t.Errorf("first key %+v", k0)
	}
	if !p.Status.NextRotationTime.Equal(k0.RetiresAt) {
		t.Errorf("next rotation %v, want %v", p.Status.NextRotationTime, k0.RetiresAt)
	}
	var secret corev1.Secret
	if err := k8sClient.Get(ctx, types.NamespacedName{Namespace: ns, Name: p.Status.KeySecretName}, &secret); err != nil {
		t.Fatal(err)
	}
	if secret.Labels[authv1alpha1.LabelManagedBy] != authv1alpha1.ManagedByValue || !metav1.IsControlledBy(&secret, p) {
		t.Errorf("key Secret labels %v, owners %v", secret.Labels, secret.OwnerReferences)
	}
	if kids, _ := secretKids(key); !slices.Equal(kids, []string{first}) {
		t.Errorf("Secret kids %v, want [%s]", kids, first)
	}

	// 2. At the pre-publish time the next key is published; at the rotation
	// time it activates and the first retires.
	rotationAt := p.Status.NextRotationTime.Time
	fakeClock.SetTime(rotationAt.Add(-time.Hour))
	testenv.Poke(t, k8sClient, &authv1alpha1.TokenPolicy{}, key)
	p = waitFor(t, key, "next key published", func(p *authv1alpha1.TokenPolicy) error {
		if len(p.Status.Keys) != 2 {
			return fmt.Errorf("keys %v", keyStates(p))
		}
		return nil
	})
	second := p.Status.Keys[0].KeyID
	if p.Status.Keys[0].State != authv1alpha1.KeyPublished || p.Status.ActiveKeyID != first {
		t.Errorf("after publish: %v, active %s", keyStates(p), p.Status.ActiveKeyID)
	}
	testenv.Eventually(t, "Secret holds the published key", func() error {
		if kids, err := secretKids(key); err != nil || len(kids) != 2 {
			return fmt.Errorf("kids %v, %v", kids, err)
		}
		return nil
	})

	fakeClock.SetTime(rotationAt)
	testenv.Poke(t, k8sClient, &authv1alpha1.TokenPolicy{}, key)
	p = waitFor(t, key, "next key active", func(p *authv1alpha1.TokenPolicy) error {
		if p.Status.ActiveKeyID != second {
			return fmt.Errorf("keys %v", keyStates(p))
		}
		return nil
	})
	if keyStates(p)[first] != authv1alpha1.KeyRetired {
		t.Errorf("first key not retired: %v", keyStates(p))
	}
	if c := meta.FindStatusCondition(p.Status.Conditions, authv1alpha1.ConditionKeysRotated); c == nil || c.Reason != "KeyActivated" {
		t.Errorf("KeysRotated condition %+v", c)
	}

	// 3. The rotate annotation publishes a new key now, active after the lead.
	testenv.Annotate(t, k8sClient, &authv1alpha1.TokenPolicy{}, key, authv1alpha1.AnnotationRotate, "r1")
	p = waitFor(t, key, "rotation requested", func(p *authv1alpha1.TokenPolicy) error {
		if p.Status.LastRotateRequest != "r1" {
			return fmt.Errorf("lastRotateRequest %q", p.Status.LastRotateRequest)
		}
		return nil
	})
	third := p.Status.Keys[0].KeyID
	if p.Status.Keys[0].State != authv1alpha1.KeyPublished || !p.Status.Keys[0].ActivatesAt.Time.Equal(fakeClock.Now().Add(time.Hour).Truncate(time.Second)) {
		t.Errorf("requested key %+v at %v", p.Status.Keys[0], fakeClock.Now())
	}
	fakeClock.Step(time.Hour)
	testenv.Poke(t, k8sClient, &authv1alpha1.TokenPolicy{}, key)
	waitFor(t, key, "requested key active", func(p *authv1alpha1.TokenPolicy) error {
		if p.Status.ActiveKeyID != third {
			return fmt.Errorf("keys %v", keyStates(p))
		}
		return nil
	})

	// 4. A deleted Secret comes back with the same keys.
	before := publishedKids(getPolicy(t, key))
	if err := k8sClient.Delete(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: key.Name + authv1alpha1.KeySecretSuffix}}); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, "Secret restored with the same keys", func() error {
		kids, err := secretKids(key)
		if err != nil || !slices.Equal(kids, before) {
			return fmt.Errorf("kids %v (want %v), %v", kids, before, err)
		}
		return nil
	})
	// So does a damaged one.
	damage(t, key)
	testenv.Eventually(t, "damaged Secret restored", func() error {
		kids, err := secretKids(key)
		if err != nil || !slices.Equal(kids, before) {
			return fmt.Errorf("kids %v (want %v), %v", kids, before, err)
		}
		return nil
	})
	if p := getPolicy(t, key); p.Status.ActiveKeyID != third {
		t.Errorf("restoring changed the active key to %s", p.Status.ActiveKeyID)
	}

	// 5. Revoking a retired key removes it from the set at once; revoking the
	// active key activates a new one at once.
	p = getPolicy(t, key)
	testenv.Update(t, k8sClient, p, func() { p.Spec.RevokedKeys = []string{second} })
	waitFor(t, key, "retired key revoked", func(p *authv1alpha1.TokenPolicy) error {
		if keyStates(p)[second] != authv1alpha1.KeyRevoked {
			return fmt.Errorf("keys %v", keyStates(p))
		}
		return nil
	})
	testenv.Eventually(t, "revoked key gone from the Secret", func() error {
		kids, err := secretKids(key)
		if err != nil || slices.Contains(kids, second) {
			return fmt.Errorf("kids %v, %v", kids, err)
		}
		return nil
	})
	testenv.Annotate(t, k8sClient, &authv1alpha1.TokenPolicy{}, key, authv1alpha1.AnnotationRevokeKey, third)
	p = waitFor(t, key, "active key revoked", func(p *authv1alpha1.TokenPolicy) error {
		if keyStates(p)[third] != authv1alpha1.KeyRevoked || p.Status.ActiveKeyID == "" || p.Status.ActiveKeyID == third {
			return fmt.Errorf("keys %v, active %s", keyStates(p), p.Status.ActiveKeyID)
		}
		return nil
	})

	// Every change was announced.
	testenv.Eventually(t, "events", func() error {
		reasons, err := eventReasons(ns, key.Name)
		if err != nil {
			return err
		}
		for _, want := range []string{"KeyGenerated", "KeyActivated", "KeyRetired", "RotationRequested", "KeysRestored", "KeyRevoked"} {
			if !reasons[want] {
				return fmt.Errorf("no %s event among %v", want, reasons)
			}
		}
		return nil
	})
}

// TestTokenPolicyKeysLost covers the one case where keys cannot be restored:
// the Secret is gone and the controller holds no copy (for example a new
// leader). New keys are generated, loudly.
func TestTokenPolicyKeysLost(t *testing.T) {
	ctx := context.Background()
	ns := newNamespace(t)
	key := types.NamespacedName{Namespace: ns, Name: "lossy"}
	if err := k8sClient.Create(ctx, &authv1alpha1.TokenPolicy{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: key.Name},
		Spec:       authv1alpha1.TokenPolicySpec{Issuer: "https://auth.example.com/lossy", Audiences: []string{"a"}, Algorithm: authv1alpha1.EdDSA},
	}); err != nil {
		t.Fatal(err)
	}
	p := waitFor(t, key, "first key", func(p *authv1alpha1.TokenPolicy) error {
		if p.Status.ActiveKeyID == "" {
			return fmt.Errorf("no active key")
		}
		return nil
	})
	old := p.Status.ActiveKeyID

	ctrls.TokenPolicy.Material.Forget(key)
	if err := k8sClient.Delete(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: key.Name + authv1alpha1.KeySecretSuffix}}); err != nil {
		t.Fatal(err)
	}
	p = waitFor(t, key, "new key after loss", func(p *authv1alpha1.TokenPolicy) error {
		if p.Status.ActiveKeyID == "" || p.Status.ActiveKeyID == old {
			return fmt.Errorf("active %s", p.Status.ActiveKeyID)
		}
		return nil
	})
	c := meta.FindStatusCondition(p.Status.Conditions, authv1alpha1.ConditionKeysRotated)
	if c == nil || c.Reason != authv1alpha1.ReasonKeysLost || !strings.Contains(c.Message, "no longer valid") {
		t.Errorf("KeysRotated condition %+v does not say tokens are now invalid", c)
	}
	if slices.Contains(publishedKids(p), old) {
		t.Errorf("the lost key is still listed: %v", keyStates(p))
	}
	testenv.Eventually(t, "KeysLost warning", func() error {
		reasons, err := eventReasons(ns, key.Name)
		if err != nil || !reasons[authv1alpha1.ReasonKeysLost] {
			return fmt.Errorf("events %v, %v", reasons, err)
		}
		return nil
	})
}

// TestTokenPolicyMetrics reads key metrics from the cache at scrape time: a
// deleted policy's series disappear.
func TestTokenPolicyMetrics(t *testing.T) {
	ctx := context.Background()
	ns := newNamespace(t)
	key := types.NamespacedName{Namespace: ns, Name: "measured"}
	policy := &authv1alpha1.TokenPolicy{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: key.Name},
		Spec:       authv1alpha1.TokenPolicySpec{Issuer: "https://auth.example.com/m", Audiences: []string{"a"}},
	}
	if err := k8sClient.Create(ctx, policy); err != nil {
		t.Fatal(err)
	}
	waitFor(t, key, "first key", func(p *authv1alpha1.TokenPolicy) error {
		if p.Status.NextRotationTime == nil {
			return fmt.Errorf("no next rotation")
		}
		return nil
	})
	reg := prometheus.NewRegistry()
	m := controllers.NewPolicyMetrics(k8sClient, fakeClock)
	if err := m.Register(reg); err != nil {
		t.Fatal(err)
	}
	series := func() (age, next int) {
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, mf := range mfs {
			for _, metric := range mf.GetMetric() {
				for _, l := range metric.GetLabel() {
					if l.GetName() == "policy" && l.GetValue() == key.Name {
						switch mf.GetName() {
						case "authframework_signing_key_age_seconds":
							age++
						case "authframework_signing_key_next_rotation_seconds":
							next++
							if v := metric.GetGauge().GetValue(); v <= 0 || v > 720*3600 {
								t.Errorf("seconds to next rotation %v", v)
							}
						}
					}
				}
			}
		}
		return age, next
	}
	if age, next := series(); age != 1 || next != 1 {
		t.Errorf("series for the policy: age %d, next rotation %d; want 1 and 1", age, next)
	}
	if err := k8sClient.Delete(ctx, policy); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, "policy gone", func() error {
		err := k8sClient.Get(ctx, key, &authv1alpha1.TokenPolicy{})
		if !apierrors.IsNotFound(err) {
			return fmt.Errorf("still there: %v", err)
		}
		return nil
	})
	if age, next := series(); age != 0 || next != 0 {
		t.Errorf("deleted policy still has series: age %d, next %d", age, next)
	}
}

func damage(t *testing.T, key types.NamespacedName) {
	t.Helper()
	var s corev1.Secret
	if err := k8sClient.Get(context.Background(), types.NamespacedName{Namespace: key.Namespace, Name: key.Name + authv1alpha1.KeySecretSuffix}, &s); err != nil {
		t.Fatal(err)
	}
	s.Data[authv1alpha1.KeySetDataKey] = []byte(`{"keys":[{"kty":"EC","crv":"P-256"}]}`)
	if err := k8sClient.Update(context.Background(), &s); err != nil {
		t.Fatal(err)
	}
}

func eventReasons(ns, name string) (map[string]bool, error) {
	var list eventsv1.EventList
	if err := k8sClient.List(context.Background(), &list, client.InNamespace(ns)); err != nil {
		return nil, err
	}
	out := map[string]bool{}
	for _, e := range list.Items {
		if e.Regarding.Name == name {
			out[e.Reason] = true
		}
	}
	return out, nil
}
