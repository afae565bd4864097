package verify_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"net/http"
	"time"

	"golang.org/x/oauth2"

	"github.com/authframework/authframework/pkg/verify"
)

// A service that accepts tokens of one TokenPolicy for the audience
// "orders", with a permission per route.
func Example() {
	ctx := context.Background()
	v, err := verify.New(ctx, verify.Options{
		Issuer:    "https://auth.example.com/issuers/shop/default",
		Audiences: []string{"orders"},
	})
	if err != nil {
		log.Fatal(err)
	}
	list := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, _ := verify.FromContext(r.Context())
		fmt.Fprintf(w, "orders of %s in %s\n", id.ClientID, id.Namespace)
	})
	mux := http.NewServeMux()
	mux.Handle("GET /orders", v.Handler(list, verify.RequirePermission("orders:read")))
	mux.Handle("POST /orders", v.Handler(list, verify.RequirePermission("orders:write")))
	log.Fatal(http.ListenAndServe(":8080", mux))
}

// Behind one Middleware for the whole mux, each route adds what it needs;
// the token is verified once.
func ExampleVerifier_Middleware() {
	v, err := verify.New(context.Background(), verify.Options{
		Issuer:    "https://auth.example.com/issuers/shop/default",
		Audiences: []string{"orders", "billing"},
	})
	if err != nil {
		log.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /invoices", v.Middleware(verify.RequireAudience("billing"), verify.RequireScope("invoices:read"))(http.NotFoundHandler()))
	log.Fatal(http.ListenAndServe(":8080", v.Middleware()(mux)))
}

// Revocations pushed by the auth server: a revoked token is refused within
// a second, with no call per request. The stream is opened with a token of
// the same issuer, here the service's own from the client credentials grant
// (golang.org/x/oauth2/clientcredentials, or the authframework client).
func Example_revocations() {
	ctx := context.Background()
	var own oauth2.TokenSource // the service's own tokens
	v, err := verify.New(ctx, verify.Options{
		Issuer:    "https://auth.example.com/issuers/shop/default",
		Audiences: []string{"orders"},
		Revocations: &verify.RevocationOptions{
			TokenSource:  own,
			MaxStaleness: time.Minute,
			OnStale:      verify.Refuse, // fail closed when the stream is lost
		},
	})
	if err != nil {
		log.Fatal(err)
	}
	// Like an informer's WaitForCacheSync: keys fetched, revocations synced.
	if err := v.WaitForSync(ctx); err != nil {
		log.Fatal(err)
	}
}

// Remote mode asks the auth server about every token (once per CacheFor)
// and verifies offline, locally, while the server does not answer.
func Example_remote() {
	v, err := verify.New(context.Background(), verify.Options{
		Issuer:    "https://auth.example.com/issuers/shop/default",
		Audiences: []string{"orders"},
		Remote: &verify.RemoteOptions{
			Endpoint:          verify.Introspect,
			ClientCredentials: verify.StaticCredentials("orders-service", "its-secret"),
			BreakerFailures:   5,
			BreakerOpenFor:    10 * time.Second,
		},
	})
	if err != nil {
		log.Fatal(err)
	}
	_ = v
}

// Verify outside HTTP, for a queue consumer or a custom protocol.
func ExampleVerifier_Verify() {
	v, err := verify.New(context.Background(), verify.Options{
		Issuer:    "https://auth.example.com/issuers/shop/default",
		Audiences: []string{"orders"},
	})
	if err != nil {
		log.Fatal(err)
	}
	id, err := v.Verify(context.Background(), "eyJ...")
	if err != nil {
		var refused *verify.Error
		if errors.As(err, &refused) {
			log.Printf("refused: %s (%d)", refused.Code, refused.Status)
		}
		return
	}
	if id.HasPermission("orders:read") {
		log.Printf("%s may read orders", id.Subject)
	}
}
