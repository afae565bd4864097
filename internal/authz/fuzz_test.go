package authz

import (
	"strings"
	"testing"
)

// FuzzNormalizePath: normalising never panics, is idempotent, and yields
// an absolute path with no empty, `.` or `..` segment and no encoded slash,
// so the matcher and the upstream see the same segments.
func FuzzNormalizePath(f *testing.F) {
	for _, seed := range []string{
		"/", "//", "/api/orders/42", "/api/orders//42", "/api/orders/../admin", "/api/orders/%2e%2e/admin",
		"/api/orders/a%2Fb", "/a%5Cb", "/a\\b", "/a%00", "/%", "/%zz", "/a/./b/", "/a?x=../..", "/a#frag",
		"relative", "", "/%2E%2E/%2e/", "/a/%7e/%41",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		p, err := NormalizePath(raw)
		if err != nil {
			if p != "" {
				t.Fatalf("a refused path came back as %q", p)
			}
			return
		}
		again, err := NormalizePath(p)
		if err != nil || again != p {
			t.Fatalf("not idempotent: %q -> %q -> %q (%v)", raw, p, again, err)
		}
		if !strings.HasPrefix(p, "/") || strings.Contains(p, "//") {
			t.Fatalf("%q normalised to %q", raw, p)
		}
		for _, seg := range strings.Split(strings.Trim(p, "/"), "/") {
			if seg == "." || seg == ".." {
				t.Fatalf("%q normalised to %q, which keeps a dot segment", raw, p)
			}
		}
		if strings.Contains(strings.ToUpper(p), "%2F") || strings.Contains(strings.ToUpper(p), "%5C") || strings.ContainsAny(p, "\\?#") {
			t.Fatalf("%q normalised to %q, which is ambiguous", raw, p)
		}
	})
}

// FuzzRoutesAllow: route matching never panics, a path that normalises to
// one outside a rule's prefix is never allowed, and the verdict depends on
// the normalised path only.
func FuzzRoutesAllow(f *testing.F) {
	rules := []Route{
		{Hosts: []string{"api.example.com", "*.internal.example.com"}, Paths: []string{"/api/orders/**", "/api/items/*/stock"}, Methods: []string{"GET"}},
		{Paths: []string{"/health"}},
	}
	for _, seed := range []struct{ method, host, path string }{
		{"GET", "api.example.com", "/api/orders/42"}, {"GET", "API.example.com.", "/api/orders/../admin"},
		{"GET", "x.internal.example.com:8443", "/api/items/7/stock"}, {"DELETE", "api.example.com", "/api/orders/1"},
		{"GET", "a.b.internal.example.com", "/api/items/7/stock"}, {"POST", "", "/health/"}, {"GET", "api.example.com", "/api/orders%2F..%2Fadmin"},
	} {
		f.Add(seed.method, seed.host, seed.path)
	}
	f.Fuzz(func(t *testing.T, method, host, path string) {
		ok, err := RoutesAllow(rules, Request{Method: method, Host: host, Path: path})
		if err != nil && ok {
			t.Fatal("allowed with an error")
		}
		norm, nerr := NormalizePath(path)
		if (err == nil) != (nerr == nil) {
			t.Fatalf("RoutesAllow error %v, NormalizePath error %v", err, nerr)
		}
		if nerr != nil {
			return
		}
		if ok && !strings.HasPrefix(norm, "/api/orders") && !strings.HasPrefix(norm, "/api/items/") && norm != "/health" && norm != "/health/" {
			t.Fatalf("%s %s %q (normalised %q) allowed outside every rule", method, host, path, norm)
		}
		again, _ := RoutesAllow(rules, Request{Method: method, Host: host, Path: norm})
		if again != ok {
			t.Fatalf("%q allowed=%v but its normalised form %q allowed=%v", path, ok, norm, again)
		}
	})
}
