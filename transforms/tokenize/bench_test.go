package tokenize

import (
	"fmt"
	"math/rand"
	"strings"
	"sync"
	"testing"
)

var (
	benchOnce sync.Once
	benchText string
)

// benchCorpus is ~1 MB of mixed English prose, Go code and numbers, the kind of
// text preference data holds; generated from a fixed seed so runs compare.
func benchCorpus() string {
	benchOnce.Do(func() {
		r := rand.New(rand.NewSource(1))
		words := strings.Fields(`the of and to in is that it was for on are with as his they be at one have this from
			or had by hot word but what some we can out other were all there when up use your how said an each she
			which do their time if will way about many then them write would like so these her long make thing see
			him two has look more day could go come did number sound no most people my over know water than call
			first who may down side been now find answer question step result therefore because total remaining`)
		code := []string{
			"func add(a, b int) int {\n\treturn a + b\n}\n",
			"for i := 0; i < len(xs); i++ {\n\tsum += xs[i] * 2\n}\n",
			"if err != nil {\n\treturn fmt.Errorf(\"read %s: %w\", path, err)\n}\n",
			"def mean(xs):\n    return sum(xs) / len(xs)  # average\n",
		}
		var b strings.Builder
		for b.Len() < 1<<20 {
			switch r.Intn(4) {
			case 0, 1:
				n := 8 + r.Intn(20)
				for i := 0; i < n; i++ {
					w := words[r.Intn(len(words))]
					if i == 0 {
						w = strings.ToUpper(w[:1]) + w[1:]
					}
					b.WriteString(w)
					if i < n-1 {
						b.WriteByte(' ')
					}
				}
				b.WriteString(". ")
			case 2:
				b.WriteString(code[r.Intn(len(code))])
			case 3:
				a, c := r.Intn(1000), r.Intn(1000)
				fmt.Fprintf(&b, "Step %d: %d + %d = %d, so %.2f%% remain.\n", r.Intn(9)+1, a, c, a+c, r.Float64()*100)
			}
		}
		benchText = b.String()
	})
	return benchText
}

// BenchmarkEncode measures throughput (MB/s) on one goroutine, ours and, for the
// tiktoken encodings, tiktoken-go's EncodeOrdinary on the same text. Our word
// cache is warm after the first iteration, as it is after the first records of
// a real run.
func BenchmarkEncode(b *testing.B) {
	text := benchCorpus()
	for _, spec := range []string{"byte", "gpt2", "cl100k_base", "o200k_base"} {
		tok := mustNew(b, spec)
		b.Run("ours/"+spec, func(b *testing.B) {
			b.SetBytes(int64(len(text)))
			for i := 0; i < b.N; i++ {
				tok.Encode(text)
			}
		})
		if spec == "byte" {
			continue
		}
		// Cold: the word cache emptied before each pass, as for the first
		// megabyte a worker sees.
		b.Run("ours-cold/"+spec, func(b *testing.B) {
			c := &tok.(*tiktokenTokenizer).core.cache
			b.SetBytes(int64(len(text)))
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				c.m.Clear()
				c.n.Store(0)
				b.StartTimer()
				tok.Encode(text)
			}
		})
		enc := isBuiltin(spec)
		ref := refEncoding(b, enc)
		b.Run("tiktoken-go/"+spec, func(b *testing.B) {
			b.SetBytes(int64(len(text)))
			for i := 0; i < b.N; i++ {
				ref.EncodeOrdinary(text)
			}
		})
	}
}

func BenchmarkDecode(b *testing.B) {
	text := benchCorpus()
	for _, spec := range []string{"byte", "gpt2"} {
		tok := mustNew(b, spec)
		ids := tok.Encode(text)
		b.Run(spec, func(b *testing.B) {
			b.SetBytes(int64(len(text)))
			for i := 0; i < b.N; i++ {
				tok.Decode(ids)
			}
		})
	}
}
