package main

// Shrink minimizes s by delta debugging (ddmin over its steps): it drops
// chunks of steps, then single steps, as long as the smaller schedule
// still fails with the same kind of violation, and gives up after budget
// runs. fails runs a candidate schedule and reports whether it fails.
func Shrink(s *Schedule, budget int, fails func(*Schedule) bool) *Schedule {
	best := *s
	best.Steps = append([]Step(nil), s.Steps...)
	runs := 0
	n := 2
	for len(best.Steps) >= 1 && runs < budget {
		chunk := (len(best.Steps) + n - 1) / n
		reduced := false
		for start := 0; start < len(best.Steps) && runs < budget; start += chunk {
			end := min(start+chunk, len(best.Steps))
			cand := best
			cand.Steps = append(append([]Step(nil), best.Steps[:start]...), best.Steps[end:]...)
			runs++
			if fails(&cand) {
				best = cand
				n = max(n-1, 2)
				reduced = true
				break
			}
		}
		if !reduced {
			if chunk == 1 {
				break
			}
			n = min(n*2, len(best.Steps))
		}
	}
	return &best
}
