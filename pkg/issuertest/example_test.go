package issuertest_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"

	"github.com/authframework/authframework/pkg/issuertest"
)

// ordersHandler stands for a service under test; a real one verifies with
// the middleware, configured with iss.URL() as its issuer.
func ordersHandler(iss *issuertest.Issuer) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		raw, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if _, _, _, err := iss.Verify(raw); err != nil {
			http.Error(w, err.Error(), http.StatusUnauthorized)
			return
		}
		fmt.Fprint(w, "orders")
	})
}

// A test of a service mints tokens for the identities it needs, and checks
// that forged and revoked ones are refused. In a test, pass its
// *testing.T instead of nil.
func Example() {
	iss := issuertest.New(nil, issuertest.Options{Audiences: []string{"orders-api"}})
	defer iss.Stop()
	svc := httptest.NewServer(ordersHandler(iss))
	defer svc.Close()

	call := func(token string) int {
		req, _ := http.NewRequest(http.MethodGet, svc.URL+"/orders", nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return 0
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	good := iss.Mint(nil, issuertest.Identity{ClientID: "shop.billing", Permissions: []string{"orders:read"}})
	fmt.Println("minted:", call(good))
	fmt.Println("forged:", call(iss.Forge(nil, issuertest.Identity{})))
	iss.Revoke(nil, good)
	fmt.Println("revoked:", call(good))
	// Output:
	// minted: 200
	// forged: 401
	// revoked: 401
}

// A service's fallback is tested by taking the issuer away and back.
func ExampleIssuer_Stop() {
	iss := issuertest.New(nil, issuertest.Options{})
	iss.SetUnavailable(true) // every endpoint answers 503 with Retry-After
	resp, _ := http.Get(iss.JWKSURL())
	resp.Body.Close()
	fmt.Println(resp.StatusCode)
	iss.SetUnavailable(false)

	iss.Stop() // connections are refused
	_, err := http.Get(iss.JWKSURL())
	fmt.Println(err != nil)
	iss.Restart(nil) // same address, keys and clients
	defer iss.Stop()
	resp, _ = http.Get(iss.JWKSURL())
	resp.Body.Close()
	fmt.Println(resp.StatusCode)
	// Output:
	// 503
	// true
	// 200
}
