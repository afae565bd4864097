package controllers

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/utils/clock"
	"sigs.k8s.io/controller-runtime/pkg/client"

	authv1alpha1 "github.com/authframework/authframework/api/v1alpha1"
)

// PolicyMetrics exports signing-key metrics. Key ages and the time to the
// next rotation are read from the informer cache at scrape time, so a deleted
// policy's series disappear with it; rotations are counted as they happen.
type PolicyMetrics struct {
	reader    client.Reader
	clock     clock.PassiveClock
	rotations *prometheus.CounterVec
	keyAge    *prometheus.Desc
	nextRot   *prometheus.Desc
}

// NewPolicyMetrics returns metrics that list TokenPolicies through reader.
func NewPolicyMetrics(reader client.Reader, clk clock.PassiveClock) *PolicyMetrics {
	return &PolicyMetrics{
		reader: reader,
		clock:  clk,
		rotations: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "authframework_signing_key_rotations_total",
			Help: "Times a TokenPolicy's active signing key was replaced.",
		}, []string{"namespace", "policy"}),
		keyAge: prometheus.NewDesc("authframework_signing_key_age_seconds",
			"Seconds since each published signing key was created.",
			[]string{"namespace", "policy", "kid", "state"}, nil),
		nextRot: prometheus.NewDesc("authframework_signing_key_next_rotation_seconds",
			"Seconds until the next signing key of a TokenPolicy becomes active.",
			[]string{"namespace", "policy"}, nil),
	}
}

// Register adds the metrics to a registry.
func (m *PolicyMetrics) Register(reg prometheus.Registerer) error {
	if err := reg.Register(m.rotations); err != nil {
		return err
	}
	return reg.Register(m)
}

// Rotated counts one rotation of a policy's active key.
func (m *PolicyMetrics) Rotated(namespace, policy string) {
	m.rotations.WithLabelValues(namespace, policy).Inc()
}

// Forget drops a deleted policy's counter.
func (m *PolicyMetrics) Forget(namespace, policy string) {
	m.rotations.DeleteLabelValues(namespace, policy)
}

// Describe implements prometheus.Collector.
func (m *PolicyMetrics) Describe(ch chan<- *prometheus.Desc) {
	ch <- m.keyAge
	ch <- m.nextRot
}

// Collect implements prometheus.Collector.
func (m *PolicyMetrics) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var list authv1alpha1.TokenPolicyList
	if err := m.reader.List(ctx, &list); err != nil {
		ch <- prometheus.NewInvalidMetric(m.keyAge, err)
		return
	}
	now := m.clock.Now()
	for _, p := range list.Items {
		for _, k := range p.Status.Keys {
			if k.State == authv1alpha1.KeyRevoked {
				continue
			}
			ch <- prometheus.MustNewConstMetric(m.keyAge, prometheus.GaugeValue, now.Sub(k.CreatedAt.Time).Seconds(),
				p.Namespace, p.Name, k.KeyID, string(k.State))
		}
		if p.Status.NextRotationTime != nil {
			ch <- prometheus.MustNewConstMetric(m.nextRot, prometheus.GaugeValue, p.Status.NextRotationTime.Sub(now).Seconds(), p.Namespace, p.Name)
		}
	}
}
