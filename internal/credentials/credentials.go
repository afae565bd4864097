// Package credentials decides the life of OAuth2 client secrets and of the
// access tokens kept in token Secrets, as pure functions of state and time,
// and generates and checks secrets. Only hashes of secrets are ever compared
// or stored for the auth server.
package credentials

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io"
	"time"
)

// SecretBytes is the entropy of a client secret: 256 bits.
const SecretBytes = 32

// NewSecret returns a client secret of SecretBytes random bytes, base64url.
func NewSecret(rand io.Reader) (string, error) {
	b := make([]byte, SecretBytes)
	if _, err := io.ReadFull(rand, b); err != nil {
		return "", fmt.Errorf("reading randomness: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// Hash is what the auth server stores and compares: hex SHA-256 of the
// secret. A fast hash is right here: the secret has 256 bits of entropy, so
// there is nothing to brute-force.
func Hash(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:])
}

// Verifier is what the auth server holds for one client: the hash of the
// current secret and, during a grace period, of the previous one.
type Verifier struct {
	Current           string    `json:"current"`
	Previous          string    `json:"previous,omitempty"`
	PreviousExpiresAt time.Time `json:"previousExpiresAt,omitzero"`
}

// Check reports whether secret is the current one, or the previous one
// before its grace period ends. Both hashes are always compared, in constant
// time, so timing tells nothing about which matched or how much.
func (v Verifier) Check(secret string, now time.Time) bool {
	h := []byte(Hash(secret))
	current := subtle.ConstantTimeCompare(h, []byte(v.Current))
	previous := subtle.ConstantTimeCompare(h, []byte(v.Previous))
	inGrace := 0
	if v.Previous != "" && now.Before(v.PreviousExpiresAt) {
		inGrace = 1
	}
	return current|(previous&inGrace) == 1
}
