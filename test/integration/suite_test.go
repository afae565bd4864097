// Package integration tests the API and the controllers against a real
// kube-apiserver and etcd started by envtest.
package integration

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/rest"
	clocktesting "k8s.io/utils/clock/testing"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"

	authv1alpha1 "github.com/authframework/authframework/api/v1alpha1"
	"github.com/authframework/authframework/config/crd"
	"github.com/authframework/authframework/controllers"
	"github.com/authframework/authframework/internal/certs"
	"github.com/authframework/authframework/test/testenv"
)

var (
	cfg       *rest.Config
	k8sClient client.Client
	testEnv   *envtest.Environment
	scheme    = runtime.NewScheme()
	// fakeClock is the controllers' clock; tests step it past schedule times.
	fakeClock = clocktesting.NewFakeClock(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	ctrls     *controllers.Controllers
	// certClock decides webhook certificate renewals. It starts at the real
	// time because the API server checks certificates against its own clock.
	certClock = clocktesting.NewFakeClock(time.Now())
	// colorEndpoints stands in for the AuthServer's Services: tests map each
	// color to a real auth server process on loopback.
	colorEndpoints = &testenv.ColorEndpoints{}
	// kubectl runs kubectl with system:masters rights on the test apiserver.
	kubectl testenv.KubectlCmd
)

func TestMain(m *testing.M) {
	os.Exit(runSuite(m))
}

func runSuite(m *testing.M) int {
	ctrl.SetLogger(zap.New(zap.UseDevMode(true), zap.WriteTo(os.Stderr)))
	utilruntime.Must(clientgoscheme.AddToScheme(scheme))
	utilruntime.Must(authv1alpha1.AddToScheme(scheme))
	utilruntime.Must(apiextensionsv1.AddToScheme(scheme))
	utilruntime.Must(gatewayv1.Install(scheme))

	// The CRDs as users' tests install them: from the embedded package;
	// the Gateway API's from its module.
	crds, err := crd.CustomResourceDefinitions()
	if err != nil {
		fmt.Fprintf(os.Stderr, "decoding the embedded CRDs: %v\n", err)
		return 1
	}
	gatewayCRDs, err := testenv.GatewayAPICRDs(testenv.RepoRoot())
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	testEnv = &envtest.Environment{
		CRDs:                  crds,
		CRDDirectoryPaths:     []string{gatewayCRDs},
		ErrorIfCRDPathMissing: true,
		BinaryAssetsDirectory: testenv.K8sBinDir(),
		Scheme:                scheme,
		WebhookInstallOptions: envtest.WebhookInstallOptions{Paths: []string{testenv.Path("config", "webhook", "manifests.yaml")}},
	}
	cfg, err = testEnv.Start()
	if err != nil {
		// Start may fail after etcd and kube-apiserver are up (for example
		// when a CRD is refused); stop them so no process outlives the test.
		_ = testEnv.Stop()
		fmt.Fprintf(os.Stderr, "starting envtest (binaries in %s; run `make tools`): %v\n", testenv.K8sBinDir(), err)
		return 1
	}
	defer func() {
		if err := testEnv.Stop(); err != nil {
			fmt.Fprintf(os.Stderr, "stopping envtest: %v\n", err)
		}
	}()

	k8sClient, err = client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		fmt.Fprintf(os.Stderr, "creating client: %v\n", err)
		return 1
	}

	if err := createServerRoles(context.Background()); err != nil {
		fmt.Fprintf(os.Stderr, "creating the server ClusterRoles: %v\n", err)
		return 1
	}

	user, err := testEnv.AddUser(envtest.User{Name: "integration-admin", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		fmt.Fprintf(os.Stderr, "adding kubectl user: %v\n", err)
		return 1
	}
	kc, err := user.KubeConfig()
	if err != nil {
		fmt.Fprintf(os.Stderr, "writing kubeconfig: %v\n", err)
		return 1
	}
	dir, err := os.MkdirTemp("", "authframework-integration-")
	if err != nil {
		fmt.Fprintf(os.Stderr, "temp dir: %v\n", err)
		return 1
	}
	defer os.RemoveAll(dir)
	kubeconfig := filepath.Join(dir, "kubeconfig")
	kubectl = testenv.KubectlCmd{Kubeconfig: kubeconfig}
	if err := os.WriteFile(kubeconfig, kc, 0o600); err != nil {
		fmt.Fprintf(os.Stderr, "writing kubeconfig: %v\n", err)
		return 1
	}
	gcLog, err := os.Create(filepath.Join(dir, "kube-controller-manager.log"))
	if err != nil {
		fmt.Fprintf(os.Stderr, "gc log: %v\n", err)
		return 1
	}
	defer gcLog.Close()
	stopGC, err := testenv.StartGarbageCollector(testenv.KubeControllerManager(), kubeconfig, gcLog)
	if err != nil {
		fmt.Fprintf(os.Stderr, "starting the garbage collector: %v\n", err)
		return 1
	}
	defer stopGC()

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stopped, err := startManager(ctx)
	if err != nil {
		fmt.Fprintf(os.Stderr, "starting the manager: %v\n", err)
		return 1
	}
	if err := waitForWebhooks(ctx); err != nil {
		fmt.Fprintf(os.Stderr, "the admission webhooks do not answer: %v\n", err)
		return 1
	}
	code := m.Run()
	cancel()
	<-stopped
	return code
}

// trustedNamespace is where AuthServers may read every namespace, as the
// operator's own namespace is in a cluster.
const trustedNamespace = "authframework-trusted"

// startManager runs the operator's manager, built as main builds it, on the
// fake clock, with its webhooks on envtest's serving address.
func startManager(ctx context.Context) (<-chan struct{}, error) {
	wh := &testEnv.WebhookInstallOptions
	var stopped <-chan struct{}
	var err error
	ctrls, stopped, err = testenv.StartManager(ctx, cfg, controllers.ManagerOptions{
		Scheme: scheme,
		Controllers: controllers.Options{Clock: fakeClock, MaxConcurrentReconciles: controllers.DefaultMaxConcurrentReconciles, Endpoints: colorEndpoints,
			ServerRBAC: controllers.ServerRBAC{ReadClusterRole: "authframework-server", RevocationsClusterRole: "authframework-server-revocations",
				TokenReviewClusterRole: "authframework-server-tokenreview", ClusterScopeNamespaces: []string{trustedNamespace}}},
		// The webhook server serves the certificate the operator manages
		// itself, not the one envtest generated.
		Webhooks: &controllers.WebhookOptions{Host: wh.LocalServingHost, Port: wh.LocalServingPort, CertMode: controllers.WebhookCertSelf,
			Certs: controllers.WebhookCertOptions{
				Secret:           types.NamespacedName{Namespace: "default", Name: "authframework-webhook-certs"},
				Hosts:            certs.Hosts{DNSNames: []string{"localhost"}, IPs: []net.IP{net.ParseIP(wh.LocalServingHost)}},
				ValidatingConfig: "validating-webhook-configuration",
				MutatingConfig:   "mutating-webhook-configuration",
				Clock:            certClock,
			}},
	})
	return stopped, err
}

// newNamespace creates a namespace of its own for one test and deletes it
// afterwards, so tests do not see each other's objects.
func newNamespace(t *testing.T) string {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "it-"}}
	if err := k8sClient.Create(context.Background(), ns); err != nil {
		t.Fatalf("creating namespace: %v", err)
	}
	t.Cleanup(func() { _ = k8sClient.Delete(context.Background(), ns) })
	return ns.Name
}

func keyOf(name string) client.ObjectKey { return client.ObjectKey{Name: name} }

// decodeTyped turns YAML into a typed object of the suite's scheme.
func decodeTyped(b []byte) (client.Object, error) {
	obj, _, err := serializer.NewCodecFactory(scheme).UniversalDeserializer().Decode(b, nil, nil)
	if err != nil {
		return nil, err
	}
	return obj.(client.Object), nil
}

// waitForWebhooks waits until the API server reaches the webhooks: the
// manager first issues their certificate and injects its CA, and a test
// that creates an object before that fails on the call, not on its subject.
func waitForWebhooks(ctx context.Context) error {
	probe := &authv1alpha1.TokenPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "webhook-probe"},
		Spec: authv1alpha1.TokenPolicySpec{Issuer: "https://auth.example.com/probe", Audiences: []string{"probe"}}}
	var last error
	err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		last = k8sClient.Create(ctx, probe.DeepCopy(), client.DryRunAll)
		return last == nil, nil
	})
	if err != nil {
		return fmt.Errorf("%w: %v", err, last)
	}
	return nil
}
