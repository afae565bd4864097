// Package issuertest runs an authframework issuer in-process, on
// net/http/httptest, for the tests of services and clients that use its
// tokens: no cluster, no operator. It serves what the real auth server
// serves for one TokenPolicy, at the same paths and in the same shapes:
//
//   - OIDC discovery and the JWKS (serverapi.DiscoveryPath, serverapi.JWKSPath),
//     with Cache-Control max-age;
//   - POST /token: the client credentials grant (RFC 6749 §4.4,
//     client_secret_basic or client_secret_post) for clients added with
//     AddClient, and token exchange (RFC 8693) of subject tokens added with
//     AddSubjectToken;
//   - POST /introspect (RFC 7662) and POST /revoke (RFC 7009);
//   - GET /revocations (serverapi.PathRevocations): the revocation stream,
//     served by the server's own stream core, for a bearer token of this
//     issuer: revoked tokens, revoked keys, disabled clients.
//
// Tokens are minted and checked by the same code as the real server's
// (RFC 9068 access tokens, verified with RFC 8725 rules), so a service that
// accepts them accepts the real ones. A test mints tokens for any identity
// and permissions (Mint), forges ones that must be refused (Forge), revokes
// them, rotates and revokes signing keys, makes endpoints fail (FailNext),
// and takes the whole issuer down (SetUnavailable, Stop) and back (Restart)
// to exercise a service's fallbacks.
//
// The CustomResourceDefinitions, for envtest, are in the package
// github.com/authframework/authframework/config/crd.
package issuertest

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"k8s.io/utils/clock"
	clocktesting "k8s.io/utils/clock/testing"

	"github.com/authframework/authframework/internal/keys"
	"github.com/authframework/authframework/internal/revstream"
	"github.com/authframework/authframework/internal/token"
	"github.com/authframework/authframework/pkg/serverapi"
)

// Options configure an Issuer; every field has a default.
type Options struct {
	// Namespace and Policy name the TokenPolicy the issuer stands for; they
	// make its paths (serverapi.IssuerPath). Defaults "default" and "test".
	Namespace, Policy string
	// Audiences the policy accepts; tokens go to the first unless asked.
	// Default ["test-api"].
	Audiences []string
	// Algorithm signs the tokens: ES256, ES384, EdDSA, RS256 or PS256.
	// Default ES256.
	Algorithm string
	// TTL is the access-token lifetime and the longest a minted token may
	// live. Default 10 minutes.
	TTL time.Duration
	// JWKSMaxAge is the Cache-Control max-age of discovery and the JWKS.
	// Default 60 s.
	JWKSMaxAge time.Duration
	// StreamHeartbeat is how often the revocation stream sends a bookmark.
	// Default serverapi.RevocationHeartbeatSeconds.
	StreamHeartbeat time.Duration
	// Clock stamps iat/exp and judges expiry. Default the real clock; a
	// k8s.io/utils/clock/testing fake clock makes expiry a test step (and
	// drives the stream's bookmarks, when it has timers).
	Clock clock.PassiveClock
}

func (o *Options) defaults() {
	if o.Namespace == "" {
		o.Namespace = "default"
	}
	if o.Policy == "" {
		o.Policy = "test"
	}
	if len(o.Audiences) == 0 {
		o.Audiences = []string{"test-api"}
	}
	if o.Algorithm == "" {
		o.Algorithm = string(jose.ES256)
	}
	if o.TTL <= 0 {
		o.TTL = 10 * time.Minute
	}
	if o.JWKSMaxAge <= 0 {
		o.JWKSMaxAge = time.Minute
	}
	if o.Clock == nil {
		o.Clock = clock.RealClock{}
	}
}

// Identity is whom a token is minted for and what it may do. Zero fields
// take the defaults named.
type Identity struct {
	// ClientID is the client_id and sub claims. Default "test-client".
	ClientID string
	// Namespace of the account. Default the issuer's.
	Namespace string
	// UID is the account_uid claim binding the token to its account.
	// Default derived from Namespace and ClientID, so it is stable.
	UID string
	// Audience, one of the issuer's Audiences. Default the first.
	Audience string
	// Permissions become the scope claim.
	Permissions []string
	Roles       []string
	// Extra claims, as a ServiceAccount's spec.extraClaims.
	Extra map[string]string
	// TTL of this token, at most the issuer's TTL. Default the issuer's.
	TTL time.Duration
	// IssuedAt is iat (and nbf). Default the clock's now; set it in the
	// past for an expired token.
	IssuedAt time.Time
}

// Client is an OAuth2 client that /token, /introspect and /revoke accept.
type Client struct {
	// ID is the client_id; the tokens' identity defaults to it.
	ID string
	// Secrets are the client secrets accepted; two during a rotation's
	// grace period.
	Secrets []string
	// Identity of the tokens issued to the client; its ClientID is ID, its
	// Permissions the most a request's scope may ask for.
	Identity Identity
	// Disabled clients authenticate but get no token
	// (`unauthorized_client`), like a disabled ServiceAccount.
	Disabled bool
}

// Issuer is an in-process issuer for tests. Its methods are safe for
// concurrent use; the ones that take a testing.TB fail the test on error
// (or panic when it is nil).
type Issuer struct {
	opts     Options
	mu       sync.Mutex
	keys     map[string]keys.Key // published, by kid
	order    []string            // kids in publication order
	active   string
	clients  map[string]*Client
	subjects map[string]string    // subject token -> client id
	revoked  map[string]time.Time // jti -> exp
	// revokedKeys are the kids RevokeKey removed, for stream snapshots.
	revokedKeys []string
	stream      *revstream.Log
	faults      map[string][]fault
	requests    map[string]int
	down        bool

	srv  *httptest.Server
	addr string
}

type fault struct {
	status     int
	retryAfter time.Duration
}

// New starts an issuer with one active signing key; it stops when the
// test ends. tb may be nil outside a test (TestMain, an Example): the
// caller then calls Stop, and the methods that take a testing.TB panic
// where they would fail the test.
func New(tb testing.TB, o Options) *Issuer {
	if tb != nil {
		tb.Helper()
	}
	o.defaults()
	is := &Issuer{opts: o, keys: map[string]keys.Key{}, clients: map[string]*Client{}, subjects: map[string]string{},
		revoked: map[string]time.Time{}, faults: map[string][]fault{}, requests: map[string]int{},
		stream: revstream.NewLog("issuertest", 0)}
	is.RotateKey(tb)
	is.srv = httptest.NewServer(is.handler())
	is.addr = is.srv.Listener.Addr().String()
	if tb != nil {
		tb.Cleanup(is.Stop)
	}
	return is
}

// fatalf is tb.Fatalf, or a panic outside a test (tb nil).
func fatalf(tb testing.TB, format string, args ...any) {
	if tb == nil {
		panic(fmt.Sprintf(format, args...))
	}
	tb.Helper()
	tb.Fatalf(format, args...)
}

// Server URLs.

// BaseURL is where the endpoints are, "http://127.0.0.1:<port>".
func (is *Issuer) BaseURL() string { return "http://" + is.addr }

// URL is the issuer identifier: the iss of its tokens and the URL its
// discovery document is found under (BaseURL + serverapi.IssuerPath).
func (is *Issuer) URL() string {
	return is.BaseURL() + serverapi.IssuerPath(is.opts.Namespace, is.opts.Policy)
}

// DiscoveryURL is the OIDC discovery document's URL.
func (is *Issuer) DiscoveryURL() string {
	return is.BaseURL() + serverapi.DiscoveryPath(is.opts.Namespace, is.opts.Policy)
}

// JWKSURL is the JSON Web Key Set's URL.
func (is *Issuer) JWKSURL() string {
	return is.BaseURL() + serverapi.JWKSPath(is.opts.Namespace, is.opts.Policy)
}

// TokenURL is the token endpoint's URL.
func (is *Issuer) TokenURL() string { return is.BaseURL() + serverapi.PathToken }

// Audiences are the audiences tokens may be issued for.
func (is *Issuer) Audiences() []string { return slices.Clone(is.opts.Audiences) }

// Tokens.

// Mint returns a valid access token for id, signed with the active key.
func (is *Issuer) Mint(tb testing.TB, id Identity) string {
	if tb != nil {
		tb.Helper()
	}
	k := is.activeKey()
	raw, err := is.mint(k, id)
	if err != nil {
		fatalf(tb, "issuertest: minting a token: %v", err)
	}
	return raw
}

func (is *Issuer) activeKey() keys.Key {
	is.mu.Lock()
	defer is.mu.Unlock()
	return is.keys[is.active]
}

// Forge returns a token that must be refused: the claims Mint would
// write for id, with the active key's kid, signed by a key the issuer
// never published.
func (is *Issuer) Forge(tb testing.TB, id Identity) string {
	if tb != nil {
		tb.Helper()
	}
	active := is.activeKey()
	k, err := keys.Generate(active.Algorithm, 0, rand.Reader)
	if err != nil {
		fatalf(tb, "issuertest: generating a key: %v", err)
	}
	k.ID = active.ID
	raw, err := is.mint(k, id)
	if err != nil {
		fatalf(tb, "issuertest: forging a token: %v", err)
	}
	return raw
}

func (is *Issuer) mint(k keys.Key, id Identity) (string, error) {
	id = is.complete(id)
	if id.TTL > is.opts.TTL {
		return "", fmt.Errorf("TTL %v is longer than the issuer's %v", id.TTL, is.opts.TTL)
	}
	if !slices.Contains(is.opts.Audiences, id.Audience) {
		return "", fmt.Errorf("audience %q is not one of %v", id.Audience, is.opts.Audiences)
	}
	var clk clock.PassiveClock = is.opts.Clock
	if !id.IssuedAt.IsZero() {
		clk = clocktesting.NewFakePassiveClock(id.IssuedAt)
	}
	raw, _, err := token.Mint(is.URL(), id.TTL, k, clk, rand.Reader,
		token.Subject{ClientID: id.ClientID, Namespace: id.Namespace, UID: id.UID, Roles: id.Roles, Extra: id.Extra},
		id.Audience, id.Permissions)
	return raw, err
}

// complete fills id's defaults.
func (is *Issuer) complete(id Identity) Identity {
	if id.ClientID == "" {
		id.ClientID = "test-client"
	}
	if id.Namespace == "" {
		id.Namespace = is.opts.Namespace
	}
	if id.UID == "" {
		sum := sha256.Sum256([]byte(id.Namespace + "/" + id.ClientID))
		id.UID = base64.RawURLEncoding.EncodeToString(sum[:12])
	}
	if id.Audience == "" {
		id.Audience = is.opts.Audiences[0]
	}
	if id.TTL <= 0 {
		id.TTL = is.opts.TTL
	}
	return id
}

// Verify checks raw as the real server does (signature by a published key,
// RFC 8725 header rules, iss, aud, exp/nbf/iat, lifetime) and that it is
// not revoked. It returns the token's jti, client_id and permissions.
func (is *Issuer) Verify(raw string) (jti, clientID string, permissions []string, err error) {
	c, err := is.verify(raw)
	if err != nil {
		return "", "", nil, err
	}
	return c.ID, c.ClientID, c.Permissions, nil
}

// Verify's errors beyond internal/token's.
var (
	// ErrRevoked: the token was revoked (Revoke, POST /revoke).
	ErrRevoked = errors.New("token is revoked")
	// ErrDisabled: the token's client is registered and disabled.
	ErrDisabled = errors.New("token's client is disabled")
)

func (is *Issuer) verify(raw string) (*token.Claims, error) {
	is.mu.Lock()
	v := token.Verifier{Issuer: is.URL(), Audiences: is.opts.Audiences, MaxTTL: is.opts.TTL, Clock: is.opts.Clock,
		Keys: make(map[string]token.PublicKey, len(is.keys))}
	for kid, k := range is.keys {
		v.Keys[kid] = token.PublicKey{Algorithm: k.Algorithm, Key: k.Public()}
		if !slices.Contains(v.Algorithms, k.Algorithm) {
			v.Algorithms = append(v.Algorithms, k.Algorithm)
		}
	}
	is.mu.Unlock()
	c, err := v.Verify(raw)
	if err != nil {
		return nil, err
	}
	is.mu.Lock()
	_, revoked := is.revoked[c.ID]
	cl, registered := is.clients[c.ClientID]
	disabled := registered && cl.Disabled
	is.mu.Unlock()
	switch {
	case revoked:
		return nil, ErrRevoked
	case disabled:
		return nil, ErrDisabled
	}
	return c, nil
}

// Revoke revokes raw, as POST /revoke by its client would: /introspect
// reports it inactive and the revocation stream sends its
// serverapi.RevocationKey from now on. Fails the test if raw is not a
// valid token of this issuer.
func (is *Issuer) Revoke(tb testing.TB, raw string) {
	if tb != nil {
		tb.Helper()
	}
	c, err := is.verify(raw)
	if err != nil {
		fatalf(tb, "issuertest: revoking a token that is not valid: %v", err)
	}
	is.revoke(c)
}

func (is *Issuer) revoke(c *token.Claims) {
	is.mu.Lock()
	defer is.mu.Unlock()
	is.revoked[c.ID] = c.Expiry.Time()
	is.stream.Append(is.scope(), is.revokedEvent(c.ID, c.Expiry.Time()))
}

func (is *Issuer) revokedEvent(jti string, exp time.Time) revstream.Event {
	return revstream.Event{Type: serverapi.EventTokenRevoked, RevocationKey: serverapi.RevocationKey(is.opts.Namespace, is.opts.Policy, jti), Expiry: exp.Unix()}
}

// Keys.

// RotateKey publishes a new signing key of the issuer's algorithm and makes
// it the active one at once; the previous keys stay published (retired), so
// their tokens keep verifying. It returns the new key's kid.
func (is *Issuer) RotateKey(tb testing.TB) string {
	if tb != nil {
		tb.Helper()
	}
	k, err := keys.Generate(jose.SignatureAlgorithm(is.opts.Algorithm), 0, rand.Reader)
	if err != nil {
		fatalf(tb, "issuertest: generating a %s key: %v", is.opts.Algorithm, err)
	}
	is.mu.Lock()
	defer is.mu.Unlock()
	is.keys[k.ID] = k
	is.order = append(is.order, k.ID)
	is.active = k.ID
	return k.ID
}

// RevokeKey removes kid from the JWKS, as a revoked (compromised) key is:
// its tokens stop verifying. The active key cannot be revoked; rotate first.
func (is *Issuer) RevokeKey(tb testing.TB, kid string) {
	if tb != nil {
		tb.Helper()
	}
	is.mu.Lock()
	defer is.mu.Unlock()
	if kid == is.active {
		fatalf(tb, "issuertest: %s is the active key; RotateKey first", kid)
	}
	if _, ok := is.keys[kid]; !ok {
		fatalf(tb, "issuertest: no published key %s", kid)
	}
	delete(is.keys, kid)
	is.order = slices.DeleteFunc(is.order, func(k string) bool { return k == kid })
	is.revokedKeys = append(is.revokedKeys, kid)
	is.stream.Append(is.scope(), revstream.Event{Type: serverapi.EventKeyRevoked, KeyID: kid})
}

// KeyIDs are the published kids, oldest first; the last is the active one.
func (is *Issuer) KeyIDs() []string {
	is.mu.Lock()
	defer is.mu.Unlock()
	return slices.Clone(is.order)
}

// Clients.

// AddClient registers (or replaces) a client of /token, /introspect and
// /revoke.
func (is *Issuer) AddClient(c Client) {
	c.Secrets = slices.Clone(c.Secrets)
	c.Identity.ClientID = c.ID
	is.mu.Lock()
	defer is.mu.Unlock()
	is.clients[c.ID] = &c
}

// SetSecrets replaces the secrets a client may authenticate with: pass the
// old and the new during a rotation's grace, then the new alone.
func (is *Issuer) SetSecrets(tb testing.TB, clientID string, secrets ...string) {
	if tb != nil {
		tb.Helper()
	}
	is.mu.Lock()
	defer is.mu.Unlock()
	c, ok := is.clients[clientID]
	if !ok {
		fatalf(tb, "issuertest: no client %s", clientID)
	}
	c.Secrets = slices.Clone(secrets)
}

// SetDisabled disables a client, or enables it again, as spec.disabled of
// a ServiceAccount does: its tokens are refused (Verify, /introspect),
// /token gives it none, and the revocation stream says so.
func (is *Issuer) SetDisabled(tb testing.TB, clientID string, disabled bool) {
	if tb != nil {
		tb.Helper()
	}
	is.mu.Lock()
	defer is.mu.Unlock()
	c, ok := is.clients[clientID]
	if !ok {
		fatalf(tb, "issuertest: no client %s", clientID)
	}
	c.Disabled = disabled
	is.stream.Append(is.scope(), is.accountEvent(c))
}

func (is *Issuer) accountEvent(c *Client) revstream.Event {
	id := is.complete(c.Identity)
	return revstream.Event{Type: serverapi.EventAccount, AccountUID: id.UID, ClientID: c.ID, Disabled: c.Disabled}
}

// AddSubjectToken makes /token exchange subjectToken (a Kubernetes
// service-account token, RFC 8693 subject_token) for a token of clientID.
func (is *Issuer) AddSubjectToken(subjectToken, clientID string) {
	is.mu.Lock()
	defer is.mu.Unlock()
	is.subjects[subjectToken] = clientID
}

// Failures.

// FailNext makes the next n requests to path (serverapi.PathToken, ...)
// fail with status, and a Retry-After of retryAfter (rounded up to whole
// seconds) when it is positive. Faults queue up in the order given.
func (is *Issuer) FailNext(path string, n, status int, retryAfter time.Duration) {
	is.mu.Lock()
	defer is.mu.Unlock()
	for range n {
		is.faults[path] = append(is.faults[path], fault{status: status, retryAfter: retryAfter})
	}
}

// SetUnavailable makes every endpoint answer 503 with Retry-After: 1 (on),
// or serve again (off): a server that is up but failing.
func (is *Issuer) SetUnavailable(on bool) {
	is.mu.Lock()
	defer is.mu.Unlock()
	is.down = on
}

// Stop closes the listener and every connection: calls are refused, as
// when the server is gone. Safe to call twice.
func (is *Issuer) Stop() {
	is.mu.Lock()
	srv := is.srv
	is.srv = nil
	is.mu.Unlock()
	if srv != nil {
		srv.CloseClientConnections()
		srv.Close()
	}
}

// Restart serves again after Stop, on the same address and with the same
// keys, clients and revocations.
func (is *Issuer) Restart(tb testing.TB) {
	if tb != nil {
		tb.Helper()
	}
	is.mu.Lock()
	defer is.mu.Unlock()
	if is.srv != nil {
		return
	}
	l, err := net.Listen("tcp", is.addr)
	if err != nil {
		fatalf(tb, "issuertest: listening again on %s: %v", is.addr, err)
	}
	srv := httptest.NewUnstartedServer(is.handler())
	srv.Listener.Close()
	srv.Listener = l
	srv.Start()
	is.srv = srv
}

// Requests is how many requests path has received (served or failed),
// for assertions such as "one JWKS fetch".
func (is *Issuer) Requests(path string) int {
	is.mu.Lock()
	defer is.mu.Unlock()
	return is.requests[path]
}
