package transforms

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"reflect"

	"github.com/apache/beam/sdks/v2/go/pkg/beam"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/register"

	"github.com/dpopflow/dpopflow/schemas"
)

// Hand-written coders for the records that cross every stage boundary.
// Without them Beam encodes schemas.Pair, schemas.Row and schemas.Reject with
// its reflection-based schema row coder, which dominated the pipeline's
// profile. The encoding is compact and private to a pipeline run (elements
// are only ever decoded by the same binary that encoded them):
//
//	string    uvarint length, bytes
//	slice     uvarint 0 for nil, else uvarint len+1 followed by the elements,
//	          so nil and empty slices survive the round trip (the Arrow
//	          output and test equality depend on it)
//	int32     4 bytes little-endian; float32 its IEEE bits likewise;
//	          token-id slices are uvarints of the ids' uint32 bits instead
//	int64     zigzag varint
//	bool      one byte
//
// Every record starts with a version byte, so a change of layout fails loudly
// instead of decoding garbage.
func init() {
	register.Function1x1(encodePair)
	register.Function1x2(decodePair)
	register.Function1x1(encodeRow)
	register.Function1x2(decodeRow)
	register.Function1x1(encodeReject)
	register.Function1x2(decodeReject)
	beam.RegisterCoder(reflect.TypeOf(schemas.Pair{}), encodePair, decodePair)
	beam.RegisterCoder(reflect.TypeOf(schemas.Row{}), encodeRow, decodeRow)
	beam.RegisterCoder(reflect.TypeOf(schemas.Reject{}), encodeReject, decodeReject)
}

const (
	pairCoderVersion   = 1
	rowCoderVersion    = 1
	rejectCoderVersion = 1
)

// enc appends to a byte slice.
type enc struct{ b []byte }

func (e *enc) uvarint(v uint64) { e.b = binary.AppendUvarint(e.b, v) }
func (e *enc) varint(v int64)   { e.b = binary.AppendVarint(e.b, v) }
func (e *enc) str(s string)     { e.uvarint(uint64(len(s))); e.b = append(e.b, s...) }
func (e *enc) i32(v int32)      { e.b = binary.LittleEndian.AppendUint32(e.b, uint32(v)) }
func (e *enc) f32(v float32)    { e.b = binary.LittleEndian.AppendUint32(e.b, math.Float32bits(v)) }
func (e *enc) boolean(v bool) {
	if v {
		e.b = append(e.b, 1)
	} else {
		e.b = append(e.b, 0)
	}
}

// sliceLen writes the nil-preserving length header.
func (e *enc) sliceLen(isNil bool, n int) {
	if isNil {
		e.uvarint(0)
		return
	}
	e.uvarint(uint64(n) + 1)
}

// i32s writes token ids as uvarints of their uint32 bits: ids are small and
// non-negative (1-3 bytes each instead of 4), and Prism copies every byte of
// every element between stages.
func (e *enc) i32s(v []int32) {
	e.sliceLen(v == nil, len(v))
	for _, x := range v {
		e.uvarint(uint64(uint32(x)))
	}
}

func (e *enc) f32s(v []float32) {
	e.sliceLen(v == nil, len(v))
	for _, x := range v {
		e.f32(x)
	}
}

func (e *enc) messages(v []schemas.Message) {
	e.sliceLen(v == nil, len(v))
	for _, m := range v {
		e.str(m.Role)
		e.str(m.Content)
	}
}

var errShort = errors.New("truncated element")

// dec reads what enc wrote. The input is copied into one string up front, so
// all decoded strings share a single allocation.
type dec struct {
	s   string
	i   int
	err error
}

func newDec(data []byte) *dec { return &dec{s: string(data)} }

func (d *dec) fail(err error) {
	if d.err == nil {
		d.err = err
	}
	d.i = len(d.s)
}

func (d *dec) byte1() byte {
	if d.i >= len(d.s) {
		d.fail(errShort)
		return 0
	}
	b := d.s[d.i]
	d.i++
	return b
}

func (d *dec) uvarint() uint64 {
	var v uint64
	for shift := uint(0); ; shift += 7 {
		if shift >= 64 {
			d.fail(errors.New("varint overflow"))
			return 0
		}
		b := d.byte1()
		if d.err != nil {
			return 0
		}
		v |= uint64(b&0x7f) << shift
		if b < 0x80 {
			return v
		}
	}
}

func (d *dec) varint() int64 {
	u := d.uvarint()
	v := int64(u >> 1)
	if u&1 != 0 {
		v = ^v
	}
	return v
}

// n reads a length and checks that at least n*width bytes remain.
func (d *dec) n(width int) int {
	u := d.uvarint()
	if d.err != nil {
		return 0
	}
	if u > uint64(len(d.s)-d.i)/uint64(width) {
		d.fail(errShort)
		return 0
	}
	return int(u)
}

func (d *dec) str() string {
	n := d.n(1)
	s := d.s[d.i : d.i+n]
	d.i += n
	return s
}

func (d *dec) u32() uint32 {
	if len(d.s)-d.i < 4 {
		d.fail(errShort)
		return 0
	}
	s := d.s[d.i:]
	d.i += 4
	return uint32(s[0]) | uint32(s[1])<<8 | uint32(s[2])<<16 | uint32(s[3])<<24
}

func (d *dec) i32() int32   { return int32(d.u32()) }
func (d *dec) f32() float32 { return math.Float32frombits(d.u32()) }
func (d *dec) boolean() bool {
	return d.byte1() != 0
}

// sliceLen reads the nil-preserving header; ok is false for nil.
func (d *dec) sliceLen(width int) (n int, ok bool) {
	u := d.uvarint()
	if d.err != nil || u == 0 {
		return 0, false
	}
	if u-1 > uint64(len(d.s)-d.i)/uint64(width) {
		d.fail(errShort)
		return 0, false
	}
	return int(u - 1), true
}

func (d *dec) i32s() []int32 {
	n, ok := d.sliceLen(1)
	if !ok {
		return nil
	}
	v := make([]int32, n)
	for i := range v {
		if d.i < len(d.s) && d.s[d.i] < 0x80 { // the common one-byte case
			v[i] = int32(d.s[d.i])
			d.i++
			continue
		}
		u := d.uvarint()
		if u > math.MaxUint32 {
			d.fail(errors.New("token id overflows int32"))
		}
		v[i] = int32(uint32(u))
	}
	return v
}

func (d *dec) f32s() []float32 {
	n, ok := d.sliceLen(4)
	if !ok {
		return nil
	}
	v := make([]float32, n)
	for i := range v {
		v[i] = d.f32()
	}
	return v
}

func (d *dec) messages() []schemas.Message {
	n, ok := d.sliceLen(2) // two length bytes at least per message
	if !ok {
		return nil
	}
	v := make([]schemas.Message, n)
	for i := range v {
		v[i].Role = d.str()
		v[i].Content = d.str()
	}
	return v
}

func (d *dec) version(what string, want byte) {
	if v := d.byte1(); d.err == nil && v != want {
		d.fail(fmt.Errorf("%s coder version %d, this build reads %d", what, v, want))
	}
}

func (d *dec) done(what string) error {
	if d.err == nil && d.i != len(d.s) {
		d.err = fmt.Errorf("%d trailing bytes", len(d.s)-d.i)
	}
	if d.err != nil {
		return fmt.Errorf("decode %s: %w", what, d.err)
	}
	return nil
}

func encodePair(p schemas.Pair) []byte {
	e := enc{b: make([]byte, 0, 32+len(p.ID)+len(p.Source)+len(p.Prompt)+len(p.Chosen)+len(p.Rejected)+len(p.Extra))}
	e.b = append(e.b, pairCoderVersion)
	e.str(p.ID)
	e.str(p.Source)
	e.varint(p.Line)
	e.boolean(p.Conversational)
	e.str(p.Prompt)
	e.str(p.Chosen)
	e.str(p.Rejected)
	e.messages(p.PromptMessages)
	e.messages(p.ChosenMessages)
	e.messages(p.RejectedMessages)
	e.str(p.Extra)
	return e.b
}

func decodePair(data []byte) (schemas.Pair, error) {
	d := newDec(data)
	d.version("pair", pairCoderVersion)
	var p schemas.Pair
	p.ID = d.str()
	p.Source = d.str()
	p.Line = d.varint()
	p.Conversational = d.boolean()
	p.Prompt = d.str()
	p.Chosen = d.str()
	p.Rejected = d.str()
	p.PromptMessages = d.messages()
	p.ChosenMessages = d.messages()
	p.RejectedMessages = d.messages()
	p.Extra = d.str()
	if err := d.done("pair"); err != nil {
		return schemas.Pair{}, err
	}
	return p, nil
}

func encodeRow(r schemas.Row) []byte {
	size := 64 + len(r.ID) + len(r.Split) + len(r.Prompt) + len(r.Chosen) + len(r.Rejected) + len(r.Extra) +
		2*(len(r.PromptIDs)+len(r.ChosenIDs)+len(r.RejectedIDs)) + 4*(len(r.RefChosenLogps)+len(r.RefRejectedLogps))
	e := enc{b: make([]byte, 0, size)}
	e.b = append(e.b, rowCoderVersion)
	e.str(r.ID)
	e.str(r.Split)
	e.str(r.Prompt)
	e.str(r.Chosen)
	e.str(r.Rejected)
	e.i32s(r.PromptIDs)
	e.i32s(r.ChosenIDs)
	e.i32s(r.RejectedIDs)
	e.i32(r.EditDistance)
	e.f32(r.EditRatio)
	e.i32(r.FirstDiff)
	e.boolean(r.LowDistance)
	e.boolean(r.Truncated)
	e.str(r.Extra)
	e.f32s(r.RefChosenLogps)
	e.f32s(r.RefRejectedLogps)
	e.f32(r.RefChosenLogp)
	e.f32(r.RefRejectedLogp)
	return e.b
}

func decodeRow(data []byte) (schemas.Row, error) {
	d := newDec(data)
	d.version("row", rowCoderVersion)
	var r schemas.Row
	r.ID = d.str()
	r.Split = d.str()
	r.Prompt = d.str()
	r.Chosen = d.str()
	r.Rejected = d.str()
	r.PromptIDs = d.i32s()
	r.ChosenIDs = d.i32s()
	r.RejectedIDs = d.i32s()
	r.EditDistance = d.i32()
	r.EditRatio = d.f32()
	r.FirstDiff = d.i32()
	r.LowDistance = d.boolean()
	r.Truncated = d.boolean()
	r.Extra = d.str()
	r.RefChosenLogps = d.f32s()
	r.RefRejectedLogps = d.f32s()
	r.RefChosenLogp = d.f32()
	r.RefRejectedLogp = d.f32()
	if err := d.done("row"); err != nil {
		return schemas.Row{}, err
	}
	return r, nil
}

func encodeReject(r schemas.Reject) []byte {
	e := enc{b: make([]byte, 0, 16+len(r.Source)+len(r.Reason)+len(r.Detail)+len(r.Raw)+len(r.RawBase64))}
	e.b = append(e.b, rejectCoderVersion)
	e.str(r.Source)
	e.varint(r.Line)
	e.str(r.Reason)
	e.str(r.Detail)
	e.str(r.Raw)
	e.str(r.RawBase64)
	return e.b
}

func decodeReject(data []byte) (schemas.Reject, error) {
	d := newDec(data)
	d.version("reject", rejectCoderVersion)
	var r schemas.Reject
	r.Source = d.str()
	r.Line = d.varint()
	r.Reason = d.str()
	r.Detail = d.str()
	r.Raw = d.str()
	r.RawBase64 = d.str()
	if err := d.done("reject"); err != nil {
		return schemas.Reject{}, err
	}
	return r, nil
}
