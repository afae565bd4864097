package rollout

import (
	"strings"
	"testing"
	"time"
)

func canarySpec(hash string) Spec {
	s := spec(hash)
	s.CanarySteps, s.StepInterval = []int32{10, 50}, time.Minute
	return s
}

// toCanary rolls template b out to green and passes its smoke tests: the
// first canary step.
func toCanary(t *testing.T, c *cluster) Plan {
	t.Helper()
	c.install(t)
	c.step(t, canarySpec("b"), Results{})
	c.ready(Green)
	c.step(t, canarySpec("b"), Results{})
	p := c.step(t, canarySpec("b"), Results{Smoke: yes()})
	if p.Status.Phase != Canary || p.Status.Reason != "CanaryStep" || p.Status.CanaryWeight != 10 || !p.Transitioned {
		t.Fatalf("first step: %+v", p)
	}
	return p
}

func TestCanarySteps(t *testing.T) {
	c := newCluster()
	p := toCanary(t, c)
	// The active Service stays on blue; the canary's metrics are read.
	if p.Status.ActiveColor != Blue || !p.RunAnalysis || p.AnalyseColor != Green || p.HPAColor != "" {
		t.Fatalf("canary at 10%%: %+v", p)
	}
	if p.Colors[Green].Replicas != 2 || p.Colors[Green].TemplateHash != "b" || p.Colors[Blue].Replicas != 2 {
		t.Fatalf("both colors at full size during the canary: %+v", p.Colors)
	}
	if p.NextCheck.After(c.now.Add(time.Minute)) {
		t.Errorf("next check %v is after the step ends", p.NextCheck)
	}
	c.now = c.now.Add(59 * time.Second)
	if p = c.step(t, canarySpec("b"), Results{Analysed: true, Requests: 50}); p.Status.CanaryWeight != 10 || p.Transitioned {
		t.Fatalf("a step holds for the interval: %+v", p)
	}
	c.now = c.now.Add(time.Second)
	p = c.step(t, canarySpec("b"), Results{Analysed: true, Requests: 100})
	if p.Status.Phase != Canary || p.Status.CanaryWeight != 50 || !p.Transitioned || !strings.Contains(p.Message, "50%") {
		t.Fatalf("second step: %+v", p)
	}
	// A restarted operator continues the step from status.
	restarted := &cluster{colors: copyColors(c.colors), status: c.status, now: c.now.Add(30 * time.Second)}
	if p = restarted.step(t, canarySpec("b"), Results{}); p.Status.CanaryWeight != 50 || p.Transitioned {
		t.Fatalf("after a restart mid-step: %+v", p)
	}
	c.now = c.now.Add(time.Minute)
	p = c.step(t, canarySpec("b"), Results{Analysed: true, Requests: 400, ServerErr: 1})
	if p.Status.Phase != Analysing || p.Status.ActiveColor != Green || p.Status.CanaryWeight != 0 || p.Colors[Blue].Replicas != 2 {
		t.Fatalf("after the last step the Service switches: %+v", p)
	}
}

func TestCanaryFailures(t *testing.T) {
	cases := []struct {
		name   string
		drive  func(t *testing.T, c *cluster) Plan
		reason string
	}{
		{"analysis over threshold", func(t *testing.T, c *cluster) Plan {
			return c.step(t, canarySpec("b"), Results{Analysed: true, Requests: 100, ServerErr: 5})
		}, "AnalysisFailed"},
		{"analysis over threshold at a later step", func(t *testing.T, c *cluster) Plan {
			c.now = c.now.Add(time.Minute)
			c.step(t, canarySpec("b"), Results{})
			return c.step(t, canarySpec("b"), Results{Analysed: true, Requests: 100, ServerErr: 5})
		}, "AnalysisFailed"},
		{"abort", func(t *testing.T, c *cluster) Plan {
			return c.step(t, canarySpec("b"), Results{Abort: true})
		}, "Aborted"},
		{"the Ingress went away", func(t *testing.T, c *cluster) Plan {
			return c.step(t, canarySpec("b"), Results{RoutingProblem: "Ingress api not found"})
		}, "TrafficRoutingFailed"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := newCluster()
			toCanary(t, c)
			p := tc.drive(t, c)
			if p.Status.Phase != RolledBack || p.Status.Reason != tc.reason || p.Status.ActiveColor != Blue || p.Status.CanaryWeight != 0 || p.Status.FailedHash != "b" {
				t.Fatalf("status %+v", p.Status)
			}
			if p.Colors[Green].Replicas != 0 || p.Colors[Blue].Replicas != 2 || !p.Transitioned {
				t.Errorf("the canary must scale down, blue stay: %+v", p)
			}
		})
	}
}

func TestCanaryNeedsRouting(t *testing.T) {
	c := newCluster()
	c.install(t)
	c.step(t, canarySpec("b"), Results{})
	c.ready(Green)
	c.step(t, canarySpec("b"), Results{})
	p := c.step(t, canarySpec("b"), Results{Smoke: yes(), RoutingProblem: "Ingress api has no path to Service auth"})
	if p.Status.Phase != RolledBack || p.Status.Reason != "TrafficRoutingFailed" || p.Status.CanaryWeight != 0 || !strings.Contains(p.Message, "no path") {
		t.Fatalf("no canary without an Ingress to copy: %+v", p)
	}
}

func TestCanaryAfterManualPromotion(t *testing.T) {
	c := newCluster()
	s := canarySpec("b")
	awaitPromotion(t, c, s)
	s.AutoPromote = false
	if p := c.step(t, s, Results{Promote: true}); p.Status.Phase != Canary || p.Status.CanaryWeight != 10 {
		t.Fatalf("the promote annotation starts the steps: %+v", p.Status)
	}
}

func TestCanarySpecChanges(t *testing.T) {
	c := newCluster()
	toCanary(t, c)
	// A third template: deployed and smoke-tested before any traffic.
	p := c.step(t, canarySpec("c"), Results{})
	if p.Status.Phase != Deploying || p.Status.CanaryWeight != 0 || p.Colors[Green].TemplateHash != "c" || p.RunAnalysis {
		t.Fatalf("a new template mid-canary: %+v", p)
	}

	c = newCluster()
	toCanary(t, c)
	p = c.step(t, canarySpec("a"), Results{})
	if p.Status.Phase != Stable || p.Status.Reason != "Reverted" || p.Status.CanaryWeight != 0 || p.Colors[Green].Replicas != 0 {
		t.Fatalf("reverted mid-canary: %+v", p)
	}
}
