package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dpopflow/dpopflow/schemas"
	"github.com/dpopflow/dpopflow/train"
)

// writeData writes a one-shard byte-tokenized output directory of short sums.
func writeData(t *testing.T, dir string, n int) {
	meta := schemas.Metadata{Tokenizer: "byte", VocabSize: 258, EOSID: 256, MaxLength: 64}
	ids := func(s string) []int32 {
		out := make([]int32, 0, len(s)+1)
		for i := 0; i < len(s); i++ {
			out = append(out, int32(s[i]))
		}
		return out
	}
	var rows []schemas.Row
	for i := 0; i < n; i++ {
		a, b := i%10, (i/10)%10
		chosen := fmt.Sprintf("%d. The answer is %d.", a+b, a+b)
		r := schemas.Row{ID: fmt.Sprintf("%08x", i), Split: schemas.SplitTrain,
			Prompt: fmt.Sprintf("%d+%d=", a, b), Chosen: chosen, Rejected: "x",
			PromptIDs: ids(fmt.Sprintf("%d+%d=", a, b)), ChosenIDs: append(ids(chosen), 256), RejectedIDs: []int32{'x', 256},
			FirstDiff: 0, Extra: fmt.Sprintf(`{"answer":"%d"}`, a+b)}
		if i%5 == 0 {
			r.Split = schemas.SplitEval
		}
		rows = append(rows, r)
	}
	data, err := schemas.EncodeArrowFile(meta, rows)
	if err != nil {
		t.Fatal(err)
	}
	os.MkdirAll(filepath.Join(dir, "pairs"), 0o755)
	rel := "pairs/" + schemas.ShardName(0, 1, "arrow")
	if err := os.WriteFile(filepath.Join(dir, rel), data, 0o644); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	man, _ := json.Marshal(schemas.Manifest{SchemaVersion: schemas.SchemaVersion, Tokenizer: "byte", VocabSize: 258, EOSID: 256,
		Format: "arrow", Shards: []schemas.Shard{{Path: rel, Rows: int64(n), SHA256: hex.EncodeToString(sum[:])}}})
	if err := os.WriteFile(filepath.Join(dir, "manifest.json"), man, 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestHelpAndUsageErrors(t *testing.T) {
	var out bytes.Buffer
	if code := run(context.Background(), []string{"--help"}, &out); code != 0 || !strings.Contains(out.String(), "--compute_ref") && !strings.Contains(out.String(), "-compute_ref") {
		t.Errorf("--help: exit %d, output %q", code, out.String())
	}
	out.Reset()
	if code := run(context.Background(), nil, &out); code != 2 || !strings.Contains(out.String(), "--data") {
		t.Errorf("no flags: exit %d, output %q", code, out.String())
	}
	out.Reset()
	dir := t.TempDir()
	if code := run(context.Background(), []string{"--data=" + dir, "--loss=sft", "--output=" + filepath.Join(dir, "o")}, &out); code != 1 ||
		!strings.Contains(out.String(), "no manifest.json: incomplete or not a dpopflow output") {
		t.Errorf("empty data dir: exit %d, output %q", code, out.String())
	}
}

func TestShortSFTRun(t *testing.T) {
	dir := t.TempDir()
	writeData(t, filepath.Join(dir, "data"), 60)
	var out bytes.Buffer
	args := []string{"--data=" + filepath.Join(dir, "data"), "--output=" + filepath.Join(dir, "sft"), "--loss=sft",
		"--max_steps=4", "--batch_size=4", "--n_embd=16", "--n_layer=1", "--n_head=2", "--n_positions=32",
		"--save_steps=2", "--eval_generations=2", "--quiet"}
	if code := run(context.Background(), args, &out); code != 0 {
		t.Fatalf("exit %d: %s", code, out.String())
	}
	for _, p := range []string{"final/config.json", "final/model.safetensors", "checkpoint-2/trainer_state.json",
		"checkpoint-4/optimizer.safetensors", "metrics.jsonl"} {
		if _, err := os.Stat(filepath.Join(dir, "sft", p)); err != nil {
			t.Errorf("missing output: %v", err)
		}
	}
	rows, err := train.ReadMetrics(filepath.Join(dir, "sft", "metrics.jsonl"))
	if err != nil || len(rows) != 5 { // 4 train rows and the final eval
		t.Fatalf("metrics: %d rows, %v", len(rows), err)
	}
	if !strings.Contains(out.String(), "eval/loss") {
		t.Errorf("no final eval table in output: %s", out.String())
	}
	// The same command again finds the run complete and resumes at step 4.
	out.Reset()
	if code := run(context.Background(), args, &out); code != 0 || !strings.Contains(out.String(), "resuming from") {
		t.Errorf("rerun: exit %d, output %s", code, out.String())
	}
}
