package authtest

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/go-logr/logr"
	"k8s.io/utils/clock"

	"github.com/authframework/authframework/webhook/auth"
)

// TestBenchStoreServes: the load tools measure a token /validate accepts.
func TestBenchStoreServes(t *testing.T) {
	st, _, tok, err := BenchStore(clock.RealClock{}, "https://auth.example.com/issuers/bench/orders")
	if err != nil {
		t.Fatal(err)
	}
	req := httptest.NewRequest(http.MethodGet, "/validate?aud=orders-api&permission=orders:read", nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	w := httptest.NewRecorder()
	auth.NewServer(st, auth.Options{Log: logr.Discard(), Audit: logr.Discard()}).ServeHTTP(w, req)
	if w.Code != http.StatusOK {
		t.Fatalf("/validate answered %d to the bench token: %s", w.Code, w.Body.String())
	}
}
