package auth

import (
	"crypto/sha256"
	"fmt"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
	"golang.org/x/time/rate"

	"github.com/authframework/authframework/internal/token"
)

// Budget is how many events one key may cause: N at once, refilled at N per
// Per (a token bucket of burst N and rate N/Per). Written "N/duration", as
// "5/5m".
type Budget struct {
	N   int
	Per time.Duration
}

// ParseBudget reads "N/duration" with N >= 1 and a positive duration.
func ParseBudget(v string) (Budget, error) {
	n, per, ok := strings.Cut(v, "/")
	b := Budget{}
	var err error
	if ok {
		b.N, err = strconv.Atoi(n)
		if err == nil {
			b.Per, err = time.ParseDuration(per)
		}
	}
	if !ok || err != nil || b.N < 1 || b.Per <= 0 {
		return Budget{}, fmt.Errorf("budget %q must be N/duration with N >= 1, such as 5/5m", v)
	}
	return b, nil
}

func (b Budget) String() string { return strconv.Itoa(b.N) + "/" + b.Per.String() }

// Set parses v into b, so a *Budget is a flag.Value.
func (b *Budget) Set(v string) error {
	p, err := ParseBudget(v)
	if err == nil {
		*b = p
	}
	return err
}

func (b Budget) limiter() *rate.Limiter {
	return rate.NewLimiter(rate.Limit(float64(b.N)/b.Per.Seconds()), b.N)
}

// Throttles bound what failing callers may cost. Each replica keeps its own
// counters: behind a Service that spreads requests over N replicas a caller
// gets up to N times each budget.
type Throttles struct {
	// FailedAuthPerSource is the failed client authentications (wrong secret
	// or unknown client id) one source address may make at the OAuth2
	// endpoints before its further failures are answered 429.
	FailedAuthPerSource Budget
	// FailedAuthPerClientSource is the same for one client id from one
	// source address.
	FailedAuthPerClientSource Budget
	// FailedTokensPerSource is the tokens from one source address that
	// /validate may refuse after checking them (malformed, unknown key, bad
	// signature, expired, ...) before it stops checking that source's new
	// tokens.
	FailedTokensPerSource Budget
	// Entries bounds each table of counters (least recently used entries are
	// dropped) and the cache of refused token hashes.
	Entries int
}

// DefaultThrottles are the server's defaults (see docs/auth-server.md).
var DefaultThrottles = Throttles{
	FailedAuthPerSource:       Budget{N: 100, Per: time.Minute},
	FailedAuthPerClientSource: Budget{N: 5, Per: 5 * time.Minute},
	FailedTokensPerSource:     Budget{N: 20, Per: time.Second},
	Entries:                   65536,
}

func (t Throttles) withDefaults() Throttles {
	d := DefaultThrottles
	if t.FailedAuthPerSource.N == 0 {
		t.FailedAuthPerSource = d.FailedAuthPerSource
	}
	if t.FailedAuthPerClientSource.N == 0 {
		t.FailedAuthPerClientSource = d.FailedAuthPerClientSource
	}
	if t.FailedTokensPerSource.N == 0 {
		t.FailedTokensPerSource = d.FailedTokensPerSource
	}
	if t.Entries <= 0 {
		t.Entries = d.Entries
	}
	return t
}

// refusedTokenTTL is how long a refused token's hash is remembered.
const refusedTokenTTL = time.Minute

// buckets is a bounded table of token buckets, created on first use. Losing
// an entry to eviction gives its key a fresh budget; an attacker who wants
// that must keep Entries other keys busy, each within its own budget.
type buckets[K comparable] struct {
	budget Budget
	lru    *lru.Cache[K, *rate.Limiter]
}

func newBuckets[K comparable](b Budget, size int) *buckets[K] {
	c, _ := lru.New[K, *rate.Limiter](max(size, 1))
	return &buckets[K]{budget: b, lru: c}
}

func (b *buckets[K]) get(k K) *rate.Limiter {
	if l, ok := b.lru.Get(k); ok {
		return l
	}
	l := b.budget.limiter()
	if prev, found, _ := b.lru.PeekOrAdd(k, l); found {
		return prev
	}
	return l
}

// exhausted reports whether k has no token left at now, and how long until
// it has one. A key never seen is not exhausted and is not added.
func (b *buckets[K]) exhausted(k K, now time.Time) (time.Duration, bool) {
	l, ok := b.lru.Get(k)
	if !ok {
		return 0, false
	}
	tokens := l.TokensAt(now)
	if tokens >= 1 {
		return 0, false
	}
	return time.Duration((1 - tokens) / float64(l.Limit()) * float64(time.Second)), true
}

func (b *buckets[K]) Len() int { return b.lru.Len() }

// clientRates is the per-client token bucket of the policy
// (tokenEndpoint.requestsPerSecond/burst), taken only by requests whose
// client authentication succeeded.
type clientRates struct {
	lru *lru.Cache[string, *rate.Limiter]
}

func newClientRates(size int) *clientRates {
	c, _ := lru.New[string, *rate.Limiter](max(size, 1))
	return &clientRates{lru: c}
}

// allow takes a token from the client's bucket, or says how long to wait.
func (c *clientRates) allow(clientID string, p *Policy, now time.Time) (bool, time.Duration) {
	limit, burst := rate.Limit(p.RequestsPerSecond), max(p.Burst, 1)
	l, ok := c.lru.Get(clientID)
	if !ok {
		l = rate.NewLimiter(limit, burst)
		if prev, found, _ := c.lru.PeekOrAdd(clientID, l); found {
			l = prev
		}
	}
	if l.Limit() != limit || l.Burst() != burst {
		l.SetLimitAt(now, limit)
		l.SetBurstAt(now, burst)
	}
	r := l.ReserveN(now, 1)
	if d := r.DelayFrom(now); d > 0 || !r.OK() {
		r.CancelAt(now)
		return false, d
	}
	return true, 0
}

// authThrottle counts failed client authentications per source and per
// (client id, source). Known and unknown client ids are counted alike.
type authThrottle struct {
	perSource *buckets[netip.Prefix]
	perPair   *buckets[[32]byte]
	// exchanges counts refused token exchanges per source, in a table of
	// its own: failed client secrets never spend a pod's exchange budget.
	exchanges *buckets[netip.Prefix]
}

func newAuthThrottle(t Throttles) *authThrottle {
	return &authThrottle{perSource: newBuckets[netip.Prefix](t.FailedAuthPerSource, t.Entries),
		perPair:   newBuckets[[32]byte](t.FailedAuthPerClientSource, t.Entries),
		exchanges: newBuckets[netip.Prefix](t.FailedAuthPerSource, t.Entries)}
}

// failed records a failed authentication of clientID from src. When the
// source or the pair has no budget left the attempt is not counted and
// throttled is true, with how long to wait.
func (a *authThrottle) failed(clientID string, src netip.Prefix, now time.Time) (time.Duration, bool) {
	pair := sha256.Sum256([]byte(src.String() + "\x00" + clientID))
	r1 := a.perSource.get(src).ReserveN(now, 1)
	r2 := a.perPair.get(pair).ReserveN(now, 1)
	if d := max(r1.DelayFrom(now), r2.DelayFrom(now)); d > 0 {
		r1.CancelAt(now)
		r2.CancelAt(now)
		return d, true
	}
	return 0, false
}

// exchangeRefused counts a token exchange whose subject token the
// Kubernetes API refused, against the source's budget (the size of
// FailedAuthPerSource, in a table of its own).
func (a *authThrottle) exchangeRefused(src netip.Prefix, now time.Time) {
	a.exchanges.get(src).ReserveN(now, 1)
}

// exchangeThrottled reports whether src has spent its failed-auth budget,
// and how long until it has one again: its next exchange is refused without
// asking the Kubernetes API.
func (a *authThrottle) exchangeThrottled(src netip.Prefix, now time.Time) (time.Duration, bool) {
	return a.exchanges.exhausted(src, now)
}

// tokenGuard keeps /validate's per-source budget of refused tokens and a
// small cache of recently refused token hashes.
type tokenGuard struct {
	perSource *buckets[netip.Prefix]
	refused   *lru.Cache[[32]byte, refusedToken]
	// announced is when a throttled source was last audited, so a flood
	// writes one line a minute, not one per request.
	announced *lru.Cache[netip.Prefix, time.Time]
}

type refusedToken struct {
	ref     refusal
	version uint64
	expires time.Time
}

func newTokenGuard(t Throttles) *tokenGuard {
	c, _ := lru.New[[32]byte, refusedToken](max(t.Entries, 1))
	a, _ := lru.New[netip.Prefix, time.Time](max(t.Entries, 1))
	return &tokenGuard{perSource: newBuckets[netip.Prefix](t.FailedTokensPerSource, t.Entries), refused: c, announced: a}
}

// source is where r comes from, by the configured trusted proxies.
func (s *Server) source(r *http.Request) netip.Prefix {
	return sourceKey(sourceAddress(r.RemoteAddr, r.Header, s.opts.TrustedProxies))
}

// verifyFrom is verify guarded against floods of bad tokens. A token the
// result cache holds is never refused here. A token refused within the last
// minute at the same store version gets the same refusal without a
// signature check. A source whose refused tokens exceed its budget gets its
// new tokens refused unchecked (401, Retry-After) until the budget refills;
// then handled is true and the response is written.
func (s *Server) verifyFrom(w http.ResponseWriter, r *http.Request, raw string) (claims *token.Claims, p *Policy, ref *refusal, handled bool) {
	now := s.now()
	version := s.store.Version()
	e, key, hit := s.cache.get(raw, now)
	if hit && s.store.current(e.policy, e.claims, e.generation) {
		s.metrics.cacheHits.Inc()
		return e.claims, e.policy, nil, false
	}
	g := s.guard
	if e, ok := g.refused.Get(key); ok && e.version == version && now.Before(e.expires) {
		return nil, nil, &e.ref, false
	}
	src := s.source(r)
	// Without trusted proxies the topology is unknown: the peer may be a
	// proxy that every client shares, and refusing its new tokens unchecked
	// would let one client deny the others. Refused tokens still count, so
	// the guard engages as soon as proxies are configured.
	guarded := len(s.opts.TrustedProxies) > 0
	if wait, throttled := g.perSource.exhausted(src, now); guarded && throttled {
		if last, ok := g.announced.Get(src); !ok || now.Sub(last) >= time.Minute {
			g.announced.Add(src, now)
			s.opts.Audit.Info("source throttled", "event", "source_throttled", "endpoint", "validate", "source", src.String(),
				"budget", g.perSource.budget.String(), "requestID", requestID(r))
		}
		msg := "too many invalid tokens from this address; this token was not checked"
		w.Header().Set("WWW-Authenticate", `Bearer realm="authframework", error="invalid_token", error_description="`+msg+`"`)
		s.writeAPIError(w, r, http.StatusUnauthorized, "too_many_invalid_tokens", msg, nil, max(wait, time.Second))
		return nil, nil, nil, true
	}
	claims, p, ref = s.verifyMiss(raw, key)
	if ref != nil {
		if ref.code != "token_not_yet_valid" { // the one refusal time can undo
			g.refused.Add(key, refusedToken{ref: *ref, version: version, expires: now.Add(refusedTokenTTL)})
		}
		g.perSource.get(src).ReserveN(now, 1)
	}
	return claims, p, ref, false
}
