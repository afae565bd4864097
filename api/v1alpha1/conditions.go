package v1alpha1

// Condition types shared by the kinds of this package. Every kind reports
// Ready, a summary of the others, so that `kubectl wait --for=condition=Ready`
// and kstatus work the same way for all of them.
const (
	// ConditionReady summarises the resource: True when it is fully reconciled
	// and usable.
	ConditionReady = "Ready"

	// ConditionKeysReady (TokenPolicy) is True when an active signing key exists
	// and the key Secret holds every key listed in status.
	ConditionKeysReady = "KeysReady"
	// ConditionKeysRotated (TokenPolicy) records the last key rotation; its
	// reason says whether it was scheduled, requested or a revocation.
	ConditionKeysRotated = "KeysRotated"

	// ConditionPolicyResolved (ServiceAccount) is True when the referenced
	// TokenPolicy exists and has an active key.
	ConditionPolicyResolved = "PolicyResolved"
	// ConditionRolesResolved (ServiceAccount) is True when every referenced Role
	// exists and is valid.
	ConditionRolesResolved = "RolesResolved"
	// ConditionCredentialsReady (ServiceAccount) is True when the credentials
	// Secret holds a current client secret.
	ConditionCredentialsReady = "CredentialsReady"
	// ConditionTokenIssuable (ServiceAccount) is True when a token with every
	// permission the account holds fits the size bound the auth server
	// issues (7 KiB); when False, /token needs a narrower scope.
	ConditionTokenIssuable = "TokenIssuable"
	// ConditionKubernetesServiceAccountsResolved (ServiceAccount, with
	// spec.kubernetesServiceAccounts) is True when every listed Kubernetes
	// service account exists and no other ServiceAccount lists it. It is
	// advisory: Ready does not depend on it (client credentials, the token
	// Secret and the other listed service accounts keep working).
	ConditionKubernetesServiceAccountsResolved = "KubernetesServiceAccountsResolved"

	// ConditionAvailable (AuthServer) is True when the active color serves
	// and has lost no pod that was available: reason AllAvailable, or
	// ScalingUp while new pods start; False with reason CapacityLost when
	// pods that served were lost or none is available.
	ConditionAvailable = "Available"
	// ConditionProgressing (AuthServer) is True while a rollout is under way.
	ConditionProgressing = "Progressing"
	// ConditionRolledBack (AuthServer) is True when the last rollout failed and
	// traffic was returned to the previous template.
	ConditionRolledBack = "RolledBack"
	// ConditionPermissionsGranted (AuthServer) is True when the auth server
	// pods' ServiceAccount is bound to what they need to read and write.
	ConditionPermissionsGranted = "PermissionsGranted"
	// ConditionTrafficRoutingReady (AuthServer, with
	// spec.rollout.trafficRouting) is True when the named HTTPRoute can be
	// weighted, or a canary Ingress made from the named Ingress, so a wrong
	// name shows before a rollout needs it.
	ConditionTrafficRoutingReady = "TrafficRoutingReady"
)

// Condition reasons. Events reuse the same words so that `kubectl describe`
// reads the same in both places.
const (
	// ReasonReconciled means the resource is fully reconciled.
	ReasonReconciled = "Reconciled"
	// ReasonReconciling means work is under way and the resource will be
	// reconciled again without user action.
	ReasonReconciling = "Reconciling"
	// ReasonInvalidSpec means the spec is invalid in a way the API schema could
	// not catch; the user must change it (stalled: no retry until it changes).
	ReasonInvalidSpec = "InvalidSpec"
	// ReasonReconcileFailed (Ready, any kind) means a step failed for a reason
	// no more specific constant names, such as an API read; the message
	// holds the error, and the controller retries with backoff.
	ReasonReconcileFailed = "ReconcileFailed"

	// ReasonKeySecretWriteFailed (TokenPolicy KeysReady and Ready) means the
	// key Secret could not be created or updated (the message holds the API
	// server's refusal, e.g. RBAC or an admission policy); status keeps the
	// keys it had and the controller retries with backoff.
	ReasonKeySecretWriteFailed = "KeySecretWriteFailed"
	// ReasonKeyGenerationFailed (TokenPolicy KeysReady and Ready) means a new
	// signing key could not be generated; retried with backoff.
	ReasonKeyGenerationFailed = "KeyGenerationFailed"
	// ReasonCredentialsWriteFailed (ServiceAccount CredentialsReady and Ready)
	// means the credentials or verifier Secret could not be read or written;
	// retried with backoff.
	ReasonCredentialsWriteFailed = "CredentialsWriteFailed"
	// ReasonTokenSecretFailed (ServiceAccount Ready) means the token Secret
	// could not be minted or written for a reason outside the spec (its
	// key Secret unreadable, a refused write); retried with backoff.
	ReasonTokenSecretFailed = "TokenSecretFailed"

	// ReasonGranted (AuthServer PermissionsGranted) means the pods'
	// ServiceAccount is bound to the server ClusterRoles where it reads.
	ReasonGranted = "Granted"
	// ReasonNotManaged (AuthServer PermissionsGranted, Unknown) means the
	// operator binds nothing (--server-cluster-role is empty).
	ReasonNotManaged = "NotManaged"
	// ReasonClusterRoleMissing (AuthServer PermissionsGranted and Ready)
	// means a server ClusterRole the operator binds does not exist; the
	// operator looks again every ClusterRoleRecheck until it does.
	ReasonClusterRoleMissing = "ClusterRoleMissing"
	// ReasonCrossNamespaceNotAllowed (AuthServer PermissionsGranted, advisory:
	// Ready stays True) means the AuthServer asked to read namespaces beyond
	// its own from a namespace the operator does not trust; it reads only
	// its own.
	ReasonCrossNamespaceNotAllowed = "CrossNamespaceNotAllowed"
	// ReasonTokenReviewNotGranted (AuthServer PermissionsGranted, advisory:
	// Ready stays True) means spec.tokenExchange is set but the operator
	// does not bind the tokenreviews ClusterRole
	// (--server-tokenreview-cluster-role is empty): the pods cannot verify
	// Kubernetes tokens and refuse every exchange until it is bound.
	ReasonTokenReviewNotGranted = "TokenReviewNotGranted"
	// ReasonGrantFailed (AuthServer PermissionsGranted and Ready) means a
	// binding could not be written; retried with backoff.
	ReasonGrantFailed = "GrantFailed"
	// ReasonApplyFailed (AuthServer Ready) means a Deployment, Service, HPA,
	// PodDisruptionBudget or canary Ingress could not be written; retried
	// with backoff, and the rollout state is left as it was.
	ReasonApplyFailed = "ApplyFailed"
	// ReasonIngressFound (AuthServer TrafficRoutingReady) means the canary
	// Ingress can be made from the named Ingress.
	ReasonIngressFound = "IngressFound"
	// ReasonIngressUnusable (AuthServer TrafficRoutingReady) means the named
	// Ingress is missing or cannot carry a canary.
	ReasonIngressUnusable = "IngressUnusable"
	// ReasonHTTPRouteFound (AuthServer TrafficRoutingReady) means the named
	// HTTPRoute has rules whose backendRefs the operator can weight.
	ReasonHTTPRouteFound = "HTTPRouteFound"
	// ReasonHTTPRouteUnusable (AuthServer TrafficRoutingReady) means the
	// named HTTPRoute is missing, the Gateway API is not installed, or the
	// route cannot be weighted safely (the message says why).
	ReasonHTTPRouteUnusable = "HTTPRouteUnusable"

	// ReasonKeyGenerated means a new signing key was generated and published.
	ReasonKeyGenerated = "KeyGenerated"
	// ReasonKeyActivated means a published key began signing tokens.
	ReasonKeyActivated = "KeyActivated"
	// ReasonKeyRetired means a key stopped signing but stays published until
	// every token it signed has expired.
	ReasonKeyRetired = "KeyRetired"
	// ReasonKeyRemoved means a retired key was removed after its tokens expired.
	ReasonKeyRemoved = "KeyRemoved"
	// ReasonKeyRevoked means a key was revoked on request; tokens it signed are
	// no longer accepted.
	ReasonKeyRevoked = "KeyRevoked"
	// ReasonRotationRequested means a rotation was requested with the rotate
	// annotation.
	ReasonRotationRequested = "RotationRequested"
	// ReasonKeysRestored means the key Secret was missing or damaged and was
	// restored from the keys the controller still held.
	ReasonKeysRestored = "KeysRestored"
	// ReasonKeysLost means the key Secret was lost and no copy of its keys was
	// held: new keys were generated and tokens signed before are now invalid.
	ReasonKeysLost = "KeysLost"

	// ReasonPolicyNotFound means the referenced TokenPolicy does not exist.
	ReasonPolicyNotFound = "TokenPolicyNotFound"
	// ReasonPolicyNotReady means the referenced TokenPolicy has no active key yet.
	ReasonPolicyNotReady = "TokenPolicyNotReady"
	// ReasonRoleNotFound means a referenced Role does not exist.
	ReasonRoleNotFound = "RoleNotFound"
	// ReasonDisabled means the ServiceAccount is disabled; its credentials are
	// kept but refused by the auth server.
	ReasonDisabled = "Disabled"
	// ReasonKubernetesServiceAccountsMapped (ServiceAccount
	// KubernetesServiceAccountsResolved) means every listed Kubernetes
	// service account exists and maps to this account alone.
	ReasonKubernetesServiceAccountsMapped = "KubernetesServiceAccountsMapped"
	// ReasonKubernetesServiceAccountNotFound (ServiceAccount
	// KubernetesServiceAccountsResolved, advisory) means a listed Kubernetes
	// service account does not exist; it is watched, and maps once created.
	ReasonKubernetesServiceAccountNotFound = "KubernetesServiceAccountNotFound"
	// ReasonKubernetesServiceAccountConflict (ServiceAccount
	// KubernetesServiceAccountsResolved, advisory) means a listed Kubernetes
	// service account is also listed by another ServiceAccount: the auth
	// server refuses its token exchanges until only one lists it.
	ReasonKubernetesServiceAccountConflict = "KubernetesServiceAccountConflict"
	// ReasonKubernetesServiceAccountNotPermitted (ServiceAccount
	// KubernetesServiceAccountsResolved, advisory) means a listed Kubernetes
	// service account of another namespace has not consented
	// (AnnotationTokenExchangeFor does not name this account).
	ReasonKubernetesServiceAccountNotPermitted = "KubernetesServiceAccountNotPermitted"
	// ReasonTokenWithinBound means the account's full token fits the size
	// bound.
	ReasonTokenWithinBound = "TokenWithinBound"
	// ReasonTokenTooLarge means a token with every permission of the account
	// would exceed the size bound: clients must request a narrower scope.
	ReasonTokenTooLarge = "TokenTooLarge"
	// ReasonSecretRotated means a new client secret was written; the previous one
	// keeps working until the grace period ends.
	ReasonSecretRotated = "ClientSecretRotated"
	// ReasonSecretRevoked means the previous client secret was revoked before its
	// grace period ended.
	ReasonSecretRevoked = "ClientSecretRevoked"
	// ReasonSecretLost means the credentials Secret or its client_secret was
	// lost (or replaced by a value the operator did not write): a new secret
	// was written and the lost one keeps working for the grace period, like
	// a rotation; earlier secrets keep their grace.
	ReasonSecretLost = "ClientSecretLost"
	// ReasonSecretsLost means the credentials and verifier Secrets were both
	// lost: no copy of the secret or its hash was held, a new secret was
	// written and the old one no longer works.
	ReasonSecretsLost = "ClientSecretsLost"
	// ReasonVerifierRestored means the verifier Secret was missing, damaged
	// or edited and was rebuilt from the credentials Secret; no secret that
	// worked is refused.
	ReasonVerifierRestored = "ClientVerifierRestored"
)

// Annotations understood by the controllers.
const (
	// AnnotationRotate, set to any new value (a timestamp is customary), rotates
	// a TokenPolicy's signing key or a ServiceAccount's client secret now. The
	// controller records the value it acted on in status, so each new value
	// rotates exactly once.
	AnnotationRotate = "auth.authframework.dev/rotate"
	// AnnotationRevokeKey on a TokenPolicy names a key id to revoke at once, in
	// addition to spec.revokedKeys.
	AnnotationRevokeKey = "auth.authframework.dev/revoke-key"
	// AnnotationRevokePreviousSecret on a ServiceAccount, set to any new value,
	// ends the grace period of the previous client secret now (for compromise).
	AnnotationRevokePreviousSecret = "auth.authframework.dev/revoke-previous-secret"
	// AnnotationPromote on an AuthServer promotes a rollout that waits for a
	// manual decision (spec.rollout.autoPromote: false).
	AnnotationPromote = "auth.authframework.dev/promote"
	// AnnotationAbort on an AuthServer aborts the rollout in progress and rolls
	// back.
	AnnotationAbort = "auth.authframework.dev/abort"

	// FinalizerServerBindings holds an AuthServer until the RoleBindings and
	// ClusterRoleBindings the operator made for its pods outside its
	// namespace, which owner references cannot reach, are deleted.
	FinalizerServerBindings = "auth.authframework.dev/server-bindings"

	// LabelManagedBy is the label every object the operator owns carries; caches
	// of Secrets are filtered by it.
	LabelManagedBy = "app.kubernetes.io/managed-by"
	// ManagedByValue is the value of LabelManagedBy on objects the operator owns.
	ManagedByValue = "authframework"
)
