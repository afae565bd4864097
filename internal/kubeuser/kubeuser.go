// Package kubeuser is how our accounts appear to Kubernetes as users: the
// user name, groups, uid and extra that the /tokenreview webhook answers
// kube-apiserver with, and the structured authentication configuration
// (apiserver.config.k8s.io/v1 AuthenticationConfiguration) whose claim
// mappings make kube-apiserver's own JWT authenticator derive the very same
// user from a token. Both come from one set of Names here, so the two ways
// of authenticating to Kubernetes cannot drift apart. It is pure: no client.
package kubeuser

import (
	"bytes"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"slices"
	"strings"

	authenticationv1 "k8s.io/api/authentication/v1"
	apiserverv1 "k8s.io/apiserver/pkg/apis/apiserver/v1"
)

// DefaultPrefix is the default of both the user name and the groups prefix.
const DefaultPrefix = "authframework:"

// Keys of UserInfo.Extra (domain-prefixed and lowercase, as the API server
// requires of extra keys).
const (
	// ExtraClientID holds the account's OAuth2 client id.
	ExtraClientID = "authframework.dev/client-id"
	// ExtraTokenID holds the token's jti.
	ExtraTokenID = "authframework.dev/token-id"
)

// Names are the prefixes that make an account a Kubernetes user:
//
//	username: UsernamePrefix + "<namespace>:<account name>"
//	groups:   GroupsPrefix + "<namespace>:<role>", one per Role
//
// Namespaces and Role names cannot contain ':', so each name reads back to
// exactly one account or Role.
type Names struct {
	UsernamePrefix string
	GroupsPrefix   string
}

// DefaultNames use DefaultPrefix for both.
var DefaultNames = Names{UsernamePrefix: DefaultPrefix, GroupsPrefix: DefaultPrefix}

// prefixPattern keeps prefixes to characters that need no quoting in a CEL
// string literal and none that RBAC treats specially.
var prefixPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9.:/@_-]*$`)

// Validate refuses prefixes that could make our users or groups collide
// with Kubernetes' own: an empty prefix would let a namespace called
// "system" with a Role "masters" become the group system:masters, so
// prefixes are required and must not start with "system:".
func (n Names) Validate() error {
	var errs []error
	for _, p := range []struct{ flag, v string }{{"username prefix", n.UsernamePrefix}, {"groups prefix", n.GroupsPrefix}} {
		switch {
		case !prefixPattern.MatchString(p.v):
			errs = append(errs, fmt.Errorf("%s %q: want a non-empty prefix of letters, digits and . : / @ _ - (such as %q)", p.flag, p.v, DefaultPrefix))
		case spellsSystem(p.v):
			errs = append(errs, fmt.Errorf("%s %q: must not start with system: or be the start of it (a namespace could complete it: prefix \"s\", namespace \"ystem\", Role \"masters\" is the group system:masters); Kubernetes reserves system: for its own users and groups", p.flag, p.v))
		}
	}
	return errors.Join(errs...)
}

// spellsSystem reports whether names made with prefix p could start with
// "system:": p starts with it, or is the start of it, in any letter case.
func spellsSystem(p string) bool {
	l := strings.ToLower(p)
	return strings.HasPrefix(l, "system:") || strings.HasPrefix("system:", l)
}

// Username is the user name of an account.
func (n Names) Username(namespace, account string) string {
	return n.UsernamePrefix + namespace + ":" + account
}

// Group is the group of a Role.
func (n Names) Group(namespace, role string) string {
	return n.GroupsPrefix + namespace + ":" + role
}

// Identity is what a verified token and its account say about the caller.
type Identity struct {
	Namespace string
	// Account is the ServiceAccount object's name and UID its metadata.uid.
	Account, UID string
	ClientID     string
	// TokenID is the token's jti.
	TokenID string
	// Roles become the groups, in this order.
	Roles []string
}

// User is the UserInfo of an identity.
func (n Names) User(id Identity) authenticationv1.UserInfo {
	groups := make([]string, 0, len(id.Roles))
	for _, r := range id.Roles {
		groups = append(groups, n.Group(id.Namespace, r))
	}
	return authenticationv1.UserInfo{
		Username: n.Username(id.Namespace, id.Account),
		UID:      id.UID,
		Groups:   groups,
		Extra: map[string]authenticationv1.ExtraValue{
			ExtraClientID: {id.ClientID},
			ExtraTokenID:  {id.TokenID},
		},
	}
}

// Issuer is what the API server needs to know of one TokenPolicy.
type Issuer struct {
	// URL is the policy's issuer (spec.issuer), an https URL.
	URL string
	// Audiences the API server accepts: at least one must be in a token's
	// aud. They must be among the policy's audiences.
	Audiences []string
	// DiscoveryURL, when set, is where the API server fetches the discovery
	// document instead of URL + "/.well-known/openid-configuration" (an
	// in-cluster Service, say); the document's issuer is still URL.
	DiscoveryURL string
	// CertificateAuthority is the PEM bundle that verifies the TLS
	// certificate of the discovery and JWKS URLs; empty: the system's.
	CertificateAuthority string
}

// The claims the mappings read; internal/token.Claims writes them.
const (
	claimNamespace   = "namespace"
	claimAccountName = "account_name"
	claimAccountUID  = "account_uid"
	claimRoles       = "roles"
	claimClientID    = "client_id"
	claimTokenID     = "jti"
)

// JWTAuthenticator is the jwt entry of an AuthenticationConfiguration that
// makes kube-apiserver verify the issuer's tokens itself, from its
// discovery document and JWKS, and map their claims to the same user as
// User does: the username from namespace and account_name, the uid from
// account_uid, groups from roles, extra from client_id and jti.
func (n Names) JWTAuthenticator(is Issuer) apiserverv1.JWTAuthenticator {
	a := apiserverv1.JWTAuthenticator{
		Issuer: apiserverv1.Issuer{URL: is.URL, Audiences: is.Audiences, CertificateAuthority: is.CertificateAuthority},
		ClaimValidationRules: []apiserverv1.ClaimValidationRule{{
			Expression: fmt.Sprintf("has(claims.%s) && has(claims.%s) && has(claims.%s)", claimNamespace, claimAccountName, claimAccountUID),
			Message:    "not an authframework access token naming its account (namespace, account_name, account_uid)",
		}},
		ClaimMappings: apiserverv1.ClaimMappings{
			Username: apiserverv1.PrefixedClaimOrExpression{
				Expression: fmt.Sprintf("'%s' + claims.%s + ':' + claims.%s", n.UsernamePrefix, claimNamespace, claimAccountName),
			},
			Groups: apiserverv1.PrefixedClaimOrExpression{
				Expression: fmt.Sprintf("has(claims.%[1]s) ? dyn(claims.%[1]s).map(r, '%[2]s' + claims.%[3]s + ':' + r) : []", claimRoles, n.GroupsPrefix, claimNamespace),
			},
			UID: apiserverv1.ClaimOrExpression{Claim: claimAccountUID},
			Extra: []apiserverv1.ExtraMapping{
				{Key: ExtraClientID, ValueExpression: "claims." + claimClientID},
				{Key: ExtraTokenID, ValueExpression: "claims." + claimTokenID},
			},
		},
	}
	if len(is.Audiences) > 1 {
		a.Issuer.AudienceMatchPolicy = apiserverv1.AudienceMatchPolicyMatchAny
	}
	if is.DiscoveryURL != "" {
		a.Issuer.DiscoveryURL = &is.DiscoveryURL
	}
	return a
}

// Policy is what a configuration needs of a TokenPolicy.
type Policy struct {
	Namespace, Name string
	// Issuer and Audiences are its spec.issuer and spec.audiences.
	Issuer    string
	Audiences []string
}

// ConfigFor is the AuthenticationConfiguration under which kube-apiserver
// accepts the tokens of policy p that carry one of is.Audiences (is.URL is
// p's issuer). Errors: invalid Names; an issuer or discovery URL that is not
// https (the JWT authenticator fetches discovery over https only,
// k8s.io/apiserver's validation refuses anything else); a discovery URL equal
// to the issuer; a certificate authority that is not PEM certificates; an
// audience the policy's tokens can never carry; the policy's first audience,
// which /token grants when a client names none, so every ordinary token of
// the policy would also be a Kubernetes credential.
func (n Names) ConfigFor(p Policy, is Issuer) (apiserverv1.AuthenticationConfiguration, error) {
	if err := n.Validate(); err != nil {
		return apiserverv1.AuthenticationConfiguration{}, err
	}
	if u, err := url.Parse(p.Issuer); err != nil || u.Scheme != "https" {
		return apiserverv1.AuthenticationConfiguration{}, fmt.Errorf("TokenPolicy %s/%s has issuer %q: kube-apiserver's JWT authenticator needs an https issuer that serves its discovery document", p.Namespace, p.Name, p.Issuer)
	}
	if len(is.Audiences) == 0 {
		return apiserverv1.AuthenticationConfiguration{}, errors.New("name the audiences kube-apiserver accepts")
	}
	for _, a := range is.Audiences {
		if !slices.Contains(p.Audiences, a) {
			return apiserverv1.AuthenticationConfiguration{}, fmt.Errorf("audience %q is not one of TokenPolicy %s/%s's audiences (%s): its tokens could never carry it; add it to the policy's spec.audiences",
				a, p.Namespace, p.Name, strings.Join(p.Audiences, ", "))
		}
		if len(p.Audiences) > 0 && a == p.Audiences[0] {
			return apiserverv1.AuthenticationConfiguration{}, fmt.Errorf("audience %q is TokenPolicy %s/%s's first audience, which /token grants when a client names none: every ordinary token of the policy would be a Kubernetes credential; add an audience only kube-apiserver accepts (such as %q) to spec.audiences, after the first",
				a, p.Namespace, p.Name, "https://kubernetes.default.svc")
		}
	}
	if is.DiscoveryURL != "" {
		u, err := url.Parse(is.DiscoveryURL)
		switch {
		case err != nil || u.Scheme != "https" || u.Host == "":
			return apiserverv1.AuthenticationConfiguration{}, fmt.Errorf("discovery URL %q must be an https URL: kube-apiserver fetches discovery over https only", is.DiscoveryURL)
		case strings.TrimSuffix(is.DiscoveryURL, "/") == strings.TrimSuffix(p.Issuer, "/"):
			return apiserverv1.AuthenticationConfiguration{}, fmt.Errorf("discovery URL %q is the issuer: leave it out, or give the full URL of the discovery document (ending in /.well-known/openid-configuration)", is.DiscoveryURL)
		}
	}
	if is.CertificateAuthority != "" && !onlyCertificates([]byte(is.CertificateAuthority)) {
		return apiserverv1.AuthenticationConfiguration{}, errors.New("the certificate authority is not a PEM bundle of certificates")
	}
	is.URL = p.Issuer
	return n.AuthenticationConfiguration(is), nil
}

// onlyCertificates reports whether b is one or more PEM certificates and
// nothing else.
func onlyCertificates(b []byte) bool {
	n := 0
	for {
		var blk *pem.Block
		blk, b = pem.Decode(b)
		if blk == nil {
			return n > 0 && len(bytes.TrimSpace(b)) == 0
		}
		if blk.Type != "CERTIFICATE" {
			return false
		}
		if _, err := x509.ParseCertificate(blk.Bytes); err != nil {
			return false
		}
		n++
	}
}

// AuthenticationConfiguration is the whole file for kube-apiserver's
// --authentication-config with one jwt entry per issuer.
func (n Names) AuthenticationConfiguration(issuers ...Issuer) apiserverv1.AuthenticationConfiguration {
	c := apiserverv1.AuthenticationConfiguration{}
	c.APIVersion, c.Kind = apiserverv1.SchemeGroupVersion.String(), "AuthenticationConfiguration"
	for _, is := range issuers {
		c.JWT = append(c.JWT, n.JWTAuthenticator(is))
	}
	return c
}
