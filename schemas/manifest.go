package schemas

import (
	"encoding/json"
	"fmt"
)

// Manifest describes a complete output directory. It is written last, so a
// directory without manifest.json is incomplete (a crash or a run in progress).
type Manifest struct {
	SchemaVersion int    `json:"schema_version"`
	Tokenizer     string `json:"tokenizer"`
	VocabSize     int    `json:"vocab_size"`
	EOSID         int32  `json:"eos_id"`
	Format        string `json:"format"` // "arrow" or "parquet"

	// Options are the settings that shaped the output; a rerun with different
	// ones is a different output (see Fingerprint).
	Options Options `json:"options"`
	// Inputs are the input files read, each with its size and sha256, so a
	// caller can tell whether this output still matches its inputs.
	Inputs []InputFile `json:"inputs"`
	// RefModel is the sha256 of the scoring checkpoint's weights ("" if unscored).
	RefModel string `json:"ref_model,omitempty"`

	Counts          Counts           `json:"counts"`
	RejectsByReason map[string]int64 `json:"rejects_by_reason"`
	EditDistance    EditStats        `json:"edit_distance"`
	Shards          []Shard          `json:"shards"`
	RejectShards    []Shard          `json:"reject_shards"`
	CreatedBy       string           `json:"created_by"`
	WallSeconds     float64          `json:"wall_seconds"`
}

// Options are the preprocessing settings recorded in the manifest.
type Options struct {
	MaxLength        int     `json:"max_length"`
	MaxPromptLength  int     `json:"max_prompt_length"`
	EvalFraction     float64 `json:"eval_fraction"`
	LowDistanceRatio float64 `json:"low_distance_ratio"`
	ChatTemplate     string  `json:"chat_template,omitempty"`
	Shards           int     `json:"shards"`
}

// InputFile identifies one input by content.
type InputFile struct {
	Path   string `json:"path"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
}

// Counts reconcile: Read == Written + Rejected + Duplicates, and
// Written == Train + Eval.
type Counts struct {
	Read        int64 `json:"read"`
	Rejected    int64 `json:"rejected"`
	Duplicates  int64 `json:"duplicates"`
	Written     int64 `json:"written"`
	LowDistance int64 `json:"low_distance"`
	Train       int64 `json:"train"`
	Eval        int64 `json:"eval"`
	Truncated   int64 `json:"truncated"`
}

// Check reports the first way the counts fail to add up.
func (c Counts) Check() error {
	if c.Read != c.Written+c.Rejected+c.Duplicates {
		return fmt.Errorf("counts do not reconcile: read %d != written %d + rejected %d + duplicates %d",
			c.Read, c.Written, c.Rejected, c.Duplicates)
	}
	if c.Written != c.Train+c.Eval {
		return fmt.Errorf("counts do not reconcile: written %d != train %d + eval %d", c.Written, c.Train, c.Eval)
	}
	if c.LowDistance > c.Written {
		return fmt.Errorf("counts: low_distance %d > written %d", c.LowDistance, c.Written)
	}
	return nil
}

// EditStats summarises the token edit distance between chosen and rejected.
type EditStats struct {
	LowDistanceRatio    float64 `json:"low_distance_ratio"` // the threshold used
	LowDistanceFraction float64 `json:"low_distance_fraction"`
	MeanDistance        float64 `json:"mean_distance"`
	MeanRatio           float64 `json:"mean_ratio"`
	// RatioHistogram has equal-width bins of edit_ratio over [0, 1].
	RatioHistogram []Bin `json:"ratio_histogram"`
}

// Bin is one histogram bin [Lo, Hi) (the last bin includes Hi).
type Bin struct {
	Lo    float64 `json:"lo"`
	Hi    float64 `json:"hi"`
	Count int64   `json:"count"`
}

// Shard is one output file, relative to the output directory.
type Shard struct {
	Path   string `json:"path"`
	Rows   int64  `json:"rows"`
	SHA256 string `json:"sha256"`
}

// ParseManifest decodes and sanity-checks a manifest.json.
func ParseManifest(data []byte) (Manifest, error) {
	var m Manifest
	if err := json.Unmarshal(data, &m); err != nil {
		return Manifest{}, fmt.Errorf("parse manifest.json: %w", err)
	}
	if m.SchemaVersion != SchemaVersion {
		return Manifest{}, fmt.Errorf("manifest.json schema_version %d, this build reads %d", m.SchemaVersion, SchemaVersion)
	}
	return m, nil
}

// ShardName is the deterministic name of shard i of n, e.g.
// "part-00003-of-00008.arrow". Deterministic names make a retried write
// overwrite rather than duplicate.
func ShardName(i, n int, ext string) string {
	return fmt.Sprintf("part-%05d-of-%05d.%s", i, n, ext)
}
