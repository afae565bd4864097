package issuertest

import (
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"k8s.io/utils/clock"

	"github.com/authframework/authframework/internal/authz"
	"github.com/authframework/authframework/internal/keys"
	"github.com/authframework/authframework/internal/revstream"
	"github.com/authframework/authframework/pkg/serverapi"
)

func (is *Issuer) handler() http.Handler {
	mux := http.NewServeMux()
	ns, policy := is.opts.Namespace, is.opts.Policy
	mux.HandleFunc("GET "+serverapi.DiscoveryPath(ns, policy), is.handleDiscovery)
	mux.HandleFunc("GET "+serverapi.JWKSPath(ns, policy), is.handleJWKS)
	mux.HandleFunc("POST "+serverapi.PathToken, is.handleToken)
	mux.HandleFunc("POST "+serverapi.PathIntrospect, is.handleIntrospect)
	mux.HandleFunc("POST "+serverapi.PathRevoke, is.handleRevoke)
	mux.HandleFunc("GET "+serverapi.PathRevocations, is.handleRevocations)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if is.injected(w, r) {
			return
		}
		mux.ServeHTTP(w, r)
	})
}

// injected counts the request and answers it with a queued fault or the
// outage, if any.
func (is *Issuer) injected(w http.ResponseWriter, r *http.Request) bool {
	is.mu.Lock()
	is.requests[r.URL.Path]++
	f, queued := fault{}, false
	if q := is.faults[r.URL.Path]; len(q) > 0 {
		f, queued = q[0], true
		is.faults[r.URL.Path] = q[1:]
	}
	down := is.down
	is.mu.Unlock()
	switch {
	case queued:
		if f.retryAfter > 0 {
			w.Header().Set("Retry-After", strconv.Itoa(int((f.retryAfter+time.Second-1)/time.Second)))
		}
		is.oauthError(w, f.status, codeFor(f.status), "injected failure")
	case down:
		w.Header().Set("Retry-After", "1")
		is.oauthError(w, http.StatusServiceUnavailable, "temporarily_unavailable", "the issuer is unavailable")
	default:
		return false
	}
	return true
}

// codeFor is the RFC 6749 error code the real server answers with status.
func codeFor(status int) string {
	switch {
	case status == http.StatusUnauthorized:
		return "invalid_client"
	case status == http.StatusTooManyRequests || status == http.StatusServiceUnavailable:
		return "temporarily_unavailable"
	case status >= 500:
		return "server_error"
	default:
		return "invalid_request"
	}
}

func (is *Issuer) handleDiscovery(w http.ResponseWriter, _ *http.Request) {
	is.mu.Lock()
	var algs []string
	for _, kid := range is.order {
		if a := string(is.keys[kid].Algorithm); !slices.Contains(algs, a) {
			algs = append(algs, a)
		}
	}
	is.mu.Unlock()
	base := is.BaseURL()
	w.Header().Set("Cache-Control", is.cacheControl())
	writeJSON(w, http.StatusOK, serverapi.Discovery{
		Issuer: is.URL(), JWKSURI: is.JWKSURL(), TokenEndpoint: base + serverapi.PathToken,
		RevocationEndpoint: base + serverapi.PathRevoke, IntrospectionEndpoint: base + serverapi.PathIntrospect,
		GrantTypesSupported:               []string{"client_credentials"},
		TokenEndpointAuthMethodsSupported: []string{"client_secret_basic", "client_secret_post"},
		ResponseTypesSupported:            []string{},
		SubjectTypesSupported:             []string{"public"},
		IDTokenSigningAlgValuesSupported:  algs,
	})
}

func (is *Issuer) cacheControl() string {
	return fmt.Sprintf("public, max-age=%d", int(is.opts.JWKSMaxAge/time.Second))
}

func (is *Issuer) handleJWKS(w http.ResponseWriter, _ *http.Request) {
	is.mu.Lock()
	ks := make([]keys.Key, 0, len(is.order))
	for _, kid := range is.order {
		ks = append(ks, is.keys[kid])
	}
	is.mu.Unlock()
	slices.SortFunc(ks, func(a, b keys.Key) int { return strings.Compare(a.ID, b.ID) })
	w.Header().Set("Cache-Control", is.cacheControl())
	w.Header().Set("Content-Type", "application/jwk-set+json")
	_ = json.NewEncoder(w).Encode(keys.PublicSet(ks))
}

// authenticate reads client_secret_basic or client_secret_post and checks
// it against the client's secrets; on failure it has answered.
func (is *Issuer) authenticate(w http.ResponseWriter, r *http.Request) (*Client, bool) {
	id, secret, basic := r.BasicAuth()
	if basic {
		id, _ = url.QueryUnescape(id)
		secret, _ = url.QueryUnescape(secret)
	} else {
		id, secret = r.PostForm.Get("client_id"), r.PostForm.Get("client_secret")
	}
	is.mu.Lock()
	c, known := is.clients[id]
	var cc Client
	if known {
		cc = *c
	}
	is.mu.Unlock()
	ok := known && secret != "" && slices.ContainsFunc(cc.Secrets, func(s string) bool {
		return subtle.ConstantTimeCompare([]byte(s), []byte(secret)) == 1
	})
	if !ok {
		w.Header().Set("WWW-Authenticate", `Basic realm="authframework"`)
		is.oauthError(w, http.StatusUnauthorized, "invalid_client", "client authentication failed")
		return nil, false
	}
	return &cc, true
}

func (is *Issuer) handleToken(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		is.oauthError(w, http.StatusBadRequest, "invalid_request", "the form body is malformed")
		return
	}
	var c *Client
	var exchanged bool
	switch r.PostForm.Get("grant_type") {
	case "client_credentials":
		var ok bool
		if c, ok = is.authenticate(w, r); !ok {
			return
		}
	case serverapi.GrantTypeTokenExchange:
		if r.PostForm.Get("subject_token_type") != serverapi.TokenTypeJWT {
			is.oauthError(w, http.StatusBadRequest, "invalid_request", "subject_token_type must be "+serverapi.TokenTypeJWT)
			return
		}
		is.mu.Lock()
		id, ok := is.subjects[r.PostForm.Get("subject_token")]
		if ok {
			if cl, known := is.clients[id]; known {
				cc := *cl
				c = &cc
			}
		}
		is.mu.Unlock()
		if c == nil {
			// RFC 8693 §2.2.2, as the real server answers.
			is.oauthError(w, http.StatusBadRequest, "invalid_request", "the subject token is not valid")
			return
		}
		exchanged = true
	default:
		is.oauthError(w, http.StatusBadRequest, "unsupported_grant_type", "the supported grant types are client_credentials and "+serverapi.GrantTypeTokenExchange)
		return
	}
	if c.Disabled {
		is.oauthError(w, http.StatusBadRequest, "unauthorized_client", "the client is disabled")
		return
	}
	audience, perms, err := authz.Grant(c.Identity.Permissions, is.opts.Audiences, authz.GrantRequest{
		Scope: strings.Fields(r.PostForm.Get("scope")), Audience: r.PostForm.Get("audience"), Resources: r.PostForm["resource"],
	})
	var scopeErr *authz.ScopeError
	switch {
	case errors.As(err, &scopeErr):
		is.oauthError(w, http.StatusBadRequest, "invalid_scope", err.Error())
		return
	case err != nil:
		is.oauthError(w, http.StatusBadRequest, "invalid_target", err.Error())
		return
	}
	id := c.Identity
	id.Audience, id.Permissions, id.TTL, id.IssuedAt = audience, perms, 0, time.Time{}
	k := is.activeKey()
	raw, err := is.mint(k, id)
	if err != nil {
		is.oauthError(w, http.StatusInternalServerError, "server_error", "the token could not be issued")
		return
	}
	resp := serverapi.TokenResponse{AccessToken: raw, TokenType: "Bearer", ExpiresIn: int(is.opts.TTL / time.Second), Scope: strings.Join(perms, " ")}
	if exchanged {
		resp.IssuedTokenType = serverapi.TokenTypeAccessToken
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, resp)
}

func (is *Issuer) handleIntrospect(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		is.oauthError(w, http.StatusBadRequest, "invalid_request", "the form body is malformed")
		return
	}
	if _, ok := is.authenticate(w, r); !ok {
		return
	}
	raw := r.PostForm.Get("token")
	if raw == "" {
		is.oauthError(w, http.StatusBadRequest, "invalid_request", "token is required")
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	c, err := is.verify(raw)
	if err != nil {
		writeJSON(w, http.StatusOK, serverapi.Introspection{Active: false})
		return
	}
	out := serverapi.Introspection{
		Active: true, Scope: c.Scope, ClientID: c.ClientID, TokenType: "Bearer", Exp: c.Expiry.Time().Unix(),
		Iat: c.IssuedAt.Time().Unix(), Sub: c.Subject, Aud: c.Audience, Iss: c.Issuer, Jti: c.ID, Namespace: c.Namespace,
	}
	if c.NotBefore != nil {
		out.Nbf = c.NotBefore.Time().Unix()
	}
	writeJSON(w, http.StatusOK, out)
}

// handleRevocations serves the revocation stream (serverapi.PathRevocations)
// with the server's core to a caller presenting a valid token of this
// issuer, until that token expires.
func (is *Issuer) handleRevocations(w http.ResponseWriter, r *http.Request) {
	raw, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	c, err := is.verify(raw)
	if !ok || err != nil {
		w.Header().Set("WWW-Authenticate", `Bearer realm="authframework", error="invalid_token"`)
		writeJSON(w, http.StatusUnauthorized, map[string]any{
			"error":      map[string]string{"code": "invalid_token", "message": "the revocation stream takes a valid access token of this issuer"},
			"request_id": "issuertest", "timestamp": is.opts.Clock.Now().UTC().Format(time.RFC3339),
		})
		return
	}
	clk, ticks := is.opts.Clock.(clock.WithTicker)
	if !ticks {
		clk = clock.RealClock{}
	}
	revstream.Stream{Log: is.stream, Scope: is.scope(), Policy: is.scope(), Issuer: is.URL(), Snapshot: is.snapshot,
		Until: c.Expiry.Time(), Clock: clk, Heartbeat: is.opts.StreamHeartbeat}.Serve(w, r)
}

// scope is the policy's stream scope and name, "namespace/policy".
func (is *Issuer) scope() string { return is.opts.Namespace + "/" + is.opts.Policy }

// snapshot is the state a stream that cannot resume starts with.
func (is *Issuer) snapshot() []revstream.Event {
	is.mu.Lock()
	defer is.mu.Unlock()
	now := is.opts.Clock.Now()
	var out []revstream.Event
	for jti, exp := range is.revoked {
		if exp.After(now) {
			out = append(out, is.revokedEvent(jti, exp))
		}
	}
	for _, c := range is.clients {
		if c.Disabled {
			out = append(out, is.accountEvent(c))
		}
	}
	for _, kid := range is.revokedKeys {
		out = append(out, revstream.Event{Type: serverapi.EventKeyRevoked, KeyID: kid})
	}
	return out
}

// handleRevoke is RFC 7009: a client revokes its own tokens; anything else
// is answered 200 and ignored, as the RFC asks.
func (is *Issuer) handleRevoke(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		is.oauthError(w, http.StatusBadRequest, "invalid_request", "the form body is malformed")
		return
	}
	cl, ok := is.authenticate(w, r)
	if !ok {
		return
	}
	raw := r.PostForm.Get("token")
	if raw == "" {
		is.oauthError(w, http.StatusBadRequest, "invalid_request", "token is required")
		return
	}
	if c, err := is.verify(raw); err == nil && c.ClientID == cl.ID {
		is.revoke(c)
	}
	w.WriteHeader(http.StatusOK)
}

// oauthError writes the real server's RFC 6749 §5.2 error body.
func (is *Issuer) oauthError(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, status, map[string]string{
		"error": code, "error_description": msg, "request_id": "issuertest",
		"timestamp": is.opts.Clock.Now().UTC().Format(time.RFC3339),
	})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
