package records

import (
	"encoding/base64"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/dpopflow/dpopflow/schemas"
)

func msgs(roleContent ...string) []schemas.Message {
	var out []schemas.Message
	for i := 0; i+1 < len(roleContent); i += 2 {
		out = append(out, schemas.Message{Role: roleContent[i], Content: roleContent[i+1]})
	}
	return out
}

func TestParseLineFormats(t *testing.T) {
	tests := []struct {
		name string
		line string
		want schemas.Pair
	}{
		{
			name: "standard",
			line: `{"prompt": "2+2=", "chosen": "4", "rejected": "5"}`,
			want: schemas.Pair{Prompt: "2+2=", Chosen: "4", Rejected: "5"},
		},
		{
			name: "standard keeps text exactly, whitespace and escapes included",
			line: `{"prompt":" Q\n","chosen":"  a\u00e9 ","rejected":"b\t"}`,
			want: schemas.Pair{Prompt: " Q\n", Chosen: "  a\u00e9 ", Rejected: "b\t"},
		},
		{
			name: "standard with empty prompt is left to the tokenizer stage",
			line: `{"prompt":"","chosen":"a","rejected":"b"}`,
			want: schemas.Pair{Chosen: "a", Rejected: "b"},
		},
		{
			name: "extra fields sorted and compacted",
			line: `{"source": "gsm8k", "prompt":"p","chosen":"a","rejected":"b","id": 7, "meta": {"z": 1,  "a": [1, 2]}}`,
			want: schemas.Pair{Prompt: "p", Chosen: "a", Rejected: "b",
				Extra: `{"id":7,"meta":{"z":1,"a":[1,2]},"source":"gsm8k"}`},
		},
		{
			name: "extra keys keep <, > and & unescaped",
			line: `{"prompt":"p","chosen":"a","rejected":"b","a<b":"x&y"}`,
			want: schemas.Pair{Prompt: "p", Chosen: "a", Rejected: "b", Extra: `{"a<b":"x&y"}`},
		},
		{
			name: "duplicate keys: last wins",
			line: `{"prompt":"p","chosen":"first","rejected":"b","chosen":"last"}`,
			want: schemas.Pair{Prompt: "p", Chosen: "last", Rejected: "b"},
		},
		{
			name: "null extra field is kept",
			line: `{"prompt":"p","chosen":"a","rejected":"b","score":null}`,
			want: schemas.Pair{Prompt: "p", Chosen: "a", Rejected: "b", Extra: `{"score":null}`},
		},
		{
			name: "conversational",
			line: `{"prompt":[{"role":"system","content":"be brief"},{"role":"user","content":"hi"}],` +
				`"chosen":[{"role":"assistant","content":"hello"}],"rejected":[{"role":"assistant","content":"go away"}]}`,
			want: schemas.Pair{Conversational: true,
				PromptMessages:   msgs("system", "be brief", "user", "hi"),
				ChosenMessages:   msgs("assistant", "hello"),
				RejectedMessages: msgs("assistant", "go away")},
		},
		{
			name: "message keys other than role and content are ignored",
			line: `{"prompt":[{"role":"user","content":"hi","name":"bob"}],"chosen":[{"role":"assistant","content":"a"}],"rejected":[{"role":"assistant","content":"b"}]}`,
			want: schemas.Pair{Conversational: true,
				PromptMessages: msgs("user", "hi"), ChosenMessages: msgs("assistant", "a"), RejectedMessages: msgs("assistant", "b")},
		},
		{
			name: "string prompt with message completions becomes one user message",
			line: `{"prompt":"hi","chosen":[{"role":"assistant","content":"hello"}],"rejected":[{"role":"assistant","content":"no"}]}`,
			want: schemas.Pair{Conversational: true,
				PromptMessages:   msgs("user", "hi"),
				ChosenMessages:   msgs("assistant", "hello"),
				RejectedMessages: msgs("assistant", "no")},
		},
		{
			name: "null prompt with conversations is an implicit prompt",
			line: `{"prompt":null,"chosen":[{"role":"user","content":"q"},{"role":"assistant","content":"a"}],"rejected":[{"role":"user","content":"q"},{"role":"assistant","content":"b"}]}`,
			want: schemas.Pair{Conversational: true,
				PromptMessages: msgs("user", "q"), ChosenMessages: msgs("assistant", "a"), RejectedMessages: msgs("assistant", "b")},
		},
		{
			name: "implicit prompt is the common prefix of messages",
			line: `{"chosen":[{"role":"system","content":"s"},{"role":"user","content":"2+3*4?"},{"role":"assistant","content":"3*4=12, 2+12=14"}],` +
				`"rejected":[{"role":"system","content":"s"},{"role":"user","content":"2+3*4?"},{"role":"assistant","content":"3*4=12, 2+12=15"},{"role":"user","content":"sure?"}]}`,
			want: schemas.Pair{Conversational: true,
				PromptMessages:   msgs("system", "s", "user", "2+3*4?"),
				ChosenMessages:   msgs("assistant", "3*4=12, 2+12=14"),
				RejectedMessages: msgs("assistant", "3*4=12, 2+12=15", "user", "sure?")},
		},
		{
			name: "implicit prompt never splits a message by characters",
			line: `{"chosen":[{"role":"user","content":"q"},{"role":"assistant","content":"The answer is 14"}],` +
				`"rejected":[{"role":"user","content":"q"},{"role":"assistant","content":"The answer is 15"}]}`,
			want: schemas.Pair{Conversational: true,
				PromptMessages:   msgs("user", "q"),
				ChosenMessages:   msgs("assistant", "The answer is 14"),
				RejectedMessages: msgs("assistant", "The answer is 15")},
		},
		{
			name: "same content under a different role is a different message",
			line: `{"chosen":[{"role":"user","content":"q"},{"role":"assistant","content":"x"}],"rejected":[{"role":"user","content":"q"},{"role":"tool","content":"x"}]}`,
			want: schemas.Pair{Conversational: true,
				PromptMessages: msgs("user", "q"), ChosenMessages: msgs("assistant", "x"), RejectedMessages: msgs("tool", "x")},
		},
		{
			name: "surrounding whitespace and CR are not part of the JSON",
			line: " \t{\"prompt\":\"p\",\"chosen\":\"a\",\"rejected\":\"b\"}\r",
			want: schemas.Pair{Prompt: "p", Chosen: "a", Rejected: "b"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, rej := ParseLine("f.jsonl", 3, []byte(tt.line))
			if rej != nil {
				t.Fatalf("ParseLine(%s) rejected: %+v", tt.line, rej)
			}
			want := tt.want
			want.Source, want.Line = "f.jsonl", 3
			if !reflect.DeepEqual(*p, want) {
				t.Errorf("ParseLine(%s)\n got %+v\nwant %+v", tt.line, *p, want)
			}
		})
	}
}

func TestParseLineDefects(t *testing.T) {
	tests := []struct {
		name   string
		line   string
		reason string
		detail string // a substring the detail must contain
	}{
		{"not JSON", `prompt: hi`, schemas.ReasonInvalidJSON, "not valid JSON"},
		{"truncated object", `{"prompt":"p","chosen":"a","rej`, schemas.ReasonInvalidJSON, "not valid JSON"},
		{"two objects on a line", `{"prompt":"p","chosen":"a","rejected":"b"} {}`, schemas.ReasonInvalidJSON, "not valid JSON"},
		{"empty", ``, schemas.ReasonInvalidJSON, "empty"},
		{"whitespace only", "  \t", schemas.ReasonInvalidJSON, "empty"},
		{"array record", `[{"prompt":"p"}]`, schemas.ReasonWrongType, "record is a list, want a JSON object"},
		{"string record", `"hello"`, schemas.ReasonWrongType, "record is a string"},
		{"number record", `42`, schemas.ReasonWrongType, "record is a number"},
		{"null record", `null`, schemas.ReasonWrongType, "record is null"},
		{"missing chosen", `{"prompt":"p","rejected":"b"}`, schemas.ReasonMissingField, `record has no field "chosen"`},
		{"missing both", `{"prompt":"p"}`, schemas.ReasonMissingField, `record has no field "chosen"; record has no field "rejected"`},
		{"null rejected", `{"prompt":"p","chosen":"a","rejected":null}`, schemas.ReasonMissingField, `field "rejected" is null`},
		{"field names are case-sensitive", `{"prompt":"p","Chosen":"a","rejected":"b"}`, schemas.ReasonMissingField, `no field "chosen"`},
		{"no prompt with string completions", `{"chosen":"The answer is 14","rejected":"The answer is 15"}`, schemas.ReasonMissingField, `no field "prompt"`},
		{"chosen number", `{"prompt":"p","chosen":3,"rejected":"b"}`, schemas.ReasonWrongType, `field "chosen" is a number, want a string or a list of messages`},
		{"rejected object", `{"prompt":"p","chosen":"a","rejected":{"text":"b"}}`, schemas.ReasonWrongType, `field "rejected" is an object`},
		{"prompt boolean", `{"prompt":true,"chosen":"a","rejected":"b"}`, schemas.ReasonWrongType, `field "prompt" is a boolean`},
		{"mixed completions", `{"prompt":"p","chosen":"a","rejected":[{"role":"assistant","content":"b"}]}`, schemas.ReasonWrongType, `"chosen" is a string but "rejected" is a list of messages`},
		{"message list prompt with string completions", `{"prompt":[{"role":"user","content":"p"}],"chosen":"a","rejected":"b"}`, schemas.ReasonWrongType, `"prompt" is a list of messages but "chosen" and "rejected" are strings`},
		{"message not an object", `{"prompt":"p","chosen":["a"],"rejected":[{"role":"assistant","content":"b"}]}`, schemas.ReasonWrongType, `field "chosen" message 1 is a string`},
		{"message without content", `{"prompt":"p","chosen":[{"role":"assistant"}],"rejected":[{"role":"assistant","content":"b"}]}`, schemas.ReasonMissingField, `field "chosen" message 1 has no "content"`},
		{"message without role", `{"prompt":"p","chosen":[{"role":"assistant","content":"a"}],"rejected":[{"role":"assistant","content":"b"},{"content":"c"}]}`, schemas.ReasonMissingField, `field "rejected" message 2 has no "role"`},
		{"message empty role", `{"prompt":"p","chosen":[{"role":" ","content":"a"}],"rejected":[{"role":"assistant","content":"b"}]}`, schemas.ReasonMissingField, `empty "role"`},
		{"message content as parts", `{"prompt":"p","chosen":[{"role":"assistant","content":[{"type":"text","text":"a"}]}],"rejected":[{"role":"assistant","content":"b"}]}`, schemas.ReasonWrongType, `"content" is a list, want a string`},
		{"message content null", `{"prompt":"p","chosen":[{"role":"assistant","content":null}],"rejected":[{"role":"assistant","content":"b"}]}`, schemas.ReasonWrongType, `"content" is null, want a string`},
		{"empty chosen", `{"prompt":"p","chosen":"","rejected":"b"}`, schemas.ReasonEmptyCompletion, `field "chosen" is empty`},
		{"whitespace rejected", `{"prompt":"p","chosen":"a","rejected":" \n\t "}`, schemas.ReasonEmptyCompletion, `field "rejected" is only whitespace`},
		{"empty message list", `{"prompt":"p","chosen":[],"rejected":[{"role":"assistant","content":"b"}]}`, schemas.ReasonEmptyCompletion, `field "chosen" has no messages`},
		{"blank messages", `{"prompt":"p","chosen":[{"role":"assistant","content":"a"}],"rejected":[{"role":"assistant","content":"  "}]}`, schemas.ReasonEmptyCompletion, `field "rejected" has only empty or whitespace messages`},
		{"implicit: identical conversations", `{"chosen":[{"role":"user","content":"q"},{"role":"assistant","content":"a"}],"rejected":[{"role":"user","content":"q"},{"role":"assistant","content":"a"}]}`, schemas.ReasonDegenerate, "same conversation"},
		{"implicit: chosen is a prefix", `{"chosen":[{"role":"user","content":"q"}],"rejected":[{"role":"user","content":"q"},{"role":"assistant","content":"a"}]}`, schemas.ReasonEmptyCompletion, "implied chosen completion is empty"},
		{"implicit: rejected is a prefix", `{"chosen":[{"role":"user","content":"q"},{"role":"assistant","content":"a"}],"rejected":[{"role":"user","content":"q"}]}`, schemas.ReasonEmptyCompletion, "implied rejected completion is empty"},
		{"implicit: nothing shared", `{"chosen":[{"role":"user","content":"q1"},{"role":"assistant","content":"a"}],"rejected":[{"role":"user","content":"q2"},{"role":"assistant","content":"a"}]}`, schemas.ReasonEmptyPrompt, "no prompt can be implied"},
		{"implicit: both empty", `{"chosen":[],"rejected":[]}`, schemas.ReasonDegenerate, "same conversation"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, rej := ParseLine("f.jsonl", 9, []byte(tt.line))
			if p != nil || rej == nil {
				t.Fatalf("ParseLine(%s) = %+v, %+v; want a reject", tt.line, p, rej)
			}
			if rej.Reason != tt.reason {
				t.Errorf("reason = %q, want %q (detail %q)", rej.Reason, tt.reason, rej.Detail)
			}
			if !strings.Contains(rej.Detail, tt.detail) {
				t.Errorf("detail = %q, want it to contain %q", rej.Detail, tt.detail)
			}
			if rej.Raw != tt.line || rej.RawBase64 != "" {
				t.Errorf("raw = %q (base64 %q), want the whole line %q", rej.Raw, rej.RawBase64, tt.line)
			}
			if rej.Source != "f.jsonl" || rej.Line != 9 {
				t.Errorf("source, line = %q, %d; want f.jsonl, 9", rej.Source, rej.Line)
			}
		})
	}
}

func TestParseLineInvalidUTF8(t *testing.T) {
	line := []byte("{\"prompt\":\"p\",\"chosen\":\"caf\xe9\",\"rejected\":\"b\"}")
	p, rej := ParseLine("f.jsonl", 1, line)
	if p != nil || rej == nil || rej.Reason != schemas.ReasonInvalidUTF8 {
		t.Fatalf("ParseLine = %+v, %+v; want an invalid_utf8 reject", p, rej)
	}
	if rej.Raw != "" {
		t.Errorf("raw = %q, want empty (raw_base64 carries the bytes)", rej.Raw)
	}
	got, err := base64.StdEncoding.DecodeString(rej.RawBase64)
	if err != nil || string(got) != string(line) {
		t.Errorf("raw_base64 decodes to %q (%v), want the original bytes %q", got, err, line)
	}
	if !strings.Contains(rej.Detail, "byte 27") {
		t.Errorf("detail = %q, want the offset of the bad byte (27)", rej.Detail)
	}
}

// FuzzParseLine checks that any input gives exactly one of a pair or a reject,
// that a reject keeps the whole input, and that a pair is usable.
func FuzzParseLine(f *testing.F) {
	for _, seed := range []string{
		`{"prompt":"p","chosen":"a","rejected":"b"}`,
		`{"prompt":[{"role":"user","content":"q"}],"chosen":[{"role":"assistant","content":"a"}],"rejected":[{"role":"assistant","content":"b"}]}`,
		`{"chosen":[{"role":"user","content":"q"},{"role":"assistant","content":"a"}],"rejected":[{"role":"user","content":"q"},{"role":"assistant","content":"b"}]}`,
		`{"prompt":"p","chosen":"a","rejected":"b","x":{"y":[1,2]},"chosen":"c"}`,
		`{"prompt":"p","chosen":3}`, `[1]`, `null`, ``, "{\"a\":\"\xff\"}", `{"prompt":"\ud800","chosen":"a","rejected":"b"}`,
	} {
		f.Add([]byte(seed))
	}
	known := map[string]bool{
		schemas.ReasonInvalidJSON: true, schemas.ReasonMissingField: true, schemas.ReasonWrongType: true,
		schemas.ReasonEmptyCompletion: true, schemas.ReasonInvalidUTF8: true, schemas.ReasonDegenerate: true,
		schemas.ReasonEmptyPrompt: true,
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		p, rej := ParseLine("fuzz", 1, line)
		if (p == nil) == (rej == nil) {
			t.Fatalf("ParseLine(%q) = %v, %v; want exactly one non-nil", line, p, rej)
		}
		if rej != nil {
			if !known[rej.Reason] || rej.Detail == "" {
				t.Fatalf("reject %+v: unknown reason or no detail", rej)
			}
			raw := []byte(rej.Raw)
			if rej.RawBase64 != "" {
				raw, _ = base64.StdEncoding.DecodeString(rej.RawBase64)
			}
			if string(raw) != string(line) {
				t.Fatalf("reject raw %q, want the whole input %q", raw, line)
			}
			return
		}
		if p.Conversational {
			if len(p.ChosenMessages) == 0 || len(p.RejectedMessages) == 0 {
				t.Fatalf("conversational pair without completions: %+v", p)
			}
		} else if strings.TrimSpace(p.Chosen) == "" || strings.TrimSpace(p.Rejected) == "" {
			t.Fatalf("pair with an empty completion: %+v", p)
		}
		if p.Extra != "" && !utf8.ValidString(p.Extra) {
			t.Fatalf("extra is not UTF-8: %q", p.Extra)
		}
	})
}
