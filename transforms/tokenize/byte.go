package tokenize

// Byte ids: the 256 byte values, then the two specials.
const (
	ByteEOS   int32 = 256
	BytePAD   int32 = 257
	ByteVocab       = 258
)

// Byte is the byte-level tokenizer: every UTF-8 byte is one token. It needs no
// vocabulary file, which makes it the default for the tiny models this project
// trains in minutes.
type Byte struct{}

// Name returns "byte".
func (Byte) Name() string { return SpecByte }

// Encode returns one id per byte of text.
func (Byte) Encode(text string) []int32 {
	ids := make([]int32, len(text))
	for i := 0; i < len(text); i++ {
		ids[i] = int32(text[i])
	}
	return ids
}

// Decode maps byte ids back to bytes; EOS renders as "<|endoftext|>", PAD as
// "<|pad|>", and anything else out of range is skipped.
func (Byte) Decode(ids []int32) string {
	buf := make([]byte, 0, len(ids))
	for _, id := range ids {
		switch {
		case id >= 0 && id < 256:
			buf = append(buf, byte(id))
		case id == ByteEOS:
			buf = append(buf, endOfText...)
		case id == BytePAD:
			buf = append(buf, "<|pad|>"...)
		}
	}
	return string(buf)
}

// EOS returns 256.
func (Byte) EOS() int32 { return ByteEOS }

// PAD returns 257.
func (Byte) PAD() int32 { return BytePAD }

// VocabSize returns 258.
func (Byte) VocabSize() int { return ByteVocab }

const endOfText = "<|endoftext|>"
