package verify

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	"golang.org/x/oauth2"
	"k8s.io/utils/clock"

	"github.com/authframework/authframework/internal/revstream"
	"github.com/authframework/authframework/pkg/serverapi"
)

// StalePolicy says what a verifier does once the revocation stream has been
// silent for longer than RevocationOptions.MaxStaleness.
type StalePolicy int

const (
	// KeepValidating goes on verifying with the revocations last received
	// (fail-open); each such verification is counted in MetricStale and the
	// change is logged. The default: it is what the auth server itself does
	// when the Kubernetes API is unreachable.
	KeepValidating StalePolicy = iota
	// Refuse answers 503 temporarily_unavailable (fail-closed) until the
	// stream is back.
	Refuse
)

func (p StalePolicy) String() string {
	if p == Refuse {
		return "refuse"
	}
	return "keep_validating"
}

// RevocationOptions subscribe the verifier to the auth server's revocation
// stream (serverapi.PathRevocations): revoked tokens, disabled, deleted or
// revoked-before accounts and revoked signing keys are refused within about
// a second of their revocation, with no call per request. The stream is
// resumed from its last cursor after a disconnect, with exponential backoff
// and jitter between attempts.
type RevocationOptions struct {
	// URL of the stream. Empty: the discovery document's token_endpoint
	// with the path replaced by serverapi.PathRevocations.
	URL string
	// TokenSource or Token gives the bearer token the stream is opened
	// with: a valid access token of the same issuer (the stream covers its
	// policy). One of them is required; it is asked again on every
	// connection, and the server ends the stream when the token expires.
	TokenSource oauth2.TokenSource
	Token       func(ctx context.Context) (string, error)
	// MaxStaleness is how long the stream may be silent (the server sends a
	// bookmark at least every serverapi.RevocationHeartbeatSeconds) before
	// OnStale applies; default 1 minute. Before the first full state
	// arrives, staleness counts from the start.
	MaxStaleness time.Duration
	// OnStale: KeepValidating (default, fail-open) or Refuse (fail-closed).
	OnStale StalePolicy
	// MinBackoff and MaxBackoff bound the wait between connection
	// attempts; defaults 250 ms and 30 s. Each failed attempt doubles it;
	// half of it is random (jitter).
	MinBackoff, MaxBackoff time.Duration
	// IdleTimeout ends a connection that delivered nothing for that long;
	// default three heartbeats (30 s).
	IdleTimeout time.Duration
}

// backoff is the wait before reconnect attempt n (0-based): min·2ⁿ capped
// at max, half of it fixed and half scaled by r in [0, 1) ("equal jitter"),
// so that clients cut off together do not come back together.
func backoff(n int, lo, hi time.Duration, r float64) time.Duration {
	d := hi
	if n < 32 && lo<<n > 0 && lo<<n < hi {
		d = lo << n
	}
	return d/2 + time.Duration(r*float64(d/2))
}

// subscriber follows the revocation stream and answers, for each verified
// token, whether the revocations refuse it.
type subscriber struct {
	opts    RevocationOptions
	url     func(ctx context.Context) (string, error)
	issuer  string
	client  *http.Client
	clock   clock.Clock
	leeway  time.Duration
	log     logr.Logger
	metrics *metrics

	mu sync.RWMutex
	st *streamState

	started    time.Time
	lastHeard  atomic.Int64 // UnixNano of the last event after the first sync
	everSynced atomic.Bool
	synced     chan struct{}
	syncOnce   sync.Once
	stale      atomic.Bool
}

// check refuses a verified token the revocations refuse, and any token
// under Refuse while the stream is stale.
func (s *subscriber) check(id *Identity, now time.Time) *Error {
	if err := s.checkStale(now); err != nil {
		return err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	key := id.revocationKey
	if id.revocationPolicy != s.st.policy {
		key = revocationKey(s.st.policy, id.TokenID)
	}
	return s.st.current.refuse(id, key)
}

// remember stores id's revocation key in it, before id is shared, so that
// cached tokens are matched without hashing again.
func (s *subscriber) remember(id *Identity) {
	s.mu.RLock()
	policy := s.st.policy
	s.mu.RUnlock()
	id.revocationPolicy, id.revocationKey = policy, revocationKey(policy, id.TokenID)
}

// heardAt is when the stream last spoke after its first full state, or
// the start while it has not delivered one.
func (s *subscriber) heardAt() time.Time {
	if s.everSynced.Load() {
		return time.Unix(0, s.lastHeard.Load())
	}
	return s.started
}

func (s *subscriber) isStale(now time.Time) bool { return now.Sub(s.heardAt()) > s.opts.MaxStaleness }

func (s *subscriber) checkStale(now time.Time) *Error {
	since := s.heardAt()
	if now.Sub(since) <= s.opts.MaxStaleness {
		if s.stale.Load() && s.stale.CompareAndSwap(true, false) {
			s.log.Info("revocation stream is current again")
		}
		return nil
	}
	if s.stale.CompareAndSwap(false, true) {
		s.log.Info("revocation stream is stale; revocations since then are not known", "lastHeard", since, "maxStaleness", s.opts.MaxStaleness, "onStale", s.opts.OnStale.String())
	}
	s.metrics.stale.WithLabelValues(s.opts.OnStale.String()).Inc()
	if s.opts.OnStale == Refuse {
		return unavailable("the revocation list is out of date", time.Second)
	}
	return nil
}

// run follows the stream until ctx ends.
func (s *subscriber) run(ctx context.Context) {
	attempt := 0
	for {
		got, err := s.connect(ctx)
		if ctx.Err() != nil {
			return
		}
		if got {
			attempt = 0
		}
		if err != nil {
			s.metrics.streamConnects.WithLabelValues("error").Inc()
			s.log.Info("revocation stream lost; reconnecting", "error", err.Error(), "attempt", attempt)
		}
		wait := backoff(attempt, s.opts.MinBackoff, s.opts.MaxBackoff, rand.Float64())
		attempt++
		select {
		case <-s.clock.After(wait):
		case <-ctx.Done():
			return
		}
	}
}

// connect opens the stream, resuming after the last cursor, and applies
// its events until it ends. got reports whether any event arrived.
func (s *subscriber) connect(ctx context.Context) (got bool, err error) {
	u, err := s.url(ctx)
	if err != nil {
		return false, err
	}
	tok, err := s.token(ctx)
	if err != nil {
		return false, fmt.Errorf("bearer token for the revocation stream: %w", err)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return false, err
	}
	req.Header.Set("Accept", "text/event-stream")
	req.Header.Set("Cache-Control", "no-cache")
	req.Header.Set("Authorization", "Bearer "+tok)
	s.mu.RLock()
	cursor := s.st.cursor
	s.mu.RUnlock()
	if cursor != "" {
		req.Header.Set("Last-Event-ID", cursor)
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return false, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		return false, fmt.Errorf("GET %s: %s", serverapi.PathRevocations, resp.Status)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/event-stream") {
		return false, fmt.Errorf("GET %s: Content-Type %q, not text/event-stream", serverapi.PathRevocations, ct)
	}
	s.metrics.streamConnects.WithLabelValues("connected").Inc()

	// A stream silent past IdleTimeout is dead (the server sends bookmarks):
	// the watchdog cuts it so that the loop reconnects.
	idle := s.clock.NewTimer(s.opts.IdleTimeout)
	defer idle.Stop()
	var timedOut atomic.Bool
	go func() {
		select {
		case <-idle.C():
			timedOut.Store(true)
			cancel()
		case <-ctx.Done():
		}
	}()
	rd := revstream.NewReader(resp.Body)
	for {
		var ev serverapi.RevocationEvent
		if ev, err = rd.Next(); err != nil {
			break
		}
		idle.Reset(s.opts.IdleTimeout)
		got = true
		if err = s.apply(ev); err != nil {
			break
		}
	}
	if errors.Is(err, io.EOF) {
		err = nil // the server ended the stream (the token expired)
	}
	switch {
	case timedOut.Load():
		return got, fmt.Errorf("no event for %s", s.opts.IdleTimeout)
	case err != nil && ctx.Err() == nil:
		return got, err
	}
	return got, nil
}

func (s *subscriber) token(ctx context.Context) (string, error) {
	if s.opts.Token != nil {
		return s.opts.Token(ctx)
	}
	t, err := s.opts.TokenSource.Token()
	if err != nil {
		return "", err
	}
	return t.AccessToken, nil
}

// apply applies one event; an event of another issuer ends the connection
// (the token is of another policy than the verifier's).
func (s *subscriber) apply(ev serverapi.RevocationEvent) error {
	if ev.Issuer != "" && ev.Issuer != s.issuer {
		return fmt.Errorf("the revocation stream is for issuer %q, not %q: the stream's bearer token must be of the verified issuer", ev.Issuer, s.issuer)
	}
	s.mu.RLock()
	policy := s.st.policy
	s.mu.RUnlock()
	if ev.Policy != "" && policy != "" && ev.Policy != policy {
		return fmt.Errorf("the revocation stream changed from policy %q to %q", policy, ev.Policy)
	}
	s.metrics.revocationEvent.WithLabelValues(ev.Type).Inc()
	now := s.clock.Now()
	s.mu.Lock()
	s.st.handle(ev)
	if ev.Type == serverapi.EventBookmark {
		s.st.current.prune(now.Add(-s.leeway))
	}
	synced := s.st.synced
	s.mu.Unlock()
	if synced {
		s.lastHeard.Store(now.UnixNano())
		if !s.everSynced.Load() {
			s.everSynced.Store(true)
			s.syncOnce.Do(func() { close(s.synced) })
		}
	}
	return nil
}
