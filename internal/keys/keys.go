// Package keys generates signing keys, names them by their RFC 7638
// thumbprint, and marshals them: the private key set for the policy's Secret
// and the public JWKS for verifiers. It has no Kubernetes dependency.
package keys

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

	jose "github.com/go-jose/go-jose/v4"
)

// Algorithms are the JWS algorithms keys may be generated for.
var Algorithms = []jose.SignatureAlgorithm{jose.ES256, jose.ES384, jose.EdDSA, jose.RS256, jose.PS256}

// MinRSABits is the smallest RSA modulus accepted, generated or loaded.
const MinRSABits = 2048

// Key is a signing key: its id, algorithm and private key. The public half is
// derived from the private key.
type Key struct {
	// ID is the RFC 7638 SHA-256 thumbprint of the public key, base64url.
	ID string
	// Algorithm the key signs with; a key never signs with another.
	Algorithm jose.SignatureAlgorithm
	// Private is an *ecdsa.PrivateKey, ed25519.PrivateKey or *rsa.PrivateKey.
	Private crypto.Signer
}

// Public returns the public key.
func (k Key) Public() crypto.PublicKey { return k.Private.Public() }

// SignatureSize is the length in bytes of a JWS signature made with alg
// (RFC 7518 §3.4: R||S for ECDSA; RFC 8037 for Ed25519; the modulus length
// for RSA, rsaBits, zero meaning MinRSABits).
func SignatureSize(alg jose.SignatureAlgorithm, rsaBits int) int {
	switch alg {
	case jose.ES256, jose.EdDSA:
		return 64
	case jose.ES384:
		return 96
	case jose.ES512:
		return 132
	default:
		if rsaBits == 0 {
			rsaBits = MinRSABits
		}
		return (rsaBits + 7) / 8
	}
}

// KeyIDLength is the length of every key id: a base64url SHA-256.
const KeyIDLength = 43

// Generate creates a key for alg. rsaBits applies to RS256 and PS256; zero
// means MinRSABits.
func Generate(alg jose.SignatureAlgorithm, rsaBits int, rand io.Reader) (Key, error) {
	var priv crypto.Signer
	var err error
	switch alg {
	case jose.ES256:
		priv, err = ecdsa.GenerateKey(elliptic.P256(), rand)
	case jose.ES384:
		priv, err = ecdsa.GenerateKey(elliptic.P384(), rand)
	case jose.EdDSA:
		_, priv, err = ed25519.GenerateKey(rand)
	case jose.RS256, jose.PS256:
		if rsaBits == 0 {
			rsaBits = MinRSABits
		}
		if rsaBits < MinRSABits {
			return Key{}, fmt.Errorf("RSA keys must have at least %d bits, got %d", MinRSABits, rsaBits)
		}
		priv, err = rsa.GenerateKey(rand, rsaBits)
	default:
		return Key{}, fmt.Errorf("unsupported signing algorithm %q", alg)
	}
	if err != nil {
		return Key{}, fmt.Errorf("generating %s key: %w", alg, err)
	}
	id, err := Thumbprint(priv.Public())
	if err != nil {
		return Key{}, err
	}
	return Key{ID: id, Algorithm: alg, Private: priv}, nil
}

// Thumbprint is the RFC 7638 SHA-256 thumbprint of a public key, base64url
// without padding: the same key always has the same id.
func Thumbprint(pub crypto.PublicKey) (string, error) {
	tp, err := (&jose.JSONWebKey{Key: pub}).Thumbprint(crypto.SHA256)
	if err != nil {
		return "", fmt.Errorf("computing key thumbprint: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(tp), nil
}

// CheckType reports whether pub is the kind of key alg needs: P-256 for
// ES256, P-384 for ES384, Ed25519 for EdDSA, RSA of at least MinRSABits for
// RS256 and PS256. Binding key type to algorithm is what stops a key from
// being used with an algorithm it was not made for (RFC 8725 §3.1).
func CheckType(alg jose.SignatureAlgorithm, pub crypto.PublicKey) error {
	switch alg {
	case jose.ES256, jose.ES384:
		k, ok := pub.(*ecdsa.PublicKey)
		want := elliptic.P256()
		if alg == jose.ES384 {
			want = elliptic.P384()
		}
		if !ok || k.Curve != want {
			return fmt.Errorf("%s needs an ECDSA %s key", alg, want.Params().Name)
		}
	case jose.EdDSA:
		if _, ok := pub.(ed25519.PublicKey); !ok {
			return errors.New("EdDSA needs an Ed25519 key")
		}
	case jose.RS256, jose.PS256:
		k, ok := pub.(*rsa.PublicKey)
		if !ok || k.N.BitLen() < MinRSABits {
			return fmt.Errorf("%s needs an RSA key of at least %d bits", alg, MinRSABits)
		}
	default:
		return fmt.Errorf("unsupported signing algorithm %q", alg)
	}
	return nil
}

// MarshalPrivate encodes keys as a JWKS with private members, for the
// policy's Secret only.
func MarshalPrivate(keys []Key) ([]byte, error) {
	set := jose.JSONWebKeySet{Keys: make([]jose.JSONWebKey, 0, len(keys))}
	for _, k := range keys {
		set.Keys = append(set.Keys, jose.JSONWebKey{Key: k.Private, KeyID: k.ID, Algorithm: string(k.Algorithm), Use: "sig"})
	}
	return json.Marshal(set)
}

// ParsePrivate decodes a private JWKS written by MarshalPrivate and checks
// every key: private, of the type its algorithm needs, and with the id its
// thumbprint gives. Any damage is an error; a partly valid set is not used.
func ParsePrivate(data []byte) ([]Key, error) {
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(data, &set); err != nil {
		return nil, errors.New("key set is not a valid JWKS")
	}
	out := make([]Key, 0, len(set.Keys))
	seen := map[string]bool{}
	for i, jwk := range set.Keys {
		priv, ok := jwk.Key.(crypto.Signer)
		if !ok || jwk.IsPublic() {
			return nil, fmt.Errorf("key %d is not a private signing key", i)
		}
		alg := jose.SignatureAlgorithm(jwk.Algorithm)
		if err := CheckType(alg, priv.Public()); err != nil {
			return nil, fmt.Errorf("key %d: %w", i, err)
		}
		if err := checkPair(priv); err != nil {
			return nil, fmt.Errorf("key %d: %w", i, err)
		}
		id, err := Thumbprint(priv.Public())
		if err != nil {
			return nil, err
		}
		if id != jwk.KeyID {
			return nil, fmt.Errorf("key %d: kid does not match its thumbprint", i)
		}
		if seen[id] {
			return nil, fmt.Errorf("key %d: duplicate kid", i)
		}
		seen[id] = true
		out = append(out, Key{ID: id, Algorithm: alg, Private: priv})
	}
	return out, nil
}

// checkPair refuses a private key whose public half (as serialized beside
// it, and so as published) is not the one its private scalar gives: a JWK
// may carry the real x and y with a d of someone else's choosing.
func checkPair(priv crypto.Signer) error {
	switch k := priv.(type) {
	case *ecdsa.PrivateKey:
		d, err := k.Bytes()
		if err != nil {
			return errors.New("ECDSA private key is invalid")
		}
		derived, err := ecdsa.ParseRawPrivateKey(k.Curve, d)
		if err != nil || !derived.PublicKey.Equal(&k.PublicKey) {
			return errors.New("ECDSA private key does not match its public key")
		}
	case ed25519.PrivateKey:
		if len(k) != ed25519.PrivateKeySize || !ed25519.NewKeyFromSeed(k.Seed()).Equal(k) {
			return errors.New("Ed25519 private key does not match its public key")
		}
	case *rsa.PrivateKey:
		if err := k.Validate(); err != nil {
			return errors.New("RSA private key is inconsistent")
		}
	}
	return nil
}

// PublicSet is the JWKS verifiers fetch: public members only, with kid, alg
// and use, in the order given.
func PublicSet(keys []Key) jose.JSONWebKeySet {
	set := jose.JSONWebKeySet{Keys: make([]jose.JSONWebKey, 0, len(keys))}
	for _, k := range keys {
		set.Keys = append(set.Keys, jose.JSONWebKey{Key: k.Public(), KeyID: k.ID, Algorithm: string(k.Algorithm), Use: "sig"})
	}
	return set
}
