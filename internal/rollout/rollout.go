// Package rollout decides the blue-green rollout of an AuthServer as a pure
// function of its spec, what was observed (the two Deployments, the HPA,
// smoke test and analysis results) and the time. The controller reads,
// calls Next, and writes what the plan says; everything it needs to resume
// after a restart is in the objects and in status, never in memory.
package rollout

import (
	"fmt"
	"time"
)

// Color is one of the two Deployments.
type Color string

// The two colors.
const (
	Blue  Color = "blue"
	Green Color = "green"
)

// Other is the other color.
func (c Color) Other() Color {
	if c == Green {
		return Blue
	}
	return Green
}

// Phase is where the rollout is.
type Phase string

// The phases (the AuthServer API documents each).
const (
	Stable      Phase = "Stable"
	Deploying   Phase = "Deploying"
	Verifying   Phase = "Verifying"
	Promoting   Phase = "Promoting"
	Canary      Phase = "Canary"
	Analysing   Phase = "Analysing"
	ScalingDown Phase = "ScalingDown"
	RolledBack  Phase = "RolledBack"
	Degraded    Phase = "Degraded"
)

// Spec is what of the AuthServer spec the rollout depends on.
type Spec struct {
	// TemplateHash identifies the desired pod template.
	TemplateHash string
	// Replicas is the fixed count, or the HPA's minimum when autoscaling.
	Replicas         int32
	Autoscaling      bool
	AutoPromote      bool
	SmokeTests       bool
	AvailableTimeout time.Duration
	BakeTime         time.Duration
	ScaleDownDelay   time.Duration
	// MaxErrorRate is the highest share of 5xx responses (0..1) the new
	// color may serve during analysis; MinRequests are needed to judge.
	MaxErrorRate float64
	MinRequests  int64
	// CanarySteps are the weights, in percent and increasing, the new color
	// gets through the HTTPRoute or canary Ingress (and the active
	// Service's endpoints, SplitService) before the full switch; each holds
	// for StepInterval while the new color is analysed. None: switch at
	// once.
	CanarySteps  []int32
	StepInterval time.Duration
}

// Status is the rollout state kept in the AuthServer's status.
type Status struct {
	Phase          Phase
	Reason         string
	ActiveColor    Color
	ActiveHash     string
	FailedHash     string
	PhaseStartedAt time.Time
	// CanaryWeight is the share of traffic, in percent, the HTTPRoute or
	// canary Ingress sends to the new color; 0 when there is no canary.
	CanaryWeight int32
	// Available is how many pods of the active color were available when it
	// was last observed (status.availableReplicas), and CapacityLost whether
	// it had then lost pods that were available (the Available condition is
	// False with reason CapacityLost). From these two, health is judged as
	// lost capacity, with no memory outside status.
	Available    int32
	CapacityLost bool
}

// Deployment is what was observed of one color's Deployment.
type Deployment struct {
	Exists       bool
	TemplateHash string
	Replicas     int32
	Available    int32
}

// Results are the checks the controller ran and the user's requests.
type Results struct {
	// Smoke is nil until the smoke tests have run against the preview.
	Smoke *bool
	// SmokeMessage says why they failed.
	SmokeMessage string
	// Requests and ServerErrors were served by the new color since
	// promotion; Analysed is false until they were read.
	Analysed            bool
	Requests, ServerErr int64
	Promote, Abort      bool
	// RoutingProblem says why the canary cannot be routed (the named
	// HTTPRoute or Ingress is missing or cannot be weighted safely).
	RoutingProblem string
}

// Input is everything Next decides from.
type Input struct {
	Spec    Spec
	Status  Status
	Colors  map[Color]Deployment
	Results Results
	Now     time.Time
}

// Target is what one color's Deployment should be.
type Target struct {
	TemplateHash string
	Replicas     int32
	// ScaledByHPA: the HPA owns spec.replicas; write it only at creation.
	ScaledByHPA bool
}

// Reasons of the Available condition (Capacity.Reason).
const (
	// ReasonAllAvailable: every desired pod of the active color is available.
	ReasonAllAvailable = "AllAvailable"
	// ReasonScalingUp: fewer pods are available than desired, but every pod
	// that was available still is (an HPA or a user raised the count).
	ReasonScalingUp = "ScalingUp"
	// ReasonCapacityLost: pods of the active color that were available no
	// longer are, or none is; the AuthServer is Degraded when Stable.
	ReasonCapacityLost = "CapacityLost"
	// ReasonCapacityRestored: every desired pod is available again after a
	// loss (the phase reason leaving Degraded).
	ReasonCapacityRestored = "CapacityRestored"
	// ReasonInstalling: the first pods have not become available yet.
	ReasonInstalling = "Installing"
)

// Capacity is the judgement of the active color's serving capacity.
type Capacity struct {
	// Desired and Available are the active color's pods.
	Desired, Available int32
	// OK: it serves and has lost no pod that was available (the Available
	// condition). Lost: it lost pods that were available, or has none.
	OK, Lost        bool
	Reason, Message string
}

// JudgeCapacity says whether a color lost capacity, from its desired and
// available pods now, the pods available at the previous observation, and
// whether it had lost capacity then. Health is lost capacity, not the
// distance to a new desired count: a scale-up in progress (available below
// desired, but not below what was available before) is not a loss, and
// neither is a scale-down. Losing a pod that was available is, as is having
// none; after a loss, capacity counts as restored only once every desired pod
// is available, so the judgement does not flap while pods come back.
func JudgeCapacity(color Color, desired, available, previous int32, wasLost bool) Capacity {
	desired = max(desired, 1)
	c := Capacity{Desired: desired, Available: available}
	switch {
	case available == 0:
		c.Lost, c.Reason, c.Message = true, ReasonCapacityLost, fmt.Sprintf("%s has no available pod of %d", color, desired)
	case wasLost && available < desired:
		c.Lost, c.Reason, c.Message = true, ReasonCapacityLost, fmt.Sprintf("%s has %d of %d pods available after losing pods that served", color, available, desired)
	case available < min(desired, previous):
		c.Lost, c.Reason, c.Message = true, ReasonCapacityLost, fmt.Sprintf("%s has %d of %d pods available, down from %d", color, available, desired, previous)
	case available < desired:
		c.OK, c.Reason, c.Message = true, ReasonScalingUp, fmt.Sprintf("%s has %d of %d pods available and is scaling up; no pod that served was lost", color, available, desired)
	default:
		c.OK, c.Reason, c.Message = true, ReasonAllAvailable, fmt.Sprintf("%s has %d of %d pods available", color, available, desired)
	}
	return c
}

// Plan is what the controller should make true, and when to look again.
type Plan struct {
	Status  Status
	Message string
	// Capacity is the active color's health, for the Available and Ready
	// conditions.
	Capacity Capacity
	Colors   map[Color]Target
	// HPAColor is the Deployment the HPA scales (empty without autoscaling).
	HPAColor Color
	// RunSmokeTests asks for smoke tests against the preview color now.
	RunSmokeTests bool
	// RunAnalysis asks for the new color's metrics; AnalyseColor is the
	// color to read (the active one after promotion, the canary before).
	RunAnalysis  bool
	AnalyseColor Color
	// Transitioned is set when the phase changed: a condition and an event.
	Transitioned bool
	NextCheck    time.Time
}

// poll is how often an unfinished step is looked at again.
const poll = 5 * time.Second

// Next decides the next step.
func Next(in Input) Plan {
	now := in.Now.Truncate(time.Second)
	st := in.Status
	if st.ActiveColor == "" {
		st = Status{Phase: Deploying, Reason: ReasonInstalling, ActiveColor: Blue, ActiveHash: in.Spec.TemplateHash, PhaseStartedAt: now}
	}
	d := decider{in: in, now: now, st: st}
	return d.decide()
}

type decider struct {
	in  Input
	now time.Time
	st  Status
	msg string
}

func (d *decider) active() Deployment { return d.in.Colors[d.st.ActiveColor] }
func (d *decider) idle() Deployment   { return d.in.Colors[d.st.ActiveColor.Other()] }

// capacity judges the active color against what status says it had. After
// the active color changed (promotion, rollback) there is nothing to compare
// with, so only having no pod is a loss.
func (d *decider) capacity() Capacity {
	a := d.active()
	if d.st.Reason == ReasonInstalling {
		return Capacity{Desired: max(a.Replicas, 1), Available: a.Available, Reason: ReasonInstalling,
			Message: fmt.Sprintf("%s has %d of %d pods available; nothing has served yet", d.st.ActiveColor, a.Available, max(a.Replicas, 1))}
	}
	prev, wasLost := d.in.Status.Available, d.in.Status.CapacityLost || d.in.Status.Phase == Degraded
	if d.st.ActiveColor != d.in.Status.ActiveColor {
		prev, wasLost = a.Available, false
	}
	return JudgeCapacity(d.st.ActiveColor, a.Replicas, a.Available, prev, wasLost)
}

// newCapacity is how many pods the new color starts with: the active color's
// current count, so an HPA that scaled up keeps its capacity.
func (d *decider) newCapacity() int32 {
	return max(d.active().Replicas, d.in.Spec.Replicas, 1)
}

func (d *decider) to(p Phase, reason, msg string) {
	if p != d.st.Phase || reason != d.st.Reason {
		d.st.Phase, d.st.Reason, d.st.PhaseStartedAt = p, reason, d.now
	}
	d.msg = msg
}

func (d *decider) decide() Plan {
	in, spec := d.in, d.in.Spec
	before := d.in.Status
	var plan Plan
	newHash := spec.TemplateHash
	rolling := newHash != d.st.ActiveHash && newHash != d.st.FailedHash

	switch {
	case in.Results.Abort && d.inRollout():
		d.rollback("Aborted", "the rollout was aborted on request")
	case d.st.Reason == ReasonInstalling:
		d.installing()
	case d.st.Phase == Stable || d.st.Phase == Degraded || d.st.Phase == RolledBack:
		switch {
		case newHash == d.st.ActiveHash && d.st.Phase == RolledBack:
			d.st.FailedHash = ""
			d.to(Stable, "Reverted", "the spec is back to the serving template")
		case rolling:
			d.to(Deploying, "TemplateChanged", fmt.Sprintf("rolling out template %s to %s", newHash, d.st.ActiveColor.Other()))
		case d.st.Phase == RolledBack:
			d.msg = fmt.Sprintf("template %s failed and is not retried until the spec changes", d.st.FailedHash)
		default:
			d.health()
		}
	case d.st.Phase == Deploying:
		d.deploying(newHash)
	case d.st.Phase == Verifying:
		d.verifying()
	case d.st.Phase == Promoting:
		if in.Results.Promote {
			d.startPromotion()
		} else {
			d.msg = "smoke tests passed; waiting for the promote annotation"
		}
	case d.st.Phase == Canary:
		d.canary(newHash)
	case d.st.Phase == Analysing:
		d.analysing()
	case d.st.Phase == ScalingDown:
		if !d.now.Before(d.st.PhaseStartedAt.Add(spec.ScaleDownDelay)) {
			d.to(Stable, "RolloutComplete", fmt.Sprintf("%s serves template %s", d.st.ActiveColor, d.st.ActiveHash))
		} else {
			d.msg = fmt.Sprintf("%s keeps running until %s so kept-alive connections drain", d.st.ActiveColor.Other(), d.st.PhaseStartedAt.Add(spec.ScaleDownDelay).Format(time.RFC3339))
		}
	}

	plan.Capacity = d.capacity()
	d.st.Available, d.st.CapacityLost = plan.Capacity.Available, plan.Capacity.Lost
	plan.Status, plan.Message = d.st, d.msg
	plan.Colors = d.targets()
	if spec.Autoscaling {
		plan.HPAColor = d.st.ActiveColor
	}
	plan.RunSmokeTests = (d.st.Phase == Verifying && in.Results.Smoke == nil && spec.SmokeTests)
	plan.RunAnalysis = d.st.Phase == Analysing || d.st.Phase == Canary
	plan.AnalyseColor = d.st.ActiveColor
	if d.st.Phase == Canary {
		plan.AnalyseColor = d.st.ActiveColor.Other()
	}
	plan.Transitioned = Transitioned(before, d.st)
	plan.NextCheck = d.nextCheck()
	if !plan.NextCheck.After(d.now) {
		plan.NextCheck = d.now.Add(time.Second)
	}
	return plan
}

// Transitioned says whether going from before to after is a step worth a
// condition and an event: a new phase, reason or canary weight.
func Transitioned(before, after Status) bool {
	return after.Phase != before.Phase || after.Reason != before.Reason || after.CanaryWeight != before.CanaryWeight
}

func (d *decider) inRollout() bool {
	switch d.st.Phase {
	case Deploying, Verifying, Promoting, Canary, Analysing:
		return true
	}
	return false
}

func (d *decider) installing() {
	a := d.active()
	if a.Exists && a.TemplateHash == d.st.ActiveHash && a.Available >= max(d.in.Spec.Replicas, 1) {
		d.to(Stable, "Installed", fmt.Sprintf("%s serves template %s", d.st.ActiveColor, d.st.ActiveHash))
		return
	}
	d.msg = fmt.Sprintf("waiting for %s to become available", d.st.ActiveColor)
}

// health moves a serving AuthServer between Stable and Degraded on lost
// capacity (JudgeCapacity), not on the distance to a new desired count.
func (d *decider) health() {
	c := d.capacity()
	switch {
	case c.Lost && d.st.Phase != Degraded:
		d.to(Degraded, ReasonCapacityLost, c.Message)
	case !c.Lost && d.st.Phase == Degraded:
		d.to(Stable, ReasonCapacityRestored, c.Message)
	default:
		d.msg = c.Message
	}
}

func (d *decider) deploying(newHash string) {
	if newHash == d.st.ActiveHash {
		d.to(Stable, "Reverted", "the spec went back to the serving template; rollout cancelled")
		return
	}
	idle := d.idle()
	want := d.newCapacity()
	if idle.Exists && idle.TemplateHash == newHash && idle.Available >= want {
		if d.in.Spec.SmokeTests {
			d.to(Verifying, "PreviewAvailable", fmt.Sprintf("%s is available with %d pods; running smoke tests", d.st.ActiveColor.Other(), idle.Available))
		} else {
			d.afterSmoke()
		}
		return
	}
	if !d.now.Before(d.st.PhaseStartedAt.Add(d.in.Spec.AvailableTimeout)) {
		d.rollback("NotAvailable", fmt.Sprintf("%s did not become available within %s (%d of %d pods)", d.st.ActiveColor.Other(), d.in.Spec.AvailableTimeout, idle.Available, want))
		return
	}
	d.msg = fmt.Sprintf("%s has %d of %d pods available", d.st.ActiveColor.Other(), idle.Available, want)
}

func (d *decider) verifying() {
	r := d.in.Results
	switch {
	case r.Smoke == nil:
		if !d.now.Before(d.st.PhaseStartedAt.Add(d.in.Spec.AvailableTimeout)) {
			d.rollback("SmokeTestTimeout", "the smoke tests did not finish in time")
			return
		}
		d.msg = "running smoke tests against the preview"
	case !*r.Smoke:
		d.rollback("SmokeTestFailed", "smoke test failed: "+r.SmokeMessage)
	default:
		d.afterSmoke()
	}
}

func (d *decider) afterSmoke() {
	if d.in.Spec.AutoPromote {
		d.startPromotion()
		return
	}
	d.to(Promoting, "AwaitingPromotion", "smoke tests passed; waiting for the promote annotation")
}

// startPromotion moves traffic: in weighted steps through the HTTPRoute or
// canary Ingress when there are steps, else at once.
func (d *decider) startPromotion() {
	steps := d.in.Spec.CanarySteps
	if len(steps) == 0 {
		d.promote()
		return
	}
	if p := d.in.Results.RoutingProblem; p != "" {
		d.rollback("TrafficRoutingFailed", "cannot route a canary share: "+p)
		return
	}
	d.st.CanaryWeight = steps[0]
	d.to(Canary, "CanaryStep", d.canaryMessage())
}

func (d *decider) canaryMessage() string {
	return fmt.Sprintf("%d%% of the routed traffic on %s; next step at %s", d.st.CanaryWeight, d.st.ActiveColor.Other(),
		d.st.PhaseStartedAt.Add(d.in.Spec.StepInterval).Format(time.RFC3339))
}

// canary holds each weight for the step interval while the new color is
// analysed, then takes the next, and after the last switches the active
// Service.
func (d *decider) canary(newHash string) {
	r, spec := d.in.Results, d.in.Spec
	switch {
	case newHash == d.st.ActiveHash:
		d.st.CanaryWeight = 0
		d.to(Stable, "Reverted", "the spec went back to the serving template; canary cancelled")
		return
	case newHash != d.idle().TemplateHash:
		// Another template arrived mid-canary: it is deployed and
		// smoke-tested before it gets any traffic.
		d.st.CanaryWeight = 0
		d.to(Deploying, "TemplateChanged", fmt.Sprintf("rolling out template %s to %s", newHash, d.st.ActiveColor.Other()))
		return
	case r.RoutingProblem != "":
		d.rollback("TrafficRoutingFailed", "cannot route a canary share: "+r.RoutingProblem)
		return
	case d.overThreshold():
		d.rollback("AnalysisFailed", fmt.Sprintf("at %d%% the new color served %d server errors in %d responses (over %.1f%%); traffic is back on %s",
			d.st.CanaryWeight, r.ServerErr, r.Requests, spec.MaxErrorRate*100, d.st.ActiveColor))
		return
	case d.now.Before(d.st.PhaseStartedAt.Add(spec.StepInterval)):
		d.msg = d.canaryMessage()
		return
	}
	for _, w := range spec.CanarySteps {
		if w > d.st.CanaryWeight {
			d.st.CanaryWeight, d.st.PhaseStartedAt = w, d.now
			d.msg = d.canaryMessage()
			return
		}
	}
	d.st.CanaryWeight = 0
	d.promote()
}

// overThreshold: the analysis read more server errors than allowed.
func (d *decider) overThreshold() bool {
	r, spec := d.in.Results, d.in.Spec
	return r.Analysed && r.Requests >= spec.MinRequests && r.Requests > 0 && float64(r.ServerErr)/float64(r.Requests) > spec.MaxErrorRate
}

// promote switches the active Service to the new color; the old one keeps
// its pods for an instant rollback during analysis.
func (d *decider) promote() {
	old := d.st.ActiveColor
	d.st.ActiveColor = old.Other()
	d.st.ActiveHash = d.in.Spec.TemplateHash
	d.to(Analysing, "Promoted", fmt.Sprintf("traffic moved from %s to %s; analysing for %s", old, d.st.ActiveColor, d.in.Spec.BakeTime))
}

func (d *decider) analysing() {
	r, spec := d.in.Results, d.in.Spec
	if d.overThreshold() {
		// Traffic goes back at once.
		failed := d.st.ActiveHash
		d.st.ActiveColor = d.st.ActiveColor.Other()
		d.st.ActiveHash = d.in.Colors[d.st.ActiveColor].TemplateHash
		d.st.FailedHash = failed
		d.to(RolledBack, "AnalysisFailed", fmt.Sprintf("%d of %d responses were server errors (over %.1f%%); traffic is back on %s", r.ServerErr, r.Requests, spec.MaxErrorRate*100, d.st.ActiveColor))
		return
	}
	if !d.now.Before(d.st.PhaseStartedAt.Add(spec.BakeTime)) {
		d.to(ScalingDown, "AnalysisPassed", fmt.Sprintf("the new color served %d requests with %d server errors", r.Requests, r.ServerErr))
		return
	}
	d.msg = fmt.Sprintf("analysing %s until %s", d.st.ActiveColor, d.st.PhaseStartedAt.Add(spec.BakeTime).Format(time.RFC3339))
}

// rollback keeps or returns traffic to the good color and marks the template
// failed, so it is not retried until the spec changes.
func (d *decider) rollback(reason, msg string) {
	if d.st.Phase == Analysing {
		d.st.ActiveColor = d.st.ActiveColor.Other()
		d.st.ActiveHash = d.in.Colors[d.st.ActiveColor].TemplateHash
	}
	d.st.FailedHash = d.in.Spec.TemplateHash
	d.st.CanaryWeight = 0
	d.to(RolledBack, reason, msg)
}

// targets are the Deployments each phase needs.
func (d *decider) targets() map[Color]Target {
	spec := d.in.Spec
	active, idle := d.st.ActiveColor, d.st.ActiveColor.Other()
	activeDep := d.in.Colors[active]
	activeReplicas := max(spec.Replicas, 1)
	if spec.Autoscaling && activeDep.Exists {
		activeReplicas = max(activeDep.Replicas, spec.Replicas, 1)
	}
	t := map[Color]Target{
		active: {TemplateHash: d.st.ActiveHash, Replicas: activeReplicas, ScaledByHPA: spec.Autoscaling},
		idle:   {TemplateHash: d.in.Colors[idle].TemplateHash, Replicas: 0},
	}
	switch d.st.Phase {
	case Deploying, Verifying, Promoting, Canary:
		// The new template on the idle color, at the active color's size;
		// a first install has no idle color yet.
		if d.st.Reason != ReasonInstalling {
			t[idle] = Target{TemplateHash: spec.TemplateHash, Replicas: d.newCapacity()}
		}
	case Analysing, ScalingDown:
		// The previous color stays up for an instant rollback and to drain.
		prev := d.in.Colors[idle]
		t[idle] = Target{TemplateHash: prev.TemplateHash, Replicas: max(prev.Replicas, 1)}
		if d.st.Phase == ScalingDown && !d.now.Before(d.st.PhaseStartedAt.Add(spec.ScaleDownDelay)) {
			t[idle] = Target{TemplateHash: prev.TemplateHash}
		}
	}
	if t[idle].TemplateHash == "" {
		t[idle] = Target{TemplateHash: d.st.ActiveHash}
	}
	return t
}

func (d *decider) nextCheck() time.Time {
	spec := d.in.Spec
	switch d.st.Phase {
	case Deploying:
		return minTime(d.now.Add(poll), d.st.PhaseStartedAt.Add(spec.AvailableTimeout))
	case Verifying, Promoting:
		return d.now.Add(poll)
	case Canary:
		return minTime(d.now.Add(poll), d.st.PhaseStartedAt.Add(spec.StepInterval))
	case Analysing:
		return minTime(d.now.Add(poll), d.st.PhaseStartedAt.Add(spec.BakeTime))
	case ScalingDown:
		return minTime(d.now.Add(poll), d.st.PhaseStartedAt.Add(spec.ScaleDownDelay))
	}
	return d.now.Add(time.Minute)
}

func minTime(a, b time.Time) time.Time {
	if b.After(a) {
		return a
	}
	if !b.After(time.Time{}) {
		return a
	}
	return b
}
