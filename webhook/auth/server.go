package auth

import (
	"context"
	"encoding/binary"
	"encoding/hex"
	"math/rand/v2"
	"net/http"
	"net/netip"
	"path"
	"strings"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"k8s.io/utils/clock"

	"github.com/authframework/authframework/pkg/serverapi"
)

// Options configure a Server.
type Options struct {
	Clock clock.PassiveClock
	// Log is for operational messages; Audit gets one JSON line per security
	// event. Neither ever receives a token or a secret.
	Log   logr.Logger
	Audit logr.Logger
	// Headers are the identity header names /validate returns.
	Headers IdentityHeaders
	// CacheSize bounds the validation result cache; 0 disables it.
	CacheSize int
	// Registry receives the server's metrics; a new one when nil.
	Registry *prometheus.Registry
	// Revocations stores revoked token ids so every replica sees them; nil
	// refuses /revoke.
	Revocations Revocations
	// TrustedProxies are the proxies whose X-Forwarded-For and X-Real-IP
	// name the source address of a request; from any other peer the source
	// is the TCP peer. Empty: trust nobody's headers.
	TrustedProxies []netip.Prefix
	// Throttles bound what failing callers may cost; zero fields take
	// DefaultThrottles.
	Throttles Throttles
	// MaxStreams bounds the open revocation streams; DefaultMaxStreams
	// when zero.
	MaxStreams int
	// StreamHeartbeat is how often the revocation stream sends a bookmark;
	// serverapi.RevocationHeartbeatSeconds when zero.
	StreamHeartbeat time.Duration
	// TokenExchange enables and bounds token exchange of Kubernetes
	// service-account tokens; off while its Audience is empty.
	TokenExchange TokenExchange
	// TokenReview configures TokenReviewHandler.
	TokenReview TokenReviewOptions
}

// IdentityHeaders name the headers of a successful /validate.
type IdentityHeaders struct {
	UserID, Permissions, Namespace, ClientID, Roles, TokenID string
}

// canonical returns the names in canonical form (http.CanonicalHeaderKey),
// the form /validate writes them in without canonicalizing them on every
// request.
func (h IdentityHeaders) canonical() IdentityHeaders {
	c := http.CanonicalHeaderKey
	return IdentityHeaders{UserID: c(h.UserID), Permissions: c(h.Permissions), Namespace: c(h.Namespace),
		ClientID: c(h.ClientID), Roles: c(h.Roles), TokenID: c(h.TokenID)}
}

// DefaultIdentityHeaders are the names the AuthServer API defaults to.
var DefaultIdentityHeaders = IdentityHeaders{
	UserID: "X-User-ID", Permissions: "X-User-Permissions", Namespace: "X-User-Namespace",
	ClientID: "X-Client-ID", Roles: "X-User-Roles", TokenID: "X-Token-ID",
}

// Revocations persists revocations (RFC 7009) for every replica.
type Revocations interface {
	// Revoke records the RevocationKey of a token as revoked until exp, when
	// the token expires anyway, and returns once it is stored.
	Revoke(ctx context.Context, key string, exp time.Time) error
}

// Server is the auth server's http.Handler.
type Server struct {
	store   *Store
	opts    Options
	mux     *http.ServeMux
	cache   *resultCache
	limits  *clientRates
	auth    *authThrottle
	guard   *tokenGuard
	metrics *serverMetrics
	// streamSlots counts open revocation streams; snapshots bounds the
	// snapshots in flight.
	streamSlots streamSlots
	snapshots   chan struct{}
	// reviews verifies token exchange subject tokens; nil when token
	// exchange is off.
	reviews *kubeReviews
	// tokenReviews counts /tokenreview answers.
	tokenReviews *prometheus.CounterVec
	// extAuthz serves PathExtAuthz and everything under it, before the mux
	// can clean (and redirect) the original path it carries.
	extAuthz http.HandlerFunc
}

// MaxFormBytes bounds the body of OAuth2 requests.
const MaxFormBytes = 16 << 10

// NewServer builds the handler over a store.
func NewServer(store *Store, opts Options) *Server {
	if opts.Clock == nil {
		opts.Clock = clock.RealClock{}
	}
	if opts.Headers == (IdentityHeaders{}) {
		opts.Headers = DefaultIdentityHeaders
	}
	opts.Headers = opts.Headers.canonical()
	if opts.Registry == nil {
		opts.Registry = prometheus.NewRegistry()
	}
	opts.Throttles = opts.Throttles.withDefaults()
	s := &Server{store: store, opts: opts, mux: http.NewServeMux(), cache: newResultCache(opts.CacheSize),
		limits: newClientRates(opts.Throttles.Entries), auth: newAuthThrottle(opts.Throttles), guard: newTokenGuard(opts.Throttles),
		metrics: newServerMetrics(opts.Registry), tokenReviews: newTokenReviewMetrics(opts.Registry), snapshots: make(chan struct{}, maxSnapshots)}
	if opts.TokenExchange.Audience != "" {
		if opts.TokenExchange.Reviewer == nil {
			panic("auth: TokenExchange.Audience set without a Reviewer")
		}
		s.reviews = newKubeReviews(opts.TokenExchange, opts.Clock, opts.Registry, opts.Log.WithName("token-exchange"), opts.Audit)
	}
	s.mux.HandleFunc("POST "+serverapi.PathToken, s.instrument("token", s.handleToken))
	s.mux.HandleFunc(PathValidate, s.instrument(serverapi.EndpointValidate, s.validateHandler(shapeNginx)))
	s.mux.HandleFunc(PathForwardAuth, s.instrument(serverapi.EndpointValidate, s.validateHandler(shapeTraefik)))
	s.extAuthz = s.instrument(serverapi.EndpointValidate, s.validateHandler(shapeEnvoy))
	s.mux.HandleFunc("POST "+serverapi.PathRevoke, s.instrument("revoke", s.handleRevoke))
	s.mux.HandleFunc("GET "+serverapi.PathRevocations, s.instrument("revocations", s.handleRevocations))
	s.mux.HandleFunc("POST "+serverapi.PathIntrospect, s.instrument("introspect", s.handleIntrospect))
	s.mux.HandleFunc("GET "+serverapi.DiscoveryPath("{namespace}", "{policy}"), s.instrument("discovery", s.handleDiscovery))
	s.mux.HandleFunc("GET "+serverapi.JWKSPath("{namespace}", "{policy}"), s.instrument("jwks", s.handleJWKS))
	s.mux.HandleFunc("GET "+serverapi.PathHealthz, func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok")) })
	s.mux.HandleFunc("GET "+serverapi.PathReadyz, s.handleReady)
	s.mux.Handle("GET "+serverapi.PathMetrics, promhttp.HandlerFor(opts.Registry, promhttp.HandlerOpts{}))
	s.mux.HandleFunc("/", s.handleNoRoute)
	return s
}

// ServeHTTP assigns a request id (echoing a sane X-Request-ID) and routes.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	assignRequestID(w, r)
	p := r.URL.Path
	switch {
	case p == PathExtAuthz || strings.HasPrefix(p, PathExtAuthz+"/") || strings.HasPrefix(p, PathExtAuthz+";"):
		s.extAuthz(w, r)
	case strings.HasPrefix(p, PathValidate+"/"):
		s.writeAPIError(w, r, http.StatusNotFound, "not_found",
			"the Envoy shape (original path appended) is served under "+PathExtAuthz+"; "+PathValidate+" reads X-Original-URL", nil, 0)
	case p != cleanPath(p):
		// ServeMux would redirect to the cleaned path; the auth server never
		// redirects.
		s.writeAPIError(w, r, http.StatusNotFound, "not_found", "no such endpoint", nil, 0)
	default:
		s.mux.ServeHTTP(w, r)
	}
}

// postOnly are the endpoints that take POST alone.
var postOnly = map[string]bool{serverapi.PathToken: true, serverapi.PathRevoke: true, serverapi.PathIntrospect: true}

// handleNoRoute answers what no endpoint serves in the documented error
// shape: 405 with Allow for a known endpoint's wrong method, else 404.
func (s *Server) handleNoRoute(w http.ResponseWriter, r *http.Request) {
	if postOnly[r.URL.Path] {
		// The OAuth2 endpoints answer in RFC 6749's shape even here.
		w.Header().Set("Allow", http.MethodPost)
		s.writeOAuthError(w, r, http.StatusMethodNotAllowed, "invalid_request", "this endpoint takes POST")
		return
	}
	s.writeAPIError(w, r, http.StatusNotFound, "not_found", "no such endpoint", nil, 0)
}

// cleanPath is the path ServeMux would redirect to.
func cleanPath(p string) string {
	if p == "" {
		return "/"
	}
	c := path.Clean(p)
	if strings.HasSuffix(p, "/") && c != "/" {
		c += "/"
	}
	return c
}

func (s *Server) handleReady(w http.ResponseWriter, _ *http.Request) {
	if !s.store.Ready() {
		http.Error(w, "caches not synced yet", http.StatusServiceUnavailable)
		return
	}
	_, _ = w.Write([]byte("ok"))
}

func (s *Server) now() time.Time { return s.opts.Clock.Now().UTC() }

// requestIDKey is HeaderRequestID in canonical form, so reading and
// writing it on every request does not canonicalize it again.
var requestIDKey = http.CanonicalHeaderKey(HeaderRequestID)

// assignRequestID echoes a sane X-Request-ID, or generates one.
func assignRequestID(w http.ResponseWriter, r *http.Request) {
	id := requestID(r)
	if !serverapi.ValidRequestID(id) {
		id = newRequestID()
		r.Header[requestIDKey] = []string{id}
	}
	w.Header()[requestIDKey] = []string{id}
}

func requestID(r *http.Request) string {
	if v := r.Header[requestIDKey]; len(v) > 0 {
		return v[0]
	}
	return ""
}

// newRequestID is 128 random bits in hex. A request id correlates log
// lines and is no secret: the runtime's per-thread ChaCha8 generator
// (math/rand/v2) serves it without a system call per request.
func newRequestID() string {
	var b [16]byte
	binary.LittleEndian.PutUint64(b[:8], rand.Uint64())
	binary.LittleEndian.PutUint64(b[8:], rand.Uint64())
	return hex.EncodeToString(b[:])
}

// bearer extracts a bearer token (RFC 6750 §2.1; the scheme is
// case-insensitive).
func bearer(r *http.Request) (string, bool) {
	h := r.Header.Get("Authorization")
	scheme, tok, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	tok = strings.TrimSpace(tok)
	return tok, tok != ""
}
