package auth

import (
	"crypto/rand"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/clock"

	"github.com/authframework/authframework/internal/credentials"
	"github.com/authframework/authframework/internal/keys"
)

// BenchStore returns a store with one ES256 policy and one client, and a
// token for that client, for load tests that need no cluster (hack/bench).
func BenchStore(clk clock.PassiveClock, issuer string) (*Store, keys.Key, string, error) {
	k, err := keys.Generate(jose.ES256, 0, rand.Reader)
	if err != nil {
		return nil, keys.Key{}, "", err
	}
	st := NewStore(clk)
	pol := types.NamespacedName{Namespace: "bench", Name: "orders"}
	st.SetKeys(pol, "", []keys.Key{k})
	st.SetPolicy(PolicySource{Policy: Policy{Key: pol, Issuer: issuer, Audiences: []string{"orders-api"}, Algorithm: jose.ES256,
		TTL: time.Hour, Skew: 30 * time.Second, PrePublish: time.Hour, ActiveKey: k.ID,
		RequestsPerSecond: 1e6, Burst: 1e6}, PublishedKids: []string{k.ID}})
	acct := types.NamespacedName{Namespace: "bench", Name: "client"}
	st.SetVerifier(acct, "bench-client-uid", &credentials.Verifier{Current: credentials.Hash("bench-secret")})
	st.SetAccount(Account{Key: acct, UID: "bench-client-uid", ClientID: "bench.client", Policy: "orders", Permissions: []string{"orders:read"}})
	st.SetReady()
	s := NewServer(st, Options{Clock: clk})
	a, p, _ := st.Client("bench.client")
	raw, _, err := s.issue(a, p, "orders-api", a.Permissions)
	return st, k, raw, err
}
