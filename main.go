// Command authframework is the authframework operator.
//
//	authframework manager   runs the controllers (leader-elected).
//
//	authframework server    runs the auth server.
//
//	authframework kube-authn-config  prints kube-apiserver's
//	                        --authentication-config for a TokenPolicy.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/go-logr/logr"
	"github.com/go-logr/zapr"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/klog/v2"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client/config"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	authv1alpha1 "github.com/authframework/authframework/api/v1alpha1"
	"github.com/authframework/authframework/controllers"
	"github.com/authframework/authframework/internal/certs"
)

const usage = `authframework — a Kubernetes-native token authority for machine identities.

Usage:
  authframework manager [flags]   run the controllers
  authframework server [flags]    run the auth server (token endpoint, /validate, discovery)
  authframework kube-authn-config --namespace NS --policy NAME --audience AUD [flags]
                                  print kube-apiserver's --authentication-config for a TokenPolicy
  authframework help              show this help

Run "authframework manager -h" or "authframework server -h" for their flags.
`

func main() {
	if err := run(os.Args[1:], os.Stderr); err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "authframework:", err)
		}
		os.Exit(1)
	}
}

func run(args []string, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return errors.New("a subcommand is required")
	}
	switch args[0] {
	case "manager":
		return runManager(args[1:], stderr)
	case "server":
		return runServer(args[1:], stderr)
	case "kube-authn-config":
		return runKubeAuthnConfig(args[1:], os.Stdout, stderr)
	case "help", "-h", "--help":
		fmt.Fprint(stderr, usage)
		return nil
	default:
		fmt.Fprint(stderr, usage)
		return fmt.Errorf("unknown subcommand %q", args[0])
	}
}

// managerOptions are the manager's flags.
type managerOptions struct {
	metricsAddr             string
	probeAddr               string
	pprofAddr               string
	leaderElect             bool
	leaderElectionID        string
	leaderElectionNS        string
	leaseDuration           time.Duration
	renewDeadline           time.Duration
	retryPeriod             time.Duration
	gracefulShutdown        time.Duration
	maxConcurrentReconciles int
	devColorURLs            string
	serverRBAC              controllers.ServerRBAC
	webhooks                webhookOptions
	log                     logOptions
}

func (o *managerOptions) bind(fs *flag.FlagSet) {
	fs.StringVar(&o.metricsAddr, "metrics-bind-address", ":8080", "Address of the Prometheus metrics endpoint; \"0\" disables it.")
	fs.StringVar(&o.probeAddr, "health-probe-bind-address", ":8081", "Address of the /healthz and /readyz probes.")
	fs.StringVar(&o.pprofAddr, "pprof-bind-address", "", "Address of Go's /debug/pprof profiles (CPU, heap, goroutines); empty: not served. Profiles show code paths, not secrets, but bind it to loopback.")
	fs.BoolVar(&o.leaderElect, "leader-elect", true, "Elect a leader so that only one replica reconciles at a time.")
	fs.StringVar(&o.leaderElectionID, "leader-election-id", "authframework-manager.auth.authframework.dev", "Name of the leader election Lease.")
	fs.StringVar(&o.leaderElectionNS, "leader-election-namespace", "", "Namespace of the leader election Lease; default: the pod's namespace.")
	fs.DurationVar(&o.leaseDuration, "leader-election-lease-duration", 15*time.Second, "How long a non-leader waits before it may take over an unrenewed lease.")
	fs.DurationVar(&o.renewDeadline, "leader-election-renew-deadline", 10*time.Second, "How long the leader keeps trying to renew before it gives up leadership.")
	fs.DurationVar(&o.retryPeriod, "leader-election-retry-period", 2*time.Second, "How often leader election is retried.")
	fs.DurationVar(&o.gracefulShutdown, "graceful-shutdown-timeout", 30*time.Second, "How long running reconciles may take to finish on shutdown.")
	fs.IntVar(&o.maxConcurrentReconciles, "max-concurrent-reconciles", controllers.DefaultMaxConcurrentReconciles, "ServiceAccounts reconciled in parallel.")
	fs.StringVar(&o.serverRBAC.ReadClusterRole, "server-cluster-role", "authframework-server", "ClusterRole the operator binds to each AuthServer's ServiceAccount where its pods read (policies, accounts, roles, Secrets); empty: bind nothing and grant the pods yourself.")
	fs.StringVar(&o.serverRBAC.RevocationsClusterRole, "server-revocations-cluster-role", "authframework-server-revocations", "ClusterRole the operator binds in each AuthServer's namespace for its revocation ConfigMaps.")
	fs.StringVar(&o.serverRBAC.TokenReviewClusterRole, "server-tokenreview-cluster-role", "", "ClusterRole (create on tokenreviews) the operator binds to the ServiceAccount of each AuthServer with spec.tokenExchange, so its pods can verify Kubernetes service-account tokens; empty (the default): token exchange is not granted. The install must give the operator bind on it (Helm: tokenExchange.enabled=true; kustomize: config/tokenexchange).")
	fs.Func("server-cluster-scope-namespaces", "Comma-separated namespaces whose AuthServers may read beyond their own namespace (default: $POD_NAMESPACE, the operator's namespace). Anyone who can create pods there can act as the server's ServiceAccount; list only namespaces cluster admins alone write to.", func(v string) error {
		o.serverRBAC.ClusterScopeNamespaces = splitList(v)
		return nil
	})
	if ns := os.Getenv("POD_NAMESPACE"); ns != "" {
		o.serverRBAC.ClusterScopeNamespaces = []string{ns}
	} else {
		o.serverRBAC.ClusterScopeNamespaces = []string{"authframework-system"}
	}
	fs.StringVar(&o.devColorURLs, "dev-authserver-urls", "", "Development only: reach every AuthServer's colors at these URLs (blue=URL,green=URL) for smoke tests and analysis, instead of their Services' cluster DNS names. `make run SIM=1` uses it: the simulated cluster's pods do not run, so auth server processes on the host stand in for them.")
	o.webhooks.bind(fs)
}

// webhookOptions configure the admission webhooks and their certificates.
type webhookOptions struct {
	enabled          bool
	port             int
	certMode         string
	certDir          string
	namespace        string
	service          string
	secret           string
	validatingConfig string
	mutatingConfig   string
}

func (o *webhookOptions) bind(fs *flag.FlagSet) {
	ns := os.Getenv("POD_NAMESPACE")
	if ns == "" {
		ns = "authframework-system"
	}
	fs.BoolVar(&o.enabled, "enable-webhooks", true, "Serve the admission webhooks.")
	fs.IntVar(&o.port, "webhook-port", 9443, "Port of the webhook server.")
	fs.StringVar(&o.certMode, "webhook-cert-mode", "self", "Who provides the webhook certificate: self (the operator creates, renews and injects it) or cert-manager (read from --webhook-cert-dir; cert-manager's CA injector sets the caBundle).")
	fs.StringVar(&o.certDir, "webhook-cert-dir", "/tmp/k8s-webhook-server/serving-certs", "Directory with tls.crt and tls.key in cert-manager mode.")
	fs.StringVar(&o.namespace, "namespace", ns, "The operator's namespace (default $POD_NAMESPACE).")
	fs.StringVar(&o.service, "webhook-service", "authframework-webhook-service", "Name of the webhook Service, for the certificate's DNS names.")
	fs.StringVar(&o.secret, "webhook-cert-secret", "authframework-webhook-certs", "Secret that holds the self-managed webhook certificates.")
	fs.StringVar(&o.validatingConfig, "validating-webhook-configuration", "authframework-validating-webhook-configuration", "ValidatingWebhookConfiguration whose caBundle is injected.")
	fs.StringVar(&o.mutatingConfig, "mutating-webhook-configuration", "authframework-mutating-webhook-configuration", "MutatingWebhookConfiguration whose caBundle is injected.")
}

// parseCommand parses a subcommand's flags (its own, --kubeconfig and the
// log flags) and installs its logger for controller-runtime and client-go.
func parseCommand(name string, args []string, stderr io.Writer, bind func(*flag.FlagSet), log *logOptions) (logr.Logger, error) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	bind(fs)
	log.bind(fs)
	config.RegisterFlags(fs)
	if err := fs.Parse(args); err != nil {
		return logr.Discard(), err
	}
	if fs.NArg() > 0 {
		return logr.Discard(), fmt.Errorf("%s: unexpected arguments %q", name, fs.Args())
	}
	logger, err := log.build(stderr)
	if err != nil {
		return logr.Discard(), err
	}
	ctrl.SetLogger(logger)
	klog.SetLogger(logger)
	return logger, nil
}

func runManager(args []string, stderr io.Writer) error {
	var opts managerOptions
	logger, err := parseCommand("manager", args, stderr, opts.bind, &opts.log)
	if err != nil {
		return err
	}
	setupLog := logger.WithName("setup")

	ctx := ctrl.SetupSignalHandler()
	mgr, err := setupManager(ctx, opts)
	if err != nil {
		setupLog.Error(err, "unable to set up the manager")
		return err
	}
	setupLog.Info("starting manager", "leaderElection", opts.leaderElect, "metricsAddress", opts.metricsAddr, "probeAddress", opts.probeAddr)
	if err := mgr.Start(ctx); err != nil {
		setupLog.Error(err, "manager stopped with an error")
		return err
	}
	return nil
}

// newScheme returns the scheme with the built-in kinds, ours, and the Gateway
// API's (HTTPRoutes carry canary steps).
func newScheme() *runtime.Scheme {
	s := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(s))
	utilruntime.Must(authv1alpha1.AddToScheme(s))
	utilruntime.Must(gatewayv1.Install(s))
	return s
}

func setupManager(ctx context.Context, opts managerOptions) (ctrl.Manager, error) {
	restConfig, err := ctrl.GetConfig()
	if err != nil {
		return nil, fmt.Errorf("loading kubeconfig: %w", err)
	}
	mo, err := opts.managerOptions()
	if err != nil {
		return nil, err
	}
	mgr, _, err := controllers.NewManager(ctx, restConfig, mo)
	return mgr, err
}

// managerOptions turns the flags into the manager's settings.
func (o managerOptions) managerOptions() (controllers.ManagerOptions, error) {
	mo := controllers.ManagerOptions{
		Scheme:           newScheme(),
		MetricsAddr:      o.metricsAddr,
		ProbeAddr:        o.probeAddr,
		PprofAddr:        o.pprofAddr,
		GracefulShutdown: o.gracefulShutdown,
		Controllers:      controllers.Options{Clock: clock.RealClock{}, MaxConcurrentReconciles: o.maxConcurrentReconciles, ServerRBAC: o.serverRBAC},
	}
	if o.leaderElect {
		mo.LeaderElection = controllers.LeaderElection{ID: o.leaderElectionID, Namespace: o.leaderElectionNS,
			LeaseDuration: o.leaseDuration, RenewDeadline: o.renewDeadline, RetryPeriod: o.retryPeriod}
	}
	if o.devColorURLs != "" {
		e, err := controllers.ParseColorEndpoints(o.devColorURLs)
		if err != nil {
			return mo, fmt.Errorf("--dev-authserver-urls: %w", err)
		}
		mo.Controllers.Endpoints = e
	}
	w := o.webhooks
	if w.certMode != controllers.WebhookCertSelf && w.certMode != controllers.WebhookCertManager {
		return mo, fmt.Errorf("--webhook-cert-mode: want self or cert-manager, got %q", w.certMode)
	}
	if w.enabled {
		svc := w.service + "." + w.namespace
		mo.Webhooks = &controllers.WebhookOptions{Port: w.port, CertMode: w.certMode, CertDir: w.certDir,
			Certs: controllers.WebhookCertOptions{
				Secret:           types.NamespacedName{Namespace: w.namespace, Name: w.secret},
				Hosts:            certs.Hosts{DNSNames: []string{svc + ".svc", svc + ".svc.cluster.local", svc}},
				ValidatingConfig: w.validatingConfig,
				MutatingConfig:   w.mutatingConfig,
			}}
	}
	return mo, nil
}

// logOptions choose the logger: structured JSON for clusters, console text for
// people reading a terminal.
type logOptions struct {
	level  string
	format string
}

func (o *logOptions) bind(fs *flag.FlagSet) {
	fs.StringVar(&o.level, "log-level", "info", "Log level: debug, info, error, or a verbosity number (1 = debug).")
	fs.StringVar(&o.format, "log-format", "json", "Log format: json or console.")
}

func (o *logOptions) build(w io.Writer) (logr.Logger, error) {
	level, err := parseLevel(o.level)
	if err != nil {
		return logr.Discard(), err
	}
	encCfg := zap.NewProductionEncoderConfig()
	encCfg.EncodeTime = zapcore.RFC3339NanoTimeEncoder
	var enc zapcore.Encoder
	switch o.format {
	case "json":
		enc = zapcore.NewJSONEncoder(encCfg)
	case "console":
		enc = zapcore.NewConsoleEncoder(encCfg)
	default:
		return logr.Discard(), fmt.Errorf("--log-format: want json or console, got %q", o.format)
	}
	core := zapcore.NewCore(enc, zapcore.AddSync(w), level)
	return zapr.NewLogger(zap.New(core, zap.AddCaller())), nil
}

// parseLevel maps a level name or logr verbosity to a zap level. logr's V(n)
// is zap level -n, so "2" enables V(2) logs.
func parseLevel(s string) (zapcore.Level, error) {
	switch s {
	case "debug":
		return zapcore.DebugLevel, nil
	case "info":
		return zapcore.InfoLevel, nil
	case "error":
		return zapcore.ErrorLevel, nil
	}
	var v int
	if _, err := fmt.Sscanf(s, "%d", &v); err != nil || v < 0 || v > 10 || fmt.Sprint(v) != s {
		return 0, fmt.Errorf("--log-level: want debug, info, error or 0-10, got %q", s)
	}
	return zapcore.Level(-v), nil
}
