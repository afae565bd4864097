package authz

import authv1alpha1 "github.com/authframework/authframework/api/v1alpha1"

// RoutesOf converts a Role's route rules to the matcher's: the one
// conversion the Role controller, the admission webhook and the auth server
// all use.
func RoutesOf(role *authv1alpha1.Role) []Route {
	out := make([]Route, 0, len(role.Spec.Routes))
	for _, rr := range role.Spec.Routes {
		out = append(out, Route{Hosts: rr.Hosts, Paths: rr.Paths, Methods: rr.Methods})
	}
	return out
}
