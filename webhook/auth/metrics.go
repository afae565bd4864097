package auth

import (
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/authframework/authframework/pkg/serverapi"
)

type serverMetrics struct {
	requests *prometheus.CounterVec
	latency  *prometheus.HistogramVec
	cache    *prometheus.CounterVec
	issued   *prometheus.CounterVec
	streams  prometheus.Gauge
	// The cache counters, resolved once: /validate is the hot path.
	cacheHits, cacheMisses prometheus.Counter
}

func newServerMetrics(reg prometheus.Registerer) *serverMetrics {
	m := &serverMetrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: serverapi.MetricRequests, Help: "Requests by endpoint and status code."}, []string{serverapi.LabelEndpoint, serverapi.LabelCode}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: serverapi.MetricRequestDuration, Help: "Request latency by endpoint.",
			Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, 1}}, []string{"endpoint"}),
		cache:  prometheus.NewCounterVec(prometheus.CounterOpts{Name: serverapi.MetricValidationCache, Help: "Validation result cache lookups by result."}, []string{"result"}),
		issued: prometheus.NewCounterVec(prometheus.CounterOpts{Name: serverapi.MetricTokensIssued, Help: "Access tokens issued by namespace and policy."}, []string{"namespace", "policy"}),
	}
	m.streams = prometheus.NewGauge(prometheus.GaugeOpts{Name: serverapi.MetricRevocationStreams, Help: "Open revocation streams."})
	reg.MustRegister(m.streams)
	m.cacheHits, m.cacheMisses = m.cache.WithLabelValues("hit"), m.cache.WithLabelValues("miss")
	reg.MustRegister(m.requests, m.latency, m.cache, m.issued)
	return m
}

type statusRecorder struct {
	http.ResponseWriter
	code int
}

// Unwrap lets http.ResponseController reach the connection (the revocation
// stream flushes and lifts the write deadline).
func (r *statusRecorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

func (r *statusRecorder) WriteHeader(code int) {
	r.code = code
	r.ResponseWriter.WriteHeader(code)
}

// countedCodes are the status codes whose request counters instrument
// resolves once per endpoint; any other code is looked up when it occurs.
var countedCodes = []int{http.StatusOK, http.StatusUnauthorized, http.StatusForbidden, http.StatusTooManyRequests,
	http.StatusBadRequest, http.StatusNotFound, http.StatusServiceUnavailable}

// instrument counts an endpoint's requests by status code and observes their
// latency. The counters of the common codes are resolved here, not by a
// label lookup (hashing and a lock) on every request.
func (s *Server) instrument(endpoint string, h http.HandlerFunc) http.HandlerFunc {
	latency := s.metrics.latency.WithLabelValues(endpoint)
	counters := make(map[int]prometheus.Counter, len(countedCodes))
	for _, code := range countedCodes {
		counters[code] = s.metrics.requests.WithLabelValues(endpoint, strconv.Itoa(code))
	}
	return func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &statusRecorder{ResponseWriter: w, code: http.StatusOK}
		h(rec, r)
		latency.Observe(time.Since(start).Seconds())
		if c, ok := counters[rec.code]; ok {
			c.Inc()
		} else {
			s.metrics.requests.WithLabelValues(endpoint, strconv.Itoa(rec.code)).Inc()
		}
	}
}
