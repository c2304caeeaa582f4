package transforms

import (
	"strings"
	"testing"

	"github.com/dpopflow/dpopflow/schemas"
	"github.com/dpopflow/dpopflow/transforms/tokenize"
)

func byteIDs(s string) []int32 { return tokenize.Byte{}.Encode(s) }

func withEOS(ids []int32) []int32 { return append(ids, tokenize.ByteEOS) }

func TestPairTokenizerTruncation(t *testing.T) {
	tests := []struct {
		name                     string
		maxLen, maxPrompt        int
		prompt, chosen, rejected string
		wantPrompt               []int32
		wantChosen, wantRejected []int32
		wantTruncated            bool
		wantReason               string
	}{
		{name: "fits", maxLen: 16, maxPrompt: 8, prompt: "Q?", chosen: "yes", rejected: "no",
			wantPrompt: byteIDs("Q?"), wantChosen: withEOS(byteIDs("yes")), wantRejected: withEOS(byteIDs("no"))},
		{name: "prompt keeps its end", maxLen: 16, maxPrompt: 4, prompt: "long question?", chosen: "a", rejected: "b",
			wantPrompt: byteIDs("ion?"), wantChosen: withEOS(byteIDs("a")), wantRejected: withEOS(byteIDs("b")), wantTruncated: true},
		{name: "completion keeps its start and loses EOS", maxLen: 8, maxPrompt: 4, prompt: "Q?", chosen: "abcdefgh", rejected: "xyz",
			wantPrompt: byteIDs("Q?"), wantChosen: byteIDs("abcdef"), wantRejected: withEOS(byteIDs("xyz")), wantTruncated: true},
		{name: "EOS alone is cut", maxLen: 5, maxPrompt: 4, prompt: "Q?", chosen: "abc", rejected: "x",
			wantPrompt: byteIDs("Q?"), wantChosen: byteIDs("abc"), wantRejected: withEOS(byteIDs("x")), wantTruncated: true},
		{name: "prompt fills max_length", maxLen: 4, maxPrompt: 8, prompt: "a long prompt", chosen: "a", rejected: "b",
			wantReason: schemas.ReasonPromptTooLong},
		{name: "empty prompt", maxLen: 16, maxPrompt: 8, prompt: "", chosen: "a", rejected: "b",
			wantReason: schemas.ReasonEmptyPrompt},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pt, err := NewPairTokenizer(TokenizeOptions{Tokenizer: "byte", MaxLength: tt.maxLen, MaxPromptLength: tt.maxPrompt})
			if err != nil {
				t.Fatal(err)
			}
			p := schemas.Pair{ID: PairID(schemas.Pair{Prompt: tt.prompt, Chosen: tt.chosen, Rejected: tt.rejected}),
				Prompt: tt.prompt, Chosen: tt.chosen, Rejected: tt.rejected}
			row, reason, detail := pt.Row(p)
			if reason != tt.wantReason {
				t.Fatalf("reason %q (%s), want %q", reason, detail, tt.wantReason)
			}
			if reason != "" {
				if detail == "" {
					t.Error("reject without a detail")
				}
				return
			}
			if !sameIDs(row.PromptIDs, tt.wantPrompt) || !sameIDs(row.ChosenIDs, tt.wantChosen) ||
				!sameIDs(row.RejectedIDs, tt.wantRejected) || row.Truncated != tt.wantTruncated {
				t.Errorf("got prompt %v chosen %v rejected %v truncated %v\nwant prompt %v chosen %v rejected %v truncated %v",
					row.PromptIDs, row.ChosenIDs, row.RejectedIDs, row.Truncated,
					tt.wantPrompt, tt.wantChosen, tt.wantRejected, tt.wantTruncated)
			}
			if row.Prompt != tt.prompt || row.Chosen != tt.chosen || row.Rejected != tt.rejected {
				t.Errorf("texts changed: %q %q %q", row.Prompt, row.Chosen, row.Rejected)
			}
			if row.ID != p.ID || row.Split != schemas.SplitFor(p.ID, 0) {
				t.Errorf("id/split %s/%s", row.ID, row.Split)
			}
		})
	}
}

func TestPairTokenizerConversation(t *testing.T) {
	p := schemas.Pair{
		Conversational:   true,
		PromptMessages:   []schemas.Message{{Role: "user", Content: "2+2?"}},
		ChosenMessages:   []schemas.Message{{Role: "assistant", Content: "4"}},
		RejectedMessages: []schemas.Message{{Role: "assistant", Content: "5"}},
	}
	p.ID = PairID(p)
	for _, tc := range []struct {
		template, prompt, chosen string
	}{
		{"", "user: 2+2?\nassistant: ", "4\n"}, // the byte tokenizer defaults to plain
		{"chatml", "<|im_start|>user\n2+2?<|im_end|>\n<|im_start|>assistant\n", "4<|im_end|>\n"},
	} {
		pt, err := NewPairTokenizer(TokenizeOptions{Tokenizer: "byte", MaxLength: 256, MaxPromptLength: 128, ChatTemplate: tc.template})
		if err != nil {
			t.Fatal(err)
		}
		row, reason, _ := pt.Row(p)
		if reason != "" {
			t.Fatalf("%s: rejected: %s", tc.template, reason)
		}
		if row.Prompt != tc.prompt || row.Chosen != tc.chosen || !strings.HasPrefix(row.Rejected, "5") {
			t.Errorf("%s: rendered %q | %q | %q", tc.template, row.Prompt, row.Chosen, row.Rejected)
		}
		if !sameIDs(row.PromptIDs, byteIDs(tc.prompt)) || !sameIDs(row.ChosenIDs, withEOS(byteIDs(tc.chosen))) {
			t.Errorf("%s: ids are not the rendered texts plus EOS", tc.template)
		}
	}
}

func TestTokenizeOptionsValidate(t *testing.T) {
	for _, o := range []TokenizeOptions{
		{Tokenizer: "byte", MaxLength: 1, MaxPromptLength: 1},
		{Tokenizer: "byte", MaxLength: 16, MaxPromptLength: 0},
		{Tokenizer: "byte", MaxLength: 16, MaxPromptLength: 8, EvalFraction: 1},
	} {
		if o.Validate() == nil {
			t.Errorf("%+v accepted", o)
		}
	}
	if _, err := NewPairTokenizer(TokenizeOptions{Tokenizer: "no-such-tokenizer.json", MaxLength: 16, MaxPromptLength: 8}); err == nil {
		t.Error("unknown tokenizer accepted")
	}
	if _, err := NewPairTokenizer(TokenizeOptions{Tokenizer: "byte", MaxLength: 16, MaxPromptLength: 8, ChatTemplate: "jinja"}); err == nil {
		t.Error("unknown chat template accepted")
	}
}

func sameIDs(a, b []int32) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
