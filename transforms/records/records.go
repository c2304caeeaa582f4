// Package records parses and validates preference records in TRL's formats,
// turning each input record into either a schemas.Pair or a schemas.Reject (a
// dead letter with a stable reason code and the whole original record). It
// knows nothing of Beam, so the same rules apply in a pipeline, a test or a
// one-off tool.
//
// Accepted records are JSON objects with "chosen" and "rejected" and usually
// "prompt":
//
//   - standard: all three are strings;
//   - conversational: all three are lists of {"role", "content"} messages;
//   - a string prompt with message-list completions: the prompt becomes a
//     single user message;
//   - implicit prompt: no "prompt"; chosen and rejected are whole
//     conversations, the prompt is their longest common prefix of messages
//     (never a character prefix, which would swallow the shared start of
//     near-identical answers) and the rest are the completions.
//
// Choices worth knowing:
//
//   - A field whose value is null counts as missing.
//   - Duplicate keys: the last one wins, as in encoding/json.
//   - A valid JSON value that is not an object (an array, a string, ...) is
//     wrong_type; text that is not JSON at all is invalid_json.
//   - Message objects must have string "role" (non-empty) and "content";
//     their other keys are ignored, and content given as a list of parts is
//     wrong_type.
//   - An explicit prompt may be empty (the tokenizer stage decides what an
//     empty prompt means); an implied one may not.
//   - Keys other than prompt/chosen/rejected are kept in Pair.Extra as a JSON
//     object with sorted keys, so equal records give equal Extra.
//
// Text is kept as written: normalisation for dedupe belongs to that stage.
package records

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/dpopflow/dpopflow/schemas"
)

// Field names of TRL's preference formats.
const (
	FieldPrompt   = "prompt"
	FieldChosen   = "chosen"
	FieldRejected = "rejected"
)

// ParseLine parses one JSONL record (the line without its line terminator)
// read from source at the 1-based line number. Exactly one of the results is
// non-nil. A reject carries the whole line in Raw, or in RawBase64 when the
// line is not valid UTF-8.
func ParseLine(source string, line int64, raw []byte) (*schemas.Pair, *schemas.Reject) {
	if !utf8.Valid(raw) {
		return nil, &schemas.Reject{
			Source:    source,
			Line:      line,
			Reason:    schemas.ReasonInvalidUTF8,
			Detail:    fmt.Sprintf("byte %d is not valid UTF-8 (raw record kept as base64)", invalidUTF8Offset(raw)),
			RawBase64: base64.StdEncoding.EncodeToString(raw),
		}
	}
	p, reason, detail := parse(raw)
	if reason != "" {
		return nil, &schemas.Reject{
			Source: source,
			Line:   line,
			Reason: reason,
			Detail: detail,
			Raw:    string(raw),
		}
	}
	p.Source = source
	p.Line = line
	return p, nil
}

// invalidUTF8Offset returns the offset of the first byte that does not start
// a valid UTF-8 sequence, so a user can find it with a hex editor.
func invalidUTF8Offset(b []byte) int {
	for i := 0; i < len(b); {
		r, size := utf8.DecodeRune(b[i:])
		if r == utf8.RuneError && size <= 1 {
			return i
		}
		i += size
	}
	return len(b)
}

// parse validates a UTF-8 record. It returns the pair, or a reason code and a
// detail for the reject.
func parse(raw []byte) (*schemas.Pair, string, string) {
	trimmed := bytes.TrimSpace(raw)
	if len(trimmed) == 0 {
		return nil, schemas.ReasonInvalidJSON, "record is empty"
	}
	// One decode both checks the syntax and splits the object, with
	// duplicate keys resolved by encoding/json (the last one wins).
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(trimmed, &fields); err != nil {
		var typeErr *json.UnmarshalTypeError
		if errors.As(err, &typeErr) {
			return nil, schemas.ReasonWrongType, fmt.Sprintf("record is %s, want a JSON object", kindOf(trimmed))
		}
		return nil, schemas.ReasonInvalidJSON, "not valid JSON: " + err.Error()
	}
	if fields == nil {
		// "null" decodes into a nil map without error.
		return nil, schemas.ReasonWrongType, "record is null, want a JSON object"
	}

	if reason, detail := checkPresent(fields); reason != "" {
		return nil, reason, detail
	}
	chosen, reason, detail := decodeField(FieldChosen, fields[FieldChosen])
	if reason != "" {
		return nil, reason, detail
	}
	rejected, reason, detail := decodeField(FieldRejected, fields[FieldRejected])
	if reason != "" {
		return nil, reason, detail
	}
	if chosen.isList != rejected.isList {
		return nil, schemas.ReasonWrongType, fmt.Sprintf("field %q is %s but %q is %s; want both strings or both lists of messages",
			FieldChosen, chosen.describe(), FieldRejected, rejected.describe())
	}
	var prompt *value
	if v, ok := fields[FieldPrompt]; ok && !isNull(v) {
		pv, reason, detail := decodeField(FieldPrompt, v)
		if reason != "" {
			return nil, reason, detail
		}
		prompt = &pv
	}

	p := &schemas.Pair{Extra: extra(fields)}
	switch {
	case !chosen.isList && prompt == nil:
		return nil, schemas.ReasonMissingField, fmt.Sprintf("record has no field %q; a prompt can only be implied when %q and %q are lists of messages",
			FieldPrompt, FieldChosen, FieldRejected)
	case !chosen.isList && prompt.isList:
		return nil, schemas.ReasonWrongType, fmt.Sprintf("field %q is a list of messages but %q and %q are strings; want all three the same kind",
			FieldPrompt, FieldChosen, FieldRejected)
	case !chosen.isList:
		p.Prompt, p.Chosen, p.Rejected = prompt.str, chosen.str, rejected.str
	case prompt == nil:
		msgs, reason, detail := splitImplicit(chosen.msgs, rejected.msgs)
		if reason != "" {
			return nil, reason, detail
		}
		p.Conversational = true
		p.PromptMessages, p.ChosenMessages, p.RejectedMessages = msgs[0], msgs[1], msgs[2]
	case prompt.isList:
		p.Conversational = true
		p.PromptMessages, p.ChosenMessages, p.RejectedMessages = prompt.msgs, chosen.msgs, rejected.msgs
	default:
		p.Conversational = true
		p.PromptMessages = []schemas.Message{{Role: "user", Content: prompt.str}}
		p.ChosenMessages, p.RejectedMessages = chosen.msgs, rejected.msgs
	}

	if p.Conversational {
		if reason, detail := checkCompletionMessages(FieldChosen, p.ChosenMessages); reason != "" {
			return nil, reason, detail
		}
		if reason, detail := checkCompletionMessages(FieldRejected, p.RejectedMessages); reason != "" {
			return nil, reason, detail
		}
	} else {
		if reason, detail := checkCompletionText(FieldChosen, p.Chosen); reason != "" {
			return nil, reason, detail
		}
		if reason, detail := checkCompletionText(FieldRejected, p.Rejected); reason != "" {
			return nil, reason, detail
		}
	}
	return p, "", ""
}

// checkPresent reports chosen/rejected that are absent or null, naming every
// missing field at once so a user fixes their data in one pass.
func checkPresent(fields map[string]json.RawMessage) (string, string) {
	var problems []string
	for _, name := range []string{FieldChosen, FieldRejected} {
		v, ok := fields[name]
		switch {
		case !ok:
			problems = append(problems, fmt.Sprintf("record has no field %q", name))
		case isNull(v):
			problems = append(problems, fmt.Sprintf("field %q is null", name))
		}
	}
	if len(problems) == 0 {
		return "", ""
	}
	return schemas.ReasonMissingField, strings.Join(problems, "; ")
}

// value is a decoded prompt/chosen/rejected field: a string or a list of messages.
type value struct {
	isList bool
	str    string
	msgs   []schemas.Message
}

func (v value) describe() string {
	if v.isList {
		return "a list of messages"
	}
	return "a string"
}

// decodeField decodes a field that must be a string or a list of messages.
func decodeField(name string, raw json.RawMessage) (value, string, string) {
	switch kindOf(raw) {
	case "a string":
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return value{}, schemas.ReasonInvalidJSON, fmt.Sprintf("decode field %q: %v", name, err)
		}
		return value{str: s}, "", ""
	case "a list":
		msgs, reason, detail := decodeMessages(name, raw)
		return value{isList: true, msgs: msgs}, reason, detail
	default:
		return value{}, schemas.ReasonWrongType, fmt.Sprintf("field %q is %s, want a string or a list of messages", name, kindOf(raw))
	}
}

// decodeMessages decodes a list of {"role","content"} messages. Messages are
// numbered from 1 in details, as a person counts them.
func decodeMessages(name string, raw json.RawMessage) ([]schemas.Message, string, string) {
	var items []json.RawMessage
	if err := json.Unmarshal(raw, &items); err != nil {
		return nil, schemas.ReasonInvalidJSON, fmt.Sprintf("decode field %q: %v", name, err)
	}
	msgs := make([]schemas.Message, 0, len(items))
	for i, item := range items {
		where := fmt.Sprintf("field %q message %d", name, i+1)
		if k := kindOf(item); k != "an object" {
			return nil, schemas.ReasonWrongType, fmt.Sprintf("%s is %s, want an object with \"role\" and \"content\"", where, k)
		}
		var obj map[string]json.RawMessage
		if err := json.Unmarshal(item, &obj); err != nil {
			return nil, schemas.ReasonInvalidJSON, fmt.Sprintf("decode %s: %v", where, err)
		}
		var m schemas.Message
		for _, key := range []string{"role", "content"} {
			v, ok := obj[key]
			if !ok {
				return nil, schemas.ReasonMissingField, fmt.Sprintf("%s has no %q", where, key)
			}
			if k := kindOf(v); k != "a string" {
				return nil, schemas.ReasonWrongType, fmt.Sprintf("%s: %q is %s, want a string", where, key, k)
			}
			var s string
			if err := json.Unmarshal(v, &s); err != nil {
				return nil, schemas.ReasonInvalidJSON, fmt.Sprintf("decode %s %q: %v", where, key, err)
			}
			if key == "role" {
				m.Role = s
			} else {
				m.Content = s
			}
		}
		if strings.TrimSpace(m.Role) == "" {
			return nil, schemas.ReasonMissingField, fmt.Sprintf("%s has an empty \"role\"", where)
		}
		msgs = append(msgs, m)
	}
	return msgs, "", ""
}

// splitImplicit splits two whole conversations into the shared prompt (their
// longest common prefix of messages) and the two completions. Messages are
// compared whole (role and content), never by characters.
func splitImplicit(chosen, rejected []schemas.Message) ([3][]schemas.Message, string, string) {
	k := 0
	for k < len(chosen) && k < len(rejected) && chosen[k] == rejected[k] {
		k++
	}
	var out [3][]schemas.Message
	switch {
	case k == len(chosen) && k == len(rejected):
		return out, schemas.ReasonDegenerate, fmt.Sprintf("no %q: %q and %q are the same conversation, so there is no completion to prefer",
			FieldPrompt, FieldChosen, FieldRejected)
	case k == len(chosen):
		return out, schemas.ReasonEmptyCompletion, fmt.Sprintf("no %q: %q is a prefix of %q, so the implied chosen completion is empty",
			FieldPrompt, FieldChosen, FieldRejected)
	case k == len(rejected):
		return out, schemas.ReasonEmptyCompletion, fmt.Sprintf("no %q: %q is a prefix of %q, so the implied rejected completion is empty",
			FieldPrompt, FieldRejected, FieldChosen)
	case k == 0:
		return out, schemas.ReasonEmptyPrompt, fmt.Sprintf("no %q: %q and %q differ from their first message, so no prompt can be implied",
			FieldPrompt, FieldChosen, FieldRejected)
	}
	// Full slice expressions so an append to one part can never write into another.
	out[0] = chosen[:k:k]
	out[1] = chosen[k:]
	out[2] = rejected[k:]
	return out, "", ""
}

func checkCompletionText(name, s string) (string, string) {
	switch {
	case s == "":
		return schemas.ReasonEmptyCompletion, fmt.Sprintf("field %q is empty", name)
	case strings.TrimSpace(s) == "":
		return schemas.ReasonEmptyCompletion, fmt.Sprintf("field %q is only whitespace", name)
	}
	return "", ""
}

func checkCompletionMessages(name string, msgs []schemas.Message) (string, string) {
	if len(msgs) == 0 {
		return schemas.ReasonEmptyCompletion, fmt.Sprintf("field %q has no messages", name)
	}
	for _, m := range msgs {
		if strings.TrimSpace(m.Content) != "" {
			return "", ""
		}
	}
	return schemas.ReasonEmptyCompletion, fmt.Sprintf("field %q has only empty or whitespace messages", name)
}

// extra returns the record's other fields as a JSON object with sorted keys
// and compacted values, or "" if there are none.
func extra(fields map[string]json.RawMessage) string {
	keys := make([]string, 0, len(fields))
	for k := range fields {
		if k != FieldPrompt && k != FieldChosen && k != FieldRejected {
			keys = append(keys, k)
		}
	}
	if len(keys) == 0 {
		return ""
	}
	slices.Sort(keys)
	var b bytes.Buffer
	b.WriteByte('{')
	for i, k := range keys {
		if i > 0 {
			b.WriteByte(',')
		}
		b.Write(quote(k))
		b.WriteByte(':')
		// The values came from a successful parse, so Compact cannot fail.
		_ = json.Compact(&b, fields[k])
	}
	b.WriteByte('}')
	return b.String()
}

// quote encodes s as a JSON string without escaping <, > and & (they are
// data here, not HTML).
func quote(s string) []byte {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(s) // encoding a string cannot fail
	return bytes.TrimSuffix(b.Bytes(), []byte("\n"))
}

// kindOf names the kind of a syntactically valid JSON value by its first byte.
func kindOf(raw []byte) string {
	i := 0
	for i < len(raw) && (raw[i] == ' ' || raw[i] == '\t' || raw[i] == '\r' || raw[i] == '\n') {
		i++
	}
	if i == len(raw) {
		return "empty"
	}
	switch raw[i] {
	case '"':
		return "a string"
	case '[':
		return "a list"
	case '{':
		return "an object"
	case 'n':
		return "null"
	case 't', 'f':
		return "a boolean"
	default:
		return "a number"
	}
}

func isNull(raw []byte) bool { return kindOf(raw) == "null" }
