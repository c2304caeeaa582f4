package synth

import (
	"fmt"
	"math/rand/v2"
	"strings"
)

// category is one fact table: a question, the items that answer it, and the
// items that are clearly wrong for it. Word categories leave Distractors nil
// and take them from the other word categories, which is only sound because
// no word belongs to two of them (a test checks that: no "orange", "gold" or
// "Mercury").
type category struct {
	Question    string
	Members     []string
	Distractors []string
}

// Words are at most 7 bytes so that a question with four options stays near
// 60 bytes.
var categories = []category{
	{Question: "Which is a mammal?", Members: strings.Fields("cat dog whale horse mouse bat cow goat lion tiger bear sheep pig rabbit fox wolf deer otter")},
	{Question: "Which is a bird?", Members: strings.Fields("crow owl eagle robin duck swan hawk parrot goose hen finch heron")},
	{Question: "Which is a fish?", Members: strings.Fields("trout cod shark salmon tuna carp eel pike perch")},
	{Question: "Which is an insect?", Members: strings.Fields("ant bee wasp moth beetle flea gnat aphid locust")},
	{Question: "Which is a planet?", Members: strings.Fields("Mars Venus Earth Saturn Uranus Jupiter Neptune")},
	{Question: "Which is a metal?", Members: strings.Fields("iron tin zinc nickel cobalt sodium lithium")},
	{Question: "Which is a colour?", Members: strings.Fields("red blue green yellow purple pink brown black white grey")},
	{Question: "Which is a fruit?", Members: strings.Fields("apple banana grape mango pear peach plum cherry lemon melon")},
	{Question: "Which is a gas?", Members: strings.Fields("oxygen helium neon argon radon xenon")},
	{Question: "Which is prime?",
		Members:     strings.Fields("2 3 5 7 11 13 17 19 23 29 31 37 41 43 47 53"),
		Distractors: strings.Fields("4 6 8 9 10 12 14 15 16 18 20 21 22 24 25 26 27 28 33 35 39 45 49 51")},
	{Question: "Which is a square?",
		Members:     strings.Fields("1 4 9 16 25 36 49 64 81 100"),
		Distractors: strings.Fields("2 3 5 6 7 8 10 12 15 18 20 24 30 40 50 60 80 90")},
	{Question: "Which is even?",
		Members:     strings.Fields("2 4 6 8 10 12 14 16 18 20 22 24 26 28 30"),
		Distractors: strings.Fields("1 3 5 7 9 11 13 15 17 19 21 23 25 27 29")},
}

var letters = [4]string{"A", "B", "C", "D"}

// wordDistractors returns the members of every other word category.
func wordDistractors(ci int) []string {
	var out []string
	for j, c := range categories {
		if j != ci && c.Distractors == nil {
			out = append(out, c.Members...)
		}
	}
	return out
}

// arcQuestion makes one ARC-DPO-style question and its three pairs: chosen
// names the right option (" B) whale"), rejected one wrong option
// (" A) trout").
func arcQuestion(rng *rand.Rand, qid string) []Record {
	ci := rng.IntN(len(categories))
	c := categories[ci]
	wrong := c.Distractors
	if wrong == nil {
		wrong = wordDistractors(ci)
	}
	options := make([]string, 0, 4)
	for _, i := range rng.Perm(len(wrong))[:3] {
		options = append(options, wrong[i])
	}
	right := rng.IntN(4)
	options = append(options[:right], append([]string{c.Members[rng.IntN(len(c.Members))]}, options[right:]...)...)

	var sb strings.Builder
	fmt.Fprintf(&sb, "Q: %s", c.Question)
	for i, o := range options {
		fmt.Fprintf(&sb, " %s)%s", letters[i], o)
	}
	sb.WriteString("\nA:")
	prompt := sb.String()

	chosen := fmt.Sprintf(" %s) %s", letters[right], options[right])
	pairs := make([]Record, 0, 3)
	for i, o := range options {
		if i == right {
			continue
		}
		pairs = append(pairs, Record{
			Prompt:   prompt,
			Chosen:   chosen,
			Rejected: fmt.Sprintf(" %s) %s", letters[i], o),
			Kind:     KindARC,
			Answer:   letters[right],
			Source:   "synth",
			QID:      qid,
		})
	}
	return pairs
}
