package main

import (
	"encoding/base64"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/utils/clock"

	"github.com/authframework/authframework/pkg/serverapi"
	"github.com/authframework/authframework/webhook/auth"
	"github.com/authframework/authframework/webhook/auth/authtest"
)

// runTokens measures POST /token: the client credentials grant over HTTP
// with keep-alive, wrk's connections spread over clients (client
// authentication, the grant and an ES256 signature per request), with a
// store of accounts besides them. The policy's per-client rate is set far
// above what one process can issue, so the figure is the server's.
func runTokens(o peerOptions, clients int) error {
	if _, err := exec.LookPath("wrk"); err != nil {
		return fmt.Errorf("wrk is not installed (apt-get install wrk)")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	issuer := "http://" + ln.Addr().String() + serverapi.IssuerPath("bench", "orders")
	store, _, _, err := authtest.BenchStore(clock.RealClock{}, issuer)
	if err != nil {
		return err
	}
	authtest.AddBenchAccounts(store, max(o.accounts, clients))
	srv := &http.Server{Handler: auth.NewServer(store, auth.Options{Log: logr.Discard(), Audit: logr.Discard()})}
	go func() { _ = srv.Serve(ln) }()
	defer srv.Close()

	// Each wrk thread runs its own copy of the script: requests take the
	// clients in turn.
	var creds []string
	for i := range clients {
		creds = append(creds, strconv.Quote(base64.StdEncoding.EncodeToString([]byte(fmt.Sprintf("bench.client-%d:bench-secret-%d", i, i)))))
	}
	script := fmt.Sprintf(`local creds = {%s}
local i = 0
request = function()
  i = i %% #creds + 1
  return wrk.format("POST", %q, {["Content-Type"] = "application/x-www-form-urlencoded", ["Authorization"] = "Basic " .. creds[i]},
    "grant_type=client_credentials&audience=orders-api")
end
`, strings.Join(creds, ", "), serverapi.PathToken)
	dir, err := os.MkdirTemp("", "bench-tokens-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "token.lua")
	if err := os.WriteFile(path, []byte(script), 0o600); err != nil {
		return err
	}
	fmt.Printf("POST %s, client credentials, ES256, %d clients, %d accounts in the store, wrk -t%d -c%d, %s x %d rounds\n",
		serverapi.PathToken, clients, max(o.accounts, clients)+1, o.threads, o.conns, o.duration, o.rounds)
	var rs []result
	for range o.rounds {
		c0 := selfCPU()
		out, err := exec.Command("wrk", "-t", strconv.Itoa(o.threads), "-c", strconv.Itoa(o.conns), "-d", o.duration.String(), "--latency",
			"-s", path, "http://"+ln.Addr().String()).CombinedOutput()
		if err != nil {
			return fmt.Errorf("wrk: %v\n%s", err, out)
		}
		r, err := parseWrk("token", string(out))
		if err != nil {
			return err
		}
		if r.requests > 0 {
			r.authCPU = (selfCPU() - c0) / time.Duration(r.requests)
		}
		fmt.Printf("  %8.0f issuances/s  p50 %-9s p99 %-9s CPU %s/issuance\n", r.rps, r.p50, r.p99, r.authCPU)
		rs = append(rs, r.result)
	}
	m := median(rs)
	verdict := "met"
	if m.rps < 10000 {
		verdict = "MISSED"
	}
	fmt.Printf("median %0.f issuances/s (target >= 10,000: %s; %d cores, load %s)\n", m.rps, verdict, cpus(), loadAverage())
	return nil
}

// loadAverage is the 1-minute load average, for the record.
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	return strings.Fields(string(b))[0]
}
