package integration

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/protojson"
	meshv1alpha1 "istio.io/api/mesh/v1alpha1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/yaml"

	"github.com/authframework/authframework/test/testenv"
)

// gatewayCRDs are the CustomResourceDefinitions the samples in
// config/samples/gateway use, with the Go module that ships each as YAML
// and the file inside it (the projects publish their CRDs in their
// modules; Envoy Gateway's are Helm templates, whose template lines are
// dropped).
var gatewayCRDs = []struct {
	module, file string
	names        []string
}{
	{"sigs.k8s.io/gateway-api@v1.6.3", "config/crd/experimental/gateway.networking.k8s.io_httproutes.yaml", []string{"httproutes.gateway.networking.k8s.io"}},
	{"sigs.k8s.io/gateway-api@v1.6.3", "config/crd/experimental/gateway.networking.k8s.io_referencegrants.yaml", []string{"referencegrants.gateway.networking.k8s.io"}},
	{"github.com/envoyproxy/gateway@v1.9.1", "charts/gateway-crds-helm/templates/generated/gateway.envoyproxy.io_securitypolicies.yaml", []string{"securitypolicies.gateway.envoyproxy.io"}},
	{"github.com/traefik/traefik/v3@v3.7.13", "docs/content/reference/dynamic-configuration/traefik.io_middlewares.yaml", []string{"middlewares.traefik.io"}},
	{"istio.io/api@v1.32.0", "kubernetes/customresourcedefinitions.gen.yaml", []string{"authorizationpolicies.security.istio.io"}},
}

// moduleDir downloads a module from the Go module proxy (or finds it in the
// module cache) and returns its directory.
func moduleDir(t *testing.T, modVersion string) string {
	t.Helper()
	goBin, err := exec.LookPath("go")
	if err != nil {
		goBin = filepath.Join(os.Getenv("GOROOT"), "bin", "go")
	}
	cmd := exec.Command(goBin, "mod", "download", "-json", modVersion)
	cmd.Dir = t.TempDir() // outside this module: nothing is added to go.mod
	out, err := cmd.Output()
	var m struct{ Dir, Error string }
	if jerr := json.Unmarshal(out, &m); err != nil || jerr != nil || m.Dir == "" {
		t.Fatalf("go mod download %s: %v %s %s", modVersion, err, m.Error, out)
	}
	return m.Dir
}

// readCRDs reads the named CRDs from a multi-document YAML file, skipping
// Helm template lines.
func readCRDs(t *testing.T, path string, names []string) []*apiextensionsv1.CustomResourceDefinition {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	for _, l := range strings.Split(string(b), "\n") {
		if !strings.HasPrefix(strings.TrimSpace(l), "{{") {
			lines = append(lines, l)
		}
	}
	var out []*apiextensionsv1.CustomResourceDefinition
	dec := utilyaml.NewYAMLOrJSONDecoder(strings.NewReader(strings.Join(lines, "\n")), 4096)
	for {
		var crd apiextensionsv1.CustomResourceDefinition
		if err := dec.Decode(&crd); err != nil {
			break
		}
		for _, n := range names {
			if crd.Name == n {
				out = append(out, crd.DeepCopy())
			}
		}
	}
	if len(out) != len(names) {
		t.Fatalf("%s: found %d of the CRDs %v", path, len(out), names)
	}
	return out
}

// TestGatewaySamplesAreAccepted has a real API server, with the CRDs of
// Gateway API (experimental channel), Envoy Gateway, Traefik and Istio
// installed from the modules that ship them, validate every sample in
// config/samples/gateway (schema and CEL rules, unknown fields refused),
// and checks the Istio mesh config snippet against Istio's own MeshConfig
// type. `make run` does not apply this directory (kubectl apply -f
// config/samples is not recursive), since its CRDs are not installed there.
func TestGatewaySamplesAreAccepted(t *testing.T) {
	var crds []*apiextensionsv1.CustomResourceDefinition
	for _, c := range gatewayCRDs {
		crds = append(crds, readCRDs(t, filepath.Join(moduleDir(t, c.module), c.file), c.names)...)
	}
	env := &envtest.Environment{BinaryAssetsDirectory: testenv.K8sBinDir(), CRDInstallOptions: envtest.CRDInstallOptions{CRDs: crds}}
	if _, err := env.Start(); err != nil {
		_ = env.Stop()
		t.Fatal(err)
	}
	defer func() { _ = env.Stop() }()
	k := testenv.AdminKubectl(t, env, "samples-admin")
	k.Run(t, "create", "namespace", "authframework-system")

	dir := testenv.Path("config", "samples", "gateway")
	cases := map[string][]string{
		"envoy-gateway.yaml":            {"httproute.gateway.networking.k8s.io/orders", "securitypolicy.gateway.envoyproxy.io/orders-auth"},
		"gateway-api-externalauth.yaml": {"httproute.gateway.networking.k8s.io/orders"},
		"traefik.yaml":                  {"middleware.traefik.io/orders-auth", "httproute.gateway.networking.k8s.io/orders"},
		"istio.yaml":                    {"authorizationpolicy.security.istio.io/orders-auth", "httproute.gateway.networking.k8s.io/orders"},
		"referencegrant.yaml":           {"referencegrant.gateway.networking.k8s.io/authframework-auth-from-shop"},
		"istio-meshconfig.yaml":         nil, // not a Kubernetes object, checked below
		"README.md":                     nil,
	}
	files, _ := filepath.Glob(filepath.Join(dir, "*"))
	for _, f := range files {
		if _, ok := cases[filepath.Base(f)]; !ok {
			t.Errorf("%s is not validated by this test", f)
		}
	}
	for file, want := range cases {
		if want == nil {
			continue
		}
		t.Run(file, func(t *testing.T) {
			// Created for real (not a dry run) in an application
			// namespace of its own (the ReferenceGrant names its own), with
			// kubectl's default strict field validation.
			ns := "shop-" + strings.TrimSuffix(file, ".yaml")
			k.Run(t, "create", "namespace", ns)
			args := []string{"create", "-n", ns, "-f", filepath.Join(dir, file)}
			if file == "referencegrant.yaml" {
				args = []string{"create", "-f", filepath.Join(dir, file)}
			}
			out, err := k.Try("", args...)
			if err != nil {
				t.Fatalf("the API server refused %s: %v\n%s", file, err, out)
			}
			for _, w := range want {
				if !strings.Contains(out, w+" created") {
					t.Errorf("%s not created:\n%s", w, out)
				}
			}
		})
	}

	t.Run("istio-meshconfig.yaml", func(t *testing.T) {
		b, err := os.ReadFile(filepath.Join(dir, "istio-meshconfig.yaml"))
		if err != nil {
			t.Fatal(err)
		}
		var values struct {
			MeshConfig json.RawMessage `json:"meshConfig"`
		}
		if err := yaml.UnmarshalStrict(b, &values); err != nil {
			t.Fatal(err)
		}
		var mc meshv1alpha1.MeshConfig
		if err := (protojson.UnmarshalOptions{}).Unmarshal(values.MeshConfig, &mc); err != nil {
			t.Fatalf("Istio's MeshConfig refuses the snippet: %v", err)
		}
		var found bool
		for _, p := range mc.GetExtensionProviders() {
			h := p.GetEnvoyExtAuthzHttp()
			if p.GetName() != "authframework-orders" || h == nil {
				continue
			}
			found = true
			if h.GetService() != "auth.authframework-system.svc.cluster.local" || h.GetPort() != 80 || !strings.HasPrefix(h.GetPathPrefix(), "/ext-authz;") ||
				!containsFold(h.GetIncludeRequestHeadersInCheck(), "authorization") || len(h.GetHeadersToUpstreamOnAllow()) == 0 {
				t.Errorf("provider %v", h)
			}
		}
		if !found {
			t.Errorf("no envoyExtAuthzHttp provider authframework-orders (the name istio.yaml uses) in %s", b)
		}
		// istio.yaml names that provider.
		if b, _ := os.ReadFile(filepath.Join(dir, "istio.yaml")); !strings.Contains(string(b), "name: authframework-orders") {
			t.Errorf("istio.yaml does not name the provider authframework-orders")
		}
	})
}

func containsFold(list []string, s string) bool {
	for _, l := range list {
		if strings.EqualFold(l, s) {
			return true
		}
	}
	return false
}
