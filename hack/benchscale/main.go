// Command benchscale measures the control plane at scale: it starts envtest's
// etcd and kube-apiserver, runs the built manager and auth server binaries
// against them as child processes (so their peak RSS is their own), creates
// N ServiceAccounts under one TokenPolicy and one Role, and prints how long
// they take to become Ready, what they cost the API server per account, the
// processes' memory, /validate throughput at that scale (result cache on and
// off), and the cache hit rate of a steady client while 1% of the accounts
// change every second. `make bench-scale` runs it; docs/benchmarks.md
// records its figures. Nothing here asserts a target: it measures.
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	goruntime "runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"golang.org/x/time/rate"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"k8s.io/client-go/kubernetes"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	authv1alpha1 "github.com/authframework/authframework/api/v1alpha1"
	"github.com/authframework/authframework/pkg/serverapi"
	"github.com/authframework/authframework/test/testenv"
)

type options struct {
	accounts, workers, conns, steady  int
	bin, binDir, repoRoot, profileDir string
	maxConcurrent                     int
	load, churn, readyTimeout         time.Duration
	profileSeconds                    int
}

const ns = "bench"

func main() {
	var o options
	flag.IntVar(&o.accounts, "accounts", 10000, "ServiceAccounts to create.")
	flag.IntVar(&o.workers, "create-workers", 32, "Concurrent creates.")
	flag.StringVar(&o.bin, "bin", "bin/authframework", "The authframework binary (manager and server).")
	flag.StringVar(&o.binDir, "bin-dir", os.Getenv("KUBEBUILDER_ASSETS"), "Directory of etcd and kube-apiserver.")
	flag.StringVar(&o.repoRoot, "repo-root", ".", "Repository root (for the CRDs).")
	flag.IntVar(&o.maxConcurrent, "max-concurrent-reconciles", 0, "The manager's --max-concurrent-reconciles; 0: its default.")
	flag.DurationVar(&o.readyTimeout, "ready-timeout", 10*time.Minute, "Give up waiting for Ready after this long.")
	flag.DurationVar(&o.load, "load", 8*time.Second, "Duration of each /validate load phase; 0 skips them.")
	flag.IntVar(&o.conns, "conns", 32, "Connections of the /validate load generator.")
	flag.IntVar(&o.steady, "tokens", 64, "Accounts whose tokens the load and the steady client use.")
	flag.DurationVar(&o.churn, "churn", 10*time.Second, "Duration of the churn phase (1% of the accounts changed per second); 0 skips it.")
	flag.StringVar(&o.profileDir, "profile-dir", "", "When set: write the manager's CPU profile (the first --profile-seconds after the first create) and heap and allocation profiles (at Ready) there.")
	flag.IntVar(&o.profileSeconds, "profile-seconds", 30, "Length of the manager's CPU profile.")
	flag.Parse()
	if err := run(o); err != nil {
		fmt.Fprintln(os.Stderr, "benchscale:", err)
		os.Exit(1)
	}
}

func run(o options) error {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	for _, p := range []*string{&o.bin, &o.binDir, &o.repoRoot} {
		abs, err := filepath.Abs(*p)
		if err != nil {
			return err
		}
		*p = abs
	}
	dir, err := os.MkdirTemp("", "benchscale-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)

	scheme := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(scheme))
	utilruntime.Must(authv1alpha1.AddToScheme(scheme))
	env := &envtest.Environment{
		BinaryAssetsDirectory: o.binDir,
		CRDDirectoryPaths:     []string{filepath.Join(o.repoRoot, "config", "crd", "bases")},
		ErrorIfCRDPathMissing: true,
		Scheme:                scheme,
	}
	say("starting etcd and kube-apiserver from %s", o.binDir)
	if _, err := env.Start(); err != nil {
		_ = env.Stop()
		return fmt.Errorf("starting the control plane: %w", err)
	}
	defer func() { _ = env.Stop() }()
	user, err := env.AddUser(envtest.User{Name: "bench-admin", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		return err
	}
	kc, err := user.KubeConfig()
	if err != nil {
		return err
	}
	kubeconfig := filepath.Join(dir, "kubeconfig")
	if err := os.WriteFile(kubeconfig, kc, 0o600); err != nil {
		return err
	}
	cfg := rest.CopyConfig(user.Config())
	// The benchmark's own client must not be what limits the run.
	cfg.QPS, cfg.Burst = -1, 0
	cl, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		return err
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return err
	}

	ports, err := testenv.FreePorts(7)
	if err != nil {
		return err
	}
	mgrMetrics, mgrProbe, mgrPprof, authPort, authPprof, uncachedPort, uncachedPprof := ports[0], ports[1], ports[2], ports[3], ports[4], ports[5], ports[6]
	issuer := fmt.Sprintf("http://127.0.0.1:%d/issuers/%s/bench", authPort, ns)
	if err := cl.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
		return err
	}
	policy := &authv1alpha1.TokenPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "bench"},
		Spec: authv1alpha1.TokenPolicySpec{Issuer: issuer, Audiences: []string{"bench-api"}}}
	if err := cl.Create(ctx, policy); err != nil {
		return err
	}
	for name, perm := range map[string]string{"reader": "orders:read", "writer": "orders:write"} {
		if err := cl.Create(ctx, &authv1alpha1.Role{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
			Spec: authv1alpha1.RoleSpec{Permissions: []string{perm}}}); err != nil {
			return err
		}
	}

	mgrArgs := []string{"manager", "--kubeconfig", kubeconfig, "--leader-elect=false", "--enable-webhooks=false",
		"--metrics-bind-address", addr(mgrMetrics), "--health-probe-bind-address", addr(mgrProbe),
		"--pprof-bind-address", addr(mgrPprof), "--log-format", "console", "--log-level", "error"}
	if o.maxConcurrent > 0 {
		mgrArgs = append(mgrArgs, "--max-concurrent-reconciles", strconv.Itoa(o.maxConcurrent))
	}
	mgr, err := startChild(ctx, "manager", "http://"+addr(mgrProbe)+"/readyz", o.bin, mgrArgs...)
	if err != nil {
		return err
	}
	defer mgr.Stop()
	serverArgs := func(port, pprofPort int, extra ...string) []string {
		return append([]string{"server", "--kubeconfig", kubeconfig, "--listen", addr(port), "--pprof-bind-address", addr(pprofPort),
			"--revocation-namespace", "default", "--log-format", "console", "--log-level", "error"}, extra...)
	}
	srv, err := startChild(ctx, "auth server", "http://"+addr(authPort)+"/readyz", o.bin, serverArgs(authPort, authPprof)...)
	if err != nil {
		return err
	}
	defer srv.Stop()
	if err := waitFor(ctx, time.Minute, "the policy's active key", func() (bool, error) {
		var p authv1alpha1.TokenPolicy
		if err := cl.Get(ctx, client.ObjectKeyFromObject(policy), &p); err != nil {
			return false, err
		}
		return p.Status.ActiveKeyID != "", nil
	}); err != nil {
		return err
	}
	heapBefore, err := heapAfterGC(addr(authPprof), addr(authPort))
	if err != nil {
		return err
	}
	apiBefore, err := apiRequests(ctx, cs)
	if err != nil {
		return err
	}
	mgrBefore, err := scrape("http://" + addr(mgrMetrics) + "/metrics")
	if err != nil {
		return err
	}

	watch, err := watchReady(ctx, cfg, scheme, o.accounts)
	if err != nil {
		return err
	}
	depth := sampleDepth(ctx, "http://"+addr(mgrMetrics)+"/metrics")
	var profiled chan error
	if o.profileDir != "" {
		if err := os.MkdirAll(o.profileDir, 0o755); err != nil {
			return err
		}
		profiled = make(chan error, 1)
		go func() {
			profiled <- fetchTo(fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", addr(mgrPprof), o.profileSeconds), filepath.Join(o.profileDir, "manager-cpu.pprof"))
		}()
	}

	cpuBefore := childCPU()
	say("creating %d ServiceAccounts with %d workers", o.accounts, o.workers)
	first := time.Now()
	if err := createAccounts(ctx, cl, o.accounts, o.workers); err != nil {
		return err
	}
	last := time.Now()
	say("created in %s (%.0f creates/s)", last.Sub(first).Round(time.Millisecond), float64(o.accounts)/last.Sub(first).Seconds())
	var allReady time.Time
	select {
	case allReady = <-watch:
	case <-time.After(o.readyTimeout):
		return fmt.Errorf("not every account was Ready %s after the last create", o.readyTimeout)
	}
	maxDepth := depth()
	cpuAfter := childCPU()
	if o.profileDir != "" {
		for _, p := range []string{"heap", "allocs"} {
			if err := fetchTo(fmt.Sprintf("http://%s/debug/pprof/%s", addr(mgrPprof), p), filepath.Join(o.profileDir, "manager-"+p+".pprof")); err != nil {
				return err
			}
		}
	}
	apiAfter, err := apiRequests(ctx, cs)
	if err != nil {
		return err
	}
	mgrAfter, err := scrape("http://" + addr(mgrMetrics) + "/metrics")
	if err != nil {
		return err
	}

	fmt.Printf("\n== %d ServiceAccounts (one TokenPolicy, one Role each), %d CPUs, %s\n", o.accounts, goruntime.NumCPU(), loadavg())
	fmt.Printf("creates: %s (%d workers)\n", last.Sub(first).Round(time.Millisecond), o.workers)
	fmt.Printf("all Ready: %s after the last create, %s after the first (target: <= 60s after the last)\n",
		allReady.Sub(last).Round(time.Millisecond), allReady.Sub(first).Round(time.Millisecond))
	fmt.Printf("accounts/s: %.0f (first create to all Ready)\n", float64(o.accounts)/allReady.Sub(first).Seconds())
	fmt.Printf("CPU seconds from the first create to all Ready (of %.0f wall-clock seconds x %d CPUs): ", allReady.Sub(first).Seconds(), goruntime.NumCPU())
	for _, k := range sortedKeys(cpuAfter) {
		fmt.Printf("%s %.1f  ", k, cpuAfter[k]-cpuBefore[k])
	}
	fmt.Println()
	printAPICost(apiBefore, apiAfter, o.accounts)
	printManagerMetrics(mgrBefore, mgrAfter, maxDepth, o.accounts)
	fmt.Printf("manager peak RSS (VmHWM): %s (target: <= 200 MiB)\n", mib(vmHWM(mgr.Pid())))

	// The steady client's tokens; the last account's token also shows the
	// server has every account.
	tokens, err := mintTokens(ctx, cl, authPort, o.steady, o.accounts)
	if err != nil {
		return err
	}
	heapAfter, err := heapAfterGC(addr(authPprof), addr(authPort))
	if err != nil {
		return err
	}
	fmt.Printf("auth server peak RSS (VmHWM): %s (target: <= 150 MiB); live heap after GC %s before the accounts, %s with them: %.1f KiB per account\n",
		mib(vmHWM(srv.Pid())), mib(heapBefore), mib(heapAfter), float64(int64(heapAfter)-int64(heapBefore))/1024/float64(o.accounts))
	if profiled != nil {
		if err := <-profiled; err != nil {
			return err
		}
		say("profiles in %s (go tool pprof -top %s)", o.profileDir, filepath.Join(o.profileDir, "manager-cpu.pprof"))
	}

	if o.load > 0 {
		uncached, err := startChild(ctx, "auth server without a result cache", "http://"+addr(uncachedPort)+"/readyz", o.bin,
			serverArgs(uncachedPort, uncachedPprof, "--cache-size", "0")...)
		if err != nil {
			return err
		}
		defer uncached.Stop()
		// Ready is the informers' sync: every account is loaded.
		fmt.Printf("\n/validate at %d accounts, %d connections, %s each, %d distinct tokens, load generator in-process on the same cores:\n", o.accounts, o.conns, o.load, len(tokens))
		for _, t := range []struct {
			name string
			port int
		}{{"cached (--cache-size 100000)", authPort}, {"uncached (--cache-size 0)", uncachedPort}} {
			r := loadValidate(ctx, addr(t.port), tokens, o.conns, o.load)
			fmt.Printf("  %-30s %8.0f req/s  p50 %s  p99 %s  failed or non-200: %d %v\n", t.name, r.rps, r.p50, r.p99, r.bad, r.codes)
		}
		fmt.Printf("auth server without cache: peak RSS %s\n", mib(vmHWM(uncached.Pid())))
	}

	if o.churn > 0 {
		if err := churn(ctx, cl, addr(authPort), tokens, o.accounts, o.churn); err != nil {
			return err
		}
	}
	return nil
}

func addr(port int) string { return "127.0.0.1:" + strconv.Itoa(port) }

func accountName(i int) string { return fmt.Sprintf("client-%05d", i) }

// createAccounts creates n accounts with workers goroutines.
func createAccounts(ctx context.Context, cl client.Client, n, workers int) error {
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for range workers {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				if err := cl.Create(ctx, &authv1alpha1.ServiceAccount{
					ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: accountName(i)},
					Spec:       authv1alpha1.ServiceAccountSpec{TokenPolicyRef: authv1alpha1.LocalRef{Name: "bench"}, Roles: []string{"reader"}},
				}); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	return <-errs
}

// watchReady reports the time the n-th account became Ready (its Ready
// condition True for its current generation), from a watch.
func watchReady(ctx context.Context, cfg *rest.Config, scheme *runtime.Scheme, n int) (<-chan time.Time, error) {
	c, err := cache.New(cfg, cache.Options{Scheme: scheme, DefaultNamespaces: map[string]cache.Config{ns: {}}})
	if err != nil {
		return nil, err
	}
	inf, err := c.GetInformer(ctx, &authv1alpha1.ServiceAccount{})
	if err != nil {
		return nil, err
	}
	var mu sync.Mutex
	ready := map[string]bool{}
	done := make(chan time.Time, 1)
	observe := func(obj any) {
		sa, ok := obj.(*authv1alpha1.ServiceAccount)
		if !ok {
			return
		}
		r := sa.Status.ObservedGeneration == sa.Generation && meta.IsStatusConditionTrue(sa.Status.Conditions, authv1alpha1.ConditionReady)
		mu.Lock()
		defer mu.Unlock()
		was := len(ready)
		if r {
			ready[sa.Name] = true
		} else {
			delete(ready, sa.Name)
		}
		if was < n && len(ready) == n {
			done <- time.Now()
		}
	}
	if _, err := inf.AddEventHandler(toolscache.ResourceEventHandlerFuncs{AddFunc: observe, UpdateFunc: func(_, o any) { observe(o) }}); err != nil {
		return nil, err
	}
	go func() { _ = c.Start(ctx) }()
	if !c.WaitForCacheSync(ctx) {
		return nil, errors.New("the benchmark's watch did not sync")
	}
	return done, nil
}

// apiRequests reads kube-apiserver's apiserver_request_total summed by verb,
// resource and subresource.
func apiRequests(ctx context.Context, cs kubernetes.Interface) (map[string]float64, error) {
	b, err := cs.CoreV1().RESTClient().Get().AbsPath("/metrics").DoRaw(ctx)
	if err != nil {
		return nil, err
	}
	fams, err := parse(bytes.NewReader(b))
	if err != nil {
		return nil, err
	}
	out := map[string]float64{}
	for _, m := range fams["apiserver_request_total"].GetMetric() {
		l := labels(m)
		res := l["resource"]
		if l["subresource"] != "" {
			res += "/" + l["subresource"]
		}
		out[l["verb"]+" "+res] += m.GetCounter().GetValue()
	}
	return out, nil
}

func isWrite(verb string) bool {
	switch verb {
	case "GET", "LIST", "WATCH", "CONNECT":
		return false
	}
	return true
}

// printAPICost prints the API server's requests during the run per account,
// writes first. The benchmark's own creates (one per account) and its watch
// are included and named.
func printAPICost(before, after map[string]float64, n int) {
	type row struct {
		key string
		d   float64
	}
	var rows []row
	var writes float64
	for k, v := range after {
		if d := v - before[k]; d > 0 {
			rows = append(rows, row{k, d})
			if isWrite(strings.Fields(k)[0]) {
				writes += d
			}
		}
	}
	sort.Slice(rows, func(i, j int) bool { return rows[i].d > rows[j].d })
	fmt.Printf("API server requests during the run (apiserver_request_total), per account:\n")
	for _, r := range rows {
		if r.d/float64(n) < 0.001 {
			continue
		}
		fmt.Printf("  %-45s %8.0f  %6.3f/account\n", r.key, r.d, r.d/float64(n))
	}
	fmt.Printf("API writes per account: %.2f, of which 1 is the benchmark's create; the controllers': %.2f\n", writes/float64(n), (writes-float64(n))/float64(n))
}

// printManagerMetrics prints the manager's client-go requests by method,
// reconciles by controller, and its workqueues' waits.
func printManagerMetrics(before, after map[string]*dto.MetricFamily, maxDepth map[string]float64, n int) {
	counter := func(fams map[string]*dto.MetricFamily, name string, key func(map[string]string) string) map[string]float64 {
		out := map[string]float64{}
		for _, m := range fams[name].GetMetric() {
			out[key(labels(m))] += m.GetCounter().GetValue()
		}
		return out
	}
	diff := func(name string, key func(map[string]string) string) map[string]float64 {
		a, b := counter(after, name, key), counter(before, name, key)
		for k := range a {
			a[k] -= b[k]
		}
		return a
	}
	fmt.Printf("manager client-go requests (rest_client_requests_total) by method: ")
	for _, k := range sortedKeys(diff("rest_client_requests_total", func(l map[string]string) string { return l["method"] + " " + l["code"] })) {
		v := diff("rest_client_requests_total", func(l map[string]string) string { return l["method"] + " " + l["code"] })[k]
		if v > 0 {
			fmt.Printf("%s=%.0f (%.2f/account)  ", k, v, v/float64(n))
		}
	}
	fmt.Println()
	rec := diff("controller_runtime_reconcile_total", func(l map[string]string) string { return l["controller"] + " " + l["result"] })
	fmt.Printf("reconciles (controller_runtime_reconcile_total): ")
	for _, k := range sortedKeys(rec) {
		if rec[k] > 0 {
			fmt.Printf("%s=%.0f  ", k, rec[k])
		}
	}
	fmt.Println()
	hist := func(fams map[string]*dto.MetricFamily, name string) map[string][2]float64 {
		out := map[string][2]float64{}
		for _, m := range fams[name].GetMetric() {
			h := m.GetHistogram()
			out[labels(m)["name"]] = [2]float64{h.GetSampleSum(), float64(h.GetSampleCount())}
		}
		return out
	}
	qa, qb := hist(after, "workqueue_queue_duration_seconds"), hist(before, "workqueue_queue_duration_seconds")
	wa, wb := hist(after, "workqueue_work_duration_seconds"), hist(before, "workqueue_work_duration_seconds")
	for _, name := range sortedKeys(qa) {
		q, w := qa[name], wa[name]
		q[0], q[1], w[0], w[1] = q[0]-qb[name][0], q[1]-qb[name][1], w[0]-wb[name][0], w[1]-wb[name][1]
		if q[1] == 0 {
			continue
		}
		fmt.Printf("workqueue %-14s items %6.0f  mean wait %8.3fs  mean work %7.2fms  busy %6.1fs  max depth %.0f\n",
			name, q[1], q[0]/q[1], 1000*w[0]/max(w[1], 1), w[0], maxDepth[name])
	}
}

func sortedKeys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

// sampleDepth polls the manager's workqueue_depth every second; the
// returned function stops and returns the maximum per queue.
func sampleDepth(ctx context.Context, metricsURL string) func() map[string]float64 {
	ctx, cancel := context.WithCancel(ctx)
	var mu sync.Mutex
	maxes := map[string]float64{}
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			fams, err := scrape(metricsURL)
			if err != nil {
				continue
			}
			mu.Lock()
			for _, m := range fams["workqueue_depth"].GetMetric() {
				name := labels(m)["name"]
				maxes[name] = max(maxes[name], m.GetGauge().GetValue())
			}
			mu.Unlock()
		}
	}()
	return func() map[string]float64 {
		cancel()
		<-done
		return maxes
	}
}

func scrape(u string) (map[string]*dto.MetricFamily, error) {
	resp, err := http.Get(u)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	return parse(resp.Body)
}

func parse(r io.Reader) (map[string]*dto.MetricFamily, error) {
	p := expfmt.NewTextParser(model.UTF8Validation)
	return p.TextToMetricFamilies(r)
}

func labels(m *dto.Metric) map[string]string {
	out := map[string]string{}
	for _, l := range m.GetLabel() {
		out[l.GetName()] = l.GetValue()
	}
	return out
}

// heapAfterGC forces a collection in the auth server (pprof's heap endpoint
// with gc=1) and reads its live heap from its metrics.
func heapAfterGC(pprofAddr, serverAddr string) (uint64, error) {
	if err := fetchTo("http://"+pprofAddr+"/debug/pprof/heap?gc=1", os.DevNull); err != nil {
		return 0, err
	}
	fams, err := scrape("http://" + serverAddr + "/metrics")
	if err != nil {
		return 0, err
	}
	ms := fams["go_memstats_heap_alloc_bytes"].GetMetric()
	if len(ms) == 0 {
		return 0, errors.New("the auth server's metrics have no go_memstats_heap_alloc_bytes")
	}
	return uint64(ms[0].GetGauge().GetValue()), nil
}

func fetchTo(u, path string) error {
	resp, err := http.Get(u)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", u, resp.Status)
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// mintTokens gets an access token for k accounts spread over the n created
// (the last one included) with their client credentials, retrying while the
// auth server has not seen an account yet.
func mintTokens(ctx context.Context, cl client.Client, port, k, n int) ([]string, error) {
	var out []string
	for j := range k {
		i := n - 1 - j*(n/k)
		var s corev1.Secret
		key := types.NamespacedName{Namespace: ns, Name: accountName(i) + authv1alpha1.CredentialsSecretSuffix}
		if err := cl.Get(ctx, key, &s); err != nil {
			return nil, err
		}
		var tok string
		err := waitFor(ctx, time.Minute, "a token for "+accountName(i), func() (bool, error) {
			form := url.Values{"grant_type": {"client_credentials"}}
			req, _ := http.NewRequestWithContext(ctx, http.MethodPost, fmt.Sprintf("http://127.0.0.1:%d%s", port, serverapi.PathToken), strings.NewReader(form.Encode()))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.SetBasicAuth(url.QueryEscape(string(s.Data[authv1alpha1.ClientIDKey])), url.QueryEscape(string(s.Data[authv1alpha1.ClientSecretKey])))
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				return false, err
			}
			defer resp.Body.Close()
			var body struct {
				AccessToken string `json:"access_token"`
			}
			if resp.StatusCode != http.StatusOK {
				return false, nil
			}
			if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
				return false, err
			}
			tok = body.AccessToken
			return tok != "", nil
		})
		if err != nil {
			return nil, err
		}
		out = append(out, tok)
	}
	return out, nil
}

type loadResult struct {
	rps      float64
	p50, p99 time.Duration
	bad      int64
	codes    map[int]int64
}

const validatePath = "/validate?aud=bench-api&permission=orders:read"

// loadValidate drives /validate with conns keep-alive connections for d,
// cycling through tokens.
func loadValidate(ctx context.Context, server string, tokens []string, conns int, d time.Duration) loadResult {
	tr := &http.Transport{MaxIdleConnsPerHost: conns, MaxConnsPerHost: conns}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr}
	stop := time.Now().Add(d)
	var mu sync.Mutex
	var lat []time.Duration
	var bad atomic.Int64
	codes := map[int]int64{}
	var wg sync.WaitGroup
	for c := range conns {
		wg.Go(func() {
			var mine []time.Duration
			for i := c; time.Now().Before(stop) && ctx.Err() == nil; i++ {
				req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+server+validatePath, nil)
				req.Header.Set("Authorization", "Bearer "+tokens[i%len(tokens)])
				req.Header.Set("X-Original-URL", "http://orders.example/orders")
				req.Header.Set("X-Original-Method", http.MethodGet)
				t0 := time.Now()
				resp, err := hc.Do(req)
				if err != nil {
					if ctx.Err() != nil {
						break // the phase ended with this request in flight
					}
					bad.Add(1)
					continue
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				mine = append(mine, time.Since(t0))
				if resp.StatusCode != http.StatusOK {
					bad.Add(1)
					mu.Lock()
					codes[resp.StatusCode]++
					mu.Unlock()
				}
			}
			mu.Lock()
			lat = append(lat, mine...)
			mu.Unlock()
		})
	}
	wg.Wait()
	slices.Sort(lat)
	if len(lat) == 0 {
		return loadResult{bad: bad.Load(), codes: codes}
	}
	return loadResult{rps: float64(len(lat)) / d.Seconds(), p50: lat[len(lat)/2].Round(10 * time.Microsecond),
		p99: lat[len(lat)*99/100].Round(10 * time.Microsecond), bad: bad.Load(), codes: codes}
}

// churn changes 1% of the accounts per second (a role added or removed: a
// change the manager reconciles and that changes the account's permissions,
// on which the server's cached results of that account depend; the steady
// client's tokens stay valid, as they carry orders:read only) while a
// steady client validates its tokens, and prints the client's cache hit
// rate from the server's metrics.
func churn(ctx context.Context, cl client.Client, server string, tokens []string, n int, d time.Duration) error {
	fams, err := scrape("http://" + server + "/metrics")
	if err != nil {
		return err
	}
	before := cacheCounts(fams)
	cctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	var changed atomic.Int64
	var wg sync.WaitGroup
	var patchErr atomic.Value
	limit := rate.NewLimiter(rate.Limit(max(float64(n)/100, 1)), 1)
	// Each change flips the account's writer role, so every patch changes it.
	var mu sync.Mutex
	writer := map[int]bool{}
	for range 64 {
		wg.Go(func() {
			for limit.Wait(cctx) == nil {
				i := rand.IntN(n)
				mu.Lock()
				writer[i] = !writer[i]
				patch := map[bool]string{true: `{"spec":{"roles":["reader","writer"]}}`, false: `{"spec":{"roles":["reader"]}}`}[writer[i]]
				mu.Unlock()
				sa := &authv1alpha1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: accountName(i)}}
				if err := cl.Patch(cctx, sa, client.RawPatch(types.MergePatchType, []byte(patch))); err != nil {
					if cctx.Err() == nil {
						patchErr.Store(err)
					}
					return
				}
				changed.Add(1)
			}
		})
	}
	// The steady client: 4 connections, its tokens over and over.
	r := loadValidate(cctx, server, tokens, 4, d)
	wg.Wait()
	if err, _ := patchErr.Load().(error); err != nil {
		return err
	}
	fams, err = scrape("http://" + server + "/metrics")
	if err != nil {
		return err
	}
	after := cacheCounts(fams)
	hits, misses := after[0]-before[0], after[1]-before[1]
	fmt.Printf("\nchurn: %d accounts changed in %s (%.0f/s = %.2f%%/s) while a steady client validated %d tokens at %.0f req/s (failed or non-200: %d %v)\n",
		changed.Load(), d, float64(changed.Load())/d.Seconds(), 100*float64(changed.Load())/d.Seconds()/float64(n), len(tokens), r.rps, r.bad, r.codes)
	fmt.Printf("cache hit rate: %.2f%% (%.0f hits, %.0f misses; target >= 99%%)\n", 100*hits/max(hits+misses, 1), hits, misses)
	return nil
}

func cacheCounts(fams map[string]*dto.MetricFamily) [2]float64 {
	var out [2]float64
	for _, m := range fams[serverapi.MetricValidationCache].GetMetric() {
		switch labels(m)["result"] {
		case "hit":
			out[0] += m.GetCounter().GetValue()
		case "miss":
			out[1] += m.GetCounter().GetValue()
		}
	}
	return out
}

// vmHWM is a process's peak resident set size in bytes, from
// /proc/<pid>/status.
func vmHWM(pid int) uint64 {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			kb, _ := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return kb * 1024
		}
	}
	return 0
}

// childCPU is the CPU time (user and system, seconds) of this process and
// of each of its children (etcd, kube-apiserver, the manager, the servers),
// by command name, from /proc.
func childCPU() map[string]float64 {
	out := map[string]float64{}
	self := os.Getpid()
	dirs, _ := os.ReadDir("/proc")
	for _, d := range dirs {
		pid, err := strconv.Atoi(d.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			continue
		}
		// pid (comm) state ppid ... utime(14) stime(15), comm may hold spaces.
		end := bytes.LastIndexByte(b, ')')
		if end < 0 {
			continue
		}
		comm := string(b[bytes.IndexByte(b, '(')+1 : end])
		f := strings.Fields(string(b[end+2:]))
		if len(f) < 13 {
			continue
		}
		ppid, _ := strconv.Atoi(f[1])
		if pid != self && ppid != self {
			continue
		}
		if pid == self {
			comm = "benchscale"
		}
		ut, _ := strconv.ParseFloat(f[11], 64)
		st, _ := strconv.ParseFloat(f[12], 64)
		out[comm] += (ut + st) / 100 // USER_HZ
	}
	return out
}

func mib(b uint64) string { return fmt.Sprintf("%.0f MiB", float64(b)/(1<<20)) }

func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "load unknown"
	}
	return "load average " + strings.Join(strings.Fields(string(b))[:3], " ")
}

func waitFor(ctx context.Context, d time.Duration, what string, ok func() (bool, error)) error {
	deadline := time.Now().Add(d)
	var last error
	for time.Now().Before(deadline) {
		done, err := ok()
		if done {
			return nil
		}
		last = err
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	return fmt.Errorf("waiting for %s: gave up after %s (last error: %v)", what, d, last)
}

func startChild(ctx context.Context, name, readyURL, bin string, args ...string) (*testenv.Child, error) {
	return testenv.StartChild(ctx, name, readyURL, os.Stderr, bin, args...)
}

func say(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "==> "+format+"\n", args...)
}
