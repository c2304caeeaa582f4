// Package synth generates dpopflow's embedded default data: seeded,
// deterministic preference pairs in TRL's standard JSONL format
// ({"prompt","chosen","rejected"} plus extra fields), following the recipes of
// the Smaug paper (arXiv 2402.13228).
//
// Two kinds of pair are made, because DPOP is about the contrast between them:
//
//   - "math" pairs in the style of MetaMath-DPO: a short arithmetic word
//     problem, a correct step-by-step solution as chosen, and as rejected the
//     same text with exactly one intermediate result corrupted (in its step and
//     where the next step uses it) and the final answer left untouched. Chosen
//     and rejected differ in a couple of bytes: low edit distance, the regime
//     where plain DPO lowers the likelihood of the preferred answer.
//   - "arc" pairs in the style of ARC-DPO: a four-option multiple-choice
//     question built from small fact tables, one pair per wrong option (three
//     per question), chosen the right option and rejected a wrong one. The
//     completions are short and mostly different: high edit distance.
//
// A few percent of the lines are exact copies of others, so the dedupe stage
// has work to do. In dirty mode the generator also plants malformed records,
// one defect each, and counts them by the reason code the reader assigns, so a
// test can reconcile the pipeline's manifest against Stats exactly.
//
// Texts are kept short (prompts of about 40 bytes, completions under 50)
// because the default model is byte-level with a context of 64-128 tokens.
// The package is pure: it imports no Beam and no model.
package synth

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"regexp"
	"sort"
	"strings"

	"github.com/dpopflow/dpopflow/schemas"
)

// Config says what to generate. The zero value generates nothing; start from
// Default.
type Config struct {
	// Seed makes the output reproducible: the same Config gives the same bytes.
	Seed int64
	// Math is the number of math pairs (one pair per problem).
	Math int
	// ARC is the number of multiple-choice questions; each gives three pairs.
	ARC int
	// DuplicateFraction is the number of exact duplicate lines to add, as a
	// fraction of the clean pairs (0.03 adds 3 copies per 100 pairs).
	DuplicateFraction float64
	// Dirty plants malformed records, DefectsPerKind of each reject reason, plus
	// a truncated last line (no trailing newline) that reads as invalid_json.
	Dirty bool
	// DefectsPerKind is how many records of each defect kind dirty mode plants
	// (3 when zero).
	DefectsPerKind int
}

// Limits on the requested sizes: the templates and fact tables hold more
// distinct problems than this, so generation never loops searching for a new
// one.
const (
	MaxMath = 20000
	MaxARC  = 20000
)

// Default is the embedded default data set: about 1000 math pairs (what a
// d=32 model learns in ~1000 SFT steps, see DESIGN.md "The failure mode at tiny
// scale") and 300 questions' worth of ARC pairs, with 3% duplicates.
func Default() Config {
	return Config{Seed: 1, Math: 1000, ARC: 300, DuplicateFraction: 0.03}
}

// Validate reports the first problem with c.
func (c Config) Validate() error {
	switch {
	case c.Math < 0 || c.Math > MaxMath:
		return fmt.Errorf("invalid config: math pairs %d outside [0, %d]", c.Math, MaxMath)
	case c.ARC < 0 || c.ARC > MaxARC:
		return fmt.Errorf("invalid config: arc questions %d outside [0, %d]", c.ARC, MaxARC)
	case c.DuplicateFraction < 0 || c.DuplicateFraction > 1:
		return fmt.Errorf("invalid config: duplicate fraction %g outside [0, 1]", c.DuplicateFraction)
	case c.DefectsPerKind < 0:
		return fmt.Errorf("invalid config: defects per kind %d is negative", c.DefectsPerKind)
	}
	return nil
}

// Stats counts what was generated, so the pipeline's manifest can be checked
// against it: read == Lines, written == Math + ARCPairs, duplicates ==
// Duplicates, rejected == the sum of Rejects.
type Stats struct {
	Lines        int // total lines, every kind
	Math         int // distinct valid math pairs
	ARCQuestions int
	ARCPairs     int // distinct valid arc pairs (3 per question)
	Duplicates   int // extra exact copies of valid lines
	// Rejects counts the planted defects by the reason code the reader will
	// assign (schemas.ReasonInvalidJSON, ...), including the truncated last line.
	Rejects map[string]int
	// MaxPromptBytes and MaxCompletionBytes are the longest prompt and the
	// longest completion among the valid pairs, to size a model's context.
	MaxPromptBytes     int
	MaxCompletionBytes int
}

// Valid is the number of distinct valid pairs, what the pipeline should write.
func (s Stats) Valid() int { return s.Math + s.ARCPairs }

// Rejected is the number of planted defects.
func (s Stats) Rejected() int {
	n := 0
	for _, v := range s.Rejects {
		n += v
	}
	return n
}

// Record is one generated pair with its extra fields, in the field order they
// are written.
type Record struct {
	Prompt   string `json:"prompt"`
	Chosen   string `json:"chosen"`
	Rejected string `json:"rejected"`
	Kind     string `json:"kind"`   // "math" or "arc"
	Answer   string `json:"answer"` // the final number, or the option letter
	Source   string `json:"source"` // always "synth"
	// QID groups the three pairs of one arc question ("" for math).
	QID string `json:"qid,omitempty"`
}

// Kinds of record.
const (
	KindMath = "math"
	KindARC  = "arc"
)

// Generate returns the lines of the data set (without newlines) and what they
// hold. The last line of a dirty data set is a truncated record; WriteJSONL
// writes it without a trailing newline, as a crashed writer would.
// Generate panics if cfg is invalid (see Validate), like regexp.MustCompile:
// use WriteJSONL to get an error instead.
func Generate(cfg Config) ([][]byte, Stats) {
	if err := cfg.Validate(); err != nil {
		panic(err)
	}
	// Separate streams per part, so changing the ARC count leaves the math
	// pairs as they were (and vice versa).
	mathRNG := rand.New(rand.NewPCG(uint64(cfg.Seed), 0x6d617468))
	arcRNG := rand.New(rand.NewPCG(uint64(cfg.Seed), 0x617263))
	mixRNG := rand.New(rand.NewPCG(uint64(cfg.Seed), 0x6d6978))

	st := Stats{Rejects: map[string]int{}}
	seen := map[string]bool{} // prompts, so no problem appears twice with different answers
	var recs []Record
	for len(recs) < cfg.Math {
		r := mathPair(mathRNG)
		if seen[r.Prompt] {
			continue
		}
		seen[r.Prompt] = true
		recs = append(recs, r)
	}
	st.Math = len(recs)
	for q := 0; q < cfg.ARC; {
		pairs := arcQuestion(arcRNG, fmt.Sprintf("arc-%05d", q))
		if seen[pairs[0].Prompt] {
			continue
		}
		seen[pairs[0].Prompt] = true
		recs = append(recs, pairs...)
		q++
	}
	st.ARCQuestions = cfg.ARC
	st.ARCPairs = len(recs) - st.Math
	for _, r := range recs {
		st.MaxPromptBytes = max(st.MaxPromptBytes, len(r.Prompt))
		st.MaxCompletionBytes = max(st.MaxCompletionBytes, len(r.Chosen), len(r.Rejected))
	}

	lines := make([][]byte, len(recs))
	for i, r := range recs {
		lines[i] = encode(r)
	}
	// Shuffle so shards and batches mix both kinds.
	mixRNG.Shuffle(len(lines), func(i, j int) { lines[i], lines[j] = lines[j], lines[i] })

	// Exact copies of distinct lines (sampled without replacement), each put
	// at a random position.
	nDup := int(cfg.DuplicateFraction*float64(len(lines)) + 0.5)
	nDup = min(nDup, len(lines))
	for _, i := range mixRNG.Perm(len(lines))[:nDup] {
		dup := append([]byte(nil), lines[i]...)
		lines = insertAt(lines, mixRNG.IntN(len(lines)+1), dup)
	}
	st.Duplicates = nDup

	if cfg.Dirty {
		per := cfg.DefectsPerKind
		if per == 0 {
			per = 3
		}
		for k, kind := range defectKinds {
			for i := 0; i < per; i++ {
				// Defects are made from fresh problems (never one of the valid
				// prompts), so no defect is also a duplicate of a kept pair.
				var base Record
				for {
					base = mathPair(mixRNG)
					if !seen[base.Prompt] {
						seen[base.Prompt] = true
						break
					}
				}
				line := kind.make(base, k*per+i)
				lines = insertAt(lines, mixRNG.IntN(len(lines)+1), line)
				st.Rejects[kind.reason]++
			}
		}
		// The truncated last line: a record cut mid-string, as from a writer
		// that died. It is always invalid JSON.
		var base Record
		for {
			base = mathPair(mixRNG)
			if !seen[base.Prompt] {
				break
			}
		}
		full := encode(base)
		lines = append(lines, full[:len(full)*2/3])
		st.Rejects[schemas.ReasonInvalidJSON]++
	}
	st.Lines = len(lines)
	return lines, st
}

// WriteJSONL writes the data set to w, one record per line.
func WriteJSONL(w io.Writer, cfg Config) (Stats, error) {
	if err := cfg.Validate(); err != nil {
		return Stats{}, err
	}
	lines, st := Generate(cfg)
	bw := bufio.NewWriter(w)
	for i, l := range lines {
		bw.Write(l)
		// A dirty data set ends in a truncated line with no newline.
		if i < len(lines)-1 || !cfg.Dirty {
			bw.WriteByte('\n')
		}
	}
	if err := bw.Flush(); err != nil {
		return Stats{}, fmt.Errorf("synth: write jsonl: %w", err)
	}
	return st, nil
}

func insertAt(lines [][]byte, i int, l []byte) [][]byte {
	lines = append(lines, nil)
	copy(lines[i+1:], lines[i:])
	lines[i] = l
	return lines
}

func encode(r Record) []byte {
	b, err := json.Marshal(r)
	if err != nil {
		panic(fmt.Sprintf("synth: encode record: %v", err)) // a Record of strings always encodes
	}
	return b
}

// A defect turns a valid record into one line the reader must reject for
// exactly one reason. Each keeps the record's shape otherwise, so nothing else
// about it could trip the reader first.
type defect struct {
	reason string
	make   func(r Record, n int) []byte
}

var defectKinds = []defect{
	{schemas.ReasonInvalidJSON, func(r Record, n int) []byte {
		b := encode(r)
		switch n % 3 {
		case 0: // a missing closing brace
			return b[:len(b)-1]
		case 1: // single quotes, as a hand-edited file might have
			return []byte(strings.ReplaceAll(string(b), `"`, `'`))
		default: // a missing comma between two fields
			return []byte(strings.Replace(string(b), `,"chosen":`, ` "chosen":`, 1))
		}
	}},
	// Only chosen or rejected goes missing: a record without "prompt" is TRL's
	// valid implicit-prompt format, not a defect.
	{schemas.ReasonMissingField, func(r Record, n int) []byte {
		m := recordMap(r)
		if n%2 == 0 {
			delete(m, "rejected")
		} else {
			delete(m, "chosen")
		}
		return encodeMap(m)
	}},
	// A number where a string belongs. Not a list: a list of messages is the
	// valid conversational format.
	{schemas.ReasonWrongType, func(r Record, n int) []byte {
		m := recordMap(r)
		if n%2 == 0 {
			m["chosen"] = 42
		} else {
			m["rejected"] = true
		}
		return encodeMap(m)
	}},
	{schemas.ReasonEmptyCompletion, func(r Record, n int) []byte {
		if n%2 == 0 {
			r.Chosen = ""
		} else {
			r.Rejected = ""
		}
		return encode(r)
	}},
	// A raw 0xff byte inside a string; the line is otherwise valid JSON, so
	// only a UTF-8 check catches it (encoding/json would silently turn it into
	// U+FFFD).
	{schemas.ReasonInvalidUTF8, func(r Record, n int) []byte {
		b := encode(r)
		i := strings.Index(string(b), `"chosen":"`) + len(`"chosen":"`)
		return append(b[:i:i], append([]byte{0xff, 0xfe}, b[i:]...)...)
	}},
	{schemas.ReasonDegenerate, func(r Record, n int) []byte {
		r.Rejected = r.Chosen
		return encode(r)
	}},
}

func recordMap(r Record) map[string]any {
	return map[string]any{
		"prompt": r.Prompt, "chosen": r.Chosen, "rejected": r.Rejected,
		"kind": r.Kind, "answer": r.Answer, "source": r.Source,
	}
}

// encodeMap writes the standard fields first, like encode, so defective lines
// look like their neighbours.
func encodeMap(m map[string]any) []byte {
	order := []string{"prompt", "chosen", "rejected", "kind", "answer", "source"}
	var sb strings.Builder
	sb.WriteByte('{')
	first := true
	for _, k := range order {
		v, ok := m[k]
		if !ok {
			continue
		}
		if !first {
			sb.WriteByte(',')
		}
		first = false
		kb, _ := json.Marshal(k)
		vb, _ := json.Marshal(v)
		sb.Write(kb)
		sb.WriteByte(':')
		sb.Write(vb)
	}
	sb.WriteByte('}')
	return []byte(sb.String())
}

var (
	mathAnswerRE = regexp.MustCompile(`The answer is (-?\d+)\.`)
	arcAnswerRE  = regexp.MustCompile(`^\s*([A-D])\)`)
)

// ExtractAnswer finds the final answer in a completion of the given kind (a
// model's greedy decode, say): the number after "The answer is" for math, the
// option letter for arc. It reports false if there is none, so an evaluator
// can score accuracy against Record.Answer.
func ExtractAnswer(kind, completion string) (string, bool) {
	switch kind {
	case KindMath:
		m := mathAnswerRE.FindStringSubmatch(completion)
		if m == nil {
			return "", false
		}
		return m[1], true
	case KindARC:
		m := arcAnswerRE.FindStringSubmatch(completion)
		if m == nil {
			return "", false
		}
		return m[1], true
	}
	return "", false
}

// sortedKeys returns the keys of a count map in a fixed order, for stable output.
func sortedKeys(m map[string]int) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

// String summarises s in one line, e.g. for a CLI's log.
func (s Stats) String() string {
	var sb strings.Builder
	fmt.Fprintf(&sb, "%d lines: %d math pairs, %d arc pairs from %d questions, %d duplicates",
		s.Lines, s.Math, s.ARCPairs, s.ARCQuestions, s.Duplicates)
	if len(s.Rejects) > 0 {
		sb.WriteString(", defects:")
		for _, k := range sortedKeys(s.Rejects) {
			fmt.Fprintf(&sb, " %s=%d", k, s.Rejects[k])
		}
	}
	fmt.Fprintf(&sb, "; longest prompt %d bytes, longest completion %d bytes", s.MaxPromptBytes, s.MaxCompletionBytes)
	return sb.String()
}
