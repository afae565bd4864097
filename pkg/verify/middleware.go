package verify

import (
	"net/http"
	"slices"
	"strings"
)

// Requirement is a per-route condition on a verified Identity: nil when it
// holds, else the refusal (403 insufficient_scope for permissions).
type Requirement func(*Identity) *Error

// RequirePermission requires every one of perms (Role API wildcards in the
// token count: `orders:*` covers `orders:read`). A refusal is 403 with
// WWW-Authenticate `error="insufficient_scope", scope="<missing>"`
// (RFC 6750 §3.1).
func RequirePermission(perms ...string) Requirement {
	return func(id *Identity) *Error {
		var missing []string
		for _, p := range perms {
			if !id.HasPermission(p) {
				missing = append(missing, p)
			}
		}
		if len(missing) == 0 {
			return nil
		}
		return &Error{Status: http.StatusForbidden, Code: CodeInsufficientScope,
			Message: "the token lacks a required permission: " + strings.Join(missing, " "), Scope: missing}
	}
}

// RequireScope is RequirePermission under RFC 6750's word: a token's
// permissions are its `scope`.
func RequireScope(scopes ...string) Requirement { return RequirePermission(scopes...) }

// RequireAudience requires the token to carry one of auds, for a route
// that serves fewer audiences than the Verifier accepts. A refusal is 401
// invalid_token, as the auth server answers a wrong audience.
func RequireAudience(auds ...string) Requirement {
	return func(id *Identity) *Error {
		if slices.ContainsFunc(auds, id.HasAudience) {
			return nil
		}
		return refusal(CodeWrongAudience, "the token is not meant for this service")
	}
}

// Middleware returns net/http middleware that lets a request through only
// with a valid `Authorization: Bearer` access token (RFC 6750 §2.1) that
// meets every requirement, and puts its Identity in the request's context
// (FromContext). Refusals are RFC 6750 §3 answers with the auth server's
// JSON error body. Behind an outer Middleware of the same Verifier, the
// identity already verified is reused, so routes can add requirements:
//
//	mux.Handle("GET /orders", v.Middleware(verify.RequirePermission("orders:read"))(list))
func (v *Verifier) Middleware(reqs ...Requirement) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler { return v.Handler(next, reqs...) }
}

// Handler is Middleware(reqs...)(next).
func (v *Verifier) Handler(next http.Handler, reqs ...Requirement) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx := r.Context()
		id, ok := FromContext(ctx)
		if !ok || id.Issuer != v.issuer {
			raw, found := bearer(r.Header)
			if !found {
				v.metrics.result(errMissingToken)
				v.refuse(w, r, errMissingToken)
				return
			}
			var e *Error
			if id, e = v.verify(ctx, raw); e != nil {
				v.metrics.result(e)
				v.refuse(w, r, e)
				return
			}
			ctx = NewContext(ctx, id)
			r = r.WithContext(ctx)
		}
		for _, req := range reqs {
			if e := req(id); e != nil {
				v.metrics.result(e)
				v.refuse(w, r, e)
				return
			}
		}
		if !ok {
			v.metrics.ok.Inc()
		}
		next.ServeHTTP(w, r)
	})
}

func (v *Verifier) refuse(w http.ResponseWriter, r *http.Request, e *Error) {
	v.log.V(1).Info("refused a request", "code", e.Code, "method", r.Method, "path", r.URL.Path)
	WriteError(w, r, v.realm, e, v.clock.Now())
}
