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
