package e2e

// TestFaultsUnderLoad: while clients mint tokens and validate them through
// real nginx, the control plane is faulted in turn, and every answer is
// counted. See docs/auth-server.md, "Faults under load".

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	mathrand "math/rand/v2"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"text/tabwriter"
	"time"

	"github.com/go-jose/go-jose/v4"
	"golang.org/x/time/rate"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/yaml"

	authv1alpha1 "github.com/authframework/authframework/api/v1alpha1"
	"github.com/authframework/authframework/internal/keys"
	"github.com/authframework/authframework/test/testenv"
)

const (
	faultsNS     = "default"
	faultsPolicy = "orders"
	// leaseName is the manager's leader election Lease (main.go's default).
	leaseName = "authframework-manager.auth.authframework.dev"
	// apiOutage is how long the API server is down.
	apiOutage = 60 * time.Second
	// settle is how many valid-token validations each phase sees after its
	// fault has taken effect.
	settle = 150
	// maxRequests bounds the load whatever happens.
	maxRequests = 60000
)

// TestFaultsUnderLoad runs the built authframework binary as two manager
// replicas and as the auth server processes standing in for an AuthServer's
// blue and green pods, on a simulated cluster (real etcd, kube-apiserver,
// kube-controller-manager, kube-scheduler, kwok). A Service stand-in routes
// by the active Service's EndpointSlices, as kube-proxy does; nginx,
// configured like ingress-nginx's auth-url, asks it about every request.
// While clients mint tokens (POST /token, client credentials) and validate
// them through nginx, and an attacker sends forged, expired, revoked and
// otherwise invalid tokens, it rotates the signing keys, deletes the key
// Secret, kills the leading manager, stops the API server for 60 s, and rolls
// the AuthServer from blue to green. Per phase it counts valid tokens
// refused, invalid ones accepted and 5xx answers; all must be 0.
func TestFaultsUnderLoad(t *testing.T) {
	nginxBin, err := exec.LookPath("nginx")
	if err != nil {
		t.Fatalf("nginx is required (apt-get install nginx): %v", err)
	}
	if _, err := os.Stat(testenv.Binary()); err != nil {
		t.Fatalf("the authframework binary is not built at %s (make build): %v", testenv.Binary(), err)
	}
	began := time.Now()
	scheme := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(scheme))
	utilruntime.Must(authv1alpha1.AddToScheme(scheme))
	dir := t.TempDir()
	defer func() {
		if t.Failed() {
			logTails(t, dir, "manager-0.log", "manager-1.log", "server-blue.log", "server-green.log", "nginx/error.log")
		}
	}()
	clusterLog, err := os.Create(filepath.Join(dir, "cluster.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer clusterLog.Close()
	apiServer, err := testenv.RestartableAPIServer(filepath.Join(dir, "apiserver"))
	if err != nil {
		t.Fatal(err)
	}
	apiServer.Out, apiServer.Err = clusterLog, clusterLog
	env := &envtest.Environment{CRDDirectoryPaths: []string{testenv.Path("config", "crd", "bases")}, ErrorIfCRDPathMissing: true,
		BinaryAssetsDirectory: testenv.K8sBinDir(), Scheme: scheme, ControlPlane: envtest.ControlPlane{APIServer: apiServer}}
	sim, err := testenv.StartSimCluster(env, testenv.SimOptions{Dir: dir, Log: clusterLog})
	if err != nil {
		t.Fatal(err)
	}
	// Registered first, so it runs after the processes below have stopped.
	t.Cleanup(sim.Stop)
	cl, err := client.New(env.Config, client.Options{Scheme: scheme})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var node corev1.Node
	must(t, yaml.Unmarshal([]byte(testenv.FakeNode), &node))
	must(t, cl.Create(ctx, &node))

	// The auth server processes standing in for blue's and green's pods, and
	// the Service in front of them.
	bluePort, greenPort := freePort(t), freePort(t)
	greenURL := fmt.Sprintf("http://127.0.0.1:%d", greenPort)
	server := func(color string, port int) *process {
		p := startProcess(t, "auth server "+color, filepath.Join(dir, "server-"+color+".log"), false, testenv.Binary(), "server",
			"--kubeconfig", sim.Kubeconfig, "--listen", fmt.Sprintf("127.0.0.1:%d", port), "--revocation-namespace", faultsNS,
			"--log-format", "console", "--log-level", "error")
		t.Cleanup(p.stop)
		return p
	}
	servers := []*process{server("blue", bluePort), server("green", greenPort)}
	svc := &serviceProxy{cl: cl, colors: map[string]string{"blue": fmt.Sprintf("127.0.0.1:%d", bluePort), "green": fmt.Sprintf("127.0.0.1:%d", greenPort)}}
	svcURL := svc.start(ctx, t)

	// Two manager replicas, restarted when they exit as the kubelet would.
	managers := make([]*manager, 2)
	for i := range managers {
		m := &manager{metricsPort: freePort(t), probePort: freePort(t)}
		m.process = startProcess(t, fmt.Sprintf("manager-%d", i), filepath.Join(dir, fmt.Sprintf("manager-%d.log", i)), true, testenv.Binary(), "manager",
			"--kubeconfig", sim.Kubeconfig, "--leader-election-namespace", faultsNS,
			"--metrics-bind-address", fmt.Sprintf("127.0.0.1:%d", m.metricsPort),
			"--health-probe-bind-address", fmt.Sprintf("127.0.0.1:%d", m.probePort),
			"--log-format", "console", "--enable-webhooks=false", "--server-cluster-role=",
			fmt.Sprintf("--dev-authserver-urls=blue=http://127.0.0.1:%d,green=http://127.0.0.1:%d", bluePort, greenPort))
		t.Cleanup(m.stop)
		managers[i] = m
	}

	// nginx configured like ingress-nginx's auth-url, asking the Service.
	echo := &http.Server{Handler: testenv.EchoHandler()}
	echoLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = echo.Serve(echoLn) }()
	defer echo.Close()
	nginxPort := freePort(t)
	args, err := testenv.Nginx{Prefix: filepath.Join(dir, "nginx"), Port: nginxPort, AuthPort: svc.port, EchoPort: echoLn.Addr().(*net.TCPAddr).Port}.Configure()
	if err != nil {
		t.Fatal(err)
	}
	nginx := startProcess(t, "nginx", filepath.Join(dir, "nginx.log"), false, nginxBin, args...)
	t.Cleanup(nginx.stop)
	ingressURL := fmt.Sprintf("http://127.0.0.1:%d", nginxPort)

	// What the clients and the attacker use.
	must(t, cl.Create(ctx, &authv1alpha1.TokenPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: faultsNS, Name: faultsPolicy},
		Spec: authv1alpha1.TokenPolicySpec{Issuer: "https://auth.example.com/issuers/default/orders", Audiences: []string{"orders-api", "payments-api"},
			Algorithm: authv1alpha1.SigningAlgorithm("ES256"), AccessTokenTTL: metav1.Duration{Duration: 15 * time.Minute}, ClockSkew: metav1.Duration{Duration: 30 * time.Second},
			// The rotated key signs a minute after it is published: within the test.
			Rotation: authv1alpha1.KeyRotation{Period: metav1.Duration{Duration: 720 * time.Hour}, PrePublish: metav1.Duration{Duration: time.Minute}}}}))
	must(t, cl.Create(ctx, &authv1alpha1.Role{ObjectMeta: metav1.ObjectMeta{Namespace: faultsNS, Name: "reader"}, Spec: authv1alpha1.RoleSpec{Permissions: []string{"orders:read"}}}))
	account := func(name string) {
		t.Helper()
		must(t, cl.Create(ctx, &authv1alpha1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: faultsNS, Name: name},
			Spec: authv1alpha1.ServiceAccountSpec{TokenPolicyRef: authv1alpha1.LocalRef{Name: faultsPolicy}, Roles: []string{"reader"}}}))
	}
	for _, name := range []string{"billing", "shipping", "retired"} {
		account(name)
	}
	asKey := types.NamespacedName{Namespace: faultsNS, Name: "auth"}
	must(t, cl.Create(ctx, &authv1alpha1.AuthServer{ObjectMeta: metav1.ObjectMeta{Namespace: faultsNS, Name: "auth"}, Spec: authv1alpha1.AuthServerSpec{
		Image: "ghcr.io/authframework/authframework:v1", Port: 8080,
		Resources:   corev1.ResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("100m")}},
		Autoscaling: &authv1alpha1.AutoscalingSpec{MinReplicas: 2, MaxReplicas: 4, TargetCPUUtilizationPercentage: 70},
		Rollout: authv1alpha1.RolloutSpec{AvailableTimeout: metav1.Duration{Duration: 2 * time.Minute},
			Analysis:       authv1alpha1.AnalysisSpec{BakeTime: metav1.Duration{Duration: 10 * time.Second}, Interval: metav1.Duration{Duration: 5 * time.Second}},
			ScaleDownDelay: metav1.Duration{Duration: 5 * time.Second}},
	}}))
	asStatus := func() string {
		var as authv1alpha1.AuthServer
		if cl.Get(ctx, asKey, &as) != nil {
			return ""
		}
		return fmt.Sprintf("%s/%s/%s", as.Status.Phase, as.Status.PhaseReason, as.Status.ActiveColor)
	}
	testenv.Until(t, 2*time.Minute, "the AuthServer is Stable on blue", func() bool { return asStatus() == "Stable/Installed/blue" })
	testenv.Until(t, time.Minute, "the Service routes to blue", func() bool { return svc.route() == "blue" })

	ld := &load{svcURL: svcURL, ingressURL: ingressURL, http: &http.Client{Timeout: 15 * time.Second,
		Transport: &http.Transport{MaxIdleConnsPerHost: 32, DisableCompression: true}}}
	credentials := func(name string, within time.Duration) *oauthClient {
		t.Helper()
		var s corev1.Secret
		testenv.Until(t, within, name+"'s credentials", func() bool {
			return cl.Get(ctx, types.NamespacedName{Namespace: faultsNS, Name: name + "-credentials"}, &s) == nil
		})
		c := &oauthClient{name: name, id: string(s.Data["client_id"]), secret: string(s.Data["client_secret"])}
		testenv.Until(t, within, "the auth server knows "+name, func() bool {
			_, code, _, _ := ld.mint(ctx, c, "orders-api")
			return code == http.StatusOK
		})
		return c
	}
	billing, shipping, retired := credentials("billing", time.Minute), credentials("shipping", time.Minute), credentials("retired", time.Minute)

	// The attacker's tokens, each of which must be refused.
	ld.invalid = buildInvalidTokens(ctx, t, cl, ld, billing, retired)

	ld.phase("steady")
	stopLoad := ld.start(ctx, []*oauthClient{billing, shipping})
	loadStopped := false
	defer func() {
		if !loadStopped {
			stopLoad()
		}
	}()
	t.Logf("setup took %s; load running", time.Since(began).Round(time.Second))
	ld.waitValidated(t, settle)

	// 1. Rotate: the next key is published now and signs a minute later.
	ld.phase("keys rotated")
	var policy authv1alpha1.TokenPolicy
	must(t, cl.Get(ctx, types.NamespacedName{Namespace: faultsNS, Name: faultsPolicy}, &policy))
	firstKid := policy.Status.ActiveKeyID
	testenv.Annotate(t, cl, &authv1alpha1.TokenPolicy{}, types.NamespacedName{Namespace: faultsNS, Name: faultsPolicy}, authv1alpha1.AnnotationRotate, "faults")
	var nextKid string
	testenv.Until(t, time.Minute, "the rotation publishes the next key", func() bool {
		must(t, cl.Get(ctx, types.NamespacedName{Namespace: faultsNS, Name: faultsPolicy}, &policy))
		for _, k := range policy.Status.Keys {
			if k.State == authv1alpha1.KeyPublished {
				nextKid = k.KeyID
			}
		}
		return nextKid != "" && policy.Status.LastRotateRequest == "faults"
	})
	for _, port := range []int{bluePort, greenPort} {
		testenv.Until(t, time.Minute, "both auth servers publish the next key", func() bool {
			return strings.Contains(httpGet(t, fmt.Sprintf("http://127.0.0.1:%d/issuers/%s/%s/jwks.json", port, faultsNS, faultsPolicy)), nextKid)
		})
	}
	ld.waitValidated(t, settle)

	// 2. Delete the key Secret: it comes back with the same keys.
	ld.phase("key Secret deleted")
	keySecret := types.NamespacedName{Namespace: faultsNS, Name: faultsPolicy + authv1alpha1.KeySecretSuffix}
	var before corev1.Secret
	must(t, cl.Get(ctx, keySecret, &before))
	must(t, cl.Delete(ctx, &before))
	testenv.Until(t, time.Minute, "the key Secret is restored with the same keys", func() bool {
		var s corev1.Secret
		if cl.Get(ctx, keySecret, &s) != nil || s.UID == before.UID {
			return false
		}
		return slices.Equal(secretKids(t, &s), secretKids(t, &before))
	})
	ld.waitValidated(t, settle)

	// 3. Kill the leading manager (SIGKILL: a crash, the lease is not
	// released); the other replica takes the lease, the killed one comes
	// back as the standby, and the new leader onboards a new client.
	ld.phase("leader killed")
	var leader, standby *manager
	testenv.Until(t, time.Minute, "one manager leads", func() bool {
		leader, standby = nil, nil
		for _, m := range managers {
			if m.leading() {
				leader = m
			} else {
				standby = m
			}
		}
		return leader != nil && standby != nil
	})
	holder := leaseHolder(ctx, cl)
	// Restarted at once, the killed replica could win the expired lease
	// back; like a rescheduled pod, it comes back after the handover.
	leader.kill(true)
	testenv.Until(t, time.Minute, "the standby takes the lease", func() bool {
		h := leaseHolder(ctx, cl)
		return standby.leading() && h != "" && h != holder
	})
	leader.resume()
	testenv.Until(t, time.Minute, "the killed manager is back as the standby", func() bool { return leader.restarts() > 0 && leader.ready() })
	if !standby.leading() || leader.leading() {
		t.Errorf("the lease moved again after the killed manager came back")
	}
	account("onboarded-after-handover")
	ld.addClient(credentials("onboarded-after-handover", time.Minute))
	ld.waitValidated(t, settle)

	// 4. Stop the API server for a minute. The auth servers keep validating
	// and issuing from their informers' state; the managers lose the lease
	// and exit (and are restarted, and wait).
	ld.phase("API server down 60 s")
	outageStart := time.Now()
	// kube-apiserver stops listening at once on SIGTERM but may take a while
	// to exit (envtest kills it after its stop timeout); the outage counts
	// from the signal.
	stopped := make(chan error, 1)
	go func() { stopped <- sim.StopAPIServer() }()
	minted := ld.current().minted.Load()
	// A revocation that cannot be stored is refused so the client retries
	// (RFC 7009 §2.2.1: 503), never answered 200 and forgotten.
	code, retryAfter, _ := revokeStatus(ctx, t, ld, billing)
	t.Logf("a revocation while the API server is down: %d, Retry-After %q", code, retryAfter)
	if code != http.StatusServiceUnavailable || retryAfter == "" {
		t.Errorf("a revocation while the API server is down answered %d, Retry-After %q; want 503 with Retry-After", code, retryAfter)
	}
	select {
	case <-time.After(apiOutage - time.Since(outageStart)):
	case <-ctx.Done():
	}
	if n := ld.current().minted.Load() - minted; n == 0 {
		t.Errorf("no token was issued while the API server was down")
	}
	if err := <-stopped; err != nil {
		t.Logf("stopping the API server: %v", err)
	}
	ld.phase("API server back")
	must(t, sim.StartAPIServer())
	back := time.Now()
	since := func() string { return time.Since(back).Round(100 * time.Millisecond).String() }
	t.Logf("the API server was down for %s", back.Sub(outageStart).Round(100*time.Millisecond))
	// The auth servers' informers resumed: a client created now gets tokens
	// from each, and a token revoked at one is refused by the other.
	account("onboarded-after-outage")
	testenv.Until(t, time.Minute, "a manager leads again", func() bool {
		return slices.ContainsFunc(managers, (*manager).leading)
	})
	t.Logf("a manager leads again %s after the API server is back", since())
	late := credentials("onboarded-after-outage", 2*time.Minute)
	t.Logf("a client created after the outage gets tokens %s after the API server is back", since())
	testenv.Until(t, 2*time.Minute, "green issues tokens to the new client", func() bool {
		_, code, _, _ := ld.mintAt(ctx, greenURL, late, "orders-api")
		return code == http.StatusOK
	})
	t.Logf("and from green (idle) %s after", since())
	ld.addClient(late)
	revoked := revokedToken(ctx, t, ld, late, "revoked after the outage")
	ld.addInvalid(revoked)
	testenv.Until(t, 2*time.Minute, "green refuses the token blue revoked", func() bool {
		return validateAt(ctx, ld.http, greenURL, revoked.raw) == http.StatusUnauthorized
	})
	t.Logf("green refuses a token revoked at blue %s after the API server is back", since())
	ld.waitValidated(t, settle)

	// 5. Roll the AuthServer from blue to green.
	ld.phase("rollout blue→green")
	var as authv1alpha1.AuthServer
	must(t, cl.Get(ctx, asKey, &as))
	testenv.Update(t, cl, &as, func() { as.Spec.Image = "ghcr.io/authframework/authframework:v2" })
	testenv.Until(t, 2*time.Minute, "the rollout completes on green", func() bool { return asStatus() == "Stable/RolloutComplete/green" })
	testenv.Until(t, time.Minute, "the Service routes to green", func() bool { return svc.route() == "green" })
	green := svc.served("green")
	ld.waitValidated(t, settle)
	if svc.served("green") == green {
		t.Errorf("green served nothing after the rollout")
	}
	// The rotated key signs by now: tokens of both keys were validated.
	testenv.Until(t, time.Minute, "tokens signed by the rotated key are validated", func() bool {
		return ld.validatedKid(nextKid) > 0 && ld.validatedKid(firstKid) > 0
	})
	stopLoad()
	loadStopped = true

	for _, p := range servers {
		if p.exited() {
			t.Errorf("the %s exited during the test; see %s", p.name, p.logPath)
		}
	}
	for i, m := range managers {
		t.Logf("manager-%d restarted %d times", i, m.restarts())
	}
	total := ld.report(t)
	t.Logf("the test took %s", time.Since(began).Round(time.Second))
	if total.validRefused.Load() != 0 || total.mintRefused.Load() != 0 {
		t.Errorf("valid clients were refused: %d validations, %d token requests", total.validRefused.Load(), total.mintRefused.Load())
	}
	if total.invalidAccepted.Load() != 0 {
		t.Errorf("%d invalid tokens were accepted", total.invalidAccepted.Load())
	}
	if total.serverErrors.Load() != 0 || total.noAnswer.Load() != 0 {
		t.Errorf("%d 5xx answers and %d requests without an answer", total.serverErrors.Load(), total.noAnswer.Load())
	}
	for _, f := range ld.failureSamples() {
		t.Log(f)
	}
}

// counters are what one phase of the load saw.
type counters struct {
	minted, mintRefused          atomic.Int64
	validated, validRefused      atomic.Int64
	invalidSent, invalidAccepted atomic.Int64
	serverErrors, noAnswer       atomic.Int64
	started                      time.Time
	ended                        atomic.Pointer[time.Time]
	name                         string
}

type oauthClient struct{ name, id, secret string }

// validToken is a token the auth server issued and nothing has revoked.
type validToken struct {
	raw, clientID, kid string
}

// invalidToken is one the ingress must refuse.
type invalidToken struct {
	kind, raw, path string
}

// load is the traffic: token requests to the Service, validations and
// attacks through nginx, counted per phase.
type load struct {
	svcURL, ingressURL string
	http               *http.Client

	mu        sync.Mutex
	phases    []*counters
	clients   []*oauthClient
	tokens    []validToken
	latest    validToken
	invalid   []invalidToken
	samples   []string
	kids      map[string]int
	newClient chan *oauthClient
}

func (l *load) phase(name string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := time.Now()
	if n := len(l.phases); n > 0 {
		l.phases[n-1].ended.Store(&now)
	}
	l.phases = append(l.phases, &counters{name: name, started: now})
}

func (l *load) current() *counters {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.phases[len(l.phases)-1]
}

// waitValidated waits until the current phase has seen n more validations
// of valid tokens (refused or not).
func (l *load) waitValidated(t *testing.T, n int64) {
	t.Helper()
	c := l.current()
	base := c.validated.Load() + c.validRefused.Load()
	testenv.Until(t, 2*time.Minute, fmt.Sprintf("%d more validations in phase %q", n, c.name), func() bool {
		return c.validated.Load()+c.validRefused.Load() >= base+n
	})
}

func (l *load) addClient(c *oauthClient) {
	l.newClient <- c
}

func (l *load) addInvalid(tok invalidToken) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.invalid = append(l.invalid, tok)
}

func (l *load) sample(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.samples) < 40 {
		l.samples = append(l.samples, fmt.Sprintf("[%s] ", l.phases[len(l.phases)-1].name)+fmt.Sprintf(format, args...))
	}
}

func (l *load) failureSamples() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.samples)
}

func (l *load) validatedKid(kid string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.kids[kid]
}

// start runs the load until the returned function is called: per client a
// token request every 500 ms, validations through nginx at 60/s of a random
// or the latest token, and the invalid tokens in turn at 20/s.
func (l *load) start(ctx context.Context, clients []*oauthClient) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	var sent atomic.Int64
	budget := func() bool { return sent.Add(1) <= maxRequests }
	l.kids = map[string]int{}
	l.newClient = make(chan *oauthClient)
	minter := func(c *oauthClient) {
		defer wg.Done()
		lim := rate.NewLimiter(2, 1)
		for lim.Wait(ctx) == nil && budget() {
			cnt := l.current()
			raw, code, desc, err := l.mint(ctx, c, "orders-api")
			switch {
			case ctx.Err() != nil:
				return
			case err != nil:
				cnt.noAnswer.Add(1)
				cnt.mintRefused.Add(1)
				l.sample("token request of %s: no answer: %v", c.name, err)
			case code != http.StatusOK:
				cnt.mintRefused.Add(1)
				if code >= 500 {
					cnt.serverErrors.Add(1)
				}
				l.sample("token request of %s: %d %s", c.name, code, desc)
			default:
				cnt.minted.Add(1)
				tok := validToken{raw: raw, clientID: c.id, kid: kidOf(raw)}
				l.mu.Lock()
				if len(l.tokens) < 500 {
					l.tokens = append(l.tokens, tok)
				} else {
					l.tokens[mathrand.IntN(len(l.tokens))] = tok
				}
				l.latest = tok
				l.mu.Unlock()
			}
		}
	}
	for _, c := range clients {
		wg.Add(1)
		go minter(c)
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case c := <-l.newClient:
				wg.Add(1)
				go minter(c)
			case <-ctx.Done():
				return
			}
		}
	}()
	validations := rate.NewLimiter(60, 1)
	for range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for validations.Wait(ctx) == nil && budget() {
				l.mu.Lock()
				if len(l.tokens) == 0 {
					l.mu.Unlock()
					continue
				}
				tok := l.latest
				if mathrand.IntN(2) == 0 {
					tok = l.tokens[mathrand.IntN(len(l.tokens))]
				}
				l.mu.Unlock()
				cnt := l.current()
				code, hdr, body, err := l.call(ctx, "/api/orders/42", tok.raw)
				switch {
				case ctx.Err() != nil:
					return
				case err != nil:
					cnt.noAnswer.Add(1)
					cnt.validRefused.Add(1)
					l.sample("valid token of %s (kid %s): no answer: %v", tok.clientID, tok.kid, err)
				case code != http.StatusOK || !strings.Contains(body, `"X-Client-Id":"`+tok.clientID+`"`):
					cnt.validRefused.Add(1)
					if code >= 500 {
						cnt.serverErrors.Add(1)
					}
					l.sample("valid token of %s (kid %s): %d %s; the Service says %s", tok.clientID, tok.kid, code, hdr.Get("X-Auth-Error"), l.explain(ctx, tok.raw))
				default:
					cnt.validated.Add(1)
					l.mu.Lock()
					l.kids[tok.kid]++
					l.mu.Unlock()
				}
			}
		}()
	}
	attacks := rate.NewLimiter(20, 1)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; attacks.Wait(ctx) == nil && budget(); i++ {
			l.mu.Lock()
			tok := l.invalid[i%len(l.invalid)]
			l.mu.Unlock()
			cnt := l.current()
			code, _, _, err := l.call(ctx, tok.path, tok.raw)
			switch {
			case ctx.Err() != nil:
				return
			case err != nil:
				cnt.noAnswer.Add(1)
				l.sample("%s: no answer: %v", tok.kind, err)
			case code >= 500:
				cnt.serverErrors.Add(1)
				l.sample("%s: %d", tok.kind, code)
			case code/100 == 2:
				cnt.invalidAccepted.Add(1)
				l.sample("%s: accepted with %d", tok.kind, code)
			}
			cnt.invalidSent.Add(1)
		}
	}()
	return func() {
		cancel()
		wg.Wait()
		l.phase("") // ends the last phase
	}
}

// mint asks the Service for a token with client_secret_basic (RFC 6749
// §2.3.1: form-encoded id and secret).
func (l *load) mint(ctx context.Context, c *oauthClient, audience string) (raw string, code int, desc string, err error) {
	return l.mintAt(ctx, l.svcURL, c, audience)
}

// mintAt asks the auth server at base for a token.
func (l *load) mintAt(ctx context.Context, base string, c *oauthClient, audience string) (raw string, code int, desc string, err error) {
	form := url.Values{"grant_type": {"client_credentials"}, "audience": {audience}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/token", strings.NewReader(form.Encode()))
	if err != nil {
		return "", 0, "", err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(url.QueryEscape(c.id), url.QueryEscape(c.secret))
	resp, err := l.http.Do(req)
	if err != nil {
		return "", 0, "", err
	}
	defer resp.Body.Close()
	var body struct {
		AccessToken      string `json:"access_token"`
		Error            string `json:"error"`
		ErrorDescription string `json:"error_description"`
	}
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	_ = json.Unmarshal(b, &body)
	if resp.StatusCode == http.StatusOK && body.AccessToken == "" {
		return "", resp.StatusCode, "200 without an access_token", nil
	}
	return body.AccessToken, resp.StatusCode, body.Error + " " + body.ErrorDescription, nil
}

// call sends GET path through nginx with the token.
func (l *load) call(ctx context.Context, path, token string) (int, http.Header, string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, l.ingressURL+path, nil)
	if err != nil {
		return 0, nil, "", err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := l.http.Do(req)
	if err != nil {
		return 0, nil, "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	return resp.StatusCode, resp.Header, string(b), nil
}

// validateAt asks the auth server at base about token as the orders
// ingress does, and returns the status.
func validateAt(ctx context.Context, hc *http.Client, base, token string) int {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+"/validate?aud=orders-api&permission=orders:read", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := hc.Do(req)
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

// explain asks the Service directly why it refuses a token (nginx drops the
// auth response's headers on a refusal).
func (l *load) explain(ctx context.Context, token string) string {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, l.svcURL+"/validate?aud=orders-api&permission=orders:read", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := l.http.Do(req)
	if err != nil {
		return err.Error()
	}
	resp.Body.Close()
	return fmt.Sprintf("%d %s: %s", resp.StatusCode, resp.Header.Get("X-Auth-Error"), resp.Header.Get("X-Auth-Error-Description"))
}

// report logs the table of counters per phase and returns their sum.
func (l *load) report(t *testing.T) *counters {
	t.Helper()
	var b strings.Builder
	w := tabwriter.NewWriter(&b, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(w, "phase\tseconds\ttokens issued\ttoken requests refused\tvalid validated\tvalid refused\tinvalid sent\tinvalid accepted\t5xx\tno answer\t")
	total := &counters{name: "total"}
	l.mu.Lock()
	phases := slices.Clone(l.phases)
	l.mu.Unlock()
	row := func(c *counters, secs float64) {
		fmt.Fprintf(w, "%s\t%.0f\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t\n", c.name, secs, c.minted.Load(), c.mintRefused.Load(), c.validated.Load(), c.validRefused.Load(),
			c.invalidSent.Load(), c.invalidAccepted.Load(), c.serverErrors.Load(), c.noAnswer.Load())
	}
	var secs float64
	for _, c := range phases {
		end := c.ended.Load()
		if c.name == "" || end == nil {
			continue
		}
		s := end.Sub(c.started).Seconds()
		secs += s
		row(c, s)
		for _, p := range []struct{ sum, add *atomic.Int64 }{
			{&total.minted, &c.minted}, {&total.mintRefused, &c.mintRefused}, {&total.validated, &c.validated}, {&total.validRefused, &c.validRefused},
			{&total.invalidSent, &c.invalidSent}, {&total.invalidAccepted, &c.invalidAccepted}, {&total.serverErrors, &c.serverErrors}, {&total.noAnswer, &c.noAnswer},
		} {
			p.sum.Add(p.add.Load())
		}
	}
	row(total, secs)
	_ = w.Flush()
	t.Logf("faults under load:\n%s", b.String())
	return total
}

// buildInvalidTokens makes the attacker's set from a real token of billing:
// the payload altered under the real signature, the claims signed by a key
// of ours but expired, not yet valid or of another issuer, signed by a
// foreign key under our kid, alg none, another audience, a missing
// permission, a revoked token and a disabled account's token.
func buildInvalidTokens(ctx context.Context, t *testing.T, cl client.Client, l *load, billing, retired *oauthClient) []invalidToken {
	t.Helper()
	raw, code, desc, err := l.mint(ctx, billing, "orders-api")
	if err != nil || code != http.StatusOK {
		t.Fatalf("a token for billing: %d %s %v", code, desc, err)
	}
	parts := strings.Split(raw, ".")
	var hdr map[string]any
	must(t, json.Unmarshal(decodeSegment(t, parts[0]), &hdr))
	claims := func(change func(map[string]any)) map[string]any {
		var c map[string]any
		dec := json.NewDecoder(strings.NewReader(string(decodeSegment(t, parts[1]))))
		dec.UseNumber()
		must(t, dec.Decode(&c))
		change(c)
		return c
	}
	kid, _ := hdr["kid"].(string)
	var secret corev1.Secret
	must(t, cl.Get(ctx, types.NamespacedName{Namespace: faultsNS, Name: faultsPolicy + authv1alpha1.KeySecretSuffix}, &secret))
	ks, err := keys.ParsePrivate(secret.Data[authv1alpha1.KeySetDataKey])
	must(t, err)
	var ours keys.Key
	for _, k := range ks {
		if k.ID == kid {
			ours = k
		}
	}
	if ours.Private == nil {
		t.Fatalf("the key Secret does not hold the token's key %s", kid)
	}
	foreign, err := keys.Generate(ours.Algorithm, 0, rand.Reader)
	must(t, err)
	foreign.ID = kid
	now := time.Now().Unix()
	times := func(iat, exp int64) func(map[string]any) {
		return func(c map[string]any) { c["iat"], c["nbf"], c["exp"] = iat, iat, exp }
	}
	b64 := base64.RawURLEncoding.EncodeToString
	tampered, _ := json.Marshal(claims(func(c map[string]any) { c["sub"], c["client_id"] = "default.shipping", "default.shipping" }))
	none, _ := json.Marshal(map[string]any{"alg": "none", "typ": hdr["typ"], "kid": kid})
	otherAud, code, desc, err := l.mint(ctx, billing, "payments-api")
	if err != nil || code != http.StatusOK {
		t.Fatalf("a payments-api token for billing: %d %s %v", code, desc, err)
	}
	out := []invalidToken{
		{kind: "no token", path: "/api/orders/1"},
		{kind: "payload altered", raw: parts[0] + "." + b64(tampered) + "." + parts[2]},
		{kind: "signature altered", raw: parts[0] + "." + parts[1] + "." + b64(append(decodeSegment(t, parts[2])[1:], 0))},
		{kind: "foreign key under our kid", raw: sign(t, foreign, claims(func(map[string]any) {}))},
		{kind: "alg none", raw: b64(none) + "." + parts[1] + "."},
		{kind: "expired 20 min ago", raw: sign(t, ours, claims(times(now-35*60, now-20*60)))},
		{kind: "not valid for 10 min", raw: sign(t, ours, claims(times(now+10*60, now+25*60)))},
		{kind: "other issuer", raw: sign(t, ours, claims(func(c map[string]any) { c["iss"] = "https://evil.example.com/issuers/default/orders" }))},
		{kind: "other audience", raw: otherAud},
		{kind: "missing permission", raw: raw, path: "/api/orders-admin/1"},
		revokedToken(ctx, t, l, billing, "revoked"),
	}
	// retired's token, then retired is disabled.
	disabled, code, desc, err := l.mint(ctx, retired, "orders-api")
	if err != nil || code != http.StatusOK {
		t.Fatalf("a token for retired: %d %s %v", code, desc, err)
	}
	patch := client.RawPatch(types.MergePatchType, []byte(`{"spec":{"disabled":true}}`))
	must(t, cl.Patch(ctx, &authv1alpha1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: faultsNS, Name: "retired"}}, patch))
	out = append(out, invalidToken{kind: "account disabled", raw: disabled})
	for i := range out {
		if out[i].path == "" {
			out[i].path = "/api/orders/1"
		}
		tok := out[i]
		want := http.StatusUnauthorized
		if tok.kind == "missing permission" {
			want = http.StatusForbidden
		}
		testenv.Until(t, 30*time.Second, tok.kind+" is refused", func() bool {
			code, _, _, err := l.call(ctx, tok.path, tok.raw)
			return err == nil && code == want
		})
	}
	return out
}

// revokeStatus mints a token for c, asks the Service to revoke it (RFC
// 7009) and returns the answer's status and Retry-After.
func revokeStatus(ctx context.Context, t *testing.T, l *load, c *oauthClient) (code int, retryAfter, raw string) {
	t.Helper()
	raw, code, desc, err := l.mint(ctx, c, "orders-api")
	if err != nil || code != http.StatusOK {
		t.Fatalf("a token for %s: %d %s %v", c.name, code, desc, err)
	}
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, l.svcURL+"/revoke", strings.NewReader(url.Values{"token": {raw}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(url.QueryEscape(c.id), url.QueryEscape(c.secret))
	resp, err := l.http.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode, resp.Header.Get("Retry-After"), raw
}

// revokedToken mints a token for c and revokes it (RFC 7009).
func revokedToken(ctx context.Context, t *testing.T, l *load, c *oauthClient, kind string) invalidToken {
	t.Helper()
	code, _, raw := revokeStatus(ctx, t, l, c)
	if code != http.StatusOK {
		t.Fatalf("revoking a token of %s: %d", c.name, code)
	}
	tok := invalidToken{kind: kind, raw: raw, path: "/api/orders/1"}
	testenv.Until(t, 30*time.Second, kind+" is refused", func() bool {
		code, _, _, err := l.call(ctx, tok.path, tok.raw)
		return err == nil && code == http.StatusUnauthorized
	})
	return tok
}

// sign signs claims as an access token (typ at+jwt) with k.
func sign(t *testing.T, k keys.Key, claims map[string]any) string {
	t.Helper()
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: k.Algorithm, Key: jose.JSONWebKey{Key: k.Private, KeyID: k.ID}},
		(&jose.SignerOptions{}).WithType("at+jwt"))
	must(t, err)
	payload, err := json.Marshal(claims)
	must(t, err)
	jws, err := signer.Sign(payload)
	must(t, err)
	raw, err := jws.CompactSerialize()
	must(t, err)
	return raw
}

func decodeSegment(t *testing.T, seg string) []byte {
	t.Helper()
	b, err := base64.RawURLEncoding.DecodeString(seg)
	must(t, err)
	return b
}

// kidOf reads a token's kid without verifying it.
func kidOf(raw string) string {
	seg, _, _ := strings.Cut(raw, ".")
	b, err := base64.RawURLEncoding.DecodeString(seg)
	if err != nil {
		return ""
	}
	var h struct {
		Kid string `json:"kid"`
	}
	_ = json.Unmarshal(b, &h)
	return h.Kid
}

func secretKids(t *testing.T, s *corev1.Secret) []string {
	t.Helper()
	ks, err := keys.ParsePrivate(s.Data[authv1alpha1.KeySetDataKey])
	must(t, err)
	var ids []string
	for _, k := range ks {
		ids = append(ids, k.ID)
	}
	slices.Sort(ids)
	return ids
}

func leaseHolder(ctx context.Context, cl client.Client) string {
	var lease coordinationv1.Lease
	if cl.Get(ctx, types.NamespacedName{Namespace: faultsNS, Name: leaseName}, &lease) != nil {
		return ""
	}
	return ptr.Deref(lease.Spec.HolderIdentity, "")
}

// serviceProxy stands in for the AuthServer's active Service and kube-proxy:
// it forwards to the auth server process of the color whose pods are the
// ready endpoints of the Service "auth", as its EndpointSlices say. When the
// API server cannot be read it keeps the last endpoints, as kube-proxy does;
// with no ready endpoint it answers 503.
type serviceProxy struct {
	cl     client.Client
	colors map[string]string // color -> host:port
	port   int

	mu      sync.Mutex
	ready   map[string]int
	counts  map[string]int
	flipped int
}

func (s *serviceProxy) start(ctx context.Context, t *testing.T) string {
	s.ready, s.counts = map[string]int{}, map[string]int{}
	go func() {
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			s.sync(ctx)
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
	}()
	proxy := &httputil.ReverseProxy{
		// Like kube-proxy, pass the request on as it came: Rewrite drops
		// the X-Forwarded-* headers nginx set, so they are put back.
		Rewrite: func(r *httputil.ProxyRequest) {
			r.Out.URL.Scheme, r.Out.URL.Host = "http", s.pick()
			for _, h := range []string{"Forwarded", "X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Proto"} {
				if v, ok := r.In.Header[h]; ok {
					r.Out.Header[h] = v
				}
			}
		},
		ErrorHandler: func(w http.ResponseWriter, _ *http.Request, err error) {
			http.Error(w, "service: "+err.Error(), http.StatusBadGateway)
		},
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s.port = ln.Addr().(*net.TCPAddr).Port
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.route() == "" {
			http.Error(w, "service auth has no ready endpoints", http.StatusServiceUnavailable)
			return
		}
		proxy.ServeHTTP(w, r)
	})}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return fmt.Sprintf("http://127.0.0.1:%d", s.port)
}

// sync reads the Service's EndpointSlices; on error the last state stays.
func (s *serviceProxy) sync(ctx context.Context) {
	var slices discoveryv1.EndpointSliceList
	if err := s.cl.List(ctx, &slices, client.InNamespace(faultsNS), client.MatchingLabels{discoveryv1.LabelServiceName: "auth"}); err != nil {
		return
	}
	ready := map[string]int{}
	for _, sl := range slices.Items {
		for _, e := range sl.Endpoints {
			if e.TargetRef == nil || !ptr.Deref(e.Conditions.Ready, false) {
				continue
			}
			for color := range s.colors {
				if strings.HasPrefix(e.TargetRef.Name, "auth-"+color+"-") {
					ready[color]++
				}
			}
		}
	}
	s.mu.Lock()
	s.ready = ready
	s.mu.Unlock()
}

// route is the color requests go to now: the one with ready endpoints, or
// either in turn while both have some; "" when none.
func (s *serviceProxy) route() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var colors []string
	for c, n := range s.ready {
		if n > 0 {
			colors = append(colors, c)
		}
	}
	slices.Sort(colors)
	switch len(colors) {
	case 0:
		return ""
	case 1:
		return colors[0]
	}
	s.flipped++
	return colors[s.flipped%len(colors)]
}

func (s *serviceProxy) pick() string {
	c := s.route()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.counts[c]++
	return s.colors[c]
}

func (s *serviceProxy) served(color string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.counts[color]
}

var probeClient = &http.Client{Timeout: 2 * time.Second}

// manager is one replica of `authframework manager`.
type manager struct {
	*process
	metricsPort, probePort int
}

// leading reports whether the replica's metrics say it holds the lease.
func (m *manager) leading() bool {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("http://127.0.0.1:%d/metrics", m.metricsPort), nil)
	resp, err := probeClient.Do(req)
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return strings.Contains(string(b), `leader_election_master_status{name="`+leaseName+`"} 1`)
}

func (m *manager) ready() bool {
	resp, err := probeClient.Get(fmt.Sprintf("http://127.0.0.1:%d/readyz", m.probePort))
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// process is a child process; with restart it is started again whenever it
// exits (after a second), as the kubelet restarts a pod's container.
type process struct {
	name, logPath string

	mu       sync.Mutex
	cmd      *exec.Cmd
	stopping bool
	hold     chan struct{}
	restartN int
	done     chan struct{}
}

// kubeletRestartDelay is the delay before a crashed process is restarted,
// as the kubelet's back-off would.
const kubeletRestartDelay = time.Second

func startProcess(t *testing.T, name, logPath string, restart bool, bin string, args ...string) *process {
	t.Helper()
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	p := &process{name: name, logPath: logPath, done: make(chan struct{})}
	run := func() (*exec.Cmd, error) {
		cmd := exec.Command(bin, args...)
		cmd.Stdout, cmd.Stderr = logFile, logFile
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		return cmd, cmd.Start()
	}
	cmd, err := run()
	if err != nil {
		t.Fatalf("starting the %s: %v", name, err)
	}
	p.cmd = cmd
	go func() {
		defer close(p.done)
		defer logFile.Close()
		for {
			p.mu.Lock()
			cur := p.cmd
			p.mu.Unlock()
			err := cur.Wait()
			p.mu.Lock()
			if p.stopping || !restart {
				p.mu.Unlock()
				return
			}
			p.mu.Unlock()
			fmt.Fprintf(logFile, "==> the %s exited (%v); restarting in 1s\n", name, err)
			// Not a wait for a condition: the kubelet's back-off before a
			// restart, which lets the standby manager take the lease first.
			<-time.After(kubeletRestartDelay)
			<-p.held()
			p.mu.Lock()
			if p.stopping {
				p.mu.Unlock()
				return
			}
			next, err := run()
			if err != nil {
				p.mu.Unlock()
				fmt.Fprintf(logFile, "==> restarting the %s: %v\n", name, err)
				return
			}
			p.cmd = next
			p.restartN++
			p.mu.Unlock()
		}
	}()
	return p
}

// kill sends SIGKILL to the running process: a crash. With hold, it is not
// restarted until resume.
func (p *process) kill(hold bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if hold {
		p.hold = make(chan struct{})
	}
	_ = p.cmd.Process.Kill()
}

// resume lets a process held by kill restart.
func (p *process) resume() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.hold != nil {
		close(p.hold)
		p.hold = nil
	}
}

// held is closed when the process may restart.
func (p *process) held() <-chan struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.hold == nil {
		c := make(chan struct{})
		close(c)
		return c
	}
	return p.hold
}

func (p *process) restarts() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.restartN
}

func (p *process) exited() bool {
	p.mu.Lock()
	stopping := p.stopping
	p.mu.Unlock()
	select {
	case <-p.done:
		return !stopping
	default:
		return false
	}
}

// stop ends the process (SIGTERM, then SIGKILL after 30s) and its restarts.
func (p *process) stop() {
	p.resume()
	p.mu.Lock()
	p.stopping = true
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	cmd := p.cmd
	p.mu.Unlock()
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
		_ = cmd.Process.Kill()
		<-p.done
	}
}

// logTails logs the last lines of the processes' logs under dir.
func logTails(t *testing.T, dir string, names ...string) {
	for _, name := range names {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			continue
		}
		lines := strings.Split(strings.TrimSpace(string(b)), "\n")
		t.Logf("%s (last lines):\n%s", name, strings.Join(lines[max(0, len(lines)-25):], "\n"))
	}
}
