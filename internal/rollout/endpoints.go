package rollout

// ServiceSplit is how the active Service's endpoints are made up during a
// canary step, so that the external-auth sub-requests proxies send to it
// (ingress-nginx auth-url, Gateway external-auth filters) move in steps
// too. Those proxies spread requests evenly over a Service's ready
// endpoints, so the new color's share of the sub-requests is its share of
// the endpoints. The Service's selector picks every ready pod of one color;
// the operator lists Borrow ready pods of the other color beside them in an
// EndpointSlice of its own.
type ServiceSplit struct {
	// SelectNew: the selector picks the new color and the old color's pods
	// are borrowed; otherwise the selector stays on the old (active) color
	// and the new color's pods are borrowed.
	SelectNew bool
	// Borrow is how many ready pods of the other color are listed beside
	// the selected ones (0: no EndpointSlice of the operator's).
	Borrow int
	// Percent is the new color's share of the endpoints, rounded to a
	// whole percent.
	Percent int32
}

// SplitService chooses, for a canary weight in percent and the ready pods
// of the old and the new color, the split whose new-color share is nearest
// the weight (ties go to the smaller share, the cautious side). Whole pods
// limit the shares: with n ready pods a color, the choices are k/(n+k) and
// n/(n+k) for k = 0..n, so with 3 pods each a 5% step gets 0% and a 25%
// step 25%. Both colors keep all their pods, so every choice keeps at
// least the old color's capacity behind the Service. No weight, or no ready
// pod of either color, is no split: the selector stays on the old color.
func SplitService(weight int32, oldReady, newReady int) ServiceSplit {
	if weight <= 0 || oldReady <= 0 || newReady <= 0 {
		return ServiceSplit{}
	}
	best, bestDist, bestDen := ServiceSplit{}, int64(-1), int64(1)
	consider := func(s ServiceSplit, newEndpoints, all int) {
		// |newEndpoints/all - weight/100|, compared as fractions.
		dist := abs64(100*int64(newEndpoints) - int64(weight)*int64(all))
		den := int64(all)
		if bestDist >= 0 {
			switch c := dist*bestDen - bestDist*den; {
			case c > 0:
				return
			case c == 0 && int64(newEndpoints)*bestDen >= int64(share(best, oldReady, newReady))*den:
				// Equally near: keep the smaller share (and, for the
				// same share, the first and simpler split).
				return
			}
		}
		best, bestDist, bestDen = s, dist, den
	}
	for k := 0; k <= newReady; k++ {
		consider(ServiceSplit{Borrow: k}, k, oldReady+k)
	}
	for j := 0; j <= oldReady; j++ {
		consider(ServiceSplit{SelectNew: true, Borrow: j}, newReady, newReady+j)
	}
	best.Percent = int32((100*share(best, oldReady, newReady) + endpoints(best, oldReady, newReady)/2) / endpoints(best, oldReady, newReady))
	return best
}

// share is how many of a split's endpoints are the new color's.
func share(s ServiceSplit, oldReady, newReady int) int {
	if s.SelectNew {
		return newReady
	}
	return s.Borrow
}

// endpoints is how many ready endpoints a split lists.
func endpoints(s ServiceSplit, oldReady, newReady int) int {
	if s.SelectNew {
		return newReady + s.Borrow
	}
	return oldReady + s.Borrow
}

func abs64(v int64) int64 {
	if v < 0 {
		return -v
	}
	return v
}
