package auth

import (
	"fmt"
	"net/http"
	"net/netip"
	"strings"
)

// ParseTrustedProxies reads a comma-separated list of CIDRs (`10.0.0.0/8`)
// or single addresses (`10.0.0.7`, read as /32 or /128) of the proxies whose
// X-Forwarded-For and X-Real-IP headers are believed. Empty: none.
func ParseTrustedProxies(v string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s == "" {
			continue
		}
		if !strings.Contains(s, "/") {
			a, err := netip.ParseAddr(s)
			if err != nil {
				return nil, fmt.Errorf("trusted proxy %q is neither a CIDR nor an address", s)
			}
			out = append(out, netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()))
			continue
		}
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return nil, fmt.Errorf("trusted proxy %q is not a CIDR: %w", s, err)
		}
		if p.Addr().Is4In6() {
			p = netip.PrefixFrom(p.Addr().Unmap(), max(p.Bits()-96, 0))
		}
		out = append(out, p.Masked())
	}
	return out, nil
}

// sourceAddress is the address a request comes from, for per-source limits.
// peer is the TCP peer (http.Request.RemoteAddr, "ip:port"). Only when the
// peer is a trusted proxy are its headers read:
//
//   - X-Forwarded-For (every field, in order) is walked from the right; the
//     first hop that is not a trusted proxy is the source. When every hop is
//     trusted, the leftmost is. A malformed hop ends the walk: what is left of
//     it was written by nobody we trust, so the source is the last good hop to
//     its right (or, when the rightmost hop is malformed, as if the header
//     were absent).
//   - Otherwise X-Real-IP, when it is one valid address.
//   - Otherwise the peer.
//
// Headers from an untrusted peer are ignored: anyone can send them. The zero
// Addr is returned only when the peer itself is unreadable.
func sourceAddress(peer string, h http.Header, trusted []netip.Prefix) netip.Addr {
	p := parseHop(peer)
	if !p.IsValid() || !isTrusted(p, trusted) {
		return p
	}
	var hops []string
	for _, v := range h.Values("X-Forwarded-For") {
		hops = append(hops, strings.Split(v, ",")...)
	}
	var last netip.Addr
	for i := len(hops) - 1; i >= 0; i-- {
		a := parseHop(hops[i])
		if !a.IsValid() {
			break
		}
		last = a
		if !isTrusted(a, trusted) {
			return a
		}
	}
	if last.IsValid() {
		return last
	}
	if vs := h.Values("X-Real-IP"); len(vs) == 1 {
		if a := parseHop(vs[0]); a.IsValid() {
			return a
		}
	}
	return p
}

// parseHop reads an address, with or without a port, IPv6 in brackets or
// not; IPv4-mapped IPv6 becomes IPv4. Zones are refused.
func parseHop(s string) netip.Addr {
	s = strings.TrimSpace(s)
	a, err := netip.ParseAddr(s)
	if err != nil {
		ap, err := netip.ParseAddrPort(s)
		if err != nil {
			return netip.Addr{}
		}
		a = ap.Addr()
	}
	if a.Zone() != "" {
		return netip.Addr{}
	}
	return a.Unmap()
}

func isTrusted(a netip.Addr, trusted []netip.Prefix) bool {
	for _, p := range trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// sourceKey groups addresses the way one party holds them: an IPv4 address
// alone, an IPv6 address by its /64 (one host commonly owns a whole /64).
func sourceKey(a netip.Addr) netip.Prefix {
	if a.Is6() {
		p, _ := a.Prefix(64)
		return p
	}
	return netip.PrefixFrom(a, a.BitLen())
}
