// Package serverapi is the auth server's contract with everything that
// talks to it: the paths it serves, the headers it answers with, the metric
// names it exposes and the command-line flags it takes. The server
// (webhook/auth and `authframework server`) defines its API with these
// constants and the operator's smoke checks, analysis and pod templates
// use the same ones, so neither side can drift from the other. It imports
// nothing but the standard library.
package serverapi

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
)

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
	FlagTokenReviewGroupsPrefix   = "tokenreview-groups-prefix"
	// FlagTokenReviewAudiences are the calling API server's own audiences
	// (its --api-audiences): what a TokenReview without spec.audiences
	// means. kube-apiserver always sends its audiences; empty: a review
	// without them is answered unauthenticated.
	FlagTokenReviewAudiences = "tokenreview-audiences"
)

// Flag renders `--name=value`.
func Flag(name, value string) string { return "--" + name + "=" + value }
