package integration

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/rest"
	clocktesting "k8s.io/utils/clock/testing"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/yaml"

	authv1alpha1 "github.com/authframework/authframework/api/v1alpha1"
	"github.com/authframework/authframework/controllers"
	"github.com/authframework/authframework/test/testenv"
)

var chart = testenv.Path("charts", "authframework")

// helm runs the built helm with a private home (helm needs a writable one).
func helm(t *testing.T, args ...string) (string, error) {
	t.Helper()
	bin := testenv.Helm()
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("helm not built at %s (make tools): %v", bin, err)
	}
	home := t.TempDir()
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), "HOME="+home, "XDG_CACHE_HOME="+filepath.Join(home, "cache"), "XDG_CONFIG_HOME="+filepath.Join(home, "config"), "XDG_DATA_HOME="+filepath.Join(home, "data"))
	var out, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &stderr
	err := cmd.Run()
	if err != nil {
		return out.String() + stderr.String(), err
	}
	return out.String(), nil
}

func TestHelmLint(t *testing.T) {
	if out, err := helm(t, "lint", "--strict", chart); err != nil {
		t.Fatalf("helm lint --strict: %v\n%s", err, out)
	}
}

// TestHelmTemplateIsAccepted renders the chart with default values and with
// every toggle flipped, and has the real API server validate each rendering
// (kubectl apply --dry-run=server).
func TestHelmTemplateIsAccepted(t *testing.T) {
	for _, f := range []string{"crd-servicemonitors.yaml", "crd-certificates.yaml", "crd-issuers.yaml"} {
		if out, err := kubectl.Try("", "apply", "-f", testenv.Path("test", "integration", "testdata", f)); err != nil {
			t.Fatalf("installing stand-in CRD %s: %v\n%s", f, err, out)
		}
	}
	cases := map[string][]string{
		"defaults": nil,
		"every toggle flipped": {
			"--set", "crds.install=false", "--set", "crds.keep=false",
			"--set", "webhooks.certManager.enabled=true",
			"--set", "metrics.serviceMonitor.enabled=true", "--set", "networkPolicy.enabled=true",
			"--set", "defaults.tokenPolicy.create=true", "--set", "defaults.authServer.create=true",
			"--set", "replicaCount=3", "--set", "manager.logFormat=console", "--set", "serverRBAC.create=false",
			"--set", "tokenExchange.enabled=true",
		},
		"token exchange":                              {"--set", "tokenExchange.enabled=true", "--set", "tokenExchange.audience=pods.example.com", "--set", "defaults.authServer.create=true"},
		"trusted namespaces for AuthServers":          {"--set", "serverRBAC.clusterScopeNamespaces={auth,platform}"},
		"webhooks off":                                {"--set", "webhooks.enabled=false"},
		"cert-manager with an existing ClusterIssuer": {"--set", "webhooks.certManager.enabled=true", "--set", "webhooks.certManager.issuerRef.name=ca", "--set", "webhooks.certManager.issuerRef.kind=ClusterIssuer"},
	}
	for name, set := range cases {
		t.Run(name, func(t *testing.T) {
			ns := newNamespace(t)
			rendered, err := helm(t, append([]string{"template", "af", chart, "--namespace", ns}, set...)...)
			if err != nil {
				t.Fatalf("helm template: %v\n%s", err, rendered)
			}
			out, err := kubectl.Try(rendered, "apply", "--dry-run=server", "-n", ns, "-f", "-")
			if err != nil {
				t.Fatalf("kubectl apply --dry-run=server refused the rendering: %v\n%s", err, out)
			}
			if name == "every toggle flipped" {
				for _, want := range []string{"servicemonitor.monitoring.coreos.com/af-authframework", "networkpolicy.networking.k8s.io/af-authframework",
					"certificate.cert-manager.io/af-authframework-webhook", "issuer.cert-manager.io/af-authframework-selfsigned",
					"tokenpolicy.auth.authframework.dev/default", "authserver.auth.authframework.dev/auth"} {
					if !strings.Contains(out, want) {
						t.Errorf("%s missing from\n%s", want, out)
					}
				}
				if strings.Contains(out, "customresourcedefinition") {
					t.Errorf("crds.install=false still renders CRDs")
				}
				if strings.Contains(out, "clusterrole.rbac.authorization.k8s.io/authframework-server") || !strings.Contains(rendered, "- --server-cluster-role=\n") {
					t.Errorf("serverRBAC.create=false still installs the server roles or lets the operator bind them")
				}
				if strings.Contains(rendered, "- --server-tokenreview-cluster-role") || strings.Contains(out, "manager-tokenreview") {
					t.Errorf("serverRBAC.create=false with tokenExchange.enabled still lets the operator bind the tokenreviews role")
				}
			}
			switch name {
			case "defaults":
				for _, want := range []string{"clusterrole.rbac.authorization.k8s.io/authframework-server ", "clusterrole.rbac.authorization.k8s.io/authframework-server-revocations "} {
					if !strings.Contains(out, want) {
						t.Errorf("%s missing from\n%s", want, out)
					}
				}
				// Token exchange is off: no tokenreviews role, no bind on
				// it, no flag.
				if strings.Contains(out, "authframework-server-tokenreview") || strings.Contains(out, "manager-tokenreview") || strings.Contains(rendered, "- --server-tokenreview-cluster-role") {
					t.Errorf("token exchange is not off by default:\n%s", out)
				}
				if !strings.Contains(rendered, "--server-cluster-scope-namespaces="+ns+"\n") {
					t.Errorf("the operator's AuthServers in the release namespace are not trusted by default")
				}
			case "token exchange":
				for _, want := range []string{"clusterrole.rbac.authorization.k8s.io/authframework-server-tokenreview ", "clusterrole.rbac.authorization.k8s.io/af-authframework-manager-tokenreview ",
					"clusterrolebinding.rbac.authorization.k8s.io/af-authframework-manager-tokenreview "} {
					if !strings.Contains(out, want) {
						t.Errorf("%s missing from\n%s", want, out)
					}
				}
				if !strings.Contains(rendered, "- --server-tokenreview-cluster-role=authframework-server-tokenreview\n") || !strings.Contains(rendered, "tokenExchange:\n    audience: \"pods.example.com\"") {
					t.Errorf("the operator flag or the starter AuthServer's tokenExchange is missing")
				}
			case "trusted namespaces for AuthServers":
				if !strings.Contains(rendered, "--server-cluster-scope-namespaces=auth,platform\n") {
					t.Errorf("serverRBAC.clusterScopeNamespaces not passed to the operator")
				}
			}
		})
	}
}

// TestHelmValuesSchema: bad values fail at install with a clear message.
func TestHelmValuesSchema(t *testing.T) {
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	if err := os.WriteFile(bad, []byte("replicas: 3\nimage:\n  pullPolicy: Sometimes\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := helm(t, "template", "af", chart, "-f", bad)
	if err == nil {
		t.Fatal("a values file with an unknown key and a bad enum was accepted")
	}
	for _, want := range []string{"values don't meet the specifications of the schema", "replicas", "pullPolicy"} {
		if !strings.Contains(out, want) {
			t.Errorf("schema error does not mention %q:\n%s", want, out)
		}
	}
	out, err = helm(t, "template", "af", chart, "--set", "replicaCount=0")
	if err == nil || !strings.Contains(out, "replicaCount") {
		t.Errorf("replicaCount=0: %v\n%s", err, out)
	}
}

// TestChartRBAC runs the controllers with nothing but the chart's RBAC, by
// impersonating the chart's ServiceAccount against a control plane of its
// own, and checks that they reconcile the samples and hold no wildcard.
func TestChartRBAC(t *testing.T) {
	rendered, err := helm(t, "template", "af", chart, "--namespace", "authframework-system", "--set", "tokenExchange.enabled=true",
		"--show-only", "templates/serviceaccount.yaml", "--show-only", "templates/clusterrole.yaml", "--show-only", "templates/rbac.yaml", "--show-only", "templates/server-rbac.yaml",
		"--show-only", "templates/tokenexchange-rbac.yaml")
	if err != nil {
		t.Fatalf("helm template: %v\n%s", err, rendered)
	}
	// No wildcards, no privilege escalation verbs, nothing on Secrets beyond
	// what the controllers use; `bind` only on the two server ClusterRoles
	// and, in a role of its own that ships only with tokenExchange.enabled,
	// the tokenreviews one.
	dec := utilyaml.NewYAMLOrJSONDecoder(strings.NewReader(rendered), 4096)
	for {
		var obj map[string]any
		if err := dec.Decode(&obj); err != nil {
			break
		}
		if obj["kind"] != "ClusterRole" && obj["kind"] != "Role" {
			continue
		}
		b, _ := yaml.Marshal(obj)
		var role rbacv1.ClusterRole
		if err := yaml.Unmarshal(b, &role); err != nil {
			t.Fatal(err)
		}
		for _, r := range role.Rules {
			for _, list := range [][]string{r.Verbs, r.Resources, r.APIGroups} {
				if slices.Contains(list, "*") {
					t.Errorf("%s has a wildcard rule %+v", role.Name, r)
				}
			}
			for _, v := range r.Verbs {
				if slices.Contains([]string{"escalate", "impersonate", "deletecollection"}, v) {
					t.Errorf("%s grants %s", role.Name, v)
				}
			}
			bindable := []string{"authframework-server", "authframework-server-revocations"}
			if role.Name == "af-authframework-manager-tokenreview" {
				bindable = []string{"authframework-server-tokenreview"}
			}
			if slices.Contains(r.Verbs, "bind") && (!slices.Equal(r.Resources, []string{"clusterroles"}) || !slices.Equal(r.ResourceNames, bindable)) {
				t.Errorf("%s grants bind beyond the server ClusterRoles: %+v", role.Name, r)
			}
			if role.Name == "authframework-server-tokenreview" && (len(role.Rules) != 1 || !slices.Equal(r.Verbs, []string{"create"}) || !slices.Equal(r.Resources, []string{"tokenreviews"})) {
				t.Errorf("the tokenreviews role grants more than create on tokenreviews: %+v", role.Rules)
			}
			if slices.Contains(r.Resources, "secrets") {
				for _, v := range r.Verbs {
					if !slices.Contains([]string{"get", "list", "watch", "create", "update", "patch", "delete"}, v) {
						t.Errorf("%s grants %s on secrets", role.Name, v)
					}
				}
			}
		}
	}

	env := &envtest.Environment{
		CRDDirectoryPaths: []string{testenv.Path("config", "crd", "bases")}, ErrorIfCRDPathMissing: true,
		BinaryAssetsDirectory: testenv.K8sBinDir(), Scheme: scheme,
	}
	adminCfg, err := env.Start()
	if err != nil {
		_ = env.Stop()
		t.Fatal(err)
	}
	defer func() { _ = env.Stop() }()
	admin, err := client.New(adminCfg, client.Options{Scheme: scheme})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	for _, name := range []string{"authframework-system", "team"} {
		if err := admin.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}); err != nil {
			t.Fatal(err)
		}
	}
	dec = utilyaml.NewYAMLOrJSONDecoder(strings.NewReader(rendered), 4096)
	for {
		var u map[string]any
		if err := dec.Decode(&u); err != nil {
			break
		}
		if len(u) == 0 {
			continue
		}
		b, _ := yaml.Marshal(u)
		obj, err := decodeTyped(b)
		if err != nil {
			t.Fatal(err)
		}
		if err := admin.Create(ctx, obj); err != nil {
			t.Fatalf("applying the chart's RBAC: %v", err)
		}
	}

	// The operator as the chart runs it: impersonating its ServiceAccount.
	saCfg := rest.CopyConfig(adminCfg)
	saCfg.Impersonate = rest.ImpersonationConfig{UserName: "system:serviceaccount:authframework-system:af-authframework"}
	serverRBAC := controllers.ServerRBAC{ReadClusterRole: "authframework-server", RevocationsClusterRole: "authframework-server-revocations",
		TokenReviewClusterRole: "authframework-server-tokenreview", ClusterScopeNamespaces: []string{"authframework-system"}}
	testenv.RunManager(t, ctx, saCfg, controllers.ManagerOptions{Scheme: scheme,
		LeaderElection: controllers.LeaderElection{ID: "rbac-test", Namespace: "authframework-system"},
		Controllers:    controllers.Options{Clock: clocktesting.NewFakeClock(time.Now()), ServerRBAC: serverRBAC}})

	// The samples, applied as an admin.
	for _, f := range []string{"auth_v1alpha1_tokenpolicy.yaml", "auth_v1alpha1_role_orders_reader.yaml", "auth_v1alpha1_role_inventory_admin.yaml", "auth_v1alpha1_serviceaccount_billing.yaml", "auth_v1alpha1_serviceaccount_stock_sync.yaml"} {
		for _, obj := range readObjects(t, testenv.Path("config", "samples", f)) {
			obj.SetNamespace("team")
			if err := admin.Create(ctx, obj); err != nil {
				t.Fatal(err)
			}
		}
	}
	testenv.Eventually(t, "the samples reconciled with the chart's RBAC only", func() error {
		for _, name := range []string{"billing", "stock-sync"} {
			var sa authv1alpha1.ServiceAccount
			if err := admin.Get(ctx, types.NamespacedName{Namespace: "team", Name: name}, &sa); err != nil {
				return err
			}
			if !meta.IsStatusConditionTrue(sa.Status.Conditions, authv1alpha1.ConditionReady) || sa.Status.TokenSecretName == "" && name == "stock-sync" {
				return fmt.Errorf("%s: %+v", name, sa.Status.Conditions)
			}
		}
		return nil
	})
	// An AuthServer in the operator's namespace: the chart's RBAC lets the
	// operator bind the server roles to its ServiceAccount cluster-wide.
	// With token exchange, the tokenreviews role too.
	if err := admin.Create(ctx, &authv1alpha1.AuthServer{ObjectMeta: metav1.ObjectMeta{Namespace: "authframework-system", Name: "auth"},
		Spec: authv1alpha1.AuthServerSpec{Image: "ghcr.io/authframework/authframework:v1", Replicas: ptr.To[int32](1),
			TokenExchange: &authv1alpha1.TokenExchangeSpec{Audience: "authframework"}}}); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, "the AuthServer's pods are granted their roles with the chart's RBAC only", func() error {
		var as authv1alpha1.AuthServer
		if err := admin.Get(ctx, types.NamespacedName{Namespace: "authframework-system", Name: "auth"}, &as); err != nil {
			return err
		}
		if !meta.IsStatusConditionTrue(as.Status.Conditions, authv1alpha1.ConditionPermissionsGranted) {
			return fmt.Errorf("%+v", meta.FindStatusCondition(as.Status.Conditions, authv1alpha1.ConditionPermissionsGranted))
		}
		if err := admin.Get(ctx, types.NamespacedName{Name: "authframework-server-tokenreview:authframework-system:auth"}, &rbacv1.ClusterRoleBinding{}); err != nil {
			return err
		}
		return admin.Get(ctx, types.NamespacedName{Name: "authframework-server:authframework-system:auth"}, &rbacv1.ClusterRoleBinding{})
	})
	// And nothing beyond: the operator's identity cannot read pods or
	// ConfigMaps, nor grant itself (or anyone) more.
	as, err := client.New(saCfg, client.Options{Scheme: scheme})
	if err != nil {
		t.Fatal(err)
	}
	for _, list := range []client.ObjectList{&corev1.PodList{}, &corev1.ConfigMapList{}, &rbacv1.ClusterRoleList{}} {
		if err := as.List(ctx, list); !apierrors.IsForbidden(err) {
			t.Errorf("the operator can list %T: %v", list, err)
		}
	}
	escalate := &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "rbac-test-escalate"},
		RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "cluster-admin"},
		Subjects: []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Namespace: "authframework-system", Name: "af-authframework"}}}
	if err := as.Create(ctx, escalate); !apierrors.IsForbidden(err) {
		t.Errorf("the operator could bind cluster-admin: %v", err)
	}
}

// TestKustomizeInstall: the other install path, `kubectl apply -k
// config/default`, is accepted by the API server.
func TestKustomizeInstall(t *testing.T) {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "authframework-system"}}
	if err := k8sClient.Create(context.Background(), ns); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	out, err := kubectl.Try("", "apply", "--dry-run=server", "-k", testenv.Path("config", "default"))
	if err != nil {
		t.Fatalf("kubectl apply -k config/default: %v\n%s", err, out)
	}
	for _, want := range []string{"deployment.apps/authframework-manager", "clusterrole.rbac.authorization.k8s.io/authframework-manager-role",
		"validatingwebhookconfiguration.admissionregistration.k8s.io/authframework-validating-webhook-configuration", "service/authframework-webhook-service"} {
		if !strings.Contains(out, want) {
			t.Errorf("%s missing from\n%s", want, out)
		}
	}
	if strings.Contains(out, "tokenreview") {
		t.Errorf("config/default enables token exchange:\n%s", out)
	}

	// config/default with the token exchange component uncommented, as
	// its comment says: the tokenreviews role, the operator's bind on it
	// and the flag, with the names the operator binds.
	dir := t.TempDir()
	rel, err := filepath.Rel(dir, testenv.Path("config"))
	if err != nil {
		t.Fatal(err)
	}
	def, err := os.ReadFile(testenv.Path("config", "default", "kustomization.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	k := strings.ReplaceAll(string(def), "../", rel+"/")
	k = strings.Replace(k, "#components:\n#  - "+rel+"/tokenexchange", "components:\n  - "+rel+"/tokenexchange", 1)
	if !strings.Contains(k, "\ncomponents:") {
		t.Fatalf("config/default/kustomization.yaml no longer offers the token exchange component:\n%s", def)
	}
	if err := os.WriteFile(filepath.Join(dir, "kustomization.yaml"), []byte(k), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err = kubectl.Try("", "apply", "--dry-run=server", "-k", dir)
	if err != nil {
		t.Fatalf("kubectl apply -k with config/tokenexchange: %v\n%s", err, out)
	}
	for _, want := range []string{"clusterrole.rbac.authorization.k8s.io/authframework-server-tokenreview", "clusterrole.rbac.authorization.k8s.io/authframework-manager-tokenreview",
		"clusterrolebinding.rbac.authorization.k8s.io/authframework-manager-tokenreview"} {
		if !strings.Contains(out, want) {
			t.Errorf("%s missing from\n%s", want, out)
		}
	}
	built, err := kubectl.Try("", "kustomize", dir)
	if err != nil || !strings.Contains(built, "- --server-tokenreview-cluster-role=authframework-server-tokenreview\n") ||
		!strings.Contains(built, "  name: authframework-manager\n  namespace: authframework-system\n") {
		t.Errorf("the component does not pass the flag or bind the operator's ServiceAccount: %v\n%s", err, built)
	}
}

// TestHelmInstallUpgradeUninstall installs the chart for real (not a
// template or dry run) on a control plane of its own, as a new user does
// after `make run` or `kubectl apply` of the CRDs and roles: Helm refuses to
// take over objects it did not create until told to (--take-ownership), NOTES
// name the auth server's real Service, an upgrade applies, a second release
// is refused with a clear message, and an uninstall leaves the CRDs (and so
// every custom resource) behind for the next install to adopt.
func TestHelmInstallUpgradeUninstall(t *testing.T) {
	env := &envtest.Environment{BinaryAssetsDirectory: testenv.K8sBinDir(), Scheme: scheme}
	cfg, err := env.Start()
	if err != nil {
		_ = env.Stop()
		t.Fatal(err)
	}
	defer func() { _ = env.Stop() }()
	k := testenv.AdminKubectl(t, env, "helm-admin")
	cl, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	h := func(args ...string) (string, error) { return helm(t, append(args, "--kubeconfig", k.Kubeconfig)...) }
	// No pods run here: the webhooks would refuse every custom resource.
	values := []string{"--set", "webhooks.enabled=false", "--set", "defaults.tokenPolicy.create=true", "--set", "defaults.authServer.create=true"}

	// What `make run` leaves: the CRDs and the server ClusterRoles, applied
	// with kubectl.
	k.Run(t, "apply", "--server-side", "-f", testenv.Path("config", "crd", "bases"))
	roles := k.Run(t, "create", "--dry-run=client", "-o", "yaml", "-f", testenv.Path("config", "rbac", "server_role.yaml"))
	roles = strings.ReplaceAll(strings.ReplaceAll(roles, "name: server-revocations\n", "name: authframework-server-revocations\n"), "name: server\n", "name: authframework-server\n")
	if out, err := k.Try(roles, "apply", "-f", "-"); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	out, err := h(append([]string{"install", "af", chart, "-n", "authframework-system", "--create-namespace"}, values...)...)
	if err == nil || !strings.Contains(out, "invalid ownership metadata") {
		t.Fatalf("helm install over kubectl-applied CRDs: %v\n%s", err, out)
	}
	out, err = h(append([]string{"install", "af", chart, "-n", "authframework-system", "--create-namespace", "--take-ownership"}, values...)...)
	if err != nil {
		t.Fatalf("helm install --take-ownership: %v\n%s", err, out)
	}
	// NOTES name the starter AuthServer's Service, and nothing to fill in.
	for _, want := range []string{"AuthServer authframework-system/auth -> http://auth.authframework-system.svc",
		"backendRefs: [{name: auth, namespace: authframework-system, port: 80}]", `address: "http://auth.authframework-system.svc/forward-auth?`,
		"service: auth.authframework-system.svc.cluster.local", `auth-url: "http://auth.authframework-system.svc/validate?`} {
		if !strings.Contains(out, want) {
			t.Errorf("NOTES lack %q:\n%s", want, out)
		}
	}
	_, notes, _ := strings.Cut(out, "NOTES:")
	for _, bad := range []string{"AUTH-SERVICE", "NAMESPACE", "not part of this release"} {
		if strings.Contains(notes, bad) {
			t.Errorf("NOTES still say %q:\n%s", bad, out)
		}
	}
	crd := func() *apiextensionsv1.CustomResourceDefinition {
		var c apiextensionsv1.CustomResourceDefinition
		if err := cl.Get(ctx, client.ObjectKey{Name: "authservers.auth.authframework.dev"}, &c); err != nil {
			t.Fatalf("the AuthServer CRD: %v", err)
		}
		return &c
	}
	if c := crd(); c.Annotations["meta.helm.sh/release-name"] != "af" || c.Annotations["helm.sh/resource-policy"] != "keep" {
		t.Errorf("the CRD was not adopted with the keep policy: %v", c.Annotations)
	}
	for _, key := range []client.ObjectKey{{Namespace: "authframework-system", Name: "auth"}} {
		if err := cl.Get(ctx, key, &authv1alpha1.AuthServer{}); err != nil {
			t.Errorf("the starter AuthServer: %v", err)
		}
		if err := cl.Get(ctx, client.ObjectKey{Namespace: key.Namespace, Name: "default"}, &authv1alpha1.TokenPolicy{}); err != nil {
			t.Errorf("the starter TokenPolicy: %v", err)
		}
	}

	// An upgrade applies.
	if out, err := h("upgrade", "af", chart, "-n", "authframework-system", "--reuse-values", "--set", "replicaCount=3"); err != nil {
		t.Fatalf("helm upgrade: %v\n%s", err, out)
	}
	var dep appsv1.Deployment
	if err := cl.Get(ctx, client.ObjectKey{Namespace: "authframework-system", Name: "af-authframework"}, &dep); err != nil || ptr.Deref(dep.Spec.Replicas, 0) != 3 {
		t.Errorf("after the upgrade: %v, replicas %v", err, dep.Spec.Replicas)
	}

	// A second release, in another namespace: refused at install with a
	// message that names the first, whatever it would install.
	for _, set := range [][]string{nil, {"--set", "crds.install=false", "--set", "serverRBAC.create=false", "--set", "webhooks.enabled=false"}} {
		out, err := h(append([]string{"install", "af2", chart, "-n", "team-b", "--create-namespace"}, set...)...)
		if err == nil || !strings.Contains(out, `already installed in this cluster by Helm release "af" in namespace "authframework-system"`) ||
			!strings.Contains(out, "Only one installation per cluster") {
			t.Errorf("a second release %v: %v\n%s", set, err, out)
		}
	}
	if err := cl.Get(ctx, client.ObjectKey{Namespace: "team-b", Name: "af2-authframework"}, &appsv1.Deployment{}); !apierrors.IsNotFound(err) {
		t.Errorf("the refused release left a Deployment: %v", err)
	}

	// Uninstall: the operator and its roles go, the CRDs stay.
	if out, err := h("uninstall", "af", "-n", "authframework-system", "--wait"); err != nil {
		t.Fatalf("helm uninstall: %v\n%s", err, out)
	}
	if err := cl.Get(ctx, client.ObjectKey{Namespace: "authframework-system", Name: "af-authframework"}, &appsv1.Deployment{}); !apierrors.IsNotFound(err) {
		t.Errorf("the operator's Deployment after uninstall: %v", err)
	}
	if err := cl.Get(ctx, client.ObjectKey{Name: "authframework-server"}, &rbacv1.ClusterRole{}); !apierrors.IsNotFound(err) {
		t.Errorf("the server ClusterRole after uninstall: %v", err)
	}
	crd()
	if out := k.Run(t, "get", "crd", "-o", "name"); strings.Count(out, ".auth.authframework.dev") != 4 {
		t.Errorf("CRDs after uninstall:\n%s", out)
	}

	// The next install, under another name and namespace, adopts the kept
	// CRDs once told to.
	out, err = h(append([]string{"install", "af2", chart, "-n", "team-b", "--create-namespace"}, values...)...)
	if err == nil || !strings.Contains(out, "invalid ownership metadata") {
		t.Fatalf("installing over the kept CRDs: %v\n%s", err, out)
	}
	if out, err := h(append([]string{"install", "af2", chart, "-n", "team-b", "--create-namespace", "--take-ownership"}, values...)...); err != nil {
		t.Fatalf("helm install --take-ownership over the kept CRDs: %v\n%s", err, out)
	}
	if c := crd(); c.Annotations["meta.helm.sh/release-name"] != "af2" || c.Annotations["meta.helm.sh/release-namespace"] != "team-b" {
		t.Errorf("the kept CRD was not adopted: %v", c.Annotations)
	}

	// Without a starter AuthServer, NOTES say there is none and how to get
	// one; then they name the AuthServers the cluster has.
	if out, err := h("upgrade", "af2", chart, "-n", "team-b", "--reuse-values", "--set", "defaults.authServer.create=false"); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	// NOTES are rendered before the upgrade applies: the next one sees the
	// starter AuthServer gone.
	out, err = h("upgrade", "af2", chart, "-n", "team-b", "--reuse-values")
	if err != nil || !strings.Contains(out, "No AuthServer yet") || !strings.Contains(out, "--set defaults.authServer.create=true") {
		t.Errorf("NOTES without an AuthServer: %v\n%s", err, out)
	}
	if err := cl.Create(ctx, &authv1alpha1.AuthServer{ObjectMeta: metav1.ObjectMeta{Namespace: "team-b", Name: "edge"},
		Spec: authv1alpha1.AuthServerSpec{Image: "ghcr.io/authframework/authframework:v1", Replicas: ptr.To[int32](1)}}); err != nil {
		t.Fatal(err)
	}
	out, err = h("upgrade", "af2", chart, "-n", "team-b", "--reuse-values")
	if err != nil || !strings.Contains(out, "AuthServer team-b/edge -> http://edge.team-b.svc") || !strings.Contains(out, "backendRefs: [{name: edge, namespace: team-b, port: 80}]") {
		t.Errorf("NOTES with an AuthServer of the cluster: %v\n%s", err, out)
	}
}
