// Package v1alpha1 contains the authframework API: ServiceAccount, Role,
// TokenPolicy and AuthServer in the group auth.authframework.dev, and the
// well-known names (labels, annotations, Secret keys, condition reasons)
// both the controllers and the auth server use. It depends on apimachinery
// only, so pure packages and other programs can import it without a client.
//
// +kubebuilder:object:generate=true
// +groupName=auth.authframework.dev
package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

var (
	// GroupVersion is the group and version of every kind in this package.
	GroupVersion = schema.GroupVersion{Group: "auth.authframework.dev", Version: "v1alpha1"}

	// SchemeBuilder registers the kinds of this package with a runtime.Scheme.
	SchemeBuilder = &schemeBuilder{}

	// AddToScheme adds the kinds of this package to a runtime.Scheme.
	AddToScheme = SchemeBuilder.AddToScheme
)

// schemeBuilder is apimachinery's runtime.SchemeBuilder with kubebuilder's
// Register(objects...) shape.
type schemeBuilder struct{ runtime.SchemeBuilder }

// Register adds objects of GroupVersion to the schemes this builder builds.
func (b *schemeBuilder) Register(objs ...runtime.Object) {
	b.SchemeBuilder.Register(func(s *runtime.Scheme) error {
		s.AddKnownTypes(GroupVersion, objs...)
		metav1.AddToGroupVersion(s, GroupVersion)
		return nil
	})
}
