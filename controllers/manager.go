package controllers

import (
	"context"
	"crypto/tls"
	"fmt"
	"time"

	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/config"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	"sigs.k8s.io/controller-runtime/pkg/webhook"

	"github.com/authframework/authframework/internal/certs"
	"github.com/authframework/authframework/webhook/admission"
)

// Webhook certificate modes: who provides the webhook server's certificate.
const (
	// WebhookCertSelf: the operator creates, renews and injects it.
	WebhookCertSelf = "self"
	// WebhookCertManager: cert-manager writes it to CertDir and its CA
	// injector sets the caBundle.
	WebhookCertManager = "cert-manager"
)

// ManagerOptions are the operator's manager settings. `authframework
// manager` fills them from its flags; the test harness from its test
// environment. Both build the manager with NewManager.
type ManagerOptions struct {
	// Scheme knows the built-in kinds and ours.
	Scheme *runtime.Scheme
	// MetricsAddr and ProbeAddr are listen addresses; "0" disables them.
	MetricsAddr, ProbeAddr string
	// PprofAddr serves Go's /debug/pprof profiles; empty serves none.
	PprofAddr string
	// LeaderElection is off when its ID is empty.
	LeaderElection LeaderElection
	// GracefulShutdown bounds how long running reconciles may take on
	// shutdown; controller-runtime's default when zero.
	GracefulShutdown time.Duration
	// SkipNameValidation lets one process start several managers (tests).
	SkipNameValidation bool
	// Controllers are the reconcilers' options.
	Controllers Options
	// Webhooks configure the admission webhooks; nil serves none.
	Webhooks *WebhookOptions
}

// LeaderElection configures the manager's Lease.
type LeaderElection struct {
	// ID names the Lease; empty disables leader election.
	ID string
	// Namespace of the Lease; the pod's namespace when empty.
	Namespace string
	// LeaseDuration, RenewDeadline and RetryPeriod are client-go's
	// leader election timings; its defaults when zero.
	LeaseDuration, RenewDeadline, RetryPeriod time.Duration
}

// WebhookOptions configure the admission webhook server and its certificate.
type WebhookOptions struct {
	// Host and Port the webhook server listens on; all addresses when Host
	// is empty.
	Host string
	Port int
	// CertMode is WebhookCertSelf or WebhookCertManager.
	CertMode string
	// CertDir holds tls.crt and tls.key in cert-manager mode.
	CertDir string
	// Certs say which Secret, names and webhook configurations the operator
	// manages in self mode; its Provider is set by NewManager.
	Certs WebhookCertOptions
}

// NewManager builds the operator's manager: every controller, the
// admission webhooks and their certificates, and the health checks. It
// returns the reconcilers for tests that reach into them.
func NewManager(ctx context.Context, cfg *rest.Config, o ManagerOptions) (ctrl.Manager, *Controllers, error) {
	opts := ctrl.Options{
		Scheme:                  o.Scheme,
		Metrics:                 metricsserver.Options{BindAddress: o.MetricsAddr},
		HealthProbeBindAddress:  o.ProbeAddr,
		PprofBindAddress:        o.PprofAddr,
		LeaderElection:          o.LeaderElection.ID != "",
		LeaderElectionID:        o.LeaderElection.ID,
		LeaderElectionNamespace: o.LeaderElection.Namespace,
		// Release the lease on shutdown so a rolling update hands over at once
		// instead of waiting for the lease to expire.
		LeaderElectionReleaseOnCancel: true,
		LeaseDuration:                 nonZero(o.LeaderElection.LeaseDuration),
		RenewDeadline:                 nonZero(o.LeaderElection.RenewDeadline),
		RetryPeriod:                   nonZero(o.LeaderElection.RetryPeriod),
		GracefulShutdownTimeout:       nonZero(o.GracefulShutdown),
		Cache:                         CacheOptions(),
		Controller:                    config.Controller{SkipNameValidation: ptr.To(o.SkipNameValidation)},
	}
	var provider *certs.Provider
	if w := o.Webhooks; w != nil {
		whOpts := webhook.Options{Host: w.Host, Port: w.Port}
		switch w.CertMode {
		case WebhookCertSelf:
			provider = &certs.Provider{}
			whOpts.TLSOpts = []func(*tls.Config){func(c *tls.Config) { c.GetCertificate = provider.GetCertificate }}
		case WebhookCertManager:
			whOpts.CertDir = w.CertDir
		default:
			return nil, nil, fmt.Errorf("webhook certificate mode: want %s or %s, got %q", WebhookCertSelf, WebhookCertManager, w.CertMode)
		}
		opts.WebhookServer = webhook.NewServer(whOpts)
	}
	mgr, err := ctrl.NewManager(cfg, opts)
	if err != nil {
		return nil, nil, fmt.Errorf("creating manager: %w", err)
	}
	ctrls, err := Setup(ctx, mgr, o.Controllers)
	if err != nil {
		return nil, nil, err
	}
	if o.Webhooks != nil {
		if err := admission.Setup(mgr); err != nil {
			return nil, nil, fmt.Errorf("setting up admission webhooks: %w", err)
		}
		if provider != nil {
			c := o.Webhooks.Certs
			c.Provider = provider
			if err := SetupWebhookCerts(mgr, c); err != nil {
				return nil, nil, fmt.Errorf("setting up the webhook certificates: %w", err)
			}
		}
	}
	if err := mgr.AddHealthzCheck("healthz", healthz.Ping); err != nil {
		return nil, nil, fmt.Errorf("adding health check: %w", err)
	}
	if err := mgr.AddReadyzCheck("readyz", healthz.Ping); err != nil {
		return nil, nil, fmt.Errorf("adding ready check: %w", err)
	}
	return mgr, ctrls, nil
}

// nonZero is nil for zero, so controller-runtime applies its default.
func nonZero(d time.Duration) *time.Duration {
	if d == 0 {
		return nil
	}
	return &d
}
