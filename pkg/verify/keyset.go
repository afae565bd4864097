package verify

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-logr/logr"
	"golang.org/x/sync/singleflight"
	"k8s.io/utils/clock"

	"github.com/authframework/authframework/internal/keys"
	"github.com/authframework/authframework/internal/token"
)

// Bounds on how long a fetched key set is used before it is fetched again.
const (
	// DefaultKeySetLifetime applies when the JWKS response has no Cache-Control
	// max-age and no Expires.
	DefaultKeySetLifetime = 5 * time.Minute
	// MaxKeySetLifetime caps what the headers may ask for.
	MaxKeySetLifetime = 24 * time.Hour
	// maxDocumentSize bounds a discovery document or key set, in bytes.
	maxDocumentSize = 1 << 20
)

// CacheLifetime is how long a response may be used, from its headers as a
// private cache reads them (RFC 9111 §4.2.1): `no-store` or `no-cache` is
// zero; else `max-age`; else Expires minus Date (or minus now without a
// Date). ok is false when the headers say nothing. The result is within
// [0, MaxKeySetLifetime].
func CacheLifetime(h http.Header, now time.Time) (d time.Duration, ok bool) {
	for _, directive := range strings.Split(h.Get("Cache-Control"), ",") {
		name, value, _ := strings.Cut(strings.TrimSpace(directive), "=")
		switch strings.ToLower(name) {
		case "no-store", "no-cache":
			return 0, true
		case "max-age":
			secs, err := strconv.ParseInt(strings.Trim(value, `"`), 10, 64)
			if err != nil || secs < 0 {
				return 0, true // RFC 9111 §4.2.1: an invalid max-age is stale
			}
			return min(time.Duration(min(secs, int64(MaxKeySetLifetime/time.Second)))*time.Second, MaxKeySetLifetime), true
		}
	}
	if e := h.Get("Expires"); e != "" {
		exp, err := http.ParseTime(e)
		if err != nil {
			return 0, true // RFC 9111 §5.3: an invalid Expires is in the past
		}
		base := now
		if d, err := http.ParseTime(h.Get("Date")); err == nil {
			base = d
		}
		return min(max(exp.Sub(base), 0), MaxKeySetLifetime), true
	}
	return 0, false
}

// keySnapshot is one fetched key set.
type keySnapshot struct {
	keys map[string]token.PublicKey
	// refreshAt is when a refresh starts ahead of expiry (3/4 of the
	// lifetime); expires when the headers say the set is stale. A stale set
	// is still used while no fresh one can be fetched.
	refreshAt, expires time.Time
}

// keySet is an issuer's published keys, fetched through OIDC discovery and
// cached as the JWKS response's headers say. Every fetch, whatever asked for
// it, is one shared flight, and no two start less than minInterval apart:
// tokens with made-up kids cannot make it fetch more often than that.
type keySet struct {
	issuer      string
	jwksURL     string // fixed by Options.JWKSURL, else discovered
	algorithms  []jose.SignatureAlgorithm
	client      *http.Client
	clock       clock.PassiveClock
	minInterval time.Duration
	log         logr.Logger
	metrics     *metrics

	cur    atomic.Pointer[keySnapshot]
	flight singleflight.Group
	// refreshing is set while a background refresh runs; inFlight while
	// any fetch does.
	refreshing, inFlight atomic.Bool

	mu          sync.Mutex
	lastAttempt time.Time
	discovered  *discoveryDoc
}

// discoveryDoc is what is read of the OIDC discovery document (OpenID
// Connect Discovery 1.0 §3, RFC 8414 §2).
type discoveryDoc struct {
	Issuer                string `json:"issuer"`
	JWKSURI               string `json:"jwks_uri"`
	TokenEndpoint         string `json:"token_endpoint"`
	IntrospectionEndpoint string `json:"introspection_endpoint"`
}

var errTooSoon = errors.New("the key set was fetched less than the refresh interval ago")

// lookup returns the key with kid. An unknown kid refreshes the set when no
// fetch happened within minInterval; a set due for refresh is refreshed in
// the background while the current one serves. errNoKeys: no key set could
// be fetched yet.
func (ks *keySet) lookup(ctx context.Context, kid string) (token.PublicKey, error) {
	snap := ks.cur.Load()
	if snap == nil {
		_, _ = ks.fetch(ctx)
		// Another caller's fetch may have ended while this one was too soon.
		if snap = ks.cur.Load(); snap == nil {
			return token.PublicKey{}, errNoKeys
		}
	}
	if !ks.clock.Now().Before(snap.refreshAt) {
		ks.refreshInBackground()
	}
	if k, ok := snap.keys[kid]; ok {
		return k, nil
	}
	if _, err := ks.fetch(ctx); err != nil {
		ks.metrics.unknownKid(err)
	}
	// Read again even when this caller's fetch was too soon: another
	// caller's may just have ended.
	if k, ok := ks.cur.Load().keys[kid]; ok {
		return k, nil
	}
	return token.PublicKey{}, token.ErrUnknownKey
}

// has reports whether kid is in the current set (cached results are only
// used while their key is).
func (ks *keySet) has(kid string) bool {
	snap := ks.cur.Load()
	if snap == nil {
		return false
	}
	_, ok := snap.keys[kid]
	return ok
}

var errNoKeys = errors.New("no key set could be fetched from the issuer yet")

// due reports whether minInterval has passed since the last fetch began.
func (ks *keySet) due() bool {
	ks.mu.Lock()
	defer ks.mu.Unlock()
	return ks.lastAttempt.IsZero() || ks.clock.Since(ks.lastAttempt) >= ks.minInterval
}

func (ks *keySet) refreshInBackground() {
	if !ks.due() || !ks.refreshing.CompareAndSwap(false, true) {
		return
	}
	go func() {
		defer ks.refreshing.Store(false)
		_, _ = ks.fetch(context.Background())
	}()
}

// fetch fetches the key set once for all concurrent callers, unless the
// last attempt was less than minInterval ago (errTooSoon).
func (ks *keySet) fetch(ctx context.Context) (*keySnapshot, error) {
	// Cheap refusal first, so a flood of unknown kids costs no goroutine;
	// a fetch in flight is joined whatever the time.
	if !ks.inFlight.Load() && !ks.due() {
		return nil, errTooSoon
	}
	ch := ks.flight.DoChan("jwks", func() (any, error) {
		ks.inFlight.Store(true)
		defer ks.inFlight.Store(false)
		ks.mu.Lock()
		now := ks.clock.Now()
		if !ks.lastAttempt.IsZero() && now.Sub(ks.lastAttempt) < ks.minInterval {
			ks.mu.Unlock()
			return nil, errTooSoon
		}
		ks.lastAttempt = now
		ks.mu.Unlock()
		// The flight is shared: one caller's cancellation must not fail
		// the others. The client's Timeout bounds it.
		snap, err := ks.fetchNow(context.WithoutCancel(ctx))
		ks.metrics.jwksFetch(err)
		if err != nil {
			ks.log.Error(err, "fetching the issuer's key set; using the keys fetched before", "issuer", ks.issuer)
			return nil, err
		}
		ks.cur.Store(snap)
		return snap, nil
	})
	select {
	case res := <-ch:
		if res.Err != nil {
			return nil, res.Err
		}
		return res.Val.(*keySnapshot), nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (ks *keySet) fetchNow(ctx context.Context) (*keySnapshot, error) {
	jwksURL := ks.jwksURL
	if jwksURL == "" {
		d, err := ks.discover(ctx)
		if err != nil {
			return nil, err
		}
		jwksURL = d.JWKSURI
	}
	var set jose.JSONWebKeySet
	hdr, err := getJSON(ctx, ks.client, jwksURL, &set)
	if err != nil {
		ks.forgetDiscovery() // the document may have moved the keys
		return nil, fmt.Errorf("key set: %w", err)
	}
	now := ks.clock.Now()
	life, ok := CacheLifetime(hdr, now)
	if !ok {
		life = DefaultKeySetLifetime
	}
	snap := &keySnapshot{keys: ks.usable(set), refreshAt: now.Add(life * 3 / 4), expires: now.Add(life)}
	if len(snap.keys) == 0 {
		return nil, errors.New("key set: no usable signing key")
	}
	return snap, nil
}

// usable keeps the keys a token may be verified with: public signing keys
// with a kid and an allowed algorithm that fits the key's type (RFC 8725
// §3.1: the algorithm is bound to the key, never taken from the token).
func (ks *keySet) usable(set jose.JSONWebKeySet) map[string]token.PublicKey {
	out := make(map[string]token.PublicKey, len(set.Keys))
	for _, k := range set.Keys {
		alg := jose.SignatureAlgorithm(k.Algorithm)
		if k.KeyID == "" || (k.Use != "" && k.Use != "sig") || !k.IsPublic() || !slices.Contains(ks.algorithms, alg) {
			continue
		}
		if keys.CheckType(alg, k.Key) != nil {
			continue
		}
		out[k.KeyID] = token.PublicKey{Algorithm: alg, Key: k.Key}
	}
	return out
}

// discover reads the issuer's discovery document once and checks that it
// names the issuer it was fetched for (OpenID Connect Discovery 1.0 §4.3).
func (ks *keySet) discover(ctx context.Context) (*discoveryDoc, error) {
	ks.mu.Lock()
	d := ks.discovered
	ks.mu.Unlock()
	if d != nil {
		return d, nil
	}
	d = new(discoveryDoc)
	if _, err := getJSON(ctx, ks.client, strings.TrimSuffix(ks.issuer, "/")+"/.well-known/openid-configuration", d); err != nil {
		return nil, fmt.Errorf("discovery: %w", err)
	}
	if d.Issuer != ks.issuer {
		return nil, fmt.Errorf("discovery: the document names issuer %q, not %q", d.Issuer, ks.issuer)
	}
	if u, err := url.Parse(d.JWKSURI); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return nil, errors.New("discovery: jwks_uri is not an absolute http(s) URL")
	}
	ks.mu.Lock()
	ks.discovered = d
	ks.mu.Unlock()
	return d, nil
}

func (ks *keySet) forgetDiscovery() {
	ks.mu.Lock()
	ks.discovered = nil
	ks.mu.Unlock()
}

// getJSON GETs url and decodes its JSON body (at most maxDocumentSize).
func getJSON(ctx context.Context, c *http.Client, u string, into any) (http.Header, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := c.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxDocumentSize))
		return nil, fmt.Errorf("GET %s: %s", u, resp.Status)
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxDocumentSize)).Decode(into); err != nil {
		return nil, fmt.Errorf("GET %s: %w", u, err)
	}
	return resp.Header, nil
}
