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

// Names and keys of the Secrets a ServiceAccount owns.
const (
	// CredentialsSecretSuffix: <account>-credentials, for the workload, with
	// client_id and client_secret.
	CredentialsSecretSuffix = "-credentials"
	// VerifierSecretSuffix: <account>-client-verifier, for the auth server,
	// with only hashes of the secrets.
	VerifierSecretSuffix = "-client-verifier"
	// TokenSecretSuffix: the default token Secret, <account>-token.
	TokenSecretSuffix = "-token"

	ClientIDKey     = "client_id"
	ClientSecretKey = "client_secret"
	VerifierKey     = "verifier.json"
	TokenKey        = "token"

	// LabelSecretRole says what an operator-owned Secret is for, so the auth
	// server can watch only verifiers and keys, never plaintext secrets.
	LabelSecretRole = "auth.authframework.dev/secret-role"
	// LabelServiceAccount names the account that owns a Secret.
	LabelServiceAccount = "auth.authframework.dev/service-account"

	SecretRoleCredentials = "client-credentials"
	SecretRoleVerifier    = "client-verifier"
	SecretRoleToken       = "access-token"
	SecretRoleSigningKeys = "signing-keys"

	// AnnotationClaimsHash on a token Secret fingerprints the claims the token
	// was minted with, so a change of roles or audience re-mints it.
	AnnotationClaimsHash = "auth.authframework.dev/claims-hash"
	// AnnotationTokenExpires and AnnotationTokenRefresh on a token Secret say
	// when the token expires and when it will be replaced.
	AnnotationTokenExpires = "auth.authframework.dev/expires-at"
	AnnotationTokenRefresh = "auth.authframework.dev/refresh-at"
	// AnnotationVerifierCopy on a credentials Secret is a copy of the
	// verifier (hashes only), so a lost verifier Secret is rebuilt with
	// every secret that worked still working.
	AnnotationVerifierCopy = "auth.authframework.dev/verifier"
)

// ClientID is the account's OAuth2 client id: spec.clientID, else
// <namespace>.<name>.
func ClientID(sa *authv1alpha1.ServiceAccount) string {
	if sa.Spec.ClientID != "" {
		return sa.Spec.ClientID
	}
	return sa.Namespace + "." + sa.Name
}

func tokenSecretName(sa *authv1alpha1.ServiceAccount) string {
	if sa.Spec.TokenSecret != nil && sa.Spec.TokenSecret.SecretName != "" {
		return sa.Spec.TokenSecret.SecretName
	}
	return sa.Name + TokenSecretSuffix
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
				authv1alpha1.LabelManagedBy: authv1alpha1.ManagedByValue,
				LabelSecretRole:             role,
				LabelServiceAccount:         sa.Name,
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
