// Package schemas holds the record types that flow between dpopflow's stages, the
// Arrow schema of the output shards with its metadata keys, and the manifest that
// marks an output directory complete. It imports no stage and no model, so every
// stage (Beam or not) can agree on these types.
package schemas

// SchemaVersion is written to the manifest and to the Arrow schema metadata.
// Bump it (with a migration note in the README) when a column changes meaning.
const SchemaVersion = 1

// Message is one turn of a conversational record (TRL's conversational format).
type Message struct {
	Role    string `json:"role"`
	Content string `json:"content"`
}

// Pair is one validated preference record as read from an input file, before
// tokenization. Standard records fill Prompt/Chosen/Rejected; conversational ones
// (and implicit-prompt ones, whose prompt is the longest common prefix of
// messages) fill the *Messages fields and set Conversational.
type Pair struct {
	// ID is the hex content hash of the normalised triple, set by Dedupe.
	ID             string
	Source         string // input file the record came from
	Line           int64  // 1-based line number (JSONL) or row number (Parquet)
	Conversational bool

	Prompt   string
	Chosen   string
	Rejected string

	PromptMessages   []Message
	ChosenMessages   []Message
	RejectedMessages []Message

	// Extra holds the record's other fields as a JSON object ("" if none), so
	// nothing a user put in their data is dropped.
	Extra string
}

// Reject is a dead letter: a record that could not be used, with a stable reason
// code and the whole original record, so nothing is lost.
type Reject struct {
	Source string `json:"source"`
	Line   int64  `json:"line"`
	Reason string `json:"reason"`
	// Detail is a human-readable explanation (e.g. which field was missing).
	Detail string `json:"detail,omitempty"`
	// Raw is the whole original record; RawBase64 replaces it when the record is
	// not valid UTF-8 (JSON strings cannot carry arbitrary bytes).
	Raw       string `json:"raw,omitempty"`
	RawBase64 string `json:"raw_base64,omitempty"`
}

// Stable reason codes for rejects. Users grep for these; never rename one.
const (
	ReasonInvalidJSON     = "invalid_json"
	ReasonMissingField    = "missing_field"
	ReasonWrongType       = "wrong_type"
	ReasonEmptyCompletion = "empty_completion"
	ReasonInvalidUTF8     = "invalid_utf8"
	ReasonDegenerate      = "degenerate"       // chosen equals rejected
	ReasonPromptTooLong   = "prompt_too_long"  // nothing of a completion fits in max_length
	ReasonEmptyPrompt     = "empty_prompt"     // no prompt tokens to condition on
	ReasonTooLarge        = "record_too_large" // a line over the reader's size limit
	ReasonUnreadable      = "unreadable_file"  // a file (or its tail) that could not be read or decoded
)

// Row is one kept pair as stored in the Arrow shards: one row per pair.
type Row struct {
	ID       string // hex of a content hash of the normalised triple
	Split    string // SplitTrain or SplitEval, from the id hash
	Prompt   string // rendered text (chat template applied for conversations)
	Chosen   string
	Rejected string

	PromptIDs   []int32
	ChosenIDs   []int32 // ends with EOS unless truncated
	RejectedIDs []int32

	EditDistance int32   // unit-cost Levenshtein over ChosenIDs vs RejectedIDs
	EditRatio    float32 // EditDistance / max(len(ChosenIDs), len(RejectedIDs))
	FirstDiff    int32   // first index where the completions differ; -1 if equal
	LowDistance  bool    // EditRatio <= the run's low_distance_ratio
	Truncated    bool
	Extra        string

	// Reference log-probs, present only after scoring (Metadata.RefModel != "").
	RefChosenLogps   []float32 // one per chosen token
	RefRejectedLogps []float32
	RefChosenLogp    float32 // sums of the above
	RefRejectedLogp  float32
}

// Split names.
const (
	SplitTrain = "train"
	SplitEval  = "eval"
)
