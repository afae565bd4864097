package auth

import (
	"errors"
	"net/http"
	"slices"
	"strings"

	"github.com/authframework/authframework/internal/authz"
	"github.com/authframework/authframework/internal/token"
)

// refusal is a decision against the caller of an external-auth endpoint:
// a code from refusalKinds and a message that echoes nothing secret.
type refusal struct {
	status int
	code   string
	msg    string
}

// refusalKinds is the one table from a refusal's code to its HTTP status
// and its RFC 6750 §3.1 error code (for WWW-Authenticate; "" for none).
// Refusals are 401 or 403 only: nginx's auth_request turns every other
// status into a 500.
var refusalKinds = map[string]struct {
	status  int
	rfc6750 string
}{
	"missing_token":           {http.StatusUnauthorized, ""}, // RFC 6750 §3.1: no code without credentials
	"invalid_token":           {http.StatusUnauthorized, "invalid_token"},
	"token_expired":           {http.StatusUnauthorized, "invalid_token"},
	"token_not_yet_valid":     {http.StatusUnauthorized, "invalid_token"},
	"token_too_large":         {http.StatusUnauthorized, "invalid_token"},
	"bad_signature":           {http.StatusUnauthorized, "invalid_token"},
	"unknown_key":             {http.StatusUnauthorized, "invalid_token"},
	"wrong_audience":          {http.StatusUnauthorized, "invalid_token"},
	"wrong_namespace":         {http.StatusUnauthorized, "invalid_token"},
	"unknown_client":          {http.StatusUnauthorized, "invalid_token"},
	"client_disabled":         {http.StatusUnauthorized, "invalid_token"},
	"token_revoked":           {http.StatusUnauthorized, "invalid_token"},
	"too_many_invalid_tokens": {http.StatusUnauthorized, "invalid_token"},
	"insufficient_scope":      {http.StatusForbidden, "insufficient_scope"},
	"route_not_allowed":       {http.StatusForbidden, ""},
	codeUnsafePath:            {http.StatusForbidden, ""},
	codeConflictingRequest:    {http.StatusForbidden, ""},
	codeMissingRequest:        {http.StatusForbidden, ""},
	codeMalformedRequest:      {http.StatusForbidden, ""},
	codeBadRequirements:       {http.StatusForbidden, ""},
}

// newRefusal makes a refusal of a kind in refusalKinds.
func newRefusal(code, msg string) *refusal {
	k, ok := refusalKinds[code]
	if !ok {
		panic("refusal code without a kind: " + code) // a programming error; TestRefusalKinds covers every code
	}
	return &refusal{status: k.status, code: code, msg: msg}
}

// refusalFor says why a token was refused without echoing it.
func refusalFor(err error) *refusal {
	switch {
	case errors.Is(err, token.ErrExpired):
		return newRefusal("token_expired", "the token has expired")
	case errors.Is(err, token.ErrNotYetValid), errors.Is(err, token.ErrIssuedInFuture):
		return newRefusal("token_not_yet_valid", "the token is not valid yet")
	case errors.Is(err, token.ErrAudience):
		return newRefusal("wrong_audience", "the token is not meant for this service")
	case errors.Is(err, token.ErrUnknownKey):
		return newRefusal("unknown_key", "the token's signing key is unknown or revoked")
	case errors.Is(err, token.ErrSignature):
		return newRefusal("bad_signature", "the token's signature is invalid")
	case errors.Is(err, token.ErrTooLarge):
		return newRefusal("token_too_large", "the token is too large")
	default:
		return newRefusal("invalid_token", "the token is invalid")
	}
}

// validateHandler answers an external-auth call of one proxy shape: 200
// with identity headers, 401 for a missing or invalid token, 403 for a valid
// token without what the proxy's configuration requires, or for a call
// whose original request is missing, malformed or contradicted.
func (s *Server) validateHandler(sh shape) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		ea, ref := readExternalAuth(sh, r)
		if ref != nil {
			s.refuse(w, r, *ref, nil, ea)
			return
		}
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
		var g grant
		if ref == nil {
			g, ref = s.authorize(claims, p, ea.required)
		}
		if ref == nil {
			ref = requirePermissions(g, ea.required.permissions)
		}
		if ref == nil && ea.required.routes {
			ref = s.checkRoutes(ea.original, g.account)
		}
		if ref != nil {
			s.refuse(w, r, *ref, claims, ea)
			return
		}
		a := g.account
		h := w.Header()
		hn := s.opts.Headers // canonical (NewServer)
		// Every identity repeated to the upstream is the account's, which
		// authorize has checked the token's claims against. One array backs
		// the six values; each capped at one, so nothing appends over another.
		v := [...]string{a.ClientID, strings.Join(g.permissions, ","), a.Key.Namespace, a.ClientID, strings.Join(a.Roles, ","), claims.ID}
		vs := v[:]
		for i, name := range [...]string{hn.UserID, hn.Permissions, hn.Namespace, hn.ClientID, hn.Roles, hn.TokenID} {
			h[name] = vs[i : i+1 : i+1]
		}
		w.WriteHeader(http.StatusOK)
	}
}

// verify checks a token's signature and claims, from the result cache when
// it has seen the token and nothing the result depends on has changed.
func (s *Server) verify(raw string) (*token.Claims, *Policy, *refusal) {
	e, key, hit := s.cache.get(raw, s.now())
	if hit && s.store.current(e.policy, e.claims, e.generation) {
		s.metrics.cacheHits.Inc()
		return e.claims, e.policy, nil
	}
	return s.verifyMiss(raw, key)
}

// verifyMiss checks the signature and claims of a token the result cache
// does not hold (key: its cache key, resultCache.get) and caches a success.
func (s *Server) verifyMiss(raw string, key [32]byte) (*token.Claims, *Policy, *refusal) {
	s.metrics.cacheMisses.Inc()
	// The header is read once and the key looked up once, by kid, among
	// our own published keys; the policy that publishes it verifies.
	h, err := token.ParseHeader(raw)
	if err != nil {
		return nil, nil, refusalFor(err)
	}
	if h.KeyID() == "" {
		return nil, nil, refusalFor(token.ErrMissingKeyID)
	}
	p, pub, ok := s.store.KeyByKid(h.KeyID())
	if !ok {
		return nil, nil, refusalFor(token.ErrUnknownKey)
	}
	claims, err := p.verifier.VerifyParsed(raw, h, pub)
	if err != nil {
		return nil, nil, refusalFor(err)
	}
	// Live no longer than the token, leeway included.
	s.cache.put(key, cached{claims: claims, policy: p, expires: claims.Expiry.Time().Add(p.Skew), generation: s.store.generation(claims)})
	return claims, p, nil
}

// grant is what a verified token is allowed now: its account as the store
// has it, and the token's permissions narrowed by what the account's Roles
// still grant.
type grant struct {
	account     *Account
	permissions []string
}

// authorize is the one decision about a verified token that every endpoint
// accepting tokens uses (/validate, /forward-auth, /ext-authz, /introspect,
// /revoke): the token must be bound to the account object it names (same
// UID, policy, namespace, client id and subject), the account enabled, the
// token not revoked, and it must meet the tenancy requirements of req
// (audiences and namespaces; see tenantRefusal).
func (s *Server) authorize(c *token.Claims, p *Policy, req requirements) (grant, *refusal) {
	a, _ := s.store.AccountByClient(c.Namespace, c.ClientID)
	if ref := accountRefusal(c, p, a, s.store.Revoked(p.Key, c.ID)); ref != nil {
		return grant{}, ref
	}
	if ref := tenantRefusal(c, p, req, s.store.AudienceOwner); ref != nil {
		return grant{}, ref
	}
	perms, _ := authz.Narrow(a.Permissions, c.Permissions)
	return grant{account: a, permissions: perms}, nil
}

// tenantRefusal refuses a token of another tenant than the caller asks for.
// Each required audience must be in the token. Audiences are not
// namespaced, so another namespace could list the same one; unless the
// caller names the namespaces it accepts (`namespace=`), a required
// audience admits only tokens of the namespace that owns it — the one whose
// TokenPolicy listed it first.
func tenantRefusal(c *token.Claims, p *Policy, req requirements, owner func(string) (string, bool)) *refusal {
	for _, aud := range req.audiences {
		if !c.Audience.Contains(aud) {
			return newRefusal("wrong_audience", "the token is not meant for this service")
		}
		if len(req.namespaces) == 0 {
			if ns, ok := owner(aud); !ok || ns != p.Key.Namespace {
				return newRefusal("wrong_audience", "the token's namespace does not own this audience; name the namespaces this service accepts with namespace=")
			}
		}
	}
	if len(req.namespaces) > 0 && !slices.Contains(req.namespaces, p.Key.Namespace) {
		return newRefusal("wrong_namespace", "the token's account is not in a namespace this service accepts")
	}
	return nil
}

// accountRefusal decides whether a token verified by policy p still belongs
// to account a (nil when the store has none) and may be used. Like
// Kubernetes' service-account authenticator, it binds the token to the
// object's UID: an account deleted and created again under the same name is
// another account.
func accountRefusal(c *token.Claims, p *Policy, a *Account, revoked bool) *refusal {
	if ref := bindingRefusal(c, p, a); ref != nil {
		return ref
	}
	switch {
	case a.Disabled:
		return newRefusal("client_disabled", "the token's client is disabled")
	case !a.RevokeTokensIssuedBefore.IsZero() && c.IssuedAt.Time().Before(a.RevokeTokensIssuedBefore):
		return newRefusal("token_revoked", "the token was issued before the client's tokens were revoked")
	case revoked:
		return newRefusal("token_revoked", "the token has been revoked")
	}
	return nil
}

// bindingRefusal refuses a token that is not bound to account a: another
// object (UID), policy or namespace, or identity claims that differ from the
// account's.
func bindingRefusal(c *token.Claims, p *Policy, a *Account) *refusal {
	switch {
	case a == nil || a.Policy != p.Key.Name || a.Key.Namespace != p.Key.Namespace || string(a.UID) != c.AccountUID:
		return newRefusal("unknown_client", "the token was issued to an account object that no longer exists (deleted, or deleted and created again)")
	case c.Subject != a.ClientID || c.ClientID != a.ClientID || c.Namespace != a.Key.Namespace || (c.AccountName != "" && c.AccountName != a.Key.Name):
		return newRefusal("invalid_token", "the token's identity claims do not match its account")
	}
	return nil
}

// requirePermissions refuses a grant that lacks a required permission.
func requirePermissions(g grant, required []string) *refusal {
	if missing := authz.Missing(g.permissions, required); len(missing) > 0 {
		return newRefusal("insufficient_scope", "the token lacks a required permission: "+strings.Join(missing, " "))
	}
	return nil
}

func (s *Server) refuse(w http.ResponseWriter, r *http.Request, ref refusal, c *token.Claims, ea externalAuth) {
	if rfc := refusalKinds[ref.code].rfc6750; rfc != "" {
		w.Header().Set("WWW-Authenticate", `Bearer realm="authframework", error="`+rfc+`", error_description="`+ref.msg+`"`)
	}
	kv := []any{"event", "token_refused", "code", ref.code, "status", ref.status, "requestID", requestID(r), "remoteAddr", r.RemoteAddr}
	if ea.has {
		// The path only: a query string may carry credentials.
		path, _, _ := strings.Cut(ea.original.Path, "?")
		kv = append(kv, "method", truncate(ea.original.Method, 16), "host", truncate(ea.original.Host, 256), "path", truncate(path, 256))
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
func (s *Server) checkRoutes(orig authz.Request, a *Account) *refusal {
	allowed, err := s.store.RoutesAllow(a, orig)
	switch {
	case err != nil:
		return newRefusal(codeUnsafePath, "the request path is ambiguous (encoded slash, backslash or control character)")
	case !allowed:
		return newRefusal("route_not_allowed", "no route rule of the client's roles allows this request")
	}
	return nil
}

// truncate bounds an attacker-supplied string before it is logged.
func truncate(v string, n int) string {
	if len(v) > n {
		return v[:n]
	}
	return v
}
