package main

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/authframework/authframework/pkg/authclient"
	"github.com/authframework/authframework/pkg/issuertest"
)

// TestService runs the example's service against a stand-in issuer: a
// token with orders:read passes, one without is 403, none is 401, and a
// revoked one is refused once the revocation stream has it.
func TestService(t *testing.T) {
	iss := issuertest.New(t, issuertest.Options{Audiences: []string{"orders-api"}})
	iss.AddClient(issuertest.Client{ID: "shop.orders", Secrets: []string{"s3cr3t"}, Identity: issuertest.Identity{Permissions: []string{"orders:read"}}})
	dir := t.TempDir()
	issuertest.WriteSecretVolume(t, dir, map[string]string{authclient.ClientIDFile: "shop.orders", authclient.ClientSecretFile: "s3cr3t"})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	h, err := handler(ctx, iss.URL(), "orders-api", iss.BaseURL()+"/revocations", iss.TokenURL(), dir)
	if err != nil {
		t.Fatal(err)
	}
	svc := httptest.NewServer(h)
	defer svc.Close()
	get := func(tok string) (int, string) {
		req, _ := http.NewRequest(http.MethodGet, svc.URL+"/orders", nil)
		if tok != "" {
			req.Header.Set("Authorization", "Bearer "+tok)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	reader := iss.Mint(t, issuertest.Identity{ClientID: "shop.billing", Permissions: []string{"orders:read"}})
	if code, body := get(reader); code != 200 || body != "orders of shop.billing\n" {
		t.Errorf("orders:read: %d %q", code, body)
	}
	if code, _ := get(iss.Mint(t, issuertest.Identity{ClientID: "shop.billing", Permissions: []string{"orders:write"}})); code != 403 {
		t.Errorf("without orders:read: %d", code)
	}
	if code, _ := get(""); code != 401 {
		t.Errorf("no token: %d", code)
	}
	iss.Revoke(t, reader)
	err = wait.PollUntilContextTimeout(ctx, 20*time.Millisecond, 10*time.Second, true, func(context.Context) (bool, error) {
		code, _ := get(reader)
		return code == 401, nil
	})
	if err != nil {
		code, body := get(reader)
		t.Fatalf("a revoked token: %d %s", code, body)
	}
}
