// Command bench runs, in one sitting over loopback with wrk, the auth
// server's /validate (without and with its result cache) next to a bare Go
// handler that only verifies an ES256 JWT with go-jose, and prints req/s,
// p50/p99 latency and the ratios. With --flood it instead runs real nginx in
// front of /validate and measures a valid client's throughput alone and
// under a flood of forged tokens from another source (flood.go). `make
// bench` runs both.
package main

import (
	"context"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"github.com/go-logr/logr"
	"k8s.io/utils/clock"

	"github.com/authframework/authframework/internal/keys"
	"github.com/authframework/authframework/webhook/auth"
	"github.com/authframework/authframework/webhook/auth/authtest"
)

type result struct {
	name     string
	rps      float64
	p50, p99 time.Duration
}

func main() {
	duration := flag.Duration("duration", 10*time.Second, "wrk duration per target")
	conns := flag.Int("connections", 64, "wrk connections")
	threads := flag.Int("threads", 2, "wrk threads")
	floodMode := flag.Bool("flood", false, "measure a valid client through nginx alone and under a flood of forged tokens (duration is per phase, three phases)")
	validShare := flag.Float64("valid-share", 0.4, "with --flood: the valid client's offered rate as a share of its unpaced rate alone")
	floodShare := flag.Float64("flood-share", 0.4, "with --flood: the flood's offered rate as a share of the valid client's unpaced rate alone")
	flag.Parse()
	var err error
	if *floodMode {
		err = runFlood(*duration, min(*conns, 16), *validShare, *floodShare)
	} else {
		err = run(*duration, *conns, *threads)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func run(d time.Duration, conns, threads int) error {
	if _, err := exec.LookPath("wrk"); err != nil {
		return fmt.Errorf("wrk is not installed (apt-get install wrk)")
	}
	const issuer = "https://auth.example.com/issuers/bench/orders"
	store, key, tok, err := authtest.BenchStore(clock.RealClock{}, issuer)
	if err != nil {
		return err
	}
	targets := []struct {
		name    string
		handler http.Handler
		path    string
	}{
		{"bare go-jose ES256 handler", bare(key, issuer), "/"},
		{"authframework /validate, uncached", auth.NewServer(store, auth.Options{Log: logr.Discard(), Audit: logr.Discard(), CacheSize: 0}), "/validate?aud=orders-api&permission=orders:read"},
		{"authframework /validate, cached", auth.NewServer(store, auth.Options{Log: logr.Discard(), Audit: logr.Discard(), CacheSize: 100000}), "/validate?aud=orders-api&permission=orders:read"},
	}
	var results []result
	for _, t := range targets {
		r, err := measure(t.name, t.handler, t.path, tok, d, conns, threads)
		if err != nil {
			return err
		}
		results = append(results, r)
	}
	fmt.Printf("\nwrk -t%d -c%d -d%s over loopback, %d CPUs shared by wrk and the server\n\n", threads, conns, d, cpus())
	fmt.Printf("| %-36s | %10s | %9s | %9s |\n", "target", "req/s", "p50", "p99")
	fmt.Printf("|%s|%s|%s|%s|\n", strings.Repeat("-", 38), strings.Repeat("-", 12), strings.Repeat("-", 11), strings.Repeat("-", 11))
	for _, r := range results {
		fmt.Printf("| %-36s | %10.0f | %9s | %9s |\n", r.name, r.rps, r.p50, r.p99)
	}
	bareR, unc, cac := results[0], results[1], results[2]
	fmt.Printf("\nuncached / bare: %.2fx req/s (target >= 0.8), p99 %.2fx (target <= 1.2)\n", unc.rps/bareR.rps, float64(unc.p99)/float64(bareR.p99))
	fmt.Printf("cached / uncached: %.2fx req/s (target >= 3)\n", cac.rps/unc.rps)
	return nil
}

// bare verifies an ES256 JWT with go-jose and nothing else: the floor any
// validator pays.
func bare(key keys.Key, issuer string) http.Handler {
	pub := key.Public()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		raw := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
		tok, err := jwt.ParseSigned(raw, []jose.SignatureAlgorithm{jose.ES256})
		if err != nil {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		var c jwt.Claims
		if err := tok.Claims(pub, &c); err != nil || c.ValidateWithLeeway(jwt.Expected{Issuer: issuer, AnyAudience: jwt.Audience{"orders-api"}, Time: time.Now()}, 30*time.Second) != nil {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		w.Header().Set("X-User-ID", c.Subject)
		w.WriteHeader(http.StatusOK)
	})
}

func measure(name string, h http.Handler, path, tok string, d time.Duration, conns, threads int) (result, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return result{}, err
	}
	srv := &http.Server{Handler: h}
	go func() { _ = srv.Serve(ln) }()
	defer srv.Shutdown(context.Background())
	url := "http://" + ln.Addr().String() + path
	// Check the target answers 200 before measuring it.
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 200 {
		return result{}, fmt.Errorf("%s does not answer 200: %v %v", name, resp, err)
	}
	resp.Body.Close()
	fmt.Fprintf(os.Stderr, "measuring %s ...\n", name)
	out, err := exec.Command("wrk", "-t", strconv.Itoa(threads), "-c", strconv.Itoa(conns), "-d", d.String(), "--latency",
		"-H", "Authorization: Bearer "+tok, url).CombinedOutput()
	if err != nil {
		return result{}, fmt.Errorf("wrk: %v\n%s", err, out)
	}
	return parseWrk(name, string(out))
}

var (
	rpsRe = regexp.MustCompile(`Requests/sec:\s+([0-9.]+)`)
	pctRe = regexp.MustCompile(`(?m)^\s+(50|99)%\s+([0-9.]+)(us|ms|s)`)
	errRe = regexp.MustCompile(`Non-2xx or 3xx responses: (\d+)`)
)

func parseWrk(name, out string) (result, error) {
	r := result{name: name}
	if m := errRe.FindStringSubmatch(out); m != nil {
		return r, fmt.Errorf("%s: %s non-2xx responses", name, m[1])
	}
	m := rpsRe.FindStringSubmatch(out)
	if m == nil {
		return r, fmt.Errorf("%s: no Requests/sec in wrk output:\n%s", name, out)
	}
	r.rps, _ = strconv.ParseFloat(m[1], 64)
	for _, p := range pctRe.FindAllStringSubmatch(out, -1) {
		v, _ := strconv.ParseFloat(p[2], 64)
		unit := map[string]time.Duration{"us": time.Microsecond, "ms": time.Millisecond, "s": time.Second}[p[3]]
		dur := time.Duration(v * float64(unit)).Round(time.Microsecond)
		if p[1] == "50" {
			r.p50 = dur
		} else {
			r.p99 = dur
		}
	}
	return r, nil
}

func cpus() int {
	b, _ := os.ReadFile("/proc/cpuinfo")
	return strings.Count(string(b), "processor\t:")
}
