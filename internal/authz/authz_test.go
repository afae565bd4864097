package authz

import (
	"errors"
	"slices"
	"strings"
	"testing"
)

func TestCovers(t *testing.T) {
	cases := []struct {
		granted, required string
		want              bool
	}{
		{"orders:read", "orders:read", true},
		{"orders:read", "orders:write", false},
		{"orders:*", "orders:read", true},
		{"orders:*", "orders:items:read", true},
		{"orders:*", "orders:*", true},
		{"orders:*", "orders", false},
		{"orders:*", "ordersx:read", false},
		{"orders:*", "inventory:read", false},
		{"orders:items:*", "orders:read", false},
		{"*", "anything:at:all", true},
		{"*", "*", true},
		{"orders:read", "orders:*", false},
		{"orders:read", "*", false},
		{"Orders:read", "orders:read", false},
		{"", "orders:read", false},
	}
	for _, c := range cases {
		if got := Covers(c.granted, c.required); got != c.want {
			t.Errorf("Covers(%q, %q) = %v, want %v", c.granted, c.required, got, c.want)
		}
	}
}

func TestAllowedMissingNarrow(t *testing.T) {
	granted := []string{"orders:*", "inventory:read"}
	if !Allowed(granted, []string{"orders:read", "inventory:read"}) || !Allowed(granted, nil) {
		t.Error("covered requirements refused")
	}
	if Allowed(granted, []string{"orders:read", "inventory:write"}) {
		t.Error("uncovered requirement allowed")
	}
	if got := Missing(granted, []string{"orders:read", "inventory:write", "billing:read"}); !slices.Equal(got, []string{"inventory:write", "billing:read"}) {
		t.Errorf("Missing = %v", got)
	}
	ok, denied := Narrow(granted, []string{"orders:read", "admin"})
	if !slices.Equal(ok, []string{"orders:read"}) || !slices.Equal(denied, []string{"admin"}) {
		t.Errorf("Narrow = %v, %v", ok, denied)
	}
	if got := Union([]string{"b", "a"}, []string{"a", "c"}); !slices.Equal(got, []string{"a", "b", "c"}) {
		t.Errorf("Union = %v", got)
	}
	if got := Redundant([]string{"orders:*", "orders:read", "inventory:read", "*"}); !slices.Equal(got, []string{"orders:*", "orders:read", "inventory:read"}) {
		t.Errorf("Redundant = %v", got)
	}
}

func TestNormalizePath(t *testing.T) {
	cases := []struct {
		raw, want string
		err       bool
	}{
		{"/api/orders", "/api/orders", false},
		{"/api/orders/", "/api/orders/", false},
		{"/api/orders?x=1", "/api/orders", false},
		{"/api/orders?x=1#f", "", true},
		{"/api/orders/1#/../../admin", "", true},
		{"/api/orders/..;/admin", "", true},
		{"/api/orders/..;jsessionid=x/admin", "", true},
		{"/api/orders/.;/admin", "", true},
		{"/api/orders/..%3B/admin", "", true},
		{"/api/orders/..%3b/admin", "", true},
		{"/api/orders/%2e%2e;/admin", "", true},
		{"/api/orders/42;v=1", "/api/orders/42;v=1", false},
		{"/api/orders/a..;b", "/api/orders/a..;b", false},
		{"/\x90\x90%3B", "/\x90\x90%3B", false}, // invalid UTF-8 before a path parameter (found by FuzzNormalizePath)
		{"/..%3b", "", true},
		{"/api/users/../admin", "/api/admin", false},
		{"/api/users/%2e%2e/admin", "/api/admin", false},
		{"/api/users/%2E%2E/admin", "/api/admin", false},
		{"/api/users/.%2e/admin", "/api/admin", false},
		{"/api/./orders", "/api/orders", false},
		{"/api//orders", "/api/orders", false},
		{"//api///orders//", "/api/orders/", false},
		{"/../../etc/passwd", "/etc/passwd", false},
		{"/api/%6Frders", "/api/orders", false},
		{"/api/a%20b", "/api/a%20b", false},
		{"/api/a%2fb", "", true},
		{"/api/a%2F..%2Fadmin", "", true},
		{"/api/a%5cb", "", true},
		{"/api\\..\\admin", "", true},
		{"/api/%00", "", true},
		{"/api/\x00", "", true},
		{"/api/%zz", "", true},
		{"/api/%4", "", true},
		{"/api/%252e%252e/admin", "", true},
		{"api/orders", "", true},
		{"", "", true},
		{"/", "/", false},
		{"/..", "/", false},
	}
	for _, c := range cases {
		got, err := NormalizePath(c.raw)
		if c.err {
			if !errors.Is(err, ErrUnsafePath) {
				t.Errorf("NormalizePath(%q) = %q, %v; want ErrUnsafePath", c.raw, got, err)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("NormalizePath(%q) = %q, %v; want %q", c.raw, got, err, c.want)
		}
	}
}

func TestRoutesAllow(t *testing.T) {
	rules := []Route{
		{Hosts: []string{"api.example.com"}, Paths: []string{"/api/orders", "/api/orders/**"}, Methods: []string{"GET", "HEAD"}},
		{Hosts: []string{"*.inventory.example.com"}, Paths: []string{"/items/*"}},
		{Paths: []string{"/public/**"}},
	}
	cases := []struct {
		name string
		req  Request
		want bool
		err  bool
	}{
		{"exact path", Request{"GET", "api.example.com", "/api/orders"}, true, false},
		{"trailing slash", Request{"GET", "api.example.com", "/api/orders/"}, true, false},
		{"below **", Request{"GET", "api.example.com", "/api/orders/42/items"}, true, false},
		{"query ignored", Request{"GET", "api.example.com", "/api/orders?limit=5"}, true, false},
		{"method not allowed", Request{"POST", "api.example.com", "/api/orders"}, false, false},
		{"lower-case method fails closed", Request{"get", "api.example.com", "/api/orders"}, false, false},
		{"host case and port ignored", Request{"GET", "API.Example.COM:443", "/api/orders"}, true, false},
		{"host trailing dot", Request{"GET", "api.example.com.", "/api/orders"}, true, false},
		{"other host", Request{"GET", "evil.example.com", "/api/orders"}, false, false},
		{"dot-dot escapes the prefix", Request{"GET", "api.example.com", "/api/orders/../admin"}, false, false},
		{"encoded dot-dot escapes the prefix", Request{"GET", "api.example.com", "/api/orders/%2e%2e/%2e%2e/admin"}, false, false},
		{"dot-dot into the prefix", Request{"GET", "api.example.com", "/api/admin/../orders/1"}, true, false},
		{"double slashes", Request{"GET", "api.example.com", "//api//orders//1"}, true, false},
		{"prefix is not a segment prefix", Request{"GET", "api.example.com", "/api/ordersX"}, false, false},
		{"encoded slash refused", Request{"GET", "api.example.com", "/api/orders%2F..%2Fadmin"}, false, true},
		{"wildcard host one label", Request{"PUT", "eu.inventory.example.com", "/items/7"}, true, false},
		{"wildcard host two labels", Request{"PUT", "a.eu.inventory.example.com", "/items/7"}, false, false},
		{"wildcard host bare domain", Request{"PUT", "inventory.example.com", "/items/7"}, false, false},
		{"single * is one segment", Request{"PUT", "eu.inventory.example.com", "/items/7/parts"}, false, false},
		{"* needs a segment", Request{"PUT", "eu.inventory.example.com", "/items/"}, false, false},
		{"any host, any method", Request{"DELETE", "whatever", "/public/a/b"}, true, false},
		{"** matches the base", Request{"DELETE", "whatever", "/public"}, true, false},
	}
	for _, c := range cases {
		got, err := RoutesAllow(rules, c.req)
		if (err != nil) != c.err || got != c.want {
			t.Errorf("%s: RoutesAllow(%+v) = %v, %v; want %v (error %v)", c.name, c.req, got, err, c.want, c.err)
		}
	}
}

func TestLint(t *testing.T) {
	problems, warnings := Lint(
		[]string{"orders:*", "orders:read"},
		[]Route{
			{Paths: []string{"/a"}, Methods: []string{"GET"}},
			{Paths: []string{"/a"}, Methods: []string{"GET"}},
			{Paths: []string{"/b/%2e%2e/c"}},
			{Paths: []string{"/b/%7euser"}},
			{Paths: []string{"/ok/**", "/ok/*/x/"}},
		})
	if len(problems) != 3 {
		t.Errorf("problems %q; want the duplicate rule and two patterns not in normal form", problems)
	}
	if len(warnings) != 1 {
		t.Errorf("warnings %q; want orders:read covered by orders:*", warnings)
	}
	if p, w := Lint([]string{"a:read"}, []Route{{Paths: []string{"/x/**"}}}); len(p)+len(w) != 0 {
		t.Errorf("a clean role: %v %v", p, w)
	}
}

// TestNarrowRefusesWhatIsNotAPermission: a scope item that is not a
// permission is denied even when a wildcard would cover it as a string.
func TestNarrowRefusesWhatIsNotAPermission(t *testing.T) {
	granted := []string{"inventory:*"}
	for _, req := range []string{"inventory:read,orders:write,*", "inventory:read orders:write", "inventory:", "inventory:read\n", "inventory:*:x", "inventory:" + strings.Repeat("a", 260)} {
		if allowed, denied := Narrow(granted, []string{req}); len(allowed) != 0 || len(denied) != 1 {
			t.Errorf("%q: allowed %q", req, allowed)
		}
	}
	if allowed, _ := Narrow(granted, []string{"inventory:read", "inventory:items:*"}); len(allowed) != 2 {
		t.Errorf("valid permissions were denied: %q", allowed)
	}
}

// TestGrant is the one grant decision of the token endpoint and the token
// Secret.
func TestGrant(t *testing.T) {
	held, auds := []string{"orders:*", "inventory:read"}, []string{"orders-api", "inventory-api"}
	cases := []struct {
		name      string
		req       GrantRequest
		aud       string
		perms     []string
		scopeErr  bool
		targetErr bool
	}{
		{"defaults: first audience, every permission", GrantRequest{}, "orders-api", held, false, false},
		{"audience", GrantRequest{Audience: "inventory-api"}, "inventory-api", held, false, false},
		{"resource", GrantRequest{Resources: []string{"inventory-api"}}, "inventory-api", held, false, false},
		{"audience and resource agree", GrantRequest{Audience: "inventory-api", Resources: []string{"inventory-api"}}, "inventory-api", held, false, false},
		{"audience and resource disagree", GrantRequest{Audience: "orders-api", Resources: []string{"inventory-api"}}, "", nil, false, true},
		{"two resources", GrantRequest{Resources: []string{"orders-api", "inventory-api"}}, "", nil, false, true},
		{"another tenant's audience", GrantRequest{Audience: "payments-api"}, "", nil, false, true},
		{"narrowed scope", GrantRequest{Scope: []string{"orders:read"}}, "orders-api", []string{"orders:read"}, false, false},
		{"scope beyond what is held", GrantRequest{Scope: []string{"orders:read", "admin:*"}}, "", nil, true, false},
		{"scope that is not a permission", GrantRequest{Scope: []string{"orders:read,admin:*"}}, "", nil, true, false},
	}
	for _, c := range cases {
		aud, perms, err := Grant(held, auds, c.req)
		var se *ScopeError
		var te *TargetError
		if errors.As(err, &se) != c.scopeErr || errors.As(err, &te) != c.targetErr || aud != c.aud || !slices.Equal(perms, c.perms) {
			t.Errorf("%s: %q %q %v", c.name, aud, perms, err)
		}
	}
}
