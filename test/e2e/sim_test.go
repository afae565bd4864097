package e2e

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	clocktesting "k8s.io/utils/clock/testing"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"
	"sigs.k8s.io/yaml"

	"golang.org/x/oauth2/clientcredentials"

	authv1alpha1 "github.com/authframework/authframework/api/v1alpha1"
	"github.com/authframework/authframework/controllers"
	"github.com/authframework/authframework/test/testenv"
)

// simEnv is a simulated cluster (testenv.StartSimCluster) with a kwok node
// and the operator's manager on a fake clock; auth server processes stand in
// for the colors' pods through urls.
type simEnv struct {
	dir    string
	scheme *runtime.Scheme
	cfg    *rest.Config
	cl     client.Client
	clk    *clocktesting.FakeClock
	urls   *testenv.ColorEndpoints
}

// startSim starts it for one test, with our CRDs and crdDirs installed; it
// stops when the test ends, after the manager. The processes and the
// manager log to dir/cluster.log.
func startSim(t *testing.T, ctx context.Context, crdDirs ...string) *simEnv {
	t.Helper()
	s := &simEnv{dir: t.TempDir(), scheme: runtime.NewScheme(), clk: clocktesting.NewFakeClock(time.Now()), urls: &testenv.ColorEndpoints{}}
	utilruntime.Must(clientgoscheme.AddToScheme(s.scheme))
	utilruntime.Must(authv1alpha1.AddToScheme(s.scheme))
	utilruntime.Must(gatewayv1.Install(s.scheme))
	logFile, err := os.Create(filepath.Join(s.dir, "cluster.log"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { logFile.Close() })
	env := &envtest.Environment{CRDDirectoryPaths: append([]string{testenv.Path("config", "crd", "bases")}, crdDirs...), ErrorIfCRDPathMissing: true,
		BinaryAssetsDirectory: testenv.K8sBinDir(), Scheme: s.scheme}
	sim, err := testenv.StartSimCluster(env, testenv.SimOptions{Dir: s.dir, Log: logFile})
	if err != nil {
		t.Fatal(err)
	}
	// Registered before the manager's, so it runs after the manager stopped.
	t.Cleanup(sim.Stop)
	s.cfg = env.Config
	if s.cl, err = client.New(s.cfg, client.Options{Scheme: s.scheme}); err != nil {
		t.Fatal(err)
	}
	var node corev1.Node
	must(t, yaml.Unmarshal([]byte(testenv.FakeNode), &node))
	must(t, s.cl.Create(ctx, &node))
	ctrl.SetLogger(zap.New(zap.WriteTo(logFile)))
	testenv.RunManager(t, ctx, s.cfg, controllers.ManagerOptions{Scheme: s.scheme, Controllers: controllers.Options{Clock: s.clk, Endpoints: s.urls}})
	return s
}

// ordersAccount creates the policy "orders" (audience orders-api), the Role
// "reader" (orders:read) and the ServiceAccount "client" in ns.
func (s *simEnv) ordersAccount(t *testing.T, ctx context.Context, ns string) {
	t.Helper()
	must(t, s.cl.Create(ctx, &authv1alpha1.TokenPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "orders"},
		Spec: authv1alpha1.TokenPolicySpec{Issuer: "https://auth.example.com/orders", Audiences: []string{"orders-api"}}}))
	must(t, s.cl.Create(ctx, &authv1alpha1.Role{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "reader"}, Spec: authv1alpha1.RoleSpec{Permissions: []string{"orders:read"}}}))
	must(t, s.cl.Create(ctx, &authv1alpha1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "client"},
		Spec: authv1alpha1.ServiceAccountSpec{TokenPolicyRef: authv1alpha1.LocalRef{Name: "orders"}, Roles: []string{"reader"}}}))
}

// token gets an access token for the account "client" of ns from the
// active color of the AuthServer key.
func (s *simEnv) token(t *testing.T, ctx context.Context, key types.NamespacedName) string {
	t.Helper()
	var creds corev1.Secret
	testenv.Until(t, 2*time.Minute, "client credentials", func() bool {
		return s.cl.Get(ctx, types.NamespacedName{Namespace: key.Namespace, Name: "client-credentials"}, &creds) == nil
	})
	var tok string
	testenv.Until(t, 2*time.Minute, "a token from the active color", func() bool {
		var current authv1alpha1.AuthServer
		if s.cl.Get(ctx, key, &current) != nil {
			return false
		}
		cc := clientcredentials.Config{ClientID: string(creds.Data["client_id"]), ClientSecret: string(creds.Data["client_secret"]), TokenURL: s.urls.URL(&current, true) + "/token"}
		tk, err := cc.Token(ctx)
		if err == nil {
			tok = tk.AccessToken
		}
		return err == nil
	})
	return tok
}

// validate asks the auth server at base whether tok may read orders, as a
// proxy's sub-request; true when it answered 200.
func validate(base, tok, userAgent string) bool {
	req, _ := http.NewRequest(http.MethodGet, base+"/validate?aud=orders-api&permission=orders:read", nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	if userAgent != "" {
		req.Header.Set("User-Agent", userAgent)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}
