package breaker

import (
	"testing"
	"time"

	clocktesting "k8s.io/utils/clock/testing"
)

func TestStep(t *testing.T) {
	t0 := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	set := Settings{Failures: 3, OpenFor: 10 * time.Second}
	open := Status{State: Open, Until: t0.Add(10 * time.Second)}
	tests := []struct {
		name string
		st   Status
		ev   Event
		at   time.Time
		want Status
		dec  Decision
	}{
		{"closed allows", Status{}, Ask, t0, Status{}, Decision{Allowed: true}},
		{"a failure is counted", Status{}, Failure, t0, Status{Failures: 1}, Decision{}},
		{"failures below the threshold keep it closed", Status{Failures: 1}, Failure, t0, Status{Failures: 2}, Decision{}},
		{"the threshold opens it", Status{Failures: 2}, Failure, t0, open, Decision{}},
		{"a success resets the count", Status{Failures: 2}, Success, t0, Status{}, Decision{}},
		{"open refuses with the time left", open, Ask, t0.Add(4 * time.Second), open, Decision{RetryAfter: 6 * time.Second}},
		{"open until the last instant", open, Ask, t0.Add(10*time.Second - time.Nanosecond), open, Decision{RetryAfter: time.Nanosecond}},
		{"after OpenFor one probe goes", open, Ask, t0.Add(10 * time.Second), Status{State: HalfOpen, Probing: true}, Decision{Allowed: true}},
		{"others wait for the probe", Status{State: HalfOpen, Probing: true}, Ask, t0, Status{State: HalfOpen, Probing: true}, Decision{RetryAfter: time.Second}},
		{"a probe that succeeds closes it", Status{State: HalfOpen, Probing: true}, Success, t0, Status{}, Decision{}},
		{"a probe that fails opens it again", Status{State: HalfOpen, Probing: true}, Failure, t0, open, Decision{}},
		{"a late failure keeps it open as it was", open, Failure, t0.Add(time.Second), open, Decision{}},
		{"a late success closes it: the dependency answers", open, Success, t0.Add(time.Second), Status{}, Decision{}},
		{"a failure after OpenFor opens it anew", open, Failure, t0.Add(11 * time.Second),
			Status{State: Open, Until: t0.Add(21 * time.Second)}, Decision{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, dec := Step(tt.st, tt.ev, tt.at, set)
			if got != tt.want || dec != tt.dec {
				t.Errorf("Step(%+v, %v) = %+v, %+v; want %+v, %+v", tt.st, tt.ev, got, dec, tt.want, tt.dec)
			}
		})
	}
}

func TestStepOneFailureOpens(t *testing.T) {
	t0 := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	// Failures below 1 mean 1: a misconfigured breaker still opens.
	got, _ := Step(Status{}, Failure, t0, Settings{Failures: 0, OpenFor: time.Second})
	if got.State != Open {
		t.Fatalf("state %v, want open", got.State)
	}
}

func TestBreakerCycle(t *testing.T) {
	clk := clocktesting.NewFakePassiveClock(time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC))
	var changes []string
	b := New(Settings{Failures: 2, OpenFor: 5 * time.Second}, clk, func(from, to State) {
		changes = append(changes, from.String()+">"+to.String())
	})
	for range 2 {
		if !b.Allow().Allowed {
			t.Fatal("closed breaker refused a call")
		}
		b.Record(false)
	}
	if d := b.Allow(); d.Allowed || d.RetryAfter != 5*time.Second {
		t.Fatalf("open breaker answered %+v", d)
	}
	if b.State() != Open {
		t.Fatalf("state %v, want open", b.State())
	}
	clk.SetTime(clk.Now().Add(5 * time.Second))
	if b.State() != HalfOpen {
		t.Fatalf("state after OpenFor %v, want half-open", b.State())
	}
	if !b.Allow().Allowed {
		t.Fatal("no probe after OpenFor")
	}
	if b.Allow().Allowed {
		t.Fatal("a second call went while the probe was in flight")
	}
	b.Record(true)
	if b.State() != Closed || !b.Allow().Allowed {
		t.Fatal("a successful probe did not close the breaker")
	}
	want := []string{"closed>open", "open>half-open", "half-open>closed"}
	if len(changes) != len(want) {
		t.Fatalf("changes %v, want %v", changes, want)
	}
	for i := range want {
		if changes[i] != want[i] {
			t.Fatalf("changes %v, want %v", changes, want)
		}
	}
}
