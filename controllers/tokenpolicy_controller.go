// Package controllers holds one reconciler per kind. Each reads what it needs,
// asks a pure core in internal/ what to do, acts, and writes status.
package controllers

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/predicate"

	authv1alpha1 "github.com/authframework/authframework/api/v1alpha1"
	"github.com/authframework/authframework/internal/keys"
	"github.com/authframework/authframework/internal/rotation"
)

// TokenPolicyReconciler keeps each TokenPolicy's signing keys: a Secret with
// the private key set, rotated on the schedule internal/rotation decides, and
// status that lists every key with its times.
type TokenPolicyReconciler struct {
	client.Client
	// APIReader reads the policy past the cache: status is the schedule's
	// state, and deciding from a cached copy older than our own last write
	// would undo it.
	APIReader client.Reader
	Clock     clock.PassiveClock
	Recorder  events.EventRecorder
	// Rand is the entropy for new keys; crypto/rand when nil.
	Rand io.Reader
	// Material is the controller's copy of the keys, for restoring a lost
	// Secret.
	Material *KeyMaterial
	Metrics  *PolicyMetrics
}

// +kubebuilder:rbac:groups=auth.authframework.dev,resources=tokenpolicies,verbs=get;list;watch
// +kubebuilder:rbac:groups=auth.authframework.dev,resources=tokenpolicies/status,verbs=get;update;patch
// +kubebuilder:rbac:groups="",resources=secrets,verbs=get;list;watch;create;update;patch
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch

// tokenPolicyReady is the TokenPolicy's Ready table.
var tokenPolicyReady = []readyRow{{Type: authv1alpha1.ConditionKeysReady}}

// Reconcile observes the policy and its Secret, decides the next key list,
// writes the Secret, and requeues at the next transition. Status is patched
// once, in the deferred step, whatever happened.
func (r *TokenPolicyReconciler) Reconcile(ctx context.Context, req ctrl.Request) (res ctrl.Result, err error) {
	var policy authv1alpha1.TokenPolicy
	if err := r.APIReader.Get(ctx, req.NamespacedName, &policy); err != nil {
		if apierrors.IsNotFound(err) {
			r.Material.Forget(req.NamespacedName)
			r.Metrics.Forget(req.Namespace, req.Name)
			return ctrl.Result{}, nil
		}
		return ctrl.Result{}, err
	}
	if !policy.DeletionTimestamp.IsZero() {
		return ctrl.Result{}, nil // the Secret goes with it (owner reference)
	}
	now := r.Clock.Now().UTC().Truncate(time.Second)
	before := policy.Status.DeepCopy()
	defer func() {
		policy.Status.ObservedGeneration = policy.Generation
		base := policy.DeepCopy()
		base.Status = *before
		res, err = statusStep{client: r.Client, recorder: r.Recorder, obj: &policy, base: base, conds: &policy.Status.Conditions,
			table: tokenPolicyReady, now: now, readyReason: authv1alpha1.ReasonReconciled,
			readyMessage: "signing keys are published and one is active"}.finish(ctx, res, err)
	}()
	return r.reconcileKeys(ctx, &policy, now)
}

// reconcileKeys runs the key schedule: read the Secret, decide, write the
// Secret, then record the new schedule in status. A failure leaves status
// with the keys it had, so status never lists a key the Secret lacks.
func (r *TokenPolicyReconciler) reconcileKeys(ctx context.Context, policy *authv1alpha1.TokenPolicy, now time.Time) (ctrl.Result, error) {
	key := client.ObjectKeyFromObject(policy)
	secret, fromSecret, err := r.readKeySecret(ctx, policy)
	if err != nil {
		return ctrl.Result{}, err
	}
	held := r.Material.Get(key, policy.UID)
	for id, k := range fromSecret {
		held[id] = k
	}
	schedule, lost := keyAccounting(scheduleFromStatus(policy.Status.Keys), held)
	restored := len(lost) == 0 && len(policy.Status.Keys) > 0 && len(fromSecret) < countPublished(schedule)

	rotateRequest := policy.Annotations[authv1alpha1.AnnotationRotate]
	in := rotation.Input{
		Policy:    rotationPolicy(policy),
		Keys:      schedule,
		Now:       now,
		RotateNow: rotateRequest != "" && rotateRequest != policy.Status.LastRotateRequest,
		Revoke:    revokeRequests(policy),
	}
	result, err := r.decide(in, policy, held)
	if err != nil {
		return ctrl.Result{}, failed(authv1alpha1.ConditionKeysReady, authv1alpha1.ReasonKeyGenerationFailed, "generating a signing key", err)
	}

	published := publishedMaterial(result.Keys, held)
	if err := r.writeKeySecret(ctx, policy, secret, published); err != nil {
		return ctrl.Result{}, failed(authv1alpha1.ConditionKeysReady, authv1alpha1.ReasonKeySecretWriteFailed,
			"writing key Secret "+policy.Name+authv1alpha1.KeySecretSuffix, err)
	}
	r.Material.Set(key, policy.UID, published)

	r.recordEvents(policy, result.Events, lost, restored)
	r.recordStatus(policy, result, rotateRequest, lost, now)
	after := requeueAfter(result.Next, now)
	log.FromContext(ctx).V(1).Info("reconciled signing keys", "keys", len(result.Keys), "requeueAfter", after)
	return ctrl.Result{RequeueAfter: after}, nil
}

// decide runs the rotation core, generating a key when it asks for one.
func (r *TokenPolicyReconciler) decide(in rotation.Input, policy *authv1alpha1.TokenPolicy, held map[string]keys.Key) (rotation.Result, error) {
	result := rotation.Next(in)
	if result.NeedKey == "" {
		return result, nil
	}
	bits := 0
	if policy.Spec.RSAKeyBits != nil {
		bits = int(*policy.Spec.RSAKeyBits)
	}
	entropy := r.Rand
	if entropy == nil {
		entropy = rand.Reader
	}
	k, err := keys.Generate(jose.SignatureAlgorithm(result.NeedKey), bits, entropy)
	if err != nil {
		return rotation.Result{}, err
	}
	held[k.ID] = k
	in.Spare = &rotation.Spare{ID: k.ID, Algorithm: result.NeedKey}
	result = rotation.Next(in)
	if result.NeedKey != "" {
		return rotation.Result{}, fmt.Errorf("rotation still needs a %s key after one was generated", result.NeedKey)
	}
	return result, nil
}

// readKeySecret returns the policy's key Secret (nil when missing) and the
// keys it holds. A damaged key set reads as no keys: it is rewritten from
// what the controller holds.
func (r *TokenPolicyReconciler) readKeySecret(ctx context.Context, policy *authv1alpha1.TokenPolicy) (*corev1.Secret, map[string]keys.Key, error) {
	var secret corev1.Secret
	key := types.NamespacedName{Namespace: policy.Namespace, Name: policy.Name + authv1alpha1.KeySecretSuffix}
	if err := r.Get(ctx, key, &secret); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, nil, nil
		}
		return nil, nil, err
	}
	if ownData(&secret, policy) == nil {
		// Left by a deleted policy of the same name: its keys are not this
		// policy's; the Secret is rewritten with this policy's own.
		return &secret, nil, nil
	}
	parsed, err := keys.ParsePrivate(secret.Data[authv1alpha1.KeySetDataKey])
	if err != nil {
		log.FromContext(ctx).Info("key Secret is damaged; restoring it from held keys", "secret", key.Name, "reason", err.Error())
		return &secret, nil, nil
	}
	out := make(map[string]keys.Key, len(parsed))
	for _, k := range parsed {
		out[k.ID] = k
	}
	return &secret, out, nil
}

// writeKeySecret creates or updates the key Secret when its content differs.
func (r *TokenPolicyReconciler) writeKeySecret(ctx context.Context, policy *authv1alpha1.TokenPolicy, secret *corev1.Secret, ks []keys.Key) error {
	data, err := keys.MarshalPrivate(ks)
	if err != nil {
		return err
	}
	if secret == nil {
		secret = &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: policy.Namespace, Name: policy.Name + authv1alpha1.KeySecretSuffix}}
	} else if bytes.Equal(secret.Data[authv1alpha1.KeySetDataKey], data) && secret.Labels[authv1alpha1.LabelManagedBy] == authv1alpha1.ManagedByValue {
		return nil
	}
	secret = secret.DeepCopy()
	if secret.Labels == nil {
		secret.Labels = map[string]string{}
	}
	secret.Labels[authv1alpha1.LabelManagedBy] = authv1alpha1.ManagedByValue
	secret.Labels[authv1alpha1.LabelTokenPolicy] = policy.Name
	secret.Labels[authv1alpha1.LabelSecretRole] = authv1alpha1.SecretRoleSigningKeys
	secret.Type = corev1.SecretTypeOpaque
	secret.Data = map[string][]byte{authv1alpha1.KeySetDataKey: data}
	if err := controllerutil.SetControllerReference(policy, secret, r.Scheme()); err != nil {
		return err
	}
	if secret.ResourceVersion == "" {
		return r.Create(ctx, secret)
	}
	return r.Update(ctx, secret)
}

func (r *TokenPolicyReconciler) recordEvents(policy *authv1alpha1.TokenPolicy, evs []rotation.Event, lost []string, restored bool) {
	if len(lost) > 0 {
		r.Recorder.Eventf(policy, nil, corev1.EventTypeWarning, authv1alpha1.ReasonKeysLost, "Reconcile",
			"the key Secret was lost and %d published key(s) were not held by the controller; new keys were generated and tokens signed before are no longer valid", len(lost))
	}
	if restored {
		r.Recorder.Eventf(policy, nil, corev1.EventTypeNormal, authv1alpha1.ReasonKeysRestored, "Reconcile",
			"the key Secret was missing or damaged; restored the same keys from the controller's copy")
	}
	for _, e := range evs {
		kind := corev1.EventTypeNormal
		if e.Reason == rotation.KeyRevoked {
			kind = corev1.EventTypeWarning
		}
		r.Recorder.Eventf(policy, nil, kind, string(e.Reason), "Rotate", "key %s: %s", e.KeyID, eventText[e.Reason])
		if e.Reason == rotation.KeyActivated && policy.Status.ActiveKeyID != "" {
			r.Metrics.Rotated(policy.Namespace, policy.Name)
		}
	}
}

var eventText = map[rotation.Reason]string{
	rotation.KeyGenerated:       "generated and published",
	rotation.KeyActivated:       "now signs new tokens",
	rotation.KeyRetired:         "retired; stays published until its tokens expire",
	rotation.KeyRemoved:         "removed from the key set; every token it signed has expired",
	rotation.KeyRevoked:         "revoked; tokens it signed are refused",
	rotation.RotationRequested:  "rotation requested; this key takes over after the pre-publish lead",
	rotation.AlgorithmChanged:   "the policy's algorithm changed; this key takes over after the pre-publish lead",
	rotation.PendingKeyReplaced: "pending key of the old algorithm replaced",
}

// recordStatus records the schedule the key Secret now holds.
func (r *TokenPolicyReconciler) recordStatus(policy *authv1alpha1.TokenPolicy, result rotation.Result, rotateRequest string, lost []string, now time.Time) {
	st := &policy.Status
	st.Keys = scheduleToStatus(result.Keys)
	st.ActiveKeyID = ""
	if a, ok := rotation.ActiveKey(result.Keys); ok {
		st.ActiveKeyID = a.ID
	}
	st.NextRotationTime = metaTimeOf(nextRotation(result.Keys))
	st.KeySecretName = policy.Name + authv1alpha1.KeySecretSuffix
	if rotateRequest != "" {
		st.LastRotateRequest = rotateRequest
	}
	setCondition(&st.Conditions, policy.Generation, now, authv1alpha1.ConditionKeysReady, metav1.ConditionTrue, authv1alpha1.ReasonReconciled,
		fmt.Sprintf("%d key(s) in the set; %s signs", countPublished(result.Keys), st.ActiveKeyID))
	if reason, msg, ok := rotationCondition(result.Events, lost); ok {
		setCondition(&st.Conditions, policy.Generation, now, authv1alpha1.ConditionKeysRotated, metav1.ConditionTrue, reason, msg)
	}
}

// rotationCondition summarises this reconcile's key changes, if any, for the
// KeysRotated condition. Loss outranks everything: it must stay visible.
func rotationCondition(evs []rotation.Event, lost []string) (reason, msg string, ok bool) {
	if len(lost) > 0 {
		return authv1alpha1.ReasonKeysLost, fmt.Sprintf("%d published key(s) were lost with the key Secret and no copy was held; new keys were generated and tokens signed before are no longer valid", len(lost)), true
	}
	var parts []string
	for _, e := range evs {
		parts = append(parts, fmt.Sprintf("%s %s", e.KeyID, eventText[e.Reason]))
		reason = string(e.Reason)
	}
	if len(parts) == 0 {
		return "", "", false
	}
	// The most telling reason: revocation, then activation, then the last.
	for _, want := range []rotation.Reason{rotation.KeyRevoked, rotation.KeyActivated} {
		if slices.ContainsFunc(evs, func(e rotation.Event) bool { return e.Reason == want }) {
			reason = string(want)
			break
		}
	}
	return reason, strings.Join(parts, "; "), true
}

func revokeRequests(p *authv1alpha1.TokenPolicy) []string {
	out := slices.Clone(p.Spec.RevokedKeys)
	if kid := strings.TrimSpace(p.Annotations[authv1alpha1.AnnotationRevokeKey]); kid != "" {
		out = append(out, kid)
	}
	return out
}

// publishedMaterial is the private material of every key still published, in
// schedule order; revoked and removed keys' material is dropped.
func publishedMaterial(schedule []rotation.Key, held map[string]keys.Key) []keys.Key {
	var out []keys.Key
	for _, k := range schedule {
		if m, ok := held[k.ID]; ok && k.State.Publishes() {
			out = append(out, m)
		}
	}
	return out
}

func countPublished(ks []rotation.Key) int {
	n := 0
	for _, k := range ks {
		if k.State.Publishes() {
			n++
		}
	}
	return n
}

// SetupWithManager watches policies (spec and annotation changes) and the
// Secrets they own.
func (r *TokenPolicyReconciler) SetupWithManager(mgr ctrl.Manager) error {
	return ctrl.NewControllerManagedBy(mgr).
		For(&authv1alpha1.TokenPolicy{}, builder.WithPredicates(predicate.Or(predicate.GenerationChangedPredicate{}, predicate.AnnotationChangedPredicate{}))).
		Owns(&corev1.Secret{}).
		Named("tokenpolicy").
		Complete(r)
}
