package controllers

import (
	"context"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	authv1alpha1 "github.com/authframework/authframework/api/v1alpha1"
	"github.com/authframework/authframework/internal/certs"
)

// CacheOptions are the manager's cache settings: Secrets are cached only when
// the operator manages them, which bounds memory and what the operator reads.
// No cached object keeps its managedFields (nothing here reads them; they
// are a third of a ServiceAccount's size and of every copy of it).
func CacheOptions() cache.Options {
	managed := labels.SelectorFromSet(labels.Set{authv1alpha1.LabelManagedBy: authv1alpha1.ManagedByValue})
	return cache.Options{
		DefaultTransform: cache.TransformStripManagedFields(),
		ByObject: map[client.Object]cache.ByObject{
			&corev1.Secret{}:             {Label: managed},
			&rbacv1.RoleBinding{}:        {Label: managed},
			&rbacv1.ClusterRoleBinding{}: {Label: managed},
			// The slices of the auth servers' Services (the EndpointSlice
			// controller copies the Services' labels) and the canary's.
			&discoveryv1.EndpointSlice{}: {Label: managed},
		},
	}
}

// DefaultMaxConcurrentReconciles is how many ServiceAccounts the manager
// reconciles at once unless told otherwise. A reconcile spends most of its
// time waiting on the API server (a read, two Secret creates and a status
// patch for a new account), so parallel reconciles hide that latency; 16
// requests in flight stay far inside the share API Priority and Fairness
// gives a workload-low client (docs/benchmarks.md, "Control plane at scale").
const DefaultMaxConcurrentReconciles = 16

// Options are what the controllers share.
type Options struct {
	// Clock is injected so tests can step time; the real clock in production.
	Clock clock.PassiveClock
	// MaxConcurrentReconciles of the ServiceAccount controller, the one with
	// thousands of objects.
	MaxConcurrentReconciles int
	// Registry receives the controllers' metrics; controller-runtime's when nil.
	Registry prometheus.Registerer
	// Endpoints reach the auth server's colors for smoke tests and analysis;
	// the Services by cluster DNS when nil.
	Endpoints Endpoints
	// ServerRBAC says how the auth server pods get their permissions; with
	// no ReadClusterRole the operator binds nothing.
	ServerRBAC ServerRBAC
}

// Controllers are the reconcilers Setup registered, for tests that need to
// reach into them.
type Controllers struct {
	TokenPolicy    *TokenPolicyReconciler
	ServiceAccount *ServiceAccountReconciler
	Role           *RoleReconciler
	AuthServer     *AuthServerReconciler
}

// Setup registers every reconciler and its metrics with the manager.
func Setup(ctx context.Context, mgr ctrl.Manager, opts Options) (*Controllers, error) {
	if opts.Clock == nil {
		opts.Clock = clock.RealClock{}
	}
	// The field indexes, once, before any controller or webhook that reads
	// them is set up (the admission webhooks use IndexClientID too).
	if err := IndexServiceAccounts(ctx, mgr); err != nil {
		return nil, fmt.Errorf("indexing ServiceAccounts: %w", err)
	}
	metrics := NewPolicyMetrics(mgr.GetCache(), opts.Clock)
	if opts.Registry == nil {
		opts.Registry = ctrlmetrics.Registry
	}
	if err := metrics.Register(opts.Registry); err != nil {
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
	if err := role.SetupWithManager(ctx, mgr); err != nil {
		return nil, fmt.Errorf("setting up the Role controller: %w", err)
	}
	endpoints := opts.Endpoints
	if endpoints == nil {
		endpoints = ServiceEndpoints{}
	}
	as := &AuthServerReconciler{Client: mgr.GetClient(), APIReader: mgr.GetAPIReader(), Clock: opts.Clock,
		Recorder: mgr.GetEventRecorder("authserver-controller"), RBAC: opts.ServerRBAC,
		Checks: &HTTPChecks{Client: mgr.GetClient(), Endpoints: endpoints, Clock: opts.Clock}}
	if err := as.SetupWithManager(mgr); err != nil {
		return nil, fmt.Errorf("setting up the AuthServer controller: %w", err)
	}
	return &Controllers{TokenPolicy: tp, ServiceAccount: sa, Role: role, AuthServer: as}, nil
}

// WebhookCertOptions configure the operator's own webhook certificates.
type WebhookCertOptions struct {
	// Secret holds the CA and serving certificate.
	Secret types.NamespacedName
	// Hosts the serving certificate covers: the webhook Service's DNS names.
	Hosts certs.Hosts
	// ValidatingConfig and MutatingConfig are the webhook configurations
	// whose caBundle is injected.
	ValidatingConfig, MutatingConfig string
	// Clock decides renewals; the real clock when nil.
	Clock clock.PassiveClock
	// Provider is what the webhook server's GetCertificate reads.
	Provider *certs.Provider
}

// SetupWebhookCerts registers the certificate reconciler (on every replica).
func SetupWebhookCerts(mgr ctrl.Manager, o WebhookCertOptions) error {
	if o.Clock == nil {
		o.Clock = clock.RealClock{}
	}
	r := &WebhookCertReconciler{Client: mgr.GetClient(), Clock: o.Clock, Secret: o.Secret, Hosts: o.Hosts, Provider: o.Provider,
		ValidatingConfig: o.ValidatingConfig, MutatingConfig: o.MutatingConfig}
	return r.SetupWithManager(mgr)
}
