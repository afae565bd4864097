package credentials

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
	"testing"
	"time"

	clocktesting "k8s.io/utils/clock/testing"
)

// world stands in for the controller and the two Secrets it writes: the
// credentials Secret (plaintext and a copy of the verifier) and the verifier
// Secret, plus the schedule in status. Tests break them as users and tools
// do and reconcile on a fake clock.
type world struct {
	clock         *clocktesting.FakeClock
	period, grace time.Duration
	status        SecretState
	plaintext     string    // client_secret in the credentials Secret
	copy          *Verifier // the copy on the credentials Secret
	verifier      *Verifier // the verifier Secret
	n             int
}

func newWorld(period, grace time.Duration) *world {
	w := &world{clock: clocktesting.NewFakeClock(t0), period: period, grace: grace}
	w.reconcile(false, false)
	return w
}

func (w *world) reconcile(rotate, revoke bool) SecretDecision {
	in := SecretInput{State: w.status, Verifier: w.verifier, Copy: w.copy, Period: w.period, Grace: w.grace, Now: w.clock.Now(), Rotate: rotate, RevokePrevious: revoke}
	if w.plaintext != "" {
		in.Delivered = Hash(w.plaintext)
	}
	d := SecretPlan(in)
	if d.Rotate {
		w.n++
		w.plaintext = fmt.Sprintf("secret-%d", w.n)
	} else if d.Current != Hash(w.plaintext) {
		panic("the decision keeps a current secret the workload does not hold")
	}
	v := d.Verifier(Hash(w.plaintext))
	c := v
	w.verifier, w.copy, w.status = &v, &c, d.State
	return d
}

// works reports whether the auth server, holding the verifier Secret,
// accepts secret now.
func (w *world) works(secret string) bool {
	return w.verifier != nil && w.verifier.Check(secret, w.clock.Now())
}

func TestSecretPlanFaults(t *testing.T) {
	const period, grace = 90 * 24 * time.Hour, 24 * time.Hour
	cases := []struct {
		name string
		// before: what happened before the fault (on the fake clock).
		before func(w *world)
		// fault breaks the Secrets.
		fault     func(w *world)
		wantFault Fault
		// rotated: a new plaintext is written.
		rotated bool
		// keep: secrets that keep working until the given offset from the
		// fault, and stop working at it.
		keep map[string]time.Duration
		// refused: secrets that stop working at once.
		refused []string
	}{
		{name: "credentials Secret deleted",
			fault:     func(w *world) { w.plaintext, w.copy = "", nil },
			wantFault: SecretLost, rotated: true,
			keep: map[string]time.Duration{"secret-1": grace}},
		{name: "client_secret removed or emptied",
			fault:     func(w *world) { w.plaintext = "" },
			wantFault: SecretLost, rotated: true,
			keep: map[string]time.Duration{"secret-1": grace}},
		{name: "verifier Secret deleted",
			fault:     func(w *world) { w.verifier = nil },
			wantFault: VerifierRestored},
		{name: "verifier Secret deleted during a rotation's grace",
			before: func(w *world) {
				w.clock.Step(10 * 24 * time.Hour)
				w.reconcile(true, false)
				w.clock.Step(time.Hour)
			},
			fault:     func(w *world) { w.verifier = nil },
			wantFault: VerifierRestored,
			keep:      map[string]time.Duration{"secret-1": grace - time.Hour}},
		{name: "verifier Secret edited",
			before: func(w *world) {
				w.clock.Step(10 * 24 * time.Hour)
				w.reconcile(true, false)
			},
			fault:     func(w *world) { w.verifier = &Verifier{Current: Hash("someone else's")} },
			wantFault: VerifierRestored,
			keep:      map[string]time.Duration{"secret-1": grace},
			refused:   []string{"someone else's"}},
		{name: "both Secrets deleted",
			fault:     func(w *world) { w.plaintext, w.copy, w.verifier = "", nil, nil },
			wantFault: SecretsLost, rotated: true,
			refused: []string{"secret-1"}},
		{name: "credentials Secret deleted during a rotation's grace",
			before: func(w *world) {
				w.clock.Step(10 * 24 * time.Hour)
				w.reconcile(true, false) // secret-1 works for a day
				w.clock.Step(6 * time.Hour)
			},
			fault:     func(w *world) { w.plaintext, w.copy = "", nil },
			wantFault: SecretLost, rotated: true,
			// The earlier grace is not cut short; the lost one gets its own.
			keep: map[string]time.Duration{"secret-1": grace - 6*time.Hour, "secret-2": grace}},
		{name: "client_secret replaced by a value the controller did not write",
			fault:     func(w *world) { w.plaintext = "chosen-by-hand" },
			wantFault: SecretLost, rotated: true,
			keep:    map[string]time.Duration{"secret-1": grace},
			refused: []string{"chosen-by-hand"}},
		{name: "lost again within the grace",
			before: func(w *world) {
				w.plaintext = ""
				w.reconcile(false, false) // secret-1 lost, secret-2 written
				w.clock.Step(time.Hour)
			},
			fault:     func(w *world) { w.plaintext, w.copy = "", nil },
			wantFault: SecretLost, rotated: true,
			keep: map[string]time.Duration{"secret-1": grace - time.Hour, "secret-2": grace}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			w := newWorld(period, grace)
			if c.before != nil {
				c.before(w)
			}
			current := w.plaintext
			c.fault(w)
			at := w.clock.Now()
			d := w.reconcile(false, false)
			if d.Fault != c.wantFault || d.Rotate != c.rotated {
				t.Fatalf("fault %q rotate %v, want %q %v", d.Fault, d.Rotate, c.wantFault, c.rotated)
			}
			if !c.rotated && w.plaintext != current {
				t.Fatalf("the secret the workload holds was replaced")
			}
			if !w.works(w.plaintext) {
				t.Fatal("the secret in the credentials Secret does not work")
			}
			if c.wantFault == SecretLost && !d.LostUntil.Equal(at.Add(grace)) {
				t.Errorf("lost secret works until %v, want %v", d.LostUntil, at.Add(grace))
			}
			for _, s := range c.refused {
				if w.works(s) {
					t.Errorf("%q works", s)
				}
			}
			// Another reconcile changes nothing and reports nothing.
			if again := w.reconcile(false, false); again.Fault != NoFault || again.Rotate {
				t.Errorf("the next reconcile: fault %q rotate %v", again.Fault, again.Rotate)
			}
			// Each kept secret works until its own end on the fake clock, the
			// new one throughout.
			for s := range c.keep {
				if !w.works(s) {
					t.Errorf("%s refused right after the fault", s)
				}
			}
			ends := slices.SortedFunc(maps.Keys(c.keep), func(a, b string) int { return cmp.Compare(c.keep[a], c.keep[b]) })
			for _, s := range ends {
				w.clock.SetTime(at.Add(c.keep[s] - time.Second))
				w.reconcile(false, false)
				if !w.works(s) || !w.works(w.plaintext) {
					t.Errorf("a second before its end: %s works %v, current works %v", s, w.works(s), w.works(w.plaintext))
				}
				w.clock.SetTime(at.Add(c.keep[s]))
				w.reconcile(false, false)
				if w.works(s) || !w.works(w.plaintext) {
					t.Errorf("at its end: %s works %v, current works %v", s, w.works(s), w.works(w.plaintext))
				}
			}
			if len(c.keep) > 0 && (w.verifier.Previous != "" || !w.status.PreviousUntil.IsZero()) {
				t.Errorf("after every grace the verifier still lists %+v", w.verifier)
			}
		})
	}
}

func TestSecretPlanCases(t *testing.T) {
	period, grace := 90*24*time.Hour, 24*time.Hour
	first := SecretPlan(SecretInput{Period: period, Grace: grace, Now: t0})
	if !first.Rotate || first.Fault != NoFault || !first.State.PreviousUntil.IsZero() || !first.Next.Equal(t0.Add(period)) {
		t.Fatalf("first secret: %+v", first)
	}
	v1 := first.Verifier(Hash("one"))
	held := func(v Verifier) *Verifier { return &v }
	base := SecretInput{State: first.State, Delivered: Hash("one"), Verifier: held(v1), Copy: held(v1), Period: period, Grace: grace}

	// Annotation: rotate now; the old secret works for the grace.
	at := t0.Add(10 * 24 * time.Hour)
	in := base
	in.Now, in.Rotate = at, true
	rot := SecretPlan(in)
	if !rot.Rotate || !rot.State.PreviousUntil.Equal(at.Add(grace)) || !rot.Next.Equal(at.Add(grace)) || len(rot.Grace) != 1 || rot.Grace[0].Hash != Hash("one") {
		t.Fatalf("rotate now: %+v", rot)
	}
	v2 := rot.Verifier(Hash("two"))

	// Compromise: the previous secret is revoked before its grace ends.
	in = SecretInput{State: rot.State, Delivered: Hash("two"), Verifier: held(v2), Copy: held(v2), Period: period, Grace: grace, Now: at.Add(time.Hour), RevokePrevious: true}
	rev := SecretPlan(in)
	if rev.Rotate || !rev.DropPrevious || len(rev.Grace) != 0 || !rev.State.PreviousUntil.IsZero() || !rev.Next.Equal(at.Add(period)) {
		t.Fatalf("revoke previous: %+v", rev)
	}

	// A rotation during another's grace retires the oldest at once.
	in.RevokePrevious, in.Rotate = false, true
	again := SecretPlan(in)
	if !again.Rotate || len(again.Grace) != 1 || again.Grace[0].Hash != Hash("two") {
		t.Fatalf("rotation during the grace: %+v", again)
	}

	// No grace: the old secret stops at once, on rotation and on loss.
	in = base
	in.Now, in.Rotate, in.Grace = at, true, 0
	if nog := SecretPlan(in); !nog.Rotate || len(nog.Grace) != 0 || !nog.State.PreviousUntil.IsZero() {
		t.Fatalf("zero grace: %+v", nog)
	}
	in = base
	in.Now, in.Delivered, in.Grace = at, "", 0
	if nog := SecretPlan(in); !nog.Rotate || nog.Fault != SecretLost || len(nog.Grace) != 0 || !nog.LostUntil.IsZero() {
		t.Fatalf("zero grace loss: %+v", nog)
	}

	// A loss and a revocation together: only the new secret works.
	in = SecretInput{State: rot.State, Verifier: held(v2), Copy: held(v2), Period: period, Grace: grace, Now: at.Add(time.Hour), RevokePrevious: true}
	if lr := SecretPlan(in); !lr.Rotate || lr.Fault != SecretLost || len(lr.Grace) != 0 || !lr.LostUntil.IsZero() {
		t.Fatalf("loss with revocation: %+v", lr)
	}

	// An interrupted rotation: the verifier already holds a secret the
	// workload never received ("undelivered"); the status was not updated.
	// The workload's secret is kept working, the rotation completes.
	ahead := Verifier{Current: Hash("undelivered"), Previous: Hash("one"), PreviousExpiresAt: at.Add(grace)}
	in = base
	in.Now, in.Rotate, in.Verifier = at, true, &ahead
	ir := SecretPlan(in)
	nv := ir.Verifier(Hash("fresh"))
	if !ir.Rotate || ir.Fault != NoFault || !nv.Check("fresh", at) || !nv.Check("one", at) || nv.Check("undelivered", at) {
		t.Fatalf("interrupted rotation: %+v -> %+v", ir, nv)
	}

	// The status was lost: the Secrets say when the current secret was
	// written, so nothing rotates early.
	in = base
	in.Now, in.State = at, SecretState{}
	if sl := SecretPlan(in); sl.Rotate || sl.Fault != NoFault || !sl.State.CurrentSince.Equal(t0) || !sl.Next.Equal(t0.Add(period)) {
		t.Fatalf("status lost: %+v", sl)
	}
	// The status was lost and the Secrets predate the time they record: a
	// rotation, and the secret the workload holds keeps working for the
	// grace.
	old := Verifier{Current: Hash("one")}
	in.Verifier, in.Copy = &old, &old
	if sl := SecretPlan(in); !sl.Rotate || sl.Fault != NoFault || len(sl.Grace) != 1 || sl.Grace[0].Hash != Hash("one") {
		t.Fatalf("status and times lost: %+v", sl)
	}
	// The status patch after a rotation failed: the status is behind the
	// Secrets. The rotation is not repeated and the earlier secret keeps its
	// grace.
	in = SecretInput{State: first.State, Delivered: Hash("two"), Verifier: held(v2), Copy: held(v2), Period: period, Grace: grace, Now: at.Add(time.Minute)}
	if behind := SecretPlan(in); behind.Rotate || len(behind.Grace) != 1 || behind.Grace[0].Hash != Hash("one") || !behind.State.CurrentSince.Equal(at) {
		t.Fatalf("status behind the Secrets: %+v", behind)
	}

	// Nothing due: nothing changes.
	in = base
	in.Now = t0.Add(time.Hour)
	idle := SecretPlan(in)
	if idle.Rotate || idle.DropPrevious || idle.Fault != NoFault || idle.State != first.State || idle.Current != Hash("one") {
		t.Fatalf("idle: %+v", idle)
	}
}

// TestSecretsAtEveryInstant simulates a year of minutes-to-days steps on a
// fake clock with scheduled rotations and, every few days, a lost
// credentials Secret, a removed client_secret or a deleted verifier. At every
// instant the secret in the credentials Secret works, and so does every
// secret that was there less than a grace period ago; after that, none does.
func TestSecretsAtEveryInstant(t *testing.T) {
	period, grace := 72*time.Hour, 6*time.Hour
	w := newWorld(period, grace)
	held := map[string]time.Time{} // secret -> when it left the credentials Secret
	rotations, losses := 0, 0
	end := t0.AddDate(1, 0, 0)
	for step := 0; w.clock.Now().Before(end); step++ {
		before := w.plaintext
		switch step % 197 {
		case 13:
			w.plaintext, w.copy = "", nil
		case 101:
			w.plaintext = ""
		case 151:
			w.verifier = nil
		}
		d := w.reconcile(false, false)
		if d.Fault == SecretsLost {
			t.Fatalf("%v: lost everything", w.clock.Now())
		}
		if d.Fault == SecretLost {
			losses++
		} else if d.Rotate {
			rotations++
		}
		if w.plaintext != before {
			held[before] = w.clock.Now()
		}
		now := w.clock.Now()
		if !w.works(w.plaintext) {
			t.Fatalf("%v: the current secret does not work", now)
		}
		for s, left := range held {
			if want := now.Before(left.Add(grace)); w.works(s) != want {
				t.Fatalf("%v: %s, replaced at %v, works %v, want %v", now, s, left, w.works(s), want)
			}
		}
		if !d.Next.After(now) {
			t.Fatalf("%v: next %v not in the future", now, d.Next)
		}
		// Visit the next change, the second before it, and hourly instants.
		next := d.Next.Add(-time.Second)
		if !next.After(now) {
			next = d.Next
		}
		if h := now.Add(time.Hour); h.Before(next) {
			next = h
		}
		w.clock.SetTime(next)
	}
	if rotations < 50 || losses < 50 {
		t.Errorf("only %d rotations and %d losses in a year", rotations, losses)
	}
}

// TestSecretPlanCapsGraceFromTheCopy: a hash added to the copy on the
// credentials Secret with a far expiry, then the verifier deleted, works at
// most one grace period — it cannot become a backdoor.
func TestSecretPlanCapsGraceFromTheCopy(t *testing.T) {
	period, grace := 90*24*time.Hour, 24*time.Hour
	first := SecretPlan(SecretInput{Period: period, Grace: grace, Now: t0})
	v1 := first.Verifier(Hash("one"))
	forged := NewVerifier(v1.Current, []Grace{{Hash: Hash("attacker"), ExpiresAt: t0.AddDate(4, 0, 0)}})
	now := t0.Add(time.Hour)
	d := SecretPlan(SecretInput{State: first.State, Delivered: Hash("one"), Copy: &forged, Period: period, Grace: grace, Now: now})
	for _, g := range d.Grace {
		if g.ExpiresAt.After(now.Add(grace)) {
			t.Errorf("a grace from the copy lasts until %v, beyond one grace period (%v)", g.ExpiresAt, now.Add(grace))
		}
	}
}
