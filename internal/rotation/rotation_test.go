package rotation

import (
	"slices"
	"testing"
	"time"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

var defaultPolicy = Policy{Algorithm: "ES256", Period: 720 * time.Hour, PrePublish: time.Hour, MaxTokenTTL: 15 * time.Minute, ClockSkew: 30 * time.Second}

// next runs Next, offering a spare named id when a key is needed.
func next(t *testing.T, in Input, id string) Result {
	t.Helper()
	r := Next(in)
	if r.NeedKey != "" {
		if r.NeedKey != in.Policy.Algorithm {
			t.Fatalf("NeedKey %q, want the policy's %q", r.NeedKey, in.Policy.Algorithm)
		}
		in.Spare = &Spare{ID: id, Algorithm: r.NeedKey}
		r = Next(in)
		if r.NeedKey != "" || !r.UsedSpare {
			t.Fatalf("still needs a key after a spare was offered: %+v", r)
		}
	}
	return r
}

func states(keys []Key) map[string]State {
	m := map[string]State{}
	for _, k := range keys {
		m[k.ID] = k.State
	}
	return m
}

func find(keys []Key, id string) Key {
	i := slices.IndexFunc(keys, func(k Key) bool { return k.ID == id })
	if i < 0 {
		return Key{}
	}
	return keys[i]
}

func TestFirstKeyActivatesAtOnce(t *testing.T) {
	if r := Next(Input{Policy: defaultPolicy, Now: t0}); r.NeedKey != "ES256" || r.Keys != nil {
		t.Fatalf("no keys and no spare: want NeedKey ES256 and nothing else, got %+v", r)
	}
	r := next(t, Input{Policy: defaultPolicy, Now: t0.Add(1500 * time.Millisecond)}, "k1")
	k := find(r.Keys, "k1")
	now := t0.Add(time.Second) // whole seconds
	if k.State != Active || !k.ActivatesAt.Equal(now) || !k.RetiresAt.Equal(now.Add(720*time.Hour)) || !k.CreatedAt.Equal(now) {
		t.Fatalf("first key: %+v", k)
	}
	if want := now.Add(720*time.Hour - time.Hour); !r.Next.Equal(want) {
		t.Errorf("Next = %v, want the pre-publish time %v", r.Next, want)
	}
}

// TestLifecycle walks one rotation: publish, activate, retire, remove.
func TestLifecycle(t *testing.T) {
	p := defaultPolicy
	r := next(t, Input{Policy: p, Now: t0}, "k1")
	publishAt := t0.Add(719 * time.Hour)

	// Just before the pre-publish time nothing changes.
	r2 := Next(Input{Policy: p, Keys: r.Keys, Now: publishAt.Add(-time.Second)})
	if r2.NeedKey != "" || len(r2.Keys) != 1 || len(r2.Events) != 0 {
		t.Fatalf("before publish: %+v", r2)
	}

	r = next(t, Input{Policy: p, Keys: r.Keys, Now: publishAt}, "k2")
	k2 := find(r.Keys, "k2")
	if k2.State != Published || !k2.ActivatesAt.Equal(t0.Add(720*time.Hour)) || find(r.Keys, "k1").State != Active {
		t.Fatalf("at publish: %+v", r.Keys)
	}
	if !r.Next.Equal(k2.ActivatesAt) {
		t.Errorf("Next = %v, want activation %v", r.Next, k2.ActivatesAt)
	}
	if r.Keys[0].ID != "k2" {
		t.Errorf("keys not newest first: %v", r.Keys)
	}

	activation := k2.ActivatesAt
	r = next(t, Input{Policy: p, Keys: r.Keys, Now: activation}, "unused")
	k1 := find(r.Keys, "k1")
	if got := states(r.Keys); got["k1"] != Retired || got["k2"] != Active {
		t.Fatalf("at activation: %v", got)
	}
	if !k1.RemoveAfter.Equal(activation.Add(15*time.Minute + 30*time.Second)) {
		t.Errorf("k1 removeAfter %v", k1.RemoveAfter)
	}
	if !r.Next.Equal(k1.RemoveAfter) {
		t.Errorf("Next = %v, want removal %v", r.Next, k1.RemoveAfter)
	}
	if !slices.Contains(r.Events, Event{KeyActivated, "k2"}) || !slices.Contains(r.Events, Event{KeyRetired, "k1"}) {
		t.Errorf("events %v", r.Events)
	}

	r = next(t, Input{Policy: p, Keys: r.Keys, Now: k1.RemoveAfter}, "unused")
	if len(r.Keys) != 1 || r.Keys[0].ID != "k2" || !slices.Contains(r.Events, Event{KeyRemoved, "k1"}) {
		t.Fatalf("after removal: %+v", r)
	}
}

func TestRotateNow(t *testing.T) {
	p := defaultPolicy
	r := next(t, Input{Policy: p, Now: t0}, "k1")
	now := t0.Add(10 * 24 * time.Hour)
	r = next(t, Input{Policy: p, Keys: r.Keys, Now: now, RotateNow: true}, "k2")
	k2 := find(r.Keys, "k2")
	if k2.State != Published || !k2.ActivatesAt.Equal(now.Add(time.Hour)) {
		t.Fatalf("rotate now: new key %+v", k2)
	}
	if k1 := find(r.Keys, "k1"); !k1.RetiresAt.Equal(k2.ActivatesAt) {
		t.Errorf("active key retires at %v, want %v", k1.RetiresAt, k2.ActivatesAt)
	}
	// A second request while a key is pending does not add another key.
	r2 := next(t, Input{Policy: p, Keys: r.Keys, Now: now.Add(10 * time.Minute), RotateNow: true}, "k3")
	if len(r2.Keys) != 2 {
		t.Errorf("a repeated rotate request added a key: %v", states(r2.Keys))
	}
	// A request once the pending key has had its full lead activates it now.
	r3 := next(t, Input{Policy: p, Keys: r.Keys, Now: now.Add(time.Hour)}, "k3")
	if states(r3.Keys)["k2"] != Active {
		t.Errorf("pending key not active at its time: %v", states(r3.Keys))
	}
}

func TestRotateNowBringsForwardAPendingKeyOnlyAfterItsLead(t *testing.T) {
	p := defaultPolicy
	r := next(t, Input{Policy: p, Now: t0}, "k1")
	publishAt := t0.Add(719 * time.Hour)
	r = next(t, Input{Policy: p, Keys: r.Keys, Now: publishAt}, "k2")
	// 10 minutes after publication: the key has not had its hour yet.
	r = next(t, Input{Policy: p, Keys: r.Keys, Now: publishAt.Add(10 * time.Minute), RotateNow: true}, "x")
	if k2 := find(r.Keys, "k2"); k2.State != Published || !k2.ActivatesAt.Equal(publishAt.Add(time.Hour)) {
		t.Errorf("pending key: %+v", k2)
	}
}

func TestRevoke(t *testing.T) {
	p := defaultPolicy
	r := next(t, Input{Policy: p, Now: t0}, "k1")
	now := t0.Add(time.Hour)

	// Revoking the only key activates a new one at once.
	r1 := next(t, Input{Policy: p, Keys: r.Keys, Now: now, Revoke: []string{"k1"}}, "k2")
	if got := states(r1.Keys); got["k1"] != Revoked || got["k2"] != Active {
		t.Fatalf("revoke active: %v", got)
	}
	if k1 := find(r1.Keys, "k1"); k1.State.Publishes() || !k1.RemoveAfter.Equal(now.Add(15*time.Minute+30*time.Second)) {
		t.Errorf("revoked key %+v", k1)
	}
	// Revoking is idempotent and unknown ids are ignored.
	r2 := next(t, Input{Policy: p, Keys: r1.Keys, Now: now.Add(time.Minute), Revoke: []string{"k1", "nope"}}, "k3")
	if len(r2.Keys) != 2 || len(r2.Events) != 0 {
		t.Errorf("repeated revoke changed things: %+v", r2)
	}

	// Revoking the active key while one is pending activates the pending one.
	r = next(t, Input{Policy: p, Now: t0}, "a1")
	r = next(t, Input{Policy: p, Keys: r.Keys, Now: t0.Add(719 * time.Hour)}, "a2")
	r = next(t, Input{Policy: p, Keys: r.Keys, Now: t0.Add(719*time.Hour + time.Minute), Revoke: []string{"a1"}}, "a3")
	if got := states(r.Keys); got["a1"] != Revoked || got["a2"] != Active || len(got) != 2 {
		t.Errorf("revoke active with pending: %v", got)
	}
}

func TestAlgorithmChangeRollsOver(t *testing.T) {
	p := defaultPolicy
	r := next(t, Input{Policy: p, Now: t0}, "ec")
	p.Algorithm = "EdDSA"
	now := t0.Add(24 * time.Hour)
	r = next(t, Input{Policy: p, Keys: r.Keys, Now: now}, "ed")
	ed := find(r.Keys, "ed")
	if ed.State != Published || ed.Algorithm != "EdDSA" || !ed.ActivatesAt.Equal(now.Add(time.Hour)) {
		t.Fatalf("new algorithm key %+v", ed)
	}
	if find(r.Keys, "ec").State != Active {
		t.Error("old key stopped signing before the new one was published for its lead")
	}
	r = next(t, Input{Policy: p, Keys: r.Keys, Now: now.Add(time.Hour)}, "x")
	if got := states(r.Keys); got["ed"] != Active || got["ec"] != Retired {
		t.Errorf("after the lead: %v", got)
	}
}

func TestLateControllerStillPrePublishes(t *testing.T) {
	p := defaultPolicy
	r := next(t, Input{Policy: p, Now: t0}, "k1")
	// The controller was down past the whole rotation.
	late := t0.Add(800 * time.Hour)
	r = next(t, Input{Policy: p, Keys: r.Keys, Now: late}, "k2")
	k2 := find(r.Keys, "k2")
	if k2.State != Published || !k2.ActivatesAt.Equal(late.Add(time.Hour)) || find(r.Keys, "k1").State != Active {
		t.Errorf("late rotation: %+v", r.Keys)
	}
}

func TestNextIsDeterministicAndInTheFuture(t *testing.T) {
	p := defaultPolicy
	r := next(t, Input{Policy: p, Now: t0}, "k1")
	in := Input{Policy: p, Keys: r.Keys, Now: t0.Add(719 * time.Hour), Spare: &Spare{ID: "k2", Algorithm: "ES256"}}
	a, b := Next(in), Next(in)
	if !slices.Equal(a.Keys, b.Keys) || !a.Next.Equal(b.Next) || !slices.Equal(a.Events, b.Events) {
		t.Error("Next is not deterministic")
	}
	if !a.Next.After(in.Now) {
		t.Errorf("Next %v not after now %v", a.Next, in.Now)
	}
	// The input is not modified.
	if len(in.Keys) != 1 || in.Keys[0].State != Active {
		t.Errorf("input keys modified: %+v", in.Keys)
	}
}

func TestDurationsRoundUpToWholeSeconds(t *testing.T) {
	p := defaultPolicy
	p.ClockSkew = 1500 * time.Millisecond
	r := next(t, Input{Policy: p, Now: t0}, "k1")
	r = next(t, Input{Policy: p, Keys: r.Keys, Now: t0.Add(719 * time.Hour)}, "k2")
	r = next(t, Input{Policy: p, Keys: r.Keys, Now: t0.Add(720 * time.Hour)}, "x")
	k1 := find(r.Keys, "k1")
	if want := t0.Add(720*time.Hour + 15*time.Minute + 2*time.Second); !k1.RemoveAfter.Equal(want) {
		t.Errorf("removeAfter %v, want %v (rounded up)", k1.RemoveAfter, want)
	}
}
