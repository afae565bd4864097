package verify

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/authframework/authframework/internal/breaker"
	"github.com/authframework/authframework/pkg/serverapi"
)

func TestClassify(t *testing.T) {
	tests := []struct {
		ep     RemoteEndpoint
		status int
		want   outcome
	}{
		{Introspect, 0, outcomeRetriable}, // network error or timeout
		{Introspect, 500, outcomeRetriable},
		{Introspect, 503, outcomeRetriable},
		{Introspect, 429, outcomeRetriable},
		{Introspect, 200, outcomeAnswer}, // active or not, an answer
		{Introspect, 401, outcomeRefusedCaller},
		{Introspect, 400, outcomeRefusedCaller},
		{Validate, 200, outcomeAnswer},
		{Validate, 401, outcomeAnswer}, // the server refused the token
		{Validate, 403, outcomeAnswer},
		{Validate, 429, outcomeRetriable},
		{Validate, 502, outcomeRetriable},
		{Validate, 404, outcomeRefusedCaller},
	}
	for _, tc := range tests {
		if got := classify(tc.ep, tc.status); got != tc.want {
			t.Errorf("endpoint %d status %d: %d, want %d", tc.ep, tc.status, got, tc.want)
		}
	}
}

// introspector is a fake /introspect: it checks the client's credentials
// and answers as mode says.
type introspector struct {
	mode  atomic.Value // "active", "inactive", "down", "hang"
	calls atomic.Int64
}

func (in *introspector) serve(w http.ResponseWriter, r *http.Request) {
	in.calls.Add(1)
	id, secret, _ := r.BasicAuth()
	id, _ = url.QueryUnescape(id)
	secret, _ = url.QueryUnescape(secret)
	if id != "svc" || secret != "s3cret:&" {
		w.WriteHeader(http.StatusUnauthorized)
		_, _ = w.Write([]byte(`{"error":"invalid_client"}`))
		return
	}
	if r.PostFormValue("token") == "" {
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	switch in.mode.Load() {
	case "down":
		w.WriteHeader(http.StatusServiceUnavailable)
	case "hang":
		<-r.Context().Done()
	case "inactive":
		_, _ = w.Write([]byte(`{"active":false}`))
	default:
		_, _ = w.Write([]byte(`{"active":true,"scope":"orders:read"}`))
	}
}

func TestRemoteIntrospectWithBreaker(t *testing.T) {
	clk := fakeClock()
	f := newFakeIssuer(t, clk)
	in := &introspector{}
	in.mode.Store("active")
	f.handle(serverapi.PathIntrospect, in.serve)
	const openFor = 10 * time.Second
	v, reg := newVerifier(t, f, clk, func(o *Options) {
		o.CacheSize = -1 // every request asks, unless the breaker is open
		o.Remote = &RemoteOptions{ClientCredentials: StaticCredentials("svc", "s3cret:&"), BreakerFailures: 3, BreakerOpenFor: openFor, Timeout: 50 * time.Millisecond}
	})
	raw := f.mint(t, "orders:read", "orders:write")
	read, write := v.Handler(echoIdentity, RequirePermission("orders:read")), v.Handler(echoIdentity, RequirePermission("orders:write"))
	calls := func() int64 { return in.calls.Load() }

	// Active: the permissions are the server's, narrowed by current Roles.
	if w := serve(read, "Bearer "+raw); w.Code != 200 {
		t.Fatalf("active: %d %s", w.Code, w.Body)
	}
	if w := serve(write, "Bearer "+raw); w.Code != 403 {
		t.Fatalf("a permission the server no longer grants: %d %s", w.Code, w.Body)
	}
	// Inactive is an answer: refused, and the breaker stays closed.
	in.mode.Store("inactive")
	for range 5 {
		if w := serve(read, "Bearer "+raw); w.Code != 401 || !strings.Contains(w.Header().Get("WWW-Authenticate"), `error="invalid_token"`) {
			t.Fatalf("inactive: %d %s", w.Code, w.Body)
		}
	}
	if s := v.remote.breaker.State(); s != breaker.Closed {
		t.Fatalf("breaker %s after answers, want closed", s)
	}
	// Failures (503, then timeouts) fall back to offline verification and
	// open the breaker after 3 in a row.
	in.mode.Store("down")
	before := calls()
	for _, mode := range []string{"down", "hang", "down"} {
		in.mode.Store(mode)
		if w := serve(read, "Bearer "+raw); w.Code != 200 {
			t.Fatalf("%s: %d %s, want offline verification", mode, w.Code, w.Body)
		}
	}
	if s := v.remote.breaker.State(); s != breaker.Open {
		t.Fatalf("breaker %s after 3 failures, want open", s)
	}
	if g := counter(t, reg, MetricBreaker); g != 2 {
		t.Errorf("%s = %v, want 2 (open)", MetricBreaker, g)
	}
	// Open: no calls; valid tokens pass offline, forged ones do not.
	for range 10 {
		if w := serve(read, "Bearer "+raw); w.Code != 200 {
			t.Fatalf("open breaker: %d %s", w.Code, w.Body)
		}
	}
	if w := serve(read, "Bearer "+raw[:len(raw)-4]+"AAAA"); w.Code != 401 {
		t.Fatalf("a forged token while offline: %d", w.Code)
	}
	if n := calls() - before; n != 3 {
		t.Errorf("%d calls while failing and open, want the 3 that opened it", n)
	}
	if n := counter(t, reg, MetricOffline); n != 13 {
		t.Errorf("%s = %v, want 13", MetricOffline, n)
	}
	// Half-open after openFor: one probe; the server answers; closed.
	in.mode.Store("active")
	clk.Step(openFor)
	if w := serve(read, "Bearer "+raw); w.Code != 200 {
		t.Fatalf("probe: %d %s", w.Code, w.Body)
	}
	if s := v.remote.breaker.State(); s != breaker.Closed {
		t.Fatalf("breaker %s after a probe the server answered, want closed", s)
	}
	if g := counter(t, reg, MetricBreaker); g != 0 {
		t.Errorf("%s = %v, want 0", MetricBreaker, g)
	}
	in.mode.Store("inactive")
	if w := serve(read, "Bearer "+raw); w.Code != 401 {
		t.Fatalf("closed again, the server's answer counts: %d", w.Code)
	}
}

func TestRemoteRefusedCredentialsAreNotOutages(t *testing.T) {
	clk := fakeClock()
	f := newFakeIssuer(t, clk)
	in := &introspector{}
	f.handle(serverapi.PathIntrospect, in.serve)
	v, _ := newVerifier(t, f, clk, func(o *Options) {
		o.CacheSize = -1
		o.Remote = &RemoteOptions{ClientCredentials: StaticCredentials("svc", "wrong"), BreakerFailures: 2}
	})
	raw := f.mint(t, "orders:read")
	for range 5 {
		_, err := v.Verify(context.Background(), raw)
		var e *Error
		if !errors.As(err, &e) || e.Code != CodeUnavailable {
			t.Fatalf("refused credentials: %v, want %s", err, CodeUnavailable)
		}
	}
	if s := v.remote.breaker.State(); s != breaker.Closed {
		t.Errorf("breaker %s: the server answered, it is not down", s)
	}
	if n := in.calls.Load(); n != 5 {
		t.Errorf("%d calls, want 5", n)
	}
}

func TestRemoteCacheFor(t *testing.T) {
	clk := fakeClock()
	f := newFakeIssuer(t, clk)
	in := &introspector{}
	in.mode.Store("active")
	f.handle(serverapi.PathIntrospect, in.serve)
	v, _ := newVerifier(t, f, clk, func(o *Options) {
		o.Remote = &RemoteOptions{ClientCredentials: StaticCredentials("svc", "s3cret:&"), CacheFor: 5 * time.Second}
	})
	raw := f.mint(t, "orders:read")
	for range 3 {
		if _, err := v.Verify(context.Background(), raw); err != nil {
			t.Fatal(err)
		}
	}
	if n := in.calls.Load(); n != 1 {
		t.Fatalf("%d calls within CacheFor, want 1", n)
	}
	in.mode.Store("inactive")
	clk.Step(5 * time.Second)
	for range 3 {
		if _, err := v.Verify(context.Background(), raw); err == nil {
			t.Fatal("an inactive token passed after CacheFor")
		}
	}
	if n := in.calls.Load(); n != 2 {
		t.Fatalf("%d calls, want 2: the inactive answer is cached too", n)
	}
}

func TestRemoteValidate(t *testing.T) {
	clk := fakeClock()
	f := newFakeIssuer(t, clk)
	var revoked atomic.Bool
	f.handle(serverapi.PathValidate, func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") == "" {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		if revoked.Load() {
			w.Header().Set(serverapi.HeaderAuthError, CodeTokenRevoked)
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		w.Header().Set("X-User-Permissions", "orders:read,orders:list")
		w.WriteHeader(http.StatusOK)
	})
	v, _ := newVerifier(t, f, clk, func(o *Options) {
		o.CacheSize = -1
		o.Remote = &RemoteOptions{Endpoint: Validate}
	})
	raw := f.mint(t, "orders:*")
	id, err := v.Verify(context.Background(), raw)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(id.Permissions, " ") != "orders:read orders:list" {
		t.Errorf("permissions %v, want the server's", id.Permissions)
	}
	revoked.Store(true)
	_, err = v.Verify(context.Background(), raw)
	var e *Error
	if !errors.As(err, &e) || e.Code != CodeTokenRevoked || e.Status != 401 {
		t.Fatalf("%v, want token_revoked", err)
	}
}
