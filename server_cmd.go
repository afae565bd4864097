package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/pprof"
	"net/netip"
	"os"
	"strings"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"k8s.io/client-go/rest"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"

	"github.com/authframework/authframework/pkg/serverapi"
	"github.com/authframework/authframework/webhook/auth"
)

// serverOptions are the auth server's flags.
type serverOptions struct {
	listen              string
	namespaces          string
	revocationNamespace string
	cacheSize           int
	pprofAddr           string
	shutdownTimeout     time.Duration
	headers             auth.IdentityHeaders
	trustedProxies      []netip.Prefix
	throttles           auth.Throttles
	exchange            auth.TokenExchange
	maxStreams          int
	tokenReview         tokenReviewOptions
	log                 logOptions
}

func (o *serverOptions) bind(fs *flag.FlagSet) {
	fs.StringVar(&o.listen, serverapi.FlagListen, ":8080", "Address of the auth server (token, validate, discovery, probes, metrics).")
	fs.StringVar(&o.namespaces, serverapi.FlagWatchNamespaces, "", "Comma-separated namespaces whose policies and accounts to serve; empty: all.")
	def := os.Getenv("POD_NAMESPACE")
	if def == "" {
		def = "default"
	}
	fs.StringVar(&o.revocationNamespace, serverapi.FlagRevocationNamespace, def, "Namespace of the ConfigMaps that hold revoked token ids; the default is $POD_NAMESPACE when set.")
	fs.IntVar(&o.cacheSize, serverapi.FlagCacheSize, 100000, "Validation results cached; 0 disables the cache.")
	fs.StringVar(&o.pprofAddr, "pprof-bind-address", "", "Address of Go's /debug/pprof profiles (CPU, heap, goroutines), on a listener of its own; empty: not served. Bind it to loopback.")
	fs.DurationVar(&o.shutdownTimeout, "shutdown-timeout", 20*time.Second, "How long in-flight requests may take to finish on shutdown.")
	fs.Func(serverapi.FlagTrustedProxies, "Comma-separated CIDRs of the proxies (ingress controllers) whose X-Forwarded-For / X-Real-IP name a request's source address; empty: trust nobody's, the source is the TCP peer.", func(v string) (err error) {
		o.trustedProxies, err = auth.ParseTrustedProxies(v)
		return err
	})
	o.throttles = auth.DefaultThrottles
	fs.Var(&o.throttles.FailedAuthPerSource, "failed-auth-per-source", "Failed client authentications one source address may make (N/duration: N at once, N per duration refilled) before further failures are answered 429. A correct secret is never refused.")
	fs.Var(&o.throttles.FailedAuthPerClientSource, "failed-auth-per-client-source", "Failed client authentications for one client id from one source address (N/duration), known and unknown ids alike.")
	fs.Var(&o.throttles.FailedTokensPerSource, "failed-tokens-per-source", "Tokens /validate may refuse after checking them for one source address (N/duration) before it stops checking that source's new tokens.")
	fs.IntVar(&o.throttles.Entries, "throttle-entries", auth.DefaultThrottles.Entries, "Entries in each table of per-source counters and in the cache of refused token hashes (least recently used dropped).")
	fs.IntVar(&o.maxStreams, serverapi.FlagMaxRevocationStreams, auth.DefaultMaxStreams, "Revocation streams (GET "+serverapi.PathRevocations+") this server holds open at most; more are answered 503 with Retry-After.")
	o.exchange = auth.DefaultTokenExchange
	fs.StringVar(&o.exchange.Audience, serverapi.FlagTokenExchangeAudience, "", "Audience Kubernetes service-account tokens must carry to be exchanged for access tokens (RFC 8693, verified with TokenReview; needs create on tokenreviews). Never the API server's own audience. Empty: token exchange is off.")
	fs.DurationVar(&o.exchange.CacheTTL, serverapi.FlagTokenExchangeCacheTTL, o.exchange.CacheTTL, "How long a TokenReview result is reused (never past the subject token's exp): how late a deleted pod's token may still be exchanged.")
	fs.Float64Var(&o.exchange.QPS, serverapi.FlagTokenExchangeQPS, o.exchange.QPS, "TokenReviews per second sent to the API server at most.")
	fs.IntVar(&o.exchange.Burst, serverapi.FlagTokenExchangeBurst, o.exchange.Burst, "TokenReviews sent at once at most, above the rate.")
	fs.IntVar(&o.exchange.Concurrency, serverapi.FlagTokenExchangeConcurrency, o.exchange.Concurrency, "TokenReviews in flight at most.")
	fs.DurationVar(&o.exchange.Timeout, serverapi.FlagTokenExchangeTimeout, o.exchange.Timeout, "Timeout of one TokenReview.")
	fs.IntVar(&o.exchange.Breaker.Failures, serverapi.FlagTokenExchangeBreakerFailures, o.exchange.Breaker.Failures, "Consecutive failed TokenReviews that open the circuit breaker; while open, exchanges are answered 503 with Retry-After at once.")
	fs.DurationVar(&o.exchange.Breaker.OpenFor, serverapi.FlagTokenExchangeBreakerOpenFor, o.exchange.Breaker.OpenFor, "How long the open circuit breaker refuses exchanges before one probe TokenReview.")
	d := auth.DefaultIdentityHeaders
	fs.StringVar(&o.headers.UserID, serverapi.FlagHeaderUserID, d.UserID, "Response header carrying the token's subject.")
	fs.StringVar(&o.headers.Permissions, serverapi.FlagHeaderPermissions, d.Permissions, "Response header carrying the granted permissions.")
	fs.StringVar(&o.headers.Namespace, serverapi.FlagHeaderNamespace, d.Namespace, "Response header carrying the account's namespace.")
	fs.StringVar(&o.headers.ClientID, serverapi.FlagHeaderClientID, d.ClientID, "Response header carrying the client id.")
	fs.StringVar(&o.headers.Roles, serverapi.FlagHeaderRoles, d.Roles, "Response header carrying the account's roles.")
	fs.StringVar(&o.headers.TokenID, serverapi.FlagHeaderTokenID, d.TokenID, "Response header carrying the token id.")
	o.tokenReview.bind(fs)
}

func runServer(args []string, stderr io.Writer) error {
	var opts serverOptions
	logger, err := parseCommand("server", args, stderr, opts.bind, &opts.log)
	if err != nil {
		return err
	}
	log := logger.WithName("server")
	if err := opts.tokenReview.check(); err != nil {
		return err
	}

	cfg, err := ctrl.GetConfig()
	if err != nil {
		return fmt.Errorf("loading kubeconfig: %w", err)
	}
	ctx := ctrl.SetupSignalHandler()
	srv, err := startAuthServer(ctx, cfg, opts, log)
	if err != nil {
		log.Error(err, "unable to start the auth server")
		return err
	}
	return srv()
}

// startAuthServer wires informers, revocation storage and the handler, and
// returns a function that serves until ctx ends and then drains.
func startAuthServer(ctx context.Context, cfg *rest.Config, opts serverOptions, log logr.Logger) (func() error, error) {
	namespaces := splitList(opts.namespaces)
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	proc, err := auth.Start(ctx, cfg, newScheme(), auth.ProcessOptions{
		Namespaces: namespaces, RevocationNamespace: opts.revocationNamespace,
		Server: auth.Options{
			Clock: clock.RealClock{}, Log: log, Audit: log.WithName("audit"), Headers: opts.headers,
			CacheSize: opts.cacheSize, Registry: reg, TrustedProxies: opts.trustedProxies, Throttles: opts.throttles,
			TokenExchange: opts.exchange, MaxStreams: opts.maxStreams,
			TokenReview: opts.tokenReview.serverOptions(),
		},
	})
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", opts.listen)
	if err != nil {
		return nil, err
	}
	httpServer := &http.Server{Handler: proc.Handler, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second,
		WriteTimeout: 30 * time.Second, IdleTimeout: 120 * time.Second, MaxHeaderBytes: 64 << 10}
	serveErr := make(chan error, 2)
	go func() { serveErr <- httpServer.Serve(ln) }()
	log.Info("auth server listening", "address", ln.Addr().String(), "namespaces", namespaces)
	reviewServer, err := opts.tokenReview.start(proc.Handler, serveErr, log)
	if err != nil {
		_ = httpServer.Close()
		return nil, fmt.Errorf("the tokenreview listener: %w", err)
	}
	if opts.pprofAddr != "" {
		pl, err := net.Listen("tcp", opts.pprofAddr)
		if err != nil {
			_ = httpServer.Close()
			return nil, fmt.Errorf("the pprof listener: %w", err)
		}
		ps := &http.Server{Handler: pprofHandler(), ReadHeaderTimeout: 10 * time.Second}
		go func() { _ = ps.Serve(pl) }()
		context.AfterFunc(ctx, func() { _ = ps.Close() })
		log.Info("serving pprof", "address", pl.Addr().String())
	}
	return func() error {
		select {
		case err := <-serveErr:
			return err
		case err := <-proc.FeedDone:
			if err != nil {
				return fmt.Errorf("informers: %w", err)
			}
		case <-ctx.Done():
		}
		// Drain: stop accepting, let in-flight requests finish.
		log.Info("shutting down", "timeout", opts.shutdownTimeout)
		sctx, cancel := context.WithTimeout(context.Background(), opts.shutdownTimeout)
		defer cancel()
		if reviewServer != nil {
			if err := reviewServer.Shutdown(sctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
				return err
			}
		}
		if err := httpServer.Shutdown(sctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
			return err
		}
		return nil
	}, nil
}

// pprofHandler serves Go's runtime profiles under /debug/pprof/, as
// net/http/pprof registers them on the default mux (which we do not use).
func pprofHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	return mux
}

// splitList reads a comma-separated flag value, dropping blanks.
func splitList(v string) []string {
	var out []string
	for _, x := range strings.Split(v, ",") {
		if x = strings.TrimSpace(x); x != "" {
			out = append(out, x)
		}
	}
	return out
}
