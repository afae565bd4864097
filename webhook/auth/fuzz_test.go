package auth

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"unicode/utf8"

	"k8s.io/apimachinery/pkg/types"

	"github.com/authframework/authframework/internal/authz"
)

// checkErrorShape fails unless w is a refusal in the documented shape:
// never a 5xx or a redirect for the caller's input.
func checkErrorShape(t *testing.T, w *httptest.ResponseRecorder, oauth bool) {
	t.Helper()
	if w.Code >= 500 || (w.Code >= 300 && w.Code < 400) {
		t.Fatalf("status %d for a caller's input: %s", w.Code, w.Body)
	}
	if w.Code == http.StatusOK {
		return
	}
	var body map[string]any
	if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil {
		t.Fatalf("%d with a body that is not JSON: %q", w.Code, w.Body)
	}
	if oauth {
		if _, ok := body["error"].(string); !ok {
			t.Fatalf("OAuth error without an error code: %s", w.Body)
		}
	} else if e, ok := body["error"].(map[string]any); !ok || e["code"] == "" {
		t.Fatalf("error without the documented shape: %s", w.Body)
	}
	if body["request_id"] == "" || body["timestamp"] == "" {
		t.Fatalf("error without request_id and timestamp: %s", w.Body)
	}
}

// FuzzExternalAuthShapes: whatever original request a proxy carries, the
// three shapes give the same verdict for it, and none answers a 5xx or a
// redirect.
func FuzzExternalAuthShapes(f *testing.F) {
	fx := newFixture(f)
	fx.store.SetRole(types.NamespacedName{Namespace: ns, Name: "orders-reader"}, []authz.Route{
		{Hosts: []string{"api.example.com"}, Paths: []string{"/api/orders/**"}, Methods: []string{"GET", "HEAD"}},
	})
	tok := fx.token(nil)
	for _, seed := range []struct{ method, host, uri string }{
		{"GET", "api.example.com", "/api/orders/42"}, {"GET", "api.example.com", "/api/orders//42"},
		{"GET", "api.example.com", "/api/orders/a%2Fb"}, {"DELETE", "api.example.com", "/api/admin/users/1"},
		{"GET", "api.example.com", "/api/orders/../admin"}, {"GET", "api.example.com", "/api/orders/42?aud=x&permission=y"},
		{"GET", "API.EXAMPLE.COM:443", "/api/orders/%2e%2e/admin"}, {"HEAD", "api.example.com", "/api/orders/;x=y"},
	} {
		f.Add(seed.method, seed.host, seed.uri)
	}
	f.Fuzz(func(t *testing.T, method, host, uri string) {
		// What a proxy can carry: a token method, a host without
		// separators, a request target without spaces, controls or fragments.
		if !validToken(method) || host == "" || strings.ContainsAny(host, "/?#@ \\%") || !utf8.ValidString(host) ||
			!strings.HasPrefix(uri, "/") || strings.ContainsAny(uri, " #") || strings.ContainsFunc(uri+host, func(r rune) bool { return r < 0x21 || r == 0x7f }) {
			return
		}
		if _, err := url.ParseRequestURI(uri); err != nil {
			return
		}
		if _, err := url.Parse("https://" + host + uri); err != nil {
			return
		}
		verdicts := map[string]string{}
		for name, call := range fx.shapes("routes=true") {
			w := call(tok, method, host, uri, nil)
			checkErrorShape(t, w, false)
			verdicts[name] = w.Result().Status + " " + w.Header().Get(HeaderAuthError)
		}
		if verdicts["nginx"] != verdicts["traefik"] || verdicts["nginx"] != verdicts["envoy"] {
			t.Fatalf("%s %s %q: verdicts differ by shape: %v", method, host, uri, verdicts)
		}
	})
}

func validToken(s string) bool {
	if s == "" || len(s) > 16 {
		return false
	}
	for _, c := range s {
		if c < 'A' || c > 'Z' {
			return false
		}
	}
	return true
}

// FuzzTokenEndpoint: any form body and Basic credentials get an RFC 6749
// answer: 200 only for the right secret, never a 5xx, always the error
// shape otherwise.
func FuzzTokenEndpoint(f *testing.F) {
	fx := newFixture(f)
	for _, seed := range []struct{ body, user, pass string }{
		{"grant_type=client_credentials", clientID, secret},
		{"grant_type=client_credentials&scope=orders:read", clientID, secret},
		{"grant_type=client_credentials&client_id=" + clientID + "&client_secret=" + secret, "", ""},
		{"grant_type=client_credentials&resource=a&resource=b", clientID, secret},
		{"grant_type=client_credentials&audience=payments-api", clientID, "wrong"},
		{"grant_type=password&username=x", "team.nobody", "x"},
		{"%zz=1&grant_type", "%zz", "%"}, {"grant_type=client_credentials&scope=" + strings.Repeat("a:b ", 500), clientID, secret},
	} {
		f.Add(seed.body, seed.user, seed.pass)
	}
	f.Fuzz(func(t *testing.T, body, user, pass string) {
		req := httptest.NewRequest("POST", "/token", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if user != "" || pass != "" {
			req.Header.Set("Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte(user+":"+pass)))
		}
		w := httptest.NewRecorder()
		fx.server.ServeHTTP(w, req)
		checkErrorShape(t, w, true)
		if w.Code == http.StatusOK {
			id, _ := url.QueryUnescape(user)
			sec, _ := url.QueryUnescape(pass)
			form, _ := url.ParseQuery(body)
			if !(id == clientID && (sec == secret || sec == oldSec)) && !(user == "" && pass == "" && form.Get("client_id") == clientID && (form.Get("client_secret") == secret || form.Get("client_secret") == oldSec)) {
				t.Fatalf("issued a token to %q/%q with body %q", user, pass, body)
			}
		}
	})
}

// FuzzValidate: the whole /validate handler under arbitrary paths, queries,
// headers and tokens: never a 5xx or a redirect, 200 only for our token.
func FuzzValidate(f *testing.F) {
	fx := newFixture(f)
	tok := fx.token(nil)
	for _, seed := range []struct{ target, authorization, origURL, fwdURI string }{
		{"/validate", "Bearer " + tok, "", ""},
		{"/validate?aud=orders-api&permission=orders:read&routes=true", "Bearer " + tok, "https://api.example.com/api/orders/1", ""},
		{"/forward-auth?routes=true", "Bearer " + tok, "", "/api/orders/1"},
		{"/ext-authz;aud=orders-api/api/orders//42?aud=x", "bearer " + tok, "", ""},
		{"/validate/api", "Bearer x.y.z", "", ""}, {"//validate", "Bearer", "::", "\x00"},
		{"/validate?routes=1&aud", "Bearer " + tok + "x", "http://h/%zz", "/a"},
		{"/token", "", "", ""}, {"/nope", "", "", ""},
	} {
		f.Add(seed.target, seed.authorization, seed.origURL, seed.fwdURI)
	}
	f.Fuzz(func(t *testing.T, target, authorization, origURL, fwdURI string) {
		if !strings.HasPrefix(target, "/") || strings.ContainsAny(target, " #") || strings.ContainsFunc(target, func(r rune) bool { return r < 0x21 || r == 0x7f }) {
			return
		}
		u, err := url.ParseRequestURI(target)
		if err != nil {
			return
		}
		req := &http.Request{Method: "GET", URL: u, RequestURI: target, Host: "api.example.com", Header: http.Header{}, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1}
		for k, v := range map[string]string{"Authorization": authorization, "X-Original-URL": origURL, "X-Original-Method": "GET", "X-Forwarded-Uri": fwdURI} {
			if v != "" {
				req.Header.Set(k, v)
			}
		}
		w := httptest.NewRecorder()
		fx.server.ServeHTTP(w, req)
		checkErrorShape(t, w, postOnly[u.Path])
		if w.Code == http.StatusOK && !strings.Contains(authorization, tok) {
			t.Fatalf("allowed without our token: %q", authorization)
		}
	})
}
