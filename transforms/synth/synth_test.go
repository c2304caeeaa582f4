package synth

import (
	"bytes"
	"encoding/json"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/dpopflow/dpopflow/schemas"
)

func records(t *testing.T, lines [][]byte) []Record {
	t.Helper()
	out := make([]Record, len(lines))
	for i, l := range lines {
		if err := json.Unmarshal(l, &out[i]); err != nil {
			t.Fatalf("line %d is not a record: %v\n%s", i+1, err, l)
		}
	}
	return out
}

func TestDeterministic(t *testing.T) {
	cfg := Config{Seed: 7, Math: 200, ARC: 50, DuplicateFraction: 0.05, Dirty: true}
	var a, b, c bytes.Buffer
	if _, err := WriteJSONL(&a, cfg); err != nil {
		t.Fatal(err)
	}
	if _, err := WriteJSONL(&b, cfg); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a.Bytes(), b.Bytes()) {
		t.Fatal("the same config gave different bytes")
	}
	cfg.Seed = 8
	if _, err := WriteJSONL(&c, cfg); err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(a.Bytes(), c.Bytes()) {
		t.Fatal("seeds 7 and 8 gave the same bytes")
	}
}

var stepRE = regexp.MustCompile(`^ (\d+)([-+*/])(\d+)=(\d+)\.$`)

// parseSolution splits " 7*4=28. 28-5=23. The answer is 23." into steps and
// the stated answer.
func parseSolution(t *testing.T, s string) ([]step, string) {
	t.Helper()
	i := strings.Index(s, " The answer is ")
	if i < 0 || !strings.HasSuffix(s, ".") {
		t.Fatalf("no final answer in %q", s)
	}
	answer := strings.TrimSuffix(s[i+len(" The answer is "):], ".")
	var steps []step
	for _, part := range strings.SplitAfter(s[:i], ".") {
		if part == "" {
			continue
		}
		m := stepRE.FindStringSubmatch(part)
		if m == nil {
			t.Fatalf("step %q of %q does not parse", part, s)
		}
		a, _ := strconv.Atoi(m[1])
		b, _ := strconv.Atoi(m[3])
		r, _ := strconv.Atoi(m[4])
		steps = append(steps, step{a: a, b: b, r: r, op: m[2][0]})
	}
	return steps, answer
}

func eval(s step) (int, bool) {
	switch s.op {
	case '+':
		return s.a + s.b, true
	case '-':
		return s.a - s.b, true
	case '*':
		return s.a * s.b, true
	case '/':
		return s.a / s.b, s.a%s.b == 0
	}
	return 0, false
}

func TestMathPairs(t *testing.T) {
	lines, st := Generate(Config{Seed: 3, Math: 2000})
	if st.Math != 2000 || len(lines) != 2000 {
		t.Fatalf("got %d lines, %d math pairs; want 2000", len(lines), st.Math)
	}
	templates := map[string]bool{}
	for _, r := range records(t, lines) {
		templates[regexp.MustCompile(`\d+`).ReplaceAllString(r.Prompt, "#")] = true
		if r.Kind != KindMath || r.Source != "synth" {
			t.Fatalf("kind %q source %q, want math/synth", r.Kind, r.Source)
		}
		if len(r.Prompt) > 44 || len(r.Chosen) > 50 || len(r.Rejected) > 50 {
			t.Errorf("too long for a byte-level model with a short context: %+v", r)
		}

		// Chosen is right: every step, the chain, and the stated answer.
		cs, answer := parseSolution(t, r.Chosen)
		for i, s := range cs {
			if v, ok := eval(s); !ok || v != s.r || v < 0 {
				t.Fatalf("wrong step %d in chosen %q", i, r.Chosen)
			}
			if i > 0 && s.a != cs[i-1].r {
				t.Fatalf("step %d of %q does not use the previous result", i, r.Chosen)
			}
		}
		if answer != strconv.Itoa(cs[len(cs)-1].r) || answer != r.Answer {
			t.Fatalf("answer %q (field %q) is not the last result of %q", answer, r.Answer, r.Chosen)
		}

		// Rejected: the same text but one intermediate result changed, where it
		// is computed and where it is used; the final answer kept.
		rs, ranswer := parseSolution(t, r.Rejected)
		if ranswer != answer || len(rs) != len(cs) || rs[len(rs)-1].r != cs[len(cs)-1].r {
			t.Fatalf("rejected %q changes the final answer of %q", r.Rejected, r.Chosen)
		}
		changed := -1
		for i := range cs {
			if rs[i].r != cs[i].r {
				if changed >= 0 {
					t.Fatalf("rejected %q changes two results of %q", r.Rejected, r.Chosen)
				}
				changed = i
			}
		}
		if changed < 0 || changed == len(cs)-1 {
			t.Fatalf("rejected %q does not corrupt an intermediate result of %q", r.Rejected, r.Chosen)
		}
		for i := range cs {
			wantA := cs[i].a
			if i == changed+1 {
				wantA = rs[changed].r
			}
			if rs[i].a != wantA || rs[i].b != cs[i].b || rs[i].op != cs[i].op {
				t.Fatalf("rejected %q differs from %q beyond the corrupted result", r.Rejected, r.Chosen)
			}
		}
		if v, _ := eval(rs[changed]); v == rs[changed].r {
			t.Fatalf("the corrupted step of %q is still right", r.Rejected)
		}
		if ratio := editRatio(r.Chosen, r.Rejected); ratio > 0.15 {
			t.Errorf("edit ratio %.2f > 0.15 for %q vs %q: not low distance", ratio, r.Chosen, r.Rejected)
		}
	}
	if len(templates) != len(mathTemplates) {
		t.Errorf("2000 problems used %d templates, want all %d", len(templates), len(mathTemplates))
	}
}

func TestARCPairs(t *testing.T) {
	lines, st := Generate(Config{Seed: 5, ARC: 400})
	if st.ARCQuestions != 400 || st.ARCPairs != 1200 || len(lines) != 1200 {
		t.Fatalf("stats %+v with %d lines; want 400 questions, 1200 pairs", st, len(lines))
	}
	byQ := map[string][]Record{}
	for _, r := range records(t, lines) {
		byQ[r.QID] = append(byQ[r.QID], r)
	}
	if len(byQ) != 400 {
		t.Fatalf("%d question ids, want 400", len(byQ))
	}
	for qid, ps := range byQ {
		if len(ps) != 3 {
			t.Fatalf("question %s has %d pairs, want 3 (one per wrong option)", qid, len(ps))
		}
		rejected := map[string]bool{}
		for _, p := range ps {
			if p.Kind != KindARC || p.Prompt != ps[0].Prompt || p.Chosen != ps[0].Chosen {
				t.Fatalf("pairs of %s disagree: %+v vs %+v", qid, p, ps[0])
			}
			if got, ok := ExtractAnswer(KindARC, p.Chosen); !ok || got != p.Answer {
				t.Fatalf("chosen %q does not name answer %q", p.Chosen, p.Answer)
			}
			// The chosen option's text is in the prompt under its letter.
			if !strings.Contains(p.Prompt, " "+p.Answer+")"+strings.TrimPrefix(p.Chosen, " "+p.Answer+") ")) {
				t.Fatalf("chosen %q is not option %s of %q", p.Chosen, p.Answer, p.Prompt)
			}
			if letter, _ := ExtractAnswer(KindARC, p.Rejected); letter == p.Answer {
				t.Fatalf("rejected %q is the right option", p.Rejected)
			}
			if ratio := editRatio(p.Chosen, p.Rejected); ratio <= 0.15 {
				t.Errorf("edit ratio %.2f for %q vs %q: want high distance", ratio, p.Chosen, p.Rejected)
			}
			rejected[p.Rejected] = true
		}
		if len(rejected) != 3 {
			t.Fatalf("question %s repeats a wrong option: %v", qid, rejected)
		}
	}
}

// TestFactTables guards the ARC answers: a word in two categories would make
// a "wrong" option right.
func TestFactTables(t *testing.T) {
	owner := map[string]string{}
	for _, c := range categories {
		if c.Distractors != nil {
			for _, d := range c.Distractors {
				for _, m := range c.Members {
					if d == m {
						t.Errorf("%q: %s is both right and wrong", c.Question, d)
					}
				}
			}
			continue
		}
		for _, m := range c.Members {
			if prev, ok := owner[strings.ToLower(m)]; ok {
				t.Errorf("%s answers both %q and %q", m, prev, c.Question)
			}
			owner[strings.ToLower(m)] = c.Question
		}
	}
}

func TestDuplicates(t *testing.T) {
	lines, st := Generate(Config{Seed: 11, Math: 600, ARC: 100, DuplicateFraction: 0.04})
	count := map[string]int{}
	for _, l := range lines {
		count[string(l)]++
	}
	extra := 0
	for _, n := range count {
		extra += n - 1
	}
	if extra != st.Duplicates || len(count) != st.Valid() {
		t.Fatalf("found %d extra copies of %d distinct lines; stats say %d of %d", extra, len(count), st.Duplicates, st.Valid())
	}
	if frac := float64(extra) / float64(st.Valid()); frac < 0.035 || frac > 0.045 {
		t.Fatalf("duplicate fraction %.3f, want 0.04", frac)
	}
	// Copies are scattered, not appended at the end.
	firstHalf := 0
	seen := map[string]bool{}
	for i, l := range lines {
		if seen[string(l)] && i < len(lines)/2 {
			firstHalf++
		}
		seen[string(l)] = true
	}
	if firstHalf == 0 {
		t.Fatal("no duplicate in the first half of the file")
	}
}

// classify assigns the reason a careful reader would: UTF-8 first, then JSON
// syntax, then fields.
func classify(line []byte) string {
	if !utf8.Valid(line) {
		return schemas.ReasonInvalidUTF8
	}
	var m map[string]any
	if err := json.Unmarshal(line, &m); err != nil {
		return schemas.ReasonInvalidJSON
	}
	for _, k := range []string{"prompt", "chosen", "rejected"} {
		v, ok := m[k]
		if !ok {
			return schemas.ReasonMissingField
		}
		if _, ok := v.(string); !ok {
			return schemas.ReasonWrongType
		}
	}
	if m["chosen"] == "" || m["rejected"] == "" {
		return schemas.ReasonEmptyCompletion
	}
	if m["chosen"] == m["rejected"] {
		return schemas.ReasonDegenerate
	}
	return ""
}

func TestDirty(t *testing.T) {
	cfg := Config{Seed: 2, Math: 300, ARC: 40, DuplicateFraction: 0.03, Dirty: true, DefectsPerKind: 4}
	var buf bytes.Buffer
	st, err := WriteJSONL(&buf, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.HasSuffix(buf.Bytes(), []byte("\n")) {
		t.Fatal("a dirty file should end in a truncated line without a newline")
	}
	lines := bytes.Split(buf.Bytes(), []byte("\n"))
	if len(lines) != st.Lines {
		t.Fatalf("%d lines written, stats say %d", len(lines), st.Lines)
	}
	got := map[string]int{}
	valid := map[string]int{}
	for _, l := range lines {
		if reason := classify(l); reason != "" {
			got[reason]++
		} else {
			valid[string(l)]++
		}
	}
	for _, reason := range []string{schemas.ReasonInvalidJSON, schemas.ReasonMissingField, schemas.ReasonWrongType,
		schemas.ReasonEmptyCompletion, schemas.ReasonInvalidUTF8, schemas.ReasonDegenerate} {
		if got[reason] != st.Rejects[reason] || got[reason] == 0 {
			t.Errorf("%s: %d lines, stats say %d", reason, got[reason], st.Rejects[reason])
		}
	}
	if st.Rejects[schemas.ReasonInvalidJSON] != 4+1 { // plus the truncated last line
		t.Errorf("invalid_json %d, want 5", st.Rejects[schemas.ReasonInvalidJSON])
	}
	dups := 0
	for _, n := range valid {
		dups += n - 1
	}
	if len(valid) != st.Valid() || dups != st.Duplicates {
		t.Fatalf("%d distinct valid lines and %d copies; stats say %d and %d", len(valid), dups, st.Valid(), st.Duplicates)
	}
	if st.Lines != st.Valid()+st.Duplicates+st.Rejected() {
		t.Fatalf("lines %d != valid %d + duplicates %d + rejected %d", st.Lines, st.Valid(), st.Duplicates, st.Rejected())
	}
}

func TestCleanEndsWithNewline(t *testing.T) {
	var buf bytes.Buffer
	st, err := WriteJSONL(&buf, Config{Seed: 1, Math: 10, ARC: 2})
	if err != nil {
		t.Fatal(err)
	}
	if n := bytes.Count(buf.Bytes(), []byte("\n")); n != st.Lines || !bytes.HasSuffix(buf.Bytes(), []byte("\n")) {
		t.Fatalf("%d newlines for %d lines", n, st.Lines)
	}
}

func TestValidate(t *testing.T) {
	for _, cfg := range []Config{{Math: -1}, {ARC: MaxARC + 1}, {DuplicateFraction: 1.5}} {
		if _, err := WriteJSONL(&bytes.Buffer{}, cfg); err == nil {
			t.Errorf("%+v: no error", cfg)
		}
	}
}

func TestDefaultSize(t *testing.T) {
	_, st := Generate(Default())
	if st.Math < 500 || st.ARCPairs < 300 || st.Duplicates == 0 {
		t.Fatalf("default data set too small to train on: %v", st)
	}
	if st.MaxPromptBytes > 64 || st.MaxCompletionBytes > 50 {
		t.Fatalf("default texts too long for a byte-level model: %v", st)
	}
}

func TestExtractAnswer(t *testing.T) {
	for _, tc := range []struct {
		kind, text, want string
		ok               bool
	}{
		{KindMath, " 7*4=28. 28-5=23. The answer is 23.", "23", true},
		{KindMath, " 7*4=28. 28-5=23. The answer", "", false},
		{KindARC, " B) whale", "B", true},
		{KindARC, " whale", "", false},
		{"other", " B) whale", "", false},
	} {
		got, ok := ExtractAnswer(tc.kind, tc.text)
		if got != tc.want || ok != tc.ok {
			t.Errorf("ExtractAnswer(%q, %q) = %q, %v; want %q, %v", tc.kind, tc.text, got, ok, tc.want, tc.ok)
		}
	}
}

// editRatio is the byte Levenshtein distance over the longer length, the
// pipeline's edit_ratio for the byte tokenizer (give or take the EOS token).
func editRatio(a, b string) float64 {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return float64(prev[len(b)]) / float64(max(len(a), len(b)))
}
