package auth

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/go-logr/logr"
	lru "github.com/hashicorp/golang-lru/v2"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/singleflight"
	"golang.org/x/time/rate"
	authnv1 "k8s.io/api/authentication/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	authnv1client "k8s.io/client-go/kubernetes/typed/authentication/v1"
	"k8s.io/utils/clock"

	"github.com/authframework/authframework/internal/breaker"
	"github.com/authframework/authframework/pkg/serverapi"
)

// TokenReviewer asks the Kubernetes API whether a token is valid for one of
// audiences (authentication.k8s.io/v1 TokenReview). An error means the API
// did not answer; an answer of "not authenticated" is a status, not an
// error.
type TokenReviewer interface {
	Review(ctx context.Context, token string, audiences []string) (authnv1.TokenReviewStatus, error)
}

// ClientTokenReviewer is a TokenReviewer over client-go. Its caller needs
// `create` on `tokenreviews` in the authentication.k8s.io group.
type ClientTokenReviewer struct {
	Client authnv1client.TokenReviewInterface
}

// Review creates a TokenReview and returns its status.
func (c ClientTokenReviewer) Review(ctx context.Context, token string, audiences []string) (authnv1.TokenReviewStatus, error) {
	tr, err := c.Client.Create(ctx, &authnv1.TokenReview{Spec: authnv1.TokenReviewSpec{Token: token, Audiences: audiences}}, metav1.CreateOptions{})
	if err != nil {
		return authnv1.TokenReviewStatus{}, err
	}
	return tr.Status, nil
}

// TokenExchange configures token exchange of Kubernetes service-account
// tokens (RFC 8693) and what protects the Kubernetes API from it.
type TokenExchange struct {
	// Audience the subject tokens must carry; empty turns token exchange
	// off. Never the API server's own audience: then any pod's API
	// credential would be enough.
	Audience string
	// Reviewer verifies subject tokens; required when Audience is set.
	Reviewer TokenReviewer
	// CacheTTL bounds how long a TokenReview result is reused; it is never
	// reused past the subject token's exp either. Default 10s.
	CacheTTL time.Duration
	// CacheSize bounds the results kept. Default 10000.
	CacheSize int
	// QPS and Burst bound the TokenReviews sent. Default 20 and 40.
	QPS   float64
	Burst int
	// Concurrency bounds the TokenReviews in flight. Default 8.
	Concurrency int
	// Timeout bounds one TokenReview, and the wait for a free slot. Default 2s.
	Timeout time.Duration
	// Breaker opens after consecutive failed TokenReviews. Default
	// breaker.DefaultSettings.
	Breaker breaker.Settings
}

// DefaultTokenExchange holds the defaults of every field but Audience and
// Reviewer.
var DefaultTokenExchange = TokenExchange{CacheTTL: 10 * time.Second, CacheSize: 10000, QPS: 20, Burst: 40, Concurrency: 8,
	Timeout: 2 * time.Second, Breaker: breaker.DefaultSettings}

func (t TokenExchange) withDefaults() TokenExchange {
	d := DefaultTokenExchange
	if t.CacheTTL <= 0 {
		t.CacheTTL = d.CacheTTL
	}
	if t.CacheSize <= 0 {
		t.CacheSize = d.CacheSize
	}
	if t.QPS <= 0 {
		t.QPS = d.QPS
	}
	if t.Burst <= 0 {
		t.Burst = d.Burst
	}
	if t.Concurrency <= 0 {
		t.Concurrency = d.Concurrency
	}
	if t.Timeout <= 0 {
		t.Timeout = d.Timeout
	}
	if t.Breaker.Failures <= 0 {
		t.Breaker.Failures = d.Breaker.Failures
	}
	if t.Breaker.OpenFor <= 0 {
		t.Breaker.OpenFor = d.Breaker.OpenFor
	}
	return t
}

// apiServerAudiences are audiences a kube-apiserver commonly accepts for
// its own credentials; CheckExchangeAudience refuses them.
var apiServerAudiences = []string{
	"https://kubernetes.default.svc", "https://kubernetes.default.svc.cluster.local",
	"kubernetes.default.svc", "kubernetes.default.svc.cluster.local", "kubernetes", "api",
}

// CheckExchangeAudience refuses a token exchange audience that would let a
// pod's ordinary API credential (a projected token whose audience is the API
// server's) be exchanged: a well-known API server audience, or one of
// apiServer, the audiences the cluster's API server is known to accept (its
// service-account issuer).
func CheckExchangeAudience(aud string, apiServer ...string) error {
	for _, a := range append(apiServer, apiServerAudiences...) {
		if a != "" && aud == a {
			return fmt.Errorf("token exchange audience %q is the Kubernetes API server's own: every pod's API credential would carry it; choose an audience of this auth server's, such as %q", aud, "authframework")
		}
	}
	return nil
}

// unavailable is a TokenReview that could not be made or failed: the
// exchange is answered 503 with Retry-After.
type unavailable struct {
	reason     string
	retryAfter time.Duration
}

func (u *unavailable) Error() string { return u.reason }

// reviewed is a cached TokenReview status.
type reviewed struct {
	status  authnv1.TokenReviewStatus
	expires time.Time
}

// kubeReviews asks the Kubernetes API about subject tokens without letting
// token exchange overload it: results are cached by the token's SHA-256,
// concurrent reviews of one token share one call, calls are bounded in rate
// and concurrency, and a circuit breaker answers at once while the API
// fails.
type kubeReviews struct {
	o       TokenExchange
	clock   clock.PassiveClock
	cache   *lru.Cache[[32]byte, reviewed]
	group   singleflight.Group
	limiter *rate.Limiter
	slots   chan struct{}
	breaker *breaker.Breaker
	results *prometheus.CounterVec
	log     logr.Logger
}

func newKubeReviews(o TokenExchange, clk clock.PassiveClock, reg prometheus.Registerer, log, audit logr.Logger) *kubeReviews {
	o = o.withDefaults()
	c, _ := lru.New[[32]byte, reviewed](o.CacheSize)
	k := &kubeReviews{o: o, clock: clk, cache: c, limiter: rate.NewLimiter(rate.Limit(o.QPS), o.Burst),
		slots: make(chan struct{}, o.Concurrency), log: log,
		results: prometheus.NewCounterVec(prometheus.CounterOpts{Name: serverapi.MetricTokenExchangeReviews,
			Help: "TokenReviews asked of the Kubernetes API for token exchange, and cache answers, by result."}, []string{"result"})}
	k.breaker = breaker.New(o.Breaker, clk, func(from, to breaker.State) {
		audit.Info("token exchange circuit breaker "+to.String(), "event", "token_exchange_breaker", "from", from.String(), "to", to.String(),
			"failures", o.Breaker.Failures, "openFor", o.Breaker.OpenFor.String())
	})
	// Read at scrape time: an open breaker whose time is up reads half-open
	// though no exchange has come to move it.
	state := prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: serverapi.MetricTokenExchangeBreaker,
		Help: "State of the circuit breaker in front of the Kubernetes API's TokenReview: 0 closed, 1 half-open, 2 open."},
		func() float64 { return float64(k.breaker.State()) })
	reg.MustRegister(state, k.results)
	return k
}

// cached reports whether a review of raw is cached.
func (k *kubeReviews) cached(raw string) bool {
	e, ok := k.cache.Peek(sha256.Sum256([]byte(raw)))
	return ok && k.clock.Now().Before(e.expires)
}

// review returns the Kubernetes API's verdict on a subject token that
// expires at exp, and whether it was asked now (not cached), or an
// *unavailable error.
func (k *kubeReviews) review(raw string, exp time.Time) (authnv1.TokenReviewStatus, bool, error) {
	key := sha256.Sum256([]byte(raw))
	if e, ok := k.cache.Get(key); ok && k.clock.Now().Before(e.expires) {
		k.results.WithLabelValues("cached_" + verdict(e.status)).Inc()
		return e.status, false, nil
	}
	v, err, _ := k.group.Do(hex.EncodeToString(key[:]), func() (any, error) {
		st, err := k.call(raw)
		if err != nil {
			return nil, err
		}
		if expires := minTime(k.clock.Now().Add(k.o.CacheTTL), exp); k.clock.Now().Before(expires) {
			k.cache.Add(key, reviewed{status: st, expires: expires})
		}
		return st, nil
	})
	if err != nil {
		return authnv1.TokenReviewStatus{}, false, err
	}
	return v.(authnv1.TokenReviewStatus), true, nil
}

// call makes one bounded TokenReview behind the breaker. It does not use
// the asking request's context: callers share it (singleflight), and one
// caller going away must not fail the others.
func (k *kubeReviews) call(raw string) (authnv1.TokenReviewStatus, error) {
	if !k.limiter.Allow() {
		k.results.WithLabelValues("refused_rate").Inc()
		return authnv1.TokenReviewStatus{}, &unavailable{reason: "too many token exchanges to verify at once; retry later", retryAfter: time.Second}
	}
	ctx, cancel := context.WithTimeout(context.Background(), k.o.Timeout)
	defer cancel()
	select {
	case k.slots <- struct{}{}:
		defer func() { <-k.slots }()
	case <-ctx.Done():
		k.results.WithLabelValues("refused_concurrency").Inc()
		return authnv1.TokenReviewStatus{}, &unavailable{reason: "too many token exchanges to verify at once; retry later", retryAfter: time.Second}
	}
	if d := k.breaker.Allow(); !d.Allowed {
		k.results.WithLabelValues("refused_breaker_open").Inc()
		return authnv1.TokenReviewStatus{}, &unavailable{
			reason: "the Kubernetes API is failing; token exchange is paused (circuit breaker open); retry later", retryAfter: d.RetryAfter}
	}
	st, err := k.o.Reviewer.Review(ctx, raw, []string{k.o.Audience})
	k.breaker.Record(err == nil)
	if err != nil {
		k.results.WithLabelValues("error").Inc()
		// The API's error names no token; it says what is wrong (down,
		// timeout, forbidden without the tokenreviews RBAC).
		k.log.Error(err, "TokenReview failed", "breaker", k.breaker.State().String())
		return authnv1.TokenReviewStatus{}, &unavailable{reason: "the Kubernetes API did not verify the subject token; retry later", retryAfter: time.Second}
	}
	k.results.WithLabelValues(verdict(st)).Inc()
	return st, nil
}

func verdict(st authnv1.TokenReviewStatus) string {
	if st.Authenticated {
		return "authenticated"
	}
	return "unauthenticated"
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

// asUnavailable reports whether err is an *unavailable.
func asUnavailable(err error) (*unavailable, bool) {
	var u *unavailable
	return u, errors.As(err, &u)
}
