package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/apache/beam/sdks/v2/go/pkg/beam/testing/ptest"

	"github.com/dpopflow/dpopflow/transforms"
)

func TestMain(m *testing.M) { ptest.MainWithDefault(m, "prism") }

func testOptions(t *testing.T) transforms.PreprocessOptions {
	dir := t.TempDir()
	in := filepath.Join(dir, "in.jsonl")
	data := `{"prompt":"2+2?","chosen":"4","rejected":"5"}
{"prompt":"2+2?","chosen":"4","rejected":"5"}
{"prompt":"3+3?","chosen":"6","rejected":"6"}
not json
{"prompt":"Capital of France?","chosen":"Paris","rejected":"Rome"}
`
	if err := os.WriteFile(in, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
	o := transforms.DefaultPreprocessOptions()
	o.Inputs = []string{in}
	o.Output = filepath.Join(dir, "out")
	o.Shards = 2
	return o
}

func TestRunPrintsTableAndRefusesRerun(t *testing.T) {
	ctx := context.Background()
	o := testOptions(t)
	var out bytes.Buffer
	if err := run(ctx, o, false, &out); err != nil {
		t.Fatalf("run: %v\n%s", err, out.String())
	}
	// 5 lines: one invalid, one degenerate, one duplicate, two written.
	table := out.String()
	for _, want := range [][]string{
		{"read", "5", "-"}, {"reject", "4", "1", "degenerate"}, {"reject", "3", "1", "invalid_json"},
		{"dedupe", "2", "1"}, {"written", "2", "-"},
	} {
		if !hasRow(table, want) {
			t.Errorf("table lacks a row starting %q:\n%s", want, table)
		}
	}
	if !strings.Contains(table, "output: "+o.Output) {
		t.Errorf("output path not printed:\n%s", table)
	}
	for _, f := range []string{"manifest.json", "pairs/part-00000-of-00002.arrow", "pairs/part-00001-of-00002.arrow", "rejects/part-00000-of-00001.jsonl"} {
		if _, err := os.Stat(filepath.Join(o.Output, f)); err != nil {
			t.Errorf("output file missing: %v", err)
		}
	}

	err := run(ctx, o, false, &bytes.Buffer{})
	if !errors.Is(err, transforms.ErrOutputExists) {
		t.Fatalf("second run without --overwrite: err = %v, want ErrOutputExists", err)
	}
	if err := run(ctx, o, true, &bytes.Buffer{}); err != nil {
		t.Fatalf("rerun with --overwrite: %v", err)
	}
}

func TestRunMissingInput(t *testing.T) {
	o := testOptions(t)
	missing := filepath.Join(t.TempDir(), "nope-*.jsonl")
	o.Inputs = append(o.Inputs, missing)
	err := run(context.Background(), o, false, &bytes.Buffer{})
	if err == nil || !strings.Contains(err.Error(), missing) {
		t.Fatalf("err = %v, want one naming %s", err, missing)
	}
	if _, statErr := os.Stat(o.Output); !os.IsNotExist(statErr) {
		t.Errorf("output directory created despite the missing input")
	}
}

// hasRow reports whether some line of the table starts with the given cells.
func hasRow(table string, cells []string) bool {
	for _, line := range strings.Split(table, "\n") {
		f := strings.Fields(line)
		if len(f) >= len(cells) && strings.Join(f[:len(cells)], " ") == strings.Join(cells, " ") {
			return true
		}
	}
	return false
}

func TestRunParquetFormat(t *testing.T) {
	o := testOptions(t)
	o.Format = "parquet"
	var out bytes.Buffer
	if err := run(context.Background(), o, false, &out); err != nil {
		t.Fatalf("run --format=parquet: %v\n%s", err, out.String())
	}
	for _, f := range []string{"pairs/part-00000-of-00002.parquet", "pairs/part-00001-of-00002.parquet"} {
		if _, err := os.Stat(filepath.Join(o.Output, f)); err != nil {
			t.Errorf("output file missing: %v", err)
		}
	}
	m, err := transforms.ReadManifest(context.Background(), o.Output)
	if err != nil || m.Format != "parquet" {
		t.Errorf("manifest format %q (err %v), want parquet", m.Format, err)
	}

	o.Format = "csv"
	if err := run(context.Background(), o, true, &bytes.Buffer{}); err == nil || !strings.Contains(err.Error(), "csv") {
		t.Errorf("--format=csv: err = %v, want a format error", err)
	}
}
