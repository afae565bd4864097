// Package auth is the auth server: the OAuth2 token endpoint, the external
// authorization endpoint ingresses call (/validate), and OIDC discovery. Its
// handlers are plain http.Handlers over a Store that informers keep current;
// nothing on the request path calls the Kubernetes API.
package auth

import (
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/clock"

	"github.com/authframework/authframework/internal/authz"
	"github.com/authframework/authframework/internal/credentials"
	"github.com/authframework/authframework/internal/keys"
	"github.com/authframework/authframework/internal/token"
	"github.com/authframework/authframework/pkg/serverapi"
)

// Policy is what the server knows of one TokenPolicy.
type Policy struct {
	Key types.NamespacedName
	// UID is the TokenPolicy object's; only a key Secret it controls counts.
	UID types.UID
	// Created is the object's creationTimestamp: the first policy to list
	// an audience owns it (see Store.AudienceOwner).
	Created    time.Time
	Issuer     string
	Audiences  []string
	Algorithm  jose.SignatureAlgorithm
	TTL        time.Duration
	Skew       time.Duration
	PrePublish time.Duration
	// Published keys by kid, with their private halves for the active one.
	Published map[string]keys.Key
	ActiveKey string
	verifier  *token.Verifier
	// RequestsPerSecond, Burst: the token bucket of each authenticated
	// client at the OAuth2 endpoints.
	RequestsPerSecond float64
	Burst             int
}

// Account is what the server knows of one ServiceAccount.
type Account struct {
	Key types.NamespacedName
	// UID is the object's metadata.uid; tokens are bound to it.
	UID types.UID
	// Created is the object's creationTimestamp: of two accounts claiming
	// one client id, the older keeps it.
	Created                  time.Time
	ClientID                 string
	Policy                   string
	Disabled                 bool
	RevokeTokensIssuedBefore time.Time
	Roles                    []string
	Permissions              []string
	Extra                    map[string]string
	Verifier                 credentials.Verifier
	HasVerifier              bool
	// KubernetesServiceAccounts may exchange their tokens for this
	// account's: spec.kubernetesServiceAccounts as
	// authv1alpha1.KubernetesServiceAccountKey ("namespace/name").
	KubernetesServiceAccounts []string
	// generation changes whenever anything above but the verifier changes;
	// cached validation results made for another generation are misses.
	generation uint64
}

// sameDecisionInputs reports whether two versions of an account decide
// validation alike: everything but the verifier (which only /token reads)
// and the generation.
func sameDecisionInputs(a, b *Account) bool {
	return a.Key == b.Key && a.UID == b.UID && a.ClientID == b.ClientID && a.Policy == b.Policy && a.Disabled == b.Disabled &&
		a.RevokeTokensIssuedBefore.Equal(b.RevokeTokensIssuedBefore) && slices.Equal(a.Roles, b.Roles) &&
		slices.Equal(a.Permissions, b.Permissions) && maps.Equal(a.Extra, b.Extra)
}

// Store is the server's view of the cluster, written by informers and read
// by handlers. Reads take a read lock and copy nothing large.
type Store struct {
	clock     clock.PassiveClock
	mu        sync.RWMutex
	policies  map[types.NamespacedName]*Policy
	keySets   map[types.NamespacedName]ownedKeys // from key Secrets, by policy
	policySrc map[types.NamespacedName]PolicySource
	accounts  map[types.NamespacedName]*Account
	byClient  map[string]types.NamespacedName
	claimants map[string][]types.NamespacedName // every account naming a client id
	verifiers map[types.NamespacedName]ownedVerifier
	byKid     map[string]types.NamespacedName
	revoked   map[string]time.Time // jti -> when it would expire anyway
	routes    map[types.NamespacedName][]authz.Route
	audOwner  map[string]string // audience -> namespace of its first claimant
	// listers are the accounts listing each Kubernetes service account.
	listers map[string][]types.NamespacedName
	ready   atomic.Bool
	// version counts changes to policies and their keys: what a signature
	// check depends on.
	version atomic.Uint64
	// generations numbers account versions (see Account.generation).
	generations uint64
	// stream feeds the revocation stream (stream.go).
	stream streamState
}

// NewStore returns an empty store whose verifiers use clk.
func NewStore(clk clock.PassiveClock) *Store {
	return &Store{
		clock:     clk,
		policies:  map[types.NamespacedName]*Policy{},
		keySets:   map[types.NamespacedName]ownedKeys{},
		policySrc: map[types.NamespacedName]PolicySource{},
		accounts:  map[types.NamespacedName]*Account{},
		byClient:  map[string]types.NamespacedName{},
		claimants: map[string][]types.NamespacedName{},
		verifiers: map[types.NamespacedName]ownedVerifier{},
		byKid:     map[string]types.NamespacedName{},
		revoked:   map[string]time.Time{},
		routes:    map[types.NamespacedName][]authz.Route{},
		audOwner:  map[string]string{},
		listers:   map[string][]types.NamespacedName{},
		stream:    newStreamState(),
	}
}

// PolicySource is the part of a TokenPolicy the store keeps: spec values and
// which keys status publishes and which one is active.
type PolicySource struct {
	Policy
	// States maps kid -> whether status publishes it.
	PublishedKids []string
}

// SetPolicy records a TokenPolicy (spec and status).
func (s *Store) SetPolicy(src PolicySource) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.policySrc[src.Key] = src
	s.rebuildPolicy(src.Key)
	s.rebuildAudienceOwners()
}

// DeletePolicy forgets a TokenPolicy.
func (s *Store) DeletePolicy(key types.NamespacedName) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.policySrc, key)
	s.rebuildPolicy(key)
	s.rebuildAudienceOwners()
}

// rebuildAudienceOwners gives each audience to the namespace of the oldest
// policy that lists it (ties by namespace/name): audiences are not
// namespaced, and the first tenant to claim one owns it.
func (s *Store) rebuildAudienceOwners() {
	type claim struct {
		created time.Time
		key     string
		ns      string
	}
	first := map[string]claim{}
	for k, src := range s.policySrc {
		c := claim{created: src.Created, key: k.String(), ns: k.Namespace}
		for _, aud := range src.Audiences {
			if old, ok := first[aud]; !ok || c.created.Before(old.created) || c.created.Equal(old.created) && c.key < old.key {
				first[aud] = c
			}
		}
	}
	owners := make(map[string]string, len(first))
	for aud, c := range first {
		owners[aud] = c.ns
	}
	s.audOwner = owners
}

// AudienceOwner is the namespace that owns an audience: that of the oldest
// TokenPolicy listing it. ok is false for an audience no policy lists.
func (s *Store) AudienceOwner(aud string) (string, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	ns, ok := s.audOwner[aud]
	return ns, ok
}

// ownedKeys is a key Secret's key set and the UID of the TokenPolicy
// object that controls the Secret.
type ownedKeys struct {
	keys  []keys.Key
	owner types.UID
}

// SetKeys records the private key set of a policy's key Secret, controlled
// by the TokenPolicy object with UID owner; nil forgets it. The keys are
// used only while the policy's UID is owner.
func (s *Store) SetKeys(policy types.NamespacedName, owner types.UID, ks []keys.Key) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if ks == nil {
		delete(s.keySets, policy)
	} else {
		s.keySets[policy] = ownedKeys{keys: ks, owner: owner}
	}
	s.rebuildPolicy(policy)
}

// rebuildPolicy joins a policy's status with its key material: a key is
// published when status says so and its material is at hand.
func (s *Store) rebuildPolicy(key types.NamespacedName) {
	defer s.version.Add(1)
	old := s.policies[key]
	if old != nil {
		for kid := range old.Published {
			delete(s.byKid, kid)
		}
	}
	src, ok := s.policySrc[key]
	if !ok {
		delete(s.policies, key)
		s.keyEvents(key, old, nil)
		return
	}
	p := src.Policy
	p.Published = map[string]keys.Key{}
	var material []keys.Key
	if ks, ok := s.keySets[key]; ok && ks.owner == src.UID {
		material = ks.keys
	}
	for _, k := range material {
		if slices.Contains(src.PublishedKids, k.ID) {
			p.Published[k.ID] = k
			s.byKid[k.ID] = key
		}
	}
	if _, ok := p.Published[p.ActiveKey]; !ok {
		p.ActiveKey = ""
	}
	p.verifier = p.buildVerifier(s.clock)
	s.policies[key] = &p
	s.keyEvents(key, old, &p)
}

// SetAccount records a ServiceAccount.
func (s *Store) SetAccount(a Account) {
	s.mu.Lock()
	defer s.mu.Unlock()
	old, had := s.accounts[a.Key]
	a.Verifier, a.HasVerifier = s.verifierOf(&a)
	if had && sameDecisionInputs(old, &a) {
		// A status-only update (conditions, token refresh times): cached
		// results of this account stay valid.
		a.generation = old.generation
	} else {
		s.generations++
		a.generation = s.generations
	}
	s.accounts[a.Key] = &a
	s.accountEvents(old, &a)
	if had {
		s.unlist(old)
	}
	for _, k := range a.KubernetesServiceAccounts {
		if !slices.Contains(s.listers[k], a.Key) {
			s.listers[k] = append(s.listers[k], a.Key)
		}
	}
	if had && old.ClientID != a.ClientID {
		s.claimants[old.ClientID] = slices.DeleteFunc(s.claimants[old.ClientID], func(k types.NamespacedName) bool { return k == a.Key })
	}
	if a.ClientID != "" && !slices.Contains(s.claimants[a.ClientID], a.Key) {
		s.claimants[a.ClientID] = append(s.claimants[a.ClientID], a.Key)
	}
	if had {
		s.electClient(old.ClientID)
	}
	s.electClient(a.ClientID)
}

// DeleteAccount forgets a ServiceAccount.
func (s *Store) DeleteAccount(key types.NamespacedName) {
	s.mu.Lock()
	defer s.mu.Unlock()
	old, had := s.accounts[key]
	delete(s.accounts, key)
	if had {
		s.accountEvents(old, nil)
		s.unlist(old)
		s.claimants[old.ClientID] = slices.DeleteFunc(s.claimants[old.ClientID], func(k types.NamespacedName) bool { return k == key })
		s.electClient(old.ClientID)
	}
}

// unlist removes a from the listers of the Kubernetes service accounts it
// lists.
func (s *Store) unlist(a *Account) {
	for _, k := range a.KubernetesServiceAccounts {
		if l := slices.DeleteFunc(s.listers[k], func(x types.NamespacedName) bool { return x == a.Key }); len(l) > 0 {
			s.listers[k] = l
		} else {
			delete(s.listers, k)
		}
	}
}

// Listing is an account that lists a Kubernetes service account, with its
// policy (nil while the TokenPolicy is unknown).
type Listing struct {
	Account *Account
	Policy  *Policy
}

// Listers returns every account whose spec.kubernetesServiceAccounts names
// the Kubernetes service account k (authv1alpha1.KubernetesServiceAccountKey),
// ordered by namespace/name.
func (s *Store) Listers(k string) []Listing {
	s.mu.RLock()
	defer s.mu.RUnlock()
	keys := slices.Clone(s.listers[k])
	slices.SortFunc(keys, func(a, b types.NamespacedName) int { return strings.Compare(a.String(), b.String()) })
	out := make([]Listing, 0, len(keys))
	for _, key := range keys {
		a := s.accounts[key]
		out = append(out, Listing{Account: a, Policy: s.policies[types.NamespacedName{Namespace: key.Namespace, Name: a.Policy}]})
	}
	return out
}

// electClient gives a client id to the oldest account claiming it (ties
// by namespace/name). The admission webhook refuses a second claim, but it
// reads a cache and may be absent: whatever arrives, the first account keeps
// its id, a later duplicate authenticates as nobody, and the first is back
// at once when the duplicate goes.
func (s *Store) electClient(id string) {
	if id == "" {
		return
	}
	var best *Account
	for _, key := range s.claimants[id] {
		a := s.accounts[key]
		if a == nil || a.ClientID != id {
			continue
		}
		if best == nil || a.Created.Before(best.Created) || a.Created.Equal(best.Created) && a.Key.String() < best.Key.String() {
			best = a
		}
	}
	if best == nil {
		delete(s.byClient, id)
		delete(s.claimants, id)
		return
	}
	s.byClient[id] = best.Key
}

// ownedVerifier is a verifier Secret's hashes and the UID of the account
// object that controls the Secret.
type ownedVerifier struct {
	credentials.Verifier
	owner types.UID
}

// verifierOf returns the account's verifier only when the Secret belongs to
// this account object: a Secret left behind by a deleted account of the same
// name (garbage collection is asynchronous) authenticates nobody.
func (s *Store) verifierOf(a *Account) (credentials.Verifier, bool) {
	v, ok := s.verifiers[a.Key]
	if !ok || v.owner != a.UID {
		return credentials.Verifier{}, false
	}
	return v.Verifier, true
}

// SetVerifier records the hashes of an account's client secrets from a
// verifier Secret controlled by the account object with UID owner.
func (s *Store) SetVerifier(account types.NamespacedName, owner types.UID, v *credentials.Verifier) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.setVerifierLocked(account, owner, v)
}

func (s *Store) setVerifierLocked(account types.NamespacedName, owner types.UID, v *credentials.Verifier) {
	if v == nil {
		delete(s.verifiers, account)
	} else {
		s.verifiers[account] = ownedVerifier{Verifier: *v, owner: owner}
	}
	if a, ok := s.accounts[account]; ok {
		c := *a
		c.Verifier, c.HasVerifier = s.verifierOf(&c)
		s.accounts[account] = &c
	}
}

// DeleteVerifier forgets an account's verifier when it came from the
// Secret of the object with UID owner; another object's Secret going away
// changes nothing.
func (s *Store) DeleteVerifier(account types.NamespacedName, owner types.UID) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if v, ok := s.verifiers[account]; ok && v.owner == owner {
		s.setVerifierLocked(account, owner, nil)
	}
}

// SetRole records a Role's route rules (nil forgets the role).
func (s *Store) SetRole(key types.NamespacedName, routes []authz.Route) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if routes == nil {
		delete(s.routes, key)
	} else {
		s.routes[key] = routes
	}
}

// RoutesAllow matches req against the route rules of the account's roles
// (authz.RoutesAllow), reading each role's rules in place: a request costs
// no copy of them, however many roles the account has.
func (s *Store) RoutesAllow(a *Account, req authz.Request) (bool, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return authz.RoutesAllowSeq(func(yield func(authz.Route) bool) {
		for _, name := range a.Roles {
			for _, r := range s.routes[types.NamespacedName{Namespace: a.Key.Namespace, Name: name}] {
				if !yield(r) {
					return
				}
			}
		}
	}, req)
}

// RevocationKey names a revoked token: a SHA-256 (hex, 128 bits) of the
// policy that verified it — found by its kid among our own keys, so no
// tenant can name another's — and its jti. A jti is unique per issuer only
// (RFC 7519 §4.1.7), and a tenant that reads its own key Secret can mint a
// token of its own carrying another tenant's jti; keyed by jti alone, its
// revocation would revoke the other tenant's token.
func RevocationKey(policy types.NamespacedName, jti string) string {
	return serverapi.RevocationKey(policy.Namespace, policy.Name, jti)
}

// SetRevoked records revocations (key -> when the token expires anyway) and
// forgets removed ones. An entry's expiry only ever grows: a second
// revocation cannot shorten the first.
func (s *Store) SetRevoked(add map[string]time.Time, remove []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, key := range remove {
		delete(s.revoked, key)
	}
	for key, exp := range add {
		if old, ok := s.revoked[key]; !ok || exp.After(old) {
			s.revoked[key] = exp
			s.revocationEvent(key, exp)
		}
	}
}

// Revoked reports whether the token with id jti verified by policy is
// revoked.
func (s *Store) Revoked(policy types.NamespacedName, jti string) bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	_, ok := s.revoked[RevocationKey(policy, jti)]
	return ok
}

// SetReady marks the store loaded (caches synced).
func (s *Store) SetReady() { s.ready.Store(true) }

// Ready reports whether the store has been loaded.
func (s *Store) Ready() bool { return s.ready.Load() }

// Version is a counter that changes with any change to policies or their
// keys: everything a signature check depends on, and nothing else.
func (s *Store) Version() uint64 { return s.version.Load() }

// Client returns the account with a client id.
func (s *Store) Client(clientID string) (*Account, *Policy, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	key, ok := s.byClient[clientID]
	if !ok {
		return nil, nil, false
	}
	a := s.accounts[key]
	p := s.policies[types.NamespacedName{Namespace: key.Namespace, Name: a.Policy}]
	return a, p, true
}

// Account returns an account by namespace and client id.
func (s *Store) AccountByClient(namespace, clientID string) (*Account, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	key, ok := s.byClient[clientID]
	if !ok || key.Namespace != namespace {
		return nil, false
	}
	return s.accounts[key], true
}

// current reports whether a cached result made with policy p for the
// account generation gen still stands: the policy has not been rebuilt (its
// keys, issuer, audiences and lifetimes are the same) and the token's
// account is the same version. Routes, revocations and the account's state
// are read on every request anyway.
func (s *Store) current(p *Policy, c *token.Claims, gen uint64) bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.policies[p.Key] != p {
		return false
	}
	return s.generationLocked(c) == gen
}

// generation is the generation of the account a token names, 0 if none.
func (s *Store) generation(c *token.Claims) uint64 {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.generationLocked(c)
}

func (s *Store) generationLocked(c *token.Claims) uint64 {
	key, ok := s.byClient[c.ClientID]
	if !ok || key.Namespace != c.Namespace {
		return 0
	}
	return s.accounts[key].generation
}

// KeyByKid returns the policy publishing a key and the key, by kid.
func (s *Store) KeyByKid(kid string) (*Policy, token.PublicKey, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	key, ok := s.byKid[kid]
	if !ok {
		return nil, token.PublicKey{}, false
	}
	p, ok := s.policies[key]
	if !ok {
		return nil, token.PublicKey{}, false
	}
	pub, ok := p.verifier.Keys[kid]
	return p, pub, ok
}

// PolicyByName returns a policy.
func (s *Store) PolicyByName(key types.NamespacedName) (*Policy, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	p, ok := s.policies[key]
	return p, ok
}

// Verify checks a token against this policy's published keys.
func (p *Policy) Verify(raw string) (*token.Claims, error) { return p.verifier.Verify(raw) }

func (p *Policy) buildVerifier(clk clock.PassiveClock) *token.Verifier {
	v := &token.Verifier{
		Issuer: p.Issuer, Audiences: p.Audiences, MaxTTL: p.TTL, Leeway: p.Skew, Clock: clk,
		Keys: make(map[string]token.PublicKey, len(p.Published)),
	}
	for id, k := range p.Published {
		v.Keys[id] = token.PublicKey{Algorithm: k.Algorithm, Key: k.Public()}
		if !slices.Contains(v.Algorithms, k.Algorithm) {
			v.Algorithms = append(v.Algorithms, k.Algorithm)
		}
	}
	return v
}
