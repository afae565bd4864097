package testenv

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	authv1alpha1 "github.com/authframework/authframework/api/v1alpha1"
	"github.com/authframework/authframework/controllers"
	"github.com/authframework/authframework/pkg/serverapi"
	"github.com/authframework/authframework/webhook/auth"
)

// pollInterval is how often Eventually checks again.
const pollInterval = 100 * time.Millisecond

// Eventually polls check until it returns nil, for up to 30 seconds, and
// otherwise fails t with what and check's last error.
func Eventually(t testing.TB, what string, check func() error) {
	t.Helper()
	EventuallyFor(t, 30*time.Second, what, check)
}

// EventuallyFor polls check every 100ms until it returns nil or d passes.
func EventuallyFor(t testing.TB, d time.Duration, what string, check func() error) {
	t.Helper()
	last := errors.New("not checked")
	err := wait.PollUntilContextTimeout(context.Background(), pollInterval, d, true, func(context.Context) (bool, error) {
		last = check()
		return last == nil, nil
	})
	if err != nil {
		t.Fatalf("%s: not within %s: %v", what, d, last)
	}
}

// Until polls cond until it holds, for up to d: EventuallyFor for a
// condition that has nothing to say when it does not hold.
func Until(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	EventuallyFor(t, d, what, func() error {
		if !cond() {
			return errors.New("does not hold")
		}
		return nil
	})
}

// UpdateWithRetry reads obj fresh, applies mutate and writes it, again while
// the write conflicts with another writer's (a controller's status update).
// Other errors, such as an admission webhook's refusal, are returned.
func UpdateWithRetry(ctx context.Context, cl client.Client, obj client.Object, mutate func()) error {
	return retry.RetryOnConflict(retry.DefaultRetry, func() error {
		if err := cl.Get(ctx, client.ObjectKeyFromObject(obj), obj); err != nil {
			return err
		}
		mutate()
		return cl.Update(ctx, obj)
	})
}

// Update is UpdateWithRetry that fails t on error.
func Update(t testing.TB, cl client.Client, obj client.Object, mutate func()) {
	t.Helper()
	if err := UpdateWithRetry(context.Background(), cl, obj, mutate); err != nil {
		t.Fatalf("updating %s: %v", obj.GetName(), err)
	}
}

// Annotate sets one annotation on the object named key with a merge patch;
// obj gives the kind and receives the result.
func Annotate(t testing.TB, cl client.Client, obj client.Object, key types.NamespacedName, name, value string) {
	t.Helper()
	obj.SetNamespace(key.Namespace)
	obj.SetName(key.Name)
	patch := fmt.Sprintf(`{"metadata":{"annotations":{%q:%q}}}`, name, value)
	if err := cl.Patch(context.Background(), obj, client.RawPatch(types.MergePatchType, []byte(patch))); err != nil {
		t.Fatalf("annotating %s: %v", key, err)
	}
}

// Poke makes a controller look at the object again, after a test stepped
// its fake clock: a real clock would have requeued it at the transition.
func Poke(t testing.TB, cl client.Client, obj client.Object, key types.NamespacedName) {
	t.Helper()
	Annotate(t, cl, obj, key, "test.authframework.dev/poke", fmt.Sprint(time.Now().UnixNano()))
}

// KubectlCmd runs the pinned kubectl against the cluster of one kubeconfig.
type KubectlCmd struct{ Kubeconfig string }

// Run runs kubectl and returns its standard output; it fails t, with both
// outputs, when kubectl fails.
func (k KubectlCmd) Run(t testing.TB, args ...string) string {
	t.Helper()
	bin := Kubectl()
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("kubectl not built at %s (run `make tools`): %v", bin, err)
	}
	cmd := exec.Command(bin, append([]string{"--kubeconfig", k.Kubeconfig}, args...)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("kubectl %s: %v\n%s%s", strings.Join(args, " "), err, stdout.String(), stderr.String())
	}
	return stdout.String()
}

// Try runs kubectl with stdin (none when empty) and returns its combined
// output and error, for tests that expect a refusal.
func (k KubectlCmd) Try(stdin string, args ...string) (string, error) {
	cmd := exec.Command(Kubectl(), append([]string{"--kubeconfig", k.Kubeconfig}, args...)...)
	if stdin != "" {
		cmd.Stdin = strings.NewReader(stdin)
	}
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// StartManager builds the operator's manager with controllers.NewManager,
// the function `authframework manager` uses, and runs it until ctx ends;
// stopped is closed once it has. Unless o says otherwise, the metrics and
// probe listeners are off and the controllers' metrics go to a registry of
// their own, so that one process can run several managers.
func StartManager(ctx context.Context, cfg *rest.Config, o controllers.ManagerOptions) (ctrls *controllers.Controllers, stopped <-chan struct{}, err error) {
	if o.MetricsAddr == "" {
		o.MetricsAddr = "0"
	}
	if o.ProbeAddr == "" {
		o.ProbeAddr = "0"
	}
	if o.Controllers.Registry == nil {
		o.Controllers.Registry = prometheus.NewRegistry()
	}
	o.SkipNameValidation = true
	mgr, ctrls, err := controllers.NewManager(ctx, cfg, o)
	if err != nil {
		return nil, nil, err
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := mgr.Start(ctx); err != nil {
			fmt.Fprintf(os.Stderr, "manager stopped: %v\n", err)
		}
	}()
	return ctrls, done, nil
}

// RunManager is StartManager for one test: it fails t when the manager
// cannot be built, and at cleanup waits until it has stopped (the test
// ends ctx).
func RunManager(t testing.TB, ctx context.Context, cfg *rest.Config, o controllers.ManagerOptions) *controllers.Controllers {
	t.Helper()
	ctrls, stopped, err := StartManager(ctx, cfg, o)
	if err != nil {
		t.Fatalf("starting the manager: %v", err)
	}
	t.Cleanup(func() { <-stopped })
	return ctrls
}

// AuthServer is an auth server serving on loopback.
type AuthServer struct {
	*auth.Process
	// URL is where it serves, http://127.0.0.1:port.
	URL string
}

// StartAuthServer starts an auth server with auth.Start, the function
// `authframework server` uses, serves it on loopback until t ends, and
// waits until it is ready (its informers have synced). Its feed and
// revocation storage run until ctx ends.
func StartAuthServer(t testing.TB, ctx context.Context, cfg *rest.Config, scheme *runtime.Scheme, o auth.ProcessOptions) *AuthServer {
	t.Helper()
	if o.Server.Log.GetSink() == nil {
		o.Server.Log = logr.Discard()
	}
	if o.Server.Audit.GetSink() == nil {
		o.Server.Audit = logr.Discard()
	}
	p, err := auth.Start(ctx, cfg, scheme, o)
	if err != nil {
		t.Fatalf("starting the auth server: %v", err)
	}
	srv := httptest.NewServer(p.Handler)
	t.Cleanup(srv.Close)
	as := &AuthServer{Process: p, URL: srv.URL}
	Eventually(t, "the auth server is ready", func() error {
		select {
		case err := <-p.FeedDone:
			t.Fatalf("the auth server's informers stopped: %v", err)
		default:
		}
		resp, err := http.Get(srv.URL + serverapi.PathReadyz)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("%s answered %d", serverapi.PathReadyz, resp.StatusCode)
		}
		return nil
	})
	return as
}

// ColorEndpoints stand in for AuthServers' Services in smoke tests and
// analysis: a test maps each color of an AuthServer to the URL of an auth
// server on loopback. It implements controllers.Endpoints.
type ColorEndpoints struct {
	mu   sync.Mutex
	urls map[string]string
}

// Set routes the color of the AuthServer as to url.
func (m *ColorEndpoints) Set(as types.NamespacedName, color authv1alpha1.Color, url string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.urls == nil {
		m.urls = map[string]string{}
	}
	m.urls[as.String()+"/"+string(color)] = url
}

// URL implements controllers.Endpoints; a color nobody set gets an address
// where nothing listens, so its checks fail.
func (m *ColorEndpoints) URL(as *authv1alpha1.AuthServer, active bool) string {
	c := as.Status.ActiveColor
	if !active {
		c = c.Other()
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if u, ok := m.urls[client.ObjectKeyFromObject(as).String()+"/"+string(c)]; ok {
		return u
	}
	return "http://127.0.0.1:1"
}

// AdminKubectl adds a system:masters user to a started envtest environment
// and returns kubectl with its kubeconfig (kept in a test temporary
// directory), for the tools that need a kubeconfig: kubectl, helm.
func AdminKubectl(t testing.TB, env *envtest.Environment, name string) KubectlCmd {
	t.Helper()
	user, err := env.AddUser(envtest.User{Name: name, Groups: []string{"system:masters"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	kc, err := user.KubeConfig()
	if err != nil {
		t.Fatal(err)
	}
	kubeconfig := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(kubeconfig, kc, 0o600); err != nil {
		t.Fatal(err)
	}
	return KubectlCmd{Kubeconfig: kubeconfig}
}
