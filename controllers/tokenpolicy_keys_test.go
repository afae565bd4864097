package controllers

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/authframework/authframework/internal/keys"
	"github.com/authframework/authframework/internal/rotation"
)

func TestRequeueAfterIsNeverZeroOrNegative(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	cases := map[string]struct {
		next time.Time
		want time.Duration
	}{
		"in an hour":    {now.Add(time.Hour), time.Hour},
		"now":           {now, time.Second},
		"in the past":   {now.Add(-time.Minute), time.Second},
		"half a second": {now.Add(500 * time.Millisecond), time.Second},
		"zero time":     {time.Time{}, time.Second},
	}
	for name, c := range cases {
		if got := requeueAfter(c.next, now); got != c.want {
			t.Errorf("%s: requeueAfter = %v, want %v", name, got, c.want)
		}
	}
}

func TestKeyAccounting(t *testing.T) {
	schedule := []rotation.Key{
		{ID: "pub", State: rotation.Published},
		{ID: "act", State: rotation.Active},
		{ID: "ret", State: rotation.Retired},
		{ID: "rev", State: rotation.Revoked},
	}
	held := map[string]keys.Key{"act": {ID: "act"}, "pub": {ID: "pub"}}
	usable, lost := keyAccounting(schedule, held)
	var ids []string
	for _, k := range usable {
		ids = append(ids, k.ID)
	}
	if !slices.Equal(ids, []string{"pub", "act", "rev"}) || !slices.Equal(lost, []string{"ret"}) {
		t.Errorf("usable %v, lost %v; revoked keys need no material, the retired one is lost", ids, lost)
	}
}

func TestRotationCondition(t *testing.T) {
	if _, _, ok := rotationCondition(nil, nil); ok {
		t.Error("a reconcile without changes must leave the condition alone")
	}
	reason, msg, _ := rotationCondition([]rotation.Event{{Reason: rotation.KeyRetired, KeyID: "a"}, {Reason: rotation.KeyActivated, KeyID: "b"}}, nil)
	if reason != "KeyActivated" || !strings.Contains(msg, "b now signs") || !strings.Contains(msg, "a retired") {
		t.Errorf("activation: %s %q", reason, msg)
	}
	reason, _, _ = rotationCondition([]rotation.Event{{Reason: rotation.KeyActivated, KeyID: "b"}, {Reason: rotation.KeyRevoked, KeyID: "a"}}, nil)
	if reason != "KeyRevoked" {
		t.Errorf("revocation outranks activation, got %s", reason)
	}
	reason, msg, _ = rotationCondition([]rotation.Event{{Reason: rotation.KeyActivated, KeyID: "b"}}, []string{"x"})
	if reason != "KeysLost" || !strings.Contains(msg, "no longer valid") {
		t.Errorf("loss: %s %q", reason, msg)
	}
}

func TestNextRotation(t *testing.T) {
	t1, t2 := time.Unix(100, 0), time.Unix(200, 0)
	active := rotation.Key{ID: "a", State: rotation.Active, RetiresAt: t2}
	if got := nextRotation([]rotation.Key{active}); !got.Equal(t2) {
		t.Errorf("no pending key: %v, want the active key's retirement", got)
	}
	pending := rotation.Key{ID: "p", State: rotation.Published, ActivatesAt: t1}
	if got := nextRotation([]rotation.Key{pending, active}); !got.Equal(t1) {
		t.Errorf("pending key: %v, want its activation", got)
	}
}
