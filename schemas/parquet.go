package schemas

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/apache/arrow/go/v17/arrow/memory"
	"github.com/apache/arrow/go/v17/parquet"
	"github.com/apache/arrow/go/v17/parquet/compress"
	"github.com/apache/arrow/go/v17/parquet/file"
	"github.com/apache/arrow/go/v17/parquet/pqarrow"
)

// parquetReadBatch bounds the rows decoded into one Arrow record on reading.
const parquetReadBatch = 4096

// EncodeParquetFile writes rows as one Parquet file with the same columns and
// schema metadata (as Parquet key-value metadata) as EncodeArrowFile, and
// returns its bytes. Like the Arrow file, the output is a pure function of
// (m, rows): the writer records no timestamp, and its created_by string is the
// fixed library version, so a retried or repeated run writes identical bytes.
//
// The root of the Parquet schema is marked required rather than repeated (the
// Go writer's default), which some readers (Spark, older parquet-mr) reject.
// The Arrow schema is stored too (ARROW:schema), so Arrow-based readers
// (pyarrow, polars, this package) get exactly the Arrow types back.
func EncodeParquetFile(m Metadata, rows []Row) ([]byte, error) {
	schema := ArrowSchema(m)
	rec := buildRecord(schema, m.RefModel != "", rows)
	defer rec.Release()
	props := parquet.NewWriterProperties(
		parquet.WithRootRepetition(parquet.Repetitions.Required),
		// Snappy: every Parquet reader has it, and token-id columns still
		// shrink well after dictionary encoding.
		parquet.WithCompression(compress.Codecs.Snappy),
		// One row group per shard: shards are already sized for one worker.
		parquet.WithMaxRowGroupLength(int64(len(rows))+1),
	)
	var buf bytes.Buffer
	w, err := pqarrow.NewFileWriter(schema, &buf, props, pqarrow.NewArrowWriterProperties(pqarrow.WithStoreSchema()))
	if err != nil {
		return nil, fmt.Errorf("parquet file writer: %w", err)
	}
	if err := w.Write(rec); err != nil {
		w.Close()
		return nil, fmt.Errorf("write parquet rows: %w", err)
	}
	if err := w.Close(); err != nil {
		return nil, fmt.Errorf("close parquet file: %w", err)
	}
	return buf.Bytes(), nil
}

// DecodeParquetFile reads every row of a Parquet file written by
// EncodeParquetFile (or by anything else that follows the shard schema and
// carries the dpopflow.* key-value metadata).
func DecodeParquetFile(data []byte) (Metadata, []Row, error) {
	pf, err := file.NewParquetReader(bytes.NewReader(data))
	if err != nil {
		return Metadata{}, nil, fmt.Errorf("open parquet file: %w", err)
	}
	defer pf.Close()
	fr, err := pqarrow.NewFileReader(pf, pqarrow.ArrowReadProperties{BatchSize: parquetReadBatch}, memory.DefaultAllocator)
	if err != nil {
		return Metadata{}, nil, fmt.Errorf("read parquet schema: %w", err)
	}
	schema, err := fr.Schema()
	if err != nil {
		return Metadata{}, nil, fmt.Errorf("read parquet schema: %w", err)
	}
	m, err := MetadataFrom(schema)
	if err != nil {
		return Metadata{}, nil, err
	}
	rr, err := fr.GetRecordReader(context.Background(), nil, nil)
	if err != nil {
		return Metadata{}, nil, fmt.Errorf("read parquet rows: %w", err)
	}
	defer rr.Release()
	var rows []Row
	for rr.Next() {
		got, err := rowsFrom(rr.Record(), m.RefModel != "")
		if err != nil {
			return Metadata{}, nil, fmt.Errorf("parquet rows from %d: %w", len(rows), err)
		}
		rows = append(rows, got...)
	}
	// The reader reports its normal end as io.EOF.
	if err := rr.Err(); err != nil && !errors.Is(err, io.EOF) {
		return Metadata{}, nil, fmt.Errorf("read parquet rows from %d: %w", len(rows), err)
	}
	return m, rows, nil
}

// Shard file formats, as recorded in Manifest.Format and used as the shard
// file extension.
const (
	FormatArrow   = "arrow"
	FormatParquet = "parquet"
)

// EncodeShard writes rows in the named format (FormatArrow or FormatParquet).
func EncodeShard(format string, m Metadata, rows []Row) ([]byte, error) {
	switch format {
	case FormatArrow, "":
		return EncodeArrowFile(m, rows)
	case FormatParquet:
		return EncodeParquetFile(m, rows)
	}
	return nil, fmt.Errorf("shard format %q: want %q or %q", format, FormatArrow, FormatParquet)
}

// DecodeShard reads a shard in either format, telling them apart by their
// magic bytes (Arrow IPC files start with "ARROW1", Parquet files with
// "PAR1"), so readers need not know which format a run wrote.
func DecodeShard(data []byte) (Metadata, []Row, error) {
	switch {
	case bytes.HasPrefix(data, []byte("ARROW1")):
		return DecodeArrowFile(data)
	case bytes.HasPrefix(data, []byte("PAR1")):
		return DecodeParquetFile(data)
	}
	return Metadata{}, nil, errors.New("not a shard: neither an Arrow IPC file (ARROW1) nor a Parquet file (PAR1)")
}
