package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// ServiceAccountSpec declares an API client: which policy signs its tokens,
// which roles it holds, and how its credentials are managed.
//
// +kubebuilder:validation:XValidation:rule="!has(oldSelf.clientID) || (has(self.clientID) && self.clientID == oldSelf.clientID)",message="clientID is immutable once set",fieldPath=".clientID"
type ServiceAccountSpec struct {
	// TokenPolicyRef names the TokenPolicy, in the same namespace, that signs
	// this account's tokens.
	// +required
	TokenPolicyRef LocalRef `json:"tokenPolicyRef,omitzero"`

	// Roles names the Roles, in the same namespace, whose permissions this
	// account holds.
	// +kubebuilder:validation:MaxItems=32
	// +listType=set
	// +kubebuilder:validation:items:MaxLength=253
	// +kubebuilder:validation:items:Pattern=`^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$`
	// +optional
	Roles []string `json:"roles,omitempty"`

	// ClientID is the OAuth2 client id. When empty the controller assigns
	// `<namespace>.<name>`. Immutable once set, because clients and audit logs
	// know the account by it.
	// +kubebuilder:validation:MinLength=3
	// +kubebuilder:validation:MaxLength=128
	// +kubebuilder:validation:Pattern=`^[A-Za-z0-9][A-Za-z0-9._-]*$`
	// +optional
	ClientID string `json:"clientID,omitempty"`

	// Disabled refuses every token request and every token of this account
	// while true. Credentials are kept, so re-enabling restores access.
	// +optional
	Disabled bool `json:"disabled,omitempty"`

	// RevokeTokensIssuedBefore refuses every token of this account issued
	// (`iat`) before this time.
	// +optional
	RevokeTokensIssuedBefore *metav1.Time `json:"revokeTokensIssuedBefore,omitempty"`

	// ExtraClaims are added to every access token of this account. Registered
	// and framework claim names are reserved.
	// +kubebuilder:validation:MaxProperties=32
	// +kubebuilder:validation:XValidation:rule="self.all(k, !(k.lowerAscii() in ['iss', 'sub', 'aud', 'exp', 'nbf', 'iat', 'jti', 'client_id', 'scope', 'permissions', 'roles', 'namespace', 'account_uid', 'account_name', 'typ', 'cnf', 'act', 'azp', 'groups', 'username', 'preferred_username', 'email', 'kubernetes.io']))",message="must not set a registered or framework claim, or one that consumers read as an identity, in any letter case (iss, sub, aud, exp, nbf, iat, jti, client_id, scope, permissions, roles, namespace, account_uid, account_name, typ, cnf, act, azp, groups, username, preferred_username, email, kubernetes.io)"
	// +kubebuilder:validation:XValidation:rule="self.all(k, k.matches('^[A-Za-z_][A-Za-z0-9_.:-]{0,62}$') && size(self[k]) <= 1024)",message="claim names must match ^[A-Za-z_][A-Za-z0-9_.:-]{0,62}$ and values be at most 1024 characters"
	// +optional
	ExtraClaims map[string]string `json:"extraClaims,omitempty"`

	// ClientSecretRotation schedules the rotation of the client secret.
	// +kubebuilder:default={period:"2160h",gracePeriod:"24h"}
	// +optional
	ClientSecretRotation SecretRotation `json:"clientSecretRotation,omitzero"`

	// TokenSecret, when set, keeps a fresh access token in a Secret for
	// workloads that mount it instead of running an OAuth2 client.
	// +optional
	TokenSecret *TokenSecretSpec `json:"tokenSecret,omitempty"`

	// KubernetesServiceAccounts may exchange their projected tokens for this
	// account's access token (RFC 8693 token exchange, verified with
	// TokenReview). The namespace defaults to this account's own. One in
	// another namespace maps only when that namespace consents: its
	// ServiceAccount carries the annotation
	// auth.authframework.dev/token-exchange-for naming this account
	// (<namespace>/<name>, comma-separated for several). A Kubernetes
	// service account that maps to two ServiceAccounts is refused by the
	// auth server: it would not be clear whose token it gets.
	// +kubebuilder:validation:MaxItems=32
	// +kubebuilder:validation:XValidation:rule="self.all(x, self.exists_one(y, y.name == x.name && has(y.__namespace__) == has(x.__namespace__) && (!has(x.__namespace__) || y.__namespace__ == x.__namespace__)))",message="each Kubernetes service account may be listed once"
	// +listType=atomic
	// +optional
	KubernetesServiceAccounts []KubernetesServiceAccountRef `json:"kubernetesServiceAccounts,omitempty"`
}

// LocalRef names an object in the same namespace.
type LocalRef struct {
	// Name of the object.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$`
	Name string `json:"name"`
}

// SecretRotation is the schedule of a client secret. At each rotation a new
// secret is written; the previous one keeps working for GracePeriod so that
// clients can pick up the new one.
//
// +kubebuilder:validation:XValidation:rule="!self.period.matches('^([0-9]+(\\\\.[0-9]+)?(ns|us|ms|s|m|h))+$') || !self.gracePeriod.matches('^([0-9]+(\\\\.[0-9]+)?(ns|us|ms|s|m|h))+$') || duration(self.gracePeriod) < duration(self.period)",message="gracePeriod must be shorter than period",fieldPath=".gracePeriod"
type SecretRotation struct {
	// Period is how long a client secret is current, from 1h to 8760h.
	// Default 2160h (90 days).
	// +kubebuilder:default="2160h"
	// +kubebuilder:validation:XValidation:rule="self.matches('^([0-9]+(\\\\.[0-9]+)?(ns|us|ms|s|m|h))+$') && duration(self) >= duration('1h') && duration(self) <= duration('8760h')",message="must be a duration between 1h and 8760h, such as 2160h"
	// +optional
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:MaxLength=32
	Period metav1.Duration `json:"period,omitzero"`

	// GracePeriod is how long the previous secret keeps working after a
	// rotation, from 0s to 720h. Default 24h.
	// +kubebuilder:default="24h"
	// +kubebuilder:validation:XValidation:rule="self.matches('^([0-9]+(\\\\.[0-9]+)?(ns|us|ms|s|m|h))+$') && duration(self) >= duration('0s') && duration(self) <= duration('720h')",message="must be a duration between 0s and 720h, such as 24h"
	// +optional
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:MaxLength=32
	GracePeriod metav1.Duration `json:"gracePeriod,omitzero"`
}

// TokenSecretSpec describes the Secret that holds a ready-to-use access token.
// The token is re-minted at 80% of its lifetime, so the Secret never holds an
// expired token while the account is enabled.
type TokenSecretSpec struct {
	// SecretName is the Secret to write, key `token`. Default `<account>-token`.
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$`
	// +optional
	SecretName string `json:"secretName,omitempty"`

	// Audience of the token; one of the policy's audiences. Default: the
	// policy's first audience.
	// +kubebuilder:validation:MaxLength=253
	// +optional
	Audience string `json:"audience,omitempty"`

	// Permissions narrows the token to these permissions, a subset of the
	// account's. Default: all of the account's permissions.
	// +kubebuilder:validation:MaxItems=256
	// +listType=set
	// +kubebuilder:validation:items:MaxLength=253
	// +kubebuilder:validation:items:Pattern=`^(\*|[A-Za-z0-9][A-Za-z0-9._-]*(:[A-Za-z0-9][A-Za-z0-9._-]*)*(:\*)?)$`
	// +optional
	Permissions []string `json:"permissions,omitempty"`
}

// KubernetesServiceAccountRef names a Kubernetes (core/v1) ServiceAccount.
type KubernetesServiceAccountRef struct {
	// Namespace of the Kubernetes ServiceAccount. Default: this namespace.
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
	// +optional
	Namespace string `json:"namespace,omitempty"`
	// Name of the Kubernetes ServiceAccount.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$`
	Name string `json:"name"`
}

// KubernetesServiceAccountState says whether the auth server maps a listed
// Kubernetes service account to this ServiceAccount.
// +kubebuilder:validation:Enum=Mapped;NotFound;Conflict;NotPermitted
type KubernetesServiceAccountState string

// The states of a listed Kubernetes service account.
const (
	// KubernetesServiceAccountMapped: it exists and no other ServiceAccount
	// lists it; its tokens exchange for this account's.
	KubernetesServiceAccountMapped KubernetesServiceAccountState = "Mapped"
	// KubernetesServiceAccountNotFound: it does not exist (yet). No pod can
	// run as it; once it is created it is Mapped without any change here.
	KubernetesServiceAccountNotFound KubernetesServiceAccountState = "NotFound"
	// KubernetesServiceAccountConflict: another ServiceAccount lists it too
	// (AlsoListedBy); the auth server refuses its exchanges until only one
	// does.
	KubernetesServiceAccountConflict KubernetesServiceAccountState = "Conflict"
	// KubernetesServiceAccountNotPermitted: it is in another namespace,
	// whose ServiceAccount does not name this account in its
	// auth.authframework.dev/token-exchange-for annotation; it maps to no
	// one through this listing and conflicts with no one.
	KubernetesServiceAccountNotPermitted KubernetesServiceAccountState = "NotPermitted"
)

// KubernetesServiceAccountStatus is one listed Kubernetes service account.
type KubernetesServiceAccountStatus struct {
	// Namespace of the Kubernetes (core/v1) service account, defaulted to
	// this account's.
	Namespace string `json:"namespace"`
	// Name of the Kubernetes service account.
	Name string `json:"name"`
	// State says whether its projected tokens exchange for this account's:
	// Mapped (they do); NotFound (no such Kubernetes service account yet;
	// maps once it is created); NotPermitted (another namespace's, which
	// has not consented with the auth.authframework.dev/token-exchange-for
	// annotation); Conflict (another of our ServiceAccounts maps it too; the
	// auth server refuses its exchanges until only one does). When several
	// apply, the first of Conflict, NotFound, NotPermitted is shown.
	State KubernetesServiceAccountState `json:"state"`
	// AlsoListedBy names, when State is Conflict, the other
	// auth.authframework.dev ServiceAccounts (`<namespace>/<name>`) that map
	// the same Kubernetes service account; at most 8.
	// +kubebuilder:validation:MaxItems=8
	// +listType=atomic
	// +optional
	AlsoListedBy []string `json:"alsoListedBy,omitempty"`
}

// ServiceAccountStatus is the observed state of a ServiceAccount.
type ServiceAccountStatus struct {
	// ObservedGeneration is the generation of the spec last reconciled.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// Conditions: Ready, PolicyResolved, RolesResolved, CredentialsReady,
	// TokenIssuable and, with spec.kubernetesServiceAccounts,
	// KubernetesServiceAccountsResolved.
	// +listType=map
	// +listMapKey=type
	// +optional
	Conditions []metav1.Condition `json:"conditions,omitempty"`

	// ClientID is the OAuth2 client id in use.
	// +optional
	ClientID string `json:"clientID,omitempty"`

	// CredentialsSecretName is the Secret, owned by this account, with
	// `client_id` and `client_secret`.
	// +optional
	CredentialsSecretName string `json:"credentialsSecretName,omitempty"`

	// SecretRotatedAt is when the current client secret was written.
	// +optional
	SecretRotatedAt *metav1.Time `json:"secretRotatedAt,omitempty"`

	// NextSecretRotation is when the next client secret will be written.
	// +optional
	NextSecretRotation *metav1.Time `json:"nextSecretRotation,omitempty"`

	// PreviousSecretExpiresAt is when the previous client secret stops working
	// (end of its grace period); empty when there is none.
	// +optional
	PreviousSecretExpiresAt *metav1.Time `json:"previousSecretExpiresAt,omitempty"`

	// TokenSecretName is the Secret holding a ready-to-use access token.
	// +optional
	TokenSecretName string `json:"tokenSecretName,omitempty"`

	// TokenExpiresAt is when the token in the token Secret expires.
	// +optional
	TokenExpiresAt *metav1.Time `json:"tokenExpiresAt,omitempty"`

	// TokenRefreshAt is when the token in the token Secret will be re-minted.
	// +optional
	TokenRefreshAt *metav1.Time `json:"tokenRefreshAt,omitempty"`

	// Roles are the resolved roles, sorted.
	// +listType=set
	// +optional
	Roles []string `json:"roles,omitempty"`

	// Permissions are the union of the resolved roles' permissions, sorted.
	// +listType=set
	// +optional
	Permissions []string `json:"permissions,omitempty"`

	// Disabled mirrors spec.disabled once the auth server enforces it.
	// +optional
	Disabled bool `json:"disabled,omitempty"`

	// RevokeTokensIssuedBefore mirrors spec.revokeTokensIssuedBefore once the
	// auth server enforces it.
	// +optional
	RevokeTokensIssuedBefore *metav1.Time `json:"revokeTokensIssuedBefore,omitempty"`

	// KubernetesServiceAccounts are the Kubernetes service accounts of
	// spec.kubernetesServiceAccounts (namespace defaulted), sorted, each with
	// whether token exchange maps it to this account.
	// +kubebuilder:validation:MaxItems=32
	// +listType=atomic
	// +optional
	KubernetesServiceAccounts []KubernetesServiceAccountStatus `json:"kubernetesServiceAccounts,omitempty"`

	// LastRotateRequest is the value of the rotate annotation last acted on.
	// +optional
	LastRotateRequest string `json:"lastRotateRequest,omitempty"`

	// LastRevokeRequest is the value of the revoke-previous-secret annotation
	// last acted on.
	// +optional
	LastRevokeRequest string `json:"lastRevokeRequest,omitempty"`
}

// ServiceAccount is an API client: a machine identity with OAuth2 client
// credentials, permissions from Roles and tokens signed under a TokenPolicy.
// Not to be confused with the core Kubernetes ServiceAccount: use the short
// name `afsa` or the full name `serviceaccounts.auth.authframework.dev`.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=afsa,categories=authframework
// +kubebuilder:printcolumn:name="Client ID",type=string,JSONPath=`.status.clientID`
// +kubebuilder:printcolumn:name="Policy",type=string,JSONPath=`.spec.tokenPolicyRef.name`
// +kubebuilder:printcolumn:name="Roles",type=string,JSONPath=`.spec.roles`
// +kubebuilder:printcolumn:name="Disabled",type=boolean,JSONPath=`.spec.disabled`,priority=1
// +kubebuilder:printcolumn:name="Next Secret Rotation",type=string,JSONPath=`.status.nextSecretRotation`,priority=1
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type ServiceAccount struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// Spec declares the client.
	Spec ServiceAccountSpec `json:"spec"`
	// Status is the observed credentials, permissions and conditions.
	// +optional
	Status ServiceAccountStatus `json:"status,omitempty"`
}

// +kubebuilder:object:root=true

// ServiceAccountList is a list of ServiceAccount.
type ServiceAccountList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []ServiceAccount `json:"items"`
}

func init() {
	SchemeBuilder.Register(&ServiceAccount{}, &ServiceAccountList{})
}
