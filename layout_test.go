package main

import (
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

const module = "github.com/authframework/authframework"

// deps lists every package pattern's transitive imports (go list -deps).
func deps(t *testing.T, pattern string) []string {
	t.Helper()
	out, err := exec.Command(filepath.Join(runtime.GOROOT(), "bin", "go"), "list", "-deps", pattern).Output()
	if err != nil {
		t.Fatalf("go list -deps %s: %v", pattern, err)
	}
	return strings.Fields(string(out))
}

// forbidden returns the imports of pattern that start with any prefix.
func forbidden(t *testing.T, pattern string, prefixes ...string) []string {
	var bad []string
	for _, d := range deps(t, pattern) {
		for _, p := range prefixes {
			if d == p || strings.HasPrefix(d, p+"/") {
				bad = append(bad, d)
			}
		}
	}
	return bad
}

// TestImportRules guards the split between the planes: the contract lives
// in api/ and the pure cores in internal/, below both the controllers and
// the auth server, and neither plane imports the other.
func TestImportRules(t *testing.T) {
	// The check itself can see a forbidden import: the controllers do use
	// controller-runtime.
	if len(forbidden(t, "./controllers", "sigs.k8s.io/controller-runtime")) == 0 {
		t.Fatal("the import check sees nothing; it cannot guard anything")
	}
	rules := []struct {
		pattern   string
		forbidden []string
		why       string
	}{
		{"./internal/...", []string{"k8s.io/client-go", "sigs.k8s.io/controller-runtime"}, "pure cores take state, not clients"},
		{"./api/...", []string{module + "/controllers", module + "/webhook", module + "/internal", module + "/pkg", module + "/test"}, "the API depends on no project package"},
		{"./webhook/auth/...", []string{module + "/controllers"}, "the data plane does not import the control plane"},
		{"./webhook/admission/...", []string{module + "/controllers"}, "admission shares the contract, not the controllers"},
		{"./controllers/...", []string{module + "/webhook/auth"}, "the control plane does not import the data plane"},
		{"./pkg/...", []string{"k8s.io/client-go", "sigs.k8s.io/controller-runtime", module + "/controllers", module + "/webhook"}, "public packages are importable without the operator"},
	}
	for _, r := range rules {
		if bad := forbidden(t, r.pattern, r.forbidden...); len(bad) > 0 {
			t.Errorf("%s imports %s (%s)", r.pattern, strings.Join(bad, ", "), r.why)
		}
	}
}
