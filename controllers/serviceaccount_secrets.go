package controllers

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	authv1alpha1 "github.com/authframework/authframework/api/v1alpha1"
	"github.com/authframework/authframework/internal/credentials"
)

func tokenSecretName(sa *authv1alpha1.ServiceAccount) string {
	if sa.Spec.TokenSecret != nil && sa.Spec.TokenSecret.SecretName != "" {
		return sa.Spec.TokenSecret.SecretName
	}
	return sa.Name + authv1alpha1.TokenSecretSuffix
}

// secretStateFromStatus reads the client secret schedule from status.
func secretStateFromStatus(st *authv1alpha1.ServiceAccountStatus) credentials.SecretState {
	return credentials.SecretState{CurrentSince: timeOf(st.SecretRotatedAt), PreviousUntil: timeOf(st.PreviousSecretExpiresAt)}
}

// decodeVerifier decodes a verifier; nil when it is missing or damaged.
func decodeVerifier(b []byte) *credentials.Verifier {
	var v credentials.Verifier
	if len(b) == 0 || json.Unmarshal(b, &v) != nil || v.Current == "" {
		return nil
	}
	return &v
}

// claimsHash fingerprints what a minted token says, so the token Secret is
// re-minted when any of it changes.
func claimsHash(parts ...any) string {
	b, _ := json.Marshal(parts)
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:8])
}

// ownedSecret returns a Secret shell with the labels every Secret of an
// account carries.
func ownedSecret(sa *authv1alpha1.ServiceAccount, name, role string) *corev1.Secret {
	return &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{
			Namespace: sa.Namespace,
			Name:      name,
			Labels: map[string]string{
				authv1alpha1.LabelManagedBy:      authv1alpha1.ManagedByValue,
				authv1alpha1.LabelSecretRole:     role,
				authv1alpha1.LabelServiceAccount: sa.Name,
			},
		},
		Type: corev1.SecretTypeOpaque,
	}
}

// sortedCopy returns a sorted copy without duplicates.
func sortedCopy(xs []string) []string {
	c := slices.Clone(xs)
	slices.Sort(c)
	return slices.Compact(c)
}

func joinOrNone(xs []string) string {
	if len(xs) == 0 {
		return "none"
	}
	return strings.Join(xs, ", ")
}
