package auth

import (
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	authv1alpha1 "github.com/authframework/authframework/api/v1alpha1"
	"github.com/authframework/authframework/internal/keys"
)

// TestCacheValidityPerDependency: a cached /validate result is dropped only
// when something it depends on changes. 1,000 other accounts whose status
// changes all the time (conditions, token Secret re-mints, as the informer
// delivers them) and whose specs change leave a steady client's hit rate at
// 99% or more; each of its own dependencies, changed, does take effect at
// once.
func TestCacheValidityPerDependency(t *testing.T) {
	f := newFixture(t)
	feed := &Feed{store: f.store}
	account := func(i int) *authv1alpha1.ServiceAccount {
		sa := &authv1alpha1.ServiceAccount{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: fmt.Sprintf("other-%d", i), UID: types.UID(fmt.Sprintf("uid-%d", i))},
			Spec:       authv1alpha1.ServiceAccountSpec{TokenPolicyRef: authv1alpha1.LocalRef{Name: "orders"}, Roles: []string{"orders-reader"}},
		}
		sa.Status.ClientID = sa.EffectiveClientID()
		sa.Status.Roles, sa.Status.Permissions = []string{"orders-reader"}, []string{"orders:read"}
		return sa
	}
	others := make([]*authv1alpha1.ServiceAccount, 1000)
	for i := range others {
		others[i] = account(i)
		feed.setAccount(others[i])
	}
	tok := f.token(nil)
	hits := func() float64 { return testutil.ToFloat64(f.server.metrics.cacheHits) }
	misses := func() float64 { return testutil.ToFloat64(f.server.metrics.cacheMisses) }
	h0, m0 := hits(), misses()
	for round := range 10 {
		for i, sa := range others {
			// Status-only: the token Secret re-minted, conditions moved.
			sa.Status.TokenRefreshAt = &metav1.Time{Time: epoch.Add(time.Duration(round*1000+i) * time.Second)}
			sa.Status.Conditions = []metav1.Condition{{Type: "Ready", Status: metav1.ConditionTrue, Reason: fmt.Sprint("r", round)}}
			feed.setAccount(sa)
			// Every tenth: another account's spec changes.
			if i%10 == 0 {
				sa.Spec.Disabled = !sa.Spec.Disabled
				feed.setAccount(sa)
			}
			if w := f.do("GET", "/validate", nil, bearerHdr(tok)); w.Code != 200 {
				t.Fatalf("round %d, account %d: %d", round, i, w.Code)
			}
		}
	}
	h, m := hits()-h0, misses()-m0
	if rate := h / (h + m); rate < 0.99 {
		t.Errorf("hit rate %.4f (%v hits, %v misses) under 1,000 accounts' churn, want >= 0.99", rate, h, m)
	} else {
		t.Logf("hit rate %.4f (%v hits, %v misses)", rate, h, m)
	}

	// Each dependency of the entry, changed, is a miss (the entry is
	// dropped) and its effect is seen at once.
	miss := func(what string, change func(), wantCode int) {
		t.Helper()
		f.do("GET", "/validate", nil, bearerHdr(tok)) // cached again
		before := misses()
		change()
		w := f.do("GET", "/validate?permission=orders:read", nil, bearerHdr(tok))
		if misses()-before != 1 {
			t.Errorf("%s: the cached entry was not dropped", what)
		}
		if w.Code != wantCode {
			t.Errorf("%s: %d, want %d", what, w.Code, wantCode)
		}
	}
	pol := types.NamespacedName{Namespace: ns, Name: "orders"}
	miss("the policy's keys", func() { f.store.SetKeys(pol, "", []keys.Key{f.key}) }, 200)
	miss("the account's spec", func() { f.updateAccount(func(a *Account) { a.Extra = map[string]string{"team": "billing"} }) }, 200)
	miss("the account's roles", func() {
		f.updateAccount(func(a *Account) { a.Roles, a.Permissions = []string{"inventory-reader"}, []string{"inventory:read"} })
	}, 403)
	// Revocations are checked on every request, cached or not.
	f.store.SetRevoked(map[string]time.Time{RevocationKey(pol, introspectJTI(t, f, tok)): epoch.Add(time.Hour)}, nil)
	if w := f.do("GET", "/validate", nil, bearerHdr(tok)); w.Code != 401 || w.Header().Get(HeaderAuthError) != "token_revoked" {
		t.Errorf("a revocation: %d %s", w.Code, w.Header().Get(HeaderAuthError))
	}
}
