package records

import (
	"bytes"
	"fmt"
	"math"
	"reflect"
	"strings"
	"testing"

	"github.com/apache/arrow/go/v17/arrow"
	"github.com/apache/arrow/go/v17/arrow/array"
	"github.com/apache/arrow/go/v17/arrow/memory"
	"github.com/apache/arrow/go/v17/parquet"
	"github.com/apache/arrow/go/v17/parquet/pqarrow"

	"github.com/dpopflow/dpopflow/schemas"
)

var messagesType = arrow.ListOf(arrow.StructOf(
	arrow.Field{Name: "role", Type: arrow.BinaryTypes.String},
	arrow.Field{Name: "content", Type: arrow.BinaryTypes.String},
))

// writeParquet encodes rec as a Parquet file the way other tools expect it
// (required root), with small row groups so a test crosses their borders.
func writeParquet(t *testing.T, rec arrow.Record) []byte {
	t.Helper()
	var b bytes.Buffer
	props := parquet.NewWriterProperties(
		parquet.WithRootRepetition(parquet.Repetitions.Required),
		parquet.WithMaxRowGroupLength(700),
	)
	w, err := pqarrow.NewFileWriter(rec.Schema(), &b, props, pqarrow.DefaultWriterProps())
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

func recordFromJSON(t *testing.T, schema *arrow.Schema, rows string) arrow.Record {
	t.Helper()
	rec, _, err := array.RecordFromJSON(memory.DefaultAllocator, schema, strings.NewReader(rows))
	if err != nil {
		t.Fatalf("build record: %v", err)
	}
	t.Cleanup(rec.Release)
	return rec
}

func TestParquetStandard(t *testing.T) {
	schema := arrow.NewSchema([]arrow.Field{
		{Name: "id", Type: arrow.PrimitiveTypes.Int64},
		{Name: "prompt", Type: arrow.BinaryTypes.String},
		{Name: "chosen", Type: arrow.BinaryTypes.String, Nullable: true},
		{Name: "rejected", Type: arrow.BinaryTypes.String},
		{Name: "score", Type: arrow.PrimitiveTypes.Float64},
	}, nil)
	b := array.NewRecordBuilder(memory.DefaultAllocator, schema)
	defer b.Release()
	add := func(id int64, prompt string, chosen *string, rejected string, score float64) {
		b.Field(0).(*array.Int64Builder).Append(id)
		b.Field(1).(*array.StringBuilder).Append(prompt)
		if chosen == nil {
			b.Field(2).AppendNull()
		} else {
			b.Field(2).(*array.StringBuilder).Append(*chosen)
		}
		b.Field(3).(*array.StringBuilder).Append(rejected)
		b.Field(4).(*array.Float64Builder).Append(score)
	}
	str := func(s string) *string { return &s }
	add(1, "2+2=", str("4"), "5", 0.5)
	add(2, "q", nil, "b", 1)
	add(3, "q", str("  "), "b", 1)
	add(4, "q", str("caf\xe9"), "b", 1)
	add(5, "q", str("a"), "b", math.NaN())
	rec := b.NewRecord()
	defer rec.Release()

	pairs, rejects, got := collect(Parquet(writeParquet(t, rec), "d.parquet"))
	want := []outcome{{1, ""}, {2, schemas.ReasonMissingField}, {3, schemas.ReasonEmptyCompletion}, {4, schemas.ReasonInvalidUTF8}, {5, ""}}
	if !equalOutcomes(got, want) {
		t.Fatalf("outcomes = %v, want %v (rejects %+v)", got, want, rejects)
	}
	wantPair := schemas.Pair{Source: "d.parquet", Line: 1, Prompt: "2+2=", Chosen: "4", Rejected: "5", Extra: `{"id":1,"score":0.5}`}
	if !reflect.DeepEqual(*pairs[0], wantPair) {
		t.Errorf("pair = %+v, want %+v", *pairs[0], wantPair)
	}
	if pairs[1].Extra != `{"id":5,"score":"NaN"}` {
		t.Errorf("extra with NaN = %s, want NaN kept as a string", pairs[1].Extra)
	}
	if raw := rejects[0].Raw; raw != `{"id":2,"prompt":"q","chosen":null,"rejected":"b","score":1}` {
		t.Errorf("raw = %s, want the row as JSON in column order", raw)
	}
	if d := rejects[2].Detail; !strings.Contains(d, `column "chosen" is not valid UTF-8`) {
		t.Errorf("invalid UTF-8 detail = %q, want it to name the column", d)
	}
}

func TestParquetConversational(t *testing.T) {
	schema := arrow.NewSchema([]arrow.Field{
		{Name: "prompt", Type: messagesType, Nullable: true},
		{Name: "chosen", Type: messagesType},
		{Name: "rejected", Type: messagesType},
		{Name: "tags", Type: arrow.ListOf(arrow.BinaryTypes.String)},
	}, nil)
	rec := recordFromJSON(t, schema, `[
		{"prompt": [{"role": "user", "content": "hi"}],
		 "chosen": [{"role": "assistant", "content": "hello"}],
		 "rejected": [{"role": "assistant", "content": "bye"}], "tags": ["a", "b"]},
		{"prompt": null,
		 "chosen": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "14"}],
		 "rejected": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "15"}], "tags": []},
		{"prompt": [{"role": "user", "content": "hi"}],
		 "chosen": [],
		 "rejected": [{"role": "assistant", "content": "bye"}], "tags": null}
	]`)
	pairs, rejects, got := collect(Parquet(writeParquet(t, rec), "c.parquet"))
	want := []outcome{{1, ""}, {2, ""}, {3, schemas.ReasonEmptyCompletion}}
	if !equalOutcomes(got, want) {
		t.Fatalf("outcomes = %v, want %v (rejects %+v)", got, want, rejects)
	}
	want0 := schemas.Pair{Source: "c.parquet", Line: 1, Conversational: true,
		PromptMessages: msgs("user", "hi"), ChosenMessages: msgs("assistant", "hello"), RejectedMessages: msgs("assistant", "bye"),
		Extra: `{"tags":["a","b"]}`}
	if !reflect.DeepEqual(*pairs[0], want0) {
		t.Errorf("pair = %+v, want %+v", *pairs[0], want0)
	}
	if p := pairs[1]; !reflect.DeepEqual(p.PromptMessages, msgs("user", "q")) || !reflect.DeepEqual(p.ChosenMessages, msgs("assistant", "14")) {
		t.Errorf("implicit-prompt pair = %+v, want prompt [user q] and chosen [assistant 14]", p)
	}
}

func TestParquetRowNumbersAcrossBatchesAndRowGroups(t *testing.T) {
	const n = 2500 // > parquetBatchRows and several row groups of 700
	var rows strings.Builder
	rows.WriteString("[")
	for i := range n {
		if i > 0 {
			rows.WriteString(",")
		}
		chosen := fmt.Sprint(i)
		if i%1000 == 999 {
			chosen = "" // rows 1000, 2000 are rejects
		}
		fmt.Fprintf(&rows, `{"prompt":"p%d","chosen":%q,"rejected":"r"}`, i, chosen)
	}
	rows.WriteString("]")
	schema := arrow.NewSchema([]arrow.Field{
		{Name: "prompt", Type: arrow.BinaryTypes.String},
		{Name: "chosen", Type: arrow.BinaryTypes.String},
		{Name: "rejected", Type: arrow.BinaryTypes.String},
	}, nil)
	pairs, rejects, all := collect(Parquet(writeParquet(t, recordFromJSON(t, schema, rows.String())), "big.parquet"))
	if len(all) != n || len(rejects) != 2 || rejects[0].Line != 1000 || rejects[1].Line != 2000 {
		t.Fatalf("got %d records, rejects %+v; want %d records with rejects at rows 1000 and 2000", len(all), rejects, n)
	}
	for i, o := range all {
		if o.Line != int64(i+1) {
			t.Fatalf("record %d has line %d, want %d", i, o.Line, i+1)
		}
	}
	if p := pairs[len(pairs)-1]; p.Prompt != fmt.Sprintf("p%d", n-1) {
		t.Errorf("last pair prompt = %q, want p%d", p.Prompt, n-1)
	}
}

func TestParquetCorrupt(t *testing.T) {
	for name, data := range map[string][]byte{
		"not parquet": []byte(`{"prompt":"p","chosen":"a","rejected":"b"}`),
		"empty":       nil,
	} {
		t.Run(name, func(t *testing.T) {
			_, rejects, _ := collect(Parquet(data, "bad.parquet"))
			if len(rejects) != 1 || rejects[0].Reason != schemas.ReasonUnreadable || !strings.Contains(rejects[0].Detail, "bad.parquet") {
				t.Fatalf("rejects = %+v, want one unreadable_file reject naming the file", rejects)
			}
		})
	}
}
