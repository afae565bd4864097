package certs

import (
	"crypto/tls"
	"crypto/x509"
	"net"
	"testing"
	"time"
)

var hosts = Hosts{DNSNames: []string{"authframework-webhook.authframework-system.svc"}, IPs: []net.IP{net.ParseIP("127.0.0.1")}}

func TestPlanAndApplyLifecycle(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	d := Plan(Bundle{}, hosts, now)
	if !d.NewCA || !d.NewServing {
		t.Fatalf("empty bundle: %+v", d)
	}
	b, err := Apply(Bundle{}, d, hosts, now)
	if err != nil {
		t.Fatal(err)
	}
	verify(t, b, now)
	d = Plan(b, hosts, now)
	if d.NewCA || d.NewServing {
		t.Fatalf("fresh bundle renews: %+v", d)
	}
	renew := now.Add(-backdate).Add((ServingLifetime + backdate) * 2 / 3).Truncate(time.Second)
	if !d.Next.Equal(renew) {
		t.Errorf("next %v, want serving renewal at two thirds %v", d.Next, renew)
	}
	// Past the serving renewal: same CA, new serving certificate.
	d = Plan(b, hosts, renew)
	if d.NewCA || !d.NewServing {
		t.Fatalf("at serving renewal: %+v", d)
	}
	b2, _ := Apply(b, d, hosts, renew)
	if string(b2.CACert) != string(b.CACert) || string(b2.Cert) == string(b.Cert) {
		t.Error("serving renewal must keep the CA and replace the certificate")
	}
	verify(t, b2, renew)
	// Past the CA renewal: new CA, both CAs trusted.
	caRenew := now.Add(-backdate).Add((CALifetime + backdate) * 2 / 3).Truncate(time.Second)
	d = Plan(b2, hosts, caRenew)
	if !d.NewCA || !d.NewServing {
		t.Fatalf("at CA renewal: %+v", d)
	}
	b3, _ := Apply(b2, d, hosts, caRenew)
	if string(b3.PreviousCA) != string(b2.CACert) {
		t.Error("the previous CA must stay trusted during the change")
	}
	verify(t, b3, caRenew)
	// A request for other hosts renews the serving certificate.
	if d := Plan(b3, Hosts{DNSNames: []string{"other.svc"}}, caRenew); !d.NewServing {
		t.Error("a certificate for other hosts was kept")
	}
	// Damage renews everything.
	if d := Plan(Bundle{CACert: []byte("junk"), Cert: b3.Cert, Key: b3.Key}, hosts, caRenew); !d.NewCA {
		t.Error("a damaged CA was kept")
	}
}

// verify checks the serving certificate chains to the CA bundle for every
// host, as the API server does.
func verify(t *testing.T, b Bundle, at time.Time) {
	t.Helper()
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b.CABundle()) {
		t.Fatal("CA bundle does not parse")
	}
	c, err := tls.X509KeyPair(b.Cert, b.Key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, _ := x509.ParseCertificate(c.Certificate[0])
	for _, h := range append(hosts.DNSNames, "127.0.0.1") {
		if _, err := leaf.Verify(x509.VerifyOptions{Roots: pool, DNSName: h, CurrentTime: at}); err != nil {
			t.Errorf("serving certificate does not verify for %s at %v: %v", h, at, err)
		}
	}
	var p Provider
	if _, err := p.GetCertificate(nil); err == nil {
		t.Error("an empty provider served a certificate")
	}
	if err := p.Set(b.Cert, b.Key); err != nil {
		t.Fatal(err)
	}
	if got, _ := p.GetCertificate(nil); got == nil {
		t.Error("provider serves nothing")
	}
}
