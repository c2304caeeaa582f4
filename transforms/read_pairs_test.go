package transforms

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/base64"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/apache/arrow/go/v17/arrow"
	"github.com/apache/arrow/go/v17/arrow/array"
	"github.com/apache/arrow/go/v17/arrow/memory"
	"github.com/apache/arrow/go/v17/parquet"
	"github.com/apache/arrow/go/v17/parquet/pqarrow"
	"github.com/apache/beam/sdks/v2/go/pkg/beam"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/io/filesystem/memfs"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/register"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/testing/passert"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/testing/ptest"

	"github.com/dpopflow/dpopflow/schemas"
)

func init() {
	register.Function1x1(readPairSummary)
	register.Function1x1(readRejectSummary)
}

// readPairSummary reduces a pair to one comparable line; long texts become
// their length so a multi-megabyte record does not flood a failure message.
func readPairSummary(p schemas.Pair) string {
	text := func(s string) string {
		if len(s) > 64 {
			return fmt.Sprintf("<%d bytes>", len(s))
		}
		return fmt.Sprintf("%q", s)
	}
	conv := func(ms []schemas.Message) string {
		var parts []string
		for _, m := range ms {
			parts = append(parts, m.Role+":"+text(m.Content))
		}
		return "[" + strings.Join(parts, " ") + "]"
	}
	if p.Conversational {
		return fmt.Sprintf("%s:%d %s %s %s extra=%s", filepath.Base(p.Source), p.Line,
			conv(p.PromptMessages), conv(p.ChosenMessages), conv(p.RejectedMessages), p.Extra)
	}
	return fmt.Sprintf("%s:%d %s %s %s extra=%s", filepath.Base(p.Source), p.Line,
		text(p.Prompt), text(p.Chosen), text(p.Rejected), p.Extra)
}

// readRejectSummary keeps the whole raw record, so comparing summaries checks
// that dead letters carry it.
func readRejectSummary(r schemas.Reject) string {
	raw := "raw=" + r.Raw
	if r.RawBase64 != "" {
		raw = "raw_base64=" + r.RawBase64
	}
	return fmt.Sprintf("%s:%d %s %s", filepath.Base(r.Source), r.Line, r.Reason, raw)
}

// readCounters sums the read stage's counters by name over all steps.
func readCounters(pr beam.PipelineResult) map[string]int64 {
	out := map[string]int64{}
	for _, c := range pr.Metrics().AllMetrics().Counters() {
		if c.Namespace() == "read" {
			out[c.Name()] += c.Result()
		}
	}
	return out
}

func gzipped(t *testing.T, data string) []byte {
	t.Helper()
	var b bytes.Buffer
	zw := gzip.NewWriter(&b)
	if _, err := zw.Write([]byte(data)); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func TestReadPairsDirtyJSONL(t *testing.T) {
	const limit = 4 << 20
	long := `{"prompt":"p","chosen":"` + strings.Repeat("step. ", 170_000) + `","rejected":"b"}` // ~1 MB, kept
	huge := `{"prompt":"p","chosen":"` + strings.Repeat("x", 5<<20) + `","rejected":"b"}`        // ~5 MB, over the limit
	badUTF8 := "{\"prompt\":\"p\",\"chosen\":\"caf\xe9\",\"rejected\":\"b\"}"
	lines := []string{
		/* 1 */ `{"prompt":"1+1=","chosen":"2","rejected":"3"}`,
		/* 2 */ ``,
		/* 3 */ `{"prompt":"2+2=","chosen":"4","rejected":"5","source":"math","id":3}`,
		/* 4 */ `{"prompt": "oops", "chosen": "a", rejected: "b"}`,
		/* 5 */ `not json at all`,
		/* 6 */ `{"prompt":"p","rejected":"b"}`,
		/* 7 */ `{"prompt":"p","chosen":"a"}`,
		/* 8 */ `{"prompt":"p","chosen":42,"rejected":"b"}`,
		/* 9 */ `   `,
		/* 10 */ `{"prompt":"p","chosen":"","rejected":"b"}`,
		/* 11 */ `{"prompt":"p","chosen":"a","rejected":" \n\t "}`,
		/* 12 */ badUTF8,
		/* 13 */ long,
		/* 14 */ huge,
		/* 15 */ `{"prompt":[{"role":"user","content":"hi"}],"chosen":[{"role":"assistant","content":"hello"}],"rejected":[{"role":"assistant","content":"go away"}]}`,
		/* 16 */ `{"chosen":[{"role":"user","content":"3*4?"},{"role":"assistant","content":"12"}],"rejected":[{"role":"user","content":"3*4?"},{"role":"assistant","content":"13"}]}`,
		/* 17 */ `{"prompt":"p","chosen":"a","rej`, // truncated: no newline follows
	}
	memfs.Write("memfs://read_dirty/dirty.jsonl", []byte(strings.Join(lines, "\n")))

	p, s := beam.NewPipelineWithRoot()
	pairs, rejects := readPairs(s, []string{"memfs://read_dirty/*.jsonl"}, limit)
	passert.Equals(s, beam.ParDo(s, readPairSummary, pairs),
		`dirty.jsonl:1 "1+1=" "2" "3" extra=`,
		`dirty.jsonl:3 "2+2=" "4" "5" extra={"id":3,"source":"math"}`,
		fmt.Sprintf(`dirty.jsonl:13 "p" <%d bytes> "b" extra=`, len("step. ")*170_000),
		`dirty.jsonl:15 [user:"hi"] [assistant:"hello"] [assistant:"go away"] extra=`,
		`dirty.jsonl:16 [user:"3*4?"] [assistant:"12"] [assistant:"13"] extra=`,
	)
	passert.Equals(s, beam.ParDo(s, readRejectSummary, rejects),
		"dirty.jsonl:4 invalid_json raw="+lines[3],
		"dirty.jsonl:5 invalid_json raw="+lines[4],
		"dirty.jsonl:6 missing_field raw="+lines[5],
		"dirty.jsonl:7 missing_field raw="+lines[6],
		"dirty.jsonl:8 wrong_type raw="+lines[7],
		"dirty.jsonl:10 empty_completion raw="+lines[9],
		"dirty.jsonl:11 empty_completion raw="+lines[10],
		"dirty.jsonl:12 invalid_utf8 raw_base64="+base64.StdEncoding.EncodeToString([]byte(badUTF8)),
		// The one reject whose raw is not whole: a preview of the over-long line.
		"dirty.jsonl:14 record_too_large raw="+huge[:4096],
		"dirty.jsonl:17 invalid_json raw="+lines[16],
	)
	pr := ptest.RunAndValidate(t, p)

	got := readCounters(pr)
	want := map[string]int64{
		"files_read": 1, "pairs_read": 15,
		"rejected_invalid_json": 3, "rejected_missing_field": 2, "rejected_wrong_type": 1,
		"rejected_empty_completion": 2, "rejected_invalid_utf8": 1, "rejected_record_too_large": 1,
	}
	for name, n := range want {
		if got[name] != n {
			t.Errorf("counter read/%s = %d, want %d", name, got[name], n)
		}
	}
	for name, n := range got {
		if _, ok := want[name]; !ok && n != 0 {
			t.Errorf("counter read/%s = %d, want 0", name, n)
		}
	}
}

// readTestParquet writes rows (a JSON list) as a Parquet file with the given
// columns, with a required root as other readers expect.
func readTestParquet(t *testing.T, schema *arrow.Schema, rows string) []byte {
	t.Helper()
	rec, _, err := array.RecordFromJSON(memory.DefaultAllocator, schema, strings.NewReader(rows))
	if err != nil {
		t.Fatalf("build record: %v", err)
	}
	defer rec.Release()
	var b bytes.Buffer
	props := parquet.NewWriterProperties(parquet.WithRootRepetition(parquet.Repetitions.Required))
	w, err := pqarrow.NewFileWriter(schema, &b, props, pqarrow.DefaultWriterProps())
	if err != nil {
		t.Fatalf("create parquet writer: %v", err)
	}
	if err := w.Write(rec); err != nil {
		t.Fatalf("write parquet: %v", err)
	}
	if err := w.Close(); err != nil {
		t.Fatalf("close parquet writer: %v", err)
	}
	return b.Bytes()
}

func TestReadPairsFormats(t *testing.T) {
	chat := strings.Join([]string{
		`{"prompt":[{"role":"system","content":"be brief"},{"role":"user","content":"hi"}],"chosen":[{"role":"assistant","content":"hello"}],"rejected":[{"role":"assistant","content":"bye"}]}`,
		`{"chosen":[{"role":"user","content":"2+3*4?"},{"role":"assistant","content":"3*4=12, 2+12=14"}],"rejected":[{"role":"user","content":"2+3*4?"},{"role":"assistant","content":"3*4=12, 2+12=15"}],"tag":"math"}`,
		`{"prompt":"hi","chosen":[{"role":"assistant","content":"hello"}],"rejected":[{"role":"assistant","content":"no"}]}`,
		`{"chosen":[{"role":"user","content":"q"},{"role":"assistant","content":"a"}],"rejected":[{"role":"user","content":"q"},{"role":"assistant","content":"a"}]}`,
	}, "\n") + "\n"
	memfs.Write("memfs://read_formats/chat.jsonl.gz", gzipped(t, chat))
	// Compressed without saying so in the name: found by gzip's magic bytes.
	memfs.Write("memfs://read_formats/sneaky.jsonl", gzipped(t, `{"prompt":"p","chosen":"a","rejected":"b"}`+"\n"))
	memfs.Write("memfs://read_formats/empty.jsonl", nil)

	messages := arrow.ListOf(arrow.StructOf(
		arrow.Field{Name: "role", Type: arrow.BinaryTypes.String},
		arrow.Field{Name: "content", Type: arrow.BinaryTypes.String},
	))
	memfs.Write("memfs://read_formats/text.parquet", readTestParquet(t, arrow.NewSchema([]arrow.Field{
		{Name: "prompt", Type: arrow.BinaryTypes.String},
		{Name: "chosen", Type: arrow.BinaryTypes.String, Nullable: true},
		{Name: "rejected", Type: arrow.BinaryTypes.String},
		{Name: "id", Type: arrow.PrimitiveTypes.Int64},
	}, nil), `[
		{"prompt": "1+1=", "chosen": "2", "rejected": "3", "id": 1},
		{"prompt": "2+2=", "chosen": null, "rejected": "5", "id": 2}
	]`))
	memfs.Write("memfs://read_formats/chat.parquet", readTestParquet(t, arrow.NewSchema([]arrow.Field{
		{Name: "prompt", Type: messages},
		{Name: "chosen", Type: messages},
		{Name: "rejected", Type: messages},
	}, nil), `[{"prompt": [{"role": "user", "content": "hi"}],
		"chosen": [{"role": "assistant", "content": "hello"}],
		"rejected": [{"role": "assistant", "content": "bye"}]}]`))

	p, s := beam.NewPipelineWithRoot()
	pairs, rejects := ReadPairs(s, []string{
		"memfs://read_formats/*.jsonl*",
		"memfs://read_formats/*.parquet",
		"memfs://read_formats/chat.jsonl.gz", // also matched above: read once
		"memfs://read_formats/gone-*.jsonl",  // vanished since ExpandInputs: a reject, not a failure
	})
	passert.Equals(s, beam.ParDo(s, readPairSummary, pairs),
		`chat.jsonl.gz:1 [system:"be brief" user:"hi"] [assistant:"hello"] [assistant:"bye"] extra=`,
		`chat.jsonl.gz:2 [user:"2+3*4?"] [assistant:"3*4=12, 2+12=14"] [assistant:"3*4=12, 2+12=15"] extra={"tag":"math"}`,
		`chat.jsonl.gz:3 [user:"hi"] [assistant:"hello"] [assistant:"no"] extra=`,
		`sneaky.jsonl:1 "p" "a" "b" extra=`,
		`text.parquet:1 "1+1=" "2" "3" extra={"id":1}`,
		`chat.parquet:1 [user:"hi"] [assistant:"hello"] [assistant:"bye"] extra=`,
	)
	passert.Equals(s, beam.ParDo(s, readRejectSummary, rejects),
		"chat.jsonl.gz:4 degenerate raw="+strings.Split(chat, "\n")[3],
		`text.parquet:2 missing_field raw={"prompt":"2+2=","chosen":null,"rejected":"5","id":2}`,
		"gone-*.jsonl:0 unreadable_file raw=",
	)
	pr := ptest.RunAndValidate(t, p)
	if got := readCounters(pr); got["files_read"] != 5 || got["pairs_read"] != 9 || got["rejected_unreadable_file"] != 1 {
		t.Errorf("counters = %v, want files_read 5, pairs_read 9, rejected_unreadable_file 1", got)
	}
}

func TestExpandInputs(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	for _, name := range []string{"b.jsonl", "a.jsonl", "c.parquet"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte("{}\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	memfs.Write("memfs://expand/x.jsonl", []byte("{}\n"))

	got, err := ExpandInputs(ctx, []string{filepath.Join(dir, "*.jsonl"), filepath.Join(dir, "a.jsonl"), filepath.Join(dir, "*.parquet"), "memfs://expand/*"})
	if err != nil {
		t.Fatalf("ExpandInputs: %v", err)
	}
	want := []string{filepath.Join(dir, "a.jsonl"), filepath.Join(dir, "b.jsonl"), filepath.Join(dir, "c.parquet"), "memfs://expand/x.jsonl"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("ExpandInputs = %q, want %q (sorted, each file once)", got, want)
	}

	missing := filepath.Join(dir, "nothing", "*.jsonl")
	_, err = ExpandInputs(ctx, []string{filepath.Join(dir, "*.jsonl"), missing})
	if want := fmt.Sprintf("input %q matches no files", missing); err == nil || err.Error() != want {
		t.Errorf("ExpandInputs with a missing input: error %v, want %q", err, want)
	}
	if _, err := ExpandInputs(ctx, []string{"nosuchfs://bucket/x.jsonl"}); err == nil || !strings.Contains(err.Error(), "nosuchfs://bucket/x.jsonl") {
		t.Errorf("ExpandInputs with an unknown scheme: error %v, want one naming the path", err)
	}
	if _, err := ExpandInputs(ctx, nil); err == nil {
		t.Error("ExpandInputs with no inputs: want an error")
	}
}
