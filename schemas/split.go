package schemas

import (
	"encoding/hex"
	"math"
)

// SplitFor assigns a pair to train or eval from its id (a hex content hash), so
// the split is deterministic, independent of input order and shard count, and a
// duplicate can never land in both splits.
func SplitFor(id string, evalFraction float64) string {
	if evalFraction <= 0 {
		return SplitTrain
	}
	// The id's last 8 hex digits as a uniform number in [0, 1). The last ones, not
	// the first, so the split is independent of anything that sorts by id prefix.
	var u uint64
	if len(id) >= 8 {
		if b, err := hex.DecodeString(id[len(id)-8:]); err == nil {
			u = uint64(b[0])<<24 | uint64(b[1])<<16 | uint64(b[2])<<8 | uint64(b[3])
		}
	}
	if float64(u)/float64(math.MaxUint32+1) < evalFraction {
		return SplitEval
	}
	return SplitTrain
}
