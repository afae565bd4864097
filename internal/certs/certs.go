// Package certs issues and renews the webhook serving certificates the
// operator manages itself: a CA and a serving certificate it signs, renewed
// at two thirds of their lifetime. Decisions are pure functions of the
// current PEM data and the time.
package certs

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"slices"
	"sync/atomic"
	"time"
)

// Lifetimes of what Issue creates.
const (
	CALifetime      = 10 * 365 * 24 * time.Hour
	ServingLifetime = 365 * 24 * time.Hour
	// backdate allows for clocks behind ours.
	backdate = time.Hour
)

// Bundle is the PEM data kept in the certificate Secret.
type Bundle struct {
	CACert, CAKey, Cert, Key []byte
	// PreviousCA is the CA before the last CA renewal, kept in the CA bundle
	// until the serving certificate it signed is gone, so clients trust both
	// during the change.
	PreviousCA []byte
}

// Hosts are the names the serving certificate must cover.
type Hosts struct {
	DNSNames []string
	IPs      []net.IP
}

// Decision says what to renew and when to look again.
type Decision struct {
	NewCA, NewServing bool
	Next              time.Time
}

// Plan decides renewals: a missing, unparsable or due CA renews both; a
// serving certificate that is missing, due, not signed by the CA or not for
// these hosts is renewed. Next is the earliest renewal time after that.
func Plan(b Bundle, hosts Hosts, now time.Time) Decision {
	now = now.Truncate(time.Second)
	ca, caErr := parseCert(b.CACert)
	if caErr != nil || !now.Before(RenewAt(ca)) || !keyMatches(ca, b.CAKey) {
		return Decision{NewCA: true, NewServing: true, Next: now.Add(ServingLifetime * 2 / 3)}
	}
	d := Decision{Next: RenewAt(ca)}
	cert, err := parseCert(b.Cert)
	if err != nil || !now.Before(RenewAt(cert)) || cert.CheckSignatureFrom(ca) != nil || !covers(cert, hosts) || !keyMatches(cert, b.Key) {
		d.NewServing = true
		if at := now.Add(ServingLifetime * 2 / 3); at.Before(d.Next) {
			d.Next = at
		}
		return d
	}
	if at := RenewAt(cert); at.Before(d.Next) {
		d.Next = at
	}
	return d
}

// Apply carries out a decision and returns the new bundle.
func Apply(b Bundle, d Decision, hosts Hosts, now time.Time) (Bundle, error) {
	now = now.Truncate(time.Second)
	out := b
	if d.NewCA {
		caCert, caKey, err := newCA(now)
		if err != nil {
			return b, err
		}
		if old, err := parseCert(b.CACert); err == nil && now.Before(old.NotAfter) {
			out.PreviousCA = b.CACert
		} else {
			out.PreviousCA = nil
		}
		out.CACert, out.CAKey = caCert, caKey
	}
	if d.NewServing {
		cert, key, err := newServing(out.CACert, out.CAKey, hosts, now)
		if err != nil {
			return b, err
		}
		out.Cert, out.Key = cert, key
	}
	if !d.NewCA && out.PreviousCA != nil {
		// The previous CA can go once no serving certificate it signed is
		// in use: after a serving renewal.
		if prev, err := parseCert(out.PreviousCA); err != nil || d.NewServing || !now.Before(prev.NotAfter) {
			out.PreviousCA = nil
		}
	}
	return out, nil
}

// CABundle is what clients trust: the CA and, during a CA change, the
// previous one.
func (b Bundle) CABundle() []byte {
	return append(slices.Clone(b.CACert), b.PreviousCA...)
}

// RenewAt is two thirds into a certificate's lifetime, in whole seconds.
func RenewAt(c *x509.Certificate) time.Time {
	life := c.NotAfter.Sub(c.NotBefore)
	return c.NotBefore.Add(life * 2 / 3).Truncate(time.Second)
}

func newCA(now time.Time) (certPEM, keyPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial(), Subject: pkix.Name{CommonName: "authframework-webhook-ca"},
		NotBefore: now.Add(-backdate), NotAfter: now.Add(CALifetime),
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature, BasicConstraintsValid: true, IsCA: true, MaxPathLenZero: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, err
	}
	return encode(der, key)
}

func newServing(caCertPEM, caKeyPEM []byte, hosts Hosts, now time.Time) (certPEM, keyPEM []byte, err error) {
	ca, err := parseCert(caCertPEM)
	if err != nil {
		return nil, nil, err
	}
	caKey, err := parseKey(caKeyPEM)
	if err != nil {
		return nil, nil, err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	cn := "authframework-webhook"
	if len(hosts.DNSNames) > 0 {
		cn = hosts.DNSNames[0]
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial(), Subject: pkix.Name{CommonName: cn},
		NotBefore: now.Add(-backdate), NotAfter: now.Add(ServingLifetime),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames: hosts.DNSNames, IPAddresses: hosts.IPs,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		return nil, nil, err
	}
	return encode(der, key)
}

func encode(der []byte, key *ecdsa.PrivateKey) ([]byte, []byte, error) {
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), nil
}

func serial() *big.Int {
	n, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	return n
}

func parseCert(p []byte) (*x509.Certificate, error) {
	block, _ := pem.Decode(p)
	if block == nil || block.Type != "CERTIFICATE" {
		return nil, errors.New("no certificate")
	}
	return x509.ParseCertificate(block.Bytes)
}

func parseKey(p []byte) (*ecdsa.PrivateKey, error) {
	block, _ := pem.Decode(p)
	if block == nil {
		return nil, errors.New("no key")
	}
	return x509.ParseECPrivateKey(block.Bytes)
}

func keyMatches(c *x509.Certificate, keyPEM []byte) bool {
	k, err := parseKey(keyPEM)
	if err != nil {
		return false
	}
	pub, ok := c.PublicKey.(*ecdsa.PublicKey)
	return ok && pub.Equal(&k.PublicKey)
}

func covers(c *x509.Certificate, h Hosts) bool {
	for _, n := range h.DNSNames {
		if !slices.Contains(c.DNSNames, n) {
			return false
		}
	}
	for _, ip := range h.IPs {
		if !slices.ContainsFunc(c.IPAddresses, func(x net.IP) bool { return x.Equal(ip) }) {
			return false
		}
	}
	return true
}

// Provider serves the current certificate to a TLS server; replacing it
// takes effect on the next handshake, without a restart.
type Provider struct {
	current atomic.Pointer[tls.Certificate]
}

// Set loads a certificate and key.
func (p *Provider) Set(certPEM, keyPEM []byte) error {
	c, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return fmt.Errorf("loading the webhook serving certificate: %w", err)
	}
	if old := p.current.Load(); old != nil && len(old.Certificate) > 0 && bytes.Equal(old.Certificate[0], c.Certificate[0]) {
		return nil
	}
	p.current.Store(&c)
	return nil
}

// GetCertificate is a tls.Config.GetCertificate.
func (p *Provider) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	if c := p.current.Load(); c != nil {
		return c, nil
	}
	return nil, errors.New("no webhook serving certificate loaded yet")
}
