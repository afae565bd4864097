package auth

import (
	"crypto/tls"
	"crypto/x509"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/go-logr/logr"

	"github.com/authframework/authframework/internal/certs/certstest"
	"github.com/authframework/authframework/pkg/serverapi"
)

// TestTokenReviewTLS: only a client certificate of the configured CA gets
// through, and a renewed serving certificate is served without a restart.
func TestTokenReviewTLS(t *testing.T) {
	dir := t.TempDir()
	serverCA, clientCA, otherCA := certstest.NewCA(t, "serving-ca"), certstest.NewCA(t, "apiserver-client-ca"), certstest.NewCA(t, "someone-else")
	serving := serverCA.Serving(t)
	certFile := certstest.WriteFile(t, dir, "tls.crt", serving.CertPEM)
	keyFile := certstest.WriteFile(t, dir, "tls.key", serving.KeyPEM)
	caFile := certstest.WriteFile(t, dir, "client-ca.crt", clientCA.CertPEM)

	cfg, err := TokenReviewTLSConfig(certFile, keyFile, caFile, logr.Discard())
	if err != nil {
		t.Fatal(err)
	}
	f := reviewFixture(t)
	srv := httptest.NewUnstartedServer(f.server.TokenReviewHandler())
	srv.TLS = cfg
	srv.StartTLS()
	t.Cleanup(srv.Close)

	roots := x509.NewCertPool()
	roots.AddCert(serverCA.Cert)
	post := func(client *certstest.Pair) (*http.Response, error) {
		tc := &tls.Config{RootCAs: roots}
		if client != nil {
			c, err := tls.X509KeyPair(client.CertPEM, client.KeyPEM)
			if err != nil {
				t.Fatal(err)
			}
			// Sent whatever CAs the server asks for, so that a foreign
			// certificate reaches the server's verification.
			tc.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &c, nil }
		}
		hc := &http.Client{Transport: &http.Transport{TLSClientConfig: tc}}
		defer hc.CloseIdleConnections()
		return hc.Post(srv.URL+serverapi.PathTokenReview, "application/json", strings.NewReader(reviewBody("x", "inventory-api")))
	}

	apiServer := clientCA.Client(t, "kube-apiserver")
	resp, err := post(&apiServer)
	if err != nil {
		t.Fatalf("the API server's client certificate: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.TLS.PeerCertificates[0].SerialNumber.Cmp(certstest.Parse(t, serving.CertPEM).SerialNumber) != 0 {
		t.Errorf("status %d", resp.StatusCode)
	}
	if !strings.Contains(f.logs.String(), `"caller":"kube-apiserver"`) {
		t.Errorf("the audit line does not name the caller: %s", f.logs)
	}
	for name, client := range map[string]*certstest.Pair{"no client certificate": nil, "another CA's certificate": ptrTo(otherCA.Client(t, "kube-apiserver"))} {
		if resp, err := post(client); err == nil {
			resp.Body.Close()
			t.Errorf("%s: answered %d, want a failed handshake", name, resp.StatusCode)
		}
	}

	// A renewed certificate (a Secret volume updated in place) is served at
	// the next handshake.
	renewed := serverCA.Serving(t)
	certstest.WriteFile(t, dir, "tls.crt", renewed.CertPEM)
	certstest.WriteFile(t, dir, "tls.key", renewed.KeyPEM)
	resp, err = post(&apiServer)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.TLS.PeerCertificates[0].SerialNumber.Cmp(certstest.Parse(t, renewed.CertPEM).SerialNumber) != 0 {
		t.Error("the renewed certificate is not served")
	}
	// A file that does not load keeps the last good configuration.
	certstest.WriteFile(t, dir, "tls.key", []byte("half-written"))
	resp, err = post(&apiServer)
	if err != nil {
		t.Fatalf("a broken key file stopped the listener: %v", err)
	}
	resp.Body.Close()

	if _, err := TokenReviewTLSConfig(certFile, keyFile, caFile, logr.Discard()); err == nil {
		t.Error("a key that does not load was accepted at start")
	}

	// With allowed names, another certificate of the same CA (a kubelet's,
	// say) gets a 403 Status, not an answer about the token.
	certstest.WriteFile(t, dir, "tls.key", renewed.KeyPEM)
	f.server.opts.TokenReview.AllowedNames = []string{"kube-apiserver"}
	kubelet := clientCA.Client(t, "system:node:worker-1")
	resp, err = post(&kubelet)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden || !strings.Contains(f.logs.String(), `"event":"token_review_forbidden"`) {
		t.Errorf("a certificate not allowed by name: %d", resp.StatusCode)
	}
	if resp, err = post(&apiServer); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("the allowed name: %v %v", resp, err)
	}
	resp.Body.Close()
}

func ptrTo[T any](v T) *T { return &v }
