package train_test

import (
	"fmt"

	"github.com/dpopflow/dpopflow/train"
)

// The paper's worked case: the chosen answer's log-prob is above the
// reference's, so DPOP's penalty is zero and it equals DPO.
func ExampleDPOPLoss() {
	lc, lr, rc, rr := -8.0, -14.0, -9.0, -10.0
	dpo, _, _ := train.DPOPLoss(lc, lr, rc, rr, 0.1, 0)
	dpop, _, _ := train.DPOPLoss(lc, lr, rc, rr, 0.1, 50)
	// At the kink (policy = reference) the penalty's slope counts in full.
	_, dlc, _ := train.DPOPLoss(-9, -10, -9, -10, 0.1, 50)
	fmt.Printf("DPO %.4f DPOP %.4f; at init dL/dlc = %.3f\n", dpo, dpop, dlc)
	// Output: DPO 0.4741 DPOP 0.4741; at init dL/dlc = -2.550
}

func ExampleFinalAnswer() {
	fmt.Printf("%q\n", train.FinalAnswer(" 39+44=83. 83-24=59. The answer is 59."))
	fmt.Printf("%q\n", train.FinalAnswer(" D) aphid"))
	// Output:
	// "59"
	// "D) aphid"
}
