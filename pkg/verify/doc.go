// Package verify lets a Go service verify the access tokens of an
// authframework issuer itself: net/http middleware, and the Verifier that
// the gRPC interceptors of package grpcauth share.
//
// A Verifier is configured with the issuer URL of a TokenPolicy (its OIDC
// discovery document gives the JWKS) and the audiences the service accepts.
// It verifies tokens locally with the auth server's own rules (RFC 8725 and
// RFC 9068: algorithm allow-list, no jku/x5u/jwk/crit, typ at+jwt, key by
// kid from the issuer's set only, iss, aud, exp/nbf/iat with bounded
// leeway). The key set is cached as its Cache-Control says and refreshed
// ahead of expiry; a token with an unknown kid refreshes it at most once per
// KeySetRefreshInterval, with one fetch shared by concurrent requests, so
// forged kids cannot flood the issuer. Results are cached by the token's
// SHA-256, never past its exp.
//
//	v, err := verify.New(ctx, verify.Options{
//		Issuer:    "https://auth.example.com/issuers/shop/default",
//		Audiences: []string{"orders"},
//	})
//	if err != nil { ... }
//	mux := http.NewServeMux()
//	mux.Handle("GET /orders", v.Handler(listOrders, verify.RequirePermission("orders:read")))
//	mux.Handle("POST /orders", v.Handler(createOrder, verify.RequirePermission("orders:write")))
//
// and in a handler:
//
//	id, _ := verify.FromContext(r.Context())
//	log.Printf("%s (%s/%s) asks", id.Subject, id.Namespace, id.ClientID)
//
// Refusals are RFC 6750 §3 answers with the auth server's JSON error body:
// 401 with `WWW-Authenticate: Bearer error="invalid_token"` for a missing,
// invalid, expired or revoked token, 403 `insufficient_scope` for a missing
// permission, 503 with Retry-After when the verifier cannot decide.
//
// Revocations: with Options.Revocations the verifier follows the auth
// server's revocation stream (Server-Sent Events, resumed from a cursor like
// a Kubernetes watch) and refuses a revoked token, a disabled or deleted
// account's tokens and a revoked key's tokens within about a second, without
// a call per request. When the stream falls silent past MaxStaleness it
// keeps validating (counted and logged) or refuses, as OnStale says.
//
// Remote mode: with Options.Remote every token is also checked by the auth
// server (/introspect or /validate), behind a circuit breaker; while the
// server does not answer, tokens are verified offline (locally), which is
// logged and counted.
//
// Metrics are registered on Options.Registerer (names Metric*); logs go to
// Options.Logger. Neither ever contains a token.
package verify
