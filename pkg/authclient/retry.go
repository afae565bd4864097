package authclient

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"golang.org/x/oauth2"
)

// delay is the n-th backoff wait (n from 0): Initial·2ⁿ capped at Max,
// plus up to Jitter of itself at random. (k8s.io/apimachinery's
// wait.Backoff computes the same but brings klog along.)
func (r Retry) delay(n int) time.Duration {
	d := r.Initial
	for i := 0; i < n && d < r.Max; i++ {
		d *= 2
	}
	d = min(d, r.Max)
	return d + time.Duration(rand.Float64()*r.Jitter*float64(d))
}

// retryable decides whether a failed token request is worth sending again
// and how long the server asked to wait (0: not said). Retried: network
// errors and timeouts of the attempt (url.Error), 5xx and 429
// (RFC 6585 §4). Not retried: every other answer, which is the server's
// decision about this request (invalid_client, invalid_scope, ...), and
// responses that are not a token endpoint's. now resolves an HTTP-date
// Retry-After.
func retryable(err error, now time.Time) (retry bool, retryAfter time.Duration) {
	var re *oauth2.RetrieveError
	if errors.As(err, &re) {
		if re.Response == nil {
			return false, 0
		}
		code := re.Response.StatusCode
		if code != http.StatusTooManyRequests && code < 500 {
			return false, 0
		}
		return true, parseRetryAfter(re.Response.Header.Get("Retry-After"), now)
	}
	// http.Client wraps every transport error in *url.Error. (Not
	// net.Error: a syscall.Errno is one, so a missing file would be
	// retried.)
	var ue *url.Error
	return errors.As(err, &ue) || errors.Is(err, context.DeadlineExceeded), 0
}

// parseRetryAfter reads Retry-After (RFC 9110 §10.2.3): delay-seconds or
// an HTTP-date. Absent, malformed or past: 0.
func parseRetryAfter(v string, now time.Time) time.Duration {
	if v == "" {
		return 0
	}
	if n, err := strconv.ParseUint(v, 10, 32); err == nil {
		return time.Duration(n) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}

// withRetries sends attempt up to attempts times, each bounded by
// AttemptTimeout, waiting between them on the clock as retryable and
// delay say. It stops early when ctx ends or when the wait would pass ctx's
// deadline or Retry.Max; the error is then the last attempt's.
func (o *Options) withRetries(ctx context.Context, attempts int, attempt func(context.Context) (*oauth2.Token, error)) (*oauth2.Token, error) {
	ctx = context.WithValue(ctx, oauth2.HTTPClient, o.HTTPClient)
	for n := 0; ; n++ {
		actx, cancel := context.WithTimeout(ctx, o.AttemptTimeout)
		tok, err := attempt(actx)
		cancel()
		if err == nil {
			return tok, nil
		}
		if ctx.Err() != nil {
			return nil, err
		}
		retry, after := retryable(err, o.Clock.Now())
		if !retry || n+1 >= attempts {
			return nil, err
		}
		wait := after
		if wait == 0 {
			wait = o.Retry.delay(n)
		}
		if wait > o.Retry.Max {
			return nil, fmt.Errorf("%w (the server asks to retry after %v, more than the %v allowed)", err, wait, o.Retry.Max)
		}
		if dl, ok := ctx.Deadline(); ok && o.Clock.Now().Add(wait).After(dl) {
			return nil, err
		}
		o.Log.V(1).Info("token request failed; retrying", "error", err.Error(), "attempt", n+1, "wait", wait)
		t := o.Clock.NewTimer(wait)
		select {
		case <-t.C():
		case <-ctx.Done():
			t.Stop()
			return nil, err
		}
	}
}
