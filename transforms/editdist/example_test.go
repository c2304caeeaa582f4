package editdist_test

import (
	"fmt"

	"github.com/dpopflow/dpopflow/transforms/editdist"
)

func ExampleDistance() {
	// Two completions as token ids; the rejected one corrupts one
	// intermediate result (a substitution) and drops a token.
	chosen := []int32{464, 3280, 318, 642, 13, 50256}
	rejected := []int32{464, 3280, 318, 718, 50256}
	fmt.Println(editdist.Distance(chosen, rejected))
	fmt.Println(editdist.FirstDiff(chosen, rejected))
	fmt.Printf("%+v\n", editdist.Align(chosen, rejected))
	// Output:
	// 2
	// 3
	// {Substitutions:1 Insertions:0 Deletions:1}
}
