package main

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/dpopflow/dpopflow/transforms/synth"
)

// TestRunWritesFile: the file the CLI writes is exactly the generator's
// output, and no temporary file is left beside it.
func TestRunWritesFile(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "data.jsonl")
	cfg := synth.Config{Seed: 4, Math: 30, ARC: 5, DuplicateFraction: 0.1, Dirty: true}
	if err := run(out, cfg); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	var want bytes.Buffer
	if _, err := synth.WriteJSONL(&want, cfg); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want.Bytes()) {
		t.Fatal("file differs from synth.WriteJSONL output")
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Fatalf("directory holds %d entries, want only data.jsonl", len(entries))
	}
	if err := run(out, synth.Config{Math: -1}); err == nil {
		t.Fatal("negative --math accepted")
	}
}
