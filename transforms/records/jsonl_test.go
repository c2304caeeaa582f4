package records

import (
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/dpopflow/dpopflow/schemas"
)

// outcome is one yielded record reduced to what a user sees: the line, and the
// reject reason ("" for a pair).
type outcome struct {
	Line   int64
	Reason string
}

func collect(seq func(func(*schemas.Pair, *schemas.Reject) bool)) (pairs []*schemas.Pair, rejects []*schemas.Reject, all []outcome) {
	for p, rej := range seq {
		if (p == nil) == (rej == nil) {
			panic("want exactly one of pair and reject")
		}
		if p != nil {
			pairs = append(pairs, p)
			all = append(all, outcome{p.Line, ""})
		} else {
			rejects = append(rejects, rej)
			all = append(all, outcome{rej.Line, rej.Reason})
		}
	}
	return pairs, rejects, all
}

const good = `{"prompt":"p","chosen":"a","rejected":"b"}`

func TestJSONLLines(t *testing.T) {
	tests := []struct {
		name  string
		input string
		want  []outcome
	}{
		{"empty file", "", nil},
		{"only blank lines", "\n \n\t\r\n", nil},
		{"one record without newline", good, []outcome{{1, ""}}},
		{"blank lines keep their numbers", "\n" + good + "\n\n" + good + "\n", []outcome{{2, ""}, {4, ""}}},
		{"CRLF", good + "\r\n" + good + "\r\n", []outcome{{1, ""}, {2, ""}}},
		{"BOM on the first line", "\xEF\xBB\xBF" + good + "\n", []outcome{{1, ""}}},
		{"truncated last line", good + "\n" + `{"prompt":"p","cho`, []outcome{{1, ""}, {2, schemas.ReasonInvalidJSON}}},
		{"defects are per line", "x\n" + good + "\n{\"prompt\":\"p\",\"chosen\":\"\",\"rejected\":\"b\"}\n",
			[]outcome{{1, schemas.ReasonInvalidJSON}, {2, ""}, {3, schemas.ReasonEmptyCompletion}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, got := collect(JSONL(strings.NewReader(tt.input), "f.jsonl", 0))
			if !equalOutcomes(got, tt.want) {
				t.Errorf("JSONL(%q) = %v, want %v", tt.input, got, tt.want)
			}
		})
	}
}

func equalOutcomes(a, b []outcome) bool {
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

func TestJSONLTruncatedLastLineSaysSo(t *testing.T) {
	last := `{"prompt":"p","cho`
	_, rejects, _ := collect(JSONL(strings.NewReader(good+"\n"+last), "f.jsonl", 0))
	if len(rejects) != 1 || rejects[0].Raw != last || !strings.Contains(rejects[0].Detail, "may be truncated") {
		t.Fatalf("rejects = %+v, want one invalid_json reject with the partial line and a note that the file may be truncated", rejects)
	}
}

func TestJSONLLongLines(t *testing.T) {
	const limit = 100 << 10
	// A valid record much longer than bufio's default buffers, and one just
	// over the limit whose preview ends inside a multi-byte character.
	long := `{"prompt":"p","chosen":"` + strings.Repeat("x", limit-100) + `","rejected":"b"}`
	tooLong := `{"prompt":"p","chosen":"` + strings.Repeat("x", PreviewBytes-25) + strings.Repeat("é", limit) + `","rejected":"b"}`
	input := long + "\n" + tooLong + "\n" + good + "\n"

	pairs, rejects, got := collect(JSONL(strings.NewReader(input), "f.jsonl", limit))
	want := []outcome{{1, ""}, {2, schemas.ReasonTooLarge}, {3, ""}}
	if !equalOutcomes(got, want) {
		t.Fatalf("outcomes = %v, want %v", got, want)
	}
	if len(pairs[0].Chosen) != limit-100 {
		t.Errorf("long chosen has %d bytes, want %d", len(pairs[0].Chosen), limit-100)
	}
	rej := rejects[0]
	if !strings.HasPrefix(tooLong, rej.Raw) || len(rej.Raw) < PreviewBytes-1 || len(rej.Raw) > PreviewBytes {
		t.Errorf("too-large raw has %d bytes; want a prefix of the line of about %d bytes cut at a character boundary", len(rej.Raw), PreviewBytes)
	}
	if !strings.Contains(rej.Detail, "over the 102400-byte limit") || !strings.Contains(rej.Detail, "only its first") {
		t.Errorf("detail = %q, want the size, the limit and that raw is truncated", rej.Detail)
	}
}

// failingReader returns its data and then an error, as a network read or a
// corrupt gzip stream does midway.
type failingReader struct {
	data []byte
	err  error
}

func (r *failingReader) Read(p []byte) (int, error) {
	if len(r.data) == 0 {
		return 0, r.err
	}
	n := copy(p, r.data)
	r.data = r.data[n:]
	return n, nil
}

func TestJSONLReadErrorIsARejectForTheRest(t *testing.T) {
	boom := errors.New("connection reset")
	r := &failingReader{data: []byte(good + "\n" + good + "\n" + `{"prompt":"p"`), err: boom}
	_, rejects, got := collect(JSONL(r, "gs://b/f.jsonl", 0))
	want := []outcome{{1, ""}, {2, ""}, {3, schemas.ReasonUnreadable}}
	if !equalOutcomes(got, want) {
		t.Fatalf("outcomes = %v, want %v", got, want)
	}
	if rej := rejects[0]; rej.Raw != `{"prompt":"p"` || !strings.Contains(rej.Detail, "connection reset") || !strings.Contains(rej.Detail, "rest of the file") {
		t.Errorf("reject = %+v, want the partial line as raw and the error in the detail", rej)
	}
}

func TestJSONLCorruptGzip(t *testing.T) {
	var b bytes.Buffer
	zw := gzip.NewWriter(&b)
	for i := range 2000 {
		// Varied lines, so the compressed stream is long enough to cut.
		fmt.Fprintf(zw, `{"prompt":"%d*%d=","chosen":"%d","rejected":"%d"}`+"\n", i, i+7, i*(i+7), i*(i+7)+1)
	}
	zw.Close()
	cut := b.Bytes()[:b.Len()/2] // a truncated download
	zr, err := gzip.NewReader(bytes.NewReader(cut))
	if err != nil {
		t.Fatal(err)
	}
	pairs, rejects, _ := collect(JSONL(zr, "f.jsonl.gz", 0))
	if len(rejects) != 1 || rejects[0].Reason != schemas.ReasonUnreadable {
		t.Fatalf("rejects = %+v, want one unreadable_file reject", rejects)
	}
	if len(pairs) == 0 || len(pairs) >= 2000 {
		t.Errorf("got %d pairs, want the records before the cut", len(pairs))
	}
}

func TestJSONLStopsWhenAsked(t *testing.T) {
	n := 0
	for range JSONL(strings.NewReader(good+"\n"+good+"\n"+good+"\n"), "f.jsonl", 0) {
		n++
		if n == 2 {
			break
		}
	}
	if n != 2 {
		t.Errorf("iterated %d records after break at 2", n)
	}
}

func BenchmarkJSONL(b *testing.B) {
	var buf bytes.Buffer
	for range 1000 {
		buf.WriteString(`{"prompt":"Natalia sold clips to 48 of her friends in April, and then she sold half as many clips in May. How many clips did Natalia sell altogether?","chosen":"In May she sold 48/2 = 24. In total 48+24 = 72. The answer is 72.","rejected":"In May she sold 48/2 = 26. In total 48+24 = 72. The answer is 72.","source":"metamath"}` + "\n")
	}
	data := buf.Bytes()
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		for p, rej := range JSONL(bytes.NewReader(data), "bench", 0) {
			if p == nil {
				b.Fatal(rej)
			}
		}
	}
}
