// Package crd embeds the CustomResourceDefinitions of authframework
// (ServiceAccount, Role, TokenPolicy, AuthServer in auth.authframework.dev),
// the YAML `make manifests` generates into config/crd/bases, so tests of
// other modules can install them without copying files:
//
//	crds, err := crd.CustomResourceDefinitions()
//	env := &envtest.Environment{CRDs: crds}
//
// It imports the apiextensions v1 types only, not controller-runtime or
// client-go.
package crd

import (
	"embed"
	"fmt"
	"io/fs"
	"path"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"sigs.k8s.io/yaml"
)

// bases is the generated YAML, one CRD a file.
//
//go:embed bases/*.yaml
var bases embed.FS

// FS is the generated CRD YAML files, in the directory "bases".
func FS() fs.FS { return bases }

// files are the embedded file names in lexical order (fs.Glob sorts).
func files() []string {
	names, err := fs.Glob(bases, "bases/*.yaml")
	if err != nil {
		panic(err) // the pattern is a constant
	}
	return names
}

// YAML returns each CRD's YAML document, ordered by file name
// (auth.authframework.dev_<plural>.yaml).
func YAML() [][]byte {
	names := files()
	out := make([][]byte, 0, len(names))
	for _, n := range names {
		b, err := bases.ReadFile(n)
		if err != nil {
			panic(err) // embedded files are always readable
		}
		out = append(out, b)
	}
	return out
}

// CustomResourceDefinitions decodes every embedded CRD, for
// envtest.Environment.CRDs (controller-runtime) or a client's Create. Each
// call returns new objects the caller may modify. An error means the
// embedded YAML does not decode, which `go test ./config/crd` catches.
func CustomResourceDefinitions() ([]*apiextensionsv1.CustomResourceDefinition, error) {
	docs, names := YAML(), files()
	out := make([]*apiextensionsv1.CustomResourceDefinition, 0, len(docs))
	for i, b := range docs {
		var c apiextensionsv1.CustomResourceDefinition
		if err := yaml.UnmarshalStrict(b, &c); err != nil {
			return nil, fmt.Errorf("crd %s: %w", path.Base(names[i]), err)
		}
		out = append(out, &c)
	}
	return out, nil
}
