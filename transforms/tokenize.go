package transforms

import (
	"context"
	"fmt"
	"reflect"
	"strings"

	"github.com/apache/beam/sdks/v2/go/pkg/beam"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/register"

	"github.com/dpopflow/dpopflow/schemas"
	"github.com/dpopflow/dpopflow/transforms/tokenize"
)

func init() {
	beam.RegisterType(reflect.TypeOf((*schemas.Row)(nil)).Elem())
	register.DoFn4x0[context.Context, schemas.Pair, func(schemas.Row), func(schemas.Reject)](&tokenizeFn{})
	register.Emitter1[schemas.Row]()
}

var (
	tokenizeIn            = beam.NewCounter("tokenize", "pairs_in")
	tokenizeRows          = beam.NewCounter("tokenize", "rows")
	tokenizeTruncated     = beam.NewCounter("tokenize", "truncated")
	tokenizePromptTooLong = beam.NewCounter("tokenize", "prompt_too_long")
	tokenizeEmptyPrompt   = beam.NewCounter("tokenize", "empty_prompt")
)

// TokenizeOptions configure Tokenize.
type TokenizeOptions struct {
	// Tokenizer is a tokenize.New spec: "byte", "gpt2", "cl100k_base", ... or a
	// tokenizer.json path.
	Tokenizer string
	// MaxLength bounds prompt + completion tokens (EOS included).
	MaxLength int
	// MaxPromptLength bounds the prompt alone; a longer prompt keeps its end.
	// It may be >= MaxLength, in which case pairs whose prompt fills
	// MaxLength are rejected as prompt_too_long.
	MaxPromptLength int
	// ChatTemplate renders conversational pairs: "plain", "chatml", "llama3", or
	// "" for the tokenizer's own (see ResolveChatTemplate).
	ChatTemplate string
	// EvalFraction of ids go to the eval split (schemas.SplitFor).
	EvalFraction float64
}

// Validate reports the first option that cannot work.
func (o TokenizeOptions) Validate() error {
	switch {
	case o.MaxLength < 2:
		return fmt.Errorf("max_length %d: need at least 2 (one prompt token and one completion token)", o.MaxLength)
	case o.MaxPromptLength < 1:
		return fmt.Errorf("max_prompt_length %d: need at least 1", o.MaxPromptLength)
	case o.EvalFraction < 0 || o.EvalFraction >= 1:
		return fmt.Errorf("eval_fraction %g: want 0 <= f < 1", o.EvalFraction)
	}
	return nil
}

// ResolveChatTemplate picks the template for conversational pairs: the one
// named, else the one a tokenizer.json's tokenizer_config.json declares, else
// "plain".
func ResolveChatTemplate(tokenizerSpec, name string) (tokenize.ChatTemplate, error) {
	if name != "" {
		return tokenize.NewChatTemplate(name)
	}
	if t, ok := tokenize.ChatTemplateFor(tokenizerSpec); ok {
		return t, nil
	}
	return tokenize.NewChatTemplate(tokenize.TemplatePlain)
}

// Tokenize renders every pair (chat template for conversations), encodes
// prompt and completions, appends EOS to the completions, truncates to the
// length limits and assigns the split. Pairs that leave the model nothing to
// condition on or nothing to predict are rejected (empty_prompt,
// prompt_too_long). Edit-distance fields are left for EditDistance.
func Tokenize(s beam.Scope, pairs beam.PCollection, opts TokenizeOptions) (rows, rejects beam.PCollection) {
	s = s.Scope("Tokenize")
	return beam.ParDo2(s, &tokenizeFn{
		Tokenizer:       opts.Tokenizer,
		MaxLength:       opts.MaxLength,
		MaxPromptLength: opts.MaxPromptLength,
		ChatTemplate:    opts.ChatTemplate,
		EvalFraction:    opts.EvalFraction,
	}, pairs)
}

type tokenizeFn struct {
	Tokenizer       string
	MaxLength       int
	MaxPromptLength int
	ChatTemplate    string
	EvalFraction    float64

	pt *PairTokenizer
}

// Setup may run more than once per process; tokenize.New caches the loaded
// tokenizer per spec, so only the first call pays for loading it.
func (f *tokenizeFn) Setup() error {
	pt, err := NewPairTokenizer(TokenizeOptions{
		Tokenizer: f.Tokenizer, MaxLength: f.MaxLength, MaxPromptLength: f.MaxPromptLength,
		ChatTemplate: f.ChatTemplate, EvalFraction: f.EvalFraction,
	})
	if err != nil {
		return err
	}
	f.pt = pt
	return nil
}

func (f *tokenizeFn) ProcessElement(ctx context.Context, p schemas.Pair, emit func(schemas.Row), reject func(schemas.Reject)) {
	tokenizeIn.Inc(ctx, 1)
	row, reason, detail := f.pt.Row(p)
	switch reason {
	case "":
		tokenizeRows.Inc(ctx, 1)
		if row.Truncated {
			tokenizeTruncated.Inc(ctx, 1)
		}
		emit(row)
	case schemas.ReasonPromptTooLong:
		tokenizePromptTooLong.Inc(ctx, 1)
		reject(RejectPair(p, reason, detail))
	default:
		tokenizeEmptyPrompt.Inc(ctx, 1)
		reject(RejectPair(p, reason, detail))
	}
}

// PairTokenizer is Tokenize's per-pair work without Beam.
type PairTokenizer struct {
	Tok      tokenize.Tokenizer
	Template tokenize.ChatTemplate
	opts     TokenizeOptions
}

// NewPairTokenizer loads the tokenizer and chat template named in opts.
func NewPairTokenizer(opts TokenizeOptions) (*PairTokenizer, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	tok, err := tokenize.New(opts.Tokenizer)
	if err != nil {
		return nil, fmt.Errorf("load tokenizer: %w", err)
	}
	tmpl, err := ResolveChatTemplate(opts.Tokenizer, opts.ChatTemplate)
	if err != nil {
		return nil, err
	}
	return &PairTokenizer{Tok: tok, Template: tmpl, opts: opts}, nil
}

// Row tokenizes one pair (its ID must be set). On rejection it returns the
// reason code and a human-readable detail.
//
// Truncation follows TRL's "keep_end" for prompts and "keep_start" for
// completions: the prompt keeps its last MaxPromptLength tokens (the question
// is at the end of a long context), then each completion keeps its first
// MaxLength-len(prompt) tokens, losing EOS when cut. Texts are stored
// untruncated; the ids are what the model sees.
func (t *PairTokenizer) Row(p schemas.Pair) (row schemas.Row, reason, detail string) {
	prompt, chosen, rejected := p.Prompt, p.Chosen, p.Rejected
	if p.Conversational {
		var ok bool
		prompt, chosen, rejected, ok = t.render(p)
		if !ok {
			return schemas.Row{}, schemas.ReasonEmptyPrompt, fmt.Sprintf(
				"chat template %s renders chosen and rejected after different prompts; no common prompt to condition on", t.Template.Name())
		}
	}
	row = schemas.Row{
		ID: p.ID, Split: schemas.SplitFor(p.ID, t.opts.EvalFraction),
		Prompt: prompt, Chosen: chosen, Rejected: rejected, Extra: p.Extra,
	}
	row.PromptIDs = t.Tok.Encode(prompt)
	if len(row.PromptIDs) == 0 {
		return schemas.Row{}, schemas.ReasonEmptyPrompt, "the prompt encodes to no tokens; the model needs at least one token of context"
	}
	if n := len(row.PromptIDs); n > t.opts.MaxPromptLength {
		row.PromptIDs = row.PromptIDs[n-t.opts.MaxPromptLength:]
		row.Truncated = true
	}
	budget := t.opts.MaxLength - len(row.PromptIDs)
	if budget <= 0 {
		return schemas.Row{}, schemas.ReasonPromptTooLong, fmt.Sprintf(
			"prompt has %d tokens after truncation, max_length %d leaves no room for a completion", len(row.PromptIDs), t.opts.MaxLength)
	}
	var cut bool
	row.ChosenIDs, cut = t.completion(chosen, budget)
	row.Truncated = row.Truncated || cut
	row.RejectedIDs, cut = t.completion(rejected, budget)
	row.Truncated = row.Truncated || cut
	return row, "", ""
}

// completion encodes text, appends EOS and keeps the first budget tokens.
func (t *PairTokenizer) completion(text string, budget int) (ids []int32, cut bool) {
	ids = append(t.Tok.Encode(text), t.Tok.EOS())
	if len(ids) > budget {
		return ids[:budget:budget], true
	}
	return ids, false
}

// render applies the chat template. Both completions normally render after
// the same prompt text; when a template renders them differently (one
// completion starts with an assistant turn and the other does not), the
// prompt that is a prefix of both full renderings is used.
func (t *PairTokenizer) render(p schemas.Pair) (prompt, chosen, rejected string, ok bool) {
	pm := messages(p.PromptMessages)
	pc, c := tokenize.RenderPair(t.Template, pm, messages(p.ChosenMessages))
	pr, r := tokenize.RenderPair(t.Template, pm, messages(p.RejectedMessages))
	if pc == pr {
		return pc, c, r, true
	}
	fullC, fullR := pc+c, pr+r
	for _, cand := range []string{pc, pr} {
		if strings.HasPrefix(fullC, cand) && strings.HasPrefix(fullR, cand) {
			return cand, fullC[len(cand):], fullR[len(cand):], true
		}
	}
	return "", "", "", false
}

func messages(ms []schemas.Message) []tokenize.Message {
	out := make([]tokenize.Message, len(ms))
	for i, m := range ms {
		out[i] = tokenize.Message{Role: m.Role, Content: m.Content}
	}
	return out
}
