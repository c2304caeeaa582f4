package schemas

import (
	"bytes"
	"reflect"
	"strconv"
	"testing"

	"github.com/apache/arrow/go/v17/parquet"
	"github.com/apache/arrow/go/v17/parquet/file"
)

func TestParquetManyRowsAndEmpty(t *testing.T) {
	m := Metadata{Tokenizer: "gpt2", VocabSize: 50257, EOSID: 50256, MaxLength: 512}
	// More rows than one read batch, so decoding crosses record boundaries.
	var rows []Row
	for i := 0; i < parquetReadBatch+123; i++ {
		rows = append(rows, Row{ID: strconv.Itoa(i), Split: SplitTrain, Prompt: "p", Chosen: "c", Rejected: "r",
			PromptIDs: []int32{int32(i)}, ChosenIDs: []int32{1, int32(i)}, RejectedIDs: []int32{2},
			EditDistance: int32(i % 7), EditRatio: 0.5, FirstDiff: 0})
	}
	for _, want := range [][]Row{rows, nil} {
		data, err := EncodeParquetFile(m, want)
		if err != nil {
			t.Fatal(err)
		}
		_, got, err := DecodeParquetFile(data)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != len(want) {
			t.Fatalf("decoded %d rows, wrote %d", len(got), len(want))
		}
		if len(want) > 0 && !reflect.DeepEqual(got[len(got)-1], want[len(want)-1]) {
			t.Errorf("last row: got %+v want %+v", got[len(got)-1], want[len(want)-1])
		}
	}
}

// TestParquetLowLevelReader reads the file with the column-chunk reader, not
// pqarrow, as an independent check that the file is plain, standard Parquet:
// a required root, the dpopflow.* key-value metadata, and list columns with
// the usual three-level encoding.
func TestParquetLowLevelReader(t *testing.T) {
	m := Metadata{Tokenizer: "byte", VocabSize: 258, EOSID: 256, MaxLength: 1024, RefModel: "abc123"}
	rows := sampleRows(true)
	data, err := EncodeParquetFile(m, rows)
	if err != nil {
		t.Fatal(err)
	}
	pf, err := file.NewParquetReader(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	defer pf.Close()
	md := pf.MetaData()
	if rep := md.Schema.Root().RepetitionType(); rep != parquet.Repetitions.Required {
		t.Errorf("root repetition %v, want required (some readers reject repeated)", rep)
	}
	if md.NumRows != int64(len(rows)) || pf.NumRowGroups() != 1 {
		t.Errorf("%d rows in %d row groups, want %d in 1", md.NumRows, pf.NumRowGroups(), len(rows))
	}
	kv := md.KeyValueMetadata()
	for key, want := range map[string]string{MetaTokenizer: "byte", MetaVocabSize: "258", MetaEOSID: "256",
		MetaMaxLength: "1024", MetaRefModel: "abc123", MetaSchemaVersion: strconv.Itoa(SchemaVersion)} {
		if got := kv.FindValue(key); got == nil || *got != want {
			t.Errorf("key-value metadata %s = %v, want %q", key, got, want)
		}
	}

	leaf := func(name string) int {
		for i := 0; i < md.Schema.NumColumns(); i++ {
			if md.Schema.Column(i).ColumnPath()[0] == name {
				return i
			}
		}
		t.Fatalf("no leaf column for %q", name)
		return -1
	}
	rg := pf.RowGroup(0)

	cr, err := rg.Column(leaf(ColID))
	if err != nil {
		t.Fatal(err)
	}
	ids := make([]parquet.ByteArray, 10)
	_, n, err := cr.(*file.ByteArrayColumnChunkReader).ReadBatch(10, ids, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if n != 2 || string(ids[0]) != rows[0].ID || string(ids[1]) != rows[1].ID {
		t.Errorf("id column: %q", ids[:n])
	}

	cr, err = rg.Column(leaf(ColEditDistance))
	if err != nil {
		t.Fatal(err)
	}
	dist := make([]int32, 10)
	if _, n, err = cr.(*file.Int32ColumnChunkReader).ReadBatch(10, dist, nil, nil); err != nil {
		t.Fatal(err)
	}
	if n != 2 || dist[0] != rows[0].EditDistance || dist[1] != rows[1].EditDistance {
		t.Errorf("edit_distance column: %v", dist[:n])
	}

	// chosen_ids: rebuild the lists from repetition and definition levels.
	col := leaf(ColChosenIDs)
	maxDef := md.Schema.Column(col).MaxDefinitionLevel()
	cr, err = rg.Column(col)
	if err != nil {
		t.Fatal(err)
	}
	vals := make([]int32, 64)
	def, rep := make([]int16, 64), make([]int16, 64)
	levels, _, err := cr.(*file.Int32ColumnChunkReader).ReadBatch(64, vals, def, rep)
	if err != nil {
		t.Fatal(err)
	}
	var lists [][]int32
	vi := 0
	for i := 0; i < int(levels); i++ {
		if rep[i] == 0 {
			lists = append(lists, []int32{})
		}
		if def[i] == maxDef {
			lists[len(lists)-1] = append(lists[len(lists)-1], vals[vi])
			vi++
		}
	}
	want := [][]int32{rows[0].ChosenIDs, rows[1].ChosenIDs}
	if !reflect.DeepEqual(lists, want) {
		t.Errorf("chosen_ids from column chunks: %v, want %v", lists, want)
	}
}

func TestDecodeParquetRejectsGarbage(t *testing.T) {
	if _, _, err := DecodeParquetFile([]byte("PAR1 not really")); err == nil {
		t.Fatal("want an error for a non-Parquet file")
	}
	// An Arrow file is not a Parquet file.
	data, err := EncodeArrowFile(Metadata{Tokenizer: "byte", VocabSize: 258, EOSID: 256, MaxLength: 8}, sampleRows(false))
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := DecodeParquetFile(data); err == nil {
		t.Fatal("want an error decoding an Arrow file as Parquet")
	}
}

func TestShardFormats(t *testing.T) {
	m := Metadata{Tokenizer: "byte", VocabSize: 258, EOSID: 256, MaxLength: 64}
	rows := sampleRows(false)
	for _, format := range []string{FormatArrow, FormatParquet} {
		data, err := EncodeShard(format, m, rows)
		if err != nil {
			t.Fatal(err)
		}
		gotMeta, got, err := DecodeShard(data)
		if err != nil {
			t.Fatalf("%s: %v", format, err)
		}
		if gotMeta != m || len(got) != len(rows) || got[0].ID != rows[0].ID {
			t.Errorf("%s: decoded %+v, %d rows", format, gotMeta, len(got))
		}
	}
	if _, err := EncodeShard("csv", m, rows); err == nil {
		t.Error("EncodeShard accepted format csv")
	}
	if _, _, err := DecodeShard([]byte(`{"id":"x"}`)); err == nil {
		t.Error("DecodeShard accepted JSON")
	}
}
