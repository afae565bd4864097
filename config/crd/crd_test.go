package crd_test

import (
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/authframework/authframework/config/crd"
)

// TestEmbeddedCRDs: every generated CRD is embedded, decodes strictly, and
// is the file on disk byte for byte (go:embed cannot go stale, but a file
// added to bases/ under another pattern could be missed).
func TestEmbeddedCRDs(t *testing.T) {
	crds, err := crd.CustomResourceDefinitions()
	if err != nil {
		t.Fatal(err)
	}
	onDisk, err := filepath.Glob(filepath.Join("bases", "*"))
	if err != nil {
		t.Fatal(err)
	}
	if len(crds) != len(onDisk) || len(crd.YAML()) != len(onDisk) {
		t.Fatalf("%d CRDs embedded, %d files in bases/", len(crds), len(onDisk))
	}
	var kinds []string
	for i, c := range crds {
		if c.Spec.Group != "auth.authframework.dev" || len(c.Spec.Versions) == 0 {
			t.Errorf("%s: group %q, %d versions", c.Name, c.Spec.Group, len(c.Spec.Versions))
		}
		kinds = append(kinds, c.Spec.Names.Kind)
		b, err := os.ReadFile(onDisk[i])
		if err != nil {
			t.Fatal(err)
		}
		if string(b) != string(crd.YAML()[i]) {
			t.Errorf("%s differs from the embedded copy", onDisk[i])
		}
	}
	slices.Sort(kinds)
	if want := []string{"AuthServer", "Role", "ServiceAccount", "TokenPolicy"}; !slices.Equal(kinds, want) {
		t.Errorf("kinds %v, want %v", kinds, want)
	}
	// Each call returns new objects.
	again, _ := crd.CustomResourceDefinitions()
	again[0].Name = "changed"
	if crds[0].Name == "changed" {
		t.Error("CustomResourceDefinitions returned shared objects")
	}
}
