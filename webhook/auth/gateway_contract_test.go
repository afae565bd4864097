package auth

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/yaml"

	"github.com/authframework/authframework/internal/authz"
)

// The external-auth contracts of the Gateway API proxies, as their projects
// document and implement them (read from their sources):
//
//   - Envoy Gateway SecurityPolicy extAuth.http (Envoy's ext_authz HTTP
//     service): the check request keeps the client's method; its :path is
//     extAuth.http.path followed by the client's path and query; it carries
//     Host, Authorization and Content-Length: 0, plus the headersToExtAuth.
//     Only 200 allows. headersToBackend are copied to the upstream request.
//     On any other status the client gets that status, the body and every
//     header of the answer but Host (allowed_client_headers unset).
//   - Gateway API HTTPRoute ExternalAuth filter, protocol HTTP (GEP-1494,
//     v1.6 experimental channel): the same request shape (http.path as the
//     prefix, Host, Method, Path, Content-Length, Authorization always, plus
//     allowedHeaders); 200 allows, anything else refuses;
//     allowedResponseHeaders reach the upstream. The client's view of a
//     refusal is the implementation's; Envoy-based ones pass it through.
//   - Traefik ForwardAuth (trustForwardHeader: false): a GET to the
//     configured address; the client's X-Forwarded-* are removed and
//     Traefik's own set (X-Forwarded-Method, -Proto, -Host, -Uri, -Port,
//     -For); client headers are copied (only authRequestHeaders when set).
//     Any 2xx allows; authResponseHeaders reach the upstream; otherwise the
//     client gets the answer's status, headers and body.
//   - Istio CUSTOM authorization with an envoyExtAuthzHttp provider: Envoy's
//     ext_authz HTTP service again, pathPrefix as the prefix,
//     includeRequestHeadersInCheck sent besides Host, method, path and
//     Content-Length; headersToUpstreamOnAllow reach the upstream; with
//     headersToDownstreamOnDeny unset every header of a refusal reaches the
//     client, with the body.
//
// Each proxy's configuration is read from its sample in
// config/samples/gateway, so the samples and these contracts cannot drift.

// clientRequest is what a client sends to the gateway.
type clientRequest struct {
	method, host, uri string
	header            map[string]string
}

// proxyContract is one proxy's external-auth behaviour with one
// configuration.
type proxyContract struct {
	name string
	// wire is the auth request the proxy sends for a client request, as
	// raw HTTP/1.1.
	wire func(c clientRequest) string
	// allows reports whether the proxy lets the request through on status.
	allows func(status int) bool
	// toUpstream are the answer's headers the proxy sets on the upstream
	// request when it allows.
	toUpstream []string
	// toClient reports whether a header of a refusal reaches the client
	// (the body always does, for all four).
	toClient func(name string) bool
}

// rawAuthRequest writes the request line and headers of an auth request.
func rawAuthRequest(method, target string, hdr [][2]string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s HTTP/1.1\r\n", method, target)
	for _, h := range hdr {
		fmt.Fprintf(&b, "%s: %s\r\n", h[0], h[1])
	}
	b.WriteString("Connection: close\r\n\r\n")
	return b.String()
}

// envoyExtAuthzHTTP is Envoy's ext_authz HTTP client (Envoy Gateway, the
// Envoy-based ExternalAuth filters, Istio): the client's method, the prefix
// and the client's raw path and query, Host, Content-Length: 0, and the
// client headers it is allowed to send (Authorization always).
func envoyExtAuthzHTTP(name, prefix string, allowedHeaders, toUpstream []string) proxyContract {
	allowed := func(h string) bool {
		return strings.EqualFold(h, "Authorization") || slices.ContainsFunc(allowedHeaders, func(a string) bool {
			return a == "*" || strings.EqualFold(a, h) || strings.HasSuffix(a, "*") && strings.HasPrefix(strings.ToLower(h), strings.ToLower(strings.TrimSuffix(a, "*")))
		})
	}
	return proxyContract{
		name: name,
		wire: func(c clientRequest) string {
			hdr := [][2]string{{"Host", c.host}, {"Content-Length", "0"}}
			for _, k := range sortedHeaderNames(c.header) {
				if allowed(k) {
					hdr = append(hdr, [2]string{strings.ToLower(k), c.header[k]})
				}
			}
			return rawAuthRequest(c.method, prefix+c.uri, hdr)
		},
		allows:     func(status int) bool { return status == http.StatusOK },
		toUpstream: toUpstream,
		toClient:   func(h string) bool { return !strings.EqualFold(h, "Host") },
	}
}

// traefikForwardAuth is Traefik's ForwardAuth with trustForwardHeader:
// false, as pkg/middlewares/auth/forward.go builds it.
func traefikForwardAuth(name, address string, authRequestHeaders, toUpstream []string) proxyContract {
	u, err := url.Parse(address)
	if err != nil {
		panic(err)
	}
	return proxyContract{
		name: name,
		wire: func(c clientRequest) string {
			hdr := [][2]string{{"Host", u.Host}}
			for _, k := range sortedHeaderNames(c.header) {
				if strings.HasPrefix(strings.ToLower(k), "x-forwarded-") || strings.EqualFold(k, "X-Real-Ip") {
					continue // trustForwardHeader: false removes the client's
				}
				if len(authRequestHeaders) > 0 && !slices.ContainsFunc(authRequestHeaders, func(a string) bool { return strings.EqualFold(a, k) }) {
					continue
				}
				hdr = append(hdr, [2]string{k, c.header[k]})
			}
			hdr = append(hdr, [2]string{"X-Forwarded-For", "203.0.113.7"}, [2]string{"X-Forwarded-Method", c.method},
				[2]string{"X-Forwarded-Proto", "https"}, [2]string{"X-Forwarded-Port", "443"},
				[2]string{"X-Forwarded-Host", c.host}, [2]string{"X-Forwarded-Uri", c.uri})
			return rawAuthRequest(http.MethodGet, u.RequestURI(), hdr)
		},
		allows:     func(status int) bool { return status >= 200 && status < 300 },
		toUpstream: toUpstream,
		toClient:   func(string) bool { return true },
	}
}

func sortedHeaderNames(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// gatewaySample reads the YAML documents of a sample in
// config/samples/gateway.
func gatewaySample(t *testing.T, file string) []map[string]any {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "config", "samples", "gateway", file))
	if err != nil {
		t.Fatal(err)
	}
	var docs []map[string]any
	for _, doc := range strings.Split(string(b), "\n---\n") {
		var m map[string]any
		if err := yaml.UnmarshalStrict([]byte(doc), &m); err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		if m != nil {
			docs = append(docs, m)
		}
	}
	return docs
}

// sampleField walks maps and the first element of lists.
func sampleField(t *testing.T, v any, path ...string) any {
	t.Helper()
	for _, p := range path {
		if l, ok := v.([]any); ok && len(l) > 0 {
			v = l[0]
		}
		m, ok := v.(map[string]any)
		if !ok {
			t.Fatalf("no %q in %v", p, v)
		}
		v = m[p]
	}
	return v
}

func sampleString(t *testing.T, v any, path ...string) string {
	t.Helper()
	s, ok := sampleField(t, v, path...).(string)
	if !ok {
		t.Fatalf("%v is not a string", path)
	}
	return s
}

func sampleStrings(t *testing.T, v any, path ...string) []string {
	t.Helper()
	var out []string
	l, _ := sampleField(t, v, path...).([]any)
	for _, s := range l {
		out = append(out, s.(string))
	}
	return out
}

func sampleObject(t *testing.T, docs []map[string]any, kind string) map[string]any {
	t.Helper()
	for _, d := range docs {
		if d["kind"] == kind {
			return d
		}
	}
	t.Fatalf("no %s in the sample", kind)
	return nil
}

// sampleContracts are the four proxies configured as their samples say;
// withRequirement appends a requirement to each one's configured
// requirements; permissive lets every client header through to the auth
// server (a configuration the samples avoid, for the conflict cases).
func sampleContracts(t *testing.T, withRequirement string, permissive bool) []proxyContract {
	eg := sampleObject(t, gatewaySample(t, "envoy-gateway.yaml"), "SecurityPolicy")
	egPath := sampleString(t, eg, "spec", "extAuth", "http", "path")
	egHeaders := sampleStrings(t, eg, "spec", "extAuth", "headersToExtAuth")

	route := sampleObject(t, gatewaySample(t, "gateway-api-externalauth.yaml"), "HTTPRoute")
	filter := sampleField(t, route, "spec", "rules", "filters", "externalAuth")
	if p := sampleString(t, filter, "protocol"); p != "HTTP" {
		t.Fatalf("ExternalAuth sample uses %s", p)
	}
	gwPath := sampleString(t, filter, "http", "path")
	gwHeaders := sampleStrings(t, filter, "http", "allowedHeaders")

	mw := sampleObject(t, gatewaySample(t, "traefik.yaml"), "Middleware")
	if trust, _ := sampleField(t, mw, "spec", "forwardAuth", "trustForwardHeader").(bool); trust {
		t.Fatal("the Traefik sample trusts the client's X-Forwarded-* headers")
	}
	address := sampleString(t, mw, "spec", "forwardAuth", "address")
	trHeaders := sampleStrings(t, mw, "spec", "forwardAuth", "authRequestHeaders")

	mesh := gatewaySample(t, "istio-meshconfig.yaml")[0]
	provider := sampleField(t, mesh, "meshConfig", "extensionProviders", "envoyExtAuthzHttp")
	isPrefix := sampleString(t, provider, "pathPrefix")
	isHeaders := sampleStrings(t, provider, "includeRequestHeadersInCheck")

	if withRequirement != "" {
		egPath += ";" + withRequirement
		gwPath += ";" + withRequirement
		isPrefix += ";" + withRequirement
		address += "&" + withRequirement
	}
	if permissive {
		egHeaders, gwHeaders, isHeaders, trHeaders = []string{"x-*"}, []string{"*"}, []string{"x-*"}, nil
	}
	return []proxyContract{
		envoyExtAuthzHTTP("Envoy Gateway SecurityPolicy", egPath, egHeaders, sampleStrings(t, eg, "spec", "extAuth", "http", "headersToBackend")),
		envoyExtAuthzHTTP("Gateway API ExternalAuth", gwPath, gwHeaders, sampleStrings(t, filter, "http", "allowedResponseHeaders")),
		traefikForwardAuth("Traefik ForwardAuth", address, trHeaders, sampleStrings(t, mw, "spec", "forwardAuth", "authResponseHeaders")),
		envoyExtAuthzHTTP("Istio envoyExtAuthzHttp", isPrefix, isHeaders, sampleStrings(t, provider, "headersToUpstreamOnAllow")),
	}
}

// sendRawRequest writes a raw request to the server and reads its answer.
func sendRawRequest(t *testing.T, addr, raw string) (*http.Response, []byte) {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := io.WriteString(conn, raw); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("%v\nrequest:\n%s", err, raw)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, body
}

// TestGatewayExternalAuthContracts sends, per proxy, exactly the auth
// request that proxy sends for a client's request, and checks the answer
// against what the proxy then does: whether it lets the request through,
// which identity headers reach the upstream, and what the client sees on a
// refusal.
func TestGatewayExternalAuthContracts(t *testing.T) {
	f := newFixture(t)
	f.store.SetRole(types.NamespacedName{Namespace: ns, Name: "orders-reader"}, []authz.Route{
		{Hosts: []string{"orders.example.com"}, Paths: []string{"/api/orders/**"}, Methods: []string{"GET", "HEAD"}},
	})
	srv := httptest.NewServer(f.server)
	defer srv.Close()
	addr := strings.TrimPrefix(srv.URL, "http://")

	full := f.token(nil)
	otherAudience := f.token(url.Values{"audience": {"inventory-api"}})
	inventoryOnly := f.token(url.Values{"scope": {"inventory:read"}})
	bearer := func(tok string, more ...string) map[string]string {
		h := map[string]string{"Authorization": "Bearer " + tok, "X-Request-ID": "req-1", "User-Agent": "curl/8.5.0", "Accept": "*/*"}
		for i := 0; i+1 < len(more); i += 2 {
			h[more[i]] = more[i+1]
		}
		return h
	}
	identity := map[string]string{"X-User-ID": clientID, "X-User-Namespace": ns, "X-Client-ID": clientID}

	cases := []struct {
		name string
		// requirement is added to each sample's own (aud=orders-api,
		// permission=orders:read); permissive passes every client header.
		requirement string
		permissive  bool
		client      clientRequest
		status      int
		code        string
		// traefikCode, when set, is Traefik's code: it removes the
		// client's X-Forwarded-* whatever it passes.
		traefikCode string
	}{
		{name: "allowed, with the upstream's query", client: clientRequest{"GET", "orders.example.com", "/api/orders/42?page=2", bearer(full)}, status: 200},
		{name: "allowed POST (the body is not forwarded)", client: clientRequest{"POST", "orders.example.com", "/api/orders", bearer(full, "Content-Type", "application/json")}, status: 200},
		{name: "the upstream's query is not a requirement", client: clientRequest{"GET", "orders.example.com", "/api/orders/42?aud=payments-api&permission=admin:all&routes=true", bearer(full)}, status: 200},
		{name: "no token", client: clientRequest{"GET", "orders.example.com", "/api/orders/42", map[string]string{"X-Request-ID": "req-1"}}, status: 401, code: "missing_token"},
		{name: "not a JWT", client: clientRequest{"GET", "orders.example.com", "/api/orders/42", bearer("not-a-jwt")}, status: 401, code: "invalid_token"},
		{name: "token of another audience", client: clientRequest{"GET", "orders.example.com", "/api/orders/42", bearer(otherAudience)}, status: 401, code: "wrong_audience"},
		{name: "insufficient permission", client: clientRequest{"GET", "orders.example.com", "/api/orders/42", bearer(inventoryOnly)}, status: 403, code: "insufficient_scope"},
		// With the Role's route rules required, the verdict shows which
		// headers carried the original method, host, path and query.
		{name: "routes: GET allowed", requirement: "routes=true", client: clientRequest{"GET", "orders.example.com", "/api/orders/42?page=2", bearer(full)}, status: 200},
		{name: "routes: the original method", requirement: "routes=true", client: clientRequest{"DELETE", "orders.example.com", "/api/orders/42", bearer(full)}, status: 403, code: "route_not_allowed"},
		{name: "routes: the original host", requirement: "routes=true", client: clientRequest{"GET", "admin.example.com", "/api/orders/42", bearer(full)}, status: 403, code: "route_not_allowed"},
		{name: "routes: the original path", requirement: "routes=true", client: clientRequest{"GET", "orders.example.com", "/api/admin/users", bearer(full)}, status: 403, code: "route_not_allowed"},
		{name: "routes: the raw path, dot segments resolved", requirement: "routes=true", client: clientRequest{"GET", "orders.example.com", "/api/orders/%2e%2e/admin", bearer(full)}, status: 403, code: "route_not_allowed"},
		{name: "routes: an encoded slash", requirement: "routes=true", client: clientRequest{"GET", "orders.example.com", "/api/orders/a%2Fb", bearer(full)}, status: 403, code: "unsafe_path"},
		// A client naming an allowed request in another proxy's headers:
		// the samples' proxies do not pass them; a proxy that does gets a
		// refusal, never the client's word.
		{name: "client-sent X-Original-URL, sample configuration", requirement: "routes=true",
			client: clientRequest{"DELETE", "orders.example.com", "/api/orders/42", bearer(full, "X-Original-URL", "https://orders.example.com/api/orders/42", "X-Original-Method", "GET")}, status: 403, code: "route_not_allowed"},
		{name: "client-sent X-Original-URL, passed through", requirement: "routes=true", permissive: true,
			client: clientRequest{"DELETE", "orders.example.com", "/api/orders/42", bearer(full, "X-Original-URL", "https://orders.example.com/api/orders/42", "X-Original-Method", "GET")}, status: 403, code: codeConflictingRequest},
		{name: "client-sent X-Forwarded-Uri, passed through where the proxy keeps it", requirement: "routes=true", permissive: true,
			client: clientRequest{"GET", "orders.example.com", "/api/admin/users", bearer(full, "X-Forwarded-Uri", "/api/orders/42", "X-Forwarded-Method", "GET")}, status: 403, code: codeConflictingRequest, traefikCode: "route_not_allowed"},
	}
	for _, c := range cases {
		for _, p := range sampleContracts(t, c.requirement, c.permissive) {
			t.Run(p.name+"/"+c.name, func(t *testing.T) {
				want := c.code
				if c.traefikCode != "" && strings.HasPrefix(p.name, "Traefik") {
					want = c.traefikCode
				}
				raw := p.wire(c.client)
				resp, body := sendRawRequest(t, addr, raw)
				code := resp.Header.Get(HeaderAuthError)
				if resp.StatusCode != c.status || code != want {
					t.Fatalf("%d %q (%s), want %d %q\nrequest:\n%s", resp.StatusCode, code, body, c.status, want, raw)
				}
				if loc := resp.Header.Get("Location"); loc != "" {
					t.Errorf("redirected to %q", loc)
				}
				if allowed := p.allows(resp.StatusCode); allowed != (c.status == 200) {
					t.Fatalf("the proxy would allow=%v on %d", allowed, resp.StatusCode)
				}
				if c.status == 200 {
					// What the upstream receives: the configured identity
					// headers, each set by the auth server.
					upstream := http.Header{}
					for _, h := range p.toUpstream {
						if v := resp.Header.Values(h); len(v) > 0 {
							upstream[http.CanonicalHeaderKey(h)] = v
						}
					}
					for h, want := range identity {
						if got := upstream.Get(h); got != want {
							t.Errorf("upstream %s = %q, want %q (forwarded: %v)", h, got, want, p.toUpstream)
						}
					}
					if perms := upstream.Get("X-User-Permissions"); !strings.Contains(perms, "orders:read") && !strings.Contains(perms, "orders:*") {
						t.Errorf("upstream X-User-Permissions = %q", perms)
					}
					return
				}
				// What the client sees: the status, the RFC 6750 challenge
				// for a token it must replace, the refusal code and the
				// JSON body.
				client := http.Header{}
				for h, v := range resp.Header {
					if p.toClient(h) {
						client[h] = v
					}
				}
				challenge := client.Get("WWW-Authenticate")
				switch {
				case want == "missing_token" && challenge != `Bearer realm="authframework"`,
					c.status == 401 && want != "missing_token" && !strings.Contains(challenge, `error="invalid_token"`),
					want == "insufficient_scope" && !strings.Contains(challenge, `error="insufficient_scope"`):
					t.Errorf("client sees WWW-Authenticate %q", challenge)
				}
				var e apiError
				if err := json.Unmarshal(body, &e); err != nil || e.Error.Code != code || e.RequestID != "req-1" || client.Get(HeaderAuthError) != code {
					t.Errorf("client sees body %s (%v), X-Auth-Error %q", body, err, client.Get(HeaderAuthError))
				}
			})
		}
	}
}
