package auth

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/types"

	"github.com/authframework/authframework/internal/keys"

	"github.com/authframework/authframework/pkg/serverapi"
)

// discovery is the OIDC discovery document of one issuer (the shape
// clients read: serverapi.Discovery).
type discovery = serverapi.Discovery

func (s *Server) policyFor(w http.ResponseWriter, r *http.Request) (*Policy, bool) {
	p, ok := s.store.PolicyByName(types.NamespacedName{Namespace: r.PathValue("namespace"), Name: r.PathValue("policy")})
	if !ok || len(p.Published) == 0 {
		s.writeAPIError(w, r, http.StatusNotFound, "not_found", "no such issuer", nil, 0)
		return nil, false
	}
	return p, true
}

// cacheFor is how long verifiers may cache the JWKS: shorter than the
// pre-publish lead, so a cached set always holds the next key before it
// signs.
func cacheFor(p *Policy) string {
	age := min(p.PrePublish/2, 5*time.Minute)
	return fmt.Sprintf("public, max-age=%d", max(int(age/time.Second), 0))
}

func (s *Server) handleDiscovery(w http.ResponseWriter, r *http.Request) {
	p, ok := s.policyFor(w, r)
	if !ok {
		return
	}
	base := serverBase(r, s.opts.TrustedProxies)
	algs := []string{string(p.Algorithm)}
	for _, k := range p.Published {
		if a := string(k.Algorithm); !slices.Contains(algs, a) {
			algs = append(algs, a)
		}
	}
	w.Header().Set("Cache-Control", cacheFor(p))
	writeJSON(w, http.StatusOK, discovery{
		Issuer:                            p.Issuer,
		JWKSURI:                           base + serverapi.JWKSPath(p.Key.Namespace, p.Key.Name),
		TokenEndpoint:                     base + serverapi.PathToken,
		RevocationEndpoint:                base + serverapi.PathRevoke,
		IntrospectionEndpoint:             base + serverapi.PathIntrospect,
		GrantTypesSupported:               s.grantTypes(),
		TokenEndpointAuthMethodsSupported: []string{"client_secret_basic", "client_secret_post"},
		// No authorization endpoint, so no response type (RFC 8414 §2).
		ResponseTypesSupported:           []string{},
		SubjectTypesSupported:            []string{"public"},
		IDTokenSigningAlgValuesSupported: algs,
	})
}

func (s *Server) handleJWKS(w http.ResponseWriter, r *http.Request) {
	p, ok := s.policyFor(w, r)
	if !ok {
		return
	}
	ks := make([]keys.Key, 0, len(p.Published))
	for _, k := range p.Published {
		ks = append(ks, k)
	}
	slices.SortFunc(ks, func(a, b keys.Key) int { return strings.Compare(a.ID, b.ID) })
	w.Header().Set("Cache-Control", cacheFor(p))
	w.Header().Set("Content-Type", "application/jwk-set+json")
	_ = json.NewEncoder(w).Encode(keys.PublicSet(ks))
}

// serverBase is the URL the caller reached us at, for endpoint URLs in
// discovery: the forwarded proto and host when a trusted proxy sets them.
// From anyone else they are ignored: the document is cacheable (public,
// max-age), and a client's X-Forwarded-Host must not put its own jwks_uri
// into a shared cache.
func serverBase(r *http.Request, trusted []netip.Prefix) string {
	proto := "http"
	if r.TLS != nil {
		proto = "https"
	}
	host := r.Host
	if peer := parseHop(r.RemoteAddr); peer.IsValid() && isTrusted(peer, trusted) {
		if fp := r.Header.Get("X-Forwarded-Proto"); fp == "https" || fp == "http" {
			proto = fp
		}
		if fh := r.Header.Get("X-Forwarded-Host"); fh != "" && !strings.ContainsAny(fh, "/ \\@?#") {
			host = fh
		}
	}
	return proto + "://" + host
}

// grantTypes are the grant types /token takes.
func (s *Server) grantTypes() []string {
	if s.exchangeEnabled() {
		return []string{"client_credentials", serverapi.GrantTypeTokenExchange}
	}
	return []string{"client_credentials"}
}
