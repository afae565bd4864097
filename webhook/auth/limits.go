package auth

import (
	"sync"
	"time"

	"golang.org/x/time/rate"
	"k8s.io/utils/clock"
)

// clientLimits keeps a token bucket per client and counts failed
// authentications for the lockout. Entries for clients not seen for an hour
// are dropped so memory stays bounded by active clients.
type clientLimits struct {
	clock clock.PassiveClock
	mu    sync.Mutex
	byID  map[string]*clientLimit
	swept time.Time
}

type clientLimit struct {
	bucket      *rate.Limiter
	failures    []time.Time
	lockedUntil time.Time
	lastSeen    time.Time
}

func newClientLimits(clk clock.PassiveClock) *clientLimits {
	return &clientLimits{clock: clk, byID: map[string]*clientLimit{}}
}

func (l *clientLimits) get(clientID string, p *Policy, now time.Time) *clientLimit {
	if now.Sub(l.swept) > time.Minute {
		for id, c := range l.byID {
			if now.Sub(c.lastSeen) > time.Hour {
				delete(l.byID, id)
			}
		}
		l.swept = now
	}
	c, ok := l.byID[clientID]
	if !ok {
		c = &clientLimit{bucket: rate.NewLimiter(rate.Limit(p.RequestsPerSecond), max(p.Burst, 1))}
		l.byID[clientID] = c
	}
	if c.bucket.Limit() != rate.Limit(p.RequestsPerSecond) || c.bucket.Burst() != p.Burst {
		c.bucket.SetLimitAt(now, rate.Limit(p.RequestsPerSecond))
		c.bucket.SetBurstAt(now, max(p.Burst, 1))
	}
	c.lastSeen = now
	return c
}

// allow takes a token from the client's bucket; it returns how long to wait
// when there is none, or when the client is locked out.
func (l *clientLimits) allow(clientID string, p *Policy) (ok bool, retryAfter time.Duration, locked bool) {
	now := l.clock.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	c := l.get(clientID, p, now)
	if now.Before(c.lockedUntil) {
		return false, c.lockedUntil.Sub(now), true
	}
	r := c.bucket.ReserveN(now, 1)
	if d := r.DelayFrom(now); d > 0 {
		r.CancelAt(now)
		return false, d, false
	}
	return true, 0, false
}

// failed records a failed authentication and reports whether it locked the
// client out.
func (l *clientLimits) failed(clientID string, p *Policy) bool {
	now := l.clock.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	c := l.get(clientID, p, now)
	cut := now.Add(-p.LockoutWindow)
	kept := c.failures[:0]
	for _, t := range c.failures {
		if t.After(cut) {
			kept = append(kept, t)
		}
	}
	c.failures = append(kept, now)
	if len(c.failures) >= p.MaxFailed {
		c.lockedUntil = now.Add(p.Lockout)
		c.failures = nil
		return true
	}
	return false
}

// succeeded clears the failure count.
func (l *clientLimits) succeeded(clientID string, p *Policy) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.get(clientID, p, l.clock.Now()).failures = nil
}
