package controllers

import (
	"context"
	"fmt"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	authv1alpha1 "github.com/authframework/authframework/api/v1alpha1"
)

// maxAlsoListedBy bounds status.kubernetesServiceAccounts[].alsoListedBy.
const maxAlsoListedBy = 8

// kubernetesIdentities is what gather observed about the Kubernetes
// service accounts an account lists: which exist, and which other
// ServiceAccounts (`<namespace>/<name>`, sorted) list the same ones.
type kubernetesIdentities struct {
	keys   []string
	exists map[string]bool
	others map[string][]string
}

// kubernetesServiceAccountsDecision is the status entries and the
// KubernetesServiceAccountsResolved condition for what was observed. It is
// pure. A conflict outranks a missing service account: even once created,
// its exchanges are refused while two ServiceAccounts list it.
func kubernetesServiceAccountsDecision(in kubernetesIdentities) (entries []authv1alpha1.KubernetesServiceAccountStatus, ok bool, reason, msg string) {
	var mapped, missing, conflicts []string
	for _, key := range in.keys {
		ns, name, _ := strings.Cut(key, "/")
		e := authv1alpha1.KubernetesServiceAccountStatus{Namespace: ns, Name: name, State: authv1alpha1.KubernetesServiceAccountMapped}
		switch others := in.others[key]; {
		case len(others) > 0:
			e.State, e.AlsoListedBy = authv1alpha1.KubernetesServiceAccountConflict, others[:min(len(others), maxAlsoListedBy)]
			conflicts = append(conflicts, fmt.Sprintf("%s (also listed by ServiceAccount %s)", key, strings.Join(e.AlsoListedBy, ", ")))
		case !in.exists[key]:
			e.State = authv1alpha1.KubernetesServiceAccountNotFound
			missing = append(missing, key)
		default:
			mapped = append(mapped, key)
		}
		entries = append(entries, e)
	}
	var parts []string
	if len(conflicts) > 0 {
		parts = append(parts, "listed by more than one ServiceAccount, so the auth server refuses their token exchanges until only one lists them: "+strings.Join(conflicts, "; "))
	}
	if len(missing) > 0 {
		parts = append(parts, "Kubernetes service accounts that do not exist (their tokens map to this account once they are created): "+strings.Join(missing, ", "))
	}
	switch {
	case len(conflicts) > 0:
		return entries, false, authv1alpha1.ReasonKubernetesServiceAccountConflict, strings.Join(parts, "; ")
	case len(missing) > 0:
		return entries, false, authv1alpha1.ReasonKubernetesServiceAccountNotFound, strings.Join(parts, "; ")
	}
	return entries, true, authv1alpha1.ReasonKubernetesServiceAccountsMapped, "token exchange maps these Kubernetes service accounts to this account: " + joinOrNone(mapped)
}

// gatherKubernetesIdentities reads, from the cache, whether each listed
// Kubernetes service account exists and which other accounts list it.
func (r *ServiceAccountReconciler) gatherKubernetesIdentities(ctx context.Context, sa *authv1alpha1.ServiceAccount) (kubernetesIdentities, error) {
	in := kubernetesIdentities{keys: sa.KubernetesServiceAccountKeys(), exists: map[string]bool{}, others: map[string][]string{}}
	for _, key := range in.keys {
		ns, name, _ := strings.Cut(key, "/")
		switch err := r.Get(ctx, types.NamespacedName{Namespace: ns, Name: name}, &corev1.ServiceAccount{}); {
		case err == nil:
			in.exists[key] = true
		case !apierrors.IsNotFound(err):
			return in, err
		}
		var list authv1alpha1.ServiceAccountList
		if err := r.List(ctx, &list, client.MatchingFields{authv1alpha1.IndexKubernetesServiceAccounts: key}); err != nil {
			return in, err
		}
		for _, o := range list.Items {
			if o.UID != sa.UID && o.DeletionTimestamp.IsZero() {
				in.others[key] = append(in.others[key], o.Namespace+"/"+o.Name)
			}
		}
		slices.Sort(in.others[key])
	}
	return in, nil
}

// resolveKubernetesIdentities records the decision in status and warns
// when the condition turns False or its message changes while False (a new
// missing service account or another conflicting account).
func (r *ServiceAccountReconciler) resolveKubernetesIdentities(v *accountView, before *authv1alpha1.ServiceAccount) {
	sa := v.sa
	if len(v.kubernetes.keys) == 0 {
		sa.Status.KubernetesServiceAccounts = nil
		meta.RemoveStatusCondition(&sa.Status.Conditions, authv1alpha1.ConditionKubernetesServiceAccountsResolved)
		return
	}
	entries, ok, reason, msg := kubernetesServiceAccountsDecision(v.kubernetes)
	sa.Status.KubernetesServiceAccounts = entries
	status := metav1.ConditionTrue
	if !ok {
		status = metav1.ConditionFalse
		if old := meta.FindStatusCondition(before.Status.Conditions, authv1alpha1.ConditionKubernetesServiceAccountsResolved); old == nil || old.Status != status || old.Message != msg {
			r.Recorder.Eventf(sa, nil, corev1.EventTypeWarning, reason, "Resolve", "%s", msg)
		}
	}
	setCondition(&sa.Status.Conditions, sa.Generation, v.now, authv1alpha1.ConditionKubernetesServiceAccountsResolved, status, reason, msg)
}

// listingKubernetesServiceAccount maps a core/v1 ServiceAccount to the
// accounts that list it.
func (r *ServiceAccountReconciler) listingKubernetesServiceAccount(ctx context.Context, obj client.Object) []reconcile.Request {
	return r.listing(ctx, []string{authv1alpha1.KubernetesServiceAccountKey(obj.GetNamespace(), obj.GetName())})
}

// sharingKubernetesServiceAccounts maps an account to the other accounts
// that list one of the Kubernetes service accounts it lists, so both sides
// of a conflict see it appear and clear. controller-runtime calls it with
// the old and the new object of an update, so a removed entry counts too.
func (r *ServiceAccountReconciler) sharingKubernetesServiceAccounts(ctx context.Context, obj client.Object) []reconcile.Request {
	sa, ok := obj.(*authv1alpha1.ServiceAccount)
	if !ok {
		return nil
	}
	return r.listing(ctx, sa.KubernetesServiceAccountKeys())
}

func (r *ServiceAccountReconciler) listing(ctx context.Context, keys []string) []reconcile.Request {
	var reqs []reconcile.Request
	for _, key := range keys {
		var list authv1alpha1.ServiceAccountList
		if err := r.List(ctx, &list, client.MatchingFields{authv1alpha1.IndexKubernetesServiceAccounts: key}); err != nil {
			log.FromContext(ctx).Error(err, "listing ServiceAccounts by Kubernetes service account", "serviceAccount", key)
			continue
		}
		for _, o := range list.Items {
			reqs = append(reqs, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&o)})
		}
	}
	return reqs
}

// kubernetesServiceAccountWatch is the watch on core/v1 ServiceAccounts:
// only their coming and going matters.
var kubernetesServiceAccountWatch = predicate.Funcs{UpdateFunc: func(event.UpdateEvent) bool { return false }}
