// Package authtest holds fixtures for tests and load tools of the auth
// server. Production code never imports it (TestImportRules).
package authtest

import (
	"crypto/rand"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/clock"

	"github.com/authframework/authframework/internal/credentials"
	"github.com/authframework/authframework/internal/keys"
	"github.com/authframework/authframework/pkg/serverapi"
	"github.com/authframework/authframework/webhook/auth"
)

// BenchStore returns a store with one ES256 policy and one client, and a
// token for that client, for load tests that need no cluster (hack/bench).
// The token comes from the server's own token endpoint.
func BenchStore(clk clock.PassiveClock, issuer string) (*auth.Store, keys.Key, string, error) {
	k, err := keys.Generate(jose.ES256, 0, rand.Reader)
	if err != nil {
		return nil, keys.Key{}, "", err
	}
	st := auth.NewStore(clk)
	pol := types.NamespacedName{Namespace: "bench", Name: "orders"}
	st.SetKeys(pol, "", []keys.Key{k})
	st.SetPolicy(auth.PolicySource{Policy: auth.Policy{Key: pol, Issuer: issuer, Audiences: []string{"orders-api"}, Algorithm: jose.ES256,
		TTL: time.Hour, Skew: 30 * time.Second, PrePublish: time.Hour, ActiveKey: k.ID,
		RequestsPerSecond: 1e6, Burst: 1e6}, PublishedKids: []string{k.ID}})
	acct := types.NamespacedName{Namespace: "bench", Name: "client"}
	st.SetVerifier(acct, "bench-client-uid", &credentials.Verifier{Current: credentials.Hash("bench-secret")})
	st.SetAccount(auth.Account{Key: acct, UID: "bench-client-uid", ClientID: "bench.client", Policy: "orders", Permissions: []string{"orders:read"}})
	st.SetReady()

	form := url.Values{"grant_type": {"client_credentials"}, "audience": {"orders-api"}}
	req := httptest.NewRequest(http.MethodPost, serverapi.PathToken, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth("bench.client", "bench-secret")
	w := httptest.NewRecorder()
	auth.NewServer(st, auth.Options{Clock: clk}).ServeHTTP(w, req)
	var body struct {
		AccessToken string `json:"access_token"`
	}
	if w.Code != http.StatusOK || json.Unmarshal(w.Body.Bytes(), &body) != nil || body.AccessToken == "" {
		return nil, keys.Key{}, "", fmt.Errorf("the token endpoint answered %d: %s", w.Code, w.Body.String())
	}
	return st, k, body.AccessToken, nil
}
