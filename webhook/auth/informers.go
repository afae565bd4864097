package auth

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/selection"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	jose "github.com/go-jose/go-jose/v4"

	authv1alpha1 "github.com/authframework/authframework/api/v1alpha1"
	"github.com/authframework/authframework/internal/authz"
	"github.com/authframework/authframework/internal/credentials"
	"github.com/authframework/authframework/internal/keys"
)

// Feed keeps a Store current from informers: TokenPolicies, their key
// Secrets, ServiceAccounts, their verifier Secrets (hashes only; the server
// never watches plaintext client secrets) and the revocation ConfigMaps.
type Feed struct {
	cache cache.Cache
	store *Store
}

// FeedOptions say what a Feed watches.
type FeedOptions struct {
	// Namespaces whose policies, accounts, roles and Secrets are served;
	// empty means all.
	Namespaces []string
	// RevocationNamespace is the one namespace whose revocation ConfigMaps
	// are read: where ConfigMapRevocations writes. Revocations written
	// anywhere else are not trusted.
	RevocationNamespace string
}

// NewFeed builds the informers.
func NewFeed(cfg *rest.Config, scheme *runtime.Scheme, store *Store, o FeedOptions) (*Feed, error) {
	if o.RevocationNamespace == "" {
		return nil, fmt.Errorf("the revocation namespace is required")
	}
	namespaces := o.Namespaces
	managed, _ := labels.NewRequirement(authv1alpha1.LabelManagedBy, selection.Equals, []string{authv1alpha1.ManagedByValue})
	roles, _ := labels.NewRequirement(authv1alpha1.LabelSecretRole, selection.In, []string{authv1alpha1.SecretRoleSigningKeys, authv1alpha1.SecretRoleVerifier})
	revocations, _ := labels.NewRequirement(authv1alpha1.LabelRevocations, selection.Equals, []string{"true"})
	opts := cache.Options{
		Scheme: scheme,
		// The store keeps what it needs; the informers' own copies drop
		// managedFields, which nothing reads.
		DefaultTransform: cache.TransformStripManagedFields(),
		ByObject: map[client.Object]cache.ByObject{
			&corev1.Secret{}:    {Label: labels.NewSelector().Add(*managed, *roles)},
			&corev1.ConfigMap{}: {Label: labels.NewSelector().Add(*revocations), Namespaces: map[string]cache.Config{o.RevocationNamespace: {}}},
		},
	}
	if len(namespaces) > 0 {
		opts.DefaultNamespaces = map[string]cache.Config{}
		for _, ns := range namespaces {
			opts.DefaultNamespaces[ns] = cache.Config{}
		}
	}
	c, err := cache.New(cfg, opts)
	if err != nil {
		return nil, err
	}
	return &Feed{cache: c, store: store}, nil
}

// Run registers the handlers, starts the informers, marks the store ready
// once they have synced, and blocks until ctx ends. After that, the store
// keeps serving the last known state even if the API server goes away.
func (f *Feed) Run(ctx context.Context) error {
	handlers := []struct {
		obj client.Object
		set func(obj any)
		del func(obj any)
	}{
		{&authv1alpha1.TokenPolicy{}, f.setPolicy, func(o any) {
			if p, ok := o.(*authv1alpha1.TokenPolicy); ok {
				f.store.DeletePolicy(client.ObjectKeyFromObject(p))
			}
		}},
		{&authv1alpha1.ServiceAccount{}, f.setAccount, func(o any) {
			if sa, ok := o.(*authv1alpha1.ServiceAccount); ok {
				f.store.DeleteAccount(client.ObjectKeyFromObject(sa))
			}
		}},
		{&authv1alpha1.Role{}, f.setRole, func(o any) {
			if r, ok := o.(*authv1alpha1.Role); ok {
				f.store.SetRole(client.ObjectKeyFromObject(r), nil)
			}
		}},
		{&corev1.Secret{}, f.setSecret, f.deleteSecret},
		{&corev1.ConfigMap{}, func(o any) { f.setRevocations(nil, o) }, f.deleteRevocations},
	}
	for _, h := range handlers {
		inf, err := f.cache.GetInformer(ctx, h.obj)
		if err != nil {
			return err
		}
		set, del := h.set, h.del
		_, err = inf.AddEventHandler(toolscache.ResourceEventHandlerFuncs{
			AddFunc: set,
			UpdateFunc: func(old, obj any) {
				if _, ok := obj.(*corev1.ConfigMap); ok {
					f.setRevocations(old, obj)
					return
				}
				set(obj)
			},
			DeleteFunc: func(obj any) {
				if d, ok := obj.(toolscache.DeletedFinalStateUnknown); ok {
					obj = d.Obj
				}
				del(obj)
			},
		})
		if err != nil {
			return err
		}
	}
	errc := make(chan error, 1)
	go func() { errc <- f.cache.Start(ctx) }()
	if !f.cache.WaitForCacheSync(ctx) {
		return fmt.Errorf("informer caches did not sync")
	}
	f.store.SetReady()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
		return nil
	}
}

func (f *Feed) setPolicy(o any) {
	p, ok := o.(*authv1alpha1.TokenPolicy)
	if !ok {
		return
	}
	src := PolicySource{Policy: Policy{
		Key: client.ObjectKeyFromObject(p), UID: p.UID, Created: p.CreationTimestamp.Time, Issuer: p.Spec.Issuer, Audiences: p.Spec.Audiences,
		Algorithm: jose.SignatureAlgorithm(p.Spec.Algorithm), TTL: p.Spec.AccessTokenTTL.Duration,
		Skew: p.Spec.ClockSkew.Duration, PrePublish: p.Spec.Rotation.PrePublish.Duration,
		ActiveKey:         p.Status.ActiveKeyID,
		RequestsPerSecond: float64(p.Spec.TokenEndpoint.RequestsPerSecond), Burst: int(p.Spec.TokenEndpoint.Burst),
	}}
	for _, k := range p.Status.Keys {
		if k.State == authv1alpha1.KeyPublished || k.State == authv1alpha1.KeyActive || k.State == authv1alpha1.KeyRetired {
			src.PublishedKids = append(src.PublishedKids, k.KeyID)
		}
	}
	f.store.SetPolicy(src)
}

func (f *Feed) setAccount(o any) {
	sa, ok := o.(*authv1alpha1.ServiceAccount)
	if !ok || sa.Status.ClientID == "" {
		return
	}
	a := Account{
		Key: client.ObjectKeyFromObject(sa), UID: sa.UID, Created: sa.CreationTimestamp.Time, ClientID: sa.Status.ClientID, Policy: sa.Spec.TokenPolicyRef.Name,
		// Enforce the spec at once, not when the controller mirrors it.
		Disabled: sa.Spec.Disabled, Roles: slices.Clone(sa.Status.Roles), Permissions: slices.Clone(sa.Status.Permissions),
		Extra: sa.Spec.ExtraClaims,
	}
	if sa.Spec.RevokeTokensIssuedBefore != nil {
		a.RevokeTokensIssuedBefore = sa.Spec.RevokeTokensIssuedBefore.Time
	}
	if sa.DeletionTimestamp == nil {
		a.KubernetesServiceAccounts = exchangeListings(sa)
	}
	f.store.SetAccount(a)
}

// exchangeListings are the Kubernetes service accounts whose tokens the
// account's listing maps: listed in spec, and found by the controller
// (status) to count — Mapped, or Conflict, which the exchange refuses as
// listed twice. A listing the controller has not judged yet, or found
// NotPermitted (another namespace without consent) or NotFound, maps no
// one. An account on its way out maps no one, as its controller reports.
func exchangeListings(sa *authv1alpha1.ServiceAccount) []string {
	counts := map[string]bool{}
	for _, e := range sa.Status.KubernetesServiceAccounts {
		if e.State == authv1alpha1.KubernetesServiceAccountMapped || e.State == authv1alpha1.KubernetesServiceAccountConflict {
			counts[authv1alpha1.KubernetesServiceAccountKey(e.Namespace, e.Name)] = true
		}
	}
	var out []string
	for _, k := range sa.KubernetesServiceAccountKeys() {
		if counts[k] {
			out = append(out, k)
		}
	}
	return out
}

func (f *Feed) setRole(o any) {
	r, ok := o.(*authv1alpha1.Role)
	if !ok {
		return
	}
	f.store.SetRole(client.ObjectKeyFromObject(r), authz.RoutesOf(r))
}

// secretOwner says whose Secret s is, by its name and its controller: the
// policy of a key Secret `<policy>-signing-keys`, the account of a verifier
// Secret `<account>-client-verifier`. Labels only select what the informer
// lists; anyone who may create a Secret can set them, so they decide
// nothing. ok is false for any other Secret.
func secretOwner(s *corev1.Secret) (role string, owner types.NamespacedName, uid types.UID, ok bool) {
	ref := metav1.GetControllerOf(s)
	if ref == nil || ref.APIVersion != authv1alpha1.GroupVersion.String() {
		return "", types.NamespacedName{}, "", false
	}
	role = s.Labels[authv1alpha1.LabelSecretRole]
	var name, kind string
	switch role {
	case authv1alpha1.SecretRoleSigningKeys:
		name, ok = strings.CutSuffix(s.Name, authv1alpha1.KeySecretSuffix)
		kind = "TokenPolicy"
	case authv1alpha1.SecretRoleVerifier:
		name, ok = strings.CutSuffix(s.Name, authv1alpha1.VerifierSecretSuffix)
		kind = "ServiceAccount"
	}
	if !ok || name == "" || ref.Kind != kind || ref.Name != name {
		return "", types.NamespacedName{}, "", false
	}
	return role, types.NamespacedName{Namespace: s.Namespace, Name: name}, ref.UID, true
}

func (f *Feed) setSecret(o any) {
	s, ok := o.(*corev1.Secret)
	if !ok {
		return
	}
	role, owner, uid, ok := secretOwner(s)
	if !ok {
		return
	}
	switch role {
	case authv1alpha1.SecretRoleSigningKeys:
		ks, err := keys.ParsePrivate(s.Data[authv1alpha1.KeySetDataKey])
		if err != nil {
			return // damaged: keep the last good keys; the controller restores them
		}
		f.store.SetKeys(owner, uid, ks)
	case authv1alpha1.SecretRoleVerifier:
		var v credentials.Verifier
		if err := json.Unmarshal(s.Data[authv1alpha1.VerifierKey], &v); err != nil || v.Current == "" {
			return
		}
		f.store.SetVerifier(owner, uid, &v)
	}
}

func (f *Feed) deleteSecret(o any) {
	s, ok := o.(*corev1.Secret)
	if !ok {
		return
	}
	// A deleted key Secret is restored with the same keys by the controller;
	// the keys stay usable meanwhile. Revoked keys leave through the policy's
	// status, not here.
	if role, owner, uid, ok := secretOwner(s); ok && role == authv1alpha1.SecretRoleVerifier {
		f.store.DeleteVerifier(owner, uid)
	}
}

func (f *Feed) setRevocations(old, obj any) {
	cm, ok := obj.(*corev1.ConfigMap)
	if !ok {
		return
	}
	add := map[string]time.Time{}
	for jti, v := range cm.Data {
		if t, err := time.Parse(time.RFC3339, v); err == nil {
			add[jti] = t
		}
	}
	var remove []string
	if o, ok := old.(*corev1.ConfigMap); ok {
		for jti := range o.Data {
			if _, still := cm.Data[jti]; !still {
				remove = append(remove, jti)
			}
		}
	}
	f.store.SetRevoked(add, remove)
}

func (f *Feed) deleteRevocations(o any) {
	if cm, ok := o.(*corev1.ConfigMap); ok {
		remove := make([]string, 0, len(cm.Data))
		for jti := range cm.Data {
			remove = append(remove, jti)
		}
		f.store.SetRevoked(nil, remove)
	}
}

// controllerUID is the UID of the object that controls obj (its controller
// owner reference), or "".
func controllerUID(obj metav1.Object) types.UID {
	if ref := metav1.GetControllerOf(obj); ref != nil {
		return ref.UID
	}
	return ""
}
