package transforms

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"hash"
	"reflect"
	"strings"

	"github.com/apache/beam/sdks/v2/go/pkg/beam"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/register"
	"golang.org/x/text/unicode/norm"

	"github.com/dpopflow/dpopflow/schemas"
)

func init() {
	beam.RegisterType(reflect.TypeOf((*schemas.Pair)(nil)).Elem())
	beam.RegisterType(reflect.TypeOf((*schemas.Reject)(nil)).Elem())
	register.DoFn4x0[context.Context, schemas.Pair, func(string, schemas.Pair), func(schemas.Reject)](&identifyFn{})
	register.DoFn5x0[context.Context, string, func(*schemas.Pair) bool, func(schemas.Pair), func(int)](&keepFirstFn{})
	register.Emitter2[string, schemas.Pair]()
	register.Emitter1[schemas.Pair]()
	register.Emitter1[schemas.Reject]()
	register.Emitter1[int]()
	register.Iter1[schemas.Pair]()
}

var (
	dedupeIn         = beam.NewCounter("dedupe", "pairs_in")
	dedupeDegenerate = beam.NewCounter("dedupe", "degenerate")
	dedupeUnique     = beam.NewCounter("dedupe", "unique")
	dedupeDuplicates = beam.NewCounter("dedupe", "duplicates")
)

// Dedupe gives every pair its content id (PairID), drops pairs whose chosen
// and rejected answers are the same after normalisation (reason "degenerate":
// they carry no preference), and keeps one pair per id. Of a group of
// duplicates it keeps the one from the smallest (Source, Line), so reruns keep
// the same record whatever order the runner delivers them in.
//
// duplicates holds one int per duplicated id: how many copies were dropped.
// Their sum is the manifest's counts.duplicates.
func Dedupe(s beam.Scope, pairs beam.PCollection) (unique, rejects, duplicates beam.PCollection) {
	s = s.Scope("Dedupe")
	keyed, rejects := beam.ParDo2(s, &identifyFn{}, pairs)
	unique, duplicates = beam.ParDo2(s, &keepFirstFn{}, beam.GroupByKey(s, keyed))
	return unique, rejects, duplicates
}

// identifyFn sets Pair.ID and keys the pair by it.
type identifyFn struct{}

func (f *identifyFn) ProcessElement(ctx context.Context, p schemas.Pair, emit func(string, schemas.Pair), reject func(schemas.Reject)) {
	dedupeIn.Inc(ctx, 1)
	if Degenerate(p) {
		dedupeDegenerate.Inc(ctx, 1)
		reject(RejectPair(p, schemas.ReasonDegenerate, "chosen and rejected are identical after Unicode NFC and trimming"))
		return
	}
	p.ID = PairID(p)
	emit(p.ID, p)
}

// keepFirstFn keeps the first pair of each id group in (Source, Line) order.
type keepFirstFn struct{}

func (f *keepFirstFn) ProcessElement(ctx context.Context, id string, group func(*schemas.Pair) bool, emit func(schemas.Pair), duplicates func(int)) {
	var best, p schemas.Pair
	n := 0
	for group(&p) {
		if n == 0 || p.Source < best.Source || (p.Source == best.Source && p.Line < best.Line) {
			best = p
		}
		n++
		p = schemas.Pair{} // the iterator decodes into p; don't let slices alias best
	}
	dedupeUnique.Inc(ctx, 1)
	emit(best)
	if n > 1 {
		dedupeDuplicates.Inc(ctx, int64(n-1))
		duplicates(n - 1)
	}
}

// normalize is the text normalisation behind ids and the degenerate test:
// Unicode NFC, so composed and decomposed accents agree, and surrounding
// whitespace trimmed, since a trailing newline is not a different answer.
func normalize(s string) string {
	return strings.TrimSpace(norm.NFC.String(s))
}

// PairID is the hex sha256 of a canonical encoding of the normalised triple
// (prompt, chosen, rejected). Conversational pairs hash every message's
// normalised role and content; the encoding is length-prefixed so no two
// different triples can encode alike, and a standard pair never shares an id
// with a conversational one.
func PairID(p schemas.Pair) string {
	h := sha256.New()
	if p.Conversational {
		h.Write([]byte{'c'})
		for _, msgs := range [][]schemas.Message{p.PromptMessages, p.ChosenMessages, p.RejectedMessages} {
			writeLen(h, len(msgs))
			for _, m := range msgs {
				writeField(h, normalize(m.Role))
				writeField(h, normalize(m.Content))
			}
		}
	} else {
		h.Write([]byte{'s'})
		writeField(h, normalize(p.Prompt))
		writeField(h, normalize(p.Chosen))
		writeField(h, normalize(p.Rejected))
	}
	return hex.EncodeToString(h.Sum(nil))
}

func writeLen(h hash.Hash, n int) {
	var b [binary.MaxVarintLen64]byte
	h.Write(b[:binary.PutUvarint(b[:], uint64(n))])
}

func writeField(h hash.Hash, s string) {
	writeLen(h, len(s))
	h.Write([]byte(s))
}

// Degenerate reports whether chosen and rejected are the same after
// normalisation: such a pair expresses no preference.
func Degenerate(p schemas.Pair) bool {
	if !p.Conversational {
		return normalize(p.Chosen) == normalize(p.Rejected)
	}
	a, b := p.ChosenMessages, p.RejectedMessages
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if normalize(a[i].Role) != normalize(b[i].Role) || normalize(a[i].Content) != normalize(b[i].Content) {
			return false
		}
	}
	return true
}

// RejectPair makes a dead letter for a pair that was read successfully but is
// dropped by a later stage. The original line is no longer at hand, so Raw is
// the pair re-encoded as a JSON record in TRL's format (an implicit-prompt
// record comes back with its prompt made explicit), with its extra fields.
func RejectPair(p schemas.Pair, reason, detail string) schemas.Reject {
	rec := map[string]any{}
	if p.Extra != "" {
		// Extra is a JSON object written by the reader; if it somehow is not,
		// keep it verbatim rather than lose it.
		if err := json.Unmarshal([]byte(p.Extra), &rec); err != nil {
			rec = map[string]any{"extra": p.Extra}
		}
	}
	if p.Conversational {
		rec["prompt"], rec["chosen"], rec["rejected"] = p.PromptMessages, p.ChosenMessages, p.RejectedMessages
	} else {
		rec["prompt"], rec["chosen"], rec["rejected"] = p.Prompt, p.Chosen, p.Rejected
	}
	raw, err := marshalNoEscape(rec)
	if err != nil {
		raw = nil // unreachable for strings and messages; Source and Line still locate it
	}
	return schemas.Reject{Source: p.Source, Line: p.Line, Reason: reason, Detail: detail, Raw: string(raw)}
}

// marshalNoEscape is json.Marshal without HTML escaping, so chat markers such
// as <|im_start|> stay readable in the rejects file.
func marshalNoEscape(v any) ([]byte, error) {
	var b strings.Builder
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return []byte(strings.TrimSuffix(b.String(), "\n")), nil
}
