package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	"golang.org/x/time/rate"
	"k8s.io/utils/clock"

	"github.com/authframework/authframework/webhook/auth"
	"github.com/authframework/authframework/webhook/auth/authtest"

	"k8s.io/apimachinery/pkg/util/wait"
)

// swappable lets one nginx front either server under test.
// It counts the answers given without a signature check, which nginx hides
// from the client.
type swappable struct {
	h         atomic.Pointer[http.Handler]
	unchecked atomic.Int64
}

func (s *swappable) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	(*s.h.Load()).ServeHTTP(w, r)
	if w.Header().Get("X-Auth-Error") == "too_many_invalid_tokens" {
		s.unchecked.Add(1)
	}
}

// runFlood measures, through nginx, the capacity of a valid client (source
// 127.0.0.2) alone; then that client offered a share of it, alone and next
// to a flood of forged tokens (valid kid, random signature) from 127.0.0.3
// offered another share, against the server with its per-source guard and
// against one whose guard budget is unlimited. The valid client is paced: a
// saturating client loses throughput to any other load on a shared machine,
// whatever the server does; a paced one shows whether the flood takes the
// capacity it needs.
func runFlood(d time.Duration, conns int, validShare, floodShare float64) error {
	const issuer = "https://auth.example.com/issuers/bench/orders"
	store, _, tok, err := authtest.BenchStore(clock.RealClock{}, issuer)
	if err != nil {
		return err
	}
	nginxPeer := []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}
	guarded := http.Handler(auth.NewServer(store, auth.Options{Log: logr.Discard(), Audit: logr.Discard(), CacheSize: 100000, TrustedProxies: nginxPeer}))
	unguarded := http.Handler(auth.NewServer(store, auth.Options{Log: logr.Discard(), Audit: logr.Discard(), CacheSize: 100000, TrustedProxies: nginxPeer,
		Throttles: auth.Throttles{FailedTokensPerSource: auth.Budget{N: 1 << 30, Per: time.Second}}}))
	sw := &swappable{}
	sw.h.Store(&guarded)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: sw}
	go func() { _ = srv.Serve(ln) }()
	defer srv.Close()

	front, err := startNginx([]peer{{name: "authframework /validate", addr: ln.Addr().String(), path: validatePath}})
	if err != nil {
		return err
	}
	defer front.stop()

	valid := client("127.0.0.2", conns)
	flood := client("127.0.0.3", 64)
	target := front.url(0)
	if code := get(valid, target, tok); code != 200 {
		return fmt.Errorf("the valid client gets %d through nginx, want 200", code)
	}
	if code := get(flood, target, forge(tok)); code != 401 {
		return fmt.Errorf("a forged token gets %d through nginx, want 401", code)
	}

	fmt.Fprintf(os.Stderr, "calibrating: valid client alone, unpaced ...\n")
	capacity := load(valid, target, func() string { return tok }, conns, d, nil)
	validRate, floodRate := validShare*capacity.rps, floodShare*capacity.rps
	phase := func(name string, h *http.Handler, withFlood bool) (stats, stats, int64) {
		sw.h.Store(h)
		sw.unchecked.Store(0)
		fmt.Fprintf(os.Stderr, "%s ...\n", name)
		var fl stats
		var wg sync.WaitGroup
		if withFlood {
			wg.Add(1)
			go func() {
				defer wg.Done()
				fl = load(flood, target, func() string { return forge(tok) }, 64, d, rate.NewLimiter(rate.Limit(floodRate), 16))
			}()
		}
		v := load(valid, target, func() string { return tok }, conns, d, rate.NewLimiter(rate.Limit(validRate), 16))
		wg.Wait()
		return v, fl, sw.unchecked.Load()
	}
	alone, _, _ := phase("valid client alone, paced", &guarded, false)
	gv, gf, gu := phase("valid client under a flood, guarded", &guarded, true)
	uv, uf, _ := phase("valid client under a flood, guard budget unlimited", &unguarded, true)

	fmt.Printf("\nnginx (auth_request, as ingress-nginx) in front of /validate over loopback, %d CPUs shared by nginx, server and clients; %s per phase.\n", cpus(), d)
	fmt.Printf("Capacity (valid client alone, %d connections, unpaced): %.0f req/s. Valid client from 127.0.0.2 offered %.0f req/s (%.2f x);\n", conns, capacity.rps, validRate, validShare)
	fmt.Printf("flood of forged tokens (valid kid, random signature, each distinct) from 127.0.0.3 offered %.0f req/s (%.2f x).\n\n", floodRate, floodShare)
	fmt.Printf("| %-44s | %12s | %12s | %13s |\n", "phase", "valid req/s", "flood req/s", "valid non-200")
	fmt.Printf("|%s|%s|%s|%s|\n", strings.Repeat("-", 46), strings.Repeat("-", 14), strings.Repeat("-", 14), strings.Repeat("-", 15))
	row := func(name string, v, f stats) {
		fmt.Printf("| %-44s | %12.0f | %12.0f | %13d |\n", name, v.rps, f.rps, v.other+v.unauthorized)
	}
	row("valid client alone", alone, stats{})
	row("under flood, per-source guard (default)", gv, gf)
	row("under flood, guard budget unlimited", uv, uf)
	fmt.Printf("\nvalid throughput under flood / alone: %.2f with the guard (target >= 0.90), %.2f without\n", gv.rps/alone.rps, uv.rps/alone.rps)
	fmt.Printf("flood answered 401: guarded %d (%d of them without a signature check), unguarded %d; any other status: %d / %d\n",
		gf.unauthorized, gu, uf.unauthorized, gf.other, uf.other)
	if n := alone.other + alone.unauthorized + gv.other + gv.unauthorized + uv.other + uv.unauthorized; n > 0 {
		return fmt.Errorf("the valid client was refused %d times", n)
	}
	return nil
}

type stats struct {
	rps                                float64
	ok, unauthorized, throttled, other int64
}

// load runs conns loops of GET target with tokens from tok for d, paced by
// lim when it is not nil.
func load(c *http.Client, target string, tok func() string, conns int, d time.Duration, lim *rate.Limiter) stats {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	var s stats
	var wg sync.WaitGroup
	start := time.Now()
	for range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				if lim != nil && lim.Wait(ctx) != nil {
					return
				}
				req, _ := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
				req.Header.Set("Authorization", "Bearer "+tok())
				resp, err := c.Do(req)
				if err != nil {
					if ctx.Err() == nil {
						atomic.AddInt64(&s.other, 1)
					}
					continue
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				switch {
				case resp.StatusCode == 200:
					atomic.AddInt64(&s.ok, 1)
				case resp.StatusCode == 401:
					atomic.AddInt64(&s.unauthorized, 1)
				default:
					atomic.AddInt64(&s.other, 1)
				}
			}
		}()
	}
	wg.Wait()
	el := time.Since(start).Seconds()
	s.rps = float64(s.ok+s.unauthorized) / el
	return s
}

// client dials from a given loopback source address.
func client(source string, conns int) *http.Client {
	dialer := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(source)}, Timeout: 5 * time.Second}
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DialContext: dialer.DialContext,
		MaxIdleConns: conns, MaxIdleConnsPerHost: conns, IdleConnTimeout: time.Minute}}
}

func get(c *http.Client, url, tok string) int {
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := c.Do(req)
	if err != nil {
		return 0
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// forge keeps the token's header (so its kid is known) and claims and gives
// it a random ES256-sized signature: each forgery is distinct, so no cache of
// refused tokens helps; only the per-source budget does.
func forge(tok string) string {
	i := strings.LastIndexByte(tok, '.')
	sig := make([]byte, 64)
	_, _ = rand.Read(sig)
	return tok[:i+1] + base64.RawURLEncoding.EncodeToString(sig)
}

func waitUp(url string) error {
	err := wait.PollUntilContextTimeout(context.Background(), 50*time.Millisecond, 5*time.Second, true, func(context.Context) (bool, error) {
		resp, err := http.Get(url)
		if err != nil {
			return false, nil
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK, nil
	})
	if err != nil {
		return fmt.Errorf("nginx did not answer %s", url)
	}
	return nil
}

func freePorts(n int) ([]int, error) {
	var ports []int
	var lns []net.Listener
	defer func() {
		for _, l := range lns {
			l.Close()
		}
	}()
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		lns = append(lns, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}
