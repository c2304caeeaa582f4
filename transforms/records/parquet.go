package records

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"iter"
	"unicode/utf8"

	"github.com/apache/arrow/go/v17/arrow"
	"github.com/apache/arrow/go/v17/arrow/array"
	"github.com/apache/arrow/go/v17/arrow/memory"
	"github.com/apache/arrow/go/v17/parquet/file"
	"github.com/apache/arrow/go/v17/parquet/pqarrow"

	"github.com/dpopflow/dpopflow/schemas"
)

// parquetBatchRows bounds the rows decoded at once, so memory beyond the file
// itself stays small however many rows a row group holds.
const parquetBatchRows = 1024

// Parquet streams the records of a Parquet file held in data, one
// (Pair, Reject) per row with exactly one of them non-nil. Rows are numbered
// from 1. Columns prompt/chosen/rejected may be strings or
// list<struct<role, content>>; other columns go to Extra. Each row is turned
// into a JSON object (columns in file order) that is both the reject's Raw and
// the input to ParseLine, so Parquet and JSONL records obey the same rules.
//
// A file that cannot be decoded, or that fails midway, yields one
// unreadable_file reject standing for it (or for its remaining rows).
func Parquet(data []byte, source string) iter.Seq2[*schemas.Pair, *schemas.Reject] {
	return func(yield func(*schemas.Pair, *schemas.Reject) bool) {
		var row int64
		fail := func(what string, err error) {
			yield(nil, &schemas.Reject{
				Source: source,
				Line:   row + 1,
				Reason: schemas.ReasonUnreadable,
				Detail: fmt.Sprintf("%s %s after row %d: %v; the rest of the file was not read", what, source, row, err),
			})
		}
		pf, err := file.NewParquetReader(bytes.NewReader(data))
		if err != nil {
			fail("open parquet", err)
			return
		}
		defer pf.Close()
		fr, err := pqarrow.NewFileReader(pf, pqarrow.ArrowReadProperties{BatchSize: parquetBatchRows}, memory.DefaultAllocator)
		if err != nil {
			fail("read parquet schema of", err)
			return
		}
		rr, err := fr.GetRecordReader(context.Background(), nil, nil)
		if err != nil {
			fail("read parquet", err)
			return
		}
		defer rr.Release()
		for rr.Next() {
			rec := rr.Record()
			for i := 0; i < int(rec.NumRows()); i++ {
				row++
				raw, badUTF8 := rowJSON(rec, i)
				p, rej := ParseLine(source, row, raw)
				if badUTF8 != "" {
					// JSON cannot carry the invalid bytes; they were replaced
					// by U+FFFD in raw, so say so rather than pass the row.
					p, rej = nil, &schemas.Reject{
						Source: source,
						Line:   row,
						Reason: schemas.ReasonInvalidUTF8,
						Detail: fmt.Sprintf("column %q is not valid UTF-8 (invalid bytes shown as U+FFFD in raw)", badUTF8),
						Raw:    string(raw),
					}
				}
				if !yield(p, rej) {
					return
				}
			}
		}
		if err := rr.Err(); err != nil && !errors.Is(err, io.EOF) {
			fail("read parquet", err)
		}
	}
}

// rowJSON renders row i of rec as a JSON object with the columns in schema
// order. It also names the first top-level string column holding invalid
// UTF-8, which encoding/json would otherwise silently repair.
func rowJSON(rec arrow.Record, i int) ([]byte, string) {
	var b bytes.Buffer
	badUTF8 := ""
	b.WriteByte('{')
	for c, field := range rec.Schema().Fields() {
		if c > 0 {
			b.WriteByte(',')
		}
		b.Write(quote(field.Name))
		b.WriteByte(':')
		col := rec.Column(c)
		if s, ok := stringValue(col, i); ok && !utf8.ValidString(s) && badUTF8 == "" {
			badUTF8 = field.Name
		}
		b.Write(marshalValue(col, i))
	}
	b.WriteByte('}')
	return b.Bytes(), badUTF8
}

func stringValue(col arrow.Array, i int) (string, bool) {
	if col.IsNull(i) {
		return "", false
	}
	switch a := col.(type) {
	case *array.String:
		return a.Value(i), true
	case *array.LargeString:
		return a.Value(i), true
	}
	return "", false
}

// marshalValue encodes one cell as JSON. Arrow's GetOneForMarshal covers
// every type but can yield values encoding/json refuses (a NaN float) or
// panic on them inside nested lists; those fall back to the cell's string
// form, so an odd extra column never loses the row.
func marshalValue(col arrow.Array, i int) (out []byte) {
	defer func() {
		if recover() != nil {
			out = quote(col.ValueStr(i))
		}
	}()
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(col.GetOneForMarshal(i)); err != nil {
		return quote(col.ValueStr(i))
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n"))
}
