package kubeuser

import (
	"reflect"
	"strings"
	"testing"

	authenticationv1 "k8s.io/api/authentication/v1"

	"github.com/authframework/authframework/internal/certs/certstest"
)

func TestValidate(t *testing.T) {
	cases := []struct {
		names   Names
		wantErr string
	}{
		{DefaultNames, ""},
		{Names{UsernamePrefix: "af-", GroupsPrefix: "example.com/af:"}, ""},
		{Names{UsernamePrefix: "", GroupsPrefix: "af:"}, "username prefix \"\": want a non-empty prefix"},
		{Names{UsernamePrefix: "af:", GroupsPrefix: ""}, "groups prefix \"\": want a non-empty prefix"},
		{Names{UsernamePrefix: "system:", GroupsPrefix: "af:"}, "must not start with system:"},
		{Names{UsernamePrefix: "af:", GroupsPrefix: "SYSTEM:x"}, "must not start with system:"},
		{Names{UsernamePrefix: "af:", GroupsPrefix: "s"}, "must not start with system: or be the start of it"},
		{Names{UsernamePrefix: "Syst", GroupsPrefix: "af:"}, "must not start with system: or be the start of it"},
		{Names{UsernamePrefix: "af:", GroupsPrefix: "system"}, "must not start with system: or be the start of it"},
		{Names{UsernamePrefix: "systemd:", GroupsPrefix: "sa:"}, ""},
		{Names{UsernamePrefix: "a' + 'b", GroupsPrefix: "af:"}, "want a non-empty prefix"},
		{Names{UsernamePrefix: "af:", GroupsPrefix: `a"b`}, "want a non-empty prefix"},
	}
	for _, c := range cases {
		err := c.names.Validate()
		if (c.wantErr == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), c.wantErr)) {
			t.Errorf("%+v: %v, want %q", c.names, err, c.wantErr)
		}
	}
}

func TestUser(t *testing.T) {
	got := Names{UsernamePrefix: "af-", GroupsPrefix: "af:"}.User(Identity{Namespace: "team", Account: "billing", UID: "u1",
		ClientID: "billing-client", TokenID: "j1", Roles: []string{"reader", "writer"}})
	want := authenticationv1.UserInfo{Username: "af-team:billing", UID: "u1", Groups: []string{"af:team:reader", "af:team:writer"},
		Extra: map[string]authenticationv1.ExtraValue{ExtraClientID: {"billing-client"}, ExtraTokenID: {"j1"}}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v\nwant %+v", got, want)
	}
	if none := DefaultNames.User(Identity{Namespace: "team", Account: "a"}); none.Groups == nil || len(none.Groups) != 0 {
		t.Errorf("no roles: groups %#v, want empty", none.Groups)
	}
}

// TestJWTAuthenticatorMapsTheSameNames: the CEL the API server evaluates
// builds names from the same prefixes and claims as User. The expressions
// themselves are evaluated by the real kube-apiserver in
// test/integration (TestKubeAPIServerVerifiesOurTokensItself).
func TestJWTAuthenticatorMapsTheSameNames(t *testing.T) {
	a := Names{UsernamePrefix: "af-", GroupsPrefix: "af:"}.JWTAuthenticator(Issuer{URL: "https://auth.example.com/issuers/team/orders",
		Audiences: []string{"kube"}, DiscoveryURL: "https://auth.svc/issuers/team/orders/.well-known/openid-configuration"})
	m := a.ClaimMappings
	if m.Username.Expression != "'af-' + claims.namespace + ':' + claims.account_name" ||
		m.Groups.Expression != "has(claims.roles) ? dyn(claims.roles).map(r, 'af:' + claims.namespace + ':' + r) : []" ||
		m.UID.Claim != "account_uid" || len(m.Extra) != 2 || m.Extra[0].Key != ExtraClientID || m.Extra[1].Key != ExtraTokenID {
		t.Errorf("claim mappings %+v", m)
	}
	if a.Issuer.DiscoveryURL == nil || *a.Issuer.DiscoveryURL != "https://auth.svc/issuers/team/orders/.well-known/openid-configuration" || a.Issuer.AudienceMatchPolicy != "" {
		t.Errorf("issuer %+v", a.Issuer)
	}
}

func TestConfigFor(t *testing.T) {
	caPEM := certstest.NewCA(t, "discovery").CertPEM
	policy := func(issuer string) Policy {
		return Policy{Namespace: "team", Name: "orders", Issuer: issuer, Audiences: []string{"orders-api", "https://kubernetes.default.svc", "kube-b"}}
	}
	const https = "https://auth.example.com/issuers/team/orders"
	cases := []struct {
		name      string
		names     Names
		p         Policy
		audiences []string
		wantErr   string
		discovery string
		ca        string
	}{
		{"one audience", DefaultNames, policy(https), []string{"https://kubernetes.default.svc"}, "", "", ""},
		{"two audiences", DefaultNames, policy(https), []string{"https://kubernetes.default.svc", "kube-b"}, "", "", ""},
		{"no audience", DefaultNames, policy(https), nil, "name the audiences", "", ""},
		{"http issuer", DefaultNames, policy("http://127.0.0.1:8080/issuers/team/orders"), []string{"kube-b"}, "needs an https issuer", "", ""},
		{"audience the policy lacks", DefaultNames, policy(https), []string{"https://other"}, `audience "https://other" is not one of TokenPolicy team/orders's audiences`, "", ""},
		{"empty groups prefix", Names{UsernamePrefix: "a:"}, policy(https), []string{"kube-b"}, "groups prefix", "", ""},
		{"the policy's first audience", DefaultNames, policy(https), []string{"orders-api"}, "first audience", "", ""},
		{"an in-cluster discovery URL", DefaultNames, policy(https), []string{"kube-b"}, "", "https://auth.authframework-system.svc/issuers/team/orders/.well-known/openid-configuration", ""},
		{"an http discovery URL", DefaultNames, policy(https), []string{"kube-b"}, "must be an https URL", "http://auth.authframework-system.svc/issuers/team/orders/.well-known/openid-configuration", ""},
		{"the issuer as discovery URL", DefaultNames, policy(https), []string{"kube-b"}, "is the issuer", https + "/", ""},
		{"a CA that is not PEM", DefaultNames, policy(https), []string{"kube-b"}, "not a PEM bundle", "", "vm\n"},
		{"a private key as CA", DefaultNames, policy(https), []string{"kube-b"}, "not a PEM bundle", "", "-----BEGIN EC PRIVATE KEY-----\nAAAA\n-----END EC PRIVATE KEY-----\n"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ca := string(caPEM)
			if c.ca != "" {
				ca = c.ca
			}
			ac, err := c.names.ConfigFor(c.p, Issuer{URL: "ignored", Audiences: c.audiences, CertificateAuthority: ca, DiscoveryURL: c.discovery})
			if c.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), c.wantErr) {
					t.Fatalf("error %v, want %q", err, c.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if ac.Kind != "AuthenticationConfiguration" || ac.APIVersion != "apiserver.config.k8s.io/v1" || len(ac.JWT) != 1 {
				t.Fatalf("config %+v", ac)
			}
			is := ac.JWT[0].Issuer
			if is.URL != https || strings.Join(is.Audiences, ",") != strings.Join(c.audiences, ",") || is.CertificateAuthority != string(caPEM) ||
				(is.DiscoveryURL == nil) != (c.discovery == "") || is.DiscoveryURL != nil && *is.DiscoveryURL != c.discovery {
				t.Errorf("issuer %+v", is)
			}
			if (len(c.audiences) > 1) != (is.AudienceMatchPolicy == "MatchAny") {
				t.Errorf("audienceMatchPolicy %q for %d audiences", is.AudienceMatchPolicy, len(c.audiences))
			}
		})
	}
}
