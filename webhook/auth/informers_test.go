package auth

import (
	"encoding/json"
	"net/url"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	authv1alpha1 "github.com/authframework/authframework/api/v1alpha1"
	"github.com/authframework/authframework/internal/credentials"
	"github.com/authframework/authframework/internal/keys"
)

// TestFeedTrustsSecretsByNameAndController: labels select what the
// informer lists, but anyone who may create a Secret can set them. A
// verifier or key Secret counts only under its owner's name and controlled
// by that very object; others change nothing, present or deleted.
func TestFeedTrustsSecretsByNameAndController(t *testing.T) {
	var f *fixture
	var feed *Feed
	attacker := credentials.Hash("attacker-secret")
	verifierSecret := func(name, kind, ownerName string, uid types.UID, hash string) *corev1.Secret {
		b, _ := json.Marshal(credentials.Verifier{Current: hash})
		return &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name,
				Labels: map[string]string{authv1alpha1.LabelManagedBy: authv1alpha1.ManagedByValue, authv1alpha1.LabelSecretRole: authv1alpha1.SecretRoleVerifier,
					authv1alpha1.LabelServiceAccount: "billing"},
				OwnerReferences: []metav1.OwnerReference{{APIVersion: authv1alpha1.GroupVersion.String(), Kind: kind, Name: ownerName, UID: uid, Controller: ptrTrue()}}},
			Data: map[string][]byte{authv1alpha1.VerifierKey: b},
		}
	}
	tokenWith := func(sec string) int {
		return f.do("POST", "/token", url.Values{"grant_type": {"client_credentials"}}, basic(clientID, sec)).Code
	}
	for name, rogue := range map[string]*corev1.Secret{
		"another name, the account as controller": verifierSecret("zz-rogue", "ServiceAccount", "billing", accountUID, attacker),
		"the right name, another kind":            verifierSecret("billing-client-verifier", "TokenPolicy", "billing", accountUID, attacker),
		"the right name, another object's UID":    verifierSecret("billing-client-verifier", "ServiceAccount", "billing", "someone-else", attacker),
	} {
		f = newFixture(t)
		feed = &Feed{store: f.store}
		feed.setSecret(rogue)
		if tokenWith("attacker-secret") != 401 {
			t.Errorf("%s: the rogue verifier was used", name)
		}
		if rogue.Name == "billing-client-verifier" {
			continue // it replaced the account's own Secret: nothing of it is used
		}
		feed.deleteSecret(rogue)
		if tokenWith(secret) != 200 {
			t.Errorf("%s: deleting the rogue Secret removed the account's verifier", name)
		}
	}
	// The real one, of course, counts.
	f = newFixture(t)
	feed = &Feed{store: f.store}
	feed.setSecret(verifierSecret("billing-client-verifier", "ServiceAccount", "billing", accountUID, credentials.Hash("rotated")))
	if tokenWith("rotated") != 200 {
		t.Error("the account's own verifier Secret was not used")
	}

	// Signing keys: a rogue key Secret for the policy changes nothing.
	f = newFixture(t)
	feed = &Feed{store: f.store}
	empty, _ := keys.MarshalPrivate(nil)
	tok := f.token(nil)
	feed.setSecret(&corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "zz-rogue-keys",
			Labels: map[string]string{authv1alpha1.LabelManagedBy: authv1alpha1.ManagedByValue, authv1alpha1.LabelSecretRole: authv1alpha1.SecretRoleSigningKeys,
				authv1alpha1.LabelTokenPolicy: "orders"},
			OwnerReferences: []metav1.OwnerReference{{APIVersion: authv1alpha1.GroupVersion.String(), Kind: "TokenPolicy", Name: "orders", Controller: ptrTrue()}}},
		Data: map[string][]byte{authv1alpha1.KeySetDataKey: empty},
	})
	if w := f.do("GET", "/validate", nil, bearerHdr(tok)); w.Code != 200 {
		t.Errorf("a rogue key Secret emptied the policy's keys: %d %s", w.Code, w.Header().Get(HeaderAuthError))
	}
	// Keys controlled by another object than the policy are not used.
	f.store.SetKeys(types.NamespacedName{Namespace: ns, Name: "orders"}, "another-policy-uid", []keys.Key{f.key})
	if w := f.do("GET", "/validate", nil, bearerHdr(tok)); w.Code != 401 {
		t.Errorf("keys of another object were used: %d", w.Code)
	}
}

func ptrTrue() *bool { b := true; return &b }
