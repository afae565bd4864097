package auth

import (
	"context"
	"net/http"
	"strings"
	"time"

	"github.com/authframework/authframework/pkg/serverapi"
)

// handleRevoke is RFC 7009 token revocation. The client must authenticate
// and may revoke only its own tokens; like the RFC says, an invalid or
// foreign token still gets 200, so the endpoint tells nothing about tokens.
func (s *Server) handleRevoke(w http.ResponseWriter, r *http.Request) {
	if !s.parseForm(w, r) {
		return
	}
	a, _, ok := s.authenticateClient(w, r)
	if !ok {
		return
	}
	raw := r.PostForm.Get("token")
	if raw == "" {
		s.writeOAuthError(w, r, http.StatusBadRequest, "invalid_request", "token is required")
		return
	}
	// token_type_hint is only a hint to speed up the lookup (RFC 7009 §2.1):
	// whatever it says, the token is looked up as the one kind this server
	// issues, access tokens.
	claims, p, ref := s.verify(raw)
	if ref == nil && bindingRefusal(claims, p, a) != nil {
		// RFC 7009 §2.1: a client may revoke only tokens issued to it — to
		// this account object, not an earlier one of the same name.
		ref = &refusal{}
	}
	if ref != nil {
		w.WriteHeader(http.StatusOK)
		return
	}
	if s.opts.Revocations == nil {
		s.writeOAuthError(w, r, http.StatusServiceUnavailable, "temporarily_unavailable", "revocation storage is not configured")
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
	defer cancel()
	exp := claims.Expiry.Time()
	key := RevocationKey(p.Key, claims.ID)
	if err := s.opts.Revocations.Revoke(ctx, key, exp); err != nil {
		s.opts.Log.Error(err, "storing a revocation", "tokenID", claims.ID)
		w.Header().Set("Retry-After", "1")
		s.writeOAuthError(w, r, http.StatusServiceUnavailable, "temporarily_unavailable", "the revocation could not be stored; retry")
		return
	}
	s.store.SetRevoked(map[string]time.Time{key: exp}, nil)
	s.opts.Audit.Info("token revoked", "event", "token_revoked", "clientID", a.ClientID, "namespace", a.Key.Namespace, "tokenID", claims.ID, "requestID", requestID(r))
	w.WriteHeader(http.StatusOK)
}

// introspection is the RFC 7662 response (serverapi.Introspection).
type introspection = serverapi.Introspection

// handleIntrospect is RFC 7662 introspection for resource servers that
// cannot validate JWTs. The caller authenticates as a client; a token that is
// invalid, revoked, or of a disabled account is just inactive.
func (s *Server) handleIntrospect(w http.ResponseWriter, r *http.Request) {
	if !s.parseForm(w, r) {
		return
	}
	caller, _, ok := s.authenticateClient(w, r)
	if !ok {
		return
	}
	raw := r.PostForm.Get("token")
	if raw == "" {
		s.writeOAuthError(w, r, http.StatusBadRequest, "invalid_request", "token is required")
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	// token_type_hint is only a hint (RFC 7662 §2.1); it is not read.
	claims, p, ref := s.verify(raw)
	var g grant
	if ref == nil {
		g, ref = s.authorize(claims, p, requirements{})
	}
	if ref == nil && caller.Key.Namespace != p.Key.Namespace {
		// Another tenant's token: nothing about it is the caller's business.
		ref = &refusal{}
	}
	if ref != nil {
		writeJSON(w, http.StatusOK, introspection{Active: false})
		return
	}
	// The scope is what /validate would allow now: the token's permissions
	// narrowed by the account's current Roles.
	out := introspection{
		Active: true, Scope: strings.Join(g.permissions, " "), ClientID: claims.ClientID, TokenType: "Bearer",
		Exp: claims.Expiry.Time().Unix(), Iat: claims.IssuedAt.Time().Unix(), Sub: claims.Subject,
		Aud: claims.Audience, Iss: claims.Issuer, Jti: claims.ID, Namespace: claims.Namespace,
	}
	if claims.NotBefore != nil {
		out.Nbf = claims.NotBefore.Time().Unix()
	}
	writeJSON(w, http.StatusOK, out)
}
