// Package breaker is a circuit breaker (the guide's circuit-breaker pattern):
// after Failures consecutive failed calls to a dependency it opens and
// refuses calls at once for OpenFor; then it lets one probe through
// (half-open) and closes when the probe succeeds or opens again when it
// fails. The decisions are a pure function of the breaker's state, the event
// and the time (Step); Breaker adds a lock and a clock.
package breaker

import (
	"sync"
	"time"

	"k8s.io/utils/clock"
)

// State is a breaker's state.
type State int

const (
	// Closed lets every call through and counts consecutive failures.
	Closed State = iota
	// HalfOpen lets one probe through and refuses the others.
	HalfOpen
	// Open refuses every call until its OpenFor has passed.
	Open
)

func (s State) String() string {
	switch s {
	case Closed:
		return "closed"
	case HalfOpen:
		return "half-open"
	case Open:
		return "open"
	}
	return "unknown"
}

// Settings configure a breaker.
type Settings struct {
	// Failures is how many consecutive failures open the breaker; >= 1.
	Failures int
	// OpenFor is how long an open breaker refuses calls before it lets a
	// probe through; > 0.
	OpenFor time.Duration
}

// DefaultSettings open after 5 consecutive failures, for 10 seconds.
var DefaultSettings = Settings{Failures: 5, OpenFor: 10 * time.Second}

// Status is everything a breaker remembers.
type Status struct {
	State State
	// Failures counts consecutive failures while Closed.
	Failures int
	// Until is when an Open breaker lets a probe through.
	Until time.Time
	// Probing is true while a HalfOpen breaker's probe is in flight.
	Probing bool
}

// Event is what happened: a call asked to go ahead, or a call ended.
type Event int

const (
	// Ask asks whether a call may go ahead now.
	Ask Event = iota
	// Success records a call that got an answer from the dependency.
	Success
	// Failure records a call that failed or timed out.
	Failure
)

// Decision is Step's answer to Ask.
type Decision struct {
	// Allowed is whether the call may go ahead. A call allowed while
	// HalfOpen is the probe; its caller must record Success or Failure.
	Allowed bool
	// RetryAfter is, when not allowed, how long until a call may be.
	RetryAfter time.Duration
}

// probeRetry is the RetryAfter of calls refused while a probe is in flight.
const probeRetry = time.Second

// Step is the breaker's one decision: the next status after ev at now, and
// for Ask whether the call may go ahead.
func Step(st Status, ev Event, now time.Time, set Settings) (Status, Decision) {
	if st.State == Open && !now.Before(st.Until) {
		st = Status{State: HalfOpen}
	}
	switch ev {
	case Ask:
		switch {
		case st.State == Closed:
			return st, Decision{Allowed: true}
		case st.State == Open:
			return st, Decision{RetryAfter: st.Until.Sub(now)}
		case st.Probing:
			return st, Decision{RetryAfter: probeRetry}
		default:
			st.Probing = true
			return st, Decision{Allowed: true}
		}
	case Success:
		return Status{State: Closed}, Decision{}
	case Failure:
		if st.State == Closed && st.Failures+1 < max(set.Failures, 1) {
			st.Failures++
			return st, Decision{}
		}
		if st.State == Open {
			// A call let through before the breaker opened ended late.
			return st, Decision{}
		}
		return Status{State: Open, Until: now.Add(set.OpenFor)}, Decision{}
	}
	return st, Decision{}
}

// Breaker is a Step machine safe for concurrent use.
type Breaker struct {
	settings Settings
	clock    clock.PassiveClock
	// OnChange, when set, is called (under the breaker's lock, so in order)
	// with each change of state.
	onChange func(from, to State)

	mu sync.Mutex
	st Status
}

// New returns a closed breaker. onChange may be nil.
func New(set Settings, clk clock.PassiveClock, onChange func(from, to State)) *Breaker {
	if clk == nil {
		clk = clock.RealClock{}
	}
	return &Breaker{settings: set, clock: clk, onChange: onChange}
}

// Allow asks whether a call may go ahead now; when it may not, RetryAfter
// says how long until one may. An allowed call must be followed by Record.
func (b *Breaker) Allow() Decision { return b.step(Ask) }

// Record records how an allowed call ended: ok when the dependency
// answered (whatever the answer), not ok when it failed or timed out.
func (b *Breaker) Record(ok bool) {
	ev := Failure
	if ok {
		ev = Success
	}
	b.step(ev)
}

// State is the breaker's state now (an Open breaker whose OpenFor has
// passed reads HalfOpen).
func (b *Breaker) State() State {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.st.State == Open && !b.clock.Now().Before(b.st.Until) {
		return HalfOpen
	}
	return b.st.State
}

func (b *Breaker) step(ev Event) Decision {
	b.mu.Lock()
	defer b.mu.Unlock()
	from := b.st.State
	next, d := Step(b.st, ev, b.clock.Now(), b.settings)
	b.st = next
	if b.onChange != nil && next.State != from {
		b.onChange(from, next.State)
	}
	return d
}
