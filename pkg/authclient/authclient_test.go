package authclient

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/oauth2"
	clocktesting "k8s.io/utils/clock/testing"

	"github.com/authframework/authframework/pkg/issuertest"
	"github.com/authframework/authframework/pkg/serverapi"
)

var epoch = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func TestRefreshSchedule(t *testing.T) {
	got := epoch
	for _, tc := range []struct {
		name             string
		expiry           time.Time
		refresh, useTill time.Duration // after got
	}{
		{"ten minutes", got.Add(10 * time.Minute), 8 * time.Minute, 10*time.Minute - 10*time.Second},
		{"an hour", got.Add(time.Hour), 48 * time.Minute, time.Hour - 10*time.Second},
		{"short: a tenth as margin", got.Add(20 * time.Second), 16 * time.Second, 18 * time.Second},
		{"margin before 80%", got.Add(40 * time.Second), 32 * time.Second, 36 * time.Second},
		{"already expired", got.Add(-time.Second), 0, 0},
		{"no expiry: a minute", time.Time{}, time.Minute, time.Minute},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, u := refreshSchedule(got, &oauth2.Token{Expiry: tc.expiry})
			if r.Sub(got) != tc.refresh || u.Sub(got) != tc.useTill {
				t.Errorf("refresh after %v, use for %v; want %v, %v", r.Sub(got), u.Sub(got), tc.refresh, tc.useTill)
			}
			if r.After(u) {
				t.Errorf("refresh %v after the token is dropped %v", r, u)
			}
		})
	}
}

func retrieveError(status int, retryAfter string) error {
	h := http.Header{}
	if retryAfter != "" {
		h.Set("Retry-After", retryAfter)
	}
	return fmt.Errorf("wrapped: %w", &oauth2.RetrieveError{Response: &http.Response{StatusCode: status, Header: h}, ErrorCode: "x"})
}

func TestRetryable(t *testing.T) {
	now := epoch
	for _, tc := range []struct {
		name  string
		err   error
		retry bool
		after time.Duration
	}{
		{"429 with seconds", retrieveError(429, "7"), true, 7 * time.Second},
		{"429 with a date", retrieveError(429, now.Add(90*time.Second).Format(http.TimeFormat)), true, 90 * time.Second},
		{"429 with a past date", retrieveError(429, now.Add(-time.Minute).Format(http.TimeFormat)), true, 0},
		{"429 with garbage", retrieveError(429, "soon"), true, 0},
		{"429 with a negative number", retrieveError(429, "-3"), true, 0},
		{"503 with seconds", retrieveError(503, "2"), true, 2 * time.Second},
		{"500", retrieveError(500, ""), true, 0},
		{"401 invalid_client is an answer", retrieveError(401, ""), false, 0},
		{"400 invalid_scope is an answer", retrieveError(400, "5"), false, 0},
		{"network error", &url.Error{Op: "Post", URL: "http://x", Err: errors.New("connection refused")}, true, 0},
		{"attempt timeout", fmt.Errorf("x: %w", context.DeadlineExceeded), true, 0},
		{"not a token endpoint", errors.New("oauth2: server response missing access_token"), false, 0},
		{"file missing", func() error { _, err := readTrimmed(filepath.Join(t.TempDir(), "x")); return err }(), false, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			retry, after := retryable(tc.err, now)
			if retry != tc.retry || after != tc.after {
				t.Errorf("retryable = %v, %v; want %v, %v", retry, after, tc.retry, tc.after)
			}
		})
	}
}

func TestDelay(t *testing.T) {
	r := Retry{Initial: 100 * time.Millisecond, Max: time.Second, Jitter: 0.2}
	for n, base := range []time.Duration{100, 200, 400, 800, 1000, 1000, 1000} {
		base *= time.Millisecond
		if n >= 4 {
			base = time.Second
		}
		for range 20 {
			if d := r.delay(n); d < base || d > base+base/5 {
				t.Fatalf("delay(%d) = %v, want in [%v, %v]", n, d, base, base+base/5)
			}
		}
	}
}

// fixture is an issuer on a fake clock with one client whose credentials
// are mounted kubelet-style.
type fixture struct {
	clk *clocktesting.FakeClock
	iss *issuertest.Issuer
	dir string
}

func newFixture(t *testing.T) *fixture {
	f := &fixture{clk: clocktesting.NewFakeClock(epoch), dir: t.TempDir()}
	f.iss = issuertest.New(t, issuertest.Options{Audiences: []string{"orders-api", "billing-api"}, Clock: f.clk})
	f.iss.AddClient(issuertest.Client{ID: "team.billing", Secrets: []string{"s1"},
		Identity: issuertest.Identity{Permissions: []string{"orders:read", "orders:write"}}})
	issuertest.WriteSecretVolume(t, f.dir, map[string]string{ClientIDFile: "team.billing", ClientSecretFile: "s1"})
	return f
}

func (f *fixture) source(o Options) *Source {
	o.Clock = f.clk
	return ClientCredentials(f.iss.TokenURL(), f.dir, o)
}

// checkToken verifies tok with the issuer and returns its jti.
func (f *fixture) checkToken(t *testing.T, tok *oauth2.Token, err error) string {
	t.Helper()
	if err != nil {
		t.Fatalf("token: %v", err)
	}
	jti, client, _, verr := f.iss.Verify(tok.AccessToken)
	if verr != nil || client != "team.billing" {
		t.Fatalf("the token does not verify: %v (client %q)", verr, client)
	}
	return jti
}

// jti gets a token from src and checks it.
func (f *fixture) jti(t *testing.T, src *Source) string {
	t.Helper()
	tok, err := src.Token()
	return f.checkToken(t, tok, err)
}

// waitForTimer waits until the code under test waits on the fake clock.
// It waits for a goroutine, not for time: no sleep, a generous deadline.
func waitForTimer(t *testing.T, clk *clocktesting.FakeClock) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !clk.HasWaiters() {
		if time.Now().After(deadline) {
			t.Fatal("nothing waits on the clock")
		}
		runtime.Gosched()
	}
}

type result struct {
	tok *oauth2.Token
	err error
}

func tokenAsync(s *Source) <-chan result {
	ch := make(chan result, 1)
	go func() {
		tok, err := s.Token()
		ch <- result{tok, err}
	}()
	return ch
}

func TestClientCredentialsCachesAndRefreshesAhead(t *testing.T) {
	f := newFixture(t)
	src := f.source(Options{Scopes: []string{"orders:read"}, Audience: "billing-api"})
	tok, err := src.Token()
	first := f.checkToken(t, tok, err)
	if _, _, perms, _ := f.iss.Verify(tok.AccessToken); len(perms) != 1 || perms[0] != "orders:read" {
		t.Errorf("scope not asked for: %v", perms)
	}
	if want := epoch.Add(10 * time.Minute); !tok.Expiry.Equal(want) {
		t.Errorf("expiry %v on the source's clock, want %v", tok.Expiry, want)
	}
	f.clk.Step(7*time.Minute + 59*time.Second)
	tok, err = src.Token()
	if f.checkToken(t, tok, err) != first || f.iss.Requests(serverapi.PathToken) != 1 {
		t.Fatalf("a fresh token was not reused: %d requests", f.iss.Requests(serverapi.PathToken))
	}
	f.clk.Step(time.Second) // 80% of the lifetime
	tok, err = src.Token()
	if f.checkToken(t, tok, err) == first || f.iss.Requests(serverapi.PathToken) != 2 {
		t.Fatalf("not refreshed at 80%%: %d requests", f.iss.Requests(serverapi.PathToken))
	}
}

func TestConcurrentCallersShareOneRequest(t *testing.T) {
	f := newFixture(t)
	src := f.source(Options{})
	var wg sync.WaitGroup
	errs := make(chan error, 50)
	for range 50 {
		wg.Go(func() {
			if _, err := src.Token(); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if n := f.iss.Requests(serverapi.PathToken); n != 1 {
		t.Errorf("%d token requests for 50 concurrent callers, want 1", n)
	}
}

// TestKubeletSwapIsPickedUp: the secret is rotated and the old one stops
// working; kubelet swaps `..data`; the next token request uses the new
// secret, without a restart.
func TestKubeletSwapIsPickedUp(t *testing.T) {
	f := newFixture(t)
	src := f.source(Options{})
	f.jti(t, src)

	f.iss.SetSecrets(t, "team.billing", "s2")
	issuertest.WriteSecretVolume(t, f.dir, map[string]string{ClientIDFile: "team.billing", ClientSecretFile: "s2"})
	if entries, _ := filepath.Glob(filepath.Join(f.dir, "..[0-9]*")); len(entries) != 1 {
		t.Fatalf("the layout keeps %d timestamped directories", len(entries))
	}
	f.clk.Step(10 * time.Minute)
	f.jti(t, src)
	if n := f.iss.Requests(serverapi.PathToken); n != 2 {
		t.Errorf("%d token requests, want 2", n)
	}
}

// TestInvalidClientRereads: kubelet swaps the files while a request with
// the old secret is in flight; the invalid_client answer makes the client
// read them again and succeed at once.
func TestInvalidClientRereads(t *testing.T) {
	f := newFixture(t)
	f.iss.SetSecrets(t, "team.billing", "s2")
	var once sync.Once
	swap := roundTripperFunc(func(r *http.Request) (*http.Response, error) {
		once.Do(func() {
			issuertest.WriteSecretVolume(t, f.dir, map[string]string{ClientIDFile: "team.billing", ClientSecretFile: "s2"})
		})
		return http.DefaultTransport.RoundTrip(r)
	})
	src := f.source(Options{HTTPClient: &http.Client{Transport: swap}, Retry: Retry{Attempts: 1}})
	f.jti(t, src)
	if n := f.iss.Requests(serverapi.PathToken); n != 2 {
		t.Errorf("%d token requests, want 2 (refused, then the new secret)", n)
	}

	// Unchanged files: invalid_client is the answer, not retried.
	f.iss.SetSecrets(t, "team.billing", "s3")
	f.clk.Step(10 * time.Minute)
	_, err := src.Token()
	var re *oauth2.RetrieveError
	if !errors.As(err, &re) || re.ErrorCode != "invalid_client" || f.iss.Requests(serverapi.PathToken) != 3 {
		t.Fatalf("err %v after %d requests, want invalid_client after 3", err, f.iss.Requests(serverapi.PathToken))
	}
	if strings.Contains(err.Error(), "s2") {
		t.Error("the error shows the secret")
	}
}

type roundTripperFunc func(*http.Request) (*http.Response, error)

func (f roundTripperFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// TestRetryAfterIsHonoured: a 429 with Retry-After: 7 is retried after
// exactly 7 s on the clock, not after the 250 ms backoff.
func TestRetryAfterIsHonoured(t *testing.T) {
	f := newFixture(t)
	f.iss.FailNext(serverapi.PathToken, 1, http.StatusTooManyRequests, 7*time.Second)
	src := f.source(Options{})
	done := tokenAsync(src)
	waitForTimer(t, f.clk)
	f.clk.Step(7*time.Second - time.Millisecond)
	if !f.clk.HasWaiters() {
		t.Fatal("retried before Retry-After")
	}
	if n := f.iss.Requests(serverapi.PathToken); n != 1 {
		t.Fatalf("%d requests before Retry-After, want 1", n)
	}
	f.clk.Step(time.Millisecond)
	r := <-done
	f.checkToken(t, r.tok, r.err)
	if n := f.iss.Requests(serverapi.PathToken); n != 2 {
		t.Errorf("%d requests, want 2", n)
	}
}

func TestRetryAfterBeyondMaxIsNotWaited(t *testing.T) {
	f := newFixture(t)
	f.iss.FailNext(serverapi.PathToken, 1, http.StatusServiceUnavailable, time.Hour)
	_, err := f.source(Options{}).Token()
	if err == nil || !strings.Contains(err.Error(), "retry after 1h0m0s") {
		t.Fatalf("err %v, want the refusal to wait an hour", err)
	}
	if n := f.iss.Requests(serverapi.PathToken); n != 1 {
		t.Errorf("%d requests, want 1", n)
	}
}

// TestBackoff: 5xx and a refused connection are retried with growing
// waits; a final answer is not.
func TestBackoff(t *testing.T) {
	f := newFixture(t)
	f.iss.FailNext(serverapi.PathToken, 2, http.StatusBadGateway, 0)
	src := f.source(Options{Retry: Retry{Initial: time.Second, Max: 8 * time.Second, Jitter: 0.01}})
	done := tokenAsync(src)
	for n, wait := range []time.Duration{time.Second, 2 * time.Second} {
		waitForTimer(t, f.clk)
		f.clk.Step(wait - time.Millisecond)
		if !f.clk.HasWaiters() {
			t.Fatalf("wait %d shorter than %v", n, wait)
		}
		f.clk.Step(wait / 50)
	}
	r := <-done
	f.checkToken(t, r.tok, r.err)

	// The server is gone: the connection is refused, then it comes back.
	f.clk.Step(10 * time.Minute)
	f.iss.Stop()
	done = tokenAsync(src)
	waitForTimer(t, f.clk)
	f.iss.Restart(t)
	f.clk.Step(2 * time.Second)
	r = <-done
	f.checkToken(t, r.tok, r.err)

	// invalid_scope is the server's answer: one request.
	before := f.iss.Requests(serverapi.PathToken)
	_, err := f.source(Options{Scopes: []string{"admin"}}).Token()
	if errorCode(err) != "invalid_scope" || f.iss.Requests(serverapi.PathToken) != before+1 {
		t.Errorf("err %v after %d requests", err, f.iss.Requests(serverapi.PathToken)-before)
	}
}

// TestRefreshFailureKeepsTheValidToken: ahead of expiry a failed refresh
// returns the cached token and waits a backoff before trying again; once
// the token is no longer usable, the error is returned.
func TestRefreshFailureKeepsTheValidToken(t *testing.T) {
	f := newFixture(t)
	src := f.source(Options{Retry: Retry{Attempts: 1, Initial: 5 * time.Second}})
	first := f.jti(t, src)
	f.iss.SetUnavailable(true)
	f.clk.Step(9 * time.Minute)
	if f.jti(t, src) != first || f.iss.Requests(serverapi.PathToken) != 2 {
		t.Fatal("a failed early refresh did not keep the cached token")
	}
	if f.jti(t, src) != first || f.iss.Requests(serverapi.PathToken) != 2 {
		t.Fatal("retried the refresh without a backoff")
	}
	f.clk.Step(6 * time.Second)
	f.jti(t, src)
	if n := f.iss.Requests(serverapi.PathToken); n != 3 {
		t.Fatalf("%d requests, want 3 (tried again after the backoff)", n)
	}
	f.clk.Step(time.Minute) // past exp - 10s
	if _, err := src.Token(); statusOf(err) != http.StatusServiceUnavailable {
		t.Fatalf("err %v for an expired cache and a failing server", err)
	}
	f.iss.SetUnavailable(false)
	if f.jti(t, src) == first {
		t.Fatal("the same token after recovery")
	}
}

// TestTransportRetriesOnceOn401: the service refuses the token (revoked);
// the transport gets another and sends the request again with its body.
func TestTransportRetriesOnceOn401(t *testing.T) {
	f := newFixture(t)
	var bodies []string
	svc := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		bodies = append(bodies, string(b))
		raw, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if _, _, _, err := f.iss.Verify(raw); err != nil {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	defer svc.Close()
	src := f.source(Options{})
	tok, err := src.Token()
	f.checkToken(t, tok, err)
	f.iss.Revoke(t, tok.AccessToken)

	resp, err := src.Client().Post(svc.URL, "text/plain", strings.NewReader("order 42"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent || len(bodies) != 2 || bodies[0] != "order 42" || bodies[1] != "order 42" {
		t.Fatalf("status %d, bodies %q", resp.StatusCode, bodies)
	}

	// A body that cannot be sent twice: the 401 is returned as it is.
	tok, _ = src.Token()
	f.iss.Revoke(t, tok.AccessToken)
	req, _ := http.NewRequest(http.MethodPost, svc.URL, io.NopCloser(strings.NewReader("once")))
	resp, err = src.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized || len(bodies) != 3 {
		t.Fatalf("status %d after %d requests", resp.StatusCode, len(bodies))
	}

	// Two 401s: the second is the answer; no loop.
	f.iss.RotateKey(t)
	always := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusUnauthorized) }))
	defer always.Close()
	before := f.iss.Requests(serverapi.PathToken)
	resp, err = src.Client().Get(always.URL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized || f.iss.Requests(serverapi.PathToken) != before+1 {
		t.Errorf("status %d after %d token requests", resp.StatusCode, f.iss.Requests(serverapi.PathToken)-before)
	}
}

func TestTokenFile(t *testing.T) {
	clk := clocktesting.NewFakeClock(epoch)
	iss := issuertest.New(t, issuertest.Options{Clock: clk})
	dir := t.TempDir()
	one := iss.Mint(t, issuertest.Identity{})
	issuertest.WriteSecretVolume(t, dir, map[string]string{TokenFileName: one + "\n"})
	src := TokenFile(filepath.Join(dir, TokenFileName), Options{Clock: clk})
	tok, err := src.Token()
	if err != nil || tok.AccessToken != one || !tok.Expiry.Equal(epoch.Add(10*time.Minute)) {
		t.Fatalf("token %v, expiry %v", err, tok.Expiry)
	}
	// The operator re-mints; kubelet writes it.
	two := iss.Mint(t, issuertest.Identity{})
	issuertest.WriteSecretVolume(t, dir, map[string]string{TokenFileName: two})
	clk.Step(59 * time.Second)
	if tok, _ := src.Token(); tok.AccessToken != one {
		t.Fatal("read again before a minute")
	}
	clk.Step(time.Second)
	if tok, _ := src.Token(); tok.AccessToken != two {
		t.Fatal("not read again after a minute")
	}
	// After a 401, Refresh reads at once.
	three := iss.Mint(t, issuertest.Identity{})
	issuertest.WriteSecretVolume(t, dir, map[string]string{TokenFileName: three})
	if tok, err := src.Refresh(context.Background(), &oauth2.Token{AccessToken: two}); err != nil || tok.AccessToken != three {
		t.Fatalf("Refresh: %v", err)
	}
	// A missing file keeps the valid token.
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	clk.Step(time.Minute)
	if tok, err := src.Token(); err != nil || tok.AccessToken != three {
		t.Fatalf("lost the valid token on a failed read: %v", err)
	}
	clk.Step(10 * time.Minute)
	if _, err := src.Token(); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("err %v, want the missing file", err)
	}
}

// TestTokenExchange: the projected token is exchanged; kubelet refreshes
// it while a request with the old one is in flight, the refusal
// (invalid_request) re-reads it.
func TestTokenExchange(t *testing.T) {
	clk := clocktesting.NewFakeClock(epoch)
	iss := issuertest.New(t, issuertest.Options{Clock: clk})
	iss.AddClient(issuertest.Client{ID: "team.jobs", Identity: issuertest.Identity{Permissions: []string{"orders:read"}}})
	iss.AddSubjectToken("projected-2", "team.jobs")
	dir := t.TempDir()
	issuertest.WriteSecretVolume(t, dir, map[string]string{"token": "projected-1"})
	var once sync.Once
	swap := roundTripperFunc(func(r *http.Request) (*http.Response, error) {
		once.Do(func() { issuertest.WriteSecretVolume(t, dir, map[string]string{"token": "projected-2"}) })
		return http.DefaultTransport.RoundTrip(r)
	})
	src := TokenExchange(iss.TokenURL(), filepath.Join(dir, "token"), Options{Clock: clk, HTTPClient: &http.Client{Transport: swap}})
	tok, err := src.Token()
	if err != nil {
		t.Fatal(err)
	}
	if _, client, _, err := iss.Verify(tok.AccessToken); err != nil || client != "team.jobs" {
		t.Fatalf("exchanged token: %v, client %q", err, client)
	}
	if tok.Extra("issued_token_type") != serverapi.TokenTypeAccessToken || iss.Requests(serverapi.PathToken) != 2 {
		t.Errorf("issued_token_type %v after %d requests", tok.Extra("issued_token_type"), iss.Requests(serverapi.PathToken))
	}
}
