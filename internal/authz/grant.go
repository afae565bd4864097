package authz

import (
	"fmt"
	"slices"
	"strings"
)

// GrantRequest is what a client asks a token for: RFC 6749 §3.3 `scope`
// (permissions; none means every permission held), and the audience by
// `audience` (RFC 8693 §2.1) or `resource` (RFC 8707 §2), at most one
// target.
type GrantRequest struct {
	Scope     []string
	Audience  string
	Resources []string
}

// ScopeError is a GrantRequest asking for permissions the account does not
// hold (or that are not permissions): RFC 6749 §5.2 `invalid_scope`.
type ScopeError struct{ Denied []string }

func (e *ScopeError) Error() string {
	return "the client may not request: " + strings.Join(e.Denied, " ")
}

// TargetError is a GrantRequest naming no audience of the policy, or two
// targets: RFC 8707 §2 `invalid_target`.
type TargetError struct{ Reason string }

func (e *TargetError) Error() string { return e.Reason }

// Grant is the one decision of what a token is issued for, used by the
// token endpoint and the token Secret alike: the audience (the request's,
// else the policy's first) must be one of audiences, and the permissions
// are the requested scope narrowed to what held covers (all of held when no
// scope is asked). Errors are *ScopeError or *TargetError.
func Grant(held, audiences []string, req GrantRequest) (audience string, permissions []string, err error) {
	audience = req.Audience
	switch {
	case len(req.Resources) > 1:
		return "", nil, &TargetError{"one resource per token"}
	case len(req.Resources) == 1 && audience != "" && audience != req.Resources[0]:
		return "", nil, &TargetError{"audience and resource name different targets; send one"}
	case len(req.Resources) == 1:
		audience = req.Resources[0]
	}
	if audience == "" && len(audiences) > 0 {
		audience = audiences[0]
	}
	if !slices.Contains(audiences, audience) {
		return "", nil, &TargetError{fmt.Sprintf("the audience is not one of the client's policy: %s", strings.Join(audiences, ", "))}
	}
	if len(req.Scope) == 0 {
		return audience, held, nil
	}
	allowed, denied := Narrow(held, req.Scope)
	if len(denied) > 0 {
		return "", nil, &ScopeError{Denied: denied}
	}
	return audience, allowed, nil
}
