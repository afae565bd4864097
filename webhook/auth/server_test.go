package auth

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-logr/logr"
	"github.com/go-logr/zapr"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"k8s.io/apimachinery/pkg/types"
	clocktesting "k8s.io/utils/clock/testing"

	"github.com/authframework/authframework/internal/credentials"
	"github.com/authframework/authframework/internal/keys"
)

var epoch = time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)

type fixture struct {
	t      testing.TB
	clock  *clocktesting.FakeClock
	store  *Store
	server *Server
	key    keys.Key
	logs   *bytes.Buffer
	revs   revocationsMap
}

const (
	ns         = "team"
	secret     = "s3cret-of-billing-0123456789abcdefghijklmnopq"
	oldSec     = "old-secret-of-billing-0123456789abcdefghijklm"
	clientID   = "team.billing"
	accountUID = "5b8e2a61-1111-4c9f-8d6e-billing-v1"
)

func testLogger(buf *bytes.Buffer) logr.Logger {
	core := zapcore.NewCore(zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig()), zapcore.AddSync(buf), zapcore.DebugLevel)
	return zapr.NewLogger(zap.New(core))
}

func newFixture(t testing.TB) *fixture {
	t.Helper()
	clk := clocktesting.NewFakeClock(epoch)
	k, err := keys.Generate(jose.ES256, 0, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	st := NewStore(clk)
	pol := types.NamespacedName{Namespace: ns, Name: "orders"}
	st.SetKeys(pol, "", []keys.Key{k})
	st.SetPolicy(PolicySource{Policy: Policy{Key: pol, Issuer: "https://auth.example.com/issuers/team/orders", Audiences: []string{"orders-api", "inventory-api"},
		Algorithm: jose.ES256, TTL: 15 * time.Minute, Skew: 30 * time.Second, PrePublish: time.Hour, ActiveKey: k.ID,
		RequestsPerSecond: 100, Burst: 100}, PublishedKids: []string{k.ID}})
	acct := types.NamespacedName{Namespace: ns, Name: "billing"}
	st.SetVerifier(acct, accountUID, &credentials.Verifier{Current: credentials.Hash(secret), Previous: credentials.Hash(oldSec), PreviousExpiresAt: epoch.Add(time.Hour)})
	st.SetAccount(Account{Key: acct, UID: accountUID, ClientID: clientID, Policy: "orders", Roles: []string{"orders-reader"}, Permissions: []string{"orders:*", "inventory:read"}})
	st.SetReady()
	logs := &bytes.Buffer{}
	revs := revocationsMap{}
	srv := NewServer(st, Options{Clock: clk, Log: testLogger(logs), Audit: testLogger(logs), CacheSize: 1000, Revocations: revs})
	return &fixture{t: t, clock: clk, store: st, server: srv, key: k, logs: logs, revs: revs}
}

// revocationsMap is an in-memory Revocations for handler tests.
type revocationsMap map[string]time.Time

func (m revocationsMap) Revoke(_ context.Context, jti string, exp time.Time) error {
	m[jti] = exp
	return nil
}

func (f *fixture) do(method, target string, body url.Values, hdr map[string]string) *httptest.ResponseRecorder {
	var r io.Reader
	if body != nil {
		r = strings.NewReader(body.Encode())
	}
	req := httptest.NewRequest(method, target, r)
	if body != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	w := httptest.NewRecorder()
	f.server.ServeHTTP(w, req)
	return w
}

func basic(id, sec string) map[string]string {
	req := httptest.NewRequest("GET", "/", nil)
	req.SetBasicAuth(url.QueryEscape(id), url.QueryEscape(sec))
	return map[string]string{"Authorization": req.Header.Get("Authorization")}
}

func (f *fixture) token(extra url.Values) string {
	f.t.Helper()
	form := url.Values{"grant_type": {"client_credentials"}}
	for k, v := range extra {
		form[k] = v
	}
	w := f.do("POST", "/token", form, basic(clientID, secret))
	if w.Code != 200 {
		f.t.Fatalf("token: %d %s", w.Code, w.Body)
	}
	var tr tokenResponse
	_ = json.Unmarshal(w.Body.Bytes(), &tr)
	return tr.AccessToken
}

func bearerHdr(tok string) map[string]string {
	return map[string]string{"Authorization": "Bearer " + tok}
}

func httptestDo(h http.Handler, method, target string) *httptest.ResponseRecorder {
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest(method, target, nil))
	return w
}
