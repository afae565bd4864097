package token

import "errors"

// Errors Verify returns, wrapped or bare; compare with errors.Is. Messages
// name the failed check and never echo anything from the token, which is
// attacker-controlled and may be a live credential.
var (
	// ErrMalformed: not a compact JWS of three base64url parts with JSON
	// header and claims, or duplicate JSON members.
	ErrMalformed = errors.New("token is malformed")
	// ErrTooLarge: longer than the maximum size, refused before parsing.
	ErrTooLarge = errors.New("token is too large")
	// ErrAlgorithm: the header's alg is not one the policy allows (this
	// includes `none` and HMAC algorithms).
	ErrAlgorithm = errors.New("token algorithm is not allowed")
	// ErrForbiddenHeader: the header carries jku, x5u, jwk, x5c, or a crit
	// member (no critical extension is understood).
	ErrForbiddenHeader = errors.New("token header has a forbidden member")
	// ErrType: typ is not at+jwt (RFC 9068).
	ErrType = errors.New("token type is not at+jwt")
	// ErrMissingKeyID: no kid in the header.
	ErrMissingKeyID = errors.New("token has no key id")
	// ErrUnknownKey: the kid is not in the policy's published key set.
	ErrUnknownKey = errors.New("token key is unknown")
	// ErrKeyAlgorithm: the key found by kid is for a different algorithm.
	ErrKeyAlgorithm = errors.New("token algorithm does not match its key")
	// ErrSignature: the signature does not verify.
	ErrSignature = errors.New("token signature is invalid")
	// ErrIssuer: iss is missing or not the policy's issuer.
	ErrIssuer = errors.New("token issuer is wrong")
	// ErrAudience: aud does not contain an accepted audience.
	ErrAudience = errors.New("token audience is wrong")
	// ErrExpired: exp is in the past, beyond the leeway.
	ErrExpired = errors.New("token has expired")
	// ErrNotYetValid: nbf is in the future, beyond the leeway.
	ErrNotYetValid = errors.New("token is not yet valid")
	// ErrIssuedInFuture: iat is in the future, beyond the leeway.
	ErrIssuedInFuture = errors.New("token was issued in the future")
	// ErrLifetime: exp - iat exceeds the policy's token lifetime.
	ErrLifetime = errors.New("token lifetime exceeds the policy's")
	// ErrMissingClaim: a claim RFC 9068 requires (exp, iat, sub, jti,
	// client_id, iss, aud) or the account_uid binding is absent.
	ErrMissingClaim = errors.New("token lacks a required claim")

	// ErrTooLargeToIssue is what Issue returns (as a *SizeError) for a token
	// that would exceed MaxIssuedSize.
	ErrTooLargeToIssue = errors.New("token would be too large")
)
