package schemas

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strconv"

	"github.com/apache/arrow/go/v17/arrow"
	"github.com/apache/arrow/go/v17/arrow/array"
	"github.com/apache/arrow/go/v17/arrow/ipc"
	"github.com/apache/arrow/go/v17/arrow/memory"
)

// Arrow schema metadata keys.
const (
	MetaSchemaVersion = "dpopflow.schema_version"
	MetaTokenizer     = "dpopflow.tokenizer"
	MetaVocabSize     = "dpopflow.vocab_size"
	MetaEOSID         = "dpopflow.eos_id"
	MetaMaxLength     = "dpopflow.max_length"
	MetaRefModel      = "dpopflow.ref_model"
)

// Metadata is what a shard's schema metadata says about how it was made.
type Metadata struct {
	Tokenizer string
	VocabSize int
	EOSID     int32
	MaxLength int
	// RefModel is the sha256 of the weights used for scoring; "" before scoring.
	// When set, the four ref_* columns are present.
	RefModel string
}

// Column names, in schema order.
const (
	ColID               = "id"
	ColSplit            = "split"
	ColPrompt           = "prompt"
	ColChosen           = "chosen"
	ColRejected         = "rejected"
	ColPromptIDs        = "prompt_ids"
	ColChosenIDs        = "chosen_ids"
	ColRejectedIDs      = "rejected_ids"
	ColEditDistance     = "edit_distance"
	ColEditRatio        = "edit_ratio"
	ColFirstDiff        = "first_diff"
	ColLowDistance      = "low_distance"
	ColTruncated        = "truncated"
	ColExtra            = "extra"
	ColRefChosenLogps   = "ref_chosen_logps"
	ColRefRejectedLogps = "ref_rejected_logps"
	ColRefChosenLogp    = "ref_chosen_logp"
	ColRefRejectedLogp  = "ref_rejected_logp"
)

// ArrowSchema is the shard schema for the given metadata.
func ArrowSchema(m Metadata) *arrow.Schema {
	ids := arrow.ListOf(arrow.PrimitiveTypes.Int32)
	fields := []arrow.Field{
		{Name: ColID, Type: arrow.BinaryTypes.String},
		{Name: ColSplit, Type: arrow.BinaryTypes.String},
		{Name: ColPrompt, Type: arrow.BinaryTypes.String},
		{Name: ColChosen, Type: arrow.BinaryTypes.String},
		{Name: ColRejected, Type: arrow.BinaryTypes.String},
		{Name: ColPromptIDs, Type: ids},
		{Name: ColChosenIDs, Type: ids},
		{Name: ColRejectedIDs, Type: ids},
		{Name: ColEditDistance, Type: arrow.PrimitiveTypes.Int32},
		{Name: ColEditRatio, Type: arrow.PrimitiveTypes.Float32},
		{Name: ColFirstDiff, Type: arrow.PrimitiveTypes.Int32},
		{Name: ColLowDistance, Type: arrow.FixedWidthTypes.Boolean},
		{Name: ColTruncated, Type: arrow.FixedWidthTypes.Boolean},
		{Name: ColExtra, Type: arrow.BinaryTypes.String},
	}
	if m.RefModel != "" {
		logps := arrow.ListOf(arrow.PrimitiveTypes.Float32)
		fields = append(fields,
			arrow.Field{Name: ColRefChosenLogps, Type: logps},
			arrow.Field{Name: ColRefRejectedLogps, Type: logps},
			arrow.Field{Name: ColRefChosenLogp, Type: arrow.PrimitiveTypes.Float32},
			arrow.Field{Name: ColRefRejectedLogp, Type: arrow.PrimitiveTypes.Float32},
		)
	}
	keys := []string{MetaSchemaVersion, MetaTokenizer, MetaVocabSize, MetaEOSID, MetaMaxLength, MetaRefModel}
	vals := []string{strconv.Itoa(SchemaVersion), m.Tokenizer, strconv.Itoa(m.VocabSize),
		strconv.Itoa(int(m.EOSID)), strconv.Itoa(m.MaxLength), m.RefModel}
	md := arrow.NewMetadata(keys, vals)
	return arrow.NewSchema(fields, &md)
}

// MetadataFrom reads Metadata back from a shard schema, checking the version.
func MetadataFrom(s *arrow.Schema) (Metadata, error) {
	md := s.Metadata()
	get := func(k string) string {
		if i := md.FindKey(k); i >= 0 {
			return md.Values()[i]
		}
		return ""
	}
	if v := get(MetaSchemaVersion); v != strconv.Itoa(SchemaVersion) {
		return Metadata{}, fmt.Errorf("shard schema version %q, this build reads %d", v, SchemaVersion)
	}
	var m Metadata
	var err error
	m.Tokenizer = get(MetaTokenizer)
	m.RefModel = get(MetaRefModel)
	if m.VocabSize, err = strconv.Atoi(get(MetaVocabSize)); err != nil {
		return Metadata{}, fmt.Errorf("shard metadata %s: %w", MetaVocabSize, err)
	}
	eos, err := strconv.Atoi(get(MetaEOSID))
	if err != nil {
		return Metadata{}, fmt.Errorf("shard metadata %s: %w", MetaEOSID, err)
	}
	m.EOSID = int32(eos)
	if m.MaxLength, err = strconv.Atoi(get(MetaMaxLength)); err != nil {
		return Metadata{}, fmt.Errorf("shard metadata %s: %w", MetaMaxLength, err)
	}
	return m, nil
}

// EncodeArrowFile writes rows as one Arrow IPC *file* (random-access format,
// readable by any Arrow implementation) and returns its bytes. The output is a
// pure function of (m, rows): same input, byte-identical file.
func EncodeArrowFile(m Metadata, rows []Row) ([]byte, error) {
	schema := ArrowSchema(m)
	rec := buildRecord(schema, m.RefModel != "", rows)
	defer rec.Release()
	var buf seekBuffer
	w, err := ipc.NewFileWriter(&buf, ipc.WithSchema(schema))
	if err != nil {
		return nil, fmt.Errorf("arrow file writer: %w", err)
	}
	if err := w.Write(rec); err != nil {
		return nil, fmt.Errorf("write arrow record: %w", err)
	}
	if err := w.Close(); err != nil {
		return nil, fmt.Errorf("close arrow file: %w", err)
	}
	return buf.buf, nil
}

func buildRecord(schema *arrow.Schema, withRef bool, rows []Row) arrow.Record {
	b := array.NewRecordBuilder(memory.DefaultAllocator, schema)
	defer b.Release()
	str := func(i int) *array.StringBuilder { return b.Field(i).(*array.StringBuilder) }
	ints := func(i int, v []int32) {
		lb := b.Field(i).(*array.ListBuilder)
		lb.Append(true)
		lb.ValueBuilder().(*array.Int32Builder).AppendValues(v, nil)
	}
	floats := func(i int, v []float32) {
		lb := b.Field(i).(*array.ListBuilder)
		lb.Append(true)
		lb.ValueBuilder().(*array.Float32Builder).AppendValues(v, nil)
	}
	for _, r := range rows {
		str(0).Append(r.ID)
		str(1).Append(r.Split)
		str(2).Append(r.Prompt)
		str(3).Append(r.Chosen)
		str(4).Append(r.Rejected)
		ints(5, r.PromptIDs)
		ints(6, r.ChosenIDs)
		ints(7, r.RejectedIDs)
		b.Field(8).(*array.Int32Builder).Append(r.EditDistance)
		b.Field(9).(*array.Float32Builder).Append(r.EditRatio)
		b.Field(10).(*array.Int32Builder).Append(r.FirstDiff)
		b.Field(11).(*array.BooleanBuilder).Append(r.LowDistance)
		b.Field(12).(*array.BooleanBuilder).Append(r.Truncated)
		str(13).Append(r.Extra)
		if withRef {
			floats(14, r.RefChosenLogps)
			floats(15, r.RefRejectedLogps)
			b.Field(16).(*array.Float32Builder).Append(r.RefChosenLogp)
			b.Field(17).(*array.Float32Builder).Append(r.RefRejectedLogp)
		}
	}
	return b.NewRecord()
}

// DecodeArrowFile reads every row of an Arrow IPC file written by EncodeArrowFile
// (or by anything else that follows the schema).
func DecodeArrowFile(data []byte) (Metadata, []Row, error) {
	r, err := ipc.NewFileReader(bytes.NewReader(data))
	if err != nil {
		return Metadata{}, nil, fmt.Errorf("open arrow file: %w", err)
	}
	defer r.Close()
	m, err := MetadataFrom(r.Schema())
	if err != nil {
		return Metadata{}, nil, err
	}
	var rows []Row
	for i := 0; i < r.NumRecords(); i++ {
		rec, err := r.Record(i)
		if err != nil {
			return Metadata{}, nil, fmt.Errorf("read arrow record %d: %w", i, err)
		}
		got, err := rowsFrom(rec, m.RefModel != "")
		if err != nil {
			return Metadata{}, nil, fmt.Errorf("arrow record %d: %w", i, err)
		}
		rows = append(rows, got...)
	}
	return m, rows, nil
}

func rowsFrom(rec arrow.Record, withRef bool) ([]Row, error) {
	col := func(name string) (arrow.Array, error) {
		idx := rec.Schema().FieldIndices(name)
		if len(idx) == 0 {
			return nil, fmt.Errorf("missing column %q", name)
		}
		return rec.Column(idx[0]), nil
	}
	names := []string{ColID, ColSplit, ColPrompt, ColChosen, ColRejected, ColPromptIDs, ColChosenIDs, ColRejectedIDs,
		ColEditDistance, ColEditRatio, ColFirstDiff, ColLowDistance, ColTruncated, ColExtra}
	if withRef {
		names = append(names, ColRefChosenLogps, ColRefRejectedLogps, ColRefChosenLogp, ColRefRejectedLogp)
	}
	cols := make([]arrow.Array, len(names))
	for i, n := range names {
		c, err := col(n)
		if err != nil {
			return nil, err
		}
		cols[i] = c
	}
	var bad error
	str := func(i, row int) string {
		a, ok := cols[i].(*array.String)
		if !ok {
			bad = fmt.Errorf("column %q: want utf8, got %s", names[i], cols[i].DataType())
			return ""
		}
		return a.Value(row)
	}
	int32s := func(i, row int) []int32 {
		l, ok := cols[i].(*array.List)
		if !ok {
			bad = fmt.Errorf("column %q: want list<int32>, got %s", names[i], cols[i].DataType())
			return nil
		}
		v, ok := l.ListValues().(*array.Int32)
		if !ok {
			bad = fmt.Errorf("column %q: want list<int32>, got %s", names[i], cols[i].DataType())
			return nil
		}
		start, end := l.ValueOffsets(row)
		return append([]int32(nil), v.Int32Values()[start:end]...)
	}
	float32s := func(i, row int) []float32 {
		l, ok := cols[i].(*array.List)
		if !ok {
			bad = fmt.Errorf("column %q: want list<float32>, got %s", names[i], cols[i].DataType())
			return nil
		}
		v, ok := l.ListValues().(*array.Float32)
		if !ok {
			bad = fmt.Errorf("column %q: want list<float32>, got %s", names[i], cols[i].DataType())
			return nil
		}
		start, end := l.ValueOffsets(row)
		return append([]float32(nil), v.Float32Values()[start:end]...)
	}
	i32 := func(i, row int) int32 {
		a, ok := cols[i].(*array.Int32)
		if !ok {
			bad = fmt.Errorf("column %q: want int32, got %s", names[i], cols[i].DataType())
			return 0
		}
		return a.Value(row)
	}
	f32 := func(i, row int) float32 {
		a, ok := cols[i].(*array.Float32)
		if !ok {
			bad = fmt.Errorf("column %q: want float32, got %s", names[i], cols[i].DataType())
			return 0
		}
		return a.Value(row)
	}
	boolean := func(i, row int) bool {
		a, ok := cols[i].(*array.Boolean)
		if !ok {
			bad = fmt.Errorf("column %q: want bool, got %s", names[i], cols[i].DataType())
			return false
		}
		return a.Value(row)
	}
	n := int(rec.NumRows())
	rows := make([]Row, n)
	for j := 0; j < n; j++ {
		r := &rows[j]
		r.ID, r.Split, r.Prompt, r.Chosen, r.Rejected = str(0, j), str(1, j), str(2, j), str(3, j), str(4, j)
		r.PromptIDs, r.ChosenIDs, r.RejectedIDs = int32s(5, j), int32s(6, j), int32s(7, j)
		r.EditDistance, r.EditRatio, r.FirstDiff = i32(8, j), f32(9, j), i32(10, j)
		r.LowDistance, r.Truncated, r.Extra = boolean(11, j), boolean(12, j), str(13, j)
		if withRef {
			r.RefChosenLogps, r.RefRejectedLogps = float32s(14, j), float32s(15, j)
			r.RefChosenLogp, r.RefRejectedLogp = f32(16, j), f32(17, j)
		}
		if bad != nil {
			return nil, bad
		}
	}
	return rows, nil
}

// seekBuffer is an in-memory io.WriteSeeker: Arrow's file writer seeks back to
// patch the footer, and Beam's filesystem writers cannot seek, so shards are
// assembled in memory and then copied out (they are small: one shard of pairs).
type seekBuffer struct {
	buf []byte
	pos int
}

func (s *seekBuffer) Write(p []byte) (int, error) {
	if need := s.pos + len(p); need > len(s.buf) {
		s.buf = append(s.buf, make([]byte, need-len(s.buf))...)
	}
	copy(s.buf[s.pos:], p)
	s.pos += len(p)
	return len(p), nil
}

func (s *seekBuffer) Seek(offset int64, whence int) (int64, error) {
	var base int
	switch whence {
	case io.SeekStart:
	case io.SeekCurrent:
		base = s.pos
	case io.SeekEnd:
		base = len(s.buf)
	default:
		return 0, errors.New("seekBuffer: bad whence")
	}
	p := base + int(offset)
	if p < 0 {
		return 0, errors.New("seekBuffer: negative position")
	}
	s.pos = p
	return int64(p), nil
}
