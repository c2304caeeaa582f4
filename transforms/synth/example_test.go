package synth_test

import (
	"fmt"
	"os"

	"github.com/dpopflow/dpopflow/transforms/synth"
)

func Example() {
	st, err := synth.WriteJSONL(os.Stdout, synth.Config{Seed: 1, Math: 1})
	if err != nil {
		panic(err)
	}
	fmt.Println(st.Math, "math pair")
	// Output:
	// {"prompt":"Q: 2 bags of 5 eggs, 5 more. Total?\nA:","chosen":" 2*5=10. 10+5=15. The answer is 15.","rejected":" 2*5=19. 19+5=15. The answer is 15.","kind":"math","answer":"15","source":"synth"}
	// 1 math pair
}
