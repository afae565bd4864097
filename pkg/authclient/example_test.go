package authclient_test

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"

	"github.com/authframework/authframework/pkg/authclient"
	"github.com/authframework/authframework/pkg/issuertest"
)

// A workload gets tokens with its ServiceAccount's credentials Secret,
// mounted at a path of its pod (here a stand-in issuer and directory).
func ExampleClientCredentials() {
	iss := issuertest.New(nil, issuertest.Options{Audiences: []string{"orders-api"}}) // stands in for the auth server
	defer iss.Stop()
	iss.AddClient(issuertest.Client{ID: "shop.billing", Secrets: []string{"s3cr3t"}, Identity: issuertest.Identity{Permissions: []string{"orders:read", "orders:write"}}})
	mount, _ := os.MkdirTemp("", "credentials") // in the pod: the volume's mountPath
	defer os.RemoveAll(mount)
	issuertest.WriteSecretVolume(nil, mount, map[string]string{authclient.ClientIDFile: "shop.billing", authclient.ClientSecretFile: "s3cr3t"})

	src := authclient.ClientCredentials(iss.TokenURL(), mount, authclient.Options{
		Scopes:   []string{"orders:read"},
		Audience: "orders-api",
	})
	tok, err := src.Token()
	if err != nil {
		fmt.Println(err)
		return
	}
	_, client, permissions, err := iss.Verify(tok.AccessToken)
	fmt.Println(client, permissions, err)
	// Output: shop.billing [orders:read] <nil>
}

// Source.Client sends each request with the token and, when the service
// answers 401, once more with a fresh one.
func ExampleSource_Client() {
	iss := issuertest.New(nil, issuertest.Options{})
	defer iss.Stop()
	iss.AddClient(issuertest.Client{ID: "shop.billing", Secrets: []string{"s3cr3t"}})
	mount, _ := os.MkdirTemp("", "credentials")
	defer os.RemoveAll(mount)
	issuertest.WriteSecretVolume(nil, mount, map[string]string{authclient.ClientIDFile: "shop.billing", authclient.ClientSecretFile: "s3cr3t"})
	orders := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		raw, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if _, client, _, err := iss.Verify(raw); err == nil {
			fmt.Fprintf(w, "hello %s", client)
			return
		}
		w.WriteHeader(http.StatusUnauthorized)
	}))
	defer orders.Close()

	client := authclient.ClientCredentials(iss.TokenURL(), mount, authclient.Options{}).Client()
	resp, err := client.Get(orders.URL + "/orders")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	fmt.Println(resp.Status, string(body))
	// Output: 200 OK hello shop.billing
}

// A workload without an OAuth2 client reads the token the operator keeps
// in its token Secret (spec.tokenSecret), mounted in the pod.
func ExampleTokenFile() {
	src := authclient.TokenFile("/var/run/secrets/authframework/access/"+authclient.TokenFileName, authclient.Options{})
	client := &http.Client{Transport: &authclient.Transport{Source: src}}
	_, _ = client.Get("http://orders.shop.svc/orders")
}

// A pod exchanges its projected Kubernetes service-account token, whose
// audience is the auth server's --token-exchange-audience:
//
//	volumes:
//	- name: authframework-token
//	  projected:
//	    sources:
//	    - serviceAccountToken: {audience: authframework, expirationSeconds: 3600, path: token}
func ExampleTokenExchange() {
	src := authclient.TokenExchange("http://auth.authframework-system.svc/token",
		"/var/run/secrets/authframework/token", authclient.Options{Audience: "orders-api"})
	_, _ = src.Client().Get("http://orders.shop.svc/orders")
}
