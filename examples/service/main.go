// Command service is an HTTP service that authframework protects by itself,
// without an ingress in front: pkg/verify checks each request's access token
// with the auth server's own rules, against the keys of the issuer's
// discovery document, and follows the revocation stream so that a revoked
// token is refused within a second.
//
//	service -issuer https://auth.example.com/issuers/shop/orders -audience orders-api \
//	  -revocations http://auth.authframework-system.svc/revocations \
//	  -credentials /var/run/secrets/authframework/credentials
//
// GET /orders needs orders:read; the caller's identity is in the request
// context.
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"net/http"
	"os"
	"os/signal"

	"github.com/authframework/authframework/pkg/authclient"
	"github.com/authframework/authframework/pkg/verify"
)

func main() {
	issuer := flag.String("issuer", "", "the TokenPolicy's issuer URL")
	audience := flag.String("audience", "orders-api", "the audience this service accepts")
	listen := flag.String("listen", ":8080", "address to serve on")
	revocations := flag.String("revocations", "", "the auth server's revocation stream URL (optional)")
	tokenURL := flag.String("token-url", "http://auth.authframework-system.svc/token", "the token endpoint, for the stream's own token")
	creds := flag.String("credentials", "", "the service's own mounted credentials Secret, for the stream's token")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	h, err := handler(ctx, *issuer, *audience, *revocations, *tokenURL, *creds)
	if err != nil {
		log.Fatal(err)
	}
	srv := &http.Server{Addr: *listen, Handler: h}
	go func() { <-ctx.Done(); _ = srv.Close() }()
	log.Fatal(srv.ListenAndServe())
}

// handler is the protected service: the ten lines a service needs.
func handler(ctx context.Context, issuer, audience, revocations, tokenURL, creds string) (http.Handler, error) {
	o := verify.Options{Issuer: issuer, Audiences: []string{audience}}
	if revocations != "" {
		o.Revocations = &verify.RevocationOptions{URL: revocations,
			TokenSource: authclient.ClientCredentials(tokenURL, creds, authclient.Options{Audience: audience})}
	}
	v, err := verify.New(ctx, o)
	if err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	mux.Handle("GET /orders", v.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, _ := verify.FromContext(r.Context())
		fmt.Fprintf(w, "orders of %s\n", id.ClientID)
	}), verify.RequirePermission("orders:read")))
	return mux, nil
}
