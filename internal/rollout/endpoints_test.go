package rollout

import "testing"

func TestSplitService(t *testing.T) {
	cases := []struct {
		name            string
		weight          int32
		oldReady, ready int
		want            ServiceSplit
	}{
		{"no canary", 0, 3, 3, ServiceSplit{}},
		{"no new pod ready", 25, 3, 0, ServiceSplit{}},
		{"no old pod ready", 25, 0, 3, ServiceSplit{}},
		// 3 pods a color: the shares are 0, 25, 40, 50, 60, 75, 100.
		{"5% of 3+3 rounds to none", 5, 3, 3, ServiceSplit{}},
		{"10% of 3+3 rounds to none", 10, 3, 3, ServiceSplit{}},
		{"25% of 3+3", 25, 3, 3, ServiceSplit{Borrow: 1, Percent: 25}},
		{"50% of 3+3", 50, 3, 3, ServiceSplit{Borrow: 3, Percent: 50}},
		{"75% of 3+3 selects the new color", 75, 3, 3, ServiceSplit{SelectNew: true, Borrow: 1, Percent: 75}},
		{"90% of 3+3 is all new", 90, 3, 3, ServiceSplit{SelectNew: true, Percent: 100}},
		// 4 pods a color: 20, 50 and 80 are exact.
		{"20% of 4+4", 20, 4, 4, ServiceSplit{Borrow: 1, Percent: 20}},
		{"50% of 4+4", 50, 4, 4, ServiceSplit{Borrow: 4, Percent: 50}},
		{"80% of 4+4", 80, 4, 4, ServiceSplit{SelectNew: true, Borrow: 1, Percent: 80}},
		// Ties go to the smaller share: with 1 pod a color the shares are
		// 0, 50 and 100, and 25% is as near 0 as 50.
		{"a tie takes the smaller share", 25, 1, 1, ServiceSplit{}},
		{"just past the tie", 26, 1, 1, ServiceSplit{Borrow: 1, Percent: 50}},
		{"75% of 1+1 is a tie between 50 and 100", 75, 1, 1, ServiceSplit{Borrow: 1, Percent: 50}},
		// Fewer new pods ready than old: borrowing is capped by them.
		{"50% with 4 old and 2 new", 50, 4, 2, ServiceSplit{SelectNew: true, Borrow: 2, Percent: 50}},
		{"10% of 10+10", 10, 10, 10, ServiceSplit{Borrow: 1, Percent: 9}},
		{"5% of 20+20", 5, 20, 20, ServiceSplit{Borrow: 1, Percent: 5}},
		{"99% of 1000+1000", 99, 1000, 1000, ServiceSplit{SelectNew: true, Borrow: 10, Percent: 99}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := SplitService(tc.weight, tc.oldReady, tc.ready)
			if got != tc.want {
				t.Fatalf("SplitService(%d, %d, %d) = %+v, want %+v", tc.weight, tc.oldReady, tc.ready, got, tc.want)
			}
			// Every split keeps at least the old color's count of
			// endpoints behind the Service and borrows no more pods than
			// are ready.
			if got.SelectNew && (got.Borrow > tc.oldReady || tc.ready+got.Borrow < tc.oldReady) {
				t.Errorf("borrows %d of %d old pods", got.Borrow, tc.oldReady)
			}
			if !got.SelectNew && got.Borrow > tc.ready {
				t.Errorf("borrows %d of %d new pods", got.Borrow, tc.ready)
			}
		})
	}
}

// TestSplitServiceFollowsTheSteps: over the default steps the share never
// goes down and stays within the granularity of whole pods of each step.
func TestSplitServiceFollowsTheSteps(t *testing.T) {
	for n := 1; n <= 30; n++ {
		prev := int32(0)
		for _, w := range []int32{5, 10, 25, 50, 75, 90} {
			s := SplitService(w, n, n)
			if s.Percent < prev {
				t.Errorf("%d pods a color: %d%% after %d%% at step %d", n, s.Percent, prev, w)
			}
			// The nearest share is within half the widest gap between two
			// neighbouring shares (100/(n+1) points, next to 0% and 100%),
			// plus rounding to a whole percent.
			bound := int32((50+n)/(n+1)) + 1
			if d := s.Percent - w; d > bound || d < -bound {
				t.Errorf("%d pods a color: %d%% at step %d", n, s.Percent, w)
			}
			prev = s.Percent
		}
	}
}
