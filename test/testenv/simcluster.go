package testenv

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/envtest"
)

// SimCluster is a simulated cluster with nodes: envtest's etcd and
// kube-apiserver, plus kube-controller-manager (Deployments, ReplicaSets,
// EndpointSlices, HPA, garbage collection), kube-scheduler and kwok, which
// plays the kubelet of a fake node. Everything is built in bin/ from source.
type SimCluster struct {
	Env        *envtest.Environment
	Kubeconfig string
	procs      []*exec.Cmd
}

// KwokStages are the stage documents kwok needs as a bare binary, from the
// kwok module the tools module pins.
var KwokStages = []string{
	"node/fast/node-initialize.yaml", "node/heartbeat-with-lease/node-heartbeat-with-lease.yaml",
	"pod/general/pod-create.yaml", "pod/general/pod-init-container-running.yaml", "pod/general/pod-init-container-completed.yaml",
	"pod/general/pod-ready.yaml", "pod/general/pod-complete.yaml", "pod/general/pod-delete.yaml",
}

// SimOptions say where the simulated cluster's binaries are and where it
// writes.
type SimOptions struct {
	// Dir receives the kubeconfig (Dir/kubeconfig) and kwok's stages.
	Dir string
	// Log receives the output of kube-controller-manager, kube-scheduler and
	// kwok.
	Log io.Writer
	// KubeControllerManager, KubeScheduler and Kwok are the binaries; the
	// pinned ones under bin/ when empty.
	KubeControllerManager, KubeScheduler, Kwok string
	// RepoRoot is where hack/tools/k8s pins the kwok module whose stages are
	// used; this repository when empty.
	RepoRoot string
}

func (o *SimOptions) defaults() {
	if o.KubeControllerManager == "" {
		o.KubeControllerManager = KubeControllerManager()
	}
	if o.KubeScheduler == "" {
		o.KubeScheduler = KubeScheduler()
	}
	if o.Kwok == "" {
		o.Kwok = Kwok()
	}
	if o.RepoRoot == "" {
		o.RepoRoot = RepoRoot()
	}
	if o.Log == nil {
		o.Log = io.Discard
	}
}

// KubeScheduler is the kube-scheduler built for the pinned Kubernetes version.
func KubeScheduler() string { return Path("bin", "kube-scheduler-v1.37.2") }

// Kwok is the kwok built for the pinned version.
func Kwok() string { return Path("bin", "kwok-v0.8.0") }

// StartSimCluster starts the control plane and the simulated node's kwok.
// The caller creates the Node (FakeNode).
func StartSimCluster(env *envtest.Environment, o SimOptions) (*SimCluster, error) {
	o.defaults()
	for _, bin := range []string{o.KubeControllerManager, o.KubeScheduler, o.Kwok} {
		if _, err := os.Stat(bin); err != nil {
			return nil, fmt.Errorf("%s is not built (make tools): %w", bin, err)
		}
	}
	dir, logTo := o.Dir, o.Log
	if _, err := env.Start(); err != nil {
		_ = env.Stop()
		return nil, err
	}
	s := &SimCluster{Env: env}
	user, err := env.AddUser(envtest.User{Name: "sim-admin", Groups: []string{"system:masters"}}, nil)
	if err == nil {
		var kc []byte
		if kc, err = user.KubeConfig(); err == nil {
			s.Kubeconfig = filepath.Join(dir, "kubeconfig")
			err = os.WriteFile(s.Kubeconfig, kc, 0o600)
		}
	}
	if err != nil {
		s.Stop()
		return nil, err
	}
	stages, err := kwokStages(o.RepoRoot, dir)
	if err != nil {
		s.Stop()
		return nil, err
	}
	kcm, sched, kwok := o.KubeControllerManager, o.KubeScheduler, o.Kwok
	for _, cmd := range []*exec.Cmd{
		exec.Command(kcm, "--kubeconfig", s.Kubeconfig, "--leader-elect=false", "--secure-port=0",
			"--controllers=*,-serviceaccount-token,-root-ca-certificate-publisher-controller,-nodeipam",
			// On a loaded machine kwok's heartbeats can lag past the default
			// grace period; the node lifecycle controller would then mark
			// every pod unready, which tests nothing of ours.
			"--node-monitor-grace-period=10m",
			"--service-cluster-ip-range=10.0.0.0/24", "--horizontal-pod-autoscaler-sync-period=2s", "--concurrent-gc-syncs=5"),
		exec.Command(sched, "--kubeconfig", s.Kubeconfig, "--leader-elect=false", "--secure-port=0"),
		exec.Command(kwok, "--kubeconfig", s.Kubeconfig, "--manage-all-nodes=false",
			"--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake", "--config", stages),
	} {
		cmd.Stdout, cmd.Stderr = logTo, logTo
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		if err := cmd.Start(); err != nil {
			s.Stop()
			return nil, fmt.Errorf("starting %s: %w", filepath.Base(cmd.Path), err)
		}
		s.procs = append(s.procs, cmd)
	}
	return s, nil
}

// FakeNode is a Node kwok manages.
const FakeNode = `apiVersion: v1
kind: Node
metadata:
  name: fake-node
  annotations:
    kwok.x-k8s.io/node: fake
  labels:
    type: kwok
spec: {}
status:
  allocatable: {cpu: "32", memory: 256Gi, pods: "110"}
  capacity: {cpu: "32", memory: 256Gi, pods: "110"}
`

func kwokStages(repoRoot, dir string) (string, error) {
	out, err := exec.Command("go", "-C", filepath.Join(repoRoot, "hack", "tools", "k8s"), "list", "-m", "-f", "{{.Dir}}", "sigs.k8s.io/kwok").Output()
	if err != nil {
		return "", fmt.Errorf("locating the kwok module: %w", err)
	}
	root := filepath.Join(strings.TrimSpace(string(out)), "kustomize", "stage")
	var b bytes.Buffer
	for _, s := range KwokStages {
		data, err := os.ReadFile(filepath.Join(root, s))
		if err != nil {
			return "", err
		}
		b.WriteString("---\n")
		b.Write(data)
		b.WriteString("\n")
	}
	path := filepath.Join(dir, "kwok-stages.yaml")
	return path, os.WriteFile(path, b.Bytes(), 0o600)
}

// Stop ends every process.
func (s *SimCluster) Stop() {
	for _, cmd := range s.procs {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	}
	_ = s.Env.Stop()
}

// RestartableAPIServer is a kube-apiserver whose certificates live in
// certDir (created here), not in a directory envtest deletes when it stops
// the server. Give it to envtest.Environment.ControlPlane.APIServer to be
// able to StopAPIServer and StartAPIServer: the server comes back on the
// same address with the same serving and client CAs, so every kubeconfig
// written before still works.
func RestartableAPIServer(certDir string) (*envtest.APIServer, error) {
	if err := os.MkdirAll(certDir, 0o700); err != nil {
		return nil, err
	}
	return &envtest.APIServer{CertDir: certDir}, nil
}

// StopAPIServer stops kube-apiserver (SIGTERM, then waits); etcd and every
// other process keep running, as in an API server outage.
func (s *SimCluster) StopAPIServer() error {
	return s.Env.ControlPlane.APIServer.Stop()
}

// StartAPIServer starts kube-apiserver again after StopAPIServer and waits
// until it is healthy. The cluster must have been started with a
// RestartableAPIServer.
func (s *SimCluster) StartAPIServer() error {
	if s.Env.ControlPlane.APIServer.CertDir == "" {
		return fmt.Errorf("the API server's certificates were deleted when it stopped; start the cluster with a RestartableAPIServer")
	}
	return s.Env.ControlPlane.APIServer.Start()
}
