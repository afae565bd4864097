package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// SigningAlgorithm is a JWS algorithm (RFC 7518, RFC 8037) from the allow-list.
// +kubebuilder:validation:Enum=ES256;ES384;EdDSA;RS256;PS256
type SigningAlgorithm string

// The signing algorithms a TokenPolicy may choose. HMAC algorithms are not
// offered: a shared secret would have to reach every verifier.
const (
	ES256 SigningAlgorithm = "ES256"
	ES384 SigningAlgorithm = "ES384"
	EdDSA SigningAlgorithm = "EdDSA"
	RS256 SigningAlgorithm = "RS256"
	PS256 SigningAlgorithm = "PS256"
)

// TokenPolicySpec says how the tokens of the ServiceAccounts that reference it
// are signed, for whom they are meant, how long they live and how often the
// signing keys rotate.
//
// +kubebuilder:validation:XValidation:rule="!has(self.rsaKeyBits) || self.algorithm in ['RS256', 'PS256']",message="rsaKeyBits applies only to the RS256 and PS256 algorithms",fieldPath=".rsaKeyBits"
// +kubebuilder:validation:XValidation:rule="!self.accessTokenTTL.matches('^([0-9]+(\\\\.[0-9]+)?(ns|us|ms|s|m|h))+$') || !self.clockSkew.matches('^([0-9]+(\\\\.[0-9]+)?(ns|us|ms|s|m|h))+$') || !self.rotation.period.matches('^([0-9]+(\\\\.[0-9]+)?(ns|us|ms|s|m|h))+$') || !self.rotation.prePublish.matches('^([0-9]+(\\\\.[0-9]+)?(ns|us|ms|s|m|h))+$') || duration(self.rotation.period) >= duration(self.rotation.prePublish) + duration(self.accessTokenTTL) + duration(self.clockSkew)",message="rotation.period must be at least rotation.prePublish + accessTokenTTL + clockSkew, so that a key is published before it signs and its tokens expire before the next rotation",fieldPath=".rotation.period"
type TokenPolicySpec struct {
	// Issuer is the `iss` claim of every token signed under this policy, an
	// https URL without query or fragment (http is accepted for localhost only).
	// Verifiers find the policy's keys through OIDC discovery at this URL.
	// +kubebuilder:validation:MinLength=8
	// +kubebuilder:validation:MaxLength=512
	// +kubebuilder:validation:XValidation:rule="self.matches('^https://[^/?#\\\\s]+(/[^?#\\\\s]*)?$') || self.matches('^http://(localhost|127\\\\.0\\\\.0\\\\.1|\\\\[::1\\\\])(:[0-9]+)?(/[^?#\\\\s]*)?$')",message="must be an https URL without query or fragment (http only for localhost)"
	Issuer string `json:"issuer"`

	// Audiences are the `aud` values tokens may carry. A client asks for one
	// with the `audience` or `resource` parameter; without one it gets the
	// first. An ingress declares which audience it accepts.
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=32
	// +listType=set
	// +kubebuilder:validation:items:MinLength=1
	// +kubebuilder:validation:items:MaxLength=253
	// +kubebuilder:validation:items:Pattern=`^[^\s,]+$`
	Audiences []string `json:"audiences"`

	// Algorithm is the JWS algorithm of the signing keys. Verification accepts
	// only this algorithm (from the policy, never from the token). Changing it
	// rolls over through a rotation: the new key is published first, tokens of
	// the old key stay valid until they expire.
	// +kubebuilder:default=ES256
	// +optional
	Algorithm SigningAlgorithm `json:"algorithm,omitempty"`

	// RSAKeyBits is the modulus size of RSA keys (RS256, PS256).
	// +kubebuilder:validation:Enum=2048;3072;4096
	// +optional
	RSAKeyBits *int32 `json:"rsaKeyBits,omitempty"`

	// AccessTokenTTL is how long an access token lives, from 1m to 24h.
	// +kubebuilder:default="15m"
	// +kubebuilder:validation:XValidation:rule="self.matches('^([0-9]+(\\\\.[0-9]+)?(ns|us|ms|s|m|h))+$') && duration(self) >= duration('1m') && duration(self) <= duration('24h')",message="must be a duration between 1m and 24h, such as 15m"
	// +optional
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:MaxLength=32
	AccessTokenTTL metav1.Duration `json:"accessTokenTTL,omitzero"`

	// ClockSkew is the leeway allowed when checking `exp`, `nbf` and `iat`, from
	// 0s to 5m.
	// +kubebuilder:default="30s"
	// +kubebuilder:validation:XValidation:rule="self.matches('^([0-9]+(\\\\.[0-9]+)?(ns|us|ms|s|m|h))+$') && duration(self) >= duration('0s') && duration(self) <= duration('5m')",message="must be a duration between 0s and 5m, such as 30s"
	// +optional
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:MaxLength=32
	ClockSkew metav1.Duration `json:"clockSkew,omitzero"`

	// Rotation schedules the signing keys.
	// +kubebuilder:default={}
	// +optional
	Rotation KeyRotation `json:"rotation,omitzero"`

	// RevokedKeys lists key ids (RFC 7638 thumbprints, as in status.keys) to
	// revoke at once, for example after a compromise. Tokens they signed are
	// refused from then on; if the active key is revoked a new one is activated
	// immediately.
	// +kubebuilder:validation:MaxItems=64
	// +listType=set
	// +kubebuilder:validation:items:Pattern=`^[A-Za-z0-9_-]{43}$`
	// +optional
	RevokedKeys []string `json:"revokedKeys,omitempty"`

	// TokenEndpoint limits how clients of this policy use the token endpoint.
	// +kubebuilder:default={}
	// +optional
	TokenEndpoint TokenEndpointLimits `json:"tokenEndpoint,omitzero"`
}

// KeyRotation is the schedule of a policy's signing keys. A new key is
// published (in JWKS, not yet signing) PrePublish before it becomes active, so
// that verifiers which cache JWKS know it before they meet its tokens; the
// previous key retires then and stays published until its tokens expire.
type KeyRotation struct {
	// Period is how long a key signs before the next one takes over, from 1h to
	// 8760h (a year). Default 720h (30 days).
	// +kubebuilder:default="720h"
	// +kubebuilder:validation:XValidation:rule="self.matches('^([0-9]+(\\\\.[0-9]+)?(ns|us|ms|s|m|h))+$') && duration(self) >= duration('1h') && duration(self) <= duration('8760h')",message="must be a duration between 1h and 8760h, such as 720h"
	// +optional
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:MaxLength=32
	Period metav1.Duration `json:"period,omitzero"`

	// PrePublish is how long a new key is published before it signs, from 1m to
	// 720h. The default, 1h, is longer than the 10m for which common verifiers
	// cache JWKS; keep it longer than the cache of every verifier you run.
	// +kubebuilder:default="1h"
	// +kubebuilder:validation:XValidation:rule="self.matches('^([0-9]+(\\\\.[0-9]+)?(ns|us|ms|s|m|h))+$') && duration(self) >= duration('1m') && duration(self) <= duration('720h')",message="must be a duration between 1m and 720h, such as 1h"
	// +optional
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:MaxLength=32
	PrePublish metav1.Duration `json:"prePublish,omitzero"`
}

// TokenEndpointLimits are the request rate of each client of one policy at
// the OAuth2 endpoints (token, revoke, introspect). Failed client
// authentication is not throttled here but by the auth server, per source
// address and per client id and source address, the same for every client id
// (see docs/auth-server.md).
type TokenEndpointLimits struct {
	// RequestsPerSecond is the sustained rate of requests one authenticated
	// client may make; more are answered 429 temporarily_unavailable with
	// Retry-After. Failed authentications do not count. Each auth server
	// replica keeps its own bucket, so N replicas allow up to N times this.
	// +kubebuilder:default=10
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=10000
	// +optional
	RequestsPerSecond int32 `json:"requestsPerSecond,omitempty"`

	// Burst is how many requests one authenticated client may make at once.
	// +kubebuilder:default=20
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=100000
	// +optional
	Burst int32 `json:"burst,omitempty"`

	// MaxFailedAttempts is deprecated and ignored. It locked a client out
	// after failed authentications, which let anyone who knew a client id
	// lock out the real client and told which ids exist. Failed
	// authentications are now throttled by the auth server per source
	// address and per client id and source address, alike for known and
	// unknown ids, and a correct secret is never refused; the budgets are
	// the server flags --failed-auth-per-source and
	// --failed-auth-per-client-source.
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=1000
	// +optional
	MaxFailedAttempts int32 `json:"maxFailedAttempts,omitempty"`

	// LockoutWindow is deprecated and ignored; see MaxFailedAttempts.
	// +kubebuilder:validation:XValidation:rule="self.matches('^([0-9]+(\\\\.[0-9]+)?(ns|us|ms|s|m|h))+$') && duration(self) >= duration('1s') && duration(self) <= duration('24h')",message="must be a duration between 1s and 24h, such as 5m"
	// +optional
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:MaxLength=32
	LockoutWindow metav1.Duration `json:"lockoutWindow,omitzero"`

	// LockoutDuration is deprecated and ignored; see MaxFailedAttempts.
	// +kubebuilder:validation:XValidation:rule="self.matches('^([0-9]+(\\\\.[0-9]+)?(ns|us|ms|s|m|h))+$') && duration(self) >= duration('1s') && duration(self) <= duration('24h')",message="must be a duration between 1s and 24h, such as 15m"
	// +optional
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:MaxLength=32
	LockoutDuration metav1.Duration `json:"lockoutDuration,omitzero"`
}

// KeyState is where a signing key is in its lifecycle.
// +kubebuilder:validation:Enum=Published;Active;Retired;Revoked
type KeyState string

// The key lifecycle: Published -> Active -> Retired -> removed. Revoked keys
// are listed until their tokens would have expired, so the revocation is
// visible, but are not published.
const (
	KeyPublished KeyState = "Published"
	KeyActive    KeyState = "Active"
	KeyRetired   KeyState = "Retired"
	KeyRevoked   KeyState = "Revoked"
)

// KeyStatus describes one signing key. Private material is never in status;
// it lives in the Secret named by status.keySecretName.
type KeyStatus struct {
	// KeyID is the RFC 7638 JWK thumbprint of the public key (the `kid`).
	KeyID string `json:"kid"`
	// Algorithm is the JWS algorithm the key signs with.
	Algorithm SigningAlgorithm `json:"algorithm"`
	// State is where the key is in its lifecycle.
	State KeyState `json:"state"`
	// CreatedAt is when the key was generated and published.
	CreatedAt metav1.Time `json:"createdAt"`
	// ActivatesAt is when the key begins (or began) to sign.
	ActivatesAt metav1.Time `json:"activatesAt"`
	// RetiresAt is when the key stops (or stopped) signing.
	// +optional
	RetiresAt *metav1.Time `json:"retiresAt,omitempty"`
	// RemoveAfter is when the key leaves the key set: retirement plus the
	// longest token lifetime plus clock skew.
	// +optional
	RemoveAfter *metav1.Time `json:"removeAfter,omitempty"`
}

// TokenPolicyStatus is the observed state of a TokenPolicy.
type TokenPolicyStatus struct {
	// ObservedGeneration is the generation of the spec last reconciled.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// Conditions: Ready, KeysReady, KeysRotated.
	// +listType=map
	// +listMapKey=type
	// +optional
	Conditions []metav1.Condition `json:"conditions,omitempty"`

	// Keys lists every key in the key set, newest first.
	// +listType=map
	// +listMapKey=kid
	// +optional
	Keys []KeyStatus `json:"keys,omitempty"`

	// ActiveKeyID is the key that signs new tokens.
	// +optional
	ActiveKeyID string `json:"activeKeyID,omitempty"`

	// NextRotationTime is when the next key becomes active.
	// +optional
	NextRotationTime *metav1.Time `json:"nextRotationTime,omitempty"`

	// KeySecretName is the Secret, owned by this policy, that holds the private
	// key set.
	// +optional
	KeySecretName string `json:"keySecretName,omitempty"`

	// LastRotateRequest is the value of the rotate annotation last acted on.
	// +optional
	LastRotateRequest string `json:"lastRotateRequest,omitempty"`
}

// TokenPolicy says how tokens are signed, for whom, how long they live and how
// often the signing keys rotate. Its controller keeps the private keys in a
// Secret it owns and rotates them on schedule without ever refusing a token
// that is still valid.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=tpol;tokenpolicy,categories=authframework
// +kubebuilder:printcolumn:name="Algorithm",type=string,JSONPath=`.spec.algorithm`
// +kubebuilder:printcolumn:name="Active Key",type=string,JSONPath=`.status.activeKeyID`
// +kubebuilder:printcolumn:name="Next Rotation",type=string,JSONPath=`.status.nextRotationTime`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Issuer",type=string,JSONPath=`.spec.issuer`,priority=1
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type TokenPolicy struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// Spec is the desired signing and token policy.
	Spec TokenPolicySpec `json:"spec"`
	// Status is the observed key set and conditions.
	// +optional
	Status TokenPolicyStatus `json:"status,omitempty"`
}

// +kubebuilder:object:root=true

// TokenPolicyList is a list of TokenPolicy.
type TokenPolicyList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []TokenPolicy `json:"items"`
}

func init() {
	SchemeBuilder.Register(&TokenPolicy{}, &TokenPolicyList{})
}
