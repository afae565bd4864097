package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// RoleSpec is a set of permissions and, optionally, the routes their holders
// may reach through an ingress that delegates to the auth server.
//
// +kubebuilder:validation:XValidation:rule="has(self.permissions) || has(self.routes)",message="a Role needs at least one permission or one route"
type RoleSpec struct {
	// Description says what the role is for, for people reading it.
	// +kubebuilder:validation:MaxLength=1024
	// +optional
	Description string `json:"description,omitempty"`

	// Permissions are colon-separated names such as `orders:read`. A final `*`
	// segment matches anything below it (`orders:*`); `*` alone matches every
	// permission. Tokens carry them in the `scope` claim (RFC 9068 §2.2.3).
	// +kubebuilder:validation:MaxItems=256
	// +listType=set
	// +kubebuilder:validation:items:MaxLength=253
	// +kubebuilder:validation:items:Pattern=`^(\*|[A-Za-z0-9][A-Za-z0-9._-]*(:[A-Za-z0-9][A-Za-z0-9._-]*)*(:\*)?)$`
	// +optional
	Permissions []string `json:"permissions,omitempty"`

	// Routes are the requests the holders may make through an ingress that
	// asks the auth server to enforce routes. A request is allowed when any
	// rule matches it.
	// +kubebuilder:validation:MaxItems=64
	// +listType=atomic
	// +optional
	Routes []RouteRule `json:"routes,omitempty"`
}

// RouteRule matches original requests by host, path and method. Paths are
// compared after normalisation (percent-decoding of unreserved characters,
// removal of dot segments and duplicate slashes), so `/api/../admin` is
// `/admin`.
type RouteRule struct {
	// Hosts the rule applies to, such as `api.example.com` or `*.example.com`
	// (one leading wildcard label). Empty means any host. Compared case-
	// insensitively, without port.
	// +kubebuilder:validation:MaxItems=32
	// +listType=set
	// +kubebuilder:validation:items:MaxLength=253
	// +kubebuilder:validation:items:Pattern=`^(\*\.)?([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)*[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`
	// +optional
	Hosts []string `json:"hosts,omitempty"`

	// Paths are path patterns: `/api/orders` matches exactly; `/api/orders/*`
	// matches one more segment; `/api/orders/**` matches the path and anything
	// below it. A `*` segment may appear anywhere, `**` only at the end.
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=32
	// +listType=set
	// +kubebuilder:validation:items:MaxLength=1024
	// +kubebuilder:validation:items:Pattern=`^/([A-Za-z0-9._~!$&'()+,;=:@%*-]+(/[A-Za-z0-9._~!$&'()+,;=:@%*-]+)*/?)?$`
	// +kubebuilder:validation:items:XValidation:rule="!self.matches('(^|/)\\\\.\\\\.?(/|$)')",message="must not contain . or .. segments"
	// +kubebuilder:validation:items:XValidation:rule="!self.matches('\\\\*\\\\*.')",message="** may only be the last segment"
	// +kubebuilder:validation:items:XValidation:rule="!self.matches('[^/*]\\\\*|\\\\*[^/*]|\\\\*\\\\*\\\\*')",message="* and ** must be whole path segments"
	Paths []string `json:"paths"`

	// Methods the rule allows, upper case. Empty means any method.
	// +kubebuilder:validation:MaxItems=9
	// +listType=set
	// +kubebuilder:validation:items:Enum=GET;HEAD;POST;PUT;PATCH;DELETE;OPTIONS;CONNECT;TRACE
	// +optional
	Methods []string `json:"methods,omitempty"`
}

// RoleStatus is the observed state of a Role.
type RoleStatus struct {
	// ObservedGeneration is the generation of the spec last reconciled.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// Conditions: Ready.
	// +listType=map
	// +listMapKey=type
	// +optional
	Conditions []metav1.Condition `json:"conditions,omitempty"`

	// ServiceAccountCount is how many ServiceAccounts in the namespace use this
	// role.
	// +optional
	ServiceAccountCount int32 `json:"serviceAccountCount,omitempty"`

	// ServiceAccounts names up to 100 of the ServiceAccounts that use this role,
	// sorted.
	// +kubebuilder:validation:MaxItems=100
	// +listType=set
	// +optional
	ServiceAccounts []string `json:"serviceAccounts,omitempty"`
}

// Role is a set of permissions (`orders:read`, `orders:*`) and optional route
// rules that ServiceAccounts reference. Changing a role updates the permissions
// of every account that uses it.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=afrole,categories=authframework
// +kubebuilder:printcolumn:name="Permissions",type=string,JSONPath=`.spec.permissions`,priority=1
// +kubebuilder:printcolumn:name="Accounts",type=integer,JSONPath=`.status.serviceAccountCount`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type Role struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// Spec is the set of permissions and routes.
	Spec RoleSpec `json:"spec"`
	// Status says whether the role is valid and who uses it.
	// +optional
	Status RoleStatus `json:"status,omitempty"`
}

// +kubebuilder:object:root=true

// RoleList is a list of Role.
type RoleList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []Role `json:"items"`
}

func init() {
	SchemeBuilder.Register(&Role{}, &RoleList{})
}
