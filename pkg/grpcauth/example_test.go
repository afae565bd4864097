package grpcauth_test

import (
	"context"
	"log"

	"golang.org/x/oauth2"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/authframework/authframework/pkg/grpcauth"
	"github.com/authframework/authframework/pkg/verify"
)

// A gRPC server that requires a token on every method but health checks,
// and a permission per method.
func ExampleUnaryServerInterceptor() {
	v, err := verify.New(context.Background(), verify.Options{
		Issuer:    "https://auth.example.com/issuers/shop/default",
		Audiences: []string{"orders"},
	})
	if err != nil {
		log.Fatal(err)
	}
	rules := []grpcauth.Option{
		grpcauth.Require("/shop.Orders/List", verify.RequirePermission("orders:read")),
		grpcauth.Require("/shop.Orders/Create", verify.RequirePermission("orders:write")),
		grpcauth.Public("/grpc.health.v1.Health/*"),
	}
	srv := grpc.NewServer(
		grpc.ChainUnaryInterceptor(grpcauth.UnaryServerInterceptor(v, rules...)),
		grpc.ChainStreamInterceptor(grpcauth.StreamServerInterceptor(v, rules...)),
	)
	_ = srv // register services, then srv.Serve(listener)
}

// A client that sends its token on every call.
func ExampleTokenCredentials() {
	var ts oauth2.TokenSource // e.g. golang.org/x/oauth2/clientcredentials, or the authframework client
	conn, err := grpc.NewClient("orders.shop.svc:443",
		grpc.WithTransportCredentials(credentials.NewTLS(nil)),
		grpc.WithPerRPCCredentials(grpcauth.TokenCredentials{Source: ts}))
	if err != nil {
		log.Fatal(err)
	}
	defer conn.Close()
}
