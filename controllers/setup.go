package controllers

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	authv1alpha1 "github.com/authframework/authframework/api/v1alpha1"
)

// CacheOptions are the manager's cache settings: Secrets are cached only when
// the operator manages them, which bounds memory and what the operator reads.
func CacheOptions() cache.Options {
	managed := labels.SelectorFromSet(labels.Set{authv1alpha1.LabelManagedBy: authv1alpha1.ManagedByValue})
	return cache.Options{
		ByObject: map[client.Object]cache.ByObject{
			&corev1.Secret{}: {Label: managed},
		},
	}
}

// Options are what the controllers share.
type Options struct {
	// Clock is injected so tests can step time; the real clock in production.
	Clock clock.PassiveClock
	// MaxConcurrentReconciles of the ServiceAccount controller, the one with
	// thousands of objects.
	MaxConcurrentReconciles int
}

// Controllers are the reconcilers Setup registered, for tests that need to
// reach into them.
type Controllers struct {
	TokenPolicy    *TokenPolicyReconciler
	ServiceAccount *ServiceAccountReconciler
	Role           *RoleReconciler
}

// Setup registers every reconciler and its metrics with the manager.
func Setup(ctx context.Context, mgr ctrl.Manager, opts Options) (*Controllers, error) {
	if opts.Clock == nil {
		opts.Clock = clock.RealClock{}
	}
	metrics := NewPolicyMetrics(mgr.GetCache(), opts.Clock)
	if err := metrics.Register(ctrlmetrics.Registry); err != nil {
		return nil, fmt.Errorf("registering token policy metrics: %w", err)
	}
	tp := &TokenPolicyReconciler{
		Client:    mgr.GetClient(),
		APIReader: mgr.GetAPIReader(),
		Clock:     opts.Clock,
		Recorder:  mgr.GetEventRecorder("tokenpolicy-controller"),
		Material:  NewKeyMaterial(),
		Metrics:   metrics,
	}
	if err := tp.SetupWithManager(mgr); err != nil {
		return nil, fmt.Errorf("setting up the TokenPolicy controller: %w", err)
	}
	if err := IndexServiceAccounts(ctx, mgr); err != nil {
		return nil, fmt.Errorf("indexing ServiceAccounts: %w", err)
	}
	sa := &ServiceAccountReconciler{
		Client:                  mgr.GetClient(),
		APIReader:               mgr.GetAPIReader(),
		Clock:                   opts.Clock,
		Recorder:                mgr.GetEventRecorder("serviceaccount-controller"),
		MaxConcurrentReconciles: opts.MaxConcurrentReconciles,
	}
	if err := sa.SetupWithManager(mgr); err != nil {
		return nil, fmt.Errorf("setting up the ServiceAccount controller: %w", err)
	}
	role := &RoleReconciler{Client: mgr.GetClient(), Clock: opts.Clock, Recorder: mgr.GetEventRecorder("role-controller")}
	if err := role.SetupWithManager(mgr); err != nil {
		return nil, fmt.Errorf("setting up the Role controller: %w", err)
	}
	return &Controllers{TokenPolicy: tp, ServiceAccount: sa, Role: role}, nil
}
