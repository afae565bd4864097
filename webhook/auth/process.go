package auth

import (
	"context"
	"encoding/json"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/utils/clock"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// ProcessOptions wire one auth server process. `authframework server`
// fills them from its flags; the test harness from its test environment.
type ProcessOptions struct {
	// Namespaces whose policies and accounts are served; all when empty.
	Namespaces []string
	// RevocationNamespace holds the revocation ConfigMaps.
	RevocationNamespace string
	// Server configures the handler; Start sets its Revocations.
	Server Options
}

// Process is a started auth server: the handler to serve, and what feeds it.
type Process struct {
	Handler     *Server
	Store       *Store
	Revocations *ConfigMapRevocations
	// FeedDone receives the informers' error when they stop (nil when ctx
	// ended).
	FeedDone <-chan error
}

// apiServerIssuer is the service-account issuer of the cluster's API
// server, from its discovery document, or "" when it cannot be read (the
// server's ServiceAccount may not be allowed to; the well-known audiences
// are still refused).
func apiServerIssuer(ctx context.Context, cs kubernetes.Interface, log logr.Logger) string {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	b, err := cs.Discovery().RESTClient().Get().AbsPath("/.well-known/openid-configuration").DoRaw(ctx)
	if err != nil {
		log.Info("cannot read the API server's service-account issuer to check the token exchange audience against it; only well-known API server audiences are refused", "error", err.Error())
		return ""
	}
	var doc struct {
		Issuer string `json:"issuer"`
	}
	if json.Unmarshal(b, &doc) != nil {
		return ""
	}
	return doc.Issuer
}

// Start builds the store, its informer feed, the revocation storage and the
// handler, and runs the feed and the revocation batcher until ctx ends.
// Serving the handler is the caller's: a listener in the binary, an
// httptest.Server in tests.
func Start(ctx context.Context, cfg *rest.Config, scheme *runtime.Scheme, o ProcessOptions) (*Process, error) {
	if o.Server.Clock == nil {
		o.Server.Clock = clock.RealClock{}
	}
	store := NewStore(o.Server.Clock)
	feed, err := NewFeed(cfg, scheme, store, FeedOptions{Namespaces: o.Namespaces, RevocationNamespace: o.RevocationNamespace})
	if err != nil {
		return nil, err
	}
	c, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		return nil, err
	}
	if ex := &o.Server.TokenExchange; ex.Audience != "" {
		cs, err := kubernetes.NewForConfig(cfg)
		if err != nil {
			return nil, err
		}
		if err := CheckExchangeAudience(ex.Audience, apiServerIssuer(ctx, cs, o.Server.Log)); err != nil {
			return nil, err
		}
		if ex.Reviewer == nil {
			ex.Reviewer = ClientTokenReviewer{Client: cs.AuthenticationV1().TokenReviews()}
		}
	}
	revocations := &ConfigMapRevocations{Client: c, Namespace: o.RevocationNamespace, Clock: o.Server.Clock}
	o.Server.Revocations = revocations
	handler := NewServer(store, o.Server)
	feedDone := make(chan error, 1)
	go func() { feedDone <- feed.Run(ctx) }()
	go revocations.Run(ctx)
	return &Process{Handler: handler, Store: store, Revocations: revocations, FeedDone: feedDone}, nil
}
