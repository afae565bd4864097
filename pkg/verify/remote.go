package verify

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/go-logr/logr"
	"golang.org/x/sync/singleflight"

	"github.com/authframework/authframework/internal/breaker"
	"github.com/authframework/authframework/pkg/serverapi"
)

// RemoteEndpoint is what remote mode asks the auth server.
type RemoteEndpoint int

const (
	// Introspect asks serverapi.PathIntrospect (RFC 7662); the service
	// authenticates as a client (client_secret_basic) with
	// RemoteOptions.ClientCredentials.
	Introspect RemoteEndpoint = iota
	// Validate asks serverapi.PathValidate with the token as its bearer
	// token, as ingress-nginx does; no client credentials are needed.
	Validate
)

// RemoteOptions turn on remote mode: after local verification, every token
// (once per CacheFor) is also checked by the auth server, so disabled
// accounts, revoked tokens and narrowed Roles are honoured at once. A
// circuit breaker guards the server: after BreakerFailures consecutive
// failed calls (network errors, timeouts, 5xx, 429) it opens for
// BreakerOpenFor, during which tokens are verified locally only (offline;
// logged when the breaker opens and closes, counted in MetricOffline); then
// one call probes the server and closes the breaker when it answers. An
// answer is never a failure: active:false from /introspect, or 401/403
// from /validate, refuses the token.
type RemoteOptions struct {
	// Endpoint: Introspect (the default) or Validate.
	Endpoint RemoteEndpoint
	// URL of the endpoint. Empty: the discovery document's
	// introspection_endpoint (Introspect), or its token_endpoint with the
	// path replaced by serverapi.PathValidate (Validate).
	URL string
	// ClientCredentials returns the client id and secret that authenticate
	// an Introspect call; it is called for every call, so that a function
	// reading a mounted credentials Secret sees rotations. Required for
	// Introspect.
	ClientCredentials func(ctx context.Context) (clientID, clientSecret string, err error)
	// Timeout bounds one call; default 2 s.
	Timeout time.Duration
	// BreakerFailures consecutive failures open the breaker (default 5)
	// for BreakerOpenFor (default 10 s).
	BreakerFailures int
	BreakerOpenFor  time.Duration
	// CacheFor is how long an answer (or an offline verification) is
	// reused for the same token; default 5 s. It is the longest a
	// revocation can go unnoticed in remote mode without the revocation
	// stream.
	CacheFor time.Duration
}

// StaticCredentials returns a RemoteOptions.ClientCredentials that always
// answers id and secret.
func StaticCredentials(id, secret string) func(context.Context) (string, string, error) {
	return func(context.Context) (string, string, error) { return id, secret, nil }
}

// remoteAnswer is the auth server's answer about a token.
type remoteAnswer struct {
	active bool
	// permissions are what the server grants now; nil when it did not say.
	permissions []string
	// code and message explain an inactive token when the server says why.
	code, message string
}

// outcome classifies a call: an answer, a failure worth retrying later
// (it counts against the breaker), or a refusal of this service's own
// request, which the server answered but the token was not judged.
type outcome int

const (
	outcomeAnswer outcome = iota
	outcomeRetriable
	outcomeRefusedCaller
)

// classify is the one rule for what a call's result means: no response
// (status 0: network error, timeout), 5xx and 429 are retriable; /validate's
// 401 and 403 are answers about the token; /introspect's 200 is an answer
// and any other 4xx refuses this service (bad client credentials or
// request).
func classify(ep RemoteEndpoint, status int) outcome {
	switch {
	case status == 0 || status >= 500 || status == http.StatusTooManyRequests:
		return outcomeRetriable
	case status == http.StatusOK:
		return outcomeAnswer
	case ep == Validate && (status == http.StatusUnauthorized || status == http.StatusForbidden):
		return outcomeAnswer
	}
	return outcomeRefusedCaller
}

type remoteChecker struct {
	opts    RemoteOptions
	url     func(ctx context.Context) (string, error)
	client  *http.Client
	breaker *breaker.Breaker
	flight  singleflight.Group
	log     logr.Logger
	metrics *metrics
}

// errRemoteFailed is a retriable failure: the token is verified offline.
var errRemoteFailed = errors.New("the auth server could not be asked")

// ask asks the server about raw, one call for concurrent asks about the
// same token (key is its hash). A retriable failure is errRemoteFailed;
// an *Error is a refusal of this service's request.
func (rc *remoteChecker) ask(ctx context.Context, key, raw string) (remoteAnswer, error) {
	ch := rc.flight.DoChan(key, func() (any, error) {
		if d := rc.breaker.Allow(); !d.Allowed {
			return nil, errRemoteFailed
		}
		// The caller hanging up is not the server failing: the call runs
		// to its own timeout, and the breaker hears how it ended.
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), rc.opts.Timeout)
		defer cancel()
		ans, status, err := rc.call(cctx, raw)
		switch classify(rc.opts.Endpoint, status) {
		case outcomeRetriable:
			rc.breaker.Record(false)
			rc.metrics.remote.WithLabelValues("error").Inc()
			rc.log.V(1).Info("the auth server could not be asked; verifying offline", "status", status, "error", err)
			return nil, errRemoteFailed
		case outcomeRefusedCaller:
			rc.breaker.Record(true)
			rc.metrics.remote.WithLabelValues("refused").Inc()
			rc.log.Error(err, "the auth server refused this service's remote check; check RemoteOptions (URL, client credentials)", "status", status)
			return nil, unavailable("the auth server refused this service's remote check", time.Second)
		}
		rc.breaker.Record(true)
		if ans.active {
			rc.metrics.remote.WithLabelValues("active").Inc()
		} else {
			rc.metrics.remote.WithLabelValues("inactive").Inc()
		}
		return ans, nil
	})
	select {
	case res := <-ch:
		if res.Err != nil {
			return remoteAnswer{}, res.Err
		}
		return res.Val.(remoteAnswer), nil
	case <-ctx.Done():
		return remoteAnswer{}, ctx.Err()
	}
}

// call makes one request; status is 0 when there was no response.
func (rc *remoteChecker) call(ctx context.Context, raw string) (remoteAnswer, int, error) {
	u, err := rc.url(ctx)
	if err != nil {
		return remoteAnswer{}, 0, err
	}
	var req *http.Request
	if rc.opts.Endpoint == Validate {
		req, err = http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
		if err != nil {
			return remoteAnswer{}, 0, err
		}
		req.Header.Set("Authorization", "Bearer "+raw)
	} else {
		id, secret, err := rc.opts.ClientCredentials(ctx)
		if err != nil {
			return remoteAnswer{}, 0, fmt.Errorf("client credentials: %w", err)
		}
		form := url.Values{"token": {raw}, "token_type_hint": {"access_token"}}
		req, err = http.NewRequestWithContext(ctx, http.MethodPost, u, strings.NewReader(form.Encode()))
		if err != nil {
			return remoteAnswer{}, 0, err
		}
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		// RFC 6749 §2.3.1: both are form-encoded before Basic encoding.
		req.SetBasicAuth(url.QueryEscape(id), url.QueryEscape(secret))
	}
	req.Header.Set("Accept", "application/json")
	resp, err := rc.client.Do(req)
	if err != nil {
		return remoteAnswer{}, 0, err
	}
	defer resp.Body.Close()
	body := io.LimitReader(resp.Body, maxDocumentSize)
	if rc.opts.Endpoint == Validate {
		_, _ = io.Copy(io.Discard, body)
		return validateAnswer(resp.StatusCode, resp.Header), resp.StatusCode, nil
	}
	if resp.StatusCode != http.StatusOK {
		_, _ = io.Copy(io.Discard, body)
		return remoteAnswer{}, resp.StatusCode, fmt.Errorf("introspection: %s", resp.Status)
	}
	var in struct {
		Active bool    `json:"active"`
		Scope  *string `json:"scope"`
	}
	if err := json.NewDecoder(body).Decode(&in); err != nil {
		// A 200 that is not RFC 7662 is not an answer about the token.
		return remoteAnswer{}, http.StatusBadGateway, fmt.Errorf("introspection: %w", err)
	}
	ans := remoteAnswer{active: in.Active}
	if in.Active && in.Scope != nil {
		ans.permissions = strings.Fields(*in.Scope)
	}
	if !in.Active {
		ans.code, ans.message = CodeInvalidToken, "the auth server says the token is not active"
	}
	return ans, resp.StatusCode, nil
}

// validateAnswer reads /validate's answer: 200 with the permissions granted
// now in X-User-Permissions (comma-separated), or a refusal whose code is in
// X-Auth-Error.
func validateAnswer(status int, h http.Header) remoteAnswer {
	if status == http.StatusOK {
		ans := remoteAnswer{active: true}
		if p, ok := h["X-User-Permissions"]; ok {
			ans.permissions = []string{}
			for _, f := range strings.Split(strings.Join(p, ","), ",") {
				if f = strings.TrimSpace(f); f != "" {
					ans.permissions = append(ans.permissions, f)
				}
			}
		}
		return ans
	}
	code := h.Get(serverapi.HeaderAuthError)
	switch code {
	case CodeTokenRevoked, CodeClientDisabled, CodeUnknownClient, CodeTokenExpired, CodeUnknownKey, CodeWrongAudience, CodeBadSignature:
	default:
		code = CodeInvalidToken
	}
	return remoteAnswer{code: code, message: "the auth server refused the token"}
}
