package auth

import (
	"context"
	"fmt"
	"hash/fnv"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/clock"
	"sigs.k8s.io/controller-runtime/pkg/client"

	authv1alpha1 "github.com/authframework/authframework/api/v1alpha1"
	"github.com/authframework/authframework/internal/token"
)

// ConfigMapRevocations stores revoked token ids in a fixed number of
// ConfigMaps (shards), so every replica's informer sees them. Revocations are
// batched: all requests within one interval cost at most one write per
// shard, so 100 revocations per second are at most Shards/Interval writes
// (32/s with the defaults), whatever the rate. Entries are pruned when their
// token would have expired anyway, which bounds the shards' size.
type ConfigMapRevocations struct {
	Client    client.Client
	Namespace string
	Clock     clock.PassiveClock
	// Shards and Interval default to 8 and 250ms.
	Shards   int
	Interval time.Duration

	mu      sync.Mutex
	pending []revocation
	once    sync.Once
	kick    chan struct{}
}

type revocation struct {
	jti  string
	exp  time.Time
	done chan error
}

// RevocationShardPrefix names the shards: authframework-revocations-<n>.
const RevocationShardPrefix = "authframework-revocations-"

// Revoke queues a revocation and waits until its batch is stored.
func (c *ConfigMapRevocations) Revoke(ctx context.Context, jti string, exp time.Time) error {
	c.once.Do(func() { c.kick = make(chan struct{}, 1) })
	done := make(chan error, 1)
	c.mu.Lock()
	c.pending = append(c.pending, revocation{jti: jti, exp: exp, done: done})
	c.mu.Unlock()
	select {
	case c.kick <- struct{}{}:
	default:
	}
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Run flushes batches until ctx ends.
func (c *ConfigMapRevocations) Run(ctx context.Context) {
	c.once.Do(func() { c.kick = make(chan struct{}, 1) })
	interval := c.Interval
	if interval <= 0 {
		interval = 250 * time.Millisecond
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-c.kick:
		}
		// Let the batch fill for one interval, then write it.
		select {
		case <-ctx.Done():
			return
		case <-time.After(interval):
		}
		c.mu.Lock()
		batch := c.pending
		c.pending = nil
		c.mu.Unlock()
		c.flush(ctx, batch)
	}
}

func (c *ConfigMapRevocations) shards() int {
	if c.Shards <= 0 {
		return 8
	}
	return c.Shards
}

func (c *ConfigMapRevocations) shardOf(jti string) int {
	h := fnv.New32a()
	_, _ = h.Write([]byte(jti))
	return int(h.Sum32() % uint32(c.shards()))
}

func (c *ConfigMapRevocations) flush(ctx context.Context, batch []revocation) {
	byShard := map[int][]revocation{}
	for _, r := range batch {
		byShard[c.shardOf(r.jti)] = append(byShard[c.shardOf(r.jti)], r)
	}
	for shard, rs := range byShard {
		err := c.write(ctx, shard, rs)
		for _, r := range rs {
			r.done <- err
		}
	}
}

func (c *ConfigMapRevocations) write(ctx context.Context, shard int, rs []revocation) error {
	key := types.NamespacedName{Namespace: c.Namespace, Name: fmt.Sprintf("%s%d", RevocationShardPrefix, shard)}
	now := c.Clock.Now()
	return retry.RetryOnConflict(retry.DefaultRetry, func() error {
		var cm corev1.ConfigMap
		err := c.Client.Get(ctx, key, &cm)
		create := apierrors.IsNotFound(err)
		if err != nil && !create {
			return err
		}
		if create {
			cm = corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: key.Namespace, Name: key.Name,
				Labels: map[string]string{authv1alpha1.LabelRevocations: "true", authv1alpha1.LabelManagedBy: authv1alpha1.ManagedByValue}}}
		}
		data := map[string]string{}
		for jti, v := range cm.Data {
			if t, err := time.Parse(time.RFC3339, v); err == nil && t.Add(token.MaxLeeway).After(now) {
				data[jti] = v // prune what would be refused as expired anyway
			}
		}
		for _, r := range rs {
			// A second revocation never shortens the first.
			if old, err := time.Parse(time.RFC3339, data[r.jti]); err == nil && old.After(r.exp) {
				continue
			}
			data[r.jti] = r.exp.UTC().Format(time.RFC3339)
		}
		cm.Data = data
		if create {
			return c.Client.Create(ctx, &cm)
		}
		return c.Client.Update(ctx, &cm)
	})
}
