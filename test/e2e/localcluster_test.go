// Package e2e runs the built binaries the way users do. This file covers
// `make run`: the local control plane, the samples and the manager, and that
// stopping it leaves no process behind.
package e2e

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/oauth2/clientcredentials"

	"github.com/authframework/authframework/test/testenv"
)

// TestLocalCluster starts the local cluster twice (the second start proves the
// first left nothing in the way), stopping it once with SIGINT and once with
// SIGTERM.
func TestLocalCluster(t *testing.T) {
	localcluster := buildLocalCluster(t)
	stateDir := t.TempDir()
	for i, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGTERM} {
		t.Run(fmt.Sprintf("run %d stopped by %v", i+1, sig), func(t *testing.T) {
			runLocalCluster(t, localcluster, stateDir, sig)
		})
	}
}

// TestLocalClusterSim is `make run SIM=1` doing what its walk-through
// promises: the sample AuthServer comes up on the simulated node, a new
// image rolls out to green with the stand-in auth servers passing the smoke
// tests, the old color scales to zero, and an aborted rollout puts traffic
// back.
func TestLocalClusterSim(t *testing.T) {
	localcluster := buildLocalCluster(t)
	lc := startLocalCluster(t, localcluster, t.TempDir(), "--sim", "--nginx-port", "0",
		"--kube-scheduler", testenv.KubeScheduler(), "--kwok", testenv.Kwok(),
		"--blue-port", strconv.Itoa(freePort(t)), "--green-port", strconv.Itoa(freePort(t)))
	kubectl := lc.kubectl(t)
	status := func() string {
		return kubectl("get", "afserver", "auth", "-o", "jsonpath={.status.phase}/{.status.phaseReason}/{.status.activeColor}/{.status.availableReplicas}")
	}
	testenv.Until(t, 2*time.Minute, "the sample AuthServer is Stable on blue with 2 pods", func() bool { return status() == "Stable/Installed/blue/2" })
	if out := kubectl("get", "afserver", "auth"); !strings.Contains(out, "PHASE") || !strings.Contains(out, "ACTIVE") {
		t.Errorf("kubectl get afserver does not show phase and active color:\n%s", out)
	}
	// The operator bound the sample's pods to the server roles make run
	// installed: cluster-wide, as default is trusted there.
	if got := kubectl("get", "afserver", "auth", "-o", `jsonpath={.status.conditions[?(@.type=="PermissionsGranted")].reason}`); got != "Granted" {
		t.Errorf("PermissionsGranted reason %q", got)
	}
	if out := kubectl("get", "clusterrolebinding", "authframework-server:default:auth", "-o", "jsonpath={.roleRef.name}"); out != "authframework-server" {
		t.Errorf("the sample AuthServer's ClusterRoleBinding points at %q", out)
	}

	kubectl("patch", "afserver", "auth", "--type", "merge", "-p",
		`{"spec":{"image":"ghcr.io/authframework/authframework:v0.2.0","rollout":{"analysis":{"bakeTime":"3s"},"scaleDownDelay":"3s"}}}`)
	testenv.Until(t, 2*time.Minute, "the new image serves on green", func() bool { return status() == "Stable/RolloutComplete/green/2" })
	testenv.Until(t, 30*time.Second, "blue is scaled to zero", func() bool {
		return kubectl("get", "deploy", "auth-blue", "-o", "jsonpath={.spec.replicas}") == "0"
	})
	events := kubectl("get", "events", "--field-selector", "involvedObject.name=auth", "-o", "jsonpath={range .items[*]}{.reason} {end}")
	for _, want := range []string{"TemplateChanged", "PreviewAvailable", "Promoted", "AnalysisPassed", "RolloutComplete"} {
		if !strings.Contains(events, want) {
			t.Errorf("no %s event; events: %s", want, events)
		}
	}

	kubectl("patch", "afserver", "auth", "--type", "merge", "-p",
		`{"spec":{"image":"ghcr.io/authframework/authframework:v0.3.0","rollout":{"analysis":{"bakeTime":"5m"}}}}`)
	testenv.Until(t, 2*time.Minute, "v0.3.0 is analysed on blue", func() bool { return strings.HasPrefix(status(), "Analysing/Promoted/blue/") })
	kubectl("annotate", "afserver", "auth", "auth.authframework.dev/abort=e2e")
	testenv.Until(t, 30*time.Second, "the abort puts traffic back on green", func() bool { return strings.HasPrefix(status(), "RolledBack/Aborted/green/") })
	if sel := kubectl("get", "service", "auth", "-o", "jsonpath={.spec.selector.auth\\.authframework\\.dev/color}"); sel != "green" {
		t.Errorf("the active Service selects %q after the abort, want green", sel)
	}
	// etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kwok, the
	// manager and three auth servers.
	lc.stop(t, syscall.SIGINT, 9)
}

func buildLocalCluster(t *testing.T) string {
	t.Helper()
	if _, err := os.Stat(testenv.Binary()); err != nil {
		t.Fatalf("the authframework binary is not built at %s (make build): %v", testenv.Binary(), err)
	}
	localcluster := filepath.Join(t.TempDir(), "localcluster")
	build := exec.Command("go", "build", "-o", localcluster, "./hack/localcluster")
	build.Dir = testenv.RepoRoot()
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building hack/localcluster: %v\n%s", err, out)
	}
	return localcluster
}

// localCluster is a running hack/localcluster.
type localCluster struct {
	cmd                           *exec.Cmd
	exited                        chan error
	output                        *strings.Builder
	stateDir                      string
	metricsPort, probePort        int
	authPort, nginxPort, echoPort int
}

// startLocalCluster starts localcluster on free ports and waits until it says
// it is serving.
func startLocalCluster(t *testing.T, localcluster, stateDir string, extra ...string) *localCluster {
	t.Helper()
	lc := &localCluster{exited: make(chan error, 1), output: &strings.Builder{}, stateDir: stateDir,
		metricsPort: freePort(t), probePort: freePort(t), authPort: freePort(t), nginxPort: freePort(t), echoPort: freePort(t)}
	cmd := exec.Command(localcluster, append([]string{
		"--repo", testenv.RepoRoot(),
		"--bin-dir", testenv.K8sBinDir(),
		"--manager", testenv.Binary(),
		"--kube-controller-manager", testenv.KubeControllerManager(),
		"--state-dir", stateDir,
		"--metrics-port", strconv.Itoa(lc.metricsPort),
		"--probe-port", strconv.Itoa(lc.probePort),
		"--auth-port", strconv.Itoa(lc.authPort),
		"--nginx-port", strconv.Itoa(lc.nginxPort),
		"--echo-port", strconv.Itoa(lc.echoPort),
	}, extra...)...)
	lc.cmd = cmd
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = cmd.Stdout
	started := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	serving := make(chan struct{})
	var mu sync.Mutex
	go func() {
		sc := bufio.NewScanner(stdout)
		once := false
		for sc.Scan() {
			line := sc.Text()
			mu.Lock()
			lc.output.WriteString(line + "\n")
			mu.Unlock()
			if !once && strings.Contains(line, "==> serving after") {
				once = true
				close(serving)
			}
		}
		lc.exited <- cmd.Wait()
	}()
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
		}
	})
	out := func() string { mu.Lock(); defer mu.Unlock(); return lc.output.String() }
	select {
	case <-serving:
		t.Logf("make run was serving %s after start", time.Since(started).Round(100*time.Millisecond))
	case err := <-lc.exited:
		t.Fatalf("localcluster exited before serving: %v\n%s", err, out())
	case <-time.After(2 * time.Minute):
		t.Fatalf("localcluster did not serve within 2m\n%s", out())
	}
	return lc
}

// kubectl runs kubectl against the local cluster and fails the test on error.
func (lc *localCluster) kubectl(t *testing.T) func(args ...string) string {
	k := testenv.KubectlCmd{Kubeconfig: filepath.Join(lc.stateDir, "kubeconfig")}
	return func(args ...string) string {
		t.Helper()
		return k.Run(t, args...)
	}
}

// stop signals localcluster and checks that it stops cleanly, leaving no
// process and no kubeconfig behind.
func (lc *localCluster) stop(t *testing.T, sig syscall.Signal, minProcs int) {
	t.Helper()
	procs := descendants(lc.cmd.Process.Pid)
	if len(procs) < minProcs {
		t.Errorf("expected at least %d processes under localcluster, found %v", minProcs, procs)
	}
	if err := lc.cmd.Process.Signal(sig); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-lc.exited:
		if err != nil {
			t.Errorf("localcluster exited with %v after %v\n%s", err, sig, lc.output.String())
		}
	case <-time.After(90 * time.Second):
		t.Fatalf("localcluster did not stop within 90s of %v", sig)
	}
	for _, pid := range procs {
		if alive(pid) {
			t.Errorf("process %d (%s) outlived localcluster", pid, comm(pid))
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
	if _, err := os.Stat(filepath.Join(lc.stateDir, "kubeconfig")); err == nil {
		t.Errorf("the kubeconfig of a stopped cluster was left in %s", lc.stateDir)
	}
}

func runLocalCluster(t *testing.T, localcluster, stateDir string, sig syscall.Signal) {
	lc := startLocalCluster(t, localcluster, stateDir)
	metricsPort, probePort, authPort, nginxPort := lc.metricsPort, lc.probePort, lc.authPort, lc.nginxPort
	kubectl := lc.kubectl(t)
	got := kubectl("get", "authframework", "-o", "name")
	for _, want := range []string{"tokenpolicy.auth.authframework.dev/orders-platform", "serviceaccount.auth.authframework.dev/billing"} {
		if !strings.Contains(got, want) {
			t.Errorf("the samples were not applied: %s missing from\n%s", want, got)
		}
	}
	// Without nodes the sample AuthServer could never run: it is left out,
	// and the walk-through says how to see it.
	if strings.Contains(got, "authserver.auth.authframework.dev/auth") {
		t.Errorf("the sample AuthServer was applied to a control plane without nodes:\n%s", got)
	}
	// The sample policy gets a signing key, and the rotate annotation
	// publishes the next one, as the printed instructions promise.
	jsonpath := func(path string) string {
		return kubectl("get", "tokenpolicy", "orders-platform", "-o", "jsonpath="+path)
	}
	testenv.Until(t, 30*time.Second, "the sample policy has an active key", func() bool { return jsonpath("{.status.activeKeyID}") != "" })
	active := jsonpath("{.status.activeKeyID}")
	kubectl("annotate", "tokenpolicy", "orders-platform", "auth.authframework.dev/rotate=e2e", "--overwrite")
	testenv.Until(t, 30*time.Second, "the rotate annotation publishes a new key", func() bool {
		return strings.Contains(jsonpath("{.status.keys[*].state}"), "Published") && jsonpath("{.status.lastRotateRequest}") == "e2e"
	})
	if got := jsonpath("{.status.activeKeyID}"); got != active {
		t.Errorf("the active key changed at once (%s -> %s); it must wait for the pre-publish lead", active, got)
	}

	// The sample accounts come up Ready with their credentials; the batch job
	// gets its token Secret.
	testenv.Until(t, 30*time.Second, "the sample accounts are Ready", func() bool {
		out := kubectl("get", "serviceaccounts.auth.authframework.dev", "-o", "jsonpath={range .items[*]}{.metadata.name}={.status.conditions[?(@.type==\"Ready\")].status} {end}")
		return strings.Contains(out, "billing=True") && strings.Contains(out, "stock-sync=True")
	})
	secrets := kubectl("get", "secrets", "-o", "name")
	for _, want := range []string{"secret/billing-credentials", "secret/billing-client-verifier", "secret/stock-sync-token"} {
		if !strings.Contains(secrets, want) {
			t.Errorf("%s missing from\n%s", want, secrets)
		}
	}

	checkIngress(t, kubectl, authPort, nginxPort)

	// The manager holds the leader election lease and says so in its metrics.
	holder := kubectl("get", "lease", "-n", "default", "authframework-manager.auth.authframework.dev", "-o", "jsonpath={.spec.holderIdentity}")
	if holder == "" {
		t.Errorf("the leader election lease has no holder")
	}
	metrics := httpGet(t, fmt.Sprintf("http://127.0.0.1:%d/metrics", metricsPort))
	if !strings.Contains(metrics, "leader_election_master_status{name=\"authframework-manager.auth.authframework.dev\"} 1") {
		t.Errorf("metrics do not report this manager as leader:\n%.2000s", metrics)
	}
	if body := httpGet(t, fmt.Sprintf("http://127.0.0.1:%d/healthz", probePort)); body != "ok" {
		t.Errorf("/healthz answered %q", body)
	}

	// etcd, kube-apiserver, kube-controller-manager, the manager and the
	// auth server at least.
	lc.stop(t, sig, 5)
	// Read once localcluster has exited and its output is complete.
	if !strings.Contains(lc.output.String(), "make run SIM=1") {
		t.Errorf("the walk-through does not say how to run the sample AuthServer:\n%s", lc.output.String())
	}
}

// checkIngress drives the ingress path: a standard OAuth2 client gets a token
// from the auth server with the sample client's credentials, and real nginx,
// configured the way ingress-nginx configures auth-url, lets it through to
// the upstream with the identity headers, or refuses.
func checkIngress(t *testing.T, kubectl func(...string) string, authPort, nginxPort int) {
	t.Helper()
	secret := func(key string) string {
		out := kubectl("get", "secret", "billing-credentials", "-o", "jsonpath={.data."+key+"}")
		b, err := base64.StdEncoding.DecodeString(out)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	cc := clientcredentials.Config{
		ClientID: secret("client_id"), ClientSecret: secret("client_secret"),
		TokenURL:       fmt.Sprintf("http://127.0.0.1:%d/token", authPort),
		EndpointParams: url.Values{"audience": {"orders-api"}},
	}
	var tok string
	testenv.Until(t, 30*time.Second, "the auth server issues a token", func() bool {
		tk, err := cc.Token(context.Background())
		if err == nil {
			tok = tk.AccessToken
		}
		return err == nil
	})
	call := func(path, token string) (int, http.Header, string) {
		req, _ := http.NewRequest(http.MethodGet, fmt.Sprintf("http://127.0.0.1:%d%s", nginxPort, path), nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, resp.Header, string(b)
	}
	code, _, body := call("/api/orders/42", tok)
	var echo struct {
		Headers map[string]string `json:"headers"`
	}
	if code != 200 || json.Unmarshal([]byte(body), &echo) != nil {
		t.Fatalf("valid token through nginx: %d %s", code, body)
	}
	if echo.Headers["X-User-Id"] != "default.billing" || echo.Headers["X-User-Permissions"] != "orders:items:read,orders:read" || echo.Headers["X-Client-Id"] != "default.billing" {
		t.Errorf("the upstream did not get the identity headers: %v", echo.Headers)
	}
	if code, hdr, _ := call("/api/orders/42", ""); code != 401 || !strings.HasPrefix(hdr.Get("WWW-Authenticate"), "Bearer") {
		t.Errorf("no token: %d, WWW-Authenticate %q", code, hdr.Get("WWW-Authenticate"))
	}
	if code, _, _ := call("/api/orders/42", tok+"x"); code != 401 {
		t.Errorf("tampered token: %d", code)
	}
	if code, _, _ := call("/api/orders-admin/1", tok); code != 403 {
		t.Errorf("missing permission orders:write: %d, want 403", code)
	}
	if code, _, _ := call("/api/payments/1", tok); code != 401 {
		t.Errorf("token of another audience: %d, want 401", code)
	}
}

// descendants lists every process below pid, read from /proc.
func descendants(pid int) []int {
	children := map[int][]int{}
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if pp := ppid(p); pp > 0 {
			children[pp] = append(children[pp], p)
		}
	}
	var out []int
	queue := []int{pid}
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		for _, c := range children[p] {
			out = append(out, c)
			queue = append(queue, c)
		}
	}
	return out
}

// stat returns the fields of /proc/pid/stat after the command name.
func stat(pid int) []string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return nil
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return nil
	}
	return strings.Fields(s[i+1:])
}

func ppid(pid int) int {
	f := stat(pid)
	if len(f) < 2 {
		return 0
	}
	p, _ := strconv.Atoi(f[1])
	return p
}

// alive reports whether pid runs; a zombie waiting to be reaped has stopped.
func alive(pid int) bool {
	f := stat(pid)
	return len(f) > 0 && f[0] != "Z"
}

func comm(pid int) string {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
	return strings.TrimSpace(string(b))
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func httpGet(t *testing.T, url string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}
