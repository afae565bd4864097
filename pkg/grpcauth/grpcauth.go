// Package grpcauth verifies authframework access tokens in gRPC servers and
// sends them from gRPC clients. It is package verify for gRPC: the same
// Verifier (local verification, key refresh, revocations, remote mode) and
// the same Requirements, in unary and stream server interceptors, and a
// per-RPC credentials type that adds a token from an oauth2.TokenSource. It
// lives apart from verify so that net/http services do not import gRPC.
//
// A server:
//
//	v, err := verify.New(ctx, verify.Options{Issuer: issuer, Audiences: []string{"orders"}})
//	if err != nil { ... }
//	rules := []grpcauth.Option{
//		grpcauth.Require("/shop.Orders/List", verify.RequirePermission("orders:read")),
//		grpcauth.Require("/shop.Orders/*", verify.RequirePermission("orders:write")),
//		grpcauth.Public("/grpc.health.v1.Health/*"),
//	}
//	srv := grpc.NewServer(
//		grpc.ChainUnaryInterceptor(grpcauth.UnaryServerInterceptor(v, rules...)),
//		grpc.ChainStreamInterceptor(grpcauth.StreamServerInterceptor(v, rules...)),
//	)
//
// and in a method, verify.FromContext(ctx) is the caller. Refusals are gRPC
// statuses: Unauthenticated for a missing or invalid token (verify's 401),
// PermissionDenied for a missing permission (403), Unavailable when the
// verifier cannot decide (503); the message is the refusal's code and
// message, never the token.
//
// A client:
//
//	conn, err := grpc.NewClient(target,
//		grpc.WithTransportCredentials(credentials.NewTLS(nil)),
//		grpc.WithPerRPCCredentials(grpcauth.TokenCredentials{Source: ts}))
package grpcauth

import (
	"context"
	"errors"
	"net/http"
	"strings"

	"golang.org/x/oauth2"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/authframework/authframework/pkg/verify"
)

// Option sets what the interceptors require of a method's caller.
type Option func(*rules)

// rules are the requirements by method: exact full method names
// ("/pkg.Service/Method"), then service wildcards ("/pkg.Service/*"), then
// every method.
type rules struct {
	exact, service map[string][]verify.Requirement
	all            []verify.Requirement
	public         map[string]bool
}

// Require adds requirements for method: a full method name
// ("/shop.Orders/List"), a service ("/shop.Orders/*"), or "*" for every
// method. A method's requirements are those of its exact name, of its
// service and of "*", all together.
func Require(method string, reqs ...verify.Requirement) Option {
	return func(r *rules) {
		switch {
		case method == "*":
			r.all = append(r.all, reqs...)
		case strings.HasSuffix(method, "/*"):
			r.service[strings.TrimSuffix(method, "*")] = append(r.service[strings.TrimSuffix(method, "*")], reqs...)
		default:
			r.exact[method] = append(r.exact[method], reqs...)
		}
	}
}

// Public lets methods be called without a token (health checks,
// reflection); names as in Require, without "*".
func Public(methods ...string) Option {
	return func(r *rules) {
		for _, m := range methods {
			r.public[m] = true
		}
	}
}

func newRules(opts []Option) *rules {
	r := &rules{exact: map[string][]verify.Requirement{}, service: map[string][]verify.Requirement{}, public: map[string]bool{}}
	for _, o := range opts {
		o(r)
	}
	return r
}

func (r *rules) isPublic(method string) bool {
	svc, _, _ := cutMethod(method)
	return r.public[method] || r.public[svc+"*"]
}

func (r *rules) requirements(method string) [][]verify.Requirement {
	svc, _, _ := cutMethod(method)
	return [][]verify.Requirement{r.all, r.service[svc], r.exact[method]}
}

// cutMethod splits "/pkg.Service/Method" into "/pkg.Service/" and "Method".
func cutMethod(full string) (service, method string, ok bool) {
	i := strings.LastIndex(full, "/")
	if i < 0 {
		return "", full, false
	}
	return full[:i+1], full[i+1:], true
}

// authorize verifies the bearer token of the call's metadata and checks the
// method's requirements; it returns the context with the Identity.
func authorize(ctx context.Context, v *verify.Verifier, r *rules, method string) (context.Context, error) {
	if r.isPublic(method) {
		return ctx, nil
	}
	raw, ok := bearer(ctx)
	if !ok {
		return nil, status.Error(codes.Unauthenticated, verify.CodeMissingToken+": a bearer token is required in the authorization metadata")
	}
	id, err := v.Verify(ctx, raw)
	if err != nil {
		return nil, toStatus(err)
	}
	for _, reqs := range r.requirements(method) {
		for _, req := range reqs {
			if e := req(id); e != nil {
				return nil, toStatus(e)
			}
		}
	}
	return verify.NewContext(ctx, id), nil
}

// bearer reads `authorization: Bearer <token>` from the incoming metadata.
func bearer(ctx context.Context) (string, bool) {
	md, _ := metadata.FromIncomingContext(ctx)
	vals := md.Get("authorization")
	if len(vals) != 1 {
		return "", false // none, or ambiguous
	}
	v := vals[0]
	if len(v) < 7 || !strings.EqualFold(v[:7], "bearer ") {
		return "", false
	}
	tok := strings.TrimSpace(v[7:])
	return tok, tok != ""
}

// toStatus maps a refusal to its gRPC status code (the gRPC HTTP mapping:
// 401 Unauthenticated, 403 PermissionDenied, 503 Unavailable).
func toStatus(err error) error {
	var e *verify.Error
	if !errors.As(err, &e) {
		return status.Error(codes.Unauthenticated, verify.CodeInvalidToken)
	}
	code := codes.Unauthenticated
	switch e.Status {
	case http.StatusForbidden:
		code = codes.PermissionDenied
	case http.StatusServiceUnavailable:
		code = codes.Unavailable
	}
	return status.Error(code, e.Code+": "+e.Message)
}

// UnaryServerInterceptor verifies each unary call's bearer token with v
// and checks the method's requirements (Require, Public); the handler finds
// the caller with verify.FromContext.
func UnaryServerInterceptor(v *verify.Verifier, opts ...Option) grpc.UnaryServerInterceptor {
	r := newRules(opts)
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		ctx, err := authorize(ctx, v, r, info.FullMethod)
		if err != nil {
			return nil, err
		}
		return handler(ctx, req)
	}
}

// StreamServerInterceptor is UnaryServerInterceptor for streams: the token
// is verified once, when the stream opens.
func StreamServerInterceptor(v *verify.Verifier, opts ...Option) grpc.StreamServerInterceptor {
	r := newRules(opts)
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		ctx, err := authorize(ss.Context(), v, r, info.FullMethod)
		if err != nil {
			return err
		}
		return handler(srv, &identityStream{ServerStream: ss, ctx: ctx})
	}
}

type identityStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s *identityStream) Context() context.Context { return s.ctx }

// TokenCredentials are per-RPC credentials (credentials.PerRPCCredentials)
// that send a token of Source as `authorization: Bearer <token>` on every
// call. Source is asked each call; give it one that caches and refreshes
// (oauth2.ReuseTokenSource, or the authframework client's sources).
//
// Like gRPC's own oauth.TokenSource they require a secure transport, since
// the token is a credential; set AllowInsecure only where something else
// protects the connection (a service mesh's mutual TLS, a test over
// bufconn).
type TokenCredentials struct {
	Source        oauth2.TokenSource
	AllowInsecure bool
}

// GetRequestMetadata returns the authorization metadata of one call.
func (c TokenCredentials) GetRequestMetadata(ctx context.Context, _ ...string) (map[string]string, error) {
	if !c.AllowInsecure {
		ri, _ := credentials.RequestInfoFromContext(ctx)
		if err := credentials.CheckSecurityLevel(ri.AuthInfo, credentials.PrivacyAndIntegrity); err != nil {
			return nil, status.Errorf(codes.Unauthenticated, "refusing to send a token over this connection: %v", err)
		}
	}
	t, err := c.Source.Token()
	if err != nil {
		return nil, status.Errorf(codes.Unauthenticated, "getting a token: %v", err)
	}
	return map[string]string{"authorization": "Bearer " + t.AccessToken}, nil
}

// RequireTransportSecurity is true unless AllowInsecure.
func (c TokenCredentials) RequireTransportSecurity() bool { return !c.AllowInsecure }

var _ credentials.PerRPCCredentials = TokenCredentials{}
