// Package serverapi is the auth server's contract with everything that
// talks to it: the paths it serves, the headers it answers with, the metric
// names it exposes and the command-line flags it takes. The server
// (webhook/auth and `authframework server`) defines its API with these
// constants and the operator's smoke checks, analysis and pod templates
// use the same ones, so neither side can drift from the other. It imports
// nothing but the standard library.
package serverapi

import (
	"crypto/sha256"
	"encoding/hex"
)

// Paths served by the auth server.
const (
	// PathToken is the OAuth2 token endpoint (RFC 6749 §3.2), POST only.
	PathToken = "/token"
	// PathRevoke is token revocation (RFC 7009), POST only.
	PathRevoke = "/revoke"
	// PathIntrospect is token introspection (RFC 7662), POST only.
	PathIntrospect = "/introspect"
	// PathValidate is for ingress-nginx `auth-url` and nginx `auth_request`:
	// the original request comes from X-Original-URL and X-Original-Method.
	PathValidate = "/validate"
	// PathForwardAuth is for Traefik ForwardAuth: the original request comes
	// from X-Forwarded-Method, X-Forwarded-Host and X-Forwarded-Uri.
	PathForwardAuth = "/forward-auth"
	// PathExtAuthz is the prefix for Envoy ext_authz over HTTP; the original
	// path follows it, after optional `;name=value` requirements.
	PathExtAuthz = "/ext-authz"
	// PathHealthz answers 200 while the process serves.
	PathHealthz = "/healthz"
	// PathReadyz answers 200 once the informers have synced, 503 before.
	PathReadyz = "/readyz"
	// PathMetrics is the Prometheus exposition.
	PathMetrics = "/metrics"
	// PathTokenReview is the Kubernetes webhook token authenticator
	// (authentication.k8s.io/v1 TokenReview), POST only. It is served only on
	// the mutual-TLS listener of FlagTokenReviewListen, never on FlagListen.
	PathTokenReview = "/tokenreview"
	// PathRevocations is the revocation stream, GET only: Server-Sent Events
	// (text/event-stream) of RevocationEvents for the policy whose valid
	// access token the caller presents as a bearer token.
	PathRevocations = "/revocations"
)

// The revocation stream (PathRevocations).
//
// Each event is one Server-Sent Event: `id:` is its Cursor, `event:` its
// Type, `data:` the RevocationEvent as one line of JSON. A client resumes
// after a disconnect by sending the last Cursor it saw as the Last-Event-ID
// header (or the `cursor` query parameter); when the server still holds the
// events after it, the stream continues from there. Otherwise (first
// connection, a cursor of another replica or too old) the stream starts with
// EventSnapshot: the client drops what it knew, receives the current state as
// events, then EventSynced. EventBookmark arrives at least every
// RevocationHeartbeat, so a client can tell a quiet stream from a dead one.
// The server ends the stream when the caller's token expires; the client
// reconnects with a fresh one.
const (
	// EventSnapshot: forget the state; the full state follows.
	EventSnapshot = "snapshot"
	// EventSynced: the client now holds the full state as of Cursor.
	EventSynced = "synced"
	// EventTokenRevoked: the token whose RevocationKey is RevocationKey is
	// revoked until Expiry, when it expires anyway (RFC 7009).
	EventTokenRevoked = "token_revoked"
	// EventAccount: the account AccountUID (ClientID) is Disabled or refuses
	// tokens issued before RevokedBefore; both zero clears them.
	EventAccount = "account"
	// EventAccountDeleted: every token of AccountUID is refused (the account
	// object is gone; tokens are bound to its UID).
	EventAccountDeleted = "account_deleted"
	// EventKeyRevoked: tokens signed with KeyID are refused; drop the key.
	EventKeyRevoked = "key_revoked"
	// EventBookmark: the stream is alive at Cursor.
	EventBookmark = "bookmark"

	// RevocationHeartbeatSeconds is the longest quiet time between events.
	RevocationHeartbeatSeconds = 10
)

// RevocationEvent is the data of one event of PathRevocations. Times are
// Unix seconds.
type RevocationEvent struct {
	Type   string `json:"type"`
	Cursor string `json:"cursor"`
	// Policy is the TokenPolicy, "namespace/name", and Issuer its issuer;
	// every event of a stream has the same.
	Policy string `json:"policy,omitempty"`
	Issuer string `json:"iss,omitempty"`
	// RevocationKey and Expiry: EventTokenRevoked. The server keeps no
	// token ids, only their RevocationKey.
	RevocationKey string `json:"revocation_key,omitempty"`
	Expiry        int64  `json:"exp,omitempty"`
	// AccountUID, ClientID, Disabled, RevokedBefore: EventAccount and
	// EventAccountDeleted. Tokens are bound to the account by their
	// account_uid claim.
	AccountUID    string `json:"account_uid,omitempty"`
	ClientID      string `json:"client_id,omitempty"`
	Disabled      bool   `json:"disabled,omitempty"`
	RevokedBefore int64  `json:"revoked_before,omitempty"`
	// KeyID: EventKeyRevoked.
	KeyID string `json:"kid,omitempty"`
}

// OAuth2 token exchange (RFC 8693) identifiers.
const (
	// GrantTypeTokenExchange is the grant_type of a token exchange (RFC 8693 §2.1).
	GrantTypeTokenExchange = "urn:ietf:params:oauth:grant-type:token-exchange"
	// TokenTypeJWT is the subject_token_type of a Kubernetes service-account
	// token (RFC 8693 §3).
	TokenTypeJWT = "urn:ietf:params:oauth:token-type:jwt"
	// TokenTypeAccessToken is the issued_token_type of what the exchange
	// returns: an ordinary access token of the mapped ServiceAccount
	// (RFC 8693 §2.2.1, §3).
	TokenTypeAccessToken = "urn:ietf:params:oauth:token-type:access_token"
)

// IssuerPath is the path under which a TokenPolicy's discovery document and
// JWKS are served: /issuers/<namespace>/<policy>.
func IssuerPath(namespace, policy string) string {
	return "/issuers/" + namespace + "/" + policy
}

// JWKSPath is a policy's JSON Web Key Set (RFC 7517).
func JWKSPath(namespace, policy string) string { return IssuerPath(namespace, policy) + "/jwks.json" }

// DiscoveryPath is a policy's OpenID Connect discovery document.
func DiscoveryPath(namespace, policy string) string {
	return IssuerPath(namespace, policy) + "/.well-known/openid-configuration"
}

// Response headers.
const (
	// HeaderAuthError carries the code of a refusal (`token_expired`, ...):
	// nginx drops the body of an auth sub-request's answer.
	HeaderAuthError = "X-Auth-Error"
	// HeaderAuthErrorDescription carries the refusal's message.
	HeaderAuthErrorDescription = "X-Auth-Error-Description"
	// HeaderRequestID is echoed, or generated, on every response.
	HeaderRequestID = "X-Request-ID"
)

// ValidRequestID reports whether id is a HeaderRequestID value worth
// echoing: what a proxy sends, at most 128 printable ASCII characters
// without spaces. Anything else is replaced by a fresh id.
func ValidRequestID(id string) bool {
	if id == "" || len(id) > 128 {
		return false
	}
	for _, c := range id {
		if c <= ' ' || c > '~' {
			return false
		}
	}
	return true
}

// Metrics.
const (
	// MetricRequests counts requests by LabelEndpoint and LabelCode.
	MetricRequests = "authframework_requests_total"
	// MetricRequestDuration is request latency by LabelEndpoint, seconds.
	MetricRequestDuration = "authframework_request_duration_seconds"
	// MetricValidationCache counts result cache lookups by `result`.
	MetricValidationCache = "authframework_validation_cache_total"
	// MetricTokensIssued counts issued tokens by `namespace` and `policy`.
	MetricTokensIssued = "authframework_tokens_issued_total"
	// MetricTokenExchangeReviews counts the TokenReviews token exchange asks
	// of the Kubernetes API, by `result` (authenticated, unauthenticated,
	// error) and the lookups it answered from its cache (cached_*).
	MetricTokenExchangeReviews = "authframework_token_exchange_reviews_total"
	// MetricTokenExchangeBreaker is the state of the circuit breaker in front
	// of the Kubernetes API's TokenReview: 0 closed, 1 half-open, 2 open.
	MetricTokenExchangeBreaker = "authframework_token_exchange_breaker_state"
	// MetricRevocationStreams is the number of open revocation streams.
	MetricRevocationStreams = "authframework_revocation_streams"
	// MetricTokenReviewWebhook counts /tokenreview answers by `result`
	// (authenticated, unauthenticated, malformed).
	MetricTokenReviewWebhook = "authframework_tokenreview_webhook_total"

	// LabelEndpoint and LabelCode are MetricRequests' labels.
	LabelEndpoint = "endpoint"
	LabelCode     = "code"
	// EndpointValidate is the LabelEndpoint value of every external-auth
	// path (PathValidate, PathForwardAuth, PathExtAuthz).
	EndpointValidate = "validate"
)

// Command-line flags of `authframework server`.
const (
	FlagListen              = "listen"
	FlagWatchNamespaces     = "watch-namespaces"
	FlagRevocationNamespace = "revocation-namespace"
	FlagCacheSize           = "cache-size"
	FlagTrustedProxies      = "trusted-proxies"
	FlagHeaderUserID        = "header-user-id"
	FlagHeaderPermissions   = "header-permissions"
	FlagHeaderNamespace     = "header-namespace"
	FlagHeaderClientID      = "header-client-id"
	FlagHeaderRoles         = "header-roles"
	FlagHeaderTokenID       = "header-token-id"

	// FlagMaxRevocationStreams bounds the open revocation streams.
	FlagMaxRevocationStreams = "max-revocation-streams"

	// FlagTokenExchangeAudience enables token exchange of Kubernetes
	// service-account tokens: the audience those tokens must carry (never
	// the API server's own). Empty: token exchange is off.
	FlagTokenExchangeAudience = "token-exchange-audience"
	// FlagTokenExchangeCacheTTL bounds how long a TokenReview result is
	// reused (never past the subject token's exp).
	FlagTokenExchangeCacheTTL = "token-exchange-cache-ttl"
	// FlagTokenExchangeQPS and FlagTokenExchangeBurst bound the TokenReviews
	// sent to the API server; FlagTokenExchangeConcurrency those in flight.
	FlagTokenExchangeQPS         = "token-exchange-qps"
	FlagTokenExchangeBurst       = "token-exchange-burst"
	FlagTokenExchangeConcurrency = "token-exchange-concurrency"
	// FlagTokenExchangeTimeout bounds one TokenReview call.
	FlagTokenExchangeTimeout = "token-exchange-timeout"
	// FlagTokenExchangeBreakerFailures consecutive failed TokenReviews open
	// the circuit breaker for FlagTokenExchangeBreakerOpenFor.
	FlagTokenExchangeBreakerFailures = "token-exchange-breaker-failures"
	FlagTokenExchangeBreakerOpenFor  = "token-exchange-breaker-open-for"

	// FlagTokenReviewListen is the address of the mutual-TLS listener that
	// serves PathTokenReview to kube-apiserver. Empty: not served.
	FlagTokenReviewListen = "tokenreview-listen"
	// FlagTokenReviewTLSCertFile and FlagTokenReviewTLSKeyFile are that
	// listener's serving certificate (PEM).
	FlagTokenReviewTLSCertFile = "tokenreview-tls-cert-file"
	FlagTokenReviewTLSKeyFile  = "tokenreview-tls-key-file"
	// FlagTokenReviewClientCAFile is the CA bundle (PEM) that signed the
	// client certificate kube-apiserver presents; nothing else may call.
	FlagTokenReviewClientCAFile = "tokenreview-client-ca-file"
	// FlagTokenReviewUsernamePrefix and FlagTokenReviewGroupsPrefix prefix
	// the user names and groups /tokenreview answers with.
	FlagTokenReviewUsernamePrefix = "tokenreview-username-prefix"
	// FlagTokenReviewAllowedNames restricts the client certificates that
	// may call PathTokenReview to these common names.
	FlagTokenReviewAllowedNames = "tokenreview-allowed-names"
	FlagTokenReviewGroupsPrefix = "tokenreview-groups-prefix"
	// FlagTokenReviewAudiences are the calling API server's own audiences
	// (its --api-audiences): what a TokenReview without spec.audiences
	// means. kube-apiserver always sends its audiences; empty: a review
	// without them is answered unauthenticated.
	FlagTokenReviewAudiences = "tokenreview-audiences"
)

// RevocationKey is what the server keeps of a revoked token: hex of the
// first 16 bytes of SHA-256(namespace + "/" + policy + NUL + jti), scoped to
// the TokenPolicy that issued it. A stream client computes it for each token
// it sees to match EventTokenRevoked.
func RevocationKey(namespace, policy, jti string) string {
	sum := sha256.Sum256([]byte(namespace + "/" + policy + "\x00" + jti))
	return hex.EncodeToString(sum[:16])
}

// Flag renders `--name=value`.
func Flag(name, value string) string { return "--" + name + "=" + value }
