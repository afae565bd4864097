// Package authz decides what a caller may do: permission matching with
// wildcards and route rules matched against the original request. It is pure:
// no Kubernetes client, no I/O.
package authz

import (
	"regexp"
	"slices"
	"strings"
)

// Covers reports whether the granted permission covers the required one.
// `*` covers everything; `orders:*` covers every permission below `orders:`
// (`orders:read`, `orders:items:read`, and `orders:*` itself) but not
// `orders`; anything else covers only itself.
func Covers(granted, required string) bool {
	switch {
	case granted == "*" || granted == required:
		return true
	case strings.HasSuffix(granted, ":*"):
		return strings.HasPrefix(required, granted[:len(granted)-1]) && len(required) > len(granted)-1
	}
	return false
}

// Allowed reports whether the granted permissions cover every required one.
// No requirement is always allowed.
func Allowed(granted, required []string) bool {
	for _, r := range required {
		if !slices.ContainsFunc(granted, func(g string) bool { return Covers(g, r) }) {
			return false
		}
	}
	return true
}

// Missing returns the required permissions the granted ones do not cover, for
// a 403 that says what was lacking.
func Missing(granted, required []string) []string {
	var out []string
	for _, r := range required {
		if !slices.ContainsFunc(granted, func(g string) bool { return Covers(g, r) }) {
			out = append(out, r)
		}
	}
	return out
}

// permissionPattern is the Role API's syntax for a permission.
var permissionPattern = regexp.MustCompile(`^(\*|[A-Za-z0-9][A-Za-z0-9._-]*(:[A-Za-z0-9][A-Za-z0-9._-]*)*(:\*)?)$`)

// ValidPermission reports whether p is a permission as the Role API defines
// it (`orders:read`, `orders:*`, `*`; at most 253 characters). Nothing else
// may be granted: a requested "permission" such as `a:read,b:write` would be
// covered by `a:*` and then read as two by an upstream splitting
// X-User-Permissions on commas.
func ValidPermission(p string) bool {
	return len(p) <= 253 && permissionPattern.MatchString(p)
}

// Narrow returns the requested permissions that the granted ones cover and
// those they do not (including any that is not a valid permission), for an
// OAuth2 `scope` request. An empty request narrows to nothing: the caller
// decides whether that means "all granted".
func Narrow(granted, requested []string) (allowed, denied []string) {
	for _, r := range requested {
		if ValidPermission(r) && slices.ContainsFunc(granted, func(g string) bool { return Covers(g, r) }) {
			allowed = append(allowed, r)
		} else {
			denied = append(denied, r)
		}
	}
	return allowed, denied
}

// Union merges permission sets, sorted and without duplicates.
func Union(sets ...[]string) []string {
	var out []string
	for _, s := range sets {
		out = append(out, s...)
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// Redundant lists the permissions of a set that another member already
// covers, such as `orders:read` beside `orders:*`.
func Redundant(perms []string) []string {
	var out []string
	for i, p := range perms {
		for j, q := range perms {
			if i != j && p != q && Covers(q, p) {
				out = append(out, p)
				break
			}
		}
	}
	return out
}
