package main

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"text/template"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"github.com/go-logr/logr"
	"k8s.io/utils/clock"

	"github.com/authframework/authframework/internal/keys"
	"github.com/authframework/authframework/pkg/serverapi"
	"github.com/authframework/authframework/webhook/auth"
	"github.com/authframework/authframework/webhook/auth/authtest"
)

type peerOptions struct {
	duration        time.Duration
	conns, threads  int
	accounts        int
	rounds          int
	oauth2Proxy     string
	oauth2ProxyMode string
	only            string
	nginx           bool
}

// The token's audience and the permission /validate is asked to require.
const (
	audience      = "orders-api"
	validatePath  = "/validate?aud=" + audience + "&permission=orders:read"
	nameNoCrypto  = "bare no-crypto handler"
	nameGoJose    = "bare go-jose ES256 handler"
	nameOAuth2    = "oauth2-proxy v7.15.6 /oauth2/auth"
	nameUncached  = "authframework /validate, uncached"
	nameCached    = "authframework /validate, cached"
	viaNginxLabel = " (nginx)"
)

// peer is one server under test: where it listens, the path that checks a
// token, and how much CPU its process has used so far.
type peer struct {
	name string
	addr string
	path string
	cpu  func() time.Duration
}

type result struct {
	name     string
	rps      float64
	p50, p99 time.Duration
	// authCPU and nginxCPU are CPU time per request of the server under
	// test and of nginx in front of it (0 when driven directly).
	authCPU, nginxCPU time.Duration
}

func runPeers(o peerOptions) error {
	if _, err := exec.LookPath("wrk"); err != nil {
		return fmt.Errorf("wrk is not installed (apt-get install wrk)")
	}
	// The cached server also serves the discovery document and JWKS that
	// oauth2-proxy reads, so its address is the issuer's.
	lns := map[string]net.Listener{}
	for _, n := range []string{nameNoCrypto, nameGoJose, nameUncached, nameCached} {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return err
		}
		lns[n] = ln
	}
	issuer := "http://" + lns[nameCached].Addr().String() + serverapi.IssuerPath("bench", "orders")
	store, key, tok, err := authtest.BenchStore(clock.RealClock{}, issuer)
	if err != nil {
		return err
	}
	authtest.AddBenchAccounts(store, o.accounts)
	handlers := map[string]http.Handler{
		nameNoCrypto: noCrypto(),
		nameGoJose:   bare(key, issuer),
		nameUncached: auth.NewServer(store, auth.Options{Log: logr.Discard(), Audit: logr.Discard(), CacheSize: 0}),
		nameCached:   auth.NewServer(store, auth.Options{Log: logr.Discard(), Audit: logr.Discard(), CacheSize: 100000}),
	}
	var peers []peer
	for _, n := range []string{nameNoCrypto, nameGoJose, nameUncached, nameCached} {
		srv := &http.Server{Handler: handlers[n]}
		go func() { _ = srv.Serve(lns[n]) }()
		defer srv.Close()
		path := "/"
		if n == nameUncached || n == nameCached {
			path = validatePath
		}
		peers = append(peers, peer{name: n, addr: lns[n].Addr().String(), path: path, cpu: selfCPU})
	}
	if o.oauth2Proxy != "" {
		p, stop, err := startOAuth2Proxy(o.oauth2Proxy, o.oauth2ProxyMode, issuer)
		if err != nil {
			return err
		}
		defer stop()
		peers = slices.Insert(peers, 2, p)
	}
	var front *nginxFront
	if o.nginx {
		if front, err = startNginx(peers); err != nil {
			return err
		}
		defer front.stop()
	}

	type run struct {
		name, url string
		cpu       func() time.Duration
		nginx     bool
	}
	var runs []run
	for i, p := range peers {
		runs = append(runs, run{p.name, "http://" + p.addr + p.path, p.cpu, false})
		if front != nil {
			runs = append(runs, run{p.name + viaNginxLabel, front.url(i), p.cpu, true})
		}
	}
	runs = slices.DeleteFunc(runs, func(r run) bool {
		return !slices.ContainsFunc(strings.Split(o.only, "|"), func(s string) bool { return strings.Contains(r.name, s) })
	})
	for _, r := range runs {
		if err := check(r.name, r.url, tok); err != nil {
			return err
		}
	}
	all := map[string][]result{}
	for round := range o.rounds {
		for _, r := range runs {
			fmt.Fprintf(os.Stderr, "round %d/%d: %s ...\n", round+1, o.rounds, r.name)
			var nginxCPU func() time.Duration
			if r.nginx {
				nginxCPU = front.cpu
			}
			res, err := measure(r.name, r.url, tok, o, r.cpu, nginxCPU)
			if err != nil {
				return err
			}
			all[r.name] = append(all[r.name], res)
		}
	}
	var results []result
	for _, r := range runs {
		results = append(results, median(all[r.name]))
	}
	printPeers(results, o)
	return nil
}

// noCrypto answers like a validator that trusts any bearer token: the
// floor of an HTTP round trip through Go's server.
func noCrypto() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.HasPrefix(r.Header.Get("Authorization"), "Bearer ") {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		w.Header().Set("X-User-ID", "bench.client")
		w.WriteHeader(http.StatusOK)
	})
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
		if err := tok.Claims(pub, &c); err != nil || c.ValidateWithLeeway(jwt.Expected{Issuer: issuer, AnyAudience: jwt.Audience{audience}, Time: time.Now()}, 30*time.Second) != nil {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		w.Header().Set("X-User-ID", c.Subject)
		w.WriteHeader(http.StatusOK)
	})
}

// startOAuth2Proxy runs oauth2-proxy as a JWT bearer verifier of our tokens
// against our discovery document, answering auth_request calls at
// /oauth2/auth (202 for a valid token). Its logs are off, as ours are in
// this benchmark.
func startOAuth2Proxy(bin, mode, issuer string) (peer, func(), error) {
	if _, err := os.Stat(bin); err != nil {
		return peer{}, nil, fmt.Errorf("%s: %v (make tools builds it; --oauth2-proxy= leaves it out)", bin, err)
	}
	ports, err := freePorts(1)
	if err != nil {
		return peer{}, nil, err
	}
	addr := fmt.Sprintf("127.0.0.1:%d", ports[0])
	secret := make([]byte, 16)
	_, _ = rand.Read(secret)
	args := []string{"--http-address=" + addr, "--cookie-secret=" + hex.EncodeToString(secret), "--cookie-secure=false",
		"--email-domain=*", "--upstream=static://200", "--skip-jwt-bearer-tokens",
		"--request-logging=false", "--auth-logging=false", "--standard-logging=false"}
	switch mode {
	case "oidc":
		args = append(args, "--provider=oidc", "--oidc-issuer-url="+issuer, "--client-id="+audience, "--client-secret=unused")
	case "extra":
		// A provider with no bearer check of its own, so only the extra
		// issuer's verifier decides.
		args = append(args, "--provider=github", "--client-id=unused", "--client-secret=unused", "--extra-jwt-issuers="+issuer+"="+audience)
	default:
		return peer{}, nil, fmt.Errorf("--oauth2-proxy-mode %q: want oidc or extra", mode)
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		return peer{}, nil, err
	}
	stop := func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }
	if err := waitUp("http://" + addr + "/ping"); err != nil {
		stop()
		return peer{}, nil, fmt.Errorf("oauth2-proxy: %v", err)
	}
	return peer{name: nameOAuth2 + " (" + mode + ")", addr: addr, path: "/oauth2/auth", cpu: procCPU(cmd.Process.Pid)}, stop, nil
}

// nginxConf fronts each peer the way ingress-nginx renders an auth-url
// location (as hack/localcluster/ingress.go does): /t/<i>/ is protected by
// an auth_request to peer i, and the protected upstream answers 200 from
// nginx itself. One process (master_process off) so its CPU is one
// /proc entry; access logs off, they would measure the disk.
var nginxConf = template.Must(template.New("nginx").Parse(`
worker_processes 1;
master_process off;
daemon off;
pid {{.Prefix}}/nginx.pid;
error_log {{.Prefix}}/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path {{.Prefix}}/client_body;
  proxy_temp_path {{.Prefix}}/proxy;
  fastcgi_temp_path {{.Prefix}}/fastcgi;
  uwsgi_temp_path {{.Prefix}}/uwsgi;
  scgi_temp_path {{.Prefix}}/scgi;
  server {
    listen 127.0.0.1:{{.UpstreamPort}};
    location / { return 200 "ok"; }
  }
  server {
    listen 127.0.0.1:{{.Port}};
    location = /healthz-nginx { return 200 "ok"; }
{{- range $i, $p := .Peers}}
    location = /_external-auth-{{$i}} {
      internal;
      proxy_pass_request_body off;
      proxy_set_header Content-Length "";
      proxy_set_header X-Forwarded-Proto "";
      proxy_set_header X-Request-ID $request_id;
      proxy_set_header Host {{$p.Addr}};
      proxy_set_header X-Original-URL $scheme://$http_host$request_uri;
      proxy_set_header X-Original-Method $request_method;
      proxy_set_header X-Sent-From "nginx-ingress-controller";
      proxy_set_header X-Real-IP $remote_addr;
      proxy_set_header X-Forwarded-For $remote_addr;
      proxy_set_header X-Auth-Request-Redirect $request_uri;
      proxy_http_version 1.1;
      proxy_pass http://{{$p.Addr}}{{$p.Path}};
    }
    location /t/{{$i}}/ {
      auth_request /_external-auth-{{$i}};
      auth_request_set $authHeader0 $upstream_http_x_user_id;
      proxy_set_header X-User-ID $authHeader0;
      proxy_pass http://127.0.0.1:{{$.UpstreamPort}};
    }
{{- end}}
  }
}
`))

type nginxFront struct {
	base string
	cpu  func() time.Duration
	stop func()
}

func (n *nginxFront) url(i int) string { return fmt.Sprintf("%s/t/%d/orders/42", n.base, i) }

func startNginx(peers []peer) (*nginxFront, error) {
	nginx, err := exec.LookPath("nginx")
	if err != nil {
		if _, e := os.Stat("/usr/sbin/nginx"); e != nil {
			return nil, fmt.Errorf("nginx is not installed (apt-get install nginx); --no-nginx leaves it out")
		}
		nginx = "/usr/sbin/nginx"
	}
	ports, err := freePorts(2)
	if err != nil {
		return nil, err
	}
	prefix, err := os.MkdirTemp("", "authframework-bench-peers-")
	if err != nil {
		return nil, err
	}
	type confPeer struct{ Addr, Path string }
	var cps []confPeer
	for _, p := range peers {
		cps = append(cps, confPeer{p.addr, p.path})
	}
	conf := filepath.Join(prefix, "nginx.conf")
	f, err := os.Create(conf)
	if err != nil {
		return nil, err
	}
	err = nginxConf.Execute(f, map[string]any{"Prefix": prefix, "Port": ports[0], "UpstreamPort": ports[1], "Peers": cps})
	f.Close()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(nginx, "-p", prefix, "-c", conf, "-e", filepath.Join(prefix, "error.log"))
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	stop := func() { _ = cmd.Process.Kill(); _ = cmd.Wait(); _ = os.RemoveAll(prefix) }
	base := fmt.Sprintf("http://127.0.0.1:%d", ports[0])
	if err := waitUp(base + "/healthz-nginx"); err != nil {
		stop()
		return nil, err
	}
	return &nginxFront{base: base, cpu: procCPU(cmd.Process.Pid), stop: stop}, nil
}

// check makes sure a target accepts the token before it is measured.
func check(name, url, tok string) error {
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("%s: %v", name, err)
	}
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("%s answers %d to the token, want 2xx", name, resp.StatusCode)
	}
	return nil
}

func measure(name, url, tok string, o peerOptions, authCPU, nginxCPU func() time.Duration) (result, error) {
	a0, n0 := authCPU(), time.Duration(0)
	if nginxCPU != nil {
		n0 = nginxCPU()
	}
	out, err := exec.Command("wrk", "-t", strconv.Itoa(o.threads), "-c", strconv.Itoa(o.conns), "-d", o.duration.String(), "--latency",
		"-H", "Authorization: Bearer "+tok, url).CombinedOutput()
	if err != nil {
		return result{}, fmt.Errorf("wrk: %v\n%s", err, out)
	}
	a1 := authCPU()
	r, err := parseWrk(name, string(out))
	if err != nil {
		return result{}, err
	}
	if r.requests > 0 {
		r.authCPU = (a1 - a0) / time.Duration(r.requests)
		if nginxCPU != nil {
			r.nginxCPU = (nginxCPU() - n0) / time.Duration(r.requests)
		}
	}
	return r.result, nil
}

type wrkResult struct {
	result
	requests int64
}

var (
	rpsRe = regexp.MustCompile(`Requests/sec:\s+([0-9.]+)`)
	reqRe = regexp.MustCompile(`(\d+) requests in`)
	pctRe = regexp.MustCompile(`(?m)^\s+(50|99)%\s+([0-9.]+)(us|ms|s)`)
	errRe = regexp.MustCompile(`Non-2xx or 3xx responses: (\d+)`)
)

func parseWrk(name, out string) (wrkResult, error) {
	r := wrkResult{result: result{name: name}}
	if m := errRe.FindStringSubmatch(out); m != nil {
		return r, fmt.Errorf("%s: %s non-2xx responses", name, m[1])
	}
	m := rpsRe.FindStringSubmatch(out)
	if m == nil {
		return r, fmt.Errorf("%s: no Requests/sec in wrk output:\n%s", name, out)
	}
	r.rps, _ = strconv.ParseFloat(m[1], 64)
	if m := reqRe.FindStringSubmatch(out); m != nil {
		r.requests, _ = strconv.ParseInt(m[1], 10, 64)
	}
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

// median takes each figure's median over the rounds.
func median(rs []result) result {
	pick := func(f func(result) float64) float64 {
		v := make([]float64, len(rs))
		for i, r := range rs {
			v[i] = f(r)
		}
		slices.Sort(v)
		return v[len(v)/2]
	}
	return result{name: rs[0].name,
		rps:      pick(func(r result) float64 { return r.rps }),
		p50:      time.Duration(pick(func(r result) float64 { return float64(r.p50) })),
		p99:      time.Duration(pick(func(r result) float64 { return float64(r.p99) })),
		authCPU:  time.Duration(pick(func(r result) float64 { return float64(r.authCPU) })),
		nginxCPU: time.Duration(pick(func(r result) float64 { return float64(r.nginxCPU) })),
	}
}

func printPeers(results []result, o peerOptions) {
	by := map[string]result{}
	for _, r := range results {
		by[r.name] = r
	}
	fmt.Printf("\nwrk -t%d -c%d -d%s --latency over loopback, the same ES256 token everywhere; %d CPUs shared by wrk, nginx and the servers;\n", o.threads, o.conns, o.duration, cpus())
	fmt.Printf("the auth server's store holds %d accounts; median of %d round(s); CPU is the server's (and nginx's) per request.\n\n", o.accounts+1, o.rounds)
	fmt.Printf("| %-52s | %8s | %9s | %9s | %8s | %8s | %8s | %8s | %8s | %8s |\n", "target", "req/s", "p50", "p99", "CPU µs", "nginx µs", "req/s ×nc", "req/s ×gj", "p99 ×nc", "p99 ×gj")
	fmt.Printf("|%s|%s|%s|%s|%s|%s|%s|%s|%s|%s|\n", strings.Repeat("-", 54), strings.Repeat("-", 10), strings.Repeat("-", 11), strings.Repeat("-", 11),
		strings.Repeat("-", 10), strings.Repeat("-", 10), strings.Repeat("-", 11), strings.Repeat("-", 11), strings.Repeat("-", 10), strings.Repeat("-", 10))
	for _, r := range results {
		suffix := ""
		if strings.HasSuffix(r.name, viaNginxLabel) {
			suffix = viaNginxLabel
		}
		nc, gj := by[nameNoCrypto+suffix], by[nameGoJose+suffix]
		ratio := func(a, b float64) string {
			if b == 0 {
				return "—"
			}
			return fmt.Sprintf("%.2f", a/b)
		}
		ng := "—"
		if suffix != "" {
			ng = fmt.Sprintf("%.1f", float64(r.nginxCPU)/1e3)
		}
		fmt.Printf("| %-52s | %8.0f | %9s | %9s | %8.1f | %8s | %9s | %9s | %8s | %8s |\n", r.name, r.rps, r.p50, r.p99, float64(r.authCPU)/1e3, ng,
			ratio(r.rps, nc.rps), ratio(r.rps, gj.rps), ratio(float64(r.p99), float64(nc.p99)), ratio(float64(r.p99), float64(gj.p99)))
	}
	fmt.Println()
	var proxy result
	for _, r := range results {
		if strings.HasPrefix(r.name, nameOAuth2) && !strings.HasSuffix(r.name, viaNginxLabel) {
			proxy = r
		}
	}
	verdict := func(ok bool) string {
		if ok {
			return "met"
		}
		return "MISSED"
	}
	unc, cac, nc, gj := by[nameUncached], by[nameCached], by[nameNoCrypto], by[nameGoJose]
	if unc.rps > 0 && gj.rps > 0 {
		a, b := unc.rps/gj.rps, float64(unc.p99)/float64(gj.p99)
		fmt.Printf("uncached / bare go-jose: %.2fx req/s (target >= 0.9: %s), p99 %.2fx (target <= 1.2: %s)\n", a, verdict(a >= 0.9), b, verdict(b <= 1.2))
	}
	if cac.rps > 0 && nc.rps > 0 {
		a, b := cac.rps/nc.rps, float64(cac.p99)/float64(nc.p99)
		fmt.Printf("cached / no-crypto: %.2fx req/s (target >= 0.8: %s), p99 %.2fx (target <= 1.5: %s)\n", a, verdict(a >= 0.8), b, verdict(b <= 1.5))
	}
	if cac.rps > 0 && proxy.rps > 0 {
		a := cac.rps / proxy.rps
		fmt.Printf("cached / oauth2-proxy: %.2fx req/s (target >= 5: %s)\n", a, verdict(a >= 5))
	}
}

// selfCPU is this process's CPU time, user and system: the in-process
// servers' while one of them is under load.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// procCPU reads another process's CPU time from /proc/<pid>/stat (utime
// and stime, in clock ticks of 10 ms).
func procCPU(pid int) func() time.Duration {
	return func() time.Duration {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			return 0
		}
		s := string(b)
		f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
		if len(f) < 13 {
			return 0
		}
		ut, _ := strconv.ParseInt(f[11], 10, 64)
		st, _ := strconv.ParseInt(f[12], 10, 64)
		return time.Duration(ut+st) * 10 * time.Millisecond
	}
}

func cpus() int {
	b, _ := os.ReadFile("/proc/cpuinfo")
	return strings.Count(string(b), "processor\t:")
}
