package report

import (
	"fmt"
	"math"
	"strings"
)

// notable is the smallest change in mean per-token log-prob the report calls
// a change. Below it, moves are within what reruns with other seeds give
// (DPOP moved the measure by -0.02...+0.01 across seeds in DESIGN.md's runs).
const notable = 0.05

// num formats a number with a true minus sign, as prose should.
func num(x float64) string { return minus(fmt.Sprintf("%.2f", x)) }

// signed formats a change with its sign always shown.
func signed(x float64) string { return minus(fmt.Sprintf("%+.2f", x)) }

func minus(s string) string { return strings.ReplaceAll(s, "-", "\u2212") }

func pct(x float64) string { return fmt.Sprintf("%.0f%%", 100*x) }

// move describes how a value went from before to after, in words chosen by
// the sign and size of the change.
func move(before, after float64) string {
	delta := after - before
	switch {
	case math.Abs(delta) < 0.005:
		return fmt.Sprintf("stayed at %s", num(after))
	case delta < 0:
		return fmt.Sprintf("fell from %s to %s (%s)", num(before), num(after), signed(delta))
	default:
		return fmt.Sprintf("rose from %s to %s (%s)", num(before), num(after), signed(delta))
	}
}

// Headline is the report's first sentence: what happened to the
// log-probability of the chosen tokens after the edit under DPO and under
// DPOP, and whether that is the paper's failure mode. It is derived from
// d.Figure4 alone, and says plainly when a number is missing.
func Headline(d Data) string {
	ref, okR := d.Figure4.get(Reference)
	dpo, okD := d.Figure4.get(DPO)
	dpop, okP := d.Figure4.get(DPOP)
	if !okR {
		return "The reference model's log-probability of chosen tokens after the edit was not measured, so this run cannot show whether DPO lowered it."
	}
	var parts []string
	if okD {
		parts = append(parts, "under DPO the log-probability of chosen tokens after the edit "+move(ref, dpo))
	}
	if okP {
		if okD {
			parts = append(parts, "under DPOP it "+move(ref, dpop))
		} else {
			parts = append(parts, "under DPOP the log-probability of chosen tokens after the edit "+move(ref, dpop))
		}
	}
	if len(parts) == 0 {
		return fmt.Sprintf("The reference model's mean log-probability of chosen tokens after the edit is %s; neither DPO nor DPOP was measured.", num(ref))
	}
	s := strings.Join(parts, "; ") + "."
	s = strings.ToUpper(s[:1]) + s[1:]
	if v := verdict(ref, dpo, okD, dpop, okP); v != "" {
		s += " " + v
	}
	return s
}

// verdict says whether the run shows the failure mode and whether DPOP fixed
// it.
func verdict(ref, dpo float64, okD bool, dpop float64, okP bool) string {
	if !okD {
		return ""
	}
	dD := dpo - ref
	if dD > -notable {
		if dD >= notable {
			return "DPO did not show the paper's failure mode here: it made the preferred answer more likely."
		}
		return fmt.Sprintf("DPO did not show the paper's failure mode here (a change under %.2f).", notable)
	}
	if !okP {
		return "DPO made the preferred answer less likely: the failure mode the paper describes."
	}
	dP := dpop - ref
	switch {
	case dP > -notable:
		return "DPO made the preferred answer less likely, the failure mode the paper describes, and DPOP prevented it."
	case dP-dD >= notable:
		return fmt.Sprintf("DPO made the preferred answer less likely, the failure mode the paper describes; DPOP reduced the drop by %s but did not prevent it.", num(dP-dD))
	default:
		return "Both lowered the likelihood of the preferred answer by similar amounts: DPOP did not prevent the failure mode in this run."
	}
}

// accuracySentence summarises greedy-decoding accuracy, or "" if none was
// measured.
func accuracySentence(acc Measure) string {
	var parts []string
	for _, m := range methods(acc) {
		if v, ok := acc.get(m); ok {
			parts = append(parts, fmt.Sprintf("%s %s", methodLabel(m), pct(v)))
		}
	}
	if len(parts) == 0 {
		return ""
	}
	s := "Eval accuracy (greedy decoding, final answer correct): " + strings.Join(parts, ", ") + "."
	ref, okR := acc.get(Reference)
	for _, m := range []string{DPO, DPOP} {
		v, ok := acc.get(m)
		if !okR || !ok {
			continue
		}
		switch d := v - ref; {
		case d <= -notable:
			s += fmt.Sprintf(" %s lowered it by %s points.", methodLabel(m), fmt.Sprintf("%.0f", -100*d))
		case d >= notable:
			s += fmt.Sprintf(" %s raised it by %s points.", methodLabel(m), fmt.Sprintf("%.0f", 100*d))
		}
	}
	return s
}

// paperSentence compares the run's changes with the paper's.
func paperSentence(fig4 Measure) string {
	p := PaperPostEditLogp
	s := fmt.Sprintf("The paper reports %s for the reference on MetaMath, %s after DPO (%s) and %s after DPOP (%s).",
		num(p[Reference]), num(p[DPO]), signed(p[DPO]-p[Reference]), num(p[DPOP]), signed(p[DPOP]-p[Reference]))
	ref, okR := fig4.get(Reference)
	dpo, okD := fig4.get(DPO)
	if okR && okD && dpo < ref {
		s += fmt.Sprintf(" This run's DPO drop is %.0f%% of the paper's.", 100*(dpo-ref)/(p[DPO]-p[Reference]))
	}
	return s
}

func methodLabel(m string) string {
	switch m {
	case Reference:
		return "reference"
	case DPO:
		return "DPO"
	case DPOP:
		return "DPOP"
	}
	return strings.ToUpper(m)
}
