package auth

import (
	"net/http"
	"net/url"
	"strings"

	"github.com/authframework/authframework/internal/authz"

	"github.com/authframework/authframework/pkg/serverapi"
)

// Endpoints for external authorization, one per proxy shape. Each reads the
// original request from the one source its proxy controls, so a header any
// client could have sent is never preferred over the proxy's own word.
const (
	// PathValidate is for ingress-nginx `auth-url` and nginx `auth_request`:
	// the original request comes from X-Original-URL and X-Original-Method;
	// requirements from the query of the configured auth URL.
	PathValidate = serverapi.PathValidate
	// PathForwardAuth is for Traefik ForwardAuth: the original request comes
	// from X-Forwarded-Method, X-Forwarded-Host and X-Forwarded-Uri, which
	// Traefik overwrites (trustForwardHeader: false); requirements from the
	// query of the configured address.
	PathForwardAuth = serverapi.PathForwardAuth
	// PathExtAuthz is for Envoy ext_authz over HTTP (Envoy Gateway
	// SecurityPolicy extAuth, Istio's envoyExtAuthzHttp provider), which
	// appends the original path and query to a configured path prefix. The
	// original request is the method, Host and raw path after the prefix;
	// requirements are matrix parameters of the prefix itself
	// (`/ext-authz;aud=orders-api;permission=orders:read`), never the query,
	// which belongs to the upstream's request.
	PathExtAuthz = serverapi.PathExtAuthz
)

// shape is the proxy integration an external-auth call comes from.
type shape int

const (
	shapeNginx shape = iota
	shapeTraefik
	shapeEnvoy
)

// requirements are what the proxy's configuration asks of a token: audiences
// it must carry, permissions it must grant, and whether the account's Role
// route rules must allow the original request.
type requirements struct {
	audiences   []string
	permissions []string
	// namespaces the token's account may be in; empty: the namespace that
	// owns each required audience.
	namespaces []string
	routes     bool
}

// externalAuth is what an external-auth call asks about.
type externalAuth struct {
	required requirements
	// original is the request the proxy asks about; has is false when the
	// proxy sent none.
	original authz.Request
	has      bool
}

// Codes of refusals about the call itself rather than the token. They are
// 403s: nginx turns anything but 401 and 403 into a 500.
const (
	codeConflictingRequest = "conflicting_original_request"
	codeMissingRequest     = "missing_original_request"
	codeBadRequirements    = "invalid_requirements"
	codeUnsafePath         = "unsafe_path"
	codeMalformedRequest   = "malformed_original_request"
)

// readExternalAuth reads the original request and the requirements of an
// external-auth call of the given shape from r. It refuses a call whose
// other sources name a different request than its own (a client-sent
// X-Original-URL behind Traefik, say), unknown requirement parameters, and a
// malformed original request.
func readExternalAuth(sh shape, r *http.Request) (externalAuth, *refusal) {
	var (
		ea     externalAuth
		params url.Values
		err    error
	)
	switch sh {
	case shapeNginx:
		params = r.URL.Query()
		ea.original, ea.has, err = fromOriginalHeaders(r.Header)
	case shapeTraefik:
		params = r.URL.Query()
		ea.original, ea.has = fromForwardedHeaders(r.Header)
	case shapeEnvoy:
		params, ea.original, err = fromExtAuthzPath(r)
		ea.has = err == nil
	}
	if err != nil {
		return ea, newRefusal(codeMalformedRequest, malformedMessages[sh])
	}
	if ref := parseRequirements(params, &ea.required); ref != nil {
		return ea, ref
	}
	if ref := checkAgreement(sh, ea, r); ref != nil {
		return ea, ref
	}
	if ea.required.routes && (!ea.has || ea.original.Method == "") {
		return ea, newRefusal(codeMissingRequest, missingRequestMessages[sh])
	}
	return ea, nil
}

// missingRequestMessages say where each shape expects the original request.
var missingRequestMessages = map[shape]string{
	shapeNginx:   "routes=true needs X-Original-URL and X-Original-Method (ingress-nginx auth-url); Traefik calls " + PathForwardAuth + ", Envoy " + PathExtAuthz,
	shapeTraefik: "routes=true needs X-Forwarded-Method and X-Forwarded-Uri (Traefik ForwardAuth)",
	shapeEnvoy:   "routes=true needs the original path after " + PathExtAuthz,
}

// malformedMessages say what a shape's original request must look like.
var malformedMessages = map[shape]string{
	shapeNginx:   "X-Original-URL must be an absolute http(s) URL ($scheme://$http_host$request_uri)",
	shapeEnvoy:   "the original path must follow " + PathExtAuthz + " and its ;name=value requirements, starting with /",
	shapeTraefik: "the original request is malformed",
}

// parseRequirements reads `aud` (repeated), `permission` and `namespace`
// (repeated or comma-separated) and `routes=true`; any other name is refused, so a typo
// in a proxy's configuration fails closed instead of requiring nothing.
func parseRequirements(params url.Values, into *requirements) *refusal {
	for name, vs := range params {
		switch name {
		case "aud":
			into.audiences = append(into.audiences, vs...)
		case "permission":
			for _, v := range vs {
				for _, p := range strings.Split(v, ",") {
					if p = strings.TrimSpace(p); p != "" {
						into.permissions = append(into.permissions, p)
					}
				}
			}
		case "namespace":
			for _, v := range vs {
				for _, n := range strings.Split(v, ",") {
					if n = strings.TrimSpace(n); n != "" {
						into.namespaces = append(into.namespaces, n)
					}
				}
			}
		case "routes":
			for _, v := range vs {
				switch v {
				case "true":
					into.routes = true
				case "false", "":
				default:
					return newRefusal(codeBadRequirements, "routes must be true or false")
				}
			}
		default:
			return newRefusal(codeBadRequirements, "unknown requirement parameter "+strconvQuote(name)+"; use aud, permission, namespace or routes")
		}
	}
	return nil
}

// fromOriginalHeaders reads nginx's X-Original-URL ($scheme://$http_host
// $request_uri) and X-Original-Method, keeping the request URI exactly as
// the client sent it.
func fromOriginalHeaders(h http.Header) (authz.Request, bool, error) {
	raw := h.Get("X-Original-URL")
	if raw == "" {
		return authz.Request{}, false, nil
	}
	host, uri, err := splitAbsoluteURL(raw)
	if err != nil {
		return authz.Request{}, false, err
	}
	return authz.Request{Method: h.Get("X-Original-Method"), Host: host, Path: uri}, true, nil
}

// fromForwardedHeaders reads Traefik's X-Forwarded-Method, -Host and -Uri.
func fromForwardedHeaders(h http.Header) (authz.Request, bool) {
	uri := h.Get("X-Forwarded-Uri")
	if uri == "" {
		return authz.Request{}, false
	}
	return authz.Request{Method: h.Get("X-Forwarded-Method"), Host: h.Get("X-Forwarded-Host"), Path: uri}, true
}

// fromExtAuthzPath splits an Envoy ext_authz request target,
// `/ext-authz[;name=value...]<original path and query>`, into the
// requirements of the prefix and the original request. The target is read
// raw, as sent: nothing is decoded or cleaned before authorization.
func fromExtAuthzPath(r *http.Request) (url.Values, authz.Request, error) {
	target := r.RequestURI
	rest, ok := strings.CutPrefix(target, PathExtAuthz)
	if !ok {
		return nil, authz.Request{}, authz.ErrUnsafePath
	}
	params := url.Values{}
	if matrix, ok := strings.CutPrefix(rest, ";"); ok {
		end := strings.IndexAny(matrix, "/?")
		if end < 0 {
			end = len(matrix)
		}
		for _, kv := range strings.Split(matrix[:end], ";") {
			name, value, _ := strings.Cut(kv, "=")
			n, err1 := url.PathUnescape(name)
			v, err2 := url.PathUnescape(value)
			if err1 != nil || err2 != nil || n == "" {
				return nil, authz.Request{}, authz.ErrUnsafePath
			}
			params.Add(n, v)
		}
		rest = matrix[end:]
	}
	if !strings.HasPrefix(rest, "/") {
		return nil, authz.Request{}, authz.ErrUnsafePath
	}
	return params, authz.Request{Method: r.Method, Host: r.Host, Path: rest}, nil
}

// checkAgreement refuses a call whose other sources name another request
// than the shape's own. Each other source that is present must name the same
// method and the same request URI, byte for byte; with no request of its
// own, the shape has nothing to disagree with.
func checkAgreement(sh shape, ea externalAuth, r *http.Request) *refusal {
	conflict := newRefusal(codeConflictingRequest, "the call carries two different original requests; the proxy's own headers must be the only ones")
	if !ea.has {
		return nil
	}
	var others []authz.Request
	if sh != shapeNginx {
		o, has, err := fromOriginalHeaders(r.Header)
		if err != nil {
			return conflict
		}
		if !has {
			o = authz.Request{Method: r.Header.Get("X-Original-Method")}
		}
		others = append(others, o)
	}
	if sh != shapeTraefik {
		f, has := fromForwardedHeaders(r.Header)
		if !has {
			f = authz.Request{Method: r.Header.Get("X-Forwarded-Method")}
		}
		others = append(others, f)
	}
	for _, o := range others {
		if (o.Method != "" && o.Method != ea.original.Method) || (o.Path != "" && o.Path != ea.original.Path) {
			return conflict
		}
	}
	return nil
}

// splitAbsoluteURL returns the host and the raw request URI (path and query)
// of an absolute http(s) URL, keeping escapes exactly as written.
func splitAbsoluteURL(raw string) (host, requestURI string, err error) {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.Opaque != "" || u.User != nil {
		return "", "", authz.ErrUnsafePath
	}
	_, afterScheme, _ := strings.Cut(raw, "://")
	i := strings.IndexAny(afterScheme, "/?#")
	if i < 0 {
		return u.Host, "/", nil
	}
	requestURI = afterScheme[i:]
	if j := strings.IndexByte(requestURI, '#'); j >= 0 {
		requestURI = requestURI[:j]
	}
	if !strings.HasPrefix(requestURI, "/") {
		requestURI = "/" + requestURI
	}
	return u.Host, requestURI, nil
}

// strconvQuote quotes an attacker-supplied name, bounded in length.
func strconvQuote(s string) string {
	if len(s) > 64 {
		s = s[:64]
	}
	return `"` + strings.Map(func(r rune) rune {
		if r < 0x20 || r == '"' || r == 0x7f {
			return '?'
		}
		return r
	}, s) + `"`
}
