package authz

import (
	"fmt"
	"slices"
	"strings"
)

// Lint checks a role for what its schema cannot: route rules that are exact
// duplicates, path patterns that no normalised path can match (they contain
// escapes or segments normalisation removes), and, as warnings, permissions
// another permission of the role already covers.
func Lint(perms []string, routes []Route) (problems, warnings []string) {
	seen := map[string]int{}
	for i, r := range routes {
		key := routeKey(r)
		if j, dup := seen[key]; dup {
			problems = append(problems, fmt.Sprintf("routes[%d] duplicates routes[%d]", i, j))
		} else {
			seen[key] = i
		}
		for k, p := range r.Paths {
			if norm, err := NormalizePath(p); err != nil || strings.TrimSuffix(norm, "/") != strings.TrimSuffix(p, "/") {
				problems = append(problems, fmt.Sprintf("routes[%d].paths[%d] %q can never match: requests are compared after normalisation; write it in normal form", i, k, p))
			}
		}
	}
	for _, p := range Redundant(perms) {
		warnings = append(warnings, fmt.Sprintf("permission %q is already covered by a wildcard of this role", p))
	}
	return problems, warnings
}

func routeKey(r Route) string {
	norm := func(xs []string, lower bool) string {
		c := slices.Clone(xs)
		if lower {
			for i := range c {
				c[i] = strings.ToLower(c[i])
			}
		}
		slices.Sort(c)
		return strings.Join(c, ",")
	}
	return norm(r.Hosts, true) + "|" + norm(r.Paths, false) + "|" + norm(r.Methods, false)
}
