package integration

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/controller-runtime/pkg/client"

	authv1alpha1 "github.com/authframework/authframework/api/v1alpha1"
	"github.com/authframework/authframework/test/testenv"
)

// TestCRDsAreInstalledAndDiscoverable checks every kind is served with its
// short names and in the `authframework` category.
func TestCRDsAreInstalledAndDiscoverable(t *testing.T) {
	want := map[string][]string{
		"serviceaccounts.auth.authframework.dev": {"afsa"},
		"roles.auth.authframework.dev":           {"afrole"},
		"tokenpolicies.auth.authframework.dev":   {"tpol", "tokenpolicy"},
		"authservers.auth.authframework.dev":     {"afserver", "afs"},
	}
	for name, shortNames := range want {
		var crd apiextensionsv1.CustomResourceDefinition
		if err := k8sClient.Get(context.Background(), keyOf(name), &crd); err != nil {
			t.Errorf("CRD %s: %v", name, err)
			continue
		}
		if crd.Spec.Scope != apiextensionsv1.NamespaceScoped {
			t.Errorf("%s: scope %s, want Namespaced", name, crd.Spec.Scope)
		}
		if got := crd.Spec.Names.ShortNames; !sameSet(got, shortNames) {
			t.Errorf("%s: short names %v, want %v", name, got, shortNames)
		}
		if !sameSet(crd.Spec.Names.Categories, []string{"authframework"}) {
			t.Errorf("%s: categories %v, want [authframework]", name, crd.Spec.Names.Categories)
		}
		established := false
		for _, c := range crd.Status.Conditions {
			if c.Type == apiextensionsv1.Established && c.Status == apiextensionsv1.ConditionTrue {
				established = true
			}
		}
		if !established {
			t.Errorf("%s is not Established", name)
		}
		v := crd.Spec.Versions[0]
		if v.Subresources == nil || v.Subresources.Status == nil {
			t.Errorf("%s: no status subresource", name)
		}
		cols := map[string]bool{}
		for _, c := range v.AdditionalPrinterColumns {
			cols[c.Name] = true
		}
		if !cols["Ready"] || !cols["Age"] {
			t.Errorf("%s: printer columns %v lack Ready or Age", name, cols)
		}
	}
}

// TestSamplesAreAccepted creates every sample as the API server sees it.
func TestSamplesAreAccepted(t *testing.T) {
	ns := newNamespace(t)
	files, err := filepath.Glob(testenv.Path("config", "samples", "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no samples found: %v", err)
	}
	kinds := map[string]int{}
	for _, f := range files {
		for _, obj := range readObjects(t, f) {
			obj.SetNamespace(ns)
			if err := k8sClient.Create(context.Background(), obj); err != nil {
				t.Errorf("%s: %s/%s refused: %v", filepath.Base(f), obj.GetKind(), obj.GetName(), err)
			}
			kinds[obj.GetKind()]++
		}
	}
	want := map[string]int{"TokenPolicy": 1, "Role": 2, "ServiceAccount": 2, "AuthServer": 1}
	for k, n := range want {
		if kinds[k] < n {
			t.Errorf("samples have %d %s, want at least %d", kinds[k], k, n)
		}
	}
}

// TestKubectl drives the kubectl built from source the way a user would:
// server-side apply of the CRDs, apply of the samples, listing by category and
// reading the field documentation.
func TestKubectl(t *testing.T) {
	ns := newNamespace(t)

	out := kubectl.Run(t, "apply", "--server-side", "--force-conflicts", "-f", testenv.Path("config", "crd", "bases"))
	for _, crd := range []string{"serviceaccounts", "roles", "tokenpolicies", "authservers"} {
		if !strings.Contains(out, crd+".auth.authframework.dev serverside-applied") {
			t.Errorf("server-side apply did not report %s:\n%s", crd, out)
		}
	}

	out = kubectl.Run(t, "apply", "-n", ns, "-f", testenv.Path("config", "samples"))
	if !strings.Contains(out, "tokenpolicy.auth.authframework.dev/orders-platform created") {
		t.Errorf("apply of samples:\n%s", out)
	}

	out = kubectl.Run(t, "get", "authframework", "-n", ns)
	for _, name := range []string{
		"tokenpolicy.auth.authframework.dev/orders-platform",
		"role.auth.authframework.dev/orders-reader",
		"role.auth.authframework.dev/inventory-admin",
		"serviceaccount.auth.authframework.dev/billing",
		"serviceaccount.auth.authframework.dev/stock-sync",
		"authserver.auth.authframework.dev/auth",
	} {
		if !strings.Contains(out, name) {
			t.Errorf("`kubectl get authframework` does not list %s:\n%s", name, out)
		}
	}

	// Short names reach our kinds, not the core ones.
	out = kubectl.Run(t, "get", "afsa", "-n", ns)
	if !strings.Contains(out, "CLIENT ID") || !strings.Contains(out, "billing") {
		t.Errorf("`kubectl get afsa` did not show our ServiceAccounts with their columns:\n%s", out)
	}
	out = kubectl.Run(t, "get", "tpol", "-n", ns)
	for _, col := range []string{"ALGORITHM", "ACTIVE KEY", "NEXT ROTATION", "READY", "ES256"} {
		if !strings.Contains(out, col) {
			t.Errorf("`kubectl get tpol` lacks %q:\n%s", col, out)
		}
	}

	// The controller gives the sample policy a key; the columns show it.
	testenv.Eventually(t, "kubectl shows the active key", func() error {
		var p authv1alpha1.TokenPolicy
		if err := k8sClient.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: "orders-platform"}, &p); err != nil {
			return err
		}
		if p.Status.ActiveKeyID == "" {
			return fmt.Errorf("no active key yet")
		}
		out := kubectl.Run(t, "get", "tpol", "orders-platform", "-n", ns)
		if !strings.Contains(out, p.Status.ActiveKeyID) || !strings.Contains(out, "True") {
			return fmt.Errorf("`kubectl get tpol` does not show active key %s and Ready:\n%s", p.Status.ActiveKeyID, out)
		}
		// A future time reads as a time, not "<invalid>".
		if p.Status.NextRotationTime == nil || !strings.Contains(out, p.Status.NextRotationTime.UTC().Format(time.RFC3339)) {
			return fmt.Errorf("`kubectl get tpol` does not show the next rotation %v:\n%s", p.Status.NextRotationTime, out)
		}
		return nil
	})
	// Every kind's columns, wide, read without "<invalid>" once reconciled.
	testenv.Eventually(t, "every column reads well", func() error {
		for _, kind := range []string{"tpol", "afsa", "afrole", "afserver"} {
			out := kubectl.Run(t, "get", kind, "-n", ns, "-o", "wide")
			if strings.Contains(out, "<invalid>") {
				return fmt.Errorf("`kubectl get %s -o wide` prints <invalid>:\n%s", kind, out)
			}
		}
		out := kubectl.Run(t, "get", "afsa", "billing", "-n", ns, "-o", "wide")
		if !strings.Contains(out, "NEXT SECRET ROTATION") || !strings.Contains(out, "T") {
			return fmt.Errorf("`kubectl get afsa -o wide`:\n%s", out)
		}
		return nil
	})

	out = kubectl.Run(t, "explain", "tokenpolicies.spec")
	for _, want := range []string{"issuer", "is the `iss` claim of every token", "audiences", "rotation", "accessTokenTTL", "How long an access token lives"} {
		if !strings.Contains(strings.ToLower(out), strings.ToLower(want)) {
			t.Errorf("`kubectl explain tokenpolicies.spec` lacks %q:\n%s", want, out)
		}
	}
	out = kubectl.Run(t, "explain", "tokenpolicies.spec.rotation.prePublish")
	if !strings.Contains(out, "10m") {
		t.Errorf("`kubectl explain` of prePublish does not explain the JWKS cache lead:\n%s", out)
	}
}

func readObjects(t *testing.T, path string) []*unstructured.Unstructured {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	dec := yaml.NewYAMLOrJSONDecoder(f, 4096)
	var objs []*unstructured.Unstructured
	for {
		u := &unstructured.Unstructured{}
		if err := dec.Decode(&u.Object); err != nil {
			break
		}
		if len(u.Object) > 0 {
			objs = append(objs, u)
		}
	}
	return objs
}

func sameSet(a, b []string) bool {
	a, b = append([]string(nil), a...), append([]string(nil), b...)
	sort.Strings(a)
	sort.Strings(b)
	return strings.Join(a, ",") == strings.Join(b, ",")
}
