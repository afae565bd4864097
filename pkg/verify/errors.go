package verify

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/authframework/authframework/internal/token"
	"github.com/authframework/authframework/pkg/serverapi"
)

// Refusal codes: Error.Code, the `error.code` of the JSON body and the
// X-Auth-Error header. They are the auth server's codes for the same
// refusals.
const (
	CodeMissingToken      = "missing_token"       // 401, no RFC 6750 error (§3.1)
	CodeInvalidToken      = "invalid_token"       // 401 invalid_token
	CodeTokenExpired      = "token_expired"       // 401 invalid_token
	CodeTokenNotYetValid  = "token_not_yet_valid" // 401 invalid_token
	CodeTokenTooLarge     = "token_too_large"     // 401 invalid_token
	CodeBadSignature      = "bad_signature"       // 401 invalid_token
	CodeUnknownKey        = "unknown_key"         // 401 invalid_token: kid not published, or revoked
	CodeWrongAudience     = "wrong_audience"      // 401 invalid_token
	CodeTokenRevoked      = "token_revoked"       // 401 invalid_token
	CodeClientDisabled    = "client_disabled"     // 401 invalid_token
	CodeUnknownClient     = "unknown_client"      // 401 invalid_token: the account was deleted
	CodeInsufficientScope = "insufficient_scope"  // 403 insufficient_scope
	// CodeUnavailable: the verifier cannot decide now (no signing keys could
	// be fetched yet, or revocations are stale under StaleRefuse); 503 with
	// Retry-After. Not the caller's mistake, so not a 4xx.
	CodeUnavailable = "temporarily_unavailable"
)

// Error is a refusal: what the middleware answers and what Verify returns.
// Its message never echoes the token.
type Error struct {
	// Status is the HTTP status: 401, 403 or 503.
	Status int
	// Code is one of the Code constants.
	Code string
	// Message says why, for people.
	Message string
	// Scope, for CodeInsufficientScope, lists the permissions required
	// (RFC 6750 §3 `scope`).
	Scope []string
	// RetryAfter, for CodeUnavailable, says when to try again.
	RetryAfter time.Duration
}

func (e *Error) Error() string { return e.Code + ": " + e.Message }

// rfc6750 is the RFC 6750 §3.1 error code of e, "" for none.
func (e *Error) rfc6750() string {
	switch {
	case e.Code == CodeMissingToken || e.Code == CodeUnavailable:
		return ""
	case e.Status == http.StatusForbidden:
		return "insufficient_scope"
	}
	return "invalid_token"
}

func refusal(code, msg string) *Error {
	return &Error{Status: http.StatusUnauthorized, Code: code, Message: msg}
}

var (
	errMissingToken = refusal(CodeMissingToken, "a bearer token is required")
	errTooLarge     = refusal(CodeTokenTooLarge, "the token is too large")
)

// refusalFor maps internal/token's errors to the server's refusal codes;
// the messages are the server's too.
func refusalFor(err error) *Error {
	switch {
	case errors.Is(err, token.ErrExpired):
		return refusal(CodeTokenExpired, "the token has expired")
	case errors.Is(err, token.ErrNotYetValid), errors.Is(err, token.ErrIssuedInFuture):
		return refusal(CodeTokenNotYetValid, "the token is not valid yet")
	case errors.Is(err, token.ErrAudience):
		return refusal(CodeWrongAudience, "the token is not meant for this service")
	case errors.Is(err, token.ErrUnknownKey):
		return refusal(CodeUnknownKey, "the token's signing key is unknown or revoked")
	case errors.Is(err, token.ErrSignature):
		return refusal(CodeBadSignature, "the token's signature is invalid")
	case errors.Is(err, token.ErrTooLarge):
		return errTooLarge
	default:
		return refusal(CodeInvalidToken, "the token is invalid")
	}
}

func unavailable(msg string, retryAfter time.Duration) *Error {
	return &Error{Status: http.StatusServiceUnavailable, Code: CodeUnavailable, Message: msg, RetryAfter: retryAfter}
}

// errorBody is the auth server's one JSON shape of an error:
// {"error":{"code","message","retry_after"},"request_id","timestamp"}.
type errorBody struct {
	Error struct {
		Code       string `json:"code"`
		Message    string `json:"message"`
		Details    any    `json:"details,omitempty"`
		RetryAfter int    `json:"retry_after,omitempty"`
	} `json:"error"`
	RequestID string `json:"request_id"`
	Timestamp string `json:"timestamp"`
}

// WriteError answers a refusal as RFC 6750 §3 says, with the auth server's
// JSON error body: 401 with `WWW-Authenticate: Bearer realm=..., error=
// "invalid_token", error_description=...`, 403 with error=
// "insufficient_scope" and the required scope, 503 with Retry-After. The
// request id is the caller's X-Request-ID when it is sane, else a new one;
// it is echoed in the header. now stamps the body.
func WriteError(w http.ResponseWriter, r *http.Request, realm string, e *Error, now time.Time) {
	h := w.Header()
	challenge := "Bearer realm=" + quote(realm)
	if code := e.rfc6750(); code != "" {
		challenge += ", error=" + quote(code) + ", error_description=" + quote(e.Message)
		if len(e.Scope) > 0 {
			challenge += ", scope=" + quote(strings.Join(e.Scope, " "))
		}
	}
	if e.Status != http.StatusServiceUnavailable {
		h.Set("WWW-Authenticate", challenge)
	}
	h.Set(serverapi.HeaderAuthError, e.Code)
	h.Set(serverapi.HeaderAuthErrorDescription, e.Message)
	id := r.Header.Get(serverapi.HeaderRequestID)
	if !serverapi.ValidRequestID(id) {
		id = newRequestID()
	}
	h.Set(serverapi.HeaderRequestID, id)
	var body errorBody
	body.Error.Code, body.Error.Message = e.Code, e.Message
	if len(e.Scope) > 0 {
		body.Error.Details = map[string][]string{"required": e.Scope}
	}
	if e.RetryAfter > 0 {
		body.Error.RetryAfter = max(int(e.RetryAfter.Round(time.Second)/time.Second), 1)
		h.Set("Retry-After", strconv.Itoa(body.Error.RetryAfter))
	}
	body.RequestID, body.Timestamp = id, now.UTC().Format(time.RFC3339)
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(e.Status)
	_ = json.NewEncoder(w).Encode(body)
}

// quote is an RFC 9110 quoted-string of s (auth-param values).
func quote(s string) string {
	return strconv.Quote(strings.Map(func(r rune) rune {
		if r < ' ' || r > '~' {
			return -1
		}
		return r
	}, s))
}

func newRequestID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// bearer extracts the token of an `Authorization: Bearer` header (RFC 6750
// §2.1; the scheme is case-insensitive).
func bearer(h http.Header) (string, bool) {
	v := h.Get("Authorization")
	if len(v) < 7 || !strings.EqualFold(v[:7], "bearer ") {
		return "", false
	}
	tok := strings.TrimSpace(v[7:])
	return tok, tok != ""
}
