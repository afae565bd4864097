package auth

import (
	"encoding/json"
	"net/http"
	"strconv"
	"time"

	"github.com/authframework/authframework/pkg/serverapi"
)

// apiError is the one JSON shape of every non-OAuth2 error body.
type apiError struct {
	Error     errorDetail `json:"error"`
	RequestID string      `json:"request_id"`
	Timestamp string      `json:"timestamp"`
}

type errorDetail struct {
	Code       string `json:"code"`
	Message    string `json:"message"`
	Details    any    `json:"details,omitempty"`
	RetryAfter int    `json:"retry_after,omitempty"`
}

// oauthError is the RFC 6749 §5.2 error body of the OAuth2 endpoints, with
// the request id and time added.
type oauthError struct {
	Error            string `json:"error"`
	ErrorDescription string `json:"error_description,omitempty"`
	RequestID        string `json:"request_id"`
	Timestamp        string `json:"timestamp"`
}

// Headers that explain a refusal for proxies that drop the body (nginx
// auth_request does).
const (
	HeaderAuthError       = serverapi.HeaderAuthError
	HeaderAuthDescription = serverapi.HeaderAuthErrorDescription
	HeaderRequestID       = serverapi.HeaderRequestID
)

func (s *Server) writeAPIError(w http.ResponseWriter, r *http.Request, status int, code, msg string, details any, retryAfter time.Duration) {
	h := w.Header()
	h.Set(HeaderAuthError, code)
	h.Set(HeaderAuthDescription, msg)
	body := apiError{Error: errorDetail{Code: code, Message: msg, Details: details}, RequestID: requestID(r), Timestamp: s.now().Format(time.RFC3339)}
	if retryAfter > 0 {
		secs := int(retryAfter.Round(time.Second) / time.Second)
		body.Error.RetryAfter = max(secs, 1)
		h.Set("Retry-After", strconv.Itoa(body.Error.RetryAfter))
	}
	writeJSON(w, status, body)
}

func (s *Server) writeOAuthError(w http.ResponseWriter, r *http.Request, status int, code, msg string) {
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Pragma", "no-cache")
	writeJSON(w, status, oauthError{Error: code, ErrorDescription: msg, RequestID: requestID(r), Timestamp: s.now().Format(time.RFC3339)})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
