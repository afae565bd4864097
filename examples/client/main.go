// Command client calls a service that authframework protects, as a
// workload in a pod does: with the client credentials of its
// ServiceAccount, read from the mounted credentials Secret, which the
// operator rotates under it.
//
//	client -token-url http://auth.authframework-system.svc/token \
//	  -credentials /var/run/secrets/authframework/credentials -scope orders:read \
//	  -audience orders-api http://orders.shop.svc/orders
//
// The pod mounts the Secret <account>-credentials at -credentials:
//
//	volumes:
//	- name: credentials
//	  secret: {secretName: billing-credentials}
//	containers:
//	- volumeMounts: [{name: credentials, mountPath: /var/run/secrets/authframework/credentials, readOnly: true}]
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"strings"

	"github.com/authframework/authframework/pkg/authclient"
)

func main() {
	tokenURL := flag.String("token-url", "http://auth.authframework-system.svc/token", "the auth server's token endpoint")
	dir := flag.String("credentials", "/var/run/secrets/authframework/credentials", "where the credentials Secret is mounted")
	scope := flag.String("scope", "", "space-separated permissions to ask for (default: all the account's)")
	audience := flag.String("audience", "", "the audience to ask for (default: the policy's first)")
	flag.Parse()
	if flag.NArg() != 1 {
		fmt.Fprintln(os.Stderr, "usage: client [flags] URL")
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	src := authclient.ClientCredentials(*tokenURL, *dir, authclient.Options{Scopes: strings.Fields(*scope), Audience: *audience})
	if err := get(ctx, src.Client(), flag.Arg(0), os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

// get prints the status and body of GET url.
func get(ctx context.Context, client *http.Client, url string, out io.Writer) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	fmt.Fprintln(out, resp.Status)
	_, err = io.Copy(out, resp.Body)
	return err
}
