package transforms

import (
	"testing"

	"github.com/apache/beam/sdks/v2/go/pkg/beam"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/register"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/testing/passert"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/testing/ptest"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/transforms/stats"

	"github.com/dpopflow/dpopflow/schemas"
)

func init() {
	register.Function1x1(dedupeTestKey)
	register.Function1x1(rejectReason)
}

// dedupeTestKey identifies which copy of a pair was kept and checks its id.
func dedupeTestKey(p schemas.Pair) string {
	return p.Source + ":" + p.Prompt + ":" + p.Rejected + ":" + p.ID[:8]
}

func rejectReason(r schemas.Reject) string { return r.Reason }

func TestPairID(t *testing.T) {
	base := schemas.Pair{Prompt: "Café?", Chosen: "yes", Rejected: "no"}
	same := []schemas.Pair{
		{Prompt: "Cafe\u0301?", Chosen: "yes", Rejected: "no"},    // decomposed accent
		{Prompt: "  Café?\n", Chosen: "yes\n", Rejected: "\tno "}, // surrounding whitespace
		{Prompt: "Café?", Chosen: "yes", Rejected: "no", Source: "other.jsonl", Line: 7, Extra: `{"x":1}`},
	}
	different := []schemas.Pair{
		{Prompt: "Café?", Chosen: "no", Rejected: "yes"}, // swapped preference
		{Prompt: "Café ?", Chosen: "yes", Rejected: "no"},
		{Prompt: "Café?y", Chosen: "es", Rejected: "no"}, // same concatenation
		{Conversational: true, PromptMessages: []schemas.Message{{Role: "user", Content: "Café?"}},
			ChosenMessages: []schemas.Message{{Role: "assistant", Content: "yes"}}, RejectedMessages: []schemas.Message{{Role: "assistant", Content: "no"}}},
	}
	id := PairID(base)
	if len(id) != 64 {
		t.Fatalf("id %q is not hex sha256", id)
	}
	for _, p := range same {
		if PairID(p) != id {
			t.Errorf("%+v: id differs from %+v", p, base)
		}
	}
	for _, p := range different {
		if PairID(p) == id {
			t.Errorf("%+v: same id as %+v", p, base)
		}
	}
	conv := func(role, content string) schemas.Pair {
		return schemas.Pair{Conversational: true, PromptMessages: []schemas.Message{{Role: "user", Content: "q"}},
			ChosenMessages: []schemas.Message{{Role: "assistant", Content: "a"}}, RejectedMessages: []schemas.Message{{Role: role, Content: content}}}
	}
	if PairID(conv("assistant", " b ")) != PairID(conv("assistant", "b")) || PairID(conv("assistant", "b")) == PairID(conv("user", "b")) {
		t.Error("conversational ids must normalise content and distinguish roles")
	}
	if !Degenerate(conv("assistant", " a\n")) || Degenerate(conv("user", "a")) {
		t.Error("Degenerate must compare normalised messages, roles included")
	}
}

func TestDedupeKeepsFirstOccurrence(t *testing.T) {
	pair := func(src string, line int64, prompt, chosen, rejected string) schemas.Pair {
		return schemas.Pair{Source: src, Line: line, Prompt: prompt, Chosen: chosen, Rejected: rejected}
	}
	in := []schemas.Pair{
		pair("b.jsonl", 1, "p1", "a", "b"),
		pair("a.jsonl", 9, "p1", "a", "b "), // the keeper: smallest (source, line)
		pair("a.jsonl", 10, "p1", "a", "b"),
		pair("a.jsonl", 1, "p2", "a", "b"),
		pair("a.jsonl", 2, "p3", "same", " same"), // degenerate
	}
	p, s := beam.NewPipelineWithRoot()
	unique, rejects, dups := Dedupe(s, beam.CreateList(s, in))
	keys := beam.ParDo(s, dedupeTestKey, unique)
	passert.Equals(s, keys, "a.jsonl:p1:b :"+PairID(in[1])[:8], "a.jsonl:p2:b:"+PairID(in[3])[:8])
	passert.Equals(s, beam.ParDo(s, rejectReason, rejects), schemas.ReasonDegenerate)
	passert.Equals(s, stats.Sum(s, dups), 2)
	ptest.RunAndValidate(t, p)
}
