// Command localcluster is what `make run` runs: a local control plane (etcd and
// kube-apiserver from bin/, started by envtest) with the CRDs (ours and the
// Gateway API's standard channel) installed and the samples applied, and the
// manager in the foreground. With --sim (`make run SIM=1`) the control plane
// is a simulated cluster with a node (the whole kube-controller-manager,
// kube-scheduler and kwok), so the sample AuthServer's Deployments get pods
// and rollouts can be watched; two auth server processes on the host stand in
// for its blue and green pods. SIGINT or SIGTERM stops every process it
// started.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/authframework/authframework/pkg/serverapi"
	"github.com/authframework/authframework/test/testenv"
)

type options struct {
	binDir      string
	manager     string
	stateDir    string
	repoRoot    string
	metricsPort int
	probePort   int
	kcm         string
	authPort    int
	nginxPort   int
	echoPort    int
	nginx       string
	sim         bool
	scheduler   string
	kwok        string
	bluePort    int
	greenPort   int
}

func main() {
	var o options
	flag.StringVar(&o.binDir, "bin-dir", "bin/k8s/1.37.2-linux-amd64", "Directory with etcd, kube-apiserver and kubectl.")
	flag.StringVar(&o.manager, "manager", "bin/authframework", "The authframework binary.")
	flag.StringVar(&o.stateDir, "state-dir", "bin/run", "Where the kubeconfig is written.")
	flag.StringVar(&o.repoRoot, "repo", ".", "Repository root (for config/).")
	flag.StringVar(&o.kcm, "kube-controller-manager", "", "kube-controller-manager binary; when set, its garbage collector runs so owner references work as in a cluster.")
	flag.IntVar(&o.authPort, "auth-port", 8090, "Auth server port on 127.0.0.1.")
	flag.IntVar(&o.nginxPort, "nginx-port", 8088, "nginx (ingress) port on 127.0.0.1; 0 runs no nginx.")
	flag.IntVar(&o.echoPort, "echo-port", 8089, "Port of the echo upstream behind nginx on 127.0.0.1.")
	flag.StringVar(&o.nginx, "nginx", "nginx", "The nginx binary.")
	flag.IntVar(&o.metricsPort, "metrics-port", 8080, "Manager metrics port on 127.0.0.1.")
	flag.IntVar(&o.probePort, "probe-port", 8081, "Manager health probe port on 127.0.0.1.")
	flag.BoolVar(&o.sim, "sim", false, "Run a simulated cluster with a kwok node (needs --kube-controller-manager, --kube-scheduler and --kwok), so AuthServer rollouts run.")
	flag.StringVar(&o.scheduler, "kube-scheduler", "", "kube-scheduler binary (with --sim).")
	flag.StringVar(&o.kwok, "kwok", "", "kwok binary (with --sim).")
	flag.IntVar(&o.bluePort, "blue-port", 8091, "With --sim: port of the auth server standing in for the AuthServer's blue pods.")
	flag.IntVar(&o.greenPort, "green-port", 8092, "With --sim: port of the auth server standing in for the AuthServer's green pods.")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, o); err != nil {
		fmt.Fprintln(os.Stderr, "localcluster:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, o options) error {
	start := time.Now()
	for _, p := range []*string{&o.binDir, &o.manager, &o.stateDir, &o.repoRoot} {
		abs, err := filepath.Abs(*p)
		if err != nil {
			return err
		}
		*p = abs
	}
	kubectl := filepath.Join(o.binDir, "kubectl")
	kubeconfig := filepath.Join(o.stateDir, "kubeconfig")
	if err := os.MkdirAll(o.stateDir, 0o755); err != nil {
		return err
	}
	// A kubeconfig left by an earlier run points at a server that is gone.
	_ = os.Remove(kubeconfig)

	// The Gateway API's CRDs too, so AuthServers can step HTTPRoutes.
	gatewayCRDs, err := testenv.GatewayAPICRDs(o.repoRoot)
	if err != nil {
		return err
	}
	env := &envtest.Environment{
		BinaryAssetsDirectory: o.binDir,
		CRDDirectoryPaths:     []string{filepath.Join(o.repoRoot, "config", "crd", "bases"), gatewayCRDs},
		ErrorIfCRDPathMissing: true,
	}
	stopCluster, err := startCluster(ctx, o, env, kubeconfig, kubectl)
	if err != nil {
		return err
	}
	defer func() {
		stopCluster()
		_ = os.Remove(kubeconfig)
	}()

	say("applying the samples")
	samples, err := sampleFiles(o)
	if err != nil {
		return err
	}
	if out, err := exec.CommandContext(ctx, kubectl, append([]string{"--kubeconfig", kubeconfig, "apply"}, samples...)...).CombinedOutput(); err != nil {
		return fmt.Errorf("kubectl apply -f config/samples: %w\n%s", err, out)
	}

	say("installing the auth server ClusterRoles")
	if err := applyServerRoles(ctx, o, kubectl, kubeconfig); err != nil {
		return err
	}

	mgrArgs := []string{"manager",
		"--kubeconfig", kubeconfig,
		"--leader-election-namespace", "default",
		"--metrics-bind-address", "127.0.0.1:" + strconv.Itoa(o.metricsPort),
		"--health-probe-bind-address", "127.0.0.1:" + strconv.Itoa(o.probePort),
		"--log-format", "console",
		// The local control plane has no webhook configurations installed.
		"--enable-webhooks=false",
		// The samples live in default: let the sample AuthServer's pods read
		// across namespaces, as one in the operator's namespace would.
		"--server-cluster-scope-namespaces=default",
	}
	if o.sim {
		mgrArgs = append(mgrArgs, fmt.Sprintf("--dev-authserver-urls=blue=http://127.0.0.1:%d,green=http://127.0.0.1:%d", o.bluePort, o.greenPort))
	}
	mgr, err := startChild(ctx, "manager", fmt.Sprintf("http://127.0.0.1:%d/readyz", o.probePort), o.manager, mgrArgs...)
	if err != nil {
		return err
	}
	defer stopChild(mgr)
	authURL := fmt.Sprintf("http://127.0.0.1:%d", o.authPort)
	server, err := startChild(ctx, "auth server", authURL+"/readyz", o.manager, "server",
		"--kubeconfig", kubeconfig,
		"--listen", fmt.Sprintf("127.0.0.1:%d", o.authPort),
		"--revocation-namespace", "default",
		"--log-format", "console",
		// nginx runs on loopback: its X-Forwarded-For names the client, so
		// clients on other loopback addresses (127.0.0.2, ...) are
		// separate sources for the per-source limits.
		"--trusted-proxies", "127.0.0.1/32",
		// Pods' (here: kubectl's) service-account tokens for this audience
		// are exchanged for ours; the kubeconfig's admin may create
		// TokenReviews.
		"--token-exchange-audience", exchangeAudience,
	)
	if err != nil {
		return err
	}
	defer stopChild(server)
	children := []*testenv.Child{mgr, server}
	if o.sim {
		for _, stand := range []struct {
			color string
			port  int
		}{{"blue", o.bluePort}, {"green", o.greenPort}} {
			c, err := startChild(ctx, "auth server standing in for "+stand.color, fmt.Sprintf("http://127.0.0.1:%d/readyz", stand.port), o.manager, "server",
				"--kubeconfig", kubeconfig,
				"--listen", fmt.Sprintf("127.0.0.1:%d", stand.port),
				"--revocation-namespace", "default",
				"--log-format", "console", "--log-level", "error",
				"--trusted-proxies", "127.0.0.1/32",
			)
			if err != nil {
				return err
			}
			defer stopChild(c)
			children = append(children, c)
		}
	}

	ingress := ""
	if _, err := exec.LookPath(o.nginx); o.nginxPort != 0 && err != nil {
		say("nginx not found (%v); running without the ingress demo (apt-get install nginx)", err)
		o.nginxPort = 0
	}
	if o.nginxPort != 0 {
		stopEcho, err := startEcho(o.echoPort)
		if err != nil {
			return err
		}
		defer stopEcho()
		nginx, err := startNginx(ctx, o)
		if err != nil {
			return err
		}
		defer stopChild(nginx)
		children = append(children, nginx)
		ingress = fmt.Sprintf("http://127.0.0.1:%d", o.nginxPort)
	}

	say("serving after %s; kubeconfig %s", time.Since(start).Round(100*time.Millisecond), kubeconfig)
	printWalkthrough(o, kubeconfig, kubectl, authURL, ingress)

	exited := make(chan string, len(children))
	for _, c := range children {
		go func() { <-c.Exited(); exited <- c.Name }()
	}
	select {
	case <-ctx.Done():
		say("stopping")
		return nil
	case name := <-exited:
		return fmt.Errorf("the %s exited", name)
	}
}

// startCluster starts the control plane (a simulated cluster with a node
// with --sim), writes an admin kubeconfig and returns how to stop it.
func startCluster(ctx context.Context, o options, env *envtest.Environment, kubeconfig, kubectl string) (stop func(), err error) {
	if o.sim {
		say("starting a simulated cluster: etcd, kube-apiserver, kube-controller-manager, kube-scheduler and kwok")
		sim, err := testenv.StartSimCluster(env, testenv.SimOptions{Dir: o.stateDir, Log: io.Discard, RepoRoot: o.repoRoot,
			KubeControllerManager: o.kcm, KubeScheduler: o.scheduler, Kwok: o.kwok})
		if err != nil {
			return nil, fmt.Errorf("starting the simulated cluster: %w", err)
		}
		stop := func() { say("stopping the simulated cluster"); sim.Stop() }
		if sim.Kubeconfig != kubeconfig {
			stop()
			return nil, fmt.Errorf("the simulated cluster wrote its kubeconfig to %s, not %s", sim.Kubeconfig, kubeconfig)
		}
		apply := exec.CommandContext(ctx, kubectl, "--kubeconfig", kubeconfig, "apply", "-f", "-")
		apply.Stdin = strings.NewReader(testenv.FakeNode)
		if out, err := apply.CombinedOutput(); err != nil {
			stop()
			return nil, fmt.Errorf("creating the kwok node: %w\n%s", err, out)
		}
		return stop, nil
	}
	say("starting etcd and kube-apiserver from %s", o.binDir)
	if _, err := env.Start(); err != nil {
		// Start can fail after the processes are up; stop what did start.
		_ = env.Stop()
		return nil, fmt.Errorf("starting the control plane: %w", err)
	}
	stopEnv := func() {
		say("stopping etcd and kube-apiserver")
		if err := env.Stop(); err != nil {
			say("stopping the control plane: %v", err)
		}
	}
	user, err := env.AddUser(envtest.User{Name: "local-admin", Groups: []string{"system:masters"}}, nil)
	if err == nil {
		var kc []byte
		if kc, err = user.KubeConfig(); err == nil {
			err = os.WriteFile(kubeconfig, kc, 0o600)
		}
	}
	if err != nil {
		stopEnv()
		return nil, fmt.Errorf("creating the admin user: %w", err)
	}
	if o.kcm == "" {
		return stopEnv, nil
	}
	stopGC, err := testenv.StartGarbageCollector(o.kcm, kubeconfig, io.Discard)
	if err != nil {
		stopEnv()
		return nil, err
	}
	return func() {
		say("stopping the garbage collector")
		stopGC()
		stopEnv()
	}, nil
}

// exchangeAudience is the audience of the Kubernetes tokens the local auth
// server exchanges.
const exchangeAudience = "authframework"

func printWalkthrough(o options, kubeconfig, kubectl, authURL, ingress string) {
	fmt.Printf(`
Try:
  export KUBECONFIG=%[1]s
  %[2]s get authframework
  %[2]s get tokenpolicies -o wide
  %[2]s get afsa
  %[2]s explain tokenpolicies.spec.rotation

Rotate the sample policy's signing key now (the new key is published at once
and signs after the 1h pre-publish lead), then look at its keys:
  %[2]s annotate tokenpolicy orders-platform auth.authframework.dev/rotate="$(date +%%s)" --overwrite
  %[2]s get tokenpolicy orders-platform -o jsonpath='{range .status.keys[*]}{.kid}{"\t"}{.state}{"\t"}{.activatesAt}{"\n"}{end}'
  %[2]s get events --field-selector involvedObject.name=orders-platform

Get a token for the sample client "billing" from the auth server (%[3]s):
  ID=$(%[2]s get secret billing-credentials -o jsonpath='{.data.client_id}' | base64 -d)
  SECRET=$(%[2]s get secret billing-credentials -o jsonpath='{.data.client_secret}' | base64 -d)
  TOKEN=$(curl -s -u "$ID:$SECRET" -d grant_type=client_credentials -d audience=orders-api %[3]s/token | sed 's/.*"access_token":"\([^"]*\)".*/\1/')
  curl -s -H "Authorization: Bearer $TOKEN" "%[3]s/validate?aud=orders-api&permission=orders:read" -D - -o /dev/null
  curl -s %[3]s/issuers/default/orders-platform/jwks.json
`, kubeconfig, kubectl, authURL)
	if ingress != "" {
		fmt.Printf(`
Call an upstream through nginx, which asks the auth server (auth_request, as
ingress-nginx's auth-url does); the upstream echoes the identity headers:
  curl -s -H "Authorization: Bearer $TOKEN" %[1]s/api/orders/42
  curl -s -o /dev/null -w '%%{http_code}\n' %[1]s/api/orders/42                                           # 401: no token
  curl -s -o /dev/null -w '%%{http_code}\n' -H "Authorization: Bearer $TOKEN" %[1]s/api/orders-admin/1    # 403: needs orders:write
  curl -s -o /dev/null -w '%%{http_code}\n' -H "Authorization: Bearer $TOKEN" %[1]s/api/payments/1        # 401: another audience

Exchange the Kubernetes token of service account "stock-sync" for the access
token of the ServiceAccount listing it (RFC 8693), and call through nginx:
  TOKEN=$(curl -s %[2]s/token -d grant_type=%[3]s -d subject_token_type=%[4]s -d audience=orders-api -d subject_token="$(%[5]s create token stock-sync --audience=%[6]s)" | sed 's/.*"access_token":"\([^"]*\)".*/\1/')
  curl -s -H "Authorization: Bearer $TOKEN" %[1]s/api/orders/42
`, ingress, authURL, serverapi.GrantTypeTokenExchange, serverapi.TokenTypeJWT, kubectl, exchangeAudience)
	}
	if o.sim {
		fmt.Printf(`
The sample AuthServer "auth" runs on the simulated node: kwok plays its pods,
and the auth servers on 127.0.0.1:%[2]d and :%[3]d stand in for its blue and
green colors in the smoke tests and the analysis. Watch it in another terminal:
  %[1]s get afserver auth -w
  %[1]s get deploy,pods,endpointslices,hpa -l app.kubernetes.io/instance=auth
Roll out a new image (with a short bake and scale-down delay for the demo): it
goes Deploying, Verifying, Analysing (traffic on green), ScalingDown, Stable:
  %[1]s patch afserver auth --type merge -p '{"spec":{"image":"ghcr.io/authframework/authframework:v0.2.0","rollout":{"analysis":{"bakeTime":"20s"},"scaleDownDelay":"10s"}}}'
Roll out another and abort it while it is analysed; traffic returns at once:
  %[1]s patch afserver auth --type merge -p '{"spec":{"image":"ghcr.io/authframework/authframework:v0.3.0","rollout":{"analysis":{"bakeTime":"5m"}}}}'
  %[1]s annotate afserver auth auth.authframework.dev/abort="$(date +%%s)"
  %[1]s get afserver auth -o jsonpath='{.status.phase} {.status.phaseReason} {.status.activeColor}{"\n"}'
  %[1]s get events --field-selector involvedObject.name=auth
`, kubectl, o.bluePort, o.greenPort)
	}
	if !o.sim {
		fmt.Printf(`
The sample AuthServer (config/samples/%s) is not applied: this control
plane has no nodes, so its pods could never be scheduled and it would stay
Deploying. `+"`make run SIM=1`"+` runs it on a simulated node (kwok), with blue-green
rollouts you can watch. The auth server above runs on the host instead.
`, authServerSample)
	}
	fmt.Printf(`
Metrics: curl -s http://127.0.0.1:%d/metrics (manager), %s/metrics (auth server)
Ctrl-C stops everything this started.
`, o.metricsPort, authURL)
}

// startChild starts a process with its output on ours; stopChild says so
// and stops it.
func startChild(ctx context.Context, name, readyURL, bin string, args ...string) (*testenv.Child, error) {
	return testenv.StartChild(ctx, name, readyURL, os.Stdout, bin, args...)
}

func stopChild(c *testenv.Child) {
	select {
	case <-c.Exited():
		return
	default:
	}
	say("stopping the %s", c.Name)
	c.Stop()
}

func say(format string, args ...any) {
	fmt.Fprintf(os.Stdout, "==> "+format+"\n", args...)
}

// authServerSample is the sample AuthServer; only --sim applies it.
const authServerSample = "auth_v1alpha1_authserver.yaml"

// sampleFiles are the -f arguments for the samples this cluster can run:
// config/samples/*.yaml (not its subdirectories, whose kinds need CRDs this
// cluster lacks), without the AuthServer unless --sim, since a control plane
// without nodes can never run its pods.
func sampleFiles(o options) ([]string, error) {
	files, err := filepath.Glob(filepath.Join(o.repoRoot, "config", "samples", "*.yaml"))
	if err != nil || len(files) == 0 {
		return nil, fmt.Errorf("no samples in config/samples: %v", err)
	}
	var args []string
	for _, f := range files {
		if filepath.Base(f) == authServerSample && !o.sim {
			continue
		}
		args = append(args, "-f", f)
	}
	return args, nil
}

// applyServerRoles installs config/rbac/server_role.yaml with the name prefix
// config/default gives it, so the manager can bind the sample AuthServer's
// pods as it would in a cluster.
func applyServerRoles(ctx context.Context, o options, kubectl, kubeconfig string) error {
	f, err := os.Open(filepath.Join(o.repoRoot, "config", "rbac", "server_role.yaml"))
	if err != nil {
		return err
	}
	defer f.Close()
	var list unstructured.UnstructuredList
	dec := utilyaml.NewYAMLOrJSONDecoder(f, 4096)
	for {
		var u unstructured.Unstructured
		if err := dec.Decode(&u.Object); err == io.EOF {
			break
		} else if err != nil {
			return fmt.Errorf("config/rbac/server_role.yaml: %w", err)
		}
		u.SetName("authframework-" + u.GetName())
		list.Items = append(list.Items, u)
	}
	list.SetAPIVersion("v1")
	list.SetKind("List")
	body, err := list.MarshalJSON()
	if err != nil {
		return err
	}
	cmd := exec.CommandContext(ctx, kubectl, "--kubeconfig", kubeconfig, "apply", "-f", "-")
	cmd.Stdin = strings.NewReader(string(body))
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("applying the server ClusterRoles: %w\n%s", err, out)
	}
	return nil
}
