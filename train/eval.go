package train

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/dpopflow/dpopflow/schemas"
	"github.com/dpopflow/dpopflow/train/gpt"
)

// ---- The paper's Figure-4 measures ----------------------------------------------
//
// DPO's failure mode shows in the log-probs of the *chosen* completion's tokens
// after the point where chosen and rejected first differ: DPO lowers them even
// though they are the preferred tokens. Token log-probs are pooled (each token
// weighs the same), summed here and divided by the count by the caller, so
// batches can be combined.

// PostEditLogp is the sum and count of the chosen token log-probs from
// firstDiff on: the first differing token and everything after it.
func PostEditLogp(chosenLogps []float32, firstDiff int) (sum float64, n int) {
	if firstDiff < 0 {
		return 0, 0 // chosen == rejected: there is no edit
	}
	for _, v := range chosenLogps[min(firstDiff, len(chosenLogps)):] {
		sum += float64(v)
		n++
	}
	return sum, n
}

// PreEditLogp is the sum and count of the chosen token log-probs before
// firstDiff (the prefix chosen and rejected share).
func PreEditLogp(chosenLogps []float32, firstDiff int) (sum float64, n int) {
	if firstDiff < 0 {
		firstDiff = len(chosenLogps)
	}
	for _, v := range chosenLogps[:min(firstDiff, len(chosenLogps))] {
		sum += float64(v)
		n++
	}
	return sum, n
}

// EditLogps are the three Figure-4 measures over a set of pairs: mean
// per-token log-prob of chosen tokens after the edit and before it on
// low-distance pairs, and of all chosen tokens on high-distance pairs.
// A measure with no tokens is NaN-free: it is 0 with its count 0.
type EditLogps struct {
	PostEdit, PreEdit, HighDistance    float64
	NPostEdit, NPreEdit, NHighDistance int
}

// MeasureEditLogps computes EditLogps from each row's per-token chosen
// log-probs (chosenLogps[i] belongs to rows[i]; it may be shorter than the
// row's completion when the completion was cut to fit the context).
func MeasureEditLogps(rows []*schemas.Row, chosenLogps [][]float32) EditLogps {
	var e EditLogps
	var post, pre, high float64
	for i, r := range rows {
		lp := chosenLogps[i]
		if r.LowDistance {
			s, n := PostEditLogp(lp, int(r.FirstDiff))
			post, e.NPostEdit = post+s, e.NPostEdit+n
			s, n = PreEditLogp(lp, int(r.FirstDiff))
			pre, e.NPreEdit = pre+s, e.NPreEdit+n
		} else {
			for _, v := range lp {
				high += float64(v)
			}
			e.NHighDistance += len(lp)
		}
	}
	div := func(s float64, n int) float64 {
		if n == 0 {
			return 0
		}
		return s / float64(n)
	}
	e.PostEdit, e.PreEdit, e.HighDistance = div(post, e.NPostEdit), div(pre, e.NPreEdit), div(high, e.NHighDistance)
	return e
}

// put records the measures under prefix ("eval/" or "eval/ref_"), leaving out
// any that had no tokens.
func (e EditLogps) put(m map[string]float64, prefix string) {
	if e.NPostEdit > 0 {
		m[prefix+"post_edit_logp"] = e.PostEdit
	}
	if e.NPreEdit > 0 {
		m[prefix+"pre_edit_logp"] = e.PreEdit
	}
	if e.NHighDistance > 0 {
		m[prefix+"high_distance_logp"] = e.HighDistance
	}
}

// ---- Final answers and greedy-decoding accuracy -----------------------------------

const answerPhrase = "The answer is "

// FinalAnswer extracts the final answer of a solution text: what follows the
// last "The answer is " up to the next "." (or the end), trimmed; the whole
// trimmed text when the phrase is absent.
func FinalAnswer(text string) string {
	i := strings.LastIndex(text, answerPhrase)
	if i < 0 {
		return strings.TrimSpace(text)
	}
	rest := text[i+len(answerPhrase):]
	if j := strings.IndexByte(rest, '.'); j >= 0 {
		rest = rest[:j]
	}
	return strings.TrimSpace(rest)
}

// ExpectedAnswer is what a correct completion of row must end with: the
// "answer" field of the row's extra JSON when present (as the generator and
// many datasets record it), else the final answer of the chosen completion.
func ExpectedAnswer(r *schemas.Row) string {
	if r.Extra != "" {
		var extra map[string]any
		if json.Unmarshal([]byte(r.Extra), &extra) == nil {
			switch v := extra["answer"].(type) {
			case string:
				return strings.TrimSpace(v)
			case float64, bool:
				return fmt.Sprint(v)
			}
		}
	}
	return FinalAnswer(r.Chosen)
}

// AnswerCorrect decides whether a decoded completion answers row correctly:
// its final answer equals ExpectedAnswer or the final answer of the chosen
// completion, or, when the expected answer is a multiple-choice letter ("D"),
// picks that option ("D) …"). The last two matter for ARC-style data whose
// "answer" is a letter while the chosen completion is " D) aphid" with no
// "The answer is" phrase; choosing the option is what is graded, as in the
// usual multiple-choice scoring.
func AnswerCorrect(decoded string, r *schemas.Row) bool {
	got, want := FinalAnswer(decoded), ExpectedAnswer(r)
	if got == want || (r.Chosen != "" && got == FinalAnswer(r.Chosen)) {
		return true
	}
	return len(want) == 1 && want[0] >= 'A' && want[0] <= 'Z' && strings.HasPrefix(got, want+")")
}

// accuracyRows picks up to n eval rows with distinct prompts (ARC-style data
// has one pair per wrong option, all with the same prompt and the same
// correct answer), in data order, so every evaluation decodes the same prompts.
func accuracyRows(rows []*schemas.Row, n int) []*schemas.Row {
	seen := map[string]bool{}
	var out []*schemas.Row
	for _, r := range rows {
		if len(out) >= n {
			break
		}
		key := fmt.Sprint(r.PromptIDs)
		if seen[key] {
			continue
		}
		seen[key] = true
		out = append(out, r)
	}
	return out
}

// GreedyAccuracy decodes each row's prompt greedily (at most len(chosen)+8
// new tokens, stopping at eos) and returns the fraction answered correctly,
// overall and on low- and high-distance rows (−1 where there are none).
func GreedyAccuracy(m *gpt.Model, rows []*schemas.Row, eos int32, decode func([]int32) string) (all, low, high float64, err error) {
	var nAll, nLow, nHigh, okAll, okLow, okHigh int
	for _, r := range rows {
		maxNew := len(r.ChosenIDs) + 8
		prompt := Fit(r.PromptIDs, r.ChosenIDs, m.Config().NPositions).Prompt
		out, err := m.Generate(prompt, maxNew, eos)
		if err != nil {
			return 0, 0, 0, fmt.Errorf("greedy decoding of pair %s: %w", r.ID, err)
		}
		if len(out) > 0 && out[len(out)-1] == eos {
			out = out[:len(out)-1]
		}
		ok := AnswerCorrect(decode(out), r)
		nAll++
		if ok {
			okAll++
		}
		if r.LowDistance {
			nLow++
			if ok {
				okLow++
			}
		} else {
			nHigh++
			if ok {
				okHigh++
			}
		}
	}
	frac := func(k, n int) float64 {
		if n == 0 {
			return -1
		}
		return float64(k) / float64(n)
	}
	return frac(okAll, nAll), frac(okLow, nLow), frac(okHigh, nHigh), nil
}

// ---- Evaluation during training --------------------------------------------------

// evaluator computes the eval metrics. The reference's measures are the same
// at every evaluation, so they are computed once.
type evaluator struct {
	rows    []*schemas.Row
	genRows []*schemas.Row
	refs    *refSums
	ref     *gpt.Model
	eos     int32
	decode  func([]int32) string

	refMeasures map[string]float64
}

func (e *evaluator) run(policy *gpt.Model, obj *Objective) (map[string]float64, error) {
	m := map[string]float64{}
	nPos := policy.Config().NPositions
	pref := obj.Kind != LossSFT
	if len(e.rows) > 0 {
		ex := make([]Example, len(e.rows))
		seqs := make([]gpt.Sequence, 0, 2*len(ex))
		for i, r := range e.rows {
			ex[i] = MakeExample(r, nPos)
			seqs = append(seqs, ex[i].Chosen)
		}
		if pref {
			for i := range ex {
				seqs = append(seqs, ex[i].Rejected)
			}
		}
		lp, err := policy.CompletionLogps(seqs)
		if err != nil {
			return nil, err
		}
		n := len(ex)
		b := Logps{Chosen: make([]float64, n), ChosenLen: make([]int, n)}
		for i := range ex {
			b.Chosen[i], b.ChosenLen[i] = sum32(lp[i]), len(lp[i])
		}
		if pref {
			b.Rejected, b.RejectedLen = make([]float64, n), make([]int, n)
			for i := range ex {
				b.Rejected[i], b.RejectedLen[i] = sum32(lp[n+i]), len(lp[n+i])
			}
			if b.RefChosen, b.RefRejected, err = e.refs.get(ex); err != nil {
				return nil, err
			}
		}
		loss, _, _, err := obj.Compute(b)
		if err != nil {
			return nil, err
		}
		st := newBatchStats(loss, b)
		for k, v := range st.metrics(obj.Beta, pref) {
			m["eval/"+k] = v
		}
		MeasureEditLogps(e.rows, lp[:n]).put(m, "eval/")

		if e.refMeasures == nil {
			e.refMeasures = map[string]float64{}
			if err := e.measureRef(ex); err != nil {
				return nil, err
			}
		}
		for k, v := range e.refMeasures {
			m[k] = v
		}
	}
	if len(e.genRows) > 0 && e.decode != nil {
		all, low, high, err := GreedyAccuracy(policy, e.genRows, e.eos, e.decode)
		if err != nil {
			return nil, err
		}
		m["eval/accuracy"] = all
		if low >= 0 {
			m["eval/accuracy_low_distance"] = low
		}
		if high >= 0 {
			m["eval/accuracy_high_distance"] = high
		}
	}
	return m, nil
}

// measureRef fills the reference's Figure-4 measures: from the reference
// model when there is one, else from the shards' stored per-token log-probs.
func (e *evaluator) measureRef(ex []Example) error {
	lp := make([][]float32, len(ex))
	switch {
	case e.ref != nil:
		seqs := make([]gpt.Sequence, len(ex))
		for i := range ex {
			seqs[i] = ex[i].Chosen
		}
		var err error
		if lp, err = e.ref.CompletionLogps(seqs); err != nil {
			return fmt.Errorf("reference eval log-probs: %w", err)
		}
	case len(e.rows) > 0 && e.rows[0].RefChosenLogps != nil:
		for i := range ex {
			lp[i] = ex[i].Row.RefChosenLogps[:len(ex[i].Chosen.Completion)]
		}
	default:
		return nil // SFT from scratch on unscored data: there is no reference
	}
	MeasureEditLogps(e.rows, lp).put(e.refMeasures, "eval/ref_")
	return nil
}
