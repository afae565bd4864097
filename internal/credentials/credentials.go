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
	"slices"
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

// MaxGrace is how many earlier secrets a verifier keeps working at most
// (each until its own grace ends). A rotation keeps one; a secret lost from
// the credentials Secret during another's grace keeps both; repeated losses
// within one grace period add one each, up to this bound, beyond which the
// soonest-ending is dropped.
const MaxGrace = 4

// Grace is the hash of an earlier secret and when it stops working.
type Grace struct {
	Hash      string    `json:"hash"`
	ExpiresAt time.Time `json:"expiresAt"`
}

// Verifier is what the auth server holds for one client: the hash of the
// current secret and, each during its grace period, of earlier ones.
// Previous is the earlier secret that works longest; Earlier holds the
// others (only after a secret was lost during another's grace). The JSON
// shape is the verifier Secret's `verifier.json`.
type Verifier struct {
	Current           string    `json:"current"`
	Previous          string    `json:"previous,omitempty"`
	PreviousExpiresAt time.Time `json:"previousExpiresAt,omitzero"`
	Earlier           []Grace   `json:"earlier,omitempty"`
	// Since is when the current secret was written, so the schedule
	// survives a status that was lost or not written.
	Since time.Time `json:"since,omitzero"`
}

// Graces lists the earlier secrets, Previous first.
func (v Verifier) Graces() []Grace {
	var gs []Grace
	if v.Previous != "" {
		gs = append(gs, Grace{Hash: v.Previous, ExpiresAt: v.PreviousExpiresAt})
	}
	for _, g := range v.Earlier {
		if g.Hash != "" {
			gs = append(gs, g)
		}
	}
	return gs
}

// NewVerifier holds current and the earlier secrets gs: the one that works
// longest becomes Previous, at most MaxGrace are kept (the soonest-ending are
// dropped), and a hash equal to current is not listed twice.
func NewVerifier(current string, gs []Grace) Verifier {
	gs = slices.DeleteFunc(slices.Clone(gs), func(g Grace) bool { return g.Hash == "" || g.Hash == current })
	slices.SortStableFunc(gs, func(a, b Grace) int { return b.ExpiresAt.Compare(a.ExpiresAt) })
	seen := map[string]bool{}
	gs = slices.DeleteFunc(gs, func(g Grace) bool { dup := seen[g.Hash]; seen[g.Hash] = true; return dup })
	if len(gs) > MaxGrace {
		gs = gs[:MaxGrace]
	}
	v := Verifier{Current: current}
	if len(gs) > 0 {
		v.Previous, v.PreviousExpiresAt = gs[0].Hash, gs[0].ExpiresAt
	}
	if len(gs) > 1 {
		v.Earlier = gs[1:]
	}
	return v
}

// Check reports whether secret is the current one, or an earlier one before
// its grace period ends. Every slot (the current one and MaxGrace earlier
// ones, empty or not) is compared in constant time, so timing tells nothing
// about which matched, how much, or how many secrets the client has.
func (v Verifier) Check(secret string, now time.Time) bool {
	h := []byte(Hash(secret))
	ok := subtle.ConstantTimeCompare(h, []byte(v.Current))
	gs := v.Graces()
	for i := range MaxGrace {
		var g Grace
		if i < len(gs) {
			g = gs[i]
		}
		match := subtle.ConstantTimeCompare(h, []byte(g.Hash))
		inGrace := 0
		if g.Hash != "" && now.Before(g.ExpiresAt) {
			inGrace = 1
		}
		ok |= match & inGrace
	}
	return ok == 1
}
