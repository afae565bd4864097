package controllers

import (
	"fmt"

	jose "github.com/go-jose/go-jose/v4"

	authv1alpha1 "github.com/authframework/authframework/api/v1alpha1"
	"github.com/authframework/authframework/internal/keys"
	"github.com/authframework/authframework/internal/token"
)

// fullTokenSize is the size in bytes of the largest token the auth server
// would issue this account without a `scope`: every permission it holds,
// its roles and extra claims, for the longest audience of its policy.
func fullTokenSize(sa *authv1alpha1.ServiceAccount, p *authv1alpha1.TokenPolicy, roles, perms []string) (int, error) {
	audience := ""
	for _, a := range p.Spec.Audiences {
		if len(a) > len(audience) {
			audience = a
		}
	}
	rsaBits := 0
	if p.Spec.RSAKeyBits != nil {
		rsaBits = int(*p.Spec.RSAKeyBits)
	}
	alg := jose.SignatureAlgorithm(p.Spec.Algorithm)
	id := sa.EffectiveClientID()
	return token.EncodedSize(p.Spec.Issuer, p.Spec.AccessTokenTTL.Duration, alg, fmt.Sprintf("%0*d", keys.KeyIDLength, 0),
		keys.SignatureSize(alg, rsaBits), token.Request{
			Subject: id, ClientID: id, Audience: audience, ID: fmt.Sprintf("%032d", 0), Permissions: perms, Roles: roles,
			Namespace: sa.Namespace, AccountUID: string(sa.UID), Extra: sa.Spec.ExtraClaims,
		})
}

// tokenSizeCondition says whether the account's full token fits
// token.MaxIssuedSize: (ok, reason, message).
func tokenSizeCondition(size int, err error, perms int) (bool, string, string) {
	switch {
	case err != nil:
		return false, authv1alpha1.ReasonTokenTooLarge, fmt.Sprintf("the size of this account's tokens cannot be computed: %v", err)
	case size > token.MaxIssuedSize:
		return false, authv1alpha1.ReasonTokenTooLarge, fmt.Sprintf(
			"a token with all %d permission(s) would be %d bytes, above the %d-byte bound that the auth server and the proxies in front of it accept: "+
				"/token without scope is refused with invalid_scope; request fewer permissions with scope, or split the Roles", perms, size, token.MaxIssuedSize)
	default:
		return true, authv1alpha1.ReasonTokenWithinBound, fmt.Sprintf("a token with all %d permission(s) is %d bytes, within the %d-byte bound", perms, size, token.MaxIssuedSize)
	}
}
