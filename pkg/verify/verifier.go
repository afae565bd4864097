package verify

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-logr/logr"
	lru "github.com/hashicorp/golang-lru/v2"
	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/utils/clock"

	"github.com/authframework/authframework/internal/breaker"
	"github.com/authframework/authframework/internal/token"
	"github.com/authframework/authframework/pkg/serverapi"
)

// Defaults of Options.
const (
	DefaultKeySetRefreshInterval = 10 * time.Second
	DefaultLeeway                = 30 * time.Second
	DefaultCacheSize             = 10000
)

// DefaultAlgorithms are the signing algorithms a TokenPolicy may use.
var DefaultAlgorithms = []jose.SignatureAlgorithm{jose.ES256, jose.ES384, jose.EdDSA, jose.RS256, jose.PS256}

// Options configure a Verifier. Issuer and Audiences are required.
type Options struct {
	// Issuer is the TokenPolicy's issuer URL, the tokens' `iss`; its
	// discovery document is Issuer + "/.well-known/openid-configuration".
	Issuer string
	// Audiences: a token must carry at least one of them in `aud`.
	Audiences []string
	// Algorithms allowed (RFC 8725 §3.1); default DefaultAlgorithms. A key
	// is only used with the algorithm its JWK names.
	Algorithms []jose.SignatureAlgorithm
	// JWKSURL, when set, is used instead of the discovery document's
	// jwks_uri.
	JWKSURL string
	// KeySetRefreshInterval is the least time between two fetches of the
	// key set that a token with an unknown kid may cause; concurrent
	// requests share one fetch. Default 10 s. Regular refreshes follow the
	// JWKS response's Cache-Control max-age (or Expires), ahead of expiry.
	KeySetRefreshInterval time.Duration
	// Leeway for exp, nbf and iat (RFC 7519 §4.1.4); default 30 s, at most
	// 5 minutes.
	Leeway time.Duration
	// MaxTokenLifetime, when set, refuses tokens whose exp - iat is longer.
	MaxTokenLifetime time.Duration
	// CacheSize bounds the result cache, in tokens; default 10000, negative
	// disables it. Results are keyed by the SHA-256 of the token and kept
	// no longer than its exp (in remote mode, than RemoteOptions.CacheFor).
	CacheSize int
	// HTTPClient fetches discovery, keys and remote answers; default a
	// client with a 10 s timeout. The revocation stream uses its Transport
	// without the timeout.
	HTTPClient *http.Client
	// Realm is the RFC 6750 realm of WWW-Authenticate; default the first
	// audience.
	Realm string
	// Clock defaults to the real clock.
	Clock clock.Clock
	// Logger logs key set fetches, breaker changes and the stream's state;
	// never a token. Default: discard.
	Logger logr.Logger
	// Registerer, when set, registers the verifier's metrics (Metric*).
	Registerer prometheus.Registerer
	// Remote turns on remote mode (see RemoteOptions).
	Remote *RemoteOptions
	// Revocations subscribes to the revocation stream (see
	// RevocationOptions).
	Revocations *RevocationOptions
}

// Verifier verifies the access tokens of one issuer. It is safe for
// concurrent use.
type Verifier struct {
	issuer  string
	realm   string
	clock   clock.Clock
	log     logr.Logger
	metrics *metrics
	tv      token.Verifier
	keys    *keySet
	cache   *lru.Cache[[sha256.Size]byte, cached]
	remote  *remoteChecker
	subs    *subscriber
	// cacheFor bounds cached results in remote mode; 0 otherwise.
	cacheFor time.Duration
}

// cached is a result: an identity, or (remote mode) a refusal.
type cached struct {
	id    *Identity
	err   *Error
	until time.Time
}

// New returns a Verifier for opts. It fetches nothing yet (the first token,
// or WaitForSync, does); ctx bounds the revocation stream's subscription,
// which starts now when opts.Revocations is set.
func New(ctx context.Context, opts Options) (*Verifier, error) {
	if err := checkURL(opts.Issuer); err != nil {
		return nil, fmt.Errorf("verify: Issuer: %w", err)
	}
	if len(opts.Audiences) == 0 {
		return nil, errors.New("verify: at least one audience is required")
	}
	if opts.Algorithms == nil {
		opts.Algorithms = DefaultAlgorithms
	}
	if opts.KeySetRefreshInterval <= 0 {
		opts.KeySetRefreshInterval = DefaultKeySetRefreshInterval
	}
	if opts.Leeway <= 0 {
		opts.Leeway = DefaultLeeway
	}
	opts.Leeway = min(opts.Leeway, token.MaxLeeway)
	if opts.CacheSize == 0 {
		opts.CacheSize = DefaultCacheSize
	}
	if opts.HTTPClient == nil {
		opts.HTTPClient = &http.Client{Timeout: 10 * time.Second}
	}
	if opts.Realm == "" {
		opts.Realm = opts.Audiences[0]
	}
	if opts.Clock == nil {
		opts.Clock = clock.RealClock{}
	}
	m, err := newMetrics(opts.Registerer)
	if err != nil {
		return nil, fmt.Errorf("verify: registering metrics: %w", err)
	}
	v := &Verifier{
		issuer: opts.Issuer, realm: opts.Realm, clock: opts.Clock, log: opts.Logger, metrics: m,
		tv: token.Verifier{
			Issuer: opts.Issuer, Audiences: opts.Audiences, Algorithms: opts.Algorithms,
			MaxTTL: opts.MaxTokenLifetime, Leeway: opts.Leeway, Clock: opts.Clock,
		},
		keys: &keySet{
			issuer: opts.Issuer, jwksURL: opts.JWKSURL, algorithms: opts.Algorithms, client: opts.HTTPClient,
			clock: opts.Clock, minInterval: opts.KeySetRefreshInterval, log: opts.Logger, metrics: m,
		},
	}
	if opts.CacheSize > 0 {
		if v.cache, err = lru.New[[sha256.Size]byte, cached](opts.CacheSize); err != nil {
			return nil, err
		}
	}
	if r := opts.Remote; r != nil {
		if err := v.setupRemote(*r, opts); err != nil {
			return nil, err
		}
	}
	if r := opts.Revocations; r != nil {
		if err := v.setupRevocations(ctx, *r, opts); err != nil {
			return nil, err
		}
	}
	return v, nil
}

func (v *Verifier) setupRemote(r RemoteOptions, opts Options) error {
	if r.Endpoint == Introspect && r.ClientCredentials == nil {
		return errors.New("verify: remote mode with Introspect needs ClientCredentials")
	}
	if r.URL != "" {
		if err := checkURL(r.URL); err != nil {
			return fmt.Errorf("verify: Remote.URL: %w", err)
		}
	}
	if r.Timeout <= 0 {
		r.Timeout = 2 * time.Second
	}
	if r.BreakerFailures <= 0 {
		r.BreakerFailures = breaker.DefaultSettings.Failures
	}
	if r.BreakerOpenFor <= 0 {
		r.BreakerOpenFor = breaker.DefaultSettings.OpenFor
	}
	if r.CacheFor <= 0 {
		r.CacheFor = 5 * time.Second
	}
	pick := func(d *discoveryDoc) (string, error) {
		if r.Endpoint == Introspect {
			if d.IntrospectionEndpoint == "" {
				return "", errors.New("the discovery document has no introspection_endpoint")
			}
			return d.IntrospectionEndpoint, nil
		}
		return serverURL(d, serverapi.PathValidate)
	}
	v.cacheFor = r.CacheFor
	v.remote = &remoteChecker{
		opts: r, url: v.endpoint(r.URL, pick), client: opts.HTTPClient, log: opts.Logger, metrics: v.metrics,
		breaker: breaker.New(breaker.Settings{Failures: r.BreakerFailures, OpenFor: r.BreakerOpenFor}, opts.Clock, func(from, to breaker.State) {
			v.metrics.breaker(to)
			switch to {
			case breaker.Open:
				v.log.Info("the auth server is not answering; verifying tokens offline (locally) until it does", "openFor", r.BreakerOpenFor)
			case breaker.Closed:
				v.log.Info("the auth server answers again; remote verification resumed")
			}
		}),
	}
	return nil
}

func (v *Verifier) setupRevocations(ctx context.Context, r RevocationOptions, opts Options) error {
	if r.TokenSource == nil && r.Token == nil {
		return errors.New("verify: the revocation stream needs a TokenSource or Token for its bearer token")
	}
	if r.URL != "" {
		if err := checkURL(r.URL); err != nil {
			return fmt.Errorf("verify: Revocations.URL: %w", err)
		}
	}
	if r.MaxStaleness <= 0 {
		r.MaxStaleness = time.Minute
	}
	if r.MinBackoff <= 0 {
		r.MinBackoff = 250 * time.Millisecond
	}
	if r.MaxBackoff < r.MinBackoff {
		r.MaxBackoff = max(30*time.Second, r.MinBackoff)
	}
	if r.IdleTimeout <= 0 {
		r.IdleTimeout = 3 * serverapi.RevocationHeartbeatSeconds * time.Second
	}
	base := opts.HTTPClient
	v.subs = &subscriber{
		opts: r, issuer: opts.Issuer, clock: opts.Clock, leeway: opts.Leeway, log: opts.Logger, metrics: v.metrics,
		url: v.endpoint(r.URL, func(d *discoveryDoc) (string, error) { return serverURL(d, serverapi.PathRevocations) }),
		// A stream outlives any request timeout; IdleTimeout bounds it.
		client:  &http.Client{Transport: base.Transport, CheckRedirect: base.CheckRedirect, Jar: base.Jar},
		st:      newStreamState(),
		started: opts.Clock.Now(),
		synced:  make(chan struct{}),
	}
	go v.subs.run(ctx)
	return nil
}

// endpoint is fixed when set, else picked from the discovery document.
func (v *Verifier) endpoint(fixed string, pick func(*discoveryDoc) (string, error)) func(context.Context) (string, error) {
	return func(ctx context.Context) (string, error) {
		if fixed != "" {
			return fixed, nil
		}
		d, err := v.keys.discover(ctx)
		if err != nil {
			return "", err
		}
		return pick(d)
	}
}

// serverURL is path on the auth server that serves d's token_endpoint.
func serverURL(d *discoveryDoc, path string) (string, error) {
	base, ok := strings.CutSuffix(d.TokenEndpoint, serverapi.PathToken)
	if !ok || checkURL(base) != nil {
		return "", fmt.Errorf("the discovery document's token_endpoint does not end in %s; set the URL explicitly", serverapi.PathToken)
	}
	return base + path, nil
}

func checkURL(s string) error {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return fmt.Errorf("%q is not an absolute http(s) URL", s)
	}
	return nil
}

// WaitForSync blocks until the issuer's keys are fetched and, with
// Revocations, the stream has delivered the full revocation state; like an
// informer's WaitForCacheSync, call it before serving. It returns the
// fetch's error when no key set can be had, or ctx's when ctx ends first.
func (v *Verifier) WaitForSync(ctx context.Context) error {
	if v.keys.cur.Load() == nil {
		if _, err := v.keys.fetch(ctx); err != nil && v.keys.cur.Load() == nil {
			return fmt.Errorf("verify: fetching the issuer's keys: %w", err)
		}
	}
	if v.subs != nil {
		select {
		case <-v.subs.synced:
		case <-ctx.Done():
			return fmt.Errorf("verify: waiting for the revocation stream: %w", ctx.Err())
		}
	}
	return nil
}

// Verify checks raw, an access token in compact JWS form, and returns its
// Identity. The checks are the auth server's (RFC 8725, RFC 9068): size,
// algorithm from the allow-list, no jku/x5u/jwk/x5c/crit, typ at+jwt, key by
// kid from the issuer's key set only, signature, iss, aud, exp/nbf/iat with
// leeway; then revocations (stream) and the server (remote mode). A refusal
// is an *Error.
func (v *Verifier) Verify(ctx context.Context, raw string) (*Identity, error) {
	id, e := v.verify(ctx, raw)
	v.metrics.result(e)
	if e != nil {
		return nil, e
	}
	return id, nil
}

func (v *Verifier) verify(ctx context.Context, raw string) (*Identity, *Error) {
	if raw == "" {
		return nil, errMissingToken
	}
	if len(raw) > token.DefaultMaxSize {
		return nil, errTooLarge // before hashing or parsing anything
	}
	now := v.clock.Now()
	key := sha256.Sum256([]byte(raw))
	if v.cache != nil {
		if e, ok := v.cache.Get(key); ok {
			if now.Before(e.until) && (e.id == nil || v.keys.has(e.id.KeyID)) {
				v.metrics.cacheHit.Inc()
				if e.err != nil {
					return nil, e.err
				}
				if err := v.revoked(e.id, now); err != nil {
					return nil, err
				}
				return e.id, nil
			}
			v.cache.Remove(key)
		}
		v.metrics.cacheMiss.Inc()
	}
	id, until, e := v.verifyFully(ctx, key, raw, now)
	if v.cache != nil && (id != nil || !until.IsZero()) {
		v.cache.Add(key, cached{id: id, err: e, until: until})
	}
	return id, e
}

// verifyFully verifies a token not in the cache; until (when not zero) is
// how long the result may be cached.
func (v *Verifier) verifyFully(ctx context.Context, key [sha256.Size]byte, raw string, now time.Time) (*Identity, time.Time, *Error) {
	h, err := token.ParseHeader(raw)
	if err != nil {
		return nil, time.Time{}, refusalFor(err)
	}
	if h.KeyID() == "" {
		return nil, time.Time{}, refusalFor(token.ErrMissingKeyID)
	}
	pub, err := v.keys.lookup(ctx, h.KeyID())
	if errors.Is(err, errNoKeys) {
		return nil, time.Time{}, unavailable("the issuer's signing keys could not be fetched yet", time.Second)
	}
	if err != nil {
		return nil, time.Time{}, refusalFor(err)
	}
	claims, err := v.tv.VerifyParsed(raw, h, pub)
	if err != nil {
		return nil, time.Time{}, refusalFor(err)
	}
	id := identityOf(claims, h.KeyID())
	if v.subs != nil {
		v.subs.remember(id)
	}
	if e := v.revoked(id, now); e != nil {
		return nil, time.Time{}, e
	}
	until := id.Expiry
	if v.remote == nil {
		return id, until, nil
	}
	until = minTime(until, now.Add(v.cacheFor))
	ans, err := v.remote.ask(ctx, string(key[:]), raw)
	var refused *Error
	switch {
	case errors.Is(err, errRemoteFailed):
		// Offline: the local verification stands, for CacheFor.
		v.metrics.offline.Inc()
		return id, until, nil
	case errors.As(err, &refused):
		return nil, time.Time{}, refused
	case err != nil:
		return nil, time.Time{}, unavailable("the request ended before the auth server answered", time.Second)
	case !ans.active:
		return nil, until, refusal(ans.code, ans.message)
	case ans.permissions != nil:
		narrowed := *id
		narrowed.Permissions = ans.permissions
		return &narrowed, until, nil
	}
	return id, until, nil
}

func (v *Verifier) revoked(id *Identity, now time.Time) *Error {
	if v.subs == nil {
		return nil
	}
	return v.subs.check(id, now)
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}
