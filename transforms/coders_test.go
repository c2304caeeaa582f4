package transforms

import (
	"math"
	"reflect"
	"strings"
	"testing"

	"github.com/apache/beam/sdks/v2/go/pkg/beam"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/core/graph/coder"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/core/typex"

	"github.com/dpopflow/dpopflow/schemas"
)

// The coders list every field by hand; a field added to a record type must be
// added to its coder too, or it silently vanishes between stages.
func TestCodersCoverEveryField(t *testing.T) {
	for _, c := range []struct {
		v    any
		want int
	}{{schemas.Pair{}, 11}, {schemas.Row{}, 18}, {schemas.Reject{}, 6}} {
		if n := reflect.TypeOf(c.v).NumField(); n != c.want {
			t.Errorf("%T has %d fields, its coder encodes %d: update coders.go and this test", c.v, n, c.want)
		}
	}
}

func TestCodersAreRegistered(t *testing.T) {
	for _, v := range []any{schemas.Pair{}, schemas.Row{}, schemas.Reject{}} {
		c := beam.NewCoder(typex.New(reflect.TypeOf(v)))
		if cc := coder.LookupCustomCoder(reflect.TypeOf(v)); cc == nil || !strings.Contains(c.String(), cc.Name) {
			t.Errorf("%T: inferred coder %v, want the custom coder", v, c)
		}
		t.Logf("%T: %v", v, c)
	}
}

func TestPairCoderRoundTrip(t *testing.T) {
	pairs := []schemas.Pair{
		{},
		{ID: "ab", Source: "memfs://in/a.jsonl", Line: 1 << 40, Prompt: "p", Chosen: "c\x00é", Rejected: "r", Extra: `{"k":1}`},
		{Line: -3, Conversational: true, PromptMessages: []schemas.Message{},
			ChosenMessages:   []schemas.Message{{Role: "user", Content: "hi"}, {Role: "", Content: ""}},
			RejectedMessages: []schemas.Message{{Role: "assistant", Content: "\xff bad utf8"}}},
	}
	for _, p := range pairs {
		got, err := decodePair(encodePair(p))
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, p) { // DeepEqual tells nil from empty slices
			t.Errorf("round trip:\n got %#v\nwant %#v", got, p)
		}
	}
}

func TestRowCoderRoundTrip(t *testing.T) {
	rows := []schemas.Row{
		{},
		{PromptIDs: []int32{}, ChosenIDs: []int32{}, RejectedIDs: []int32{}, RefChosenLogps: []float32{}, RefRejectedLogps: []float32{}},
		{ID: "0f", Split: schemas.SplitEval, Prompt: "p", Chosen: "c", Rejected: "r",
			PromptIDs: []int32{0, 255, -1, math.MaxInt32, math.MinInt32}, ChosenIDs: []int32{256}, RejectedIDs: nil,
			EditDistance: 7, EditRatio: 0.15, FirstDiff: -1, LowDistance: true, Truncated: true, Extra: "{}",
			RefChosenLogps: []float32{-0.5, float32(math.Inf(-1)), math.SmallestNonzeroFloat32}, RefRejectedLogps: nil,
			RefChosenLogp: -1.25, RefRejectedLogp: float32(math.Copysign(0, -1))},
	}
	for _, r := range rows {
		got, err := decodeRow(encodeRow(r))
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, r) {
			t.Errorf("round trip:\n got %#v\nwant %#v", got, r)
		}
		if math.Signbit(float64(got.RefRejectedLogp)) != math.Signbit(float64(r.RefRejectedLogp)) {
			t.Errorf("sign of zero lost")
		}
	}
	nan := schemas.Row{EditRatio: float32(math.NaN())}
	got, err := decodeRow(encodeRow(nan))
	if err != nil || !math.IsNaN(float64(got.EditRatio)) {
		t.Errorf("NaN round trip: %v, %v", got.EditRatio, err)
	}
}

func TestRejectCoderRoundTrip(t *testing.T) {
	for _, r := range []schemas.Reject{
		{},
		{Source: "a.jsonl", Line: 12, Reason: schemas.ReasonInvalidJSON, Detail: "x", Raw: "{", RawBase64: ""},
		{Source: "b", Line: -1, Reason: schemas.ReasonInvalidUTF8, RawBase64: "/w=="},
	} {
		got, err := decodeReject(encodeReject(r))
		if err != nil {
			t.Fatal(err)
		}
		if got != r {
			t.Errorf("round trip: got %#v, want %#v", got, r)
		}
	}
}

// A damaged or foreign encoding is an error, never a panic or a quiet
// partial record.
func TestCodersRejectBadInput(t *testing.T) {
	row := encodeRow(schemas.Row{ID: "x", ChosenIDs: []int32{1, 2, 3}, Extra: "e"})
	for i := range len(row) {
		if _, err := decodeRow(row[:i]); err == nil {
			t.Errorf("row truncated to %d of %d bytes decoded without error", i, len(row))
		}
	}
	if _, err := decodeRow(append(row, 0)); err == nil {
		t.Error("trailing byte accepted")
	}
	bad := append([]byte{}, row...)
	bad[0] = 99
	if _, err := decodeRow(bad); err == nil {
		t.Error("unknown version accepted")
	}
	pair := encodePair(schemas.Pair{Conversational: true, ChosenMessages: []schemas.Message{{Role: "u", Content: "c"}}})
	for i := range len(pair) {
		if _, err := decodePair(pair[:i]); err == nil {
			t.Errorf("pair truncated to %d of %d bytes decoded without error", i, len(pair))
		}
	}
	// A huge claimed length must not allocate it.
	if _, err := decodeRow([]byte{rowCoderVersion, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0x0f}); err == nil {
		t.Error("oversized slice length accepted")
	}
}
