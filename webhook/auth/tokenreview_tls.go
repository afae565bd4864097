package auth

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/go-logr/logr"
)

// TokenReviewTLSConfig is the mutual-TLS configuration of the /tokenreview
// listener: it serves the certificate and key of certFile and keyFile (PEM)
// and requires a client certificate signed by a CA in clientCAFile
// (tls.RequireAndVerifyClientCert), the one kube-apiserver presents from its
// webhook kubeconfig. The files are read again at the next handshake after
// any of them changes (a renewed certificate Secret), so rotation needs no
// restart; a change that does not load (a half-written file) is logged and
// the last good configuration kept. Errors: a file that cannot be read or
// parsed at start.
func TokenReviewTLSConfig(certFile, keyFile, clientCAFile string, log logr.Logger) (*tls.Config, error) {
	f := &tlsFiles{paths: [3]string{certFile, keyFile, clientCAFile}, log: log}
	if _, err := f.reload(); err != nil {
		return nil, err
	}
	return &tls.Config{MinVersion: tls.VersionTLS12, GetConfigForClient: f.configForClient}, nil
}

// tlsFiles holds the configuration read from the files and their stamps.
type tlsFiles struct {
	paths  [3]string // certificate, key, client CA
	log    logr.Logger
	mu     sync.Mutex
	stamps [3]fileStamp
	config *tls.Config
}

// fileStamp tells a changed file from an unchanged one without reading it.
type fileStamp struct {
	mod  time.Time
	size int64
}

func (f *tlsFiles) configForClient(*tls.ClientHelloInfo) (*tls.Config, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.changed() {
		if _, err := f.reloadLocked(); err != nil {
			f.log.Error(err, "reloading the tokenreview listener's certificates; serving the previous ones")
		}
	}
	return f.config, nil
}

func (f *tlsFiles) changed() bool {
	for i, p := range f.paths {
		st, err := os.Stat(p)
		if err != nil || (fileStamp{st.ModTime(), st.Size()}) != f.stamps[i] {
			return true
		}
	}
	return false
}

func (f *tlsFiles) reload() (*tls.Config, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.reloadLocked()
}

func (f *tlsFiles) reloadLocked() (*tls.Config, error) {
	var stamps [3]fileStamp
	var data [3][]byte
	for i, p := range f.paths {
		// Stat before reading: a file replaced in between is read again at
		// the next handshake.
		st, err := os.Stat(p)
		if err != nil {
			return nil, err
		}
		stamps[i] = fileStamp{st.ModTime(), st.Size()}
		if data[i], err = os.ReadFile(p); err != nil {
			return nil, err
		}
	}
	cert, err := tls.X509KeyPair(data[0], data[1])
	if err != nil {
		return nil, fmt.Errorf("tokenreview serving certificate %s, key %s: %w", f.paths[0], f.paths[1], err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(data[2]) {
		return nil, errors.New("tokenreview client CA " + f.paths[2] + ": no PEM certificate")
	}
	f.stamps = stamps
	f.config = &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{cert},
		ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: pool}
	return f.config, nil
}
