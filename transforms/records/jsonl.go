package records

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"iter"
	"unicode/utf8"

	"github.com/dpopflow/dpopflow/schemas"
)

// DefaultMaxLineBytes is the longest JSONL line JSONL parses by default:
// generous, because a long multi-turn conversation is a legitimate record,
// yet bounded, so one corrupt file without newlines cannot exhaust memory.
const DefaultMaxLineBytes = 64 << 20

// PreviewBytes is how much of an over-long line a record_too_large reject
// keeps in Raw. It is the one place a reject does not hold the whole record:
// keeping a line that broke the limit would defeat the limit.
const PreviewBytes = 4 << 10

// utf8BOM is stripped from the first line: editors on Windows write it and it
// is not JSON.
var utf8BOM = []byte{0xEF, 0xBB, 0xBF}

// JSONL streams the records of a JSON Lines file read from r, one
// (Pair, Reject) per record with exactly one of them non-nil. Lines are
// numbered from 1 and blank lines are skipped (they are not records, but keep
// their numbers so a reject's Line matches an editor's). Lines end with "\n"
// or "\r\n".
//
// Nothing here fails: a line longer than maxLineBytes (DefaultMaxLineBytes if
// <= 0) is a record_too_large reject whose Raw is only its first PreviewBytes;
// a last line without a newline that is not valid JSON is an invalid_json
// reject noting the file may be truncated; and a read error (e.g. a corrupt
// gzip stream) ends the sequence with one unreadable_file reject standing for
// the rest of the file.
func JSONL(r io.Reader, source string, maxLineBytes int) iter.Seq2[*schemas.Pair, *schemas.Reject] {
	if maxLineBytes <= 0 {
		maxLineBytes = DefaultMaxLineBytes
	}
	return func(yield func(*schemas.Pair, *schemas.Reject) bool) {
		br := bufio.NewReaderSize(r, 64<<10)
		var lineNo int64
		for {
			line, total, err := readLine(br, maxLineBytes)
			atEOF := errors.Is(err, io.EOF)
			if err != nil && !atEOF {
				lineNo++
				yield(nil, unreadable(source, lineNo, line, err))
				return
			}
			if atEOF && total == 0 {
				return
			}
			lineNo++
			if lineNo == 1 {
				line = bytes.TrimPrefix(line, utf8BOM)
			}
			// total counts bytes before the terminator; the line itself may
			// still carry a "\r" from CRLF.
			if total > maxLineBytes {
				if !yield(nil, tooLarge(source, lineNo, line, total, maxLineBytes)) {
					return
				}
			} else if len(bytes.TrimSpace(line)) > 0 {
				line = bytes.TrimSuffix(line, []byte("\r"))
				p, rej := ParseLine(source, lineNo, line)
				if rej != nil && atEOF && rej.Reason == schemas.ReasonInvalidJSON {
					rej.Detail += " (the last line has no newline: the file may be truncated)"
				}
				if !yield(p, rej) {
					return
				}
			}
			if atEOF {
				return
			}
		}
	}
}

// readLine reads one line without its "\n". Once the line passes limit bytes
// it keeps only the first PreviewBytes and discards the rest, while total
// still counts every byte, so memory stays bounded by the limit. err is io.EOF
// when the line ended at the end of the input (with or without content).
func readLine(br *bufio.Reader, limit int) (line []byte, total int, err error) {
	var buf []byte
	for {
		chunk, err := br.ReadSlice('\n')
		n := len(chunk)
		if err == nil {
			chunk = chunk[:n-1]
		}
		total += len(chunk)
		switch {
		case total <= limit:
			buf = append(buf, chunk...)
		case len(buf) < PreviewBytes:
			buf = append(buf, chunk[:min(len(chunk), PreviewBytes-len(buf))]...)
		}
		if total > limit && len(buf) > PreviewBytes {
			// Crossing the limit: keep a preview in a fresh slice so the large
			// backing array can be collected.
			buf = append([]byte(nil), buf[:PreviewBytes]...)
		}
		switch {
		case err == nil:
			return buf, total, nil
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		default:
			return buf, total, err
		}
	}
}

func tooLarge(source string, line int64, preview []byte, total, limit int) *schemas.Reject {
	rej := &schemas.Reject{
		Source: source,
		Line:   line,
		Reason: schemas.ReasonTooLarge,
	}
	// Cut the preview at a rune boundary so a multi-byte character split by
	// the cut does not make a valid line look like invalid UTF-8.
	p := preview
	for len(p) > 0 && !utf8.Valid(p) && len(preview)-len(p) < utf8.UTFMax {
		p = p[:len(p)-1]
	}
	if utf8.Valid(p) {
		rej.Raw = string(p)
		rej.Detail = fmt.Sprintf("line is %d bytes, over the %d-byte limit; raw holds only its first %d bytes", total, limit, len(p))
	} else {
		rej.RawBase64 = base64.StdEncoding.EncodeToString(preview)
		rej.Detail = fmt.Sprintf("line is %d bytes, over the %d-byte limit; raw_base64 holds only its first %d bytes (not valid UTF-8)", total, limit, len(preview))
	}
	return rej
}

func unreadable(source string, line int64, partial []byte, err error) *schemas.Reject {
	rej := &schemas.Reject{
		Source: source,
		Line:   line,
		Reason: schemas.ReasonUnreadable,
		Detail: fmt.Sprintf("read %s from line %d: %v; the rest of the file was not read", source, line, err),
	}
	if utf8.Valid(partial) {
		rej.Raw = string(partial)
	} else {
		rej.RawBase64 = base64.StdEncoding.EncodeToString(partial)
	}
	return rej
}
