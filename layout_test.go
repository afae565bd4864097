package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
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
		{"./pkg/verify/...", []string{"google.golang.org/grpc"}, "net/http services do not import gRPC; the interceptors are in pkg/grpcauth"},
		{".", []string{module + "/test", module + "/webhook/auth/authtest", module + "/internal/certs/certstest", module + "/pkg/issuertest"}, "test fixtures are not compiled into the binary"},
	}
	for _, r := range rules {
		if bad := forbidden(t, r.pattern, r.forbidden...); len(bad) > 0 {
			t.Errorf("%s imports %s (%s)", r.pattern, strings.Join(bad, ", "), r.why)
		}
	}
}

// TestProjectFile keeps the kubebuilder PROJECT file true: its kinds are
// the CRDs controller-gen writes, and its webhooks the paths in
// config/webhook/manifests.yaml.
func TestProjectFile(t *testing.T) {
	var project struct {
		Domain    string `json:"domain"`
		Resources []struct {
			Group, Kind, Version, Domain, Path string
			Webhooks                           struct{ Defaulting, Validation bool } `json:"webhooks"`
		} `json:"resources"`
	}
	b, err := os.ReadFile("PROJECT")
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, &project); err != nil {
		t.Fatal(err)
	}
	webhooks, err := os.ReadFile(filepath.Join("config", "webhook", "manifests.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	crds, _ := filepath.Glob(filepath.Join("config", "crd", "bases", "*.yaml"))
	if project.Domain != "authframework.dev" || len(project.Resources) != len(crds) {
		t.Fatalf("PROJECT lists %d kinds in %q; config/crd/bases has %d", len(project.Resources), project.Domain, len(crds))
	}
	for _, r := range project.Resources {
		group := r.Group + "." + r.Domain
		var crd struct {
			Spec struct {
				Group string
				Names struct{ Kind, Plural string }
			}
		}
		if b, err := os.ReadFile(filepath.Join("config", "crd", "bases", group+"_"+strings.ToLower(r.Kind)+"s.yaml")); err != nil {
			if b, err = os.ReadFile(filepath.Join("config", "crd", "bases", group+"_"+strings.ToLower(strings.TrimSuffix(r.Kind, "y"))+"ies.yaml")); err != nil {
				t.Errorf("PROJECT kind %s has no CRD", r.Kind)
				continue
			} else {
				_ = yaml.Unmarshal(b, &crd)
			}
		} else {
			_ = yaml.Unmarshal(b, &crd)
		}
		if crd.Spec.Names.Kind != r.Kind || crd.Spec.Group != group || r.Path != module+"/api/"+r.Version {
			t.Errorf("PROJECT kind %s/%s does not match its CRD (%s, %s)", group, r.Kind, crd.Spec.Group, crd.Spec.Names.Kind)
		}
		for _, w := range []struct {
			on     bool
			prefix string
		}{{r.Webhooks.Defaulting, "/mutate-"}, {r.Webhooks.Validation, "/validate-"}} {
			path := w.prefix + strings.ReplaceAll(group, ".", "-") + "-" + r.Version + "-" + crd.Spec.Names.Plural[:len(crd.Spec.Names.Plural)-len("s")]
			if strings.HasSuffix(crd.Spec.Names.Plural, "ies") {
				path = w.prefix + strings.ReplaceAll(group, ".", "-") + "-" + r.Version + "-" + strings.ToLower(r.Kind)
			}
			if has := strings.Contains(string(webhooks), "path: "+path+"\n"); has != w.on {
				t.Errorf("PROJECT says %s webhook %s is %v; config/webhook/manifests.yaml says %v", r.Kind, path, w.on, has)
			}
		}
	}
}
