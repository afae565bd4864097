package kubeuser

import (
	"reflect"
	"strings"
	"testing"

	authenticationv1 "k8s.io/api/authentication/v1"
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
		m.Groups.Expression != "has(claims.roles) ? claims.roles.map(r, 'af:' + claims.namespace + ':' + r) : []" ||
		m.UID.Claim != "account_uid" || len(m.Extra) != 2 || m.Extra[0].Key != ExtraClientID || m.Extra[1].Key != ExtraTokenID {
		t.Errorf("claim mappings %+v", m)
	}
	if a.Issuer.DiscoveryURL == nil || *a.Issuer.DiscoveryURL != "https://auth.svc/issuers/team/orders/.well-known/openid-configuration" || a.Issuer.AudienceMatchPolicy != "" {
		t.Errorf("issuer %+v", a.Issuer)
	}
}
