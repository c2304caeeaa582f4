package records_test

import (
	"fmt"

	"github.com/dpopflow/dpopflow/transforms/records"
)

// An implicit prompt is the longest common prefix of whole messages: the two
// answers share "The answer is 1" but differ in a message, so that message
// is the completion, not its last character.
func ExampleParseLine_implicitPrompt() {
	line := `{"chosen": [{"role": "user", "content": "6+8?"}, {"role": "assistant", "content": "The answer is 14"}],
	          "rejected": [{"role": "user", "content": "6+8?"}, {"role": "assistant", "content": "The answer is 15"}],
	          "source": "metamath"}`
	p, rej := records.ParseLine("train.jsonl", 1, []byte(line))
	fmt.Println(rej == nil)
	fmt.Println(p.PromptMessages)
	fmt.Println(p.ChosenMessages, p.RejectedMessages)
	fmt.Println(p.Extra)
	// Output:
	// true
	// [{user 6+8?}]
	// [{assistant The answer is 14}] [{assistant The answer is 15}]
	// {"source":"metamath"}
}

func ExampleParseLine_reject() {
	_, rej := records.ParseLine("train.jsonl", 7, []byte(`{"prompt": "2+2=", "chosen": 4, "rejected": "5"}`))
	fmt.Println(rej.Reason)
	fmt.Println(rej.Detail)
	// Output:
	// wrong_type
	// field "chosen" is a number, want a string or a list of messages
}
