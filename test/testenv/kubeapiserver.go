package testenv

import (
	"bytes"
	"crypto/tls"
	"io"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/go-logr/logr"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/authframework/authframework/pkg/serverapi"
	"github.com/authframework/authframework/webhook/auth"
)

// KubeAPIServer is a control plane of its own (etcd and kube-apiserver)
// whose API server takes extra flags: the cluster whose API a test
// authenticates to with our tokens, apart from the suite's, where the
// accounts and policies live.
type KubeAPIServer struct {
	Env *envtest.Environment
	// Admin runs kubectl as a member of system:masters.
	Admin KubectlCmd
	// Anonymous runs kubectl with no credentials of its own, for
	// `--token=...`.
	Anonymous KubectlCmd
}

// StartKubeAPIServer starts a control plane whose kube-apiserver gets
// flags (name without dashes -> values) on top of envtest's, and stops it
// when t ends.
func StartKubeAPIServer(t testing.TB, flags map[string][]string) *KubeAPIServer {
	t.Helper()
	env := &envtest.Environment{BinaryAssetsDirectory: K8sBinDir()}
	apiServer := env.ControlPlane.GetAPIServer()
	args := apiServer.Configure()
	for name, values := range flags {
		args.Set(name, values...)
	}
	var log bytes.Buffer
	apiServer.Err = &syncWriter{w: &log}
	cfg, err := env.Start()
	if err != nil {
		_ = env.Stop()
		t.Fatalf("starting a kube-apiserver with %v: %v\n%s", flags, err, lastLines(log.String(), 30))
	}
	t.Cleanup(func() {
		if err := env.Stop(); err != nil {
			t.Errorf("stopping the kube-apiserver: %v", err)
		}
		if t.Failed() {
			t.Logf("the end of the log of kube-apiserver %s:\n%s", cfg.Host, lastLines(log.String(), 40))
		}
	})
	dir := t.TempDir()
	user, err := env.AddUser(envtest.User{Name: "admin", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	kc, err := user.KubeConfig()
	if err != nil {
		t.Fatal(err)
	}
	admin := filepath.Join(dir, "admin.kubeconfig")
	if err := os.WriteFile(admin, kc, 0o600); err != nil {
		t.Fatal(err)
	}
	anonymous := filepath.Join(dir, "anonymous.kubeconfig")
	WriteKubeconfig(t, anonymous, cfg.Host, cfg.CAData, nil, nil)
	return &KubeAPIServer{Env: env, Admin: KubectlCmd{Kubeconfig: admin}, Anonymous: KubectlCmd{Kubeconfig: anonymous}}
}

// syncWriter lets the API server's output be written and read at once.
type syncWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}

// lastLines is the end of a log.
func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(lines[max(len(lines)-n, 0):], "\n")
}

// WriteKubeconfig writes a kubeconfig for server, trusting caPEM and
// presenting the client certificate and key (PEM) when given.
func WriteKubeconfig(t testing.TB, path, server string, caPEM, certPEM, keyPEM []byte) {
	t.Helper()
	c := clientcmdapi.NewConfig()
	c.Clusters["c"] = &clientcmdapi.Cluster{Server: server, CertificateAuthorityData: caPEM}
	c.AuthInfos["u"] = &clientcmdapi.AuthInfo{ClientCertificateData: certPEM, ClientKeyData: keyPEM}
	c.Contexts["c"] = &clientcmdapi.Context{Cluster: "c", AuthInfo: "u"}
	c.CurrentContext = "c"
	if err := clientcmd.WriteToFile(*c, path); err != nil {
		t.Fatal(err)
	}
}

// ServeTokenReview serves the auth server's /tokenreview on a mutual-TLS
// listener of its own, as `authframework server --tokenreview-listen`
// does, until t ends, and returns the endpoint's URL.
func (a *AuthServer) ServeTokenReview(t testing.TB, certFile, keyFile, clientCAFile string) string {
	t.Helper()
	cfg, err := auth.TokenReviewTLSConfig(certFile, keyFile, clientCAFile, logr.Discard())
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(a.Handler.TokenReviewHandler())
	srv.TLS = cfg
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv.URL + serverapi.PathTokenReview
}

// ServeTLS serves the auth server's main handler over TLS with the
// certificate and key (PEM) until t ends, and returns its URL: an https
// issuer, for verifiers that fetch discovery over https only.
func (a *AuthServer) ServeTLS(t testing.TB, certPEM, keyPEM []byte) string {
	t.Helper()
	srv := httptest.NewUnstartedServer(a.Handler)
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	srv.TLS = &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{cert}}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv.URL
}
