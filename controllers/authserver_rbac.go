package controllers

import (
	"context"
	"fmt"
	"slices"
	"strings"

	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	authv1alpha1 "github.com/authframework/authframework/api/v1alpha1"
)

// ServerRBAC is how the operator grants the auth server pods of an
// AuthServer what they need: read TokenPolicies, ServiceAccounts, Roles and
// Secrets in the namespaces they serve, and write the revocation ConfigMaps
// in their own namespace. It binds the pods' ServiceAccount to two
// ClusterRoles the install ships; it holds `bind` on exactly those, so it
// cannot grant anything else.
type ServerRBAC struct {
	// ReadClusterRole is bound where the server reads. Empty: the operator
	// binds nothing and the user grants the pods' ServiceAccount themselves.
	ReadClusterRole string
	// RevocationsClusterRole is bound in the AuthServer's namespace.
	RevocationsClusterRole string
	// TokenReviewClusterRole grants `create` on tokenreviews; it is bound
	// cluster-wide (TokenReviews are not namespaced) to the pods of every
	// AuthServer with spec.tokenExchange, and to no other. Empty: the
	// operator binds it to none (the install did not enable token
	// exchange) and such AuthServers say so in PermissionsGranted.
	TokenReviewClusterRole string
	// ClusterScopeNamespaces are the namespaces whose AuthServers may read
	// beyond their own namespace (all namespaces, or the watchNamespaces
	// they list). Anyone who can create pods in such a namespace can run as
	// the server's ServiceAccount, so these should be namespaces only
	// cluster admins write to, such as the operator's own.
	ClusterScopeNamespaces []string
}

// binding is one RoleBinding (Namespace set) or ClusterRoleBinding
// (Namespace empty) of the server's ServiceAccount.
type binding struct {
	Namespace, Name, ClusterRole string
}

// serverBindings decides the bindings an AuthServer's pods need and, when
// some are not allowed, says why. It is a pure function of the AuthServer
// and the operator's settings.
func serverBindings(as *authv1alpha1.AuthServer, o ServerRBAC) (want []binding, refused string) {
	if o.ReadClusterRole == "" {
		return nil, ""
	}
	readName := "authframework-server:" + as.Namespace + ":" + as.Name
	want = append(want, binding{Namespace: as.Namespace, Name: "authframework-server-revocations:" + as.Name, ClusterRole: o.RevocationsClusterRole})
	trusted := slices.Contains(o.ClusterScopeNamespaces, as.Namespace)
	watch := as.Spec.WatchNamespaces
	switch {
	case len(watch) == 0 && trusted:
		want = append(want, binding{Name: readName, ClusterRole: o.ReadClusterRole})
	case len(watch) == 0:
		want = append(want, binding{Namespace: as.Namespace, Name: readName, ClusterRole: o.ReadClusterRole})
		refused = fmt.Sprintf("an AuthServer in namespace %s may only read its own namespace; set spec.watchNamespaces to [%s] or run it in one of %s", as.Namespace, as.Namespace, clusterScopeList(o))
	default:
		var others []string
		for _, ns := range watch {
			if ns != as.Namespace && !trusted {
				others = append(others, ns)
				continue
			}
			want = append(want, binding{Namespace: ns, Name: readName, ClusterRole: o.ReadClusterRole})
		}
		if len(others) > 0 {
			refused = fmt.Sprintf("an AuthServer in namespace %s may only read its own namespace, not %s; run it in one of %s", as.Namespace, strings.Join(others, ", "), clusterScopeList(o))
		}
	}
	return want, refused
}

// tokenReviewBinding decides the ClusterRoleBinding that lets an
// AuthServer's pods create TokenReviews: only with spec.tokenExchange, and
// only when the operator binds that role; refused says why an AuthServer
// that asks for token exchange gets none. It is pure.
//
// Any namespace may have it: a TokenReview tells its caller only who the
// bearer of a token it already holds is, which is what
// system:auth-delegator grants to every aggregated API server.
func tokenReviewBinding(as *authv1alpha1.AuthServer, o ServerRBAC) (want []binding, refused string) {
	if as.Spec.TokenExchange == nil || o.ReadClusterRole == "" {
		return nil, ""
	}
	if o.TokenReviewClusterRole == "" {
		return nil, "spec.tokenExchange is set but this installation does not let the operator grant create on tokenreviews " +
			"(--server-tokenreview-cluster-role is empty; Helm: tokenExchange.enabled=true, kustomize: config/tokenexchange): " +
			"the auth server refuses every token exchange until ServiceAccount " + as.Namespace + "/" + as.Name + " may create TokenReviews"
	}
	return []binding{{Name: "authframework-server-tokenreview:" + as.Namespace + ":" + as.Name, ClusterRole: o.TokenReviewClusterRole}}, ""
}

func clusterScopeList(o ServerRBAC) string {
	if len(o.ClusterScopeNamespaces) == 0 {
		return "the namespaces the operator allows (none are)"
	}
	return "the namespaces the operator allows (" + strings.Join(o.ClusterScopeNamespaces, ", ") + ")"
}

// Labels on the bindings the operator makes for an AuthServer's pods.
const (
	LabelAuthServerNamespace = "auth.authframework.dev/authserver-namespace"
	LabelAuthServerName      = "auth.authframework.dev/authserver-name"
)

func bindingLabels(as *authv1alpha1.AuthServer) map[string]string {
	return map[string]string{authv1alpha1.LabelManagedBy: authv1alpha1.ManagedByValue,
		LabelAuthServerNamespace: as.Namespace, LabelAuthServerName: as.Name}
}

// permissions is the PermissionsGranted condition.
type permissions struct {
	status          metav1.ConditionStatus
	reason, message string
}

// grant makes the AuthServer's bindings what serverBindings decides: it
// creates or fixes the wanted ones, deletes the rest, and keeps the finalizer
// while any lives outside the AuthServer's namespace.
func (r *AuthServerReconciler) grant(ctx context.Context, as *authv1alpha1.AuthServer) (permissions, error) {
	if r.RBAC.ReadClusterRole == "" {
		return permissions{metav1.ConditionUnknown, authv1alpha1.ReasonNotManaged,
			fmt.Sprintf("the operator does not bind the auth server's ServiceAccount (--server-cluster-role is empty); bind %s/%s yourself", as.Namespace, as.Name)}, nil
	}
	want, refused := serverBindings(as, r.RBAC)
	review, reviewRefused := tokenReviewBinding(as, r.RBAC)
	want = append(want, review...)
	outside := slices.ContainsFunc(want, func(b binding) bool { return b.Namespace != as.Namespace })
	if outside && !controllerutil.ContainsFinalizer(as, authv1alpha1.FinalizerServerBindings) {
		before := as.DeepCopy()
		controllerutil.AddFinalizer(as, authv1alpha1.FinalizerServerBindings)
		if err := r.Patch(ctx, as, client.MergeFromWithOptions(before, client.MergeFromWithOptimisticLock{})); err != nil {
			return permissions{}, err
		}
	}
	subject := rbacv1.Subject{Kind: rbacv1.ServiceAccountKind, Namespace: as.Namespace, Name: as.Name}
	for _, b := range want {
		if err := r.ensureBinding(ctx, as, b, subject); err != nil {
			return permissions{}, err
		}
	}
	if err := r.pruneBindings(ctx, as, want); err != nil {
		return permissions{}, err
	}
	if !outside && controllerutil.ContainsFinalizer(as, authv1alpha1.FinalizerServerBindings) {
		if err := r.removeFinalizer(ctx, as); err != nil {
			return permissions{}, err
		}
	}
	roles := []string{r.RBAC.ReadClusterRole, r.RBAC.RevocationsClusterRole}
	if len(review) > 0 {
		roles = append(roles, r.RBAC.TokenReviewClusterRole)
	}
	for _, role := range roles {
		var cr rbacv1.ClusterRole
		if err := r.APIReader.Get(ctx, types.NamespacedName{Name: role}, &cr); apierrors.IsNotFound(err) {
			return permissions{metav1.ConditionFalse, authv1alpha1.ReasonClusterRoleMissing,
				fmt.Sprintf("ClusterRole %s does not exist; install it with the operator (config/rbac or the Helm chart)", role)}, nil
		} else if err != nil {
			return permissions{}, err
		}
	}
	if refused != "" {
		return permissions{metav1.ConditionFalse, authv1alpha1.ReasonCrossNamespaceNotAllowed, refused}, nil
	}
	if reviewRefused != "" {
		return permissions{metav1.ConditionFalse, authv1alpha1.ReasonTokenReviewNotGranted, reviewRefused}, nil
	}
	where := "all namespaces"
	if len(as.Spec.WatchNamespaces) > 0 {
		where = "namespaces " + strings.Join(as.Spec.WatchNamespaces, ", ")
	}
	msg := fmt.Sprintf("ServiceAccount %s reads %s (%s) and writes revocations in %s (%s)", as.Name, where, r.RBAC.ReadClusterRole, as.Namespace, r.RBAC.RevocationsClusterRole)
	if len(review) > 0 {
		msg += fmt.Sprintf(", and creates TokenReviews for token exchange (%s)", r.RBAC.TokenReviewClusterRole)
	}
	return permissions{metav1.ConditionTrue, authv1alpha1.ReasonGranted, msg}, nil
}

func (r *AuthServerReconciler) ensureBinding(ctx context.Context, as *authv1alpha1.AuthServer, b binding, subject rbacv1.Subject) error {
	ref := rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: b.ClusterRole}
	var obj client.Object
	var mutate controllerutil.MutateFn
	if b.Namespace == "" {
		crb := &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: b.Name}}
		obj = crb
		mutate = func() error {
			crb.Labels, crb.Subjects = bindingLabels(as), []rbacv1.Subject{subject}
			if crb.CreationTimestamp.IsZero() {
				crb.RoleRef = ref
			}
			return nil
		}
	} else {
		rb := &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Namespace: b.Namespace, Name: b.Name}}
		obj = rb
		mutate = func() error {
			rb.Labels, rb.Subjects = bindingLabels(as), []rbacv1.Subject{subject}
			if rb.CreationTimestamp.IsZero() {
				rb.RoleRef = ref
			}
			if b.Namespace == as.Namespace {
				return controllerutil.SetControllerReference(as, rb, r.Scheme())
			}
			return nil
		}
	}
	if _, err := controllerutil.CreateOrUpdate(ctx, r.Client, obj, mutate); err != nil {
		return err
	}
	// roleRef is immutable: a binding to another role is replaced.
	var got rbacv1.RoleRef
	switch o := obj.(type) {
	case *rbacv1.ClusterRoleBinding:
		got = o.RoleRef
	case *rbacv1.RoleBinding:
		got = o.RoleRef
	}
	if got != ref {
		if err := r.Delete(ctx, obj); client.IgnoreNotFound(err) != nil {
			return err
		}
		return fmt.Errorf("binding %s pointed at %s; replaced on the next reconcile", b.Name, got.Name)
	}
	return nil
}

// pruneBindings deletes this AuthServer's bindings that are no longer wanted.
func (r *AuthServerReconciler) pruneBindings(ctx context.Context, as *authv1alpha1.AuthServer, want []binding) error {
	sel := client.MatchingLabels(bindingLabels(as))
	var rbs rbacv1.RoleBindingList
	if err := r.List(ctx, &rbs, sel); err != nil {
		return err
	}
	var crbs rbacv1.ClusterRoleBindingList
	if err := r.List(ctx, &crbs, sel); err != nil {
		return err
	}
	var stale []client.Object
	for i := range rbs.Items {
		b := &rbs.Items[i]
		if !slices.ContainsFunc(want, func(w binding) bool { return w.Namespace == b.Namespace && w.Name == b.Name }) {
			stale = append(stale, b)
		}
	}
	for i := range crbs.Items {
		b := &crbs.Items[i]
		if !slices.ContainsFunc(want, func(w binding) bool { return w.Namespace == "" && w.Name == b.Name }) {
			stale = append(stale, b)
		}
	}
	for _, obj := range stale {
		if err := r.Delete(ctx, obj); client.IgnoreNotFound(err) != nil {
			return err
		}
	}
	return nil
}

// release deletes every binding of a deleted AuthServer and lets it go.
func (r *AuthServerReconciler) release(ctx context.Context, as *authv1alpha1.AuthServer) error {
	if !controllerutil.ContainsFinalizer(as, authv1alpha1.FinalizerServerBindings) {
		return nil
	}
	if err := r.pruneBindings(ctx, as, nil); err != nil {
		return err
	}
	return r.removeFinalizer(ctx, as)
}

func (r *AuthServerReconciler) removeFinalizer(ctx context.Context, as *authv1alpha1.AuthServer) error {
	before := as.DeepCopy()
	controllerutil.RemoveFinalizer(as, authv1alpha1.FinalizerServerBindings)
	return client.IgnoreNotFound(r.Patch(ctx, as, client.MergeFromWithOptions(before, client.MergeFromWithOptimisticLock{})))
}
