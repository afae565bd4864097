package rollout

import (
	"strings"
	"testing"
	"time"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func spec(hash string) Spec {
	return Spec{TemplateHash: hash, Replicas: 2, AutoPromote: true, SmokeTests: true, AvailableTimeout: 5 * time.Minute,
		BakeTime: 5 * time.Minute, ScaleDownDelay: 90 * time.Second, MaxErrorRate: 0.01, MinRequests: 20}
}

// cluster stands in for the Deployment controller: it applies a plan's
// targets; pods become available when ready() is called.
type cluster struct {
	colors map[Color]Deployment
	status Status
	now    time.Time
}

func newCluster() *cluster { return &cluster{colors: map[Color]Deployment{}, now: t0} }

func (c *cluster) step(t *testing.T, s Spec, r Results) Plan {
	t.Helper()
	in := Input{Spec: s, Status: c.status, Colors: copyColors(c.colors), Results: r, Now: c.now}
	p := Next(in)
	again := Next(in)
	if again.Status != p.Status || again.NextCheck != p.NextCheck {
		t.Fatalf("Next is not deterministic")
	}
	if !p.NextCheck.After(c.now) {
		t.Fatalf("next check %v not after now %v", p.NextCheck, c.now)
	}
	c.status = p.Status
	for color, tg := range p.Colors {
		d := c.colors[color]
		d.Exists = true
		if d.TemplateHash != tg.TemplateHash {
			d.Available = 0
		}
		d.TemplateHash = tg.TemplateHash
		if !(tg.ScaledByHPA && d.Replicas > 0) {
			d.Replicas = tg.Replicas
		}
		d.Available = min(d.Available, d.Replicas)
		c.colors[color] = d
	}
	return p
}

func copyColors(m map[Color]Deployment) map[Color]Deployment {
	out := map[Color]Deployment{}
	for k, v := range m {
		out[k] = v
	}
	return out
}

func (c *cluster) ready(color Color) {
	d := c.colors[color]
	d.Available = d.Replicas
	c.colors[color] = d
}

func (c *cluster) install(t *testing.T) {
	t.Helper()
	p := c.step(t, spec("a"), Results{})
	if p.Status.Phase != Deploying || p.Status.ActiveColor != Blue || p.Colors[Blue].TemplateHash != "a" || p.Colors[Blue].Replicas != 2 || p.Colors[Green].Replicas != 0 {
		t.Fatalf("install: %+v", p)
	}
	c.ready(Blue)
	p = c.step(t, spec("a"), Results{})
	if p.Status.Phase != Stable || p.Status.Reason != "Installed" {
		t.Fatalf("installed: %+v", p.Status)
	}
}

func yes() *bool { b := true; return &b }
func no() *bool  { b := false; return &b }

func TestHappyRollout(t *testing.T) {
	c := newCluster()
	c.install(t)
	p := c.step(t, spec("b"), Results{})
	if p.Status.Phase != Deploying || p.Colors[Green].TemplateHash != "b" || p.Colors[Green].Replicas != 2 || p.Status.ActiveColor != Blue {
		t.Fatalf("deploying: %+v", p)
	}
	c.ready(Green)
	p = c.step(t, spec("b"), Results{})
	if p.Status.Phase != Verifying || !p.RunSmokeTests {
		t.Fatalf("verifying: %+v", p)
	}
	p = c.step(t, spec("b"), Results{Smoke: yes()})
	if p.Status.Phase != Analysing || p.Status.ActiveColor != Green || p.Colors[Blue].Replicas != 2 || !p.RunAnalysis {
		t.Fatalf("promoted: %+v", p)
	}
	c.now = c.now.Add(5 * time.Minute)
	p = c.step(t, spec("b"), Results{Analysed: true, Requests: 1000, ServerErr: 2})
	if p.Status.Phase != ScalingDown || p.Colors[Blue].Replicas == 0 {
		t.Fatalf("scaling down starts, old color still up: %+v", p)
	}
	c.now = c.now.Add(89 * time.Second)
	if p = c.step(t, spec("b"), Results{}); p.Status.Phase != ScalingDown || p.Colors[Blue].Replicas == 0 {
		t.Fatalf("before the delay the old color stays: %+v", p)
	}
	c.now = c.now.Add(time.Second)
	p = c.step(t, spec("b"), Results{})
	if p.Status.Phase != Stable || p.Colors[Blue].Replicas != 0 || p.Status.ActiveHash != "b" || p.Status.ActiveColor != Green {
		t.Fatalf("complete: %+v", p)
	}
}

func TestPreviewGetsTheHPAsCapacity(t *testing.T) {
	c := newCluster()
	s := spec("a")
	s.Autoscaling = true
	c.status = Status{}
	p := c.step(t, s, Results{})
	if p.HPAColor != Blue {
		t.Fatalf("HPA on %q", p.HPAColor)
	}
	c.ready(Blue)
	c.step(t, s, Results{})
	// The HPA scaled blue to 7.
	d := c.colors[Blue]
	d.Replicas, d.Available = 7, 7
	c.colors[Blue] = d
	s.TemplateHash = "b"
	p = c.step(t, s, Results{})
	if p.Colors[Green].Replicas != 7 || p.Colors[Blue].Replicas != 7 {
		t.Fatalf("preview must start at the active color's 7 pods: %+v", p.Colors)
	}
	c.ready(Green)
	c.step(t, s, Results{})
	p = c.step(t, s, Results{Smoke: yes()})
	if p.HPAColor != Green || p.Colors[Green].Replicas != 7 {
		t.Fatalf("the HPA moves to green without a dip: %+v, HPA on %s", p.Colors, p.HPAColor)
	}
}

func TestFailures(t *testing.T) {
	cases := []struct {
		name   string
		drive  func(t *testing.T, c *cluster) Plan
		reason string
		active Color
	}{
		{"not available in time", func(t *testing.T, c *cluster) Plan {
			c.step(t, spec("b"), Results{})
			c.now = c.now.Add(5 * time.Minute)
			return c.step(t, spec("b"), Results{})
		}, "NotAvailable", Blue},
		{"smoke test failed", func(t *testing.T, c *cluster) Plan {
			c.step(t, spec("b"), Results{})
			c.ready(Green)
			c.step(t, spec("b"), Results{})
			return c.step(t, spec("b"), Results{Smoke: no(), SmokeMessage: "a forged token was accepted"})
		}, "SmokeTestFailed", Blue},
		{"smoke test never finished", func(t *testing.T, c *cluster) Plan {
			c.step(t, spec("b"), Results{})
			c.ready(Green)
			c.step(t, spec("b"), Results{})
			c.now = c.now.Add(5 * time.Minute)
			return c.step(t, spec("b"), Results{})
		}, "SmokeTestTimeout", Blue},
		{"analysis over threshold", func(t *testing.T, c *cluster) Plan {
			c.step(t, spec("b"), Results{})
			c.ready(Green)
			c.step(t, spec("b"), Results{})
			c.step(t, spec("b"), Results{Smoke: yes()})
			return c.step(t, spec("b"), Results{Analysed: true, Requests: 100, ServerErr: 5})
		}, "AnalysisFailed", Blue},
		{"abort during analysis", func(t *testing.T, c *cluster) Plan {
			c.step(t, spec("b"), Results{})
			c.ready(Green)
			c.step(t, spec("b"), Results{})
			c.step(t, spec("b"), Results{Smoke: yes()})
			return c.step(t, spec("b"), Results{Abort: true})
		}, "Aborted", Blue},
		{"abort while deploying", func(t *testing.T, c *cluster) Plan {
			c.step(t, spec("b"), Results{})
			return c.step(t, spec("b"), Results{Abort: true})
		}, "Aborted", Blue},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := newCluster()
			c.install(t)
			p := tc.drive(t, c)
			if p.Status.Phase != RolledBack || p.Status.Reason != tc.reason || p.Status.ActiveColor != tc.active || p.Status.FailedHash != "b" || p.Status.ActiveHash != "a" {
				t.Fatalf("status %+v", p.Status)
			}
			if p.Colors[Green].Replicas != 0 || p.Colors[Blue].Replicas != 2 {
				t.Errorf("the failed color must scale down, the good one stay: %+v", p.Colors)
			}
			if !p.Transitioned || p.Message == "" {
				t.Errorf("a rollback must transition with a reason: %+v", p)
			}
			// The failed template is not retried.
			c.now = c.now.Add(time.Hour)
			if p := c.step(t, spec("b"), Results{}); p.Status.Phase != RolledBack || p.Transitioned || !strings.Contains(p.Message, "not retried") {
				t.Errorf("failed template retried: %+v", p)
			}
			// A new template rolls out again.
			if p := c.step(t, spec("c"), Results{}); p.Status.Phase != Deploying || p.Colors[Green].TemplateHash != "c" {
				t.Errorf("a new template after a rollback: %+v", p)
			}
		})
	}
}

// awaitPromotion installs, rolls s (with autoPromote false) out to green
// and passes its smoke tests.
func awaitPromotion(t *testing.T, c *cluster, s Spec) {
	t.Helper()
	s.AutoPromote = false
	c.install(t)
	c.step(t, s, Results{})
	c.ready(Green)
	c.step(t, s, Results{})
	p := c.step(t, s, Results{Smoke: yes()})
	if p.Status.Phase != Promoting || p.Status.ActiveColor != Blue || p.Status.CanaryWeight != 0 {
		t.Fatalf("awaiting promotion: %+v", p.Status)
	}
}

func TestManualPromotion(t *testing.T) {
	c := newCluster()
	s := spec("b")
	awaitPromotion(t, c, s)
	s.AutoPromote = false
	p := c.step(t, s, Results{Smoke: yes()})
	if p.Status.Phase != Promoting {
		t.Fatalf("promoted without the annotation: %+v", p.Status)
	}
	p = c.step(t, s, Results{Smoke: yes(), Promote: true})
	if p.Status.Phase != Analysing || p.Status.ActiveColor != Green {
		t.Fatalf("after the promote annotation: %+v", p.Status)
	}
}

// TestRestartMidRollout: everything Next needs is in status and the objects,
// so a restarted operator continues where the old one was.
func TestRestartMidRollout(t *testing.T) {
	c := newCluster()
	c.install(t)
	c.step(t, spec("b"), Results{})
	c.ready(Green)
	c.step(t, spec("b"), Results{})
	// A new process: the same status and objects, no memory.
	restarted := &cluster{colors: copyColors(c.colors), status: c.status, now: c.now.Add(10 * time.Second)}
	p := restarted.step(t, spec("b"), Results{})
	if p.Status.Phase != Verifying || !p.RunSmokeTests || p.Transitioned {
		t.Fatalf("after a restart in Verifying: %+v", p)
	}
	p = restarted.step(t, spec("b"), Results{Smoke: yes()})
	if p.Status.Phase != Analysing {
		t.Fatalf("continues: %+v", p.Status)
	}
}

func TestDegradedAndRevert(t *testing.T) {
	c := newCluster()
	c.install(t)
	d := c.colors[Blue]
	d.Available = 1
	c.colors[Blue] = d
	if p := c.step(t, spec("a"), Results{}); p.Status.Phase != Degraded || !p.Transitioned {
		t.Fatalf("degraded: %+v", p.Status)
	}
	c.ready(Blue)
	if p := c.step(t, spec("a"), Results{}); p.Status.Phase != Stable {
		t.Fatalf("recovered: %+v", p.Status)
	}
	// A rollout the user reverts before it finishes is cancelled.
	c.step(t, spec("b"), Results{})
	if p := c.step(t, spec("a"), Results{}); p.Status.Phase != Stable || p.Colors[Green].Replicas != 0 {
		t.Fatalf("reverted: %+v", p)
	}
}

func TestJudgeCapacity(t *testing.T) {
	cases := []struct {
		name                         string
		desired, available, previous int32
		wasLost                      bool
		lost, ok                     bool
		reason                       string
	}{
		{"steady", 4, 4, 4, false, false, true, ReasonAllAvailable},
		{"HPA scale-up 4 to 6 in progress", 6, 4, 4, false, false, true, ReasonScalingUp},
		{"scale-up half way", 6, 5, 4, false, false, true, ReasonScalingUp},
		{"a pod lost", 4, 3, 4, false, true, false, ReasonCapacityLost},
		{"a pod lost during a scale-up", 6, 4, 5, false, true, false, ReasonCapacityLost},
		{"scale-down 6 to 4, pods still terminating", 4, 6, 6, false, false, true, ReasonAllAvailable},
		{"scale-down 6 to 4 done", 4, 4, 6, false, false, true, ReasonAllAvailable},
		{"a pod lost during a scale-down", 4, 3, 6, false, true, false, ReasonCapacityLost},
		{"zero available", 4, 0, 0, false, true, false, ReasonCapacityLost},
		{"zero available after a scale-up from zero", 2, 0, 0, false, true, false, ReasonCapacityLost},
		{"after a loss, pods coming back", 4, 3, 2, true, true, false, ReasonCapacityLost},
		{"after a loss, all back", 4, 4, 3, true, false, true, ReasonAllAvailable},
		{"no Deployment", 0, 0, 3, false, true, false, ReasonCapacityLost},
	}
	for _, c := range cases {
		got := JudgeCapacity(Blue, c.desired, c.available, c.previous, c.wasLost)
		if got.Lost != c.lost || got.OK != c.ok || got.Reason != c.reason || got.Message == "" {
			t.Errorf("%s: %+v", c.name, got)
		}
	}
}

// scale sets what the Deployment controller reports for a color.
func (c *cluster) scale(color Color, replicas, available int32) {
	d := c.colors[color]
	d.Replicas, d.Available = replicas, available
	c.colors[color] = d
}

// TestHealthIsLostCapacity drives the state machine through an HPA's
// scale-up and scale-down and through pod losses: only losing pods that
// served makes the AuthServer Degraded.
func TestHealthIsLostCapacity(t *testing.T) {
	s := spec("a")
	s.Autoscaling, s.Replicas = true, 2
	type want struct {
		phase     Phase
		reason    string
		ok        bool
		event     bool
		available int32
	}
	steps := []struct {
		name                string
		replicas, available int32
		want                want
	}{
		{"HPA scales 2 to 4", 4, 2, want{Stable, "Installed", true, false, 2}},
		{"scale-up 4 done", 4, 4, want{Stable, "Installed", true, false, 4}},
		{"HPA scales 4 to 6", 6, 4, want{Stable, "Installed", true, false, 4}},
		{"one new pod ready", 6, 5, want{Stable, "Installed", true, false, 5}},
		{"a pod that served is lost", 6, 4, want{Degraded, ReasonCapacityLost, false, true, 4}},
		{"pods come back, not all", 6, 5, want{Degraded, ReasonCapacityLost, false, false, 5}},
		{"all back", 6, 6, want{Stable, ReasonCapacityRestored, true, true, 6}},
		{"HPA scales 6 to 3", 3, 6, want{Stable, ReasonCapacityRestored, true, false, 6}},
		{"scale-down done", 3, 3, want{Stable, ReasonCapacityRestored, true, false, 3}},
		{"zero available", 3, 0, want{Degraded, ReasonCapacityLost, false, true, 0}},
		{"HPA scales to 5 while nothing serves", 5, 0, want{Degraded, ReasonCapacityLost, false, false, 0}},
		{"all 5 available", 5, 5, want{Stable, ReasonCapacityRestored, true, true, 5}},
	}
	c := newCluster()
	c.step(t, s, Results{})
	c.ready(Blue)
	c.step(t, s, Results{})
	for _, st := range steps {
		c.scale(Blue, st.replicas, st.available)
		p := c.step(t, s, Results{})
		got := want{p.Status.Phase, p.Status.Reason, p.Capacity.OK, p.Transitioned, p.Status.Available}
		if got != st.want || p.Status.CapacityLost == p.Capacity.OK {
			t.Fatalf("%s: got %+v, want %+v (capacity %+v)", st.name, got, st.want, p.Capacity)
		}
		if p.Capacity.Lost && p.Message != p.Capacity.Message {
			t.Errorf("%s: message %q does not say what was lost", st.name, p.Message)
		}
		// The same observation again decides the same (no flapping).
		if again := c.step(t, s, Results{}); again.Status.Phase != st.want.phase || again.Transitioned || again.Capacity.OK != st.want.ok {
			t.Fatalf("%s: the next reconcile flaps: %+v", st.name, again.Status)
		}
	}
}

// TestCapacityDuringARollout: the HPA scaling the active color up mid-rollout
// is no loss; the preview follows the active color's count; a lost pod is
// reported without interrupting the rollout; a promotion starts a new
// baseline.
func TestCapacityDuringARollout(t *testing.T) {
	s := spec("a")
	s.Autoscaling = true
	c := newCluster()
	c.step(t, s, Results{})
	c.ready(Blue)
	c.step(t, s, Results{})
	c.scale(Blue, 4, 4)
	c.step(t, s, Results{})
	s.TemplateHash = "b"
	if p := c.step(t, s, Results{}); p.Status.Phase != Deploying || p.Colors[Green].Replicas != 4 {
		t.Fatalf("deploying: %+v", p)
	}
	c.scale(Blue, 6, 4)
	p := c.step(t, s, Results{})
	if p.Status.Phase != Deploying || !p.Capacity.OK || p.Capacity.Reason != ReasonScalingUp || p.Colors[Green].Replicas != 6 {
		t.Fatalf("HPA scale-up while deploying: %+v", p)
	}
	c.scale(Blue, 6, 3)
	p = c.step(t, s, Results{})
	if p.Status.Phase != Deploying || p.Capacity.OK || !p.Status.CapacityLost {
		t.Fatalf("a lost pod while deploying must show, without stopping the rollout: %+v", p)
	}
	c.scale(Blue, 6, 6)
	c.ready(Green)
	if p = c.step(t, s, Results{}); p.Status.Phase != Verifying || !p.Capacity.OK || p.Status.CapacityLost {
		t.Fatalf("recovered, verifying: %+v", p)
	}
	p = c.step(t, s, Results{Smoke: yes()})
	if p.Status.Phase != Analysing || p.Status.ActiveColor != Green || !p.Capacity.OK || p.Status.Available != 6 {
		t.Fatalf("promoted to green with its 6 pods: %+v", p)
	}
	// The HPA now scales green up: not a loss.
	c.scale(Green, 8, 6)
	if p = c.step(t, s, Results{}); !p.Capacity.OK || p.Capacity.Reason != ReasonScalingUp {
		t.Fatalf("HPA scale-up after promotion: %+v", p.Capacity)
	}
}
