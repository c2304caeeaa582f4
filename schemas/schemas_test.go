package schemas

import (
	"bytes"
	"reflect"
	"testing"
)

func sampleRows(withRef bool) []Row {
	rows := []Row{
		{ID: "00ff", Split: SplitTrain, Prompt: "Q: 2+2?\n", Chosen: " 4.", Rejected: " 5.",
			PromptIDs: []int32{81, 58}, ChosenIDs: []int32{32, 52, 256}, RejectedIDs: []int32{32, 53, 256},
			EditDistance: 1, EditRatio: 1.0 / 3, FirstDiff: 1, LowDistance: false, Extra: `{"kind":"math"}`},
		{ID: "01aa", Split: SplitEval, Prompt: "é", Chosen: "😀", Rejected: "",
			PromptIDs: []int32{}, ChosenIDs: []int32{1, 2}, RejectedIDs: []int32{3},
			EditDistance: 2, EditRatio: 1, FirstDiff: 0, Truncated: true},
	}
	if withRef {
		rows[0].RefChosenLogps, rows[0].RefRejectedLogps = []float32{-1, -2, -0.5}, []float32{-1, -3, -0.5}
		rows[0].RefChosenLogp, rows[0].RefRejectedLogp = -3.5, -4.5
		rows[1].RefChosenLogps, rows[1].RefRejectedLogps = []float32{-0.25, -0.75}, []float32{-9}
		rows[1].RefChosenLogp, rows[1].RefRejectedLogp = -1, -9
	}
	return rows
}

// TestShardRoundTrip checks both shard formats: what is written reads back
// identically, and the same rows always give the same bytes.
func TestShardRoundTrip(t *testing.T) {
	for _, format := range []string{FormatArrow, FormatParquet} {
		for _, withRef := range []bool{false, true} {
			m := Metadata{Tokenizer: "byte", VocabSize: 258, EOSID: 256, MaxLength: 1024}
			if withRef {
				m.RefModel = "abc123"
			}
			rows := sampleRows(withRef)
			data, err := EncodeShard(format, m, rows)
			if err != nil {
				t.Fatal(err)
			}
			again, err := EncodeShard(format, m, rows)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(data, again) {
				t.Errorf("%s withRef=%v: encoding is not deterministic", format, withRef)
			}
			gotMeta, got, err := DecodeShard(data)
			if err != nil {
				t.Fatal(err)
			}
			if gotMeta != m {
				t.Errorf("%s metadata: got %+v want %+v", format, gotMeta, m)
			}
			// Empty lists decode as empty (non-nil) slices; normalise for comparison.
			for i := range got {
				if len(got[i].PromptIDs) == 0 {
					got[i].PromptIDs = rows[i].PromptIDs
				}
			}
			if !reflect.DeepEqual(got, rows) {
				t.Errorf("%s withRef=%v: rows differ:\n got %+v\nwant %+v", format, withRef, got, rows)
			}
		}
	}
}

func TestDecodeRejectsGarbage(t *testing.T) {
	if _, _, err := DecodeArrowFile([]byte("not an arrow file")); err == nil {
		t.Fatal("want an error for a non-Arrow file")
	}
}

func TestSplitForIsDeterministicAndProportional(t *testing.T) {
	evals := 0
	const n = 20000
	for i := 0; i < n; i++ {
		id := hexOf(uint64(i) * 0x9E3779B97F4A7C15)
		s := SplitFor(id, 0.1)
		if s != SplitFor(id, 0.1) {
			t.Fatal("split not deterministic")
		}
		if s == SplitEval {
			evals++
		}
	}
	if frac := float64(evals) / n; frac < 0.09 || frac > 0.11 {
		t.Errorf("eval fraction %.3f, want about 0.10", frac)
	}
	if SplitFor("ffffffff", 0) != SplitTrain {
		t.Error("eval_fraction 0 must put everything in train")
	}
}

func hexOf(v uint64) string {
	const digits = "0123456789abcdef"
	b := make([]byte, 16)
	for i := 15; i >= 0; i-- {
		b[i] = digits[v&15]
		v >>= 4
	}
	return string(b)
}

func TestCountsCheck(t *testing.T) {
	ok := Counts{Read: 10, Rejected: 2, Duplicates: 1, Written: 7, Train: 6, Eval: 1, LowDistance: 3}
	if err := ok.Check(); err != nil {
		t.Fatal(err)
	}
	bad := ok
	bad.Written = 6
	if bad.Check() == nil {
		t.Fatal("counts that do not add up must fail Check")
	}
}

func TestShardName(t *testing.T) {
	if got := ShardName(3, 8, "arrow"); got != "part-00003-of-00008.arrow" {
		t.Fatal(got)
	}
}
