package main

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/authframework/authframework/pkg/authclient"
	"github.com/authframework/authframework/pkg/issuertest"
)

// TestGet runs the example's client against a stand-in issuer and a
// service that accepts only its tokens with orders:read.
func TestGet(t *testing.T) {
	iss := issuertest.New(t, issuertest.Options{Audiences: []string{"orders-api"}})
	iss.AddClient(issuertest.Client{ID: "shop.billing", Secrets: []string{"s3cr3t"}, Identity: issuertest.Identity{Permissions: []string{"orders:read"}}})
	dir := t.TempDir()
	issuertest.WriteSecretVolume(t, dir, map[string]string{authclient.ClientIDFile: "shop.billing", authclient.ClientSecretFile: "s3cr3t"})
	svc := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		raw, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		_, client, perms, err := iss.Verify(raw)
		if err != nil || len(perms) != 1 || perms[0] != "orders:read" {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		_, _ = w.Write([]byte("orders of " + client))
	}))
	defer svc.Close()

	var out strings.Builder
	src := authclient.ClientCredentials(iss.TokenURL(), dir, authclient.Options{Scopes: []string{"orders:read"}})
	if err := get(context.Background(), src.Client(), svc.URL, &out); err != nil {
		t.Fatal(err)
	}
	if out.String() != "200 OK\norders of shop.billing" {
		t.Errorf("output %q", out.String())
	}
}
