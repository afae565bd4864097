package v1alpha1

import "slices"

// The contract between the controllers (which write Secrets) and the auth
// server (which reads them): names, labels, data keys and annotations of the
// objects the operator owns. Both planes use these constants; neither
// imports the other.

// Labels on the Secrets and ConfigMaps the operator owns.
const (
	// LabelSecretRole says what an operator-owned Secret is for, so the auth
	// server can watch only verifiers and keys, never plaintext secrets.
	LabelSecretRole = "auth.authframework.dev/secret-role"
	// LabelServiceAccount on an account's Secrets names the account.
	LabelServiceAccount = "auth.authframework.dev/service-account"
	// LabelTokenPolicy on a key Secret names its policy.
	LabelTokenPolicy = "auth.authframework.dev/token-policy"
	// LabelRevocations marks the ConfigMaps that hold revoked token ids.
	LabelRevocations = "auth.authframework.dev/revocations"
)

// Values of LabelSecretRole.
const (
	// SecretRoleCredentials: client_id and client_secret, for the workload.
	SecretRoleCredentials = "client-credentials"
	// SecretRoleVerifier: hashes of the client secrets, for the auth server.
	SecretRoleVerifier = "client-verifier"
	// SecretRoleToken: a minted access token, for workloads without an
	// OAuth2 client.
	SecretRoleToken = "access-token"
	// SecretRoleSigningKeys: a policy's private key set.
	SecretRoleSigningKeys = "signing-keys"
)

// Names of the Secrets, as suffixes of their owner's name.
const (
	// CredentialsSecretSuffix: <account>-credentials.
	CredentialsSecretSuffix = "-credentials"
	// VerifierSecretSuffix: <account>-client-verifier.
	VerifierSecretSuffix = "-client-verifier"
	// TokenSecretSuffix: the default token Secret, <account>-token.
	TokenSecretSuffix = "-token"
	// KeySecretSuffix: a policy's key Secret, <policy>-signing-keys.
	KeySecretSuffix = "-signing-keys"
)

// Data keys of the Secrets.
const (
	// ClientIDKey and ClientSecretKey in a credentials Secret (ClientIDKey
	// also in the verifier Secret).
	ClientIDKey     = "client_id"
	ClientSecretKey = "client_secret"
	// VerifierKey in a verifier Secret: JSON of the secrets' SHA-256 hashes.
	VerifierKey = "verifier.json"
	// TokenKey in a token Secret: the compact JWT.
	TokenKey = "token"
	// KeySetDataKey in a key Secret: the private JWKS.
	KeySetDataKey = "jwks.json"
)

// Annotations on the Secrets.
const (
	// AnnotationClaimsHash on a token Secret fingerprints the claims the token
	// was minted with, so a change of roles or audience re-mints it.
	AnnotationClaimsHash = "auth.authframework.dev/claims-hash"
	// AnnotationTokenExpires and AnnotationTokenRefresh on a token Secret say
	// when the token expires and when it will be replaced (RFC 3339).
	AnnotationTokenExpires = "auth.authframework.dev/expires-at"
	AnnotationTokenRefresh = "auth.authframework.dev/refresh-at"
	// AnnotationVerifierCopy on a credentials Secret is a copy of the
	// verifier (hashes only), so a lost verifier Secret is rebuilt with
	// every secret that worked still working.
	AnnotationVerifierCopy = "auth.authframework.dev/verifier"
)

// Field indexes the manager registers once, before its controllers and
// webhooks start.
const (
	// IndexRoles indexes ServiceAccounts by the Roles they name.
	IndexRoles = "spec.roles"
	// IndexTokenPolicy indexes ServiceAccounts by their TokenPolicy.
	IndexTokenPolicy = "spec.tokenPolicyRef.name"
	// IndexClientID indexes ServiceAccounts by their effective client id,
	// which must be unique in the cluster.
	IndexClientID = "clientID"
	// IndexKubernetesServiceAccounts indexes ServiceAccounts by the
	// Kubernetes service accounts they list, as KubernetesServiceAccountKey.
	IndexKubernetesServiceAccounts = "spec.kubernetesServiceAccounts"
)

// KubernetesServiceAccountKey is how a Kubernetes service account is named
// in indexes and status: `<namespace>/<name>`.
func KubernetesServiceAccountKey(namespace, name string) string { return namespace + "/" + name }

// KubernetesServiceAccountKeys are the Kubernetes service accounts the
// account lists, as KubernetesServiceAccountKey with the namespace
// defaulted to the account's own, sorted and without repeats. Token
// exchange maps a Kubernetes service account to the one ServiceAccount
// whose keys contain it.
func (sa *ServiceAccount) KubernetesServiceAccountKeys() []string {
	keys := make([]string, 0, len(sa.Spec.KubernetesServiceAccounts))
	for _, k := range sa.Spec.KubernetesServiceAccounts {
		ns := k.Namespace
		if ns == "" {
			ns = sa.Namespace
		}
		keys = append(keys, KubernetesServiceAccountKey(ns, k.Name))
	}
	slices.Sort(keys)
	return slices.Compact(keys)
}

// EffectiveClientID is the account's OAuth2 client id: spec.clientID, else
// <namespace>.<name>.
func (sa *ServiceAccount) EffectiveClientID() string {
	if sa.Spec.ClientID != "" {
		return sa.Spec.ClientID
	}
	return sa.Namespace + "." + sa.Name
}
