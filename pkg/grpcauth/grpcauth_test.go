package grpcauth_test

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"golang.org/x/oauth2"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/test/bufconn"
	"k8s.io/utils/clock"

	"github.com/authframework/authframework/internal/keys"
	"github.com/authframework/authframework/internal/token"
	"github.com/authframework/authframework/pkg/grpcauth"
	"github.com/authframework/authframework/pkg/verify"
)

// issuer serves discovery and a JWKS of one key on httptest and mints
// tokens with it.
type issuer struct {
	url string
	key keys.Key
}

func newIssuer(t *testing.T) *issuer {
	k, err := keys.Generate(jose.ES256, 0, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	is := &issuer{key: k}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/.well-known/openid-configuration") {
			_ = json.NewEncoder(w).Encode(map[string]string{"issuer": is.url, "jwks_uri": is.url + "/jwks.json"})
			return
		}
		_ = json.NewEncoder(w).Encode(keys.PublicSet([]keys.Key{k}))
	}))
	t.Cleanup(srv.Close)
	is.url = srv.URL + "/issuers/team-a/default"
	return is
}

func (is *issuer) mint(t *testing.T, perms ...string) string {
	raw, _, err := token.Mint(is.url, time.Hour, is.key, clock.RealClock{}, rand.Reader,
		token.Subject{ClientID: "shop", Namespace: "team-a", UID: "uid-shop"}, "orders", perms)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// health answers SERVING to a caller with an identity, and says who it is
// in the service name it echoes.
type health struct {
	grpc_health_v1.UnimplementedHealthServer
}

func (health) Check(ctx context.Context, _ *grpc_health_v1.HealthCheckRequest) (*grpc_health_v1.HealthCheckResponse, error) {
	if _, ok := verify.FromContext(ctx); !ok {
		return &grpc_health_v1.HealthCheckResponse{Status: grpc_health_v1.HealthCheckResponse_UNKNOWN}, nil
	}
	return &grpc_health_v1.HealthCheckResponse{Status: grpc_health_v1.HealthCheckResponse_SERVING}, nil
}

func (health) Watch(_ *grpc_health_v1.HealthCheckRequest, ss grpc.ServerStreamingServer[grpc_health_v1.HealthCheckResponse]) error {
	id, ok := verify.FromContext(ss.Context())
	if !ok || id.ClientID != "shop" {
		return status.Error(codes.Internal, "no identity in the stream's context")
	}
	return ss.Send(&grpc_health_v1.HealthCheckResponse{Status: grpc_health_v1.HealthCheckResponse_SERVING})
}

func (health) List(ctx context.Context, _ *grpc_health_v1.HealthListRequest) (*grpc_health_v1.HealthListResponse, error) {
	_, ok := verify.FromContext(ctx)
	if ok {
		return nil, status.Error(codes.Internal, "a public method got an identity without a token")
	}
	return &grpc_health_v1.HealthListResponse{}, nil
}

// start runs a real gRPC server with the interceptors over bufconn and
// returns a client connection factory.
func start(t *testing.T, is *issuer) func(...grpc.DialOption) grpc_health_v1.HealthClient {
	v, err := verify.New(t.Context(), verify.Options{Issuer: is.url, Audiences: []string{"orders"}})
	if err != nil {
		t.Fatal(err)
	}
	rules := []grpcauth.Option{
		grpcauth.Require("/grpc.health.v1.Health/*", verify.RequirePermission("health:read")),
		grpcauth.Require("/grpc.health.v1.Health/Watch", verify.RequirePermission("health:watch")),
		grpcauth.Public("/grpc.health.v1.Health/List"),
	}
	srv := grpc.NewServer(
		grpc.ChainUnaryInterceptor(grpcauth.UnaryServerInterceptor(v, rules...)),
		grpc.ChainStreamInterceptor(grpcauth.StreamServerInterceptor(v, rules...)),
	)
	grpc_health_v1.RegisterHealthServer(srv, health{})
	lis := bufconn.Listen(1 << 20)
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)
	return func(opts ...grpc.DialOption) grpc_health_v1.HealthClient {
		opts = append(opts, grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }))
		conn, err := grpc.NewClient("passthrough:///bufnet", opts...)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = conn.Close() })
		return grpc_health_v1.NewHealthClient(conn)
	}
}

func withToken(raw string) []grpc.DialOption {
	return []grpc.DialOption{
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithPerRPCCredentials(grpcauth.TokenCredentials{Source: oauth2.StaticTokenSource(&oauth2.Token{AccessToken: raw}), AllowInsecure: true}),
	}
}

func TestInterceptors(t *testing.T) {
	is := newIssuer(t)
	dial := start(t, is)
	ctx := t.Context()
	check := func(c grpc_health_v1.HealthClient) (codes.Code, string) {
		resp, err := c.Check(ctx, &grpc_health_v1.HealthCheckRequest{})
		if err != nil {
			return status.Code(err), status.Convert(err).Message()
		}
		return codes.OK, resp.Status.String()
	}
	watch := func(c grpc_health_v1.HealthClient) codes.Code {
		st, err := c.Watch(ctx, &grpc_health_v1.HealthCheckRequest{})
		if err == nil {
			_, err = st.Recv()
		}
		return status.Code(err)
	}

	tests := []struct {
		name        string
		client      grpc_health_v1.HealthClient
		check       codes.Code
		checkSays   string
		watch, list codes.Code
	}{
		{"all permissions", dial(withToken(is.mint(t, "health:*"))...), codes.OK, "SERVING", codes.OK, codes.OK},
		{"service permission only", dial(withToken(is.mint(t, "health:read"))...), codes.OK, "SERVING", codes.PermissionDenied, codes.OK},
		{"no permission", dial(withToken(is.mint(t))...), codes.PermissionDenied, "insufficient_scope", codes.PermissionDenied, codes.OK},
		{"no token", dial(grpc.WithTransportCredentials(insecure.NewCredentials())), codes.Unauthenticated, "missing_token", codes.Unauthenticated, codes.OK},
		{"forged token", dial(withToken(is.mint(t, "health:*")[:60] + "x.y.z")...), codes.Unauthenticated, "invalid_token", codes.Unauthenticated, codes.OK},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if code, says := check(tc.client); code != tc.check || !strings.Contains(says, tc.checkSays) {
				t.Errorf("Check: %s %q, want %s %q", code, says, tc.check, tc.checkSays)
			}
			if code := watch(tc.client); code != tc.watch {
				t.Errorf("Watch (a stream): %s, want %s", code, tc.watch)
			}
			if _, err := tc.client.List(ctx, &grpc_health_v1.HealthListRequest{}); status.Code(err) != tc.list {
				t.Errorf("List (public): %v, want %s", err, tc.list)
			}
		})
	}
}

// TestTokenCredentialsRequireSecurity: the credentials refuse to send a
// token over a plaintext connection unless told it is protected otherwise.
func TestTokenCredentialsRequireSecurity(t *testing.T) {
	src := oauth2.StaticTokenSource(&oauth2.Token{AccessToken: "a-token"})
	_, err := grpc.NewClient("passthrough:///bufnet", grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithPerRPCCredentials(grpcauth.TokenCredentials{Source: src}))
	if err == nil || !strings.Contains(err.Error(), "transport level security") {
		t.Fatalf("a client that would send a token over plaintext: %v", err)
	}
	plaintext := credentials.NewContextWithRequestInfo(t.Context(), credentials.RequestInfo{AuthInfo: plaintextInfo{credentials.CommonAuthInfo{SecurityLevel: credentials.NoSecurity}}})
	if _, err := (grpcauth.TokenCredentials{Source: src}).GetRequestMetadata(plaintext); status.Code(err) != codes.Unauthenticated {
		t.Errorf("metadata for a plaintext connection: %v", err)
	}
	md, err := (grpcauth.TokenCredentials{Source: src, AllowInsecure: true}).GetRequestMetadata(plaintext)
	if err != nil || md["authorization"] != "Bearer a-token" {
		t.Errorf("AllowInsecure: %v %v", md, err)
	}
}

// plaintextInfo is the AuthInfo of a connection without transport security.
type plaintextInfo struct{ credentials.CommonAuthInfo }

func (plaintextInfo) AuthType() string { return "insecure" }
