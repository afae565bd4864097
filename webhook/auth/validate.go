package auth

import (
	"errors"
	"net/http"
	"net/url"
	"strings"

	"github.com/authframework/authframework/internal/authz"
	"github.com/authframework/authframework/internal/token"
)

// refusal is a /validate decision against the caller.
type refusal struct {
	status int
	code   string
	msg    string
}

// tokenErrorMessages say why a token was refused without echoing it.
func refusalFor(err error) refusal {
	switch {
	case errors.Is(err, token.ErrExpired):
		return refusal{http.StatusUnauthorized, "token_expired", "the token has expired"}
	case errors.Is(err, token.ErrNotYetValid), errors.Is(err, token.ErrIssuedInFuture):
		return refusal{http.StatusUnauthorized, "token_not_yet_valid", "the token is not valid yet"}
	case errors.Is(err, token.ErrAudience):
		return refusal{http.StatusUnauthorized, "wrong_audience", "the token is not meant for this service"}
	case errors.Is(err, token.ErrUnknownKey):
		return refusal{http.StatusUnauthorized, "unknown_key", "the token's signing key is unknown or revoked"}
	case errors.Is(err, token.ErrSignature):
		return refusal{http.StatusUnauthorized, "bad_signature", "the token's signature is invalid"}
	case errors.Is(err, token.ErrTooLarge):
		return refusal{http.StatusUnauthorized, "token_too_large", "the token is too large"}
	default:
		return refusal{http.StatusUnauthorized, "invalid_token", "the token is invalid"}
	}
}

// handleValidate answers an ingress's external-auth sub-request: 200 with
// identity headers, 401 for a missing or invalid token, 403 for a valid token
// without the permissions the ingress requires.
func (s *Server) handleValidate(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	raw, ok := bearer(r)
	if !ok {
		// RFC 6750 §3.1: no error code when no credentials were sent.
		w.Header().Set("WWW-Authenticate", `Bearer realm="authframework"`)
		s.writeAPIError(w, r, http.StatusUnauthorized, "missing_token", "a bearer token is required", nil, 0)
		return
	}
	claims, p, ref, handled := s.verifyFrom(w, r, raw) // flood guard: limits.go
	if handled {
		return
	}
	var a *Account
	if ref == nil {
		a, ref = s.checkSubject(claims, p, q)
	}
	if ref != nil {
		s.refuse(w, r, *ref, claims)
		return
	}
	// What the token grants, narrowed by what the account still holds.
	granted, _ := authz.Narrow(a.Permissions, claims.Permissions)
	required := requiredPermissions(q)
	if missing := authz.Missing(granted, required); len(missing) > 0 {
		s.refuse(w, r, refusal{http.StatusForbidden, "insufficient_scope", "the token lacks a required permission: " + strings.Join(missing, " ")}, claims)
		return
	}
	if q.Get("routes") == "true" {
		if ref := s.checkRoutes(r, a); ref != nil {
			s.refuse(w, r, *ref, claims)
			return
		}
	}
	h := w.Header()
	hn := s.opts.Headers
	h.Set(hn.UserID, claims.Subject)
	h.Set(hn.Permissions, strings.Join(granted, ","))
	h.Set(hn.Namespace, claims.Namespace)
	h.Set(hn.ClientID, claims.ClientID)
	h.Set(hn.Roles, strings.Join(a.Roles, ","))
	h.Set(hn.TokenID, claims.ID)
	w.WriteHeader(http.StatusOK)
}

// verify checks a token's signature and claims, from the result cache when
// it has seen the token at this store version.
func (s *Server) verify(raw string) (*token.Claims, *Policy, *refusal) {
	now := s.now()
	version := s.store.Version()
	e, key, hit := s.cache.get(raw, version, now)
	if hit {
		s.metrics.cacheHits.Inc()
		return e.claims, e.policy, nil
	}
	s.metrics.cacheMisses.Inc()
	kid, err := token.KeyID(raw)
	if err != nil {
		ref := refusalFor(err)
		return nil, nil, &ref
	}
	p, ok := s.store.PolicyByKid(kid)
	if !ok {
		ref := refusalFor(token.ErrUnknownKey)
		return nil, nil, &ref
	}
	claims, err := p.Verify(raw)
	if err != nil {
		ref := refusalFor(err)
		return nil, nil, &ref
	}
	// Live no longer than the token, leeway included.
	s.cache.put(key, cached{claims: claims, policy: p, expires: claims.Expiry.Time().Add(p.Skew), version: version})
	return claims, p, nil
}

// checkSubject applies what changes after issue: the account, revocations,
// and the audience this ingress declares.
func (s *Server) checkSubject(c *token.Claims, p *Policy, q url.Values) (*Account, *refusal) {
	a, ok := s.store.AccountByClient(c.Namespace, c.ClientID)
	switch {
	case !ok || a.Policy != p.Key.Name || a.Key.Namespace != p.Key.Namespace:
		return nil, &refusal{http.StatusUnauthorized, "unknown_client", "the token's client no longer exists"}
	case a.Disabled:
		return nil, &refusal{http.StatusUnauthorized, "client_disabled", "the token's client is disabled"}
	case !a.RevokeTokensIssuedBefore.IsZero() && c.IssuedAt.Time().Before(a.RevokeTokensIssuedBefore):
		return nil, &refusal{http.StatusUnauthorized, "token_revoked", "the token was issued before the client's tokens were revoked"}
	case s.store.Revoked(c.ID):
		return nil, &refusal{http.StatusUnauthorized, "token_revoked", "the token has been revoked"}
	}
	for _, aud := range q["aud"] {
		if !c.Audience.Contains(aud) {
			return nil, &refusal{http.StatusUnauthorized, "wrong_audience", "the token is not meant for this service"}
		}
	}
	return a, nil
}

func (s *Server) refuse(w http.ResponseWriter, r *http.Request, ref refusal, c *token.Claims) {
	switch ref.status {
	case http.StatusUnauthorized:
		w.Header().Set("WWW-Authenticate", `Bearer realm="authframework", error="invalid_token", error_description="`+ref.msg+`"`)
	case http.StatusForbidden:
		w.Header().Set("WWW-Authenticate", `Bearer realm="authframework", error="insufficient_scope", error_description="`+ref.msg+`"`)
	}
	kv := []any{"event", "token_refused", "code", ref.code, "status", ref.status, "requestID", requestID(r), "remoteAddr", r.RemoteAddr}
	if orig, ok := originalRequest(r); ok {
		// The path only: a query string may carry credentials.
		path, _, _ := strings.Cut(orig.Path, "?")
		kv = append(kv, "method", orig.Method, "host", orig.Host, "path", path)
	}
	if c != nil {
		kv = append(kv, "clientID", c.ClientID, "namespace", c.Namespace, "tokenID", c.ID)
	}
	s.opts.Audit.Info("token refused", kv...)
	s.writeAPIError(w, r, ref.status, ref.code, ref.msg, nil, 0)
}

// checkRoutes matches the original request against the route rules of the
// account's roles. Refusals are 403: nginx turns anything but 401/403 into
// 500.
func (s *Server) checkRoutes(r *http.Request, a *Account) *refusal {
	orig, ok := originalRequest(r)
	if !ok {
		return &refusal{http.StatusForbidden, "unsafe_path", "the original request URL is malformed"}
	}
	allowed, err := authz.RoutesAllow(s.store.Routes(a), orig)
	switch {
	case err != nil:
		return &refusal{http.StatusForbidden, "unsafe_path", "the request path is ambiguous (encoded slash, backslash or control character)"}
	case !allowed:
		return &refusal{http.StatusForbidden, "route_not_allowed", "no route rule of the client's roles allows this request"}
	}
	return nil
}

// requiredPermissions reads `permission` parameters, repeated or
// comma-separated.
func requiredPermissions(q url.Values) []string {
	var out []string
	for _, v := range q["permission"] {
		for _, p := range strings.Split(v, ",") {
			if p = strings.TrimSpace(p); p != "" {
				out = append(out, p)
			}
		}
	}
	return out
}

// originalRequest is the request the ingress asks about: X-Original-* (nginx),
// else X-Forwarded-* (Traefik), else the path after /validate (Envoy).
func originalRequest(r *http.Request) (authz.Request, bool) {
	if u := r.Header.Get("X-Original-URL"); u != "" {
		parsed, err := url.Parse(u)
		if err != nil {
			return authz.Request{}, false
		}
		return authz.Request{Method: r.Header.Get("X-Original-Method"), Host: parsed.Host, Path: parsed.RequestURI()}, true
	}
	if uri := r.Header.Get("X-Forwarded-Uri"); uri != "" {
		return authz.Request{Method: r.Header.Get("X-Forwarded-Method"), Host: r.Header.Get("X-Forwarded-Host"), Path: uri}, true
	}
	rest := strings.TrimPrefix(r.URL.Path, "/validate")
	if rest == "" {
		rest = "/"
	}
	return authz.Request{Method: r.Method, Host: r.Host, Path: rest}, true
}
