// Package admission holds the defaulting and validating webhooks of the four
// kinds: what the CRD schema and CEL cannot check — references across
// objects, cluster-wide uniqueness, changes that affect live tokens, and
// advice returned as admission warnings.
//
// The webhooks are scoped to the auth.authframework.dev group. Validation
// fails closed for our kinds only; defaulting fails open (the controllers
// apply the same default), and no webhook sees DELETE, so a down operator
// never blocks namespace deletion or anything outside our group.
package admission

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation/field"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	authv1alpha1 "github.com/authframework/authframework/api/v1alpha1"
	"github.com/authframework/authframework/internal/authz"
)

// MinPrePublish is the shortest pre-publish lead that does not warn: common
// verifiers cache JWKS for 10 minutes.
const MinPrePublish = 10 * time.Minute

// Setup registers every webhook with the manager's webhook server.
func Setup(mgr ctrl.Manager) error {
	r := mgr.GetClient()
	if err := ctrl.NewWebhookManagedBy(mgr, &authv1alpha1.ServiceAccount{}).
		WithDefaulter(&ServiceAccountDefaulter{}).WithValidator(&ServiceAccountValidator{Reader: r}).Complete(); err != nil {
		return err
	}
	if err := ctrl.NewWebhookManagedBy(mgr, &authv1alpha1.TokenPolicy{}).WithValidator(&TokenPolicyValidator{Reader: r}).Complete(); err != nil {
		return err
	}
	if err := ctrl.NewWebhookManagedBy(mgr, &authv1alpha1.Role{}).WithValidator(&RoleValidator{}).Complete(); err != nil {
		return err
	}
	return ctrl.NewWebhookManagedBy(mgr, &authv1alpha1.AuthServer{}).WithValidator(&AuthServerValidator{Reader: r}).Complete()
}

var group = authv1alpha1.GroupVersion.Group

func invalid(kind, name string, errs field.ErrorList) error {
	if len(errs) == 0 {
		return nil
	}
	return apierrors.NewInvalid(schema.GroupKind{Group: group, Kind: kind}, name, errs)
}

// +kubebuilder:webhook:path=/mutate-auth-authframework-dev-v1alpha1-serviceaccount,mutating=true,failurePolicy=ignore,sideEffects=None,groups=auth.authframework.dev,resources=serviceaccounts,verbs=create;update,versions=v1alpha1,name=mserviceaccount.auth.authframework.dev,admissionReviewVersions=v1,timeoutSeconds=5

// ServiceAccountDefaulter writes the effective client id into the spec, so
// it is visible and, once set, immutable (a CEL transition rule).
type ServiceAccountDefaulter struct{}

// Default implements admission.Defaulter.
func (*ServiceAccountDefaulter) Default(_ context.Context, sa *authv1alpha1.ServiceAccount) error {
	if sa.Spec.ClientID == "" && sa.Name != "" && sa.Namespace != "" {
		sa.Spec.ClientID = sa.EffectiveClientID()
	}
	return nil
}

// +kubebuilder:webhook:path=/validate-auth-authframework-dev-v1alpha1-serviceaccount,mutating=false,failurePolicy=fail,sideEffects=None,groups=auth.authframework.dev,resources=serviceaccounts,verbs=create;update,versions=v1alpha1,name=vserviceaccount.auth.authframework.dev,admissionReviewVersions=v1,timeoutSeconds=5

// ServiceAccountValidator refuses a client id another account already uses
// (anywhere in the cluster) and a Kubernetes service account listed twice,
// and warns about references that do not resolve and Kubernetes service
// accounts that are missing or listed by another account.
type ServiceAccountValidator struct{ Reader client.Reader }

// ValidateCreate implements admission.Validator.
func (v *ServiceAccountValidator) ValidateCreate(ctx context.Context, sa *authv1alpha1.ServiceAccount) (admission.Warnings, error) {
	return v.validate(ctx, sa)
}

// ValidateUpdate implements admission.Validator.
func (v *ServiceAccountValidator) ValidateUpdate(ctx context.Context, _, sa *authv1alpha1.ServiceAccount) (admission.Warnings, error) {
	return v.validate(ctx, sa)
}

// ValidateDelete implements admission.Validator; DELETE is not sent to this
// webhook.
func (v *ServiceAccountValidator) ValidateDelete(context.Context, *authv1alpha1.ServiceAccount) (admission.Warnings, error) {
	return nil, nil
}

func (v *ServiceAccountValidator) validate(ctx context.Context, sa *authv1alpha1.ServiceAccount) (admission.Warnings, error) {
	var errs field.ErrorList
	id := sa.EffectiveClientID()
	var others authv1alpha1.ServiceAccountList
	if err := v.Reader.List(ctx, &others, client.MatchingFields{authv1alpha1.IndexClientID: id}); err != nil {
		return nil, apierrors.NewInternalError(fmt.Errorf("looking up client ids: %w", err))
	}
	for _, o := range others.Items {
		if o.Namespace != sa.Namespace || o.Name != sa.Name {
			errs = append(errs, field.Duplicate(field.NewPath("spec", "clientID"), id+" (used by "+o.Namespace+"/"+o.Name+")"))
			break
		}
	}
	var warnings admission.Warnings
	var policy authv1alpha1.TokenPolicy
	switch err := v.Reader.Get(ctx, types.NamespacedName{Namespace: sa.Namespace, Name: sa.Spec.TokenPolicyRef.Name}, &policy); {
	case apierrors.IsNotFound(err):
		warnings = append(warnings, fmt.Sprintf("spec.tokenPolicyRef: TokenPolicy %q does not exist in namespace %s; the account gets no tokens until it does", sa.Spec.TokenPolicyRef.Name, sa.Namespace))
	case err != nil:
		return nil, apierrors.NewInternalError(err)
	case sa.Spec.TokenSecret != nil && sa.Spec.TokenSecret.Audience != "" && !slices.Contains(policy.Spec.Audiences, sa.Spec.TokenSecret.Audience):
		errs = append(errs, field.NotSupported(field.NewPath("spec", "tokenSecret", "audience"), sa.Spec.TokenSecret.Audience, policy.Spec.Audiences))
	}
	var missing []string
	for _, name := range sa.Spec.Roles {
		var role authv1alpha1.Role
		if err := v.Reader.Get(ctx, types.NamespacedName{Namespace: sa.Namespace, Name: name}, &role); apierrors.IsNotFound(err) {
			missing = append(missing, name)
		} else if err != nil {
			return nil, apierrors.NewInternalError(err)
		}
	}
	if len(missing) > 0 {
		warnings = append(warnings, fmt.Sprintf("spec.roles: Role(s) %s do not exist in namespace %s; their permissions are not granted until they do", strings.Join(missing, ", "), sa.Namespace))
	}
	kw, kerrs, err := v.kubernetesServiceAccounts(ctx, sa)
	if err != nil {
		return nil, apierrors.NewInternalError(err)
	}
	return append(warnings, kw...), invalid("ServiceAccount", sa.Name, append(errs, kerrs...))
}

// kubernetesServiceAccounts refuses a Kubernetes service account listed
// twice in one list (the namespace defaulted, which CEL cannot do), and
// warns about one that does not exist (it may be created later) or that
// another ServiceAccount lists already (the auth server refuses its
// exchanges while two do, so this is allowed but announced).
func (v *ServiceAccountValidator) kubernetesServiceAccounts(ctx context.Context, sa *authv1alpha1.ServiceAccount) (admission.Warnings, field.ErrorList, error) {
	var warnings admission.Warnings
	var errs field.ErrorList
	seen := map[string]bool{}
	for i, ref := range sa.Spec.KubernetesServiceAccounts {
		path := field.NewPath("spec", "kubernetesServiceAccounts").Index(i)
		ns := ref.Namespace
		if ns == "" {
			ns = sa.Namespace
		}
		key := authv1alpha1.KubernetesServiceAccountKey(ns, ref.Name)
		if seen[key] {
			errs = append(errs, field.Duplicate(path, key))
			continue
		}
		seen[key] = true
		switch err := v.Reader.Get(ctx, types.NamespacedName{Namespace: ns, Name: ref.Name}, &corev1.ServiceAccount{}); {
		case apierrors.IsNotFound(err):
			warnings = append(warnings, fmt.Sprintf("%s: Kubernetes ServiceAccount %s does not exist; its tokens are exchanged for this account's once it is created", path, key))
		case err != nil:
			return nil, nil, err
		}
		var others authv1alpha1.ServiceAccountList
		if err := v.Reader.List(ctx, &others, client.MatchingFields{authv1alpha1.IndexKubernetesServiceAccounts: key}); err != nil {
			return nil, nil, err
		}
		var names []string
		for _, o := range others.Items {
			if o.Namespace != sa.Namespace || o.Name != sa.Name {
				names = append(names, o.Namespace+"/"+o.Name)
			}
		}
		if len(names) > 0 {
			slices.Sort(names)
			warnings = append(warnings, fmt.Sprintf("%s: Kubernetes ServiceAccount %s is already listed by ServiceAccount %s; the auth server refuses its token exchanges while more than one ServiceAccount lists it", path, key, strings.Join(names, ", ")))
		}
	}
	return warnings, errs, nil
}

// +kubebuilder:webhook:path=/validate-auth-authframework-dev-v1alpha1-tokenpolicy,mutating=false,failurePolicy=fail,sideEffects=None,groups=auth.authframework.dev,resources=tokenpolicies,verbs=create;update,versions=v1alpha1,name=vtokenpolicy.auth.authframework.dev,admissionReviewVersions=v1,timeoutSeconds=5

// TokenPolicyValidator explains changes that affect live tokens.
type TokenPolicyValidator struct{ Reader client.Reader }

// ValidateCreate implements admission.Validator.
func (v *TokenPolicyValidator) ValidateCreate(ctx context.Context, p *authv1alpha1.TokenPolicy) (admission.Warnings, error) {
	return append(append(prePublishWarnings(p), deprecatedWarnings(p)...), v.sharedAudienceWarnings(ctx, p)...), nil
}

// sharedAudienceWarnings names the audiences that a policy of another
// namespace already lists: that namespace owns them, and this policy's
// tokens for them pass only where a service accepts this namespace
// explicitly (namespace=).
func (v *TokenPolicyValidator) sharedAudienceWarnings(ctx context.Context, p *authv1alpha1.TokenPolicy) admission.Warnings {
	var list authv1alpha1.TokenPolicyList
	if v.Reader == nil || v.Reader.List(ctx, &list) != nil {
		return nil
	}
	var ws admission.Warnings
	for _, aud := range p.Spec.Audiences {
		for _, other := range list.Items {
			if other.Namespace != p.Namespace && slices.Contains(other.Spec.Audiences, aud) {
				ws = append(ws, fmt.Sprintf("spec.audiences: %q is already listed by TokenPolicy %s/%s; that namespace owns it, and tokens of this policy for it pass only services that accept namespace %s with namespace=",
					aud, other.Namespace, other.Name, p.Namespace))
				break
			}
		}
	}
	return ws
}

// ValidateUpdate implements admission.Validator.
func (v *TokenPolicyValidator) ValidateUpdate(ctx context.Context, old, p *authv1alpha1.TokenPolicy) (admission.Warnings, error) {
	warnings := append(append(prePublishWarnings(p), deprecatedWarnings(p)...), v.sharedAudienceWarnings(ctx, p)...)
	if old.Spec.Algorithm != p.Spec.Algorithm {
		warnings = append(warnings, fmt.Sprintf("spec.algorithm: changing %s to %s rolls the keys over through a rotation: a new %s key is published now and signs after the pre-publish lead (%s); tokens signed with the %s key stay valid until they expire",
			old.Spec.Algorithm, p.Spec.Algorithm, p.Spec.Algorithm, p.Spec.Rotation.PrePublish.Duration, old.Spec.Algorithm))
	}
	if old.Spec.Issuer != p.Spec.Issuer {
		warnings = append(warnings, fmt.Sprintf("spec.issuer: tokens issued before carry iss %q; verifiers that check the new issuer %q refuse them until they expire (at most %s); consider a new TokenPolicy and moving accounts to it instead",
			old.Spec.Issuer, p.Spec.Issuer, old.Spec.AccessTokenTTL.Duration))
	}
	for _, aud := range old.Spec.Audiences {
		if slices.Contains(p.Spec.Audiences, aud) {
			continue
		}
		var users authv1alpha1.ServiceAccountList
		if err := v.Reader.List(ctx, &users, client.InNamespace(p.Namespace), client.MatchingFields{authv1alpha1.IndexTokenPolicy: p.Name}); err != nil {
			return nil, apierrors.NewInternalError(err)
		}
		for _, sa := range users.Items {
			if sa.Spec.TokenSecret != nil && sa.Spec.TokenSecret.Audience == aud {
				warnings = append(warnings, fmt.Sprintf("spec.audiences: %q is removed but ServiceAccount %s mints its token Secret for it", aud, sa.Name))
			}
		}
	}
	known := map[string]authv1alpha1.KeyState{}
	for _, k := range p.Status.Keys {
		known[k.KeyID] = k.State
	}
	for _, kid := range p.Spec.RevokedKeys {
		if slices.Contains(old.Spec.RevokedKeys, kid) {
			continue
		}
		switch state, ok := known[kid]; {
		case !ok:
			warnings = append(warnings, fmt.Sprintf("spec.revokedKeys: %s is not a key of this policy", kid))
		case state == authv1alpha1.KeyActive:
			warnings = append(warnings, fmt.Sprintf("spec.revokedKeys: %s is the active key; every token it signed is refused at once and a new key signs from now on", kid))
		}
	}
	return warnings, nil
}

// ValidateDelete implements admission.Validator; DELETE is not sent.
func (v *TokenPolicyValidator) ValidateDelete(context.Context, *authv1alpha1.TokenPolicy) (admission.Warnings, error) {
	return nil, nil
}

// deprecatedWarnings name the fields a policy sets that are ignored now.
func deprecatedWarnings(p *authv1alpha1.TokenPolicy) admission.Warnings {
	te := p.Spec.TokenEndpoint
	if te.MaxFailedAttempts == 0 && te.LockoutWindow.Duration == 0 && te.LockoutDuration.Duration == 0 {
		return nil
	}
	return admission.Warnings{"spec.tokenEndpoint.maxFailedAttempts, lockoutWindow and lockoutDuration are deprecated and ignored: " +
		"a per-client lockout let anyone who knows a client id lock the real client out; failed authentications are now throttled " +
		"per source address by the auth server (--failed-auth-per-source, --failed-auth-per-client-source), and a correct secret is never refused"}
}

func prePublishWarnings(p *authv1alpha1.TokenPolicy) admission.Warnings {
	if d := p.Spec.Rotation.PrePublish.Duration; d > 0 && d < MinPrePublish {
		return admission.Warnings{fmt.Sprintf("spec.rotation.prePublish: %s is shorter than the 10m for which common verifiers cache JWKS; they may meet tokens of a key they have not fetched yet", d)}
	}
	return nil
}

// +kubebuilder:webhook:path=/validate-auth-authframework-dev-v1alpha1-role,mutating=false,failurePolicy=fail,sideEffects=None,groups=auth.authframework.dev,resources=roles,verbs=create;update,versions=v1alpha1,name=vrole.auth.authframework.dev,admissionReviewVersions=v1,timeoutSeconds=5

// RoleValidator refuses rules that can never work and warns about redundant
// permissions (authz.Lint).
type RoleValidator struct{}

// ValidateCreate implements admission.Validator.
func (v *RoleValidator) ValidateCreate(_ context.Context, r *authv1alpha1.Role) (admission.Warnings, error) {
	return v.validate(r)
}

// ValidateUpdate implements admission.Validator.
func (v *RoleValidator) ValidateUpdate(_ context.Context, _, r *authv1alpha1.Role) (admission.Warnings, error) {
	return v.validate(r)
}

// ValidateDelete implements admission.Validator; DELETE is not sent.
func (v *RoleValidator) ValidateDelete(context.Context, *authv1alpha1.Role) (admission.Warnings, error) {
	return nil, nil
}

func (v *RoleValidator) validate(r *authv1alpha1.Role) (admission.Warnings, error) {
	problems, warnings := authz.Lint(r.Spec.Permissions, authz.RoutesOf(r))
	var errs field.ErrorList
	for _, p := range problems {
		errs = append(errs, field.Invalid(field.NewPath("spec", "routes"), "", p))
	}
	return warnings, invalid("Role", r.Name, errs)
}

// +kubebuilder:webhook:path=/validate-auth-authframework-dev-v1alpha1-authserver,mutating=false,failurePolicy=fail,sideEffects=None,groups=auth.authframework.dev,resources=authservers,verbs=create;update,versions=v1alpha1,name=vauthserver.auth.authframework.dev,admissionReviewVersions=v1,timeoutSeconds=5

// AuthServerValidator warns about settings that will not do what the user
// expects.
type AuthServerValidator struct{ Reader client.Reader }

// ValidateCreate implements admission.Validator.
func (v *AuthServerValidator) ValidateCreate(_ context.Context, s *authv1alpha1.AuthServer) (admission.Warnings, error) {
	return authServerWarnings(s), nil
}

// ValidateUpdate implements admission.Validator.
func (v *AuthServerValidator) ValidateUpdate(_ context.Context, _, s *authv1alpha1.AuthServer) (admission.Warnings, error) {
	return authServerWarnings(s), nil
}

// ValidateDelete implements admission.Validator; DELETE is not sent.
func (v *AuthServerValidator) ValidateDelete(context.Context, *authv1alpha1.AuthServer) (admission.Warnings, error) {
	return nil, nil
}

func authServerWarnings(s *authv1alpha1.AuthServer) admission.Warnings {
	var w admission.Warnings
	if s.Spec.Autoscaling != nil {
		if _, ok := s.Spec.Resources.Requests[corev1.ResourceCPU]; !ok {
			w = append(w, "spec.resources.requests.cpu: the HPA's CPU target is a share of the CPU request; without one it cannot scale on CPU")
		}
	}
	if img := s.Spec.Image; !strings.Contains(img, "@") && (strings.HasSuffix(img, ":latest") || !strings.Contains(img[strings.LastIndex(img, "/")+1:], ":")) {
		w = append(w, "spec.image: pin a tag or digest; with :latest a rollout cannot tell one template from the next")
	}
	if s.Spec.Rollout.SmokeTests.Enabled != nil && !*s.Spec.Rollout.SmokeTests.Enabled {
		w = append(w, "spec.rollout.smokeTests.enabled: false promotes a new auth server without checking that it validates tokens")
	}
	return w
}
