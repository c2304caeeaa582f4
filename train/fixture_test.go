package train

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/apache/beam/sdks/v2/go/pkg/beam/io/filesystem"

	"github.com/dpopflow/dpopflow/schemas"
)

// Byte tokenizer ids (DESIGN.md): bytes are themselves, 256 is EOS, vocab 258.
const (
	testEOS   = 256
	testVocab = 258
)

func byteIDs(s string) []int32 {
	ids := make([]int32, len(s))
	for i := 0; i < len(s); i++ {
		ids[i] = int32(s[i])
	}
	return ids
}

// writeDataset writes rows as a dpopflow output directory (shards + manifest)
// at dir, which may be a local path or a memfs:// URL, the way preprocess does.
func writeDataset(t testing.TB, dir string, meta schemas.Metadata, rows []schemas.Row, shards int) schemas.Manifest {
	t.Helper()
	ctx := context.Background()
	fs, err := filesystem.New(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	defer fs.Close()
	man := schemas.Manifest{SchemaVersion: schemas.SchemaVersion, Tokenizer: meta.Tokenizer, VocabSize: meta.VocabSize,
		EOSID: meta.EOSID, Format: "arrow", RefModel: meta.RefModel}
	for i := 0; i < shards; i++ {
		var part []schemas.Row
		for j := i; j < len(rows); j += shards {
			part = append(part, rows[j])
		}
		data, err := schemas.EncodeArrowFile(meta, part)
		if err != nil {
			t.Fatal(err)
		}
		rel := "pairs/" + schemas.ShardName(i, shards, "arrow")
		if err := filesystem.Write(ctx, fs, joinURL(dir, rel), data); err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(data)
		man.Shards = append(man.Shards, schemas.Shard{Path: rel, Rows: int64(len(part)), SHA256: hex.EncodeToString(sum[:])})
	}
	for _, r := range rows {
		man.Counts.Read++
		man.Counts.Written++
		if r.Split == schemas.SplitEval {
			man.Counts.Eval++
		} else {
			man.Counts.Train++
		}
		if r.LowDistance {
			man.Counts.LowDistance++
		}
	}
	mj, err := json.Marshal(man)
	if err != nil {
		t.Fatal(err)
	}
	if err := filesystem.Write(ctx, fs, joinURL(dir, "manifest.json"), mj); err != nil {
		t.Fatal(err)
	}
	return man
}

var byteMeta = schemas.Metadata{Tokenizer: "byte", VocabSize: testVocab, EOSID: testEOS, MaxLength: 128}

// mathRows makes MetaMath-style pairs: a short worked sum where the rejected
// copy has its intermediate result corrupted and the final answer untouched
// (a low-distance pair), every evalEvery-th one in the eval split.
func mathRows(n int, seed uint64, evalEvery int) []schemas.Row {
	r := rand.New(rand.NewPCG(seed, 99))
	rows := make([]schemas.Row, n)
	for i := range rows {
		a, b := r.IntN(10), r.IntN(10)
		prompt := fmt.Sprintf("%d+%d=?", a, b)
		chosen := fmt.Sprintf("%d+%d=%d. The answer is %d.", a, b, a+b, a+b)
		wrong := (a + b + 1 + r.IntN(8)) % 19
		rejected := fmt.Sprintf("%d+%d=%d. The answer is %d.", a, b, wrong, a+b)
		row := schemas.Row{
			ID: fmt.Sprintf("%08x", i), Split: schemas.SplitTrain,
			Prompt: prompt, Chosen: chosen, Rejected: rejected,
			PromptIDs:   byteIDs(prompt),
			ChosenIDs:   append(byteIDs(chosen), testEOS),
			RejectedIDs: append(byteIDs(rejected), testEOS),
			LowDistance: true,
			Extra:       fmt.Sprintf(`{"answer":"%d"}`, a+b),
		}
		if evalEvery > 0 && i%evalEvery == 0 {
			row.Split = schemas.SplitEval
		}
		row.FirstDiff = -1
		for k := 0; k < min(len(row.ChosenIDs), len(row.RejectedIDs)); k++ {
			if row.ChosenIDs[k] != row.RejectedIDs[k] {
				row.FirstDiff = int32(k)
				break
			}
		}
		if row.FirstDiff < 0 {
			row.FirstDiff = int32(min(len(row.ChosenIDs), len(row.RejectedIDs)))
		}
		rows[i] = row
	}
	return rows
}
