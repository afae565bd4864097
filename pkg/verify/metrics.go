package verify

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/authframework/authframework/internal/breaker"
)

// Metric names, registered on Options.Registerer when it is set.
const (
	// MetricResults counts verifications by `code`: "ok" or a refusal code.
	MetricResults = "authframework_verifier_results_total"
	// MetricCache counts result cache lookups by `result` (hit, miss).
	MetricCache = "authframework_verifier_cache_total"
	// MetricKeySetFetches counts JWKS fetches by `result` (success, error).
	MetricKeySetFetches = "authframework_verifier_jwks_fetches_total"
	// MetricKeySetThrottled counts unknown kids that could not refresh the
	// key set because it was fetched less than KeySetRefreshInterval ago.
	MetricKeySetThrottled = "authframework_verifier_jwks_refresh_throttled_total"
	// MetricRemote counts calls to the auth server in remote mode by
	// `result`: active, inactive, error (retriable: network, timeout, 5xx,
	// 429).
	MetricRemote = "authframework_verifier_remote_total"
	// MetricOffline counts tokens verified locally in remote mode because
	// the auth server could not be asked (breaker open, or the call failed).
	MetricOffline = "authframework_verifier_offline_total"
	// MetricBreaker is the remote-mode circuit breaker's state: 0 closed,
	// 1 half-open, 2 open.
	MetricBreaker = "authframework_verifier_breaker_state"
	// MetricStale counts verifications made while the revocation stream
	// was older than MaxStaleness, by `policy` (keep_validating, refuse).
	MetricStale = "authframework_verifier_revocations_stale_total"
	// MetricStreamConnects counts revocation stream connections by
	// `result` (connected, error).
	MetricStreamConnects = "authframework_verifier_revocation_stream_connects_total"
	// MetricRevocationEvents counts revocation stream events by `type`.
	MetricRevocationEvents = "authframework_verifier_revocation_events_total"
)

type metrics struct {
	results         *prometheus.CounterVec
	ok              prometheus.Counter
	cacheHit        prometheus.Counter
	cacheMiss       prometheus.Counter
	fetches         *prometheus.CounterVec
	throttled       prometheus.Counter
	remote          *prometheus.CounterVec
	offline         prometheus.Counter
	breakerState    prometheus.Gauge
	stale           *prometheus.CounterVec
	streamConnects  *prometheus.CounterVec
	revocationEvent *prometheus.CounterVec
}

// newMetrics makes the collectors and registers them on reg when it is
// not nil.
func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		results: prometheus.NewCounterVec(prometheus.CounterOpts{Name: MetricResults,
			Help: "Token verifications by result code (ok or the refusal's code)."}, []string{"code"}),
		fetches: prometheus.NewCounterVec(prometheus.CounterOpts{Name: MetricKeySetFetches,
			Help: "Fetches of the issuer's JWKS by result."}, []string{"result"}),
		throttled: prometheus.NewCounter(prometheus.CounterOpts{Name: MetricKeySetThrottled,
			Help: "Unknown key ids that did not refresh the JWKS because it was fetched within the refresh interval."}),
		remote: prometheus.NewCounterVec(prometheus.CounterOpts{Name: MetricRemote,
			Help: "Remote-mode calls to the auth server by result."}, []string{"result"}),
		offline: prometheus.NewCounter(prometheus.CounterOpts{Name: MetricOffline,
			Help: "Tokens verified locally in remote mode because the auth server could not be asked."}),
		breakerState: prometheus.NewGauge(prometheus.GaugeOpts{Name: MetricBreaker,
			Help: "Remote-mode circuit breaker state: 0 closed, 1 half-open, 2 open."}),
		stale: prometheus.NewCounterVec(prometheus.CounterOpts{Name: MetricStale,
			Help: "Verifications while the revocation stream was staler than the bound, by policy."}, []string{"policy"}),
		streamConnects: prometheus.NewCounterVec(prometheus.CounterOpts{Name: MetricStreamConnects,
			Help: "Revocation stream connections by result."}, []string{"result"}),
		revocationEvent: prometheus.NewCounterVec(prometheus.CounterOpts{Name: MetricRevocationEvents,
			Help: "Revocation stream events by type."}, []string{"type"}),
	}
	cache := prometheus.NewCounterVec(prometheus.CounterOpts{Name: MetricCache,
		Help: "Verification result cache lookups by result."}, []string{"result"})
	m.ok = m.results.WithLabelValues("ok")
	m.cacheHit, m.cacheMiss = cache.WithLabelValues("hit"), cache.WithLabelValues("miss")
	if reg != nil {
		for _, c := range []prometheus.Collector{m.results, cache, m.fetches, m.throttled, m.remote, m.offline, m.breakerState, m.stale, m.streamConnects, m.revocationEvent} {
			if err := reg.Register(c); err != nil {
				return nil, err
			}
		}
	}
	return m, nil
}

func (m *metrics) result(err *Error) {
	if err == nil {
		m.ok.Inc()
		return
	}
	m.results.WithLabelValues(err.Code).Inc()
}

func (m *metrics) jwksFetch(err error) {
	if err != nil {
		m.fetches.WithLabelValues("error").Inc()
		return
	}
	m.fetches.WithLabelValues("success").Inc()
}

func (m *metrics) unknownKid(err error) {
	if errors.Is(err, errTooSoon) {
		m.throttled.Inc()
	}
}

func (m *metrics) breaker(s breaker.State) { m.breakerState.Set(float64(s)) }
