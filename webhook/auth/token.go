package auth

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/authframework/authframework/internal/authz"
	"github.com/authframework/authframework/internal/credentials"
	"github.com/authframework/authframework/internal/token"
	"github.com/authframework/authframework/pkg/serverapi"
)

// tokenResponse is the RFC 6749 §5.1 response (serverapi.TokenResponse).
type tokenResponse = serverapi.TokenResponse

// dummyVerifier is compared against when a client id is unknown, so an
// unknown client costs the same time as a wrong secret.
var dummyVerifier = credentials.Verifier{Current: credentials.Hash("unknown-client")}

// authenticateClient reads client_secret_basic or client_secret_post
// credentials (not both, RFC 6749 §2.3) and checks them. On failure it has
// written the error response.
func (s *Server) authenticateClient(w http.ResponseWriter, r *http.Request) (*Account, *Policy, bool) {
	id, secret, basic := r.BasicAuth()
	if basic {
		// RFC 6749 §2.3.1: Basic credentials are form-urlencoded.
		var err1, err2 error
		id, err1 = url.QueryUnescape(id)
		secret, err2 = url.QueryUnescape(secret)
		if err1 != nil || err2 != nil {
			s.writeOAuthError(w, r, http.StatusBadRequest, "invalid_request", "malformed client credentials")
			return nil, nil, false
		}
	}
	postID, postSecret := r.PostForm.Get("client_id"), r.PostForm.Get("client_secret")
	switch {
	case basic && (postSecret != ""):
		s.writeOAuthError(w, r, http.StatusBadRequest, "invalid_request", "use one client authentication method, not two")
		return nil, nil, false
	case basic && postID != "" && postID != id:
		// RFC 6749 §3.2.1 lets a client repeat its client_id in the body; a
		// different one names another client.
		s.writeOAuthError(w, r, http.StatusBadRequest, "invalid_request", "client_id in the body differs from the Basic credentials")
		return nil, nil, false
	case !basic:
		id, secret = postID, postSecret
	}
	if id == "" || secret == "" {
		w.Header().Set("WWW-Authenticate", `Basic realm="authframework"`)
		s.writeOAuthError(w, r, http.StatusUnauthorized, "invalid_client", "client authentication is required")
		return nil, nil, false
	}
	// Known and unknown ids take the same path from here: one secret
	// comparison, one failure count, one answer.
	now := s.now()
	a, p, known := s.store.Client(id)
	usable := known && p != nil && a.HasVerifier
	verifier := dummyVerifier
	if usable {
		verifier = a.Verifier
	}
	if matched := verifier.Check(secret, now); !matched || !usable {
		why := "wrong secret"
		if !usable {
			why = "unknown client"
		}
		// A correct secret never reaches this: brute-force protection
		// throttles failures only, so it cannot lock the real client out.
		logged := id
		if !known {
			logged = unknownClientLabel(id)
		}
		if wait, throttled := s.auth.failed(id, s.source(r), now); throttled {
			s.auditFailure(r, logged, why+"; throttled")
			w.Header().Set("Retry-After", seconds(wait))
			s.writeOAuthError(w, r, http.StatusTooManyRequests, "invalid_client", "client authentication failed; too many failed attempts from this address, retry later")
			return nil, nil, false
		}
		s.auditFailure(r, logged, why)
		w.Header().Set("WWW-Authenticate", `Basic realm="authframework"`)
		s.writeOAuthError(w, r, http.StatusUnauthorized, "invalid_client", "client authentication failed")
		return nil, nil, false
	}
	// The policy's request rate, a limit on what an authenticated client
	// may ask for, not brute-force protection.
	if ok, retry := s.limits.allow(a.ClientID, p, now); !ok {
		w.Header().Set("Retry-After", seconds(retry))
		s.writeOAuthError(w, r, http.StatusTooManyRequests, "temporarily_unavailable", "too many requests for this client; retry later")
		return nil, nil, false
	}
	return a, p, true
}

// unknownClientLabel is how an unknown client id is logged: a SHA-256
// prefix, never the value. A caller who swaps id and secret sends its secret
// as the id; a label still lets an operator count repeated attempts.
func unknownClientLabel(id string) string {
	sum := sha256.Sum256([]byte(id))
	return "unknown:" + hex.EncodeToString(sum[:6])
}

func (s *Server) auditFailure(r *http.Request, clientID, why string) {
	s.opts.Audit.Info("client authentication failed", "event", "client_auth_failed", "clientID", clientID, "reason", why,
		"remoteAddr", r.RemoteAddr, "requestID", requestID(r))
}

// parseForm reads a bounded application/x-www-form-urlencoded body.
func (s *Server) parseForm(w http.ResponseWriter, r *http.Request) bool {
	r.Body = http.MaxBytesReader(w, r.Body, MaxFormBytes)
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/x-www-form-urlencoded") {
		s.writeOAuthError(w, r, http.StatusBadRequest, "invalid_request", "the body must be application/x-www-form-urlencoded")
		return false
	}
	if err := r.ParseForm(); err != nil {
		s.writeOAuthError(w, r, http.StatusBadRequest, "invalid_request", "the form body is malformed or too large")
		return false
	}
	for k, vs := range r.PostForm {
		if len(vs) > 1 && k != "resource" {
			// RFC 6749 §3.1: parameters must not be repeated.
			s.writeOAuthError(w, r, http.StatusBadRequest, "invalid_request", "parameter "+k+" is repeated")
			return false
		}
	}
	return true
}

// handleToken is the OAuth2 token endpoint: the client credentials grant
// (RFC 6749 §4.4) and, when enabled, token exchange of Kubernetes
// service-account tokens (RFC 8693).
func (s *Server) handleToken(w http.ResponseWriter, r *http.Request) {
	if !s.parseForm(w, r) {
		return
	}
	switch gt := r.PostForm.Get("grant_type"); {
	case gt == "client_credentials":
		s.handleClientCredentials(w, r)
	case gt == serverapi.GrantTypeTokenExchange && s.exchangeEnabled():
		s.handleTokenExchange(w, r)
	case gt == serverapi.GrantTypeTokenExchange:
		s.writeOAuthError(w, r, http.StatusBadRequest, "unsupported_grant_type",
			"token exchange is not enabled on this server (--"+serverapi.FlagTokenExchangeAudience+")")
	case gt == "":
		s.writeOAuthError(w, r, http.StatusBadRequest, "invalid_request", "grant_type is required")
	default:
		s.writeOAuthError(w, r, http.StatusBadRequest, "unsupported_grant_type", "the supported grant types are client_credentials and "+serverapi.GrantTypeTokenExchange)
	}
}

// handleClientCredentials is the client credentials grant (RFC 6749 §4.4).
func (s *Server) handleClientCredentials(w http.ResponseWriter, r *http.Request) {
	a, p, ok := s.authenticateClient(w, r)
	if !ok {
		return
	}
	if a.Disabled {
		s.writeOAuthError(w, r, http.StatusBadRequest, "unauthorized_client", "the client is disabled")
		return
	}
	s.grantAndIssue(w, r, a, p, nil, "token_issued")
}

// grantAndIssue is what every grant ends with: the requested scope and
// audience narrowed to what the account may have (authz.Grant), a token
// minted, counted, audited (event, then auditKV) and returned. actor is the
// `act` claim of an exchanged token, nil otherwise; an exchanged token's
// response says its issued_token_type (RFC 8693 §2.2.1).
func (s *Server) grantAndIssue(w http.ResponseWriter, r *http.Request, a *Account, p *Policy, actor *token.Actor, event string, auditKV ...any) {
	if p.ActiveKey == "" {
		w.Header().Set("Retry-After", "5")
		s.writeOAuthError(w, r, http.StatusServiceUnavailable, "temporarily_unavailable", "the client's token policy has no active signing key yet")
		return
	}
	audience, perms, err := authz.Grant(a.Permissions, p.Audiences, authz.GrantRequest{
		Scope: strings.Fields(r.PostForm.Get("scope")), Audience: r.PostForm.Get("audience"), Resources: r.PostForm["resource"],
	})
	var scopeErr *authz.ScopeError
	switch {
	case errors.As(err, &scopeErr):
		s.writeOAuthError(w, r, http.StatusBadRequest, "invalid_scope", err.Error())
		return
	case err != nil:
		s.writeOAuthError(w, r, http.StatusBadRequest, "invalid_target", err.Error())
		return
	}
	raw, claims, err := s.issue(a, p, audience, perms, actor)
	if errors.Is(err, token.ErrTooLargeToIssue) {
		// RFC 6749 §5.2: the requested (or default) scope cannot be granted as
		// one token; the error says how large it would be and what to do.
		s.writeOAuthError(w, r, http.StatusBadRequest, "invalid_scope", err.Error())
		return
	}
	if err != nil {
		s.opts.Log.Error(err, "issuing a token", "clientID", a.ClientID)
		s.writeOAuthError(w, r, http.StatusInternalServerError, "server_error", "the token could not be issued")
		return
	}
	s.metrics.issued.WithLabelValues(a.Key.Namespace, p.Key.Name).Inc()
	s.opts.Audit.Info("token issued", append([]any{"event", event, "clientID", a.ClientID, "namespace", a.Key.Namespace,
		"tokenID", claims.ID, "audience", audience, "expiresAt", claims.Expiry.Time().UTC().Format(time.RFC3339), "requestID", requestID(r)}, auditKV...)...)
	resp := tokenResponse{AccessToken: raw, TokenType: "Bearer", ExpiresIn: int(p.TTL / time.Second), Scope: strings.Join(perms, " ")}
	if actor != nil {
		resp.IssuedTokenType = serverapi.TokenTypeAccessToken
	}
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Pragma", "no-cache")
	writeJSON(w, http.StatusOK, resp)
}

func (s *Server) issue(a *Account, p *Policy, audience string, perms []string, actor *token.Actor) (string, token.Claims, error) {
	return token.Mint(p.Issuer, p.TTL, p.Published[p.ActiveKey], s.opts.Clock, rand.Reader,
		token.Subject{ClientID: a.ClientID, Namespace: a.Key.Namespace, UID: string(a.UID), Name: a.Key.Name, Roles: a.Roles, Extra: a.Extra, Actor: actor}, audience, perms)
}

func seconds(d time.Duration) string {
	n := int((d + time.Second - 1) / time.Second)
	return strconv.Itoa(max(n, 1))
}
