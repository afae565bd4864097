// Command localcluster is what `make run` runs: a local control plane (etcd and
// kube-apiserver from bin/, started by envtest) with the CRDs installed and the
// samples applied, and the manager in the foreground. SIGINT or SIGTERM stops
// every process it started.
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/envtest"

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
}

func main() {
	var o options
	flag.StringVar(&o.binDir, "bin-dir", "bin/k8s/1.37.2-linux-amd64", "Directory with etcd, kube-apiserver and kubectl.")
	flag.StringVar(&o.manager, "manager", "bin/authframework", "The authframework binary.")
	flag.StringVar(&o.stateDir, "state-dir", "bin/run", "Where the kubeconfig is written.")
	flag.StringVar(&o.repoRoot, "repo", ".", "Repository root (for config/).")
	flag.StringVar(&o.kcm, "kube-controller-manager", "", "kube-controller-manager binary; when set, its garbage collector runs so owner references work as in a cluster.")
	flag.IntVar(&o.metricsPort, "metrics-port", 8080, "Manager metrics port on 127.0.0.1.")
	flag.IntVar(&o.probePort, "probe-port", 8081, "Manager health probe port on 127.0.0.1.")
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

	env := &envtest.Environment{
		BinaryAssetsDirectory: o.binDir,
		CRDDirectoryPaths:     []string{filepath.Join(o.repoRoot, "config", "crd", "bases")},
		ErrorIfCRDPathMissing: true,
	}
	say("starting etcd and kube-apiserver from %s", o.binDir)
	if _, err := env.Start(); err != nil {
		// Start can fail after the processes are up; stop what did start.
		_ = env.Stop()
		return fmt.Errorf("starting the control plane: %w", err)
	}
	defer func() {
		say("stopping etcd and kube-apiserver")
		if err := env.Stop(); err != nil {
			say("stopping the control plane: %v", err)
		}
		_ = os.Remove(kubeconfig)
	}()

	user, err := env.AddUser(envtest.User{Name: "local-admin", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		return fmt.Errorf("creating the admin user: %w", err)
	}
	kc, err := user.KubeConfig()
	if err != nil {
		return err
	}
	if err := os.WriteFile(kubeconfig, kc, 0o600); err != nil {
		return err
	}

	if o.kcm != "" {
		stopGC, err := testenv.StartGarbageCollector(o.kcm, kubeconfig, io.Discard)
		if err != nil {
			return err
		}
		defer func() {
			say("stopping the garbage collector")
			stopGC()
		}()
	}

	say("applying the samples")
	if out, err := exec.CommandContext(ctx, kubectl, "--kubeconfig", kubeconfig, "apply", "-f", filepath.Join(o.repoRoot, "config", "samples")).CombinedOutput(); err != nil {
		return fmt.Errorf("kubectl apply -f config/samples: %w\n%s", err, out)
	}

	mgr := exec.Command(o.manager, "manager",
		"--kubeconfig", kubeconfig,
		"--leader-election-namespace", "default",
		"--metrics-bind-address", "127.0.0.1:"+strconv.Itoa(o.metricsPort),
		"--health-probe-bind-address", "127.0.0.1:"+strconv.Itoa(o.probePort),
		"--log-format", "console",
	)
	mgr.Stdout, mgr.Stderr = os.Stdout, os.Stderr
	// The manager dies with us even if we are killed without a chance to
	// stop it.
	mgr.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	if err := mgr.Start(); err != nil {
		return fmt.Errorf("starting the manager: %w", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- mgr.Wait() }()

	ready := fmt.Sprintf("http://127.0.0.1:%d/readyz", o.probePort)
	if err := waitReady(ctx, ready, exited); err != nil {
		stopManager(mgr, exited)
		return err
	}
	say("serving after %s; kubeconfig %s", time.Since(start).Round(100*time.Millisecond), kubeconfig)
	fmt.Printf(`
Try:
  export KUBECONFIG=%[1]s
  %[2]s get authframework
  %[2]s get tokenpolicies -o wide
  %[2]s get secret orders-platform-signing-keys
  %[2]s explain tokenpolicies.spec.rotation

Rotate the sample policy's signing key now (the new key is published at once
and signs after the 1h pre-publish lead), then look at its keys:
  %[2]s annotate tokenpolicy orders-platform auth.authframework.dev/rotate="$(date +%%s)" --overwrite
  %[2]s get tokenpolicy orders-platform -o jsonpath='{range .status.keys[*]}{.kid}{"\t"}{.state}{"\t"}{.activatesAt}{"\n"}{end}'
  %[2]s get events --field-selector involvedObject.name=orders-platform
  curl -s http://127.0.0.1:%[3]d/metrics | head
  curl -s %[4]s

Ctrl-C stops the manager, kube-apiserver and etcd.
`, kubeconfig, kubectl, o.metricsPort, ready)

	select {
	case <-ctx.Done():
		say("stopping the manager")
		stopManager(mgr, exited)
		return nil
	case err := <-exited:
		return fmt.Errorf("the manager exited: %v", err)
	}
}

// waitReady polls the manager's readiness endpoint until it answers 200, the
// manager exits, or ctx ends.
func waitReady(ctx context.Context, url string, exited <-chan error) error {
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(60 * time.Second)
	for {
		select {
		case <-ctx.Done():
			return errors.New("interrupted before the manager was ready")
		case err := <-exited:
			return fmt.Errorf("the manager exited before it was ready: %v", err)
		case <-deadline:
			return fmt.Errorf("the manager was not ready at %s within 60s", url)
		case <-tick.C:
			resp, err := http.Get(url)
			if err != nil {
				continue
			}
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
	}
}

// stopManager asks the manager to shut down and kills it if it does not within
// its graceful shutdown time.
func stopManager(mgr *exec.Cmd, exited <-chan error) {
	_ = mgr.Process.Signal(syscall.SIGTERM)
	select {
	case <-exited:
	case <-time.After(35 * time.Second):
		_ = mgr.Process.Kill()
		<-exited
	}
}

func say(format string, args ...any) {
	var b bytes.Buffer
	fmt.Fprintf(&b, "==> "+format+"\n", args...)
	os.Stdout.Write(b.Bytes())
}
