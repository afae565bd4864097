package e2e

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	authv1alpha1 "github.com/authframework/authframework/api/v1alpha1"
	"github.com/authframework/authframework/controllers"
	"github.com/authframework/authframework/test/testenv"
	"github.com/authframework/authframework/webhook/auth"
)

// proxyAgent marks the sub-requests of the test's stand-in proxy, so the
// stand-in servers count those and not the operator's smoke tests.
const proxyAgent = "e2e-subrequest-proxy"

// activeEndpoints is what a proxy that reads EndpointSlices (kube-proxy,
// ingress-nginx, Envoy Gateway) sees of the Service name: the ready
// endpoints of every slice labelled with it, whoever manages the slice, one
// per address, sorted; each is mapped to the color of the pod that has the
// address ("" when no pod has it: a request there would fail). A
// terminating pod still has its address: its process drains before it
// goes.
func activeEndpoints(ctx context.Context, cl client.Client, ns, name string) ([]string, error) {
	var list discoveryv1.EndpointSliceList
	if err := cl.List(ctx, &list, client.InNamespace(ns), client.MatchingLabels{discoveryv1.LabelServiceName: name}); err != nil {
		return nil, err
	}
	var pods corev1.PodList
	if err := cl.List(ctx, &pods, client.InNamespace(ns)); err != nil {
		return nil, err
	}
	colorOf := map[string]string{}
	for _, p := range pods.Items {
		if p.Status.PodIP != "" {
			colorOf[p.Status.PodIP] = p.Labels[controllers.LabelColor]
		}
	}
	seen := map[string]bool{}
	var addrs []string
	for _, s := range list.Items {
		for _, e := range s.Endpoints {
			if ptr.Deref(e.Conditions.Ready, true) && !seen[e.Addresses[0]] {
				seen[e.Addresses[0]] = true
				addrs = append(addrs, e.Addresses[0])
			}
		}
	}
	slices.Sort(addrs)
	colors := make([]string, len(addrs))
	for i, a := range addrs {
		colors[i] = colorOf[a]
	}
	return colors, nil
}

// TestSubRequestCanaryOnSimulatedCluster: during a stepped rollout through
// an HTTPRoute, the external-auth sub-requests that proxies send to the
// active Service move in the same steps. A simulated cluster
// (kube-controller-manager, kube-scheduler, a kwok node) runs the pods and
// the EndpointSlice controller for real; a stand-in proxy resolves the
// active Service as kube-proxy does (every EndpointSlice of it, the
// operator's included), sends validations round-robin over the endpoints,
// each to the real auth server process standing in for the color of the
// pod behind the address, and the servers count what they served per color.
// The share on green follows 20, 50, 80%; an abort returns all of it to
// blue; a second rollout goes through the steps to promotion; no
// validation fails.
func TestSubRequestCanaryOnSimulatedCluster(t *testing.T) {
	gatewayCRDs, err := testenv.GatewayAPICRDs(testenv.RepoRoot())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sim := startSim(t, ctx, gatewayCRDs)
	cl, clk, urls := sim.cl, sim.clk, sim.urls

	// A real auth server per color, counting the proxy's validations it
	// answered 200.
	served := map[string]*atomic.Int64{"blue": {}, "green": {}}
	key := types.NamespacedName{Namespace: "default", Name: "auth"}
	for _, c := range []authv1alpha1.Color{authv1alpha1.Blue, authv1alpha1.Green} {
		p := testenv.StartAuthServer(t, ctx, sim.cfg, sim.scheme, auth.ProcessOptions{RevocationNamespace: "default",
			Server: auth.Options{Clock: clk, CacheSize: 1000}})
		count := served[string(c)]
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			rec := &statusRecorder{ResponseWriter: w, code: http.StatusOK}
			p.Handler.ServeHTTP(rec, r)
			if r.UserAgent() == proxyAgent && rec.code == http.StatusOK {
				count.Add(1)
			}
		}))
		defer srv.Close()
		urls.Set(key, c, srv.URL)
	}

	ns := "default"
	sim.ordersAccount(t, ctx, ns)
	must(t, cl.Create(ctx, &gatewayv1.HTTPRoute{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "auth-api"}, Spec: gatewayv1.HTTPRouteSpec{
		CommonRouteSpec: gatewayv1.CommonRouteSpec{ParentRefs: []gatewayv1.ParentReference{{Name: "eg"}}},
		Rules: []gatewayv1.HTTPRouteRule{{BackendRefs: []gatewayv1.HTTPBackendRef{{BackendRef: gatewayv1.BackendRef{
			BackendObjectReference: gatewayv1.BackendObjectReference{Name: "auth", Port: ptr.To(gatewayv1.PortNumber(80))}}}}}}}}))
	must(t, cl.Create(ctx, &authv1alpha1.AuthServer{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "auth"}, Spec: authv1alpha1.AuthServerSpec{
		Image: "ghcr.io/authframework/authframework:v1", Port: 8080, Replicas: ptr.To[int32](4),
		Rollout: authv1alpha1.RolloutSpec{AvailableTimeout: metav1.Duration{Duration: 2 * time.Minute},
			Analysis:       authv1alpha1.AnalysisSpec{BakeTime: metav1.Duration{Duration: time.Minute}, MinRequests: ptr.To[int32](1000000)},
			ScaleDownDelay: metav1.Duration{Duration: 90 * time.Second},
			TrafficRouting: &authv1alpha1.TrafficRoutingSpec{HTTPRoute: "auth-api", Steps: []int32{20, 50, 80}, StepInterval: metav1.Duration{Duration: 30 * time.Second}}},
	}}))
	defer func() {
		if t.Failed() {
			var as authv1alpha1.AuthServer
			_ = cl.Get(context.Background(), key, &as)
			t.Logf("authserver status %+v", as.Status)
		}
	}()

	phase := func(want authv1alpha1.RolloutPhase, weight int32) *authv1alpha1.AuthServer {
		t.Helper()
		var as authv1alpha1.AuthServer
		testenv.Until(t, 2*time.Minute, fmt.Sprintf("phase %s at %d%%", want, weight), func() bool {
			return cl.Get(ctx, key, &as) == nil && as.Status.Phase == want && as.Status.CanaryWeight == weight
		})
		return &as
	}
	as := phase(authv1alpha1.PhaseStable, 0)

	tok := sim.token(t, ctx, key)

	// The stand-in proxy: one round over the active Service's endpoints per
	// resolution, as a proxy programmed from the EndpointSlices would.
	colorURL := map[string]string{"blue": urls.URL(as, true), "green": urls.URL(as, false)}
	var sent, failures atomic.Int64
	stop, loopDone := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(loopDone)
		for {
			select {
			case <-stop:
				return
			default:
			}
			colors, err := activeEndpoints(ctx, cl, ns, "auth")
			if err != nil {
				continue // the test's own read, not the proxy's traffic
			}
			if len(colors) == 0 {
				sent.Add(1)
				failures.Add(1) // no endpoint: the proxy answers 503
				continue
			}
			for _, c := range colors {
				sent.Add(1)
				u, ok := colorURL[c]
				if !ok {
					failures.Add(1) // an address no live pod has
					continue
				}
				if !validate(u, tok, proxyAgent) {
					failures.Add(1)
				}
			}
		}
	}()
	defer func() {
		select {
		case <-stop:
		default:
			close(stop)
		}
		<-loopDone
	}()

	// share waits until the proxy resolves the active Service to the
	// expected mix (the EndpointSlice controller follows the operator's
	// writes within a moment), then measures which color served the next
	// 400 validations.
	share := func(what string, wantPercent int) float64 {
		t.Helper()
		testenv.Until(t, time.Minute, what+": the proxy resolves the expected mix", func() bool {
			colors, err := activeEndpoints(ctx, cl, ns, "auth")
			green := 0
			for _, c := range colors {
				if c == "green" {
					green++
				}
			}
			return err == nil && len(colors) > 0 && 100*green == wantPercent*len(colors)
		})
		blue0, green0 := served["blue"].Load(), served["green"].Load()
		testenv.Until(t, time.Minute, what+": 400 validations", func() bool {
			return served["blue"].Load()+served["green"].Load()-blue0-green0 >= 400
		})
		blue, green := served["blue"].Load()-blue0, served["green"].Load()-green0
		got := 100 * float64(green) / float64(blue+green)
		t.Logf("%s: green served %d of %d sub-requests (%.1f%%)", what, green, blue+green, got)
		if d := got - float64(wantPercent); d > 2 || d < -2 {
			t.Errorf("%s: green served %.1f%% of the sub-requests, want %d%%", what, got, wantPercent)
		}
		return got
	}
	routeAt := func(weight int32) {
		t.Helper()
		testenv.Until(t, time.Minute, fmt.Sprintf("the HTTPRoute at %d%%", weight), func() bool {
			var rt gatewayv1.HTTPRoute
			if cl.Get(ctx, types.NamespacedName{Namespace: ns, Name: "auth-api"}, &rt) != nil {
				return false
			}
			refs := rt.Spec.Rules[0].BackendRefs
			if weight == 0 {
				return len(refs) == 1 && refs[0].Name == "auth" && ptr.Deref(refs[0].Weight, 1) == 1
			}
			return len(refs) == 2 && ptr.Deref(refs[0].Weight, 0) == 100-weight && refs[1].Name == "auth-preview" && ptr.Deref(refs[1].Weight, 0) == weight
		})
	}
	step := func(weight int32, want int) {
		t.Helper()
		as := phase(authv1alpha1.PhaseCanary, weight)
		if as.Status.ServiceCanaryWeight != int32(want) {
			t.Errorf("at %d%%: status.serviceCanaryWeight %d, want %d", weight, as.Status.ServiceCanaryWeight, want)
		}
		routeAt(weight)
		share(fmt.Sprintf("step %d%%", weight), want)
	}
	next := func() {
		clk.Step(30 * time.Second)
		testenv.Poke(t, cl, &authv1alpha1.AuthServer{}, key)
	}
	// With 4 pods a color the steps are exact: 1 of 5, 4 of 8 and 4 of 5
	// endpoints on green.
	steps := func() {
		t.Helper()
		for i, w := range []int32{20, 50, 80} {
			if i > 0 {
				next()
			}
			step(w, int(w))
		}
	}
	share("stable on blue", 0)

	// v2: 20, 50, 80% of the sub-requests, then an abort at 80%.
	testenv.Update(t, cl, as, func() { as.Spec.Image = "ghcr.io/authframework/authframework:v2" })
	steps()
	testenv.Annotate(t, cl, &authv1alpha1.AuthServer{}, key, authv1alpha1.AnnotationAbort, "1")
	as = phase(authv1alpha1.PhaseRolledBack, 0)
	greenAtAbort := served["green"].Load()
	if as.Status.ServiceCanaryWeight != 0 || as.Status.ActiveColor != authv1alpha1.Blue {
		t.Errorf("aborted: %+v", as.Status)
	}
	var svc corev1.Service
	must(t, cl.Get(ctx, key, &svc))
	if svc.Spec.Selector[controllers.LabelColor] != "blue" {
		t.Errorf("after the abort the active Service selects %v", svc.Spec.Selector)
	}
	routeAt(0)
	share("after the abort", 0)
	t.Logf("after the abort was recorded, green still served %d sub-requests while the EndpointSlice controller caught up", served["green"].Load()-greenAtAbort)

	// v3 goes through the steps to promotion: all of it on green.
	testenv.Update(t, cl, as, func() { as.Spec.Image = "ghcr.io/authframework/authframework:v3" })
	steps()
	next()
	as = phase(authv1alpha1.PhaseAnalysing, 0)
	if as.Status.ActiveColor != authv1alpha1.Green || as.Status.ServiceCanaryWeight != 0 {
		t.Errorf("promoted: %+v", as.Status)
	}
	routeAt(0)
	share("promoted", 100)

	close(stop)
	<-loopDone
	t.Logf("%d sub-requests through the active Service's endpoints during two stepped rollouts and an abort, %d failed", sent.Load(), failures.Load())
	if failures.Load() != 0 {
		t.Errorf("%d of %d sub-requests failed", failures.Load(), sent.Load())
	}
}

// statusRecorder remembers the status a handler wrote.
type statusRecorder struct {
	http.ResponseWriter
	code int
}

func (r *statusRecorder) WriteHeader(code int) {
	r.code = code
	r.ResponseWriter.WriteHeader(code)
}
