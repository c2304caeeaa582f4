package tokenize

import "fmt"

func ExampleNew() {
	tok, err := New("gpt2")
	if err != nil {
		panic(err)
	}
	ids := tok.Encode("hello world<|endoftext|>")
	fmt.Println(ids, tok.Decode(ids[:2]))
	fmt.Println(tok.EOS(), tok.PAD(), tok.VocabSize())
	// Output:
	// [31373 995 27 91 437 1659 5239 91 29] hello world
	// 50256 50256 50257
}

// Example shows the usual preprocessing step: render a conversation pair and
// tokenize it, ending the completion with EOS.
func Example() {
	tok, _ := New("byte")
	tmpl, _ := NewChatTemplate("chatml")
	prompt, completion := RenderPair(tmpl,
		[]Message{{Role: "user", Content: "2+2?"}},
		[]Message{{Role: "assistant", Content: "4"}})
	ids := append(tok.Encode(completion), tok.EOS())
	fmt.Printf("%q\n%q\n%v\n", prompt, completion, ids)
	// Output:
	// "<|im_start|>user\n2+2?<|im_end|>\n<|im_start|>assistant\n"
	// "4<|im_end|>\n"
	// [52 60 124 105 109 95 101 110 100 124 62 10 256]
}
