// Package token issues RFC 9068 JWT access tokens and verifies them following
// RFC 8725. It is pure: keys, expectations and the time come from the caller.
package token

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"strings"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"k8s.io/utils/clock"

	"github.com/authframework/authframework/internal/keys"
)

// TypeAccessToken is the JOSE typ of RFC 9068 access tokens.
const TypeAccessToken = "at+jwt"

// DefaultMaxSize bounds the size of a token Verify looks at, in bytes of its
// compact serialization. 8 KiB matches the smallest common header limit of
// the proxies in front of the auth server (nginx's large_client_header_buffers
// line of 8k, which also holds "Authorization: Bearer ").
const DefaultMaxSize = 8 << 10

// MaxIssuedSize is the largest token Issue signs, in bytes of its compact
// serialization: DefaultMaxSize less room for the "Authorization: Bearer "
// prefix and the other headers proxies put on the same line, so every token
// we issue is one our own endpoints and nginx accept. Issue refuses larger
// tokens with ErrTooLargeToIssue; clients narrow them with `scope`.
const MaxIssuedSize = 7 << 10

// MaxLeeway bounds the clock skew a Verifier tolerates, whatever it is given.
const MaxLeeway = 5 * time.Minute

// Claims are the claims of an access token. Registered claims are filled by
// Issue; the rest describe the client.
type Claims struct {
	Issuer    string           `json:"iss"`
	Subject   string           `json:"sub"`
	Audience  jwt.Audience     `json:"aud"`
	Expiry    *jwt.NumericDate `json:"exp"`
	NotBefore *jwt.NumericDate `json:"nbf,omitempty"`
	IssuedAt  *jwt.NumericDate `json:"iat"`
	ID        string           `json:"jti"`
	ClientID  string           `json:"client_id"`
	// Scope is the space-separated permissions (RFC 9068 §2.2.3). It is the
	// only claim that carries them.
	Scope     string   `json:"scope,omitempty"`
	Roles     []string `json:"roles,omitempty"`
	Namespace string   `json:"namespace,omitempty"`
	// AccountUID binds the token to the ServiceAccount object it was issued
	// to (metadata.uid), as Kubernetes binds its service-account tokens: an
	// account deleted and created again under the same name has a new UID
	// and does not inherit the old one's tokens.
	AccountUID string `json:"account_uid"`
	// Actor is set on tokens issued by token exchange: the Kubernetes
	// identity that presented the subject token (RFC 8693 §4.1 `act`).
	Actor *Actor `json:"act,omitempty"`
	// AccountName is the ServiceAccount object's metadata.name, so that
	// verifiers which see only the token (kube-apiserver's JWT
	// authenticator) can name the account as /tokenreview does:
	// <namespace>:<account_name>. Absent from tokens issued before it was
	// added; the UID binding, not this claim, decides which account a
	// token belongs to.
	AccountName string `json:"account_name,omitempty"`

	// Permissions are the fields of Scope; not serialized.
	Permissions []string `json:"-"`
}

// Actor is the RFC 8693 §4.1 `act` claim of a token issued by token
// exchange. Sub is the Kubernetes user name of the service account,
// "system:serviceaccount:<namespace>:<name>"; Kubernetes gives the
// service account and, for a pod-bound subject token, the pod, in the shape
// of the `kubernetes.io` claim of Kubernetes' own service-account tokens.
type Actor struct {
	Subject    string          `json:"sub"`
	Kubernetes KubernetesActor `json:"kubernetes.io"`
}

// KubernetesActor names the Kubernetes objects behind an Actor.
type KubernetesActor struct {
	Namespace      string     `json:"namespace"`
	ServiceAccount ObjectRef  `json:"serviceaccount"`
	Pod            *ObjectRef `json:"pod,omitempty"`
}

// ObjectRef is a Kubernetes object by name and metadata.uid.
type ObjectRef struct {
	Name string `json:"name"`
	UID  string `json:"uid,omitempty"`
}

// Request is what the caller decides about a token: who it is for and what it
// may do. Issue adds the registered claims.
type Request struct {
	Subject     string
	ClientID    string
	Audience    string
	Permissions []string
	Roles       []string
	Namespace   string
	// AccountUID is the UID of the ServiceAccount object; required.
	AccountUID string
	// AccountName is the ServiceAccount object's name; optional.
	AccountName string
	// Extra claims; names that collide with the claims above are refused.
	Extra map[string]string
	// ID is the jti; unique per token.
	ID string
	// Actor, for token exchange, is the `act` claim.
	Actor *Actor
}

// Issuer signs access tokens with one key.
type Issuer struct {
	URL   string
	TTL   time.Duration
	Key   keys.Key
	Clock clock.PassiveClock

	signer jose.Signer
}

// NewIssuer prepares a signer for key.
func NewIssuer(url string, ttl time.Duration, key keys.Key, clk clock.PassiveClock) (*Issuer, error) {
	if err := keys.CheckType(key.Algorithm, key.Public()); err != nil {
		return nil, err
	}
	signer, err := jose.NewSigner(
		jose.SigningKey{Algorithm: key.Algorithm, Key: jose.JSONWebKey{Key: key.Private, KeyID: key.ID}},
		(&jose.SignerOptions{}).WithType(TypeAccessToken),
	)
	if err != nil {
		return nil, fmt.Errorf("creating signer: %w", err)
	}
	return &Issuer{URL: url, TTL: ttl, Key: key, Clock: clk, signer: signer}, nil
}

// ReservedClaims are the claim names Request.Extra may not set; the
// ServiceAccount API refuses them in spec.extraClaims (the CEL rule must list
// the same names; an integration test holds them together).
func ReservedClaims() []string {
	out := make([]string, 0, len(reserved))
	for k := range reserved {
		out = append(out, k)
	}
	return out
}

// reserved are claim names Extra may not set.
var reserved = map[string]bool{
	"iss": true, "sub": true, "aud": true, "exp": true, "nbf": true, "iat": true, "jti": true,
	"client_id": true, "scope": true, "permissions": true, "roles": true, "namespace": true, "account_uid": true, "account_name": true,
	"typ": true, "cnf": true, "act": true, "azp": true,
	// Claims other consumers read as an identity (OIDC, kube-apiserver's
	// JWT authenticator, Kubernetes' own tokens): an account must not set
	// its own groups or user name.
	"groups": true, "username": true, "preferred_username": true, "email": true, "kubernetes.io": true,
}

// Issue signs a token for r, valid from now for the issuer's TTL, and returns
// it with its claims. A token longer than MaxIssuedSize is not returned: the
// error wraps ErrTooLargeToIssue in a *SizeError giving its size.
func (is *Issuer) Issue(r Request) (string, Claims, error) {
	if r.Subject == "" || r.ClientID == "" || r.Audience == "" || r.ID == "" || r.AccountUID == "" {
		return "", Claims{}, errors.New("issuing a token needs a subject, client id, audience, id and account UID")
	}
	for k := range r.Extra {
		// In any letter case: consumers that match claim names loosely must
		// not read an extra claim as a reserved one.
		if reserved[strings.ToLower(k)] {
			return "", Claims{}, fmt.Errorf("extra claim %q is reserved", k)
		}
	}
	now := is.Clock.Now().Truncate(time.Second)
	c := Claims{
		Issuer:      is.URL,
		Subject:     r.Subject,
		Audience:    jwt.Audience{r.Audience},
		IssuedAt:    jwt.NewNumericDate(now),
		NotBefore:   jwt.NewNumericDate(now),
		Expiry:      jwt.NewNumericDate(now.Add(is.TTL)),
		ID:          r.ID,
		ClientID:    r.ClientID,
		Scope:       strings.Join(r.Permissions, " "),
		Permissions: r.Permissions,
		Roles:       r.Roles,
		Namespace:   r.Namespace,
		AccountUID:  r.AccountUID,
		Actor:       r.Actor,
		AccountName: r.AccountName,
	}
	b := jwt.Signed(is.signer).Claims(c)
	if len(r.Extra) > 0 {
		extra := make(map[string]any, len(r.Extra))
		for k, v := range r.Extra {
			extra[k] = v
		}
		b = b.Claims(extra)
	}
	raw, err := b.Serialize()
	if err != nil {
		return "", Claims{}, fmt.Errorf("signing token: %w", err)
	}
	if len(raw) > MaxIssuedSize {
		return "", Claims{}, &SizeError{Size: len(raw), Permissions: len(r.Permissions)}
	}
	return raw, c, nil
}

// SizeError says a token would be larger than MaxIssuedSize. It matches
// ErrTooLargeToIssue with errors.Is.
type SizeError struct {
	// Size of the token that was refused, in bytes.
	Size int
	// Permissions is how many permissions it carried.
	Permissions int
}

func (e *SizeError) Error() string {
	return fmt.Sprintf("a token with %d permission(s) would be %d bytes, above the %d-byte bound; request fewer permissions with scope",
		e.Permissions, e.Size, MaxIssuedSize)
}

// Is makes errors.Is(err, ErrTooLargeToIssue) true.
func (e *SizeError) Is(target error) bool { return target == ErrTooLargeToIssue }

// PublicKey is a verification key with the one algorithm it may be used with.
type PublicKey struct {
	Algorithm jose.SignatureAlgorithm
	Key       crypto.PublicKey
}

// Verifier checks tokens of one policy.
type Verifier struct {
	// Issuer is the only accepted iss.
	Issuer string
	// Audiences: a token must carry at least one of them.
	Audiences []string
	// Algorithms allowed, from the policy; never from the token.
	Algorithms []jose.SignatureAlgorithm
	// Keys is the published key set by kid.
	Keys map[string]PublicKey
	// MaxTTL bounds exp - iat.
	MaxTTL time.Duration
	// Leeway for exp, nbf and iat; capped at MaxLeeway.
	Leeway time.Duration
	// MaxSize of a token in bytes; DefaultMaxSize when zero.
	MaxSize int
	Clock   clock.PassiveClock
}

// header is the protected header as Verify reads it.
type header struct {
	Alg  string          `json:"alg"`
	Kid  string          `json:"kid"`
	Typ  string          `json:"typ"`
	Crit json.RawMessage `json:"crit"`
	Jku  json.RawMessage `json:"jku"`
	X5u  json.RawMessage `json:"x5u"`
	Jwk  json.RawMessage `json:"jwk"`
	X5c  json.RawMessage `json:"x5c"`
}

// Header is a token's protected header, read once: by Verify, or by a
// caller that finds the key by KeyID itself and then calls VerifyParsed.
type Header struct{ h header }

// KeyID is the header's kid ("" when absent).
func (h Header) KeyID() string { return h.h.Kid }

// ParseHeader checks a token's size (at most DefaultMaxSize) and shape
// (three base64url parts, a JSON header without duplicate members) and
// reads its header. Nothing is verified. Errors: ErrTooLarge, ErrMalformed.
func ParseHeader(raw string) (Header, error) { return parseHeader(raw, DefaultMaxSize) }

func parseHeader(raw string, maxSize int) (Header, error) {
	if len(raw) > maxSize {
		return Header{}, ErrTooLarge
	}
	if strings.Count(raw, ".") != 2 {
		return Header{}, fmt.Errorf("%w: want three parts", ErrMalformed)
	}
	headSeg, _, _ := strings.Cut(raw, ".")
	var h header
	if err := decodeSegment(headSeg, &h); err != nil {
		return Header{}, fmt.Errorf("%w: header: %v", ErrMalformed, err)
	}
	return Header{h: h}, nil
}

// Verify checks raw and returns its claims. The order follows RFC 8725 and
// Kubernetes' own token authenticator: cheap structural checks first, the key
// only from our set by kid, the signature, then the claims.
func (v *Verifier) Verify(raw string) (*Claims, error) {
	h, err := parseHeader(raw, v.maxSize())
	if err != nil {
		return nil, err
	}
	return v.verify(raw, h, func(kid string) (PublicKey, bool) {
		k, ok := v.Keys[kid]
		return k, ok
	})
}

// VerifyParsed is Verify for a caller that has parsed the header
// (ParseHeader) and looked the key up by its kid among this verifier's keys
// itself: the header is not read again and the key not looked up again.
// The same checks, in the same order, with the same errors.
func (v *Verifier) VerifyParsed(raw string, h Header, key PublicKey) (*Claims, error) {
	if len(raw) > v.maxSize() {
		return nil, ErrTooLarge
	}
	return v.verify(raw, h, func(string) (PublicKey, bool) { return key, true })
}

func (v *Verifier) maxSize() int {
	if v.MaxSize == 0 {
		return DefaultMaxSize
	}
	return v.MaxSize
}

func (v *Verifier) verify(raw string, hd Header, lookup func(kid string) (PublicKey, bool)) (*Claims, error) {
	h := hd.h
	alg := jose.SignatureAlgorithm(h.Alg)
	if !v.allows(alg) {
		return nil, ErrAlgorithm
	}
	if h.Jku != nil || h.X5u != nil || h.Jwk != nil || h.X5c != nil || h.Crit != nil {
		return nil, ErrForbiddenHeader
	}
	if !strings.EqualFold(h.Typ, TypeAccessToken) && !strings.EqualFold(h.Typ, "application/"+TypeAccessToken) {
		return nil, ErrType
	}
	if h.Kid == "" {
		return nil, ErrMissingKeyID
	}
	key, ok := lookup(h.Kid)
	if !ok {
		return nil, ErrUnknownKey
	}
	if key.Algorithm != alg {
		return nil, ErrKeyAlgorithm
	}

	payload, err := verifySignature(raw, alg, key.Key)
	if err != nil {
		return nil, err
	}
	// Decoding the verified payload ourselves lets duplicate members be
	// refused, which encoding/json would silently resolve.
	var c Claims
	if err := decodeJSON(payload, &c); err != nil {
		return nil, fmt.Errorf("%w: claims: %v", ErrMalformed, err)
	}
	c.Permissions = strings.Fields(c.Scope)
	if err := v.checkClaims(&c); err != nil {
		return nil, err
	}
	return &c, nil
}

// verifySignature checks the signature of a compact JWS (RFC 7515 §5.2:
// over the ASCII "header.payload" as sent) with the standard library, the
// way go-jose does for each algorithm of RFC 7518 §3 and RFC 8037, without
// go-jose's parsing of a header already read: ECDSA with the curve of the
// algorithm and an R||S signature of exactly twice the curve's byte size,
// Ed25519, RSASSA-PKCS1-v1_5 and RSASSA-PSS (salt length read from the
// signature, as go-jose). It returns the decoded payload. Errors:
// ErrMalformed (not three base64url parts), ErrSignature (anything else,
// including a key of another type than the algorithm's).
func verifySignature(raw string, alg jose.SignatureAlgorithm, key crypto.PublicKey) ([]byte, error) {
	malformed := fmt.Errorf("%w: not a compact JWS", ErrMalformed)
	headSeg, rest, ok := strings.Cut(raw, ".")
	payloadSeg, sigSeg, ok2 := strings.Cut(rest, ".")
	if !ok || !ok2 || headSeg == "" || strings.Contains(sigSeg, ".") {
		return nil, malformed
	}
	if _, err := base64.RawURLEncoding.DecodeString(headSeg); err != nil {
		return nil, malformed
	}
	payload, err := base64.RawURLEncoding.DecodeString(payloadSeg)
	if err != nil {
		return nil, malformed
	}
	sig, err := base64.RawURLEncoding.DecodeString(sigSeg)
	if err != nil {
		return nil, malformed
	}
	signed := raw[:len(headSeg)+1+len(payloadSeg)]
	if !signatureValid(signed, sig, alg, key) {
		return nil, ErrSignature
	}
	return payload, nil
}

// signatureAlgs are the hash of each algorithm, and for ECDSA its curve and
// the byte size of R and of S (RFC 7518 §3.4).
var signatureAlgs = map[jose.SignatureAlgorithm]struct {
	hash  crypto.Hash
	curve elliptic.Curve
	size  int
}{
	jose.ES256: {crypto.SHA256, elliptic.P256(), 32}, jose.ES384: {crypto.SHA384, elliptic.P384(), 48}, jose.ES512: {crypto.SHA512, elliptic.P521(), 66},
	jose.RS256: {hash: crypto.SHA256}, jose.RS384: {hash: crypto.SHA384}, jose.RS512: {hash: crypto.SHA512},
	jose.PS256: {hash: crypto.SHA256}, jose.PS384: {hash: crypto.SHA384}, jose.PS512: {hash: crypto.SHA512},
	jose.EdDSA: {},
}

// signatureValid reports whether sig is alg's signature of signed by key.
func signatureValid(signed string, sig []byte, alg jose.SignatureAlgorithm, key crypto.PublicKey) bool {
	p, known := signatureAlgs[alg]
	if !known {
		return false
	}
	digest := func() []byte {
		d := p.hash.New()
		_, _ = io.WriteString(d, signed)
		return d.Sum(nil)
	}
	switch alg {
	case jose.ES256, jose.ES384, jose.ES512:
		pub, ok := key.(*ecdsa.PublicKey)
		if !ok || pub.Curve != p.curve || len(sig) != 2*p.size {
			return false
		}
		return ecdsa.Verify(pub, digest(), new(big.Int).SetBytes(sig[:p.size]), new(big.Int).SetBytes(sig[p.size:]))
	case jose.EdDSA:
		pub, ok := key.(ed25519.PublicKey)
		return ok && len(pub) == ed25519.PublicKeySize && ed25519.Verify(pub, []byte(signed), sig)
	case jose.RS256, jose.RS384, jose.RS512:
		pub, ok := key.(*rsa.PublicKey)
		return ok && rsa.VerifyPKCS1v15(pub, p.hash, digest(), sig) == nil
	case jose.PS256, jose.PS384, jose.PS512:
		pub, ok := key.(*rsa.PublicKey)
		return ok && rsa.VerifyPSS(pub, p.hash, digest(), sig, nil) == nil
	}
	return false
}

func (v *Verifier) allows(alg jose.SignatureAlgorithm) bool {
	for _, a := range v.Algorithms {
		if a == alg {
			return true
		}
	}
	return false
}

func (v *Verifier) checkClaims(c *Claims) error {
	if c.Expiry == nil || c.IssuedAt == nil || c.Subject == "" || c.ID == "" || c.ClientID == "" || c.Issuer == "" || len(c.Audience) == 0 || c.AccountUID == "" {
		return ErrMissingClaim
	}
	if c.Issuer != v.Issuer {
		return ErrIssuer
	}
	if !v.audienceAccepted(c.Audience) {
		return ErrAudience
	}
	leeway := min(max(v.Leeway, 0), MaxLeeway)
	now := v.Clock.Now()
	exp, iat := c.Expiry.Time(), c.IssuedAt.Time()
	if !now.Before(exp.Add(leeway)) {
		return ErrExpired
	}
	if c.NotBefore != nil && now.Add(leeway).Before(c.NotBefore.Time()) {
		return ErrNotYetValid
	}
	if now.Add(leeway).Before(iat) {
		return ErrIssuedInFuture
	}
	if v.MaxTTL > 0 && exp.Sub(iat) > v.MaxTTL {
		return ErrLifetime
	}
	return nil
}

func (v *Verifier) audienceAccepted(aud jwt.Audience) bool {
	for _, want := range v.Audiences {
		if aud.Contains(want) {
			return true
		}
	}
	return false
}

// decodeSegment decodes one base64url segment of a compact JWS as JSON.
func decodeSegment(seg string, into any) error {
	b, err := base64.RawURLEncoding.DecodeString(seg)
	if err != nil {
		return errors.New("not base64url")
	}
	return decodeJSON(b, into)
}

// decodeJSON decodes one JSON object, refusing duplicate top-level members:
// a verifier and another party reading different values of the same member
// is a classic confusion attack.
func decodeJSON(b []byte, into any) error {
	if err := checkDuplicates(b); err != nil {
		return err
	}
	if err := json.Unmarshal(b, into); err != nil {
		return errors.New("not a JSON object of the expected shape")
	}
	return nil
}

// checkDuplicates scans the top level of a JSON object for repeated member
// names. It only needs to be right for valid JSON: json.Unmarshal rejects the
// rest afterwards. Names with escapes are unescaped before comparison, so
// "sub" and "s\u0075b" are the same member.
func checkDuplicates(b []byte) error {
	var small [16]string
	names := small[:0]
	var many map[string]struct{}
	seen := func(name string) bool {
		if many != nil {
			_, dup := many[name]
			many[name] = struct{}{}
			return dup
		}
		for _, n := range names {
			if n == name {
				return true
			}
		}
		names = append(names, name)
		if len(names) == len(small) {
			many = make(map[string]struct{}, 2*len(small))
			for _, n := range names {
				many[n] = struct{}{}
			}
		}
		return false
	}

	depth, expectName := 0, false
	for i := 0; i < len(b); i++ {
		switch c := b[i]; c {
		case '"':
			end, escaped := i+1, false
			for ; end < len(b) && b[end] != '"'; end++ {
				if b[end] == '\\' {
					escaped = true
					end++
				}
			}
			if end >= len(b) {
				return errors.New("not a JSON object")
			}
			if depth == 1 && expectName {
				name := string(b[i+1 : end])
				if escaped {
					if err := json.Unmarshal(b[i:end+1], &name); err != nil {
						return errors.New("not a JSON object")
					}
				}
				if seen(name) {
					return errors.New("duplicate member")
				}
				expectName = false
			}
			i = end
		case '{', '[':
			depth++
			if depth == 1 {
				if c != '{' {
					return errors.New("not a JSON object")
				}
				expectName = true
			}
		case '}', ']':
			depth--
		case ',':
			if depth == 1 {
				expectName = true
			}
		}
	}
	return nil
}

// EncodedSize is the length in bytes of the compact serialization Issue
// would produce for r, signed with a key of alg whose kid is kid and whose
// signatures are sigBytes long (keys.SignatureSize), at any time before the
// year 2286 (ten-digit dates). It lets a controller tell whether an account
// can be issued its full set of permissions without signing anything.
func EncodedSize(issuer string, ttl time.Duration, alg jose.SignatureAlgorithm, kid string, sigBytes int, r Request) (int, error) {
	head, err := json.Marshal(map[string]string{"alg": string(alg), "kid": kid, "typ": TypeAccessToken})
	if err != nil {
		return 0, err
	}
	at := time.Unix(1_000_000_000, 0)
	c := Claims{
		Issuer: issuer, Subject: r.Subject, Audience: jwt.Audience{r.Audience},
		IssuedAt: jwt.NewNumericDate(at), NotBefore: jwt.NewNumericDate(at), Expiry: jwt.NewNumericDate(at.Add(min(ttl, time.Hour*24*365))),
		ID: r.ID, ClientID: r.ClientID, Scope: strings.Join(r.Permissions, " "), Roles: r.Roles,
		Namespace: r.Namespace, AccountUID: r.AccountUID, Actor: r.Actor,
	}
	// go-jose merges claim sets through a map; so do we, for the same bytes.
	b, err := json.Marshal(c)
	if err != nil {
		return 0, err
	}
	merged := map[string]any{}
	if err := json.Unmarshal(b, &merged); err != nil {
		return 0, err
	}
	for k, v := range r.Extra {
		merged[k] = v
	}
	payload, err := json.Marshal(merged)
	if err != nil {
		return 0, err
	}
	enc := base64.RawURLEncoding
	return enc.EncodedLen(len(head)) + 1 + enc.EncodedLen(len(payload)) + 1 + enc.EncodedLen(sigBytes), nil
}
