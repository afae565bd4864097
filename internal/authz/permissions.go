// Package authz decides what a caller may do: permission matching with
// wildcards and route rules matched against the original request. It is pure:
// no Kubernetes client, no I/O.
package authz

import (
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

// Narrow returns the requested permissions that the granted ones cover and
// those they do not, for an OAuth2 `scope` request. An empty request narrows
// to nothing: the caller decides whether that means "all granted".
func Narrow(granted, requested []string) (allowed, denied []string) {
	for _, r := range requested {
		if slices.ContainsFunc(granted, func(g string) bool { return Covers(g, r) }) {
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
