// Package authclient gets access tokens from an authframework auth server
// for a workload in Kubernetes, and keeps them fresh. It has three sources,
// one for each way a pod can hold its identity:
//
//   - ClientCredentials: the OAuth2 client credentials grant (RFC 6749 §4.4)
//     with the client_id and client_secret files of the ServiceAccount's
//     mounted credentials Secret (<account>-credentials). The files are read
//     for every token request, from one snapshot of kubelet's atomic
//     `..data` directory, so a rotated secret is used as soon as kubelet has
//     written it, without a restart, watch or inotify; an `invalid_client`
//     answer re-reads them at once.
//   - TokenFile: the access token the operator keeps in the account's token
//     Secret (spec.tokenSecret, data key "token"), re-read as the operator
//     re-mints it.
//   - TokenExchange: the pod's projected Kubernetes service-account token,
//     exchanged for the access token of the ServiceAccount that lists it
//     (RFC 8693), re-read as kubelet refreshes it.
//
// Each is a *Source: an oauth2.TokenSource that caches the token, refreshes
// it ahead of expiry (at 80% of its lifetime) with one request shared by
// concurrent callers, keeps serving the cached token while a refresh fails
// and the token is still valid, and retries failed requests with
// exponential backoff and jitter on network errors, timeouts, 5xx and 429
// (waiting as long as Retry-After says). Source.Client and Transport add
// the token to outgoing requests and retry a request once with a fresh
// token when the service answers 401.
//
// The sources wrap golang.org/x/oauth2/clientcredentials for the requests
// and errors (*oauth2.RetrieveError) and add what oauth2.ReuseTokenSource
// lacks: an injectable clock, a refresh that does not throw away a token
// that is still valid when the server is briefly unreachable, retries, and
// credentials that change under a running process.
package authclient

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"

	"github.com/go-logr/logr"
	"golang.org/x/oauth2"
	"k8s.io/utils/clock"
)

// Options configure a Source. Zero fields take the defaults named.
type Options struct {
	// Scopes asked for (the `scope` parameter, RFC 6749 §3.3): a subset of
	// the account's permissions. Empty: all of them.
	Scopes []string
	// Audience asked for (the `audience` parameter, RFC 8693 §2.1): one of
	// the TokenPolicy's audiences. Empty: the policy's first.
	Audience string
	// HTTPClient sends the token requests. Default: a client on
	// http.DefaultTransport. Its Timeout, if any, applies on top of
	// AttemptTimeout.
	HTTPClient *http.Client
	// AttemptTimeout bounds one token request. Default 10 s.
	AttemptTimeout time.Duration
	// Retry says how failed token requests are retried.
	Retry Retry
	// Clock decides refreshes and waits between retries. Default the real
	// clock; tests pass a k8s.io/utils/clock/testing fake clock.
	Clock clock.Clock
	// Log receives a line when a refresh fails while the cached token is
	// still used, and when a retry waits. Never a token or secret.
	// Default: discard.
	Log logr.Logger
}

// Retry is the backoff of one token refresh: the n-th wait (n from 0) is
// Initial·2ⁿ, capped at Max, plus up to Jitter of itself at random, unless
// the answer carried Retry-After, which is waited exactly. An answer asking
// to wait longer than Max is not retried.
type Retry struct {
	// Attempts is the most requests one refresh sends; 1 disables retries.
	// Default 5.
	Attempts int
	// Initial wait. Default 250 ms.
	Initial time.Duration
	// Max wait. Default 30 s.
	Max time.Duration
	// Jitter fraction in [0, 1]. Default 0.2.
	Jitter float64
}

const (
	defaultAttemptTimeout = 10 * time.Second
	// refreshFraction of a token's lifetime is when it is refreshed, as
	// kubelet refreshes projected service-account tokens.
	refreshFraction = 0.8
	// expiryMargin is how long before exp a cached token stops being
	// used, so it does not expire in flight (oauth2's expiryDelta).
	expiryMargin = 10 * time.Second
	// recheckUnknown is how long a token whose lifetime is unknown is used
	// before it is fetched or read again.
	recheckUnknown = time.Minute
)

func (o *Options) defaults() {
	if o.HTTPClient == nil {
		o.HTTPClient = &http.Client{}
	}
	if o.AttemptTimeout <= 0 {
		o.AttemptTimeout = defaultAttemptTimeout
	}
	if o.Retry.Attempts <= 0 {
		o.Retry.Attempts = 5
	}
	if o.Retry.Initial <= 0 {
		o.Retry.Initial = 250 * time.Millisecond
	}
	if o.Retry.Max <= 0 {
		o.Retry.Max = 30 * time.Second
	}
	if o.Retry.Jitter <= 0 || o.Retry.Jitter > 1 {
		o.Retry.Jitter = 0.2
	}
	if o.Clock == nil {
		o.Clock = clock.RealClock{}
	}
}

// Source is a cached, self-refreshing token source; see the package
// documentation. It is safe for concurrent use.
type Source struct {
	opts Options
	// fetch gets a new token; its Expiry is on opts.Clock. attempts is how
	// many requests it may send.
	fetch func(ctx context.Context, attempts int) (*oauth2.Token, error)
	// schedule says when a token obtained at got is refreshed and until
	// when it may be used.
	schedule func(got time.Time, tok *oauth2.Token) (refreshAt, until time.Time)

	mu        sync.Mutex
	tok       *oauth2.Token
	refreshAt time.Time
	until     time.Time
	failures  int
	inflight  *call
}

// call is one refresh in flight; waiters read tok and err after done.
type call struct {
	done chan struct{}
	tok  *oauth2.Token
	err  error
}

// Token returns a valid token, fetching one if needed; it implements
// oauth2.TokenSource. It is TokenContext with context.Background().
func (s *Source) Token() (*oauth2.Token, error) { return s.TokenContext(context.Background()) }

// TokenContext returns the cached token while it is fresh. Past 80% of
// its lifetime it refreshes: the first caller waits for one request (the
// others meanwhile get the cached token), and if that fails the cached
// token is returned while it is valid, and refreshing is tried again after
// a backoff. Without a valid token, callers wait for one refresh with its
// retries (shared by all of them); ctx ends only the caller's wait.
// Errors: those of the last request, often an *oauth2.RetrieveError
// (errors.As) carrying the server's RFC 6749 §5.2 code.
func (s *Source) TokenContext(ctx context.Context) (*oauth2.Token, error) {
	return s.get(ctx, nil)
}

// Refresh returns a token other than stale: after a service refused stale
// (401), a new one is fetched, unless another caller has already replaced
// it. Errors as TokenContext's.
func (s *Source) Refresh(ctx context.Context, stale *oauth2.Token) (*oauth2.Token, error) {
	return s.get(ctx, stale)
}

// Client is an *http.Client whose requests carry the token: see Transport.
func (s *Source) Client() *http.Client { return &http.Client{Transport: &Transport{Source: s}} }

func (s *Source) get(ctx context.Context, stale *oauth2.Token) (*oauth2.Token, error) {
	s.mu.Lock()
	if stale != nil && s.tok != nil && s.tok.AccessToken == stale.AccessToken {
		s.tok = nil // refused by a service: never hand it out again
	}
	now := s.opts.Clock.Now()
	tok, usable := s.tok, s.tok != nil && now.Before(s.until)
	if usable && now.Before(s.refreshAt) {
		s.mu.Unlock()
		return tok, nil
	}
	c := s.inflight
	if c != nil && usable {
		s.mu.Unlock()
		return tok, nil // someone is refreshing; the token is still good
	}
	if c == nil {
		c = &call{done: make(chan struct{})}
		s.inflight = c
		attempts := s.opts.Retry.Attempts
		if usable {
			// Ahead of expiry one request is enough: the cached token
			// carries on if it fails, and the next caller tries again.
			attempts = 1
		}
		// The refresh outlives a caller that gives up: others may wait
		// for it too.
		go s.refresh(context.WithoutCancel(ctx), c, attempts)
	}
	s.mu.Unlock()
	select {
	case <-c.done:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	if c.err != nil {
		s.mu.Lock()
		tok, usable = s.tok, s.tok != nil && s.opts.Clock.Now().Before(s.until)
		s.mu.Unlock()
		if usable {
			return tok, nil
		}
		return nil, c.err
	}
	return c.tok, nil
}

func (s *Source) refresh(ctx context.Context, c *call, attempts int) {
	got := s.opts.Clock.Now()
	tok, err := s.fetch(ctx, attempts)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.inflight = nil
	c.tok, c.err = tok, err
	defer close(c.done)
	if err != nil {
		s.failures++
		if s.tok != nil {
			// Try again after a backoff, never past the token's use.
			next := s.opts.Clock.Now().Add(s.opts.Retry.delay(s.failures - 1))
			s.refreshAt = minTime(next, s.until)
			s.opts.Log.Info("token refresh failed; using the cached token", "error", err.Error(), "validUntil", s.until, "nextAttempt", s.refreshAt)
		}
		return
	}
	s.failures = 0
	s.tok = tok
	s.refreshAt, s.until = s.schedule(got, tok)
}

// refreshSchedule is when a token obtained at got and expiring at
// tok.Expiry is refreshed (at refreshFraction of its lifetime) and until
// when it is used (expiryMargin, or a tenth of a short lifetime, before it
// expires). A token without an expiry is used for recheckUnknown.
func refreshSchedule(got time.Time, tok *oauth2.Token) (refreshAt, until time.Time) {
	if tok.Expiry.IsZero() {
		return got.Add(recheckUnknown), got.Add(recheckUnknown)
	}
	life := tok.Expiry.Sub(got)
	if life <= 0 {
		return got, got
	}
	until = tok.Expiry.Add(-min(expiryMargin, life/10))
	refreshAt = got.Add(time.Duration(float64(life) * refreshFraction))
	return minTime(refreshAt, until), until
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

// Transport is an http.RoundTripper that sends each request with the
// Source's token (Authorization: Bearer, RFC 6750 §2.1) and, when the
// answer is 401, fetches a token other than the one refused and sends the
// request once more, if its body can be sent again (http.NewRequest sets
// GetBody for in-memory bodies). A second 401 is returned as it is.
type Transport struct {
	Source *Source
	// Base sends the requests; default http.DefaultTransport.
	Base http.RoundTripper
}

// RoundTrip implements http.RoundTripper. It does not modify req.
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	base := t.Base
	if base == nil {
		base = http.DefaultTransport
	}
	tok, err := t.Source.TokenContext(req.Context())
	if err != nil {
		closeBody(req)
		return nil, fmt.Errorf("authclient: getting a token: %w", err)
	}
	replayable := req.Body == nil || req.Body == http.NoBody || req.GetBody != nil
	resp, err := base.RoundTrip(withToken(req, tok, req.Body))
	if err != nil || resp.StatusCode != http.StatusUnauthorized || !replayable {
		return resp, err
	}
	fresh, err := t.Source.Refresh(req.Context(), tok)
	if err != nil || fresh.AccessToken == tok.AccessToken {
		return resp, nil // no other token to try; the service's answer stands
	}
	body := req.Body
	if req.GetBody != nil {
		if body, err = req.GetBody(); err != nil {
			return resp, nil
		}
	}
	resp.Body.Close()
	return base.RoundTrip(withToken(req, fresh, body))
}

// withToken is a copy of req with body and tok's Authorization header.
func withToken(req *http.Request, tok *oauth2.Token, body io.ReadCloser) *http.Request {
	r := req.Clone(req.Context())
	r.Body = body
	tok.SetAuthHeader(r)
	return r
}

func closeBody(req *http.Request) {
	if req.Body != nil {
		req.Body.Close()
	}
}
