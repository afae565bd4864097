package token

import (
	"encoding/hex"
	"fmt"
	"io"
	"time"

	"k8s.io/utils/clock"

	"github.com/authframework/authframework/internal/keys"
)

// Subject is the account a token is minted for, as both planes know it.
type Subject struct {
	ClientID  string
	Namespace string
	// UID of the ServiceAccount object; the token is bound to it.
	UID string
	// Name of the ServiceAccount object (the account_name claim).
	Name  string
	Roles []string
	Extra map[string]string
	// Actor, for a token issued by token exchange, is the Kubernetes
	// identity that asked for it (the `act` claim).
	Actor *Actor
}

// Mint is the one way a token is made, used by the token endpoint, the
// token Secret and the rollout smoke checks: a fresh 128-bit jti from
// entropy, signed with key for issuer, valid for ttl from clk's now, for
// audience with permissions. Errors as Issue's (a *SizeError for a token
// above MaxIssuedSize).
func Mint(issuer string, ttl time.Duration, key keys.Key, clk clock.PassiveClock, entropy io.Reader, s Subject, audience string, permissions []string) (string, Claims, error) {
	is, err := NewIssuer(issuer, ttl, key, clk)
	if err != nil {
		return "", Claims{}, err
	}
	jti := make([]byte, 16)
	if _, err := io.ReadFull(entropy, jti); err != nil {
		return "", Claims{}, fmt.Errorf("token id: %w", err)
	}
	return is.Issue(Request{
		Subject: s.ClientID, ClientID: s.ClientID, Audience: audience, ID: hex.EncodeToString(jti),
		Permissions: permissions, Roles: s.Roles, Namespace: s.Namespace, AccountUID: s.UID, AccountName: s.Name, Extra: s.Extra, Actor: s.Actor,
	})
}
