package synth

import (
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
)

// step is one line of a solution: A op B = R.
type step struct {
	a, b, r int
	op      byte
}

// mathTemplate makes one word problem and its solution steps. The first
// operand of every step after the first is the previous step's result, so a
// corrupted intermediate result shows up exactly twice: where it is computed
// and where it is used.
type mathTemplate func(rng *rand.Rand) (prompt string, steps []step)

// between returns a uniform integer in [lo, hi].
func between(rng *rand.Rand, lo, hi int) int { return lo + rng.IntN(hi-lo+1) }

// The templates have two or three operations over small numbers, so a tiny
// byte-level model can learn the arithmetic; prompts stay near 40 bytes.
var mathTemplates = []mathTemplate{
	func(rng *rand.Rand) (string, []step) {
		a, b := between(rng, 2, 9), between(rng, 2, 9)
		c := between(rng, 1, a*b-1)
		return fmt.Sprintf("Q: %d boxes of %d pens, %d lost. Left?\nA:", a, b, c),
			[]step{{a, b, a * b, '*'}, {a * b, c, a*b - c, '-'}}
	},
	func(rng *rand.Rand) (string, []step) {
		a, b, c := between(rng, 2, 9), between(rng, 2, 9), between(rng, 1, 20)
		return fmt.Sprintf("Q: %d bags of %d eggs, %d more. Total?\nA:", a, b, c),
			[]step{{a, b, a * b, '*'}, {a * b, c, a*b + c, '+'}}
	},
	func(rng *rand.Rand) (string, []step) {
		b, k, c := between(rng, 2, 9), between(rng, 2, 9), between(rng, 1, 9)
		return fmt.Sprintf("Q: %d cards in %d piles, +%d each. Pile?\nA:", b*k, b, c),
			[]step{{b * k, b, k, '/'}, {k, c, k + c, '+'}}
	},
	func(rng *rand.Rand) (string, []step) {
		a, b, c := between(rng, 2, 12), between(rng, 2, 12), between(rng, 2, 5)
		return fmt.Sprintf("Q: %d+%d kids, %d pens each. Pens?\nA:", a, b, c),
			[]step{{a, b, a + b, '+'}, {a + b, c, (a + b) * c, '*'}}
	},
	func(rng *rand.Rand) (string, []step) {
		a, b, c := between(rng, 5, 50), between(rng, 5, 50), 0
		c = between(rng, 1, a+b-1)
		return fmt.Sprintf("Q: Tom has %d coins, gets %d, spends %d?\nA:", a, b, c),
			[]step{{a, b, a + b, '+'}, {a + b, c, a + b - c, '-'}}
	},
	// Three operations: the solution has two intermediate results.
	func(rng *rand.Rand) (string, []step) {
		a, b, d := between(rng, 2, 9), between(rng, 2, 9), between(rng, 2, 6)
		for a*b <= d { // leave room for at least one nut each after eating
			a, b = between(rng, 2, 9), between(rng, 2, 9)
		}
		left := d * between(rng, 1, (a*b-1)/d) // what is shared: a multiple of d
		c := a*b - left
		return fmt.Sprintf("Q: %d packs of %d nuts, eat %d, share by %d?\nA:", a, b, c, d),
			[]step{{a, b, a * b, '*'}, {a * b, c, left, '-'}, {left, d, left / d, '/'}}
	},
	func(rng *rand.Rand) (string, []step) {
		a, b := between(rng, 2, 20), between(rng, 2, 20)
		c := between(rng, 1, 2*(a+b)-1)
		return fmt.Sprintf("Q: %d cats, %d come, double, %d go. Now?\nA:", a, b, c),
			[]step{{a, b, a + b, '+'}, {a + b, 2, 2 * (a + b), '*'}, {2 * (a + b), c, 2*(a+b) - c, '-'}}
	},
}

// solution renders steps as " 7*4=28. 28-5=23. The answer is 23.", with the
// result of step bad (and its use in the next step) replaced by wrong when
// bad >= 0.
func solution(steps []step, bad, wrong int) string {
	var sb strings.Builder
	for i, s := range steps {
		a, r := s.a, s.r
		if i == bad {
			r = wrong
		}
		if i == bad+1 && bad >= 0 {
			a = wrong
		}
		fmt.Fprintf(&sb, " %d%c%d=%d.", a, s.op, s.b, r)
	}
	fmt.Fprintf(&sb, " The answer is %d.", steps[len(steps)-1].r)
	return sb.String()
}

// corrupt changes the last digit of r, keeping its number of digits, so the
// rejected text stays as close to the chosen one as a wrong step can be.
func corrupt(rng *rand.Rand, r int) int {
	last := r % 10
	d := rng.IntN(9)
	if d >= last {
		d++
	}
	return r - last + d
}

// mathPair makes one MetaMath-DPO-style pair.
func mathPair(rng *rand.Rand) Record {
	prompt, steps := mathTemplates[rng.IntN(len(mathTemplates))](rng)
	bad := rng.IntN(len(steps) - 1) // never the last step: the final answer stays right
	final := steps[len(steps)-1].r
	return Record{
		Prompt:   prompt,
		Chosen:   solution(steps, -1, 0),
		Rejected: solution(steps, bad, corrupt(rng, steps[bad].r)),
		Kind:     KindMath,
		Answer:   strconv.Itoa(final),
		Source:   "synth",
	}
}
