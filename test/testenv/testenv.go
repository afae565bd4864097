// Package testenv finds the repository and the pinned tools for tests that run
// against a real control plane. It fails loudly when a tool is missing: a
// skipped control-plane test would hide a broken setup.
package testenv

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"
)

// RepoRoot is the repository's top directory.
func RepoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

// Path joins elements onto the repository root.
func Path(elem ...string) string {
	return filepath.Join(append([]string{RepoRoot()}, elem...)...)
}

// K8sBinDir is where kube-apiserver, etcd and kubectl live: KUBEBUILDER_ASSETS
// when set (the Makefile sets it), else the setup-envtest layout under bin/.
func K8sBinDir() string {
	if dir := os.Getenv("KUBEBUILDER_ASSETS"); dir != "" {
		return dir
	}
	return Path("bin", "k8s", "1.37.2-"+runtime.GOOS+"-"+runtime.GOARCH)
}

// Kubectl is the kubectl built from source for the pinned Kubernetes version.
func Kubectl() string {
	if p := os.Getenv("AUTHFRAMEWORK_KUBECTL"); p != "" {
		return p
	}
	return filepath.Join(K8sBinDir(), "kubectl")
}

// Binary is the authframework binary under test.
func Binary() string {
	if p := os.Getenv("AUTHFRAMEWORK_BIN"); p != "" {
		return p
	}
	return Path("bin", "authframework")
}

// KubeControllerManager is the kube-controller-manager built for the pinned
// Kubernetes version. envtest has no controllers of its own; the tests run
// its garbage collector so owner references do what they do in a cluster.
func KubeControllerManager() string {
	if p := os.Getenv("AUTHFRAMEWORK_KUBE_CONTROLLER_MANAGER"); p != "" {
		return p
	}
	return Path("bin", "kube-controller-manager-v1.37.2")
}

// StartGarbageCollector runs kube-controller-manager bin with only the
// garbage collector against the cluster of kubeconfig. The returned stop
// function ends it and waits.
func StartGarbageCollector(bin, kubeconfig string, logTo io.Writer) (stop func(), err error) {
	if _, err := os.Stat(bin); err != nil {
		return nil, fmt.Errorf("kube-controller-manager not built at %s (make tools): %w", bin, err)
	}
	cmd := exec.Command(bin, "--kubeconfig", kubeconfig, "--controllers=garbagecollector",
		"--leader-elect=false", "--secure-port=0", "--concurrent-gc-syncs=5")
	cmd.Stdout, cmd.Stderr = logTo, logTo
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	return func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	}, nil
}

// Helm is the helm built for the pinned version.
func Helm() string {
	if p := os.Getenv("AUTHFRAMEWORK_HELM"); p != "" {
		return p
	}
	return Path("bin", "helm-v3.22.0")
}

// GatewayAPICRDs is the directory of the Gateway API's standard-channel
// CRDs (HTTPRoute, Gateway, GatewayClass, ...) in the sigs.k8s.io/gateway-api
// module this repository requires, for envtest's CRDDirectoryPaths.
func GatewayAPICRDs(repoRoot string) (string, error) {
	out, err := exec.Command("go", "-C", repoRoot, "list", "-m", "-f", "{{.Dir}}", "sigs.k8s.io/gateway-api").Output()
	if err != nil {
		return "", fmt.Errorf("locating the sigs.k8s.io/gateway-api module: %w", err)
	}
	dir := filepath.Join(strings.TrimSpace(string(out)), "config", "crd", "standard")
	if _, err := os.Stat(filepath.Join(dir, "gateway.networking.k8s.io_httproutes.yaml")); err != nil {
		return "", fmt.Errorf("the Gateway API CRDs: %w", err)
	}
	return dir, nil
}
