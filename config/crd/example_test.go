package crd_test

import (
	"fmt"

	"github.com/authframework/authframework/config/crd"
)

// A test of another module installs the CRDs into its envtest API server:
//
//	crds, err := crd.CustomResourceDefinitions()
//	env := &envtest.Environment{CRDs: crds}
func ExampleCustomResourceDefinitions() {
	crds, err := crd.CustomResourceDefinitions()
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, c := range crds {
		fmt.Println(c.Name)
	}
	// Output:
	// authservers.auth.authframework.dev
	// roles.auth.authframework.dev
	// serviceaccounts.auth.authframework.dev
	// tokenpolicies.auth.authframework.dev
}
