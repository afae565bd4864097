package authz

import (
	"errors"
	"iter"
	"net"
	"slices"
	"strings"
)

// Route is a route rule: hosts, path patterns and methods (see the Role API).
// Empty hosts or methods match any.
type Route struct {
	Hosts   []string
	Paths   []string
	Methods []string
}

// Request is the original request an ingress asks about.
type Request struct {
	Method string
	Host   string
	// Path is the raw request path, possibly with a query.
	Path string
}

// ErrUnsafePath is returned for paths that could mean different things to the
// auth server and the upstream: encoded slashes or backslashes, control
// characters, malformed escapes, or a path that is not absolute.
var ErrUnsafePath = errors.New("request path is not safe to authorize")

// RoutesAllow reports whether any rule matches the request. A path that
// cannot be normalised safely matches nothing.
func RoutesAllow(rules []Route, req Request) (bool, error) {
	return RoutesAllowSeq(slices.Values(rules), req)
}

// RoutesAllowSeq is RoutesAllow over rules read one by one, for callers
// that hold them in several lists (one per role) and need not join them.
func RoutesAllowSeq(rules iter.Seq[Route], req Request) (bool, error) {
	path, err := NormalizePath(req.Path)
	if err != nil {
		return false, err
	}
	host := NormalizeHost(req.Host)
	for r := range rules {
		if r.matches(req.Method, host, path) {
			return true, nil
		}
	}
	return false, nil
}

func (r Route) matches(method, host, path string) bool {
	// Methods are case-sensitive (RFC 9110 §9.1): a rule for GET does not
	// match "get", which fails closed.
	if len(r.Methods) > 0 && !slices.Contains(r.Methods, method) {
		return false
	}
	if len(r.Hosts) > 0 && !slices.ContainsFunc(r.Hosts, func(h string) bool { return hostMatches(h, host) }) {
		return false
	}
	return slices.ContainsFunc(r.Paths, func(p string) bool { return PathMatches(p, path) })
}

// NormalizeHost lower-cases a host and drops its port and trailing dot.
func NormalizeHost(h string) string {
	if host, _, err := net.SplitHostPort(h); err == nil {
		h = host
	}
	return strings.TrimSuffix(strings.ToLower(h), ".")
}

// hostMatches compares a normalised host with a rule host; `*.example.com`
// matches exactly one more label, as Ingress host wildcards do.
func hostMatches(rule, host string) bool {
	rule = strings.ToLower(rule)
	if suffix, ok := strings.CutPrefix(rule, "*."); ok {
		label, rest, found := strings.Cut(host, ".")
		return found && label != "" && rest == suffix
	}
	return rule == host
}

// NormalizePath returns the path an upstream following RFC 3986 would see:
// query dropped, percent-encoded unreserved characters decoded,
// other escapes upper-cased, duplicate slashes merged and dot segments
// removed. Paths whose meaning depends on the upstream (encoded `/` or `\`,
// raw backslashes, control characters, bad escapes, a raw `#`, a dot segment
// with path parameters such as `..;`) are refused.
func NormalizePath(raw string) (string, error) {
	if strings.Contains(raw, "#") {
		// A request target carries no fragment (RFC 9112 §3.2); nginx passes
		// a raw # on to the upstream, which may read past it.
		return "", ErrUnsafePath
	}
	if i := strings.IndexByte(raw, '?'); i >= 0 {
		raw = raw[:i]
	}
	if !strings.HasPrefix(raw, "/") {
		return "", ErrUnsafePath
	}
	var b strings.Builder
	b.Grow(len(raw))
	for i := 0; i < len(raw); i++ {
		c := raw[i]
		switch {
		case c < 0x20 || c == 0x7f || c == '\\':
			return "", ErrUnsafePath
		case c == '%':
			if i+2 >= len(raw) || !isHex(raw[i+1]) || !isHex(raw[i+2]) {
				return "", ErrUnsafePath
			}
			d := unhex(raw[i+1])<<4 | unhex(raw[i+2])
			switch {
			case d == '/' || d == '\\' || d < 0x20 || d == 0x7f || d == '%':
				return "", ErrUnsafePath
			case isUnreserved(d):
				b.WriteByte(d)
			default:
				b.WriteByte('%')
				b.WriteString(strings.ToUpper(raw[i+1 : i+3]))
			}
			i += 2
		default:
			b.WriteByte(c)
		}
	}
	decoded := b.String()
	if hasParameterDotSegment(decoded) {
		return "", ErrUnsafePath
	}
	return removeDotSegments(decoded), nil
}

// hasParameterDotSegment reports a segment that is `.` or `..` followed by
// path parameters (`..;x`, `..%3B`): Tomcat, Jetty and Spring drop the
// parameters and resolve the dot segment, which a matcher that keeps them
// would not.
func hasParameterDotSegment(p string) bool {
	for _, seg := range strings.Split(p, "/") {
		// The first `;` or `%3B` (either case) ends the segment's name. Bytes,
		// not runes: the path may hold invalid UTF-8.
		base := seg
		for i := 0; i < len(seg); i++ {
			if seg[i] == ';' || seg[i] == '%' && i+2 < len(seg) && seg[i+1] == '3' && (seg[i+2] == 'B' || seg[i+2] == 'b') {
				base = seg[:i]
				break
			}
		}
		if base != seg && (base == "." || base == "..") {
			return true
		}
	}
	return false
}

// removeDotSegments resolves `.` and `..` and merges empty segments, keeping
// a trailing slash.
func removeDotSegments(p string) string {
	segs := strings.Split(p[1:], "/")
	out := make([]string, 0, len(segs))
	trailing := false
	for i, s := range segs {
		last := i == len(segs)-1
		switch s {
		case "", ".":
			trailing = last
		case "..":
			if len(out) > 0 {
				out = out[:len(out)-1]
			}
			trailing = last
		default:
			out = append(out, s)
			trailing = false
		}
	}
	res := "/" + strings.Join(out, "/")
	if trailing && len(out) > 0 {
		res += "/"
	}
	return res
}

// PathMatches matches a normalised path against a pattern: literal segments,
// `*` for exactly one segment, and a final `**` for any number (including
// none). A single trailing slash on the path is ignored.
func PathMatches(pattern, path string) bool {
	pat := splitPath(pattern)
	segs := splitPath(path)
	for i, p := range pat {
		if p == "**" && i == len(pat)-1 {
			return true
		}
		if i >= len(segs) {
			return false
		}
		if p != "*" && p != segs[i] {
			return false
		}
	}
	return len(segs) == len(pat)
}

func splitPath(p string) []string {
	p = strings.Trim(p, "/")
	if p == "" {
		return nil
	}
	return strings.Split(p, "/")
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case '0' <= c && c <= '9':
		return c - '0'
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10
	default:
		return c - 'A' + 10
	}
}

func isUnreserved(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '.' || c == '_' || c == '~'
}
