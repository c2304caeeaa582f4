package train

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/dpopflow/dpopflow/schemas"
)

func TestLoadDataLocalAndMemfs(t *testing.T) {
	rows := mathRows(30, 1, 5)
	for _, dir := range []string{t.TempDir(), "memfs://train-test/out"} {
		writeDataset(t, dir, byteMeta, rows, 3)
		d, err := LoadData(context.Background(), dir)
		if err != nil {
			t.Fatalf("%s: %v", dir, err)
		}
		if len(d.Train) != 24 || len(d.Eval) != 6 {
			t.Errorf("%s: %d train, %d eval rows, want 24 and 6", dir, len(d.Train), len(d.Eval))
		}
		if d.Meta.EOSID != testEOS || d.Manifest.Tokenizer != "byte" || d.Scored() {
			t.Errorf("%s: metadata %+v", dir, d.Meta)
		}
		var ids []string
		for _, r := range append(d.Train, d.Eval...) {
			ids = append(ids, r.ID)
		}
		slices.Sort(ids)
		if len(slices.Compact(ids)) != 30 {
			t.Errorf("%s: rows lost or duplicated across shards", dir)
		}
	}
}

func TestLoadDataRefusesBrokenDirectories(t *testing.T) {
	ctx := context.Background()
	empty := t.TempDir()
	if _, err := LoadData(ctx, empty); err == nil || !strings.Contains(err.Error(), "no manifest.json: incomplete or not a dpopflow output") {
		t.Errorf("directory without manifest: %v", err)
	}
	dir := t.TempDir()
	man := writeDataset(t, dir, byteMeta, mathRows(10, 1, 0), 2)
	shard := filepath.Join(dir, man.Shards[1].Path)
	b, _ := os.ReadFile(shard)
	b[len(b)/2] ^= 1
	os.WriteFile(shard, b, 0o644)
	if _, err := LoadData(ctx, dir); err == nil || !strings.Contains(err.Error(), "sha256") || !strings.Contains(err.Error(), "part-00001-of-00002") {
		t.Errorf("corrupted shard: %v", err)
	}
}

func TestSamplerEpochsAndDeterminism(t *testing.T) {
	s := NewSampler(10, 7)
	var epoch0 []int
	for i := 0; i < 3; i++ {
		epoch0 = append(epoch0, s.Next(3)...)
	}
	last := s.Next(3) // one row of epoch 0, two of epoch 1
	epoch0 = append(epoch0, last[0])
	sorted := slices.Clone(epoch0)
	slices.Sort(sorted)
	if !slices.Equal(sorted, []int{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}) {
		t.Errorf("epoch 0 is not a permutation: %v", epoch0)
	}
	if s.Epoch != 1 || s.Pos != 2 || s.EpochFloat() != 1.2 {
		t.Errorf("after 12 rows: epoch %d pos %d (%.2f)", s.Epoch, s.Pos, s.EpochFloat())
	}
	// A sampler rebuilt from (seed, epoch, pos) continues identically: that is resume.
	r := &Sampler{N: 10, Seed: 7, Epoch: 1, Pos: 2}
	if a, b := s.Next(5), r.Next(5); !slices.Equal(a, b) {
		t.Errorf("rebuilt sampler gives %v, original %v", b, a)
	}
	other := NewSampler(10, 8)
	if slices.Equal(other.Next(10), epoch0) {
		t.Error("different seeds gave the same order")
	}
	if e1 := (&Sampler{N: 10, Seed: 7, Epoch: 1}).Next(10); slices.Equal(e1, epoch0) {
		t.Error("epoch 1 repeats epoch 0's order")
	}
}

func TestFitAndMakeExample(t *testing.T) {
	p := []int32{1, 2, 3, 4, 5}
	c := []int32{6, 7, 8}
	if s := Fit(p, c, 16); !slices.Equal(s.Prompt, p) || !slices.Equal(s.Completion, c) {
		t.Errorf("fitting sequence changed: %v", s)
	}
	// Input is prompt + completion − 1 tokens: 5 positions hold 3 prompt tokens.
	if s := Fit(p, c, 5); !slices.Equal(s.Prompt, []int32{3, 4, 5}) || !slices.Equal(s.Completion, c) {
		t.Errorf("Fit(…, 5) = %v, want the prompt's last 3 tokens", s)
	}
	if s := Fit(p, c, 2); !slices.Equal(s.Prompt, []int32{5}) || !slices.Equal(s.Completion, []int32{6, 7}) {
		t.Errorf("Fit(…, 2) = %v, want one prompt token and the completion cut", s)
	}
	r := schemas.Row{PromptIDs: p, ChosenIDs: c, RejectedIDs: []int32{6, 9},
		RefChosenLogps: []float32{-1, -2, -4}, RefRejectedLogps: []float32{-1, -8}}
	if e := MakeExample(&r, 16); e.RefChosen != -7 || e.RefRejected != -9 {
		t.Errorf("reference sums %v %v, want −7 −9", e.RefChosen, e.RefRejected)
	}
	if e := MakeExample(&r, 2); e.RefChosen != -3 || e.RefRejected != -9 {
		t.Errorf("cut completion: reference sums %v %v, want −3 (kept tokens only) −9", e.RefChosen, e.RefRejected)
	}
}
