package controllers

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	authv1alpha1 "github.com/authframework/authframework/api/v1alpha1"
	"github.com/authframework/authframework/internal/authz"
	"github.com/authframework/authframework/internal/credentials"
	"github.com/authframework/authframework/internal/keys"
	"github.com/authframework/authframework/internal/rotation"
	"github.com/authframework/authframework/internal/token"
)

// ServiceAccountReconciler keeps an account's credentials Secret (client id
// and secret, for the workload), its verifier Secret (hashes only, for the
// auth server), its optional token Secret, and a status with the resolved
// roles and permissions.
type ServiceAccountReconciler struct {
	client.Client
	// APIReader reads the account past the cache: its status holds the
	// secret schedule, and a stale copy would rotate twice.
	APIReader client.Reader
	Clock     clock.PassiveClock
	Recorder  events.EventRecorder
	// Rand is the entropy for secrets and token ids; crypto/rand when nil.
	Rand                    io.Reader
	MaxConcurrentReconciles int
}

// +kubebuilder:rbac:groups=auth.authframework.dev,resources=serviceaccounts,verbs=get;list;watch
// +kubebuilder:rbac:groups=auth.authframework.dev,resources=serviceaccounts/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=auth.authframework.dev,resources=roles,verbs=get;list;watch
// +kubebuilder:rbac:groups=auth.authframework.dev,resources=tokenpolicies,verbs=get;list;watch
// +kubebuilder:rbac:groups="",resources=secrets,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups="",resources=serviceaccounts,verbs=get;list;watch

// accountView is what Reconcile gathered about one account.
type accountView struct {
	sa          *authv1alpha1.ServiceAccount
	policy      *authv1alpha1.TokenPolicy
	roles       []string
	missing     []string
	permissions []string
	now         time.Time
	// secretFault is the reason a managed Secret was found lost or damaged
	// in this reconcile; secretRotated: a new secret was written;
	// graceRunning: an earlier secret still works.
	secretFault, secretFaultMsg string
	secretRotated, graceRunning bool
	// kubernetes: the listed Kubernetes service accounts as observed.
	kubernetes kubernetesIdentities
}

// serviceAccountReady is the ServiceAccount's Ready table. TokenIssuable is
// not in it: an account whose full token is too large still gets narrower
// ones (the condition and its Warning say so).
var serviceAccountReady = []readyRow{
	{Type: authv1alpha1.ConditionPolicyResolved},
	{Type: authv1alpha1.ConditionRolesResolved},
	{Type: authv1alpha1.ConditionCredentialsReady},
}

// Reconcile gathers the account, its policy and roles, writes its Secrets,
// and requeues at the next secret rotation or token refresh. Status is
// patched once, in the deferred step, whatever happened.
func (r *ServiceAccountReconciler) Reconcile(ctx context.Context, req ctrl.Request) (res ctrl.Result, err error) {
	var sa authv1alpha1.ServiceAccount
	if err := r.APIReader.Get(ctx, req.NamespacedName, &sa); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if !sa.DeletionTimestamp.IsZero() {
		return ctrl.Result{}, nil // owned Secrets go with it
	}
	now := r.Clock.Now().UTC().Truncate(time.Second)
	before := sa.DeepCopy()
	defer func() {
		sa.Status.ObservedGeneration = sa.Generation
		base := sa.DeepCopy()
		base.Status = before.Status
		reason, msg := authv1alpha1.ReasonReconciled, "credentials are current and every reference is resolved"
		if sa.Spec.Disabled {
			reason, msg = authv1alpha1.ReasonDisabled, "the account is disabled: its credentials are kept but the auth server refuses its token requests and tokens"
		}
		res, err = statusStep{client: r.Client, recorder: r.Recorder, obj: &sa, base: base, conds: &sa.Status.Conditions,
			table: serviceAccountReady, now: now, readyReason: reason, readyMessage: msg}.finish(ctx, res, err)
	}()

	v, err := r.gather(ctx, &sa, now)
	if err != nil {
		return ctrl.Result{}, err
	}
	r.resolve(v, before)
	secretNext, err := r.reconcileClientSecret(ctx, v)
	if err != nil {
		return ctrl.Result{}, failed(authv1alpha1.ConditionCredentialsReady, authv1alpha1.ReasonCredentialsWriteFailed, "keeping the client secret", err)
	}
	r.credentialsCondition(v, before)
	res = ctrl.Result{RequeueAfter: requeueAfter(secretNext, now)}
	tokenNext, err := r.reconcileTokenSecret(ctx, v)
	var se *stepError
	if err != nil && !errors.As(err, &se) {
		err = failed("", authv1alpha1.ReasonTokenSecretFailed, "keeping the token Secret", err)
	}
	if err == nil && !tokenNext.IsZero() && tokenNext.Before(secretNext) {
		res.RequeueAfter = requeueAfter(tokenNext, now)
	}
	return res, err
}

// gather resolves the account's policy and roles from the cache.
func (r *ServiceAccountReconciler) gather(ctx context.Context, sa *authv1alpha1.ServiceAccount, now time.Time) (*accountView, error) {
	v := &accountView{sa: sa, now: now}
	var policy authv1alpha1.TokenPolicy
	switch err := r.Get(ctx, types.NamespacedName{Namespace: sa.Namespace, Name: sa.Spec.TokenPolicyRef.Name}, &policy); {
	case err == nil:
		v.policy = &policy
	case !apierrors.IsNotFound(err):
		return nil, err
	}
	var perms [][]string
	for _, name := range sortedCopy(sa.Spec.Roles) {
		var role authv1alpha1.Role
		switch err := r.Get(ctx, types.NamespacedName{Namespace: sa.Namespace, Name: name}, &role); {
		case err == nil:
			v.roles = append(v.roles, name)
			perms = append(perms, role.Spec.Permissions)
		case apierrors.IsNotFound(err):
			v.missing = append(v.missing, name)
		default:
			return nil, err
		}
	}
	v.permissions = authz.Union(perms...)
	k, err := r.gatherKubernetesIdentities(ctx, sa)
	if err != nil {
		return nil, err
	}
	v.kubernetes = k
	return v, nil
}

// reconcileClientSecret applies the client secret schedule: verifier first,
// then the plaintext for the workload, so the auth server never refuses a
// secret the workload already holds. Each Secret can rebuild the other: the
// credentials Secret carries a copy of the verifier (hashes only), so a lost
// plaintext is replaced while its hash keeps working for the grace period,
// and a lost verifier is rebuilt without refusing anything.
func (r *ServiceAccountReconciler) reconcileClientSecret(ctx context.Context, v *accountView) (time.Time, error) {
	sa := v.sa
	creds, err := r.getSecret(ctx, sa.Namespace, sa.Name+authv1alpha1.CredentialsSecretSuffix)
	if err != nil {
		return time.Time{}, err
	}
	verifierSecret, err := r.getSecret(ctx, sa.Namespace, sa.Name+authv1alpha1.VerifierSecretSuffix)
	if err != nil {
		return time.Time{}, err
	}
	// A Secret left by a deleted account of the same name (garbage
	// collection is asynchronous) is overwritten, and nothing in it is kept:
	// the old object's secrets must not work for the new one.
	credsIn, verifierIn := ownData(creds, sa), ownData(verifierSecret, sa)
	delivered := ""
	if credsIn != nil {
		delivered = string(credsIn.Data[authv1alpha1.ClientSecretKey])
	}
	in := credentials.SecretInput{
		State:  secretStateFromStatus(&sa.Status),
		Period: sa.Spec.ClientSecretRotation.Period.Duration,
		Grace:  sa.Spec.ClientSecretRotation.GracePeriod.Duration,
		Now:    v.now,
	}
	if delivered != "" {
		in.Delivered = credentials.Hash(delivered)
	}
	if verifierIn != nil {
		in.Verifier = decodeVerifier(verifierIn.Data[authv1alpha1.VerifierKey])
	}
	if credsIn != nil {
		in.Copy = decodeVerifier([]byte(credsIn.Annotations[authv1alpha1.AnnotationVerifierCopy]))
	}
	rotateReq := sa.Annotations[authv1alpha1.AnnotationRotate]
	revokeReq := sa.Annotations[authv1alpha1.AnnotationRevokePreviousSecret]
	in.Rotate = rotateReq != "" && rotateReq != sa.Status.LastRotateRequest
	in.RevokePrevious = revokeReq != "" && revokeReq != sa.Status.LastRevokeRequest
	d := credentials.SecretPlan(in)
	fresh := delivered
	if d.Rotate {
		if fresh, err = credentials.NewSecret(r.entropy()); err != nil {
			return time.Time{}, err
		}
	}
	vb, _ := json.Marshal(d.Verifier(credentials.Hash(fresh)))
	if err := r.writeSecret(ctx, sa, verifierSecret, sa.Name+authv1alpha1.VerifierSecretSuffix, authv1alpha1.SecretRoleVerifier, nil, map[string][]byte{authv1alpha1.VerifierKey: vb, authv1alpha1.ClientIDKey: []byte(sa.EffectiveClientID())}); err != nil {
		return time.Time{}, err
	}
	if err := r.writeSecret(ctx, sa, creds, sa.Name+authv1alpha1.CredentialsSecretSuffix, authv1alpha1.SecretRoleCredentials, map[string]string{authv1alpha1.AnnotationVerifierCopy: string(vb)},
		map[string][]byte{authv1alpha1.ClientIDKey: []byte(sa.EffectiveClientID()), authv1alpha1.ClientSecretKey: []byte(fresh)}); err != nil {
		return time.Time{}, err
	}
	v.secretFault, v.secretFaultMsg = secretFaultReason(sa, d)
	v.secretRotated, v.graceRunning = d.Rotate, !d.State.PreviousUntil.IsZero()
	switch {
	case v.secretFault == authv1alpha1.ReasonVerifierRestored:
		r.Recorder.Eventf(sa, nil, corev1.EventTypeNormal, v.secretFault, "Restore", "%s", v.secretFaultMsg)
	case v.secretFault != "":
		r.Recorder.Eventf(sa, nil, corev1.EventTypeWarning, v.secretFault, "Replace", "%s", v.secretFaultMsg)
	case d.Rotate && !in.State.CurrentSince.IsZero():
		until := "now (no grace period)"
		if !d.State.PreviousUntil.IsZero() {
			until = d.State.PreviousUntil.Format(time.RFC3339)
		}
		r.Recorder.Eventf(sa, nil, corev1.EventTypeNormal, authv1alpha1.ReasonSecretRotated, "Rotate", "new client secret written; the previous one works until %s", until)
	}
	if d.DropPrevious && in.RevokePrevious {
		r.Recorder.Eventf(sa, nil, corev1.EventTypeWarning, authv1alpha1.ReasonSecretRevoked, "Revoke", "earlier client secrets revoked before their grace period ended")
	}

	st := &sa.Status
	st.ClientID = sa.EffectiveClientID()
	st.CredentialsSecretName = sa.Name + authv1alpha1.CredentialsSecretSuffix
	st.SecretRotatedAt = metaTimeOf(d.State.CurrentSince)
	st.PreviousSecretExpiresAt = metaTimeOf(d.State.PreviousUntil)
	st.NextSecretRotation = metaTimeOf(d.State.CurrentSince.Add(sa.Spec.ClientSecretRotation.Period.Duration))
	if rotateReq != "" {
		st.LastRotateRequest = rotateReq
	}
	if revokeReq != "" {
		st.LastRevokeRequest = revokeReq
	}
	return d.Next, nil
}

// secretFaultReason is the condition reason and message for a lost or
// damaged Secret found by the decision; empty when none was.
func secretFaultReason(sa *authv1alpha1.ServiceAccount, d credentials.SecretDecision) (reason, msg string) {
	creds, ver := sa.Name+authv1alpha1.CredentialsSecretSuffix, sa.Name+authv1alpha1.VerifierSecretSuffix
	switch d.Fault {
	case credentials.SecretLost:
		until := "stopped working at once (no grace period, or earlier secrets were revoked)"
		if !d.LostUntil.IsZero() {
			until = "keeps working until " + d.LostUntil.Format(time.RFC3339)
		}
		return authv1alpha1.ReasonSecretLost, fmt.Sprintf("the client secret in Secret %s was lost or replaced; a new one was written, the lost one %s, and earlier secrets keep their grace", creds, until)
	case credentials.SecretsLost:
		return authv1alpha1.ReasonSecretsLost, fmt.Sprintf("Secrets %s and %s were both lost, so no copy of the client secret or its hash was held; a new one was written and the old one no longer works", creds, ver)
	case credentials.VerifierRestored:
		return authv1alpha1.ReasonVerifierRestored, fmt.Sprintf("Secret %s was missing or damaged; it was rebuilt from Secret %s and every secret that worked still works", ver, creds)
	}
	return "", ""
}

// reconcileTokenSecret keeps a fresh access token in the token Secret when
// one is asked for, re-minting at 80% of its lifetime, when its key is no
// longer published, or when its claims change.
func (r *ServiceAccountReconciler) reconcileTokenSecret(ctx context.Context, v *accountView) (time.Time, error) {
	sa := v.sa
	st := &sa.Status
	if sa.Spec.TokenSecret == nil {
		if st.TokenSecretName != "" {
			if err := r.deleteOwned(ctx, sa, st.TokenSecretName); err != nil {
				return time.Time{}, err
			}
		}
		st.TokenSecretName, st.TokenExpiresAt, st.TokenRefreshAt = "", nil, nil
		return time.Time{}, nil
	}
	if sa.Spec.Disabled || v.policy == nil || v.policy.Status.ActiveKeyID == "" {
		return time.Time{}, nil // nothing to mint with, or nothing to mint for
	}
	p := v.policy
	// The same grant decision as the token endpoint's.
	audience, perms, err := authz.Grant(v.permissions, p.Spec.Audiences, authz.GrantRequest{Scope: sa.Spec.TokenSecret.Permissions, Audience: sa.Spec.TokenSecret.Audience})
	var scopeErr *authz.ScopeError
	switch {
	case errors.As(err, &scopeErr):
		return time.Time{}, stalled("", authv1alpha1.ReasonInvalidSpec, fmt.Sprintf("tokenSecret.permissions asks for permissions the account's roles do not grant: %s", joinOrNone(scopeErr.Denied)))
	case err != nil:
		return time.Time{}, stalled("", authv1alpha1.ReasonInvalidSpec, fmt.Sprintf("tokenSecret.audience of TokenPolicy %s: %v", p.Name, err))
	}
	hash := claimsHash(sa.EffectiveClientID(), audience, perms, v.roles, sa.Spec.ExtraClaims, p.Spec.Issuer, p.Spec.AccessTokenTTL.Duration, sa.UID)

	name := tokenSecretName(sa)
	existing, err := r.getSecret(ctx, sa.Namespace, name)
	if err != nil {
		return time.Time{}, err
	}
	if st.TokenSecretName != "" && st.TokenSecretName != name {
		if err := r.deleteOwned(ctx, sa, st.TokenSecretName); err != nil {
			return time.Time{}, err
		}
	}
	refreshAt := timeOf(st.TokenRefreshAt)
	plan := credentials.TokenInput{Now: v.now, RefreshAt: refreshAt}
	if existing != nil && len(existing.Data[authv1alpha1.TokenKey]) > 0 && existing.Annotations[authv1alpha1.AnnotationTokenRefresh] == refreshAt.Format(time.RFC3339) {
		plan.Has = true
		plan.ClaimsCurrent = existing.Annotations[authv1alpha1.AnnotationClaimsHash] == hash
		plan.KeyPublished = keyPublished(p, tokenKeyID(string(existing.Data[authv1alpha1.TokenKey])))
	}
	if !credentials.TokenPlan(plan) {
		return refreshAt, nil
	}
	raw, claims, err := r.mint(ctx, v, audience, perms)
	if errors.Is(err, token.ErrTooLargeToIssue) {
		return time.Time{}, stalled("", authv1alpha1.ReasonTokenTooLarge, "tokenSecret: "+err.Error()+" (spec.tokenSecret.permissions)")
	}
	if err != nil {
		return time.Time{}, err
	}
	exp := claims.Expiry.Time().UTC()
	refreshAt = credentials.RefreshAt(claims.IssuedAt.Time(), exp)
	ann := map[string]string{
		authv1alpha1.AnnotationClaimsHash:   hash,
		authv1alpha1.AnnotationTokenExpires: exp.Format(time.RFC3339),
		authv1alpha1.AnnotationTokenRefresh: refreshAt.UTC().Format(time.RFC3339),
	}
	if err := r.writeSecret(ctx, sa, existing, name, authv1alpha1.SecretRoleToken, ann, map[string][]byte{authv1alpha1.TokenKey: []byte(raw)}); err != nil {
		return time.Time{}, err
	}
	st.TokenSecretName = name
	st.TokenExpiresAt = metaTimeOf(exp)
	st.TokenRefreshAt = metaTimeOf(refreshAt.UTC())
	return refreshAt, nil
}

// mint signs a token with the policy's active key, read from its key Secret.
func (r *ServiceAccountReconciler) mint(ctx context.Context, v *accountView, audience string, perms []string) (string, token.Claims, error) {
	p := v.policy
	keySecret, err := r.getSecret(ctx, p.Namespace, p.Name+authv1alpha1.KeySecretSuffix)
	if err != nil || keySecret == nil {
		return "", token.Claims{}, fmt.Errorf("reading the signing keys of TokenPolicy %s: %v", p.Name, err)
	}
	ks, err := keys.ParsePrivate(keySecret.Data[authv1alpha1.KeySetDataKey])
	if err != nil {
		return "", token.Claims{}, fmt.Errorf("signing keys of TokenPolicy %s: %w", p.Name, err)
	}
	i := slices.IndexFunc(ks, func(k keys.Key) bool { return k.ID == p.Status.ActiveKeyID })
	if i < 0 {
		return "", token.Claims{}, fmt.Errorf("the active key of TokenPolicy %s is not in its key Secret yet", p.Name)
	}
	sa := v.sa
	return token.Mint(p.Spec.Issuer, p.Spec.AccessTokenTTL.Duration, ks[i], r.Clock, r.entropy(), token.Subject{
		ClientID: sa.EffectiveClientID(), Namespace: sa.Namespace, UID: string(sa.UID), Name: sa.Name, Roles: v.roles, Extra: sa.Spec.ExtraClaims,
	}, audience, perms)
}

// resolve records the resolved policy and roles, and warns once when a
// reference becomes unresolved. A missing reference is not a failure of the
// reconcile: credentials are kept, and the watches on Roles and
// TokenPolicies bring the account back when it appears.
func (r *ServiceAccountReconciler) resolve(v *accountView, before *authv1alpha1.ServiceAccount) {
	sa, now := v.sa, v.now
	st := &sa.Status
	st.Roles, st.Permissions = v.roles, v.permissions
	st.Disabled = sa.Spec.Disabled
	st.RevokeTokensIssuedBefore = sa.Spec.RevokeTokensIssuedBefore
	switch {
	case v.policy == nil:
		r.condition(sa, before, authv1alpha1.ConditionPolicyResolved, false, authv1alpha1.ReasonPolicyNotFound, fmt.Sprintf("TokenPolicy %q does not exist in namespace %s", sa.Spec.TokenPolicyRef.Name, sa.Namespace), now)
	case v.policy.Status.ActiveKeyID == "":
		r.condition(sa, before, authv1alpha1.ConditionPolicyResolved, false, authv1alpha1.ReasonPolicyNotReady, fmt.Sprintf("TokenPolicy %q has no active signing key yet", v.policy.Name), now)
	default:
		r.condition(sa, before, authv1alpha1.ConditionPolicyResolved, true, authv1alpha1.ReasonReconciled, fmt.Sprintf("TokenPolicy %q signs this account's tokens with key %s", v.policy.Name, v.policy.Status.ActiveKeyID), now)
	}
	if len(v.missing) == 0 {
		r.condition(sa, before, authv1alpha1.ConditionRolesResolved, true, authv1alpha1.ReasonReconciled, fmt.Sprintf("roles: %s", joinOrNone(v.roles)), now)
	} else {
		r.condition(sa, before, authv1alpha1.ConditionRolesResolved, false, authv1alpha1.ReasonRoleNotFound, fmt.Sprintf("Roles not found in namespace %s: %s; their permissions are not granted until they exist", sa.Namespace, joinOrNone(v.missing)), now)
	}
	if v.policy != nil {
		size, err := fullTokenSize(sa, v.policy, v.roles, v.permissions)
		ok, reason, msg := tokenSizeCondition(size, err, len(v.permissions))
		r.condition(sa, before, authv1alpha1.ConditionTokenIssuable, ok, reason, msg, now)
	}
	r.resolveKubernetesIdentities(v, before)
}

// credentialsCondition records the client secret reconcileClientSecret
// kept. A loss stays visible while the lost secret's grace runs (until the
// next rotation when nothing could be kept).
func (r *ServiceAccountReconciler) credentialsCondition(v *accountView, before *authv1alpha1.ServiceAccount) {
	sa := v.sa
	reason, msg := authv1alpha1.ReasonReconciled, fmt.Sprintf("client secret in Secret %s", sa.Status.CredentialsSecretName)
	old := meta.FindStatusCondition(before.Status.Conditions, authv1alpha1.ConditionCredentialsReady)
	switch {
	case v.secretFault == authv1alpha1.ReasonSecretLost || v.secretFault == authv1alpha1.ReasonSecretsLost:
		reason, msg = v.secretFault, v.secretFaultMsg
	case old != nil && !v.secretRotated && (old.Reason == authv1alpha1.ReasonSecretsLost || old.Reason == authv1alpha1.ReasonSecretLost && v.graceRunning):
		reason, msg = old.Reason, old.Message
	}
	r.condition(sa, before, authv1alpha1.ConditionCredentialsReady, true, reason, msg, v.now)
}

// condition sets a condition and emits a Warning event when it turns false
// with a new reason, so a missing reference is announced once, not on every
// reconcile.
func (r *ServiceAccountReconciler) condition(sa, before *authv1alpha1.ServiceAccount, typ string, ok bool, reason, msg string, now time.Time) {
	status := metav1.ConditionTrue
	if !ok {
		status = metav1.ConditionFalse
		if old := meta.FindStatusCondition(before.Status.Conditions, typ); old == nil || old.Status != status || old.Reason != reason {
			if typ != authv1alpha1.ConditionReady {
				r.Recorder.Eventf(sa, nil, corev1.EventTypeWarning, reason, "Resolve", "%s", msg)
			}
		}
	}
	setCondition(&sa.Status.Conditions, sa.Generation, now, typ, status, reason, msg)
}

func (r *ServiceAccountReconciler) entropy() io.Reader {
	if r.Rand != nil {
		return r.Rand
	}
	return rand.Reader
}

// getSecret reads a Secret from the cache; nil when it does not exist.
func (r *ServiceAccountReconciler) getSecret(ctx context.Context, ns, name string) (*corev1.Secret, error) {
	var s corev1.Secret
	if err := r.Get(ctx, types.NamespacedName{Namespace: ns, Name: name}, &s); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, nil
		}
		return nil, err
	}
	return &s, nil
}

// ownData returns s when its data belongs to owner: it has no controller,
// or owner (same UID) is its controller. A Secret controlled by a deleted
// object of the same name reads as absent.
func ownData(s *corev1.Secret, owner metav1.Object) *corev1.Secret {
	if s == nil {
		return nil
	}
	if ref := metav1.GetControllerOf(s); ref != nil && ref.UID != owner.GetUID() {
		return nil
	}
	return s
}

// writeSecret creates or updates an owned Secret when its data or
// annotations differ.
func (r *ServiceAccountReconciler) writeSecret(ctx context.Context, sa *authv1alpha1.ServiceAccount, existing *corev1.Secret, name, role string, ann map[string]string, data map[string][]byte) error {
	want := ownedSecret(sa, name, role)
	want.Annotations = ann
	want.Data = data
	if existing != nil {
		same := semanticEqual(existing.Data, data) && semanticEqual(existing.Labels, want.Labels)
		for k, v := range ann {
			same = same && existing.Annotations[k] == v
		}
		if same && metav1.IsControlledBy(existing, sa) {
			return nil
		}
		want.ResourceVersion = existing.ResourceVersion
	}
	if err := controllerutil.SetControllerReference(sa, want, r.Scheme()); err != nil {
		return err
	}
	if want.ResourceVersion == "" {
		return r.Create(ctx, want)
	}
	return r.Update(ctx, want)
}

func (r *ServiceAccountReconciler) deleteOwned(ctx context.Context, sa *authv1alpha1.ServiceAccount, name string) error {
	s, err := r.getSecret(ctx, sa.Namespace, name)
	if err != nil || s == nil || !metav1.IsControlledBy(s, sa) {
		return err
	}
	return client.IgnoreNotFound(r.Delete(ctx, s))
}

// keyPublished reports whether kid is a key the policy still publishes.
func keyPublished(p *authv1alpha1.TokenPolicy, kid string) bool {
	for _, k := range p.Status.Keys {
		if k.KeyID == kid {
			return rotation.State(k.State).Publishes()
		}
	}
	return false
}

// tokenKeyID reads the kid from a token we minted ourselves.
func tokenKeyID(raw string) string {
	jws, err := jose.ParseSignedCompact(raw, keys.Algorithms)
	if err != nil || len(jws.Signatures) != 1 {
		return ""
	}
	return jws.Signatures[0].Header.KeyID
}

// SetupWithManager watches accounts, their Secrets, the Roles and
// TokenPolicies they reference, and the Kubernetes service accounts they
// list (their creation and deletion), through field indexes; and, for
// conflicts, the other accounts that list the same Kubernetes service
// accounts (spec changes and deletion).
func (r *ServiceAccountReconciler) SetupWithManager(mgr ctrl.Manager) error {
	return ctrl.NewControllerManagedBy(mgr).
		For(&authv1alpha1.ServiceAccount{}).
		Owns(&corev1.Secret{}).
		Watches(&authv1alpha1.Role{}, handler.EnqueueRequestsFromMapFunc(r.referencing(authv1alpha1.IndexRoles)), builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		Watches(&authv1alpha1.TokenPolicy{}, handler.EnqueueRequestsFromMapFunc(r.referencing(authv1alpha1.IndexTokenPolicy)), builder.WithPredicates(policySigningWatch)).
		Watches(&corev1.ServiceAccount{}, handler.EnqueueRequestsFromMapFunc(r.listingKubernetesServiceAccount), builder.WithPredicates(kubernetesServiceAccountWatch)).
		Watches(&authv1alpha1.ServiceAccount{}, handler.EnqueueRequestsFromMapFunc(r.sharingKubernetesServiceAccounts), builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		WithOptions(controller.Options{MaxConcurrentReconciles: max(r.MaxConcurrentReconciles, 1)}).
		Named("serviceaccount").
		Complete(r)
}

// policySigningWatch passes the TokenPolicy changes an account reads: its
// spec (issuer, audiences, lifetimes) and the keys it signs with. Its other
// status (conditions, next rotation) moves without concerning any account,
// and each event costs one reconcile of every account under the policy.
// (The watch on Roles passes spec changes only, for the same reason: a
// Role's status counts its accounts and changes whenever one comes or goes.)
var policySigningWatch = predicate.Funcs{UpdateFunc: func(e event.UpdateEvent) bool {
	o, okOld := e.ObjectOld.(*authv1alpha1.TokenPolicy)
	n, okNew := e.ObjectNew.(*authv1alpha1.TokenPolicy)
	if !okOld || !okNew {
		return true
	}
	return o.Generation != n.Generation || o.Status.ActiveKeyID != n.Status.ActiveKeyID || !semanticEqual(o.Status.Keys, n.Status.Keys)
}}

// referencing maps a Role or TokenPolicy to the accounts that reference it.
// It reads names only, so it lists the cache without copying every account.
func (r *ServiceAccountReconciler) referencing(index string) handler.MapFunc {
	return func(ctx context.Context, obj client.Object) []reconcile.Request {
		var list authv1alpha1.ServiceAccountList
		if err := r.List(ctx, &list, client.InNamespace(obj.GetNamespace()), client.MatchingFields{index: obj.GetName()}, client.UnsafeDisableDeepCopy); err != nil {
			log.FromContext(ctx).Error(err, "listing referencing ServiceAccounts", "index", index)
			return nil
		}
		reqs := make([]reconcile.Request, 0, len(list.Items))
		for _, sa := range list.Items {
			reqs = append(reqs, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&sa)})
		}
		return reqs
	}
}

// IndexServiceAccounts registers the field indexes the controllers look
// accounts up by.
func IndexServiceAccounts(ctx context.Context, mgr ctrl.Manager) error {
	idx := mgr.GetFieldIndexer()
	if err := idx.IndexField(ctx, &authv1alpha1.ServiceAccount{}, authv1alpha1.IndexRoles, func(o client.Object) []string {
		return o.(*authv1alpha1.ServiceAccount).Spec.Roles
	}); err != nil {
		return err
	}
	if err := idx.IndexField(ctx, &authv1alpha1.ServiceAccount{}, authv1alpha1.IndexClientID, func(o client.Object) []string {
		return []string{o.(*authv1alpha1.ServiceAccount).EffectiveClientID()}
	}); err != nil {
		return err
	}
	if err := idx.IndexField(ctx, &authv1alpha1.ServiceAccount{}, authv1alpha1.IndexKubernetesServiceAccounts, func(o client.Object) []string {
		return o.(*authv1alpha1.ServiceAccount).KubernetesServiceAccountKeys()
	}); err != nil {
		return err
	}
	return idx.IndexField(ctx, &authv1alpha1.ServiceAccount{}, authv1alpha1.IndexTokenPolicy, func(o client.Object) []string {
		return []string{o.(*authv1alpha1.ServiceAccount).Spec.TokenPolicyRef.Name}
	})
}
