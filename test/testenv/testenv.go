// Package testenv finds the repository and the pinned tools for tests that run
// against a real control plane. It fails loudly when a tool is missing: a
// skipped control-plane test would hide a broken setup.
package testenv

import (
	"os"
	"path/filepath"
	"runtime"
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
