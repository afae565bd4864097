package controllers

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/types"
	toolscache "k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/events"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	authv1alpha1 "github.com/authframework/authframework/api/v1alpha1"
	"github.com/authframework/authframework/internal/authz"
)

// maxListedAccounts bounds status.serviceAccounts.
const maxListedAccounts = 100

// RoleReconciler checks what the schema cannot (duplicate rules, patterns
// that can never match) and reports which ServiceAccounts use each Role.
// Accounts follow changes of their Roles through their own watch.
type RoleReconciler struct {
	client.Client
	Clock    clock.PassiveClock
	Recorder events.EventRecorder
	// accounts is the index of the manager's ServiceAccount informer that
	// SetupWithManager adds: "namespace/role" -> the keys of the accounts
	// listing the role. Counting keys copies no account; a list of 10,000
	// accounts (even uncopied) allocated ~30 MB per reconcile.
	accounts toolscache.Indexer
}

// accountsByRoleIndex names the index RoleReconciler adds to the
// ServiceAccount informer.
const accountsByRoleIndex = "authframework.dev/accounts-by-role"

// +kubebuilder:rbac:groups=auth.authframework.dev,resources=roles,verbs=get;list;watch
// +kubebuilder:rbac:groups=auth.authframework.dev,resources=roles/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=auth.authframework.dev,resources=serviceaccounts,verbs=get;list;watch

// Reconcile lints the role and counts its accounts. A role the linter
// refuses is stalled: Ready False with reason InvalidSpec until it changes.
func (r *RoleReconciler) Reconcile(ctx context.Context, req ctrl.Request) (res ctrl.Result, err error) {
	var role authv1alpha1.Role
	if err := r.Get(ctx, req.NamespacedName, &role); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	before := role.Status.DeepCopy()
	var ready string
	defer func() {
		role.Status.ObservedGeneration = role.Generation
		base := role.DeepCopy()
		base.Status = *before
		res, err = statusStep{client: r.Client, recorder: r.Recorder, obj: &role, base: base, conds: &role.Status.Conditions,
			now: r.Clock.Now().UTC().Truncate(time.Second), readyReason: authv1alpha1.ReasonReconciled, readyMessage: ready}.finish(ctx, res, err)
	}()
	keys, err := r.accounts.IndexKeys(accountsByRoleIndex, role.Namespace+"/"+role.Name)
	if err != nil {
		return ctrl.Result{}, err
	}
	names := make([]string, 0, len(keys))
	for _, k := range keys {
		_, name, _ := toolscache.SplitMetaNamespaceKey(k)
		names = append(names, name)
	}
	slices.Sort(names)
	role.Status.ServiceAccountCount = int32(len(names))
	role.Status.ServiceAccounts = names[:min(len(names), maxListedAccounts)]

	problems, warnings := authz.Lint(role.Spec.Permissions, authz.RoutesOf(&role))
	if len(problems) > 0 {
		return ctrl.Result{}, stalled("", authv1alpha1.ReasonInvalidSpec, strings.Join(problems, "; "))
	}
	ready = fmt.Sprintf("%d permission(s), %d route rule(s), used by %d ServiceAccount(s)", len(role.Spec.Permissions), len(role.Spec.Routes), len(names))
	if len(warnings) > 0 {
		ready += "; note: " + strings.Join(warnings, "; ")
	}
	return ctrl.Result{}, nil
}

// SetupWithManager watches Roles and the accounts that name them; an update
// of an account re-counts both its old and its new roles.
func (r *RoleReconciler) SetupWithManager(ctx context.Context, mgr ctrl.Manager) error {
	inf, err := mgr.GetCache().GetInformer(ctx, &authv1alpha1.ServiceAccount{})
	if err != nil {
		return err
	}
	if err := inf.AddIndexers(toolscache.Indexers{accountsByRoleIndex: accountRoleKeys}); err != nil {
		return err
	}
	indexed, ok := inf.(interface{ GetIndexer() toolscache.Indexer })
	if !ok {
		return fmt.Errorf("the ServiceAccount informer (%T) has no indexer to count accounts by role", inf)
	}
	r.accounts = indexed.GetIndexer()
	return ctrl.NewControllerManagedBy(mgr).
		For(&authv1alpha1.Role{}).
		Watches(&authv1alpha1.ServiceAccount{}, handler.EnqueueRequestsFromMapFunc(func(_ context.Context, o client.Object) []reconcile.Request {
			sa := o.(*authv1alpha1.ServiceAccount)
			reqs := make([]reconcile.Request, 0, len(sa.Spec.Roles))
			for _, name := range sa.Spec.Roles {
				reqs = append(reqs, reconcile.Request{NamespacedName: types.NamespacedName{Namespace: sa.Namespace, Name: name}})
			}
			return reqs
		})).
		Named("role").
		Complete(r)
}

// accountRoleKeys indexes an account under "namespace/role" for each role
// it lists.
func accountRoleKeys(obj any) ([]string, error) {
	sa, ok := obj.(*authv1alpha1.ServiceAccount)
	if !ok {
		return nil, nil
	}
	keys := make([]string, 0, len(sa.Spec.Roles))
	for _, name := range sortedCopy(sa.Spec.Roles) {
		keys = append(keys, sa.Namespace+"/"+name)
	}
	return keys, nil
}
