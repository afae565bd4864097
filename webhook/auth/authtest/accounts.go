package authtest

import (
	"fmt"
	"time"

	"k8s.io/apimachinery/pkg/types"

	"github.com/authframework/authframework/internal/credentials"
	"github.com/authframework/authframework/webhook/auth"
)

// AddBenchAccounts adds n more accounts of BenchStore's policy (namespace
// "bench", client ids bench.client-0 ... bench.client-<n-1>), each with a
// verifier and two roles, so load tools measure /validate with a store the
// size of a real fleet. BenchStore's own client is left as it is.
func AddBenchAccounts(st *auth.Store, n int) {
	created := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range n {
		key := types.NamespacedName{Namespace: "bench", Name: fmt.Sprintf("client-%d", i)}
		uid := types.UID(fmt.Sprintf("bench-client-uid-%d", i))
		st.SetVerifier(key, uid, &credentials.Verifier{Current: credentials.Hash(fmt.Sprintf("bench-secret-%d", i))})
		st.SetAccount(auth.Account{Key: key, UID: uid, Created: created, ClientID: fmt.Sprintf("bench.client-%d", i), Policy: "orders",
			Roles: []string{"reader", "writer"}, Permissions: []string{"orders:read", "orders:write"}})
	}
}
