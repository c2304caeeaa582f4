package tokenize

import (
	"strings"
	"sync"
	"testing"
	"unicode/utf8"

	"github.com/pkoukk/tiktoken-go"
	tiktoken_loader "github.com/pkoukk/tiktoken-go-loader"
)

// samples exercise what a tokenizer gets wrong first: contractions, unicode
// letters and marks, emoji sequences, CJK, whitespace runs and newlines, digits,
// code, long runs, and special-token text inside user data.
var samples = []string{
	"",
	"hello world",
	"Hello, World! How's it going? I'm fine; they'll see. WE'RE DONE'S",
	"naïve café — résumé, Ünïcödé ñ, e\u0301 (combining), Привет мир, مرحبا بالعالم",
	"👍🏽 family: 👨\u200d👩\u200d👧\u200d👦 🎉🎉 ✔︎",
	"日本語のテキストと中文文本，한국어 텍스트。",
	"a   b\t\tc\n\n\n  d    \n",
	"   leading and trailing   ",
	"\r\n\r\nwindows\r\nlines\r\n",
	"1234567890 3.14159 1,000,000 0x1F 2024-12-04 12:30",
	"func main() {\n\tfmt.Println(\"hi\")\n\tx += 1 // ok\n\treturn &x[i:j]\n}\n",
	"def f(x):\n    return {'a': [1, 2, 3]}  # comment\n\n\n",
	"before<|endoftext|>after <|endoftext|>",
	"<|im_start|>user\nhi<|im_end|>\n<|start_header_id|>assistant<|end_header_id|>\n\n<|eot_id|>",
	"<|fim_prefix|><|endofprompt|></s><s>",
	strings.Repeat("ab", 300),
	strings.Repeat("9", 500),
	strings.Repeat(" ", 300) + "x" + strings.Repeat("\n", 50),
	"Step 1: 48 / 2 = 24. Step 2: 24 + 15 = 39. The answer is 39.",
	"tabs\tand\u00a0nbsp\u2003em-space\u3000ideographic",
}

var (
	refMu   sync.Mutex
	refEncs = map[string]*tiktoken.Tiktoken{}
)

// refEncoding returns tiktoken-go's own encoder, the reference for our ids.
// Built once per encoding: GetEncoding rebuilds its tables on every call.
func refEncoding(t testing.TB, enc string) *tiktoken.Tiktoken {
	t.Helper()
	refMu.Lock()
	defer refMu.Unlock()
	if tk, ok := refEncs[enc]; ok {
		return tk
	}
	tiktoken.SetBpeLoader(tiktoken_loader.NewOfflineLoader())
	tk, err := tiktoken.GetEncoding(enc)
	if err != nil {
		t.Fatalf("tiktoken-go %s: %v", enc, err)
	}
	refEncs[enc] = tk
	return tk
}

func toInt32(ids []int) []int32 {
	out := make([]int32, len(ids))
	for i, id := range ids {
		out[i] = int32(id)
	}
	return out
}

func equalIDs(a, b []int32) bool {
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

func mustNew(t testing.TB, spec string) Tokenizer {
	t.Helper()
	tok, err := New(spec)
	if err != nil {
		t.Fatalf("New(%q): %v", spec, err)
	}
	return tok
}

func checkRoundTrip(t *testing.T, tok Tokenizer, text string) {
	t.Helper()
	ids := tok.Encode(text)
	if got := tok.Decode(ids); got != text {
		t.Errorf("%s: Decode(Encode(%q)) = %q", tok.Name(), text, got)
	}
	for _, id := range ids {
		if id < 0 || int(id) >= tok.VocabSize() {
			t.Errorf("%s: Encode(%q) produced id %d outside vocab %d", tok.Name(), text, id, tok.VocabSize())
		}
		if id == tok.EOS() || id == tok.PAD() {
			t.Errorf("%s: Encode(%q) produced special id %d", tok.Name(), text, id)
		}
	}
	if !utf8.ValidString(text) {
		t.Errorf("sample %q is not valid UTF-8", text)
	}
}

func TestNewCachesAndRejects(t *testing.T) {
	a, b := mustNew(t, "byte"), mustNew(t, "byte")
	if a != b {
		t.Error("New(byte) twice gave different tokenizers")
	}
	g, r := mustNew(t, "gpt2"), mustNew(t, "r50k_base")
	if g.Name() != "gpt2" || r.Name() != "r50k_base" {
		t.Errorf("names: %q %q", g.Name(), r.Name())
	}
	if !equalIDs(g.Encode("hello world"), r.Encode("hello world")) {
		t.Error("gpt2 and r50k_base disagree")
	}
	for _, bad := range []string{"", "no-such-file.json", "tokenizer.json:0123456789ab"} {
		if _, err := New(bad); err == nil {
			t.Errorf("New(%q) succeeded, want an error", bad)
		}
	}
}

func TestConcurrentEncode(t *testing.T) {
	tok := mustNew(t, "gpt2")
	want := make([][]int32, len(samples))
	for i, s := range samples {
		want[i] = refEncode(t, "r50k_base", s)
	}
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for rep := 0; rep < 5; rep++ {
				for i, s := range samples {
					if got := tok.Encode(s); !equalIDs(got, want[i]) {
						t.Errorf("concurrent Encode(%q) = %v, want %v", s, got, want[i])
						return
					}
				}
			}
		}()
	}
	wg.Wait()
}

func refEncode(t testing.TB, enc, text string) []int32 {
	return toInt32(refEncoding(t, enc).EncodeOrdinary(text))
}
