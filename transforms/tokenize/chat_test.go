package tokenize

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestChatTemplatesRender(t *testing.T) {
	msgs := []Message{{"system", "Be brief."}, {"user", "2+2?"}, {"assistant", "4"}}
	cases := []struct {
		name string
		gen  bool
		want string
	}{
		{"plain", false, "system: Be brief.\nuser: 2+2?\nassistant: 4\n"},
		{"plain", true, "system: Be brief.\nuser: 2+2?\nassistant: 4\nassistant: "},
		{"chatml", false, "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\n2+2?<|im_end|>\n<|im_start|>assistant\n4<|im_end|>\n"},
		{"chatml", true, "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\n2+2?<|im_end|>\n<|im_start|>assistant\n4<|im_end|>\n<|im_start|>assistant\n"},
		{"llama3", false, "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|><|start_header_id|>user<|end_header_id|>\n\n2+2?<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n4<|eot_id|>"},
		{"llama3", true, "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|><|start_header_id|>user<|end_header_id|>\n\n2+2?<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n4<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n"},
	}
	for _, c := range cases {
		tmpl, err := NewChatTemplate(c.name)
		if err != nil {
			t.Fatal(err)
		}
		if tmpl.Name() != c.name {
			t.Errorf("Name = %q, want %q", tmpl.Name(), c.name)
		}
		if got := tmpl.Render(msgs, c.gen); got != c.want {
			t.Errorf("%s gen=%v:\n got %q\nwant %q", c.name, c.gen, got, c.want)
		}
	}
	if _, err := NewChatTemplate("jinja"); err == nil {
		t.Error("NewChatTemplate(jinja) succeeded")
	}
}

func TestRenderPair(t *testing.T) {
	sys := Message{"system", "You add numbers."}
	user := Message{"user", "What is 48/2+15?"}
	ans := Message{"assistant", "48/2 = 24. 24+15 = 39."}
	cases := []struct {
		name               string
		prompt, completion []Message
		wantCompletion     map[string]string // per template, when checked exactly
	}{
		{"single answer", []Message{sys, user}, []Message{ans}, map[string]string{
			"plain":  "48/2 = 24. 24+15 = 39.\n",
			"chatml": "48/2 = 24. 24+15 = 39.<|im_end|>\n",
			"llama3": "48/2 = 24. 24+15 = 39.<|eot_id|>",
		}},
		{"multi-turn completion", []Message{user}, []Message{ans, {"user", "And 39*2?"}, {"assistant", "78"}}, nil},
		{"completion starts with user", []Message{sys}, []Message{user, ans}, nil},
		{"empty prompt", nil, []Message{ans}, nil},
		{"empty completion", []Message{user}, nil, nil},
	}
	for _, name := range []string{"plain", "chatml", "llama3"} {
		tmpl, _ := NewChatTemplate(name)
		for _, c := range cases {
			p, comp := RenderPair(tmpl, c.prompt, c.completion)
			all := append(append([]Message{}, c.prompt...), c.completion...)
			if p+comp != tmpl.Render(all, false) {
				t.Errorf("%s/%s: prompt+completion != Render(all)\n%q + %q", name, c.name, p, comp)
			}
			if len(c.completion) > 0 && c.completion[0].Role == "assistant" {
				if !strings.HasSuffix(p, tmpl.Render(nil, true)[len(tmpl.Render(nil, false)):]) {
					t.Errorf("%s/%s: prompt %q does not end with the assistant header", name, c.name, p)
				}
				if p != tmpl.Render(c.prompt, true) {
					t.Errorf("%s/%s: prompt %q != Render(prompt, true)", name, c.name, p)
				}
			}
			if want, ok := c.wantCompletion[name]; ok && comp != want {
				t.Errorf("%s/%s: completion %q, want %q", name, c.name, comp, want)
			}
		}
	}
}

func TestChatTemplateFor(t *testing.T) {
	dir := t.TempDir()
	if _, ok := ChatTemplateFor(dir); ok {
		t.Error("no tokenizer_config.json: got a template")
	}
	write := func(cfg string) {
		if err := os.WriteFile(filepath.Join(dir, "tokenizer_config.json"), []byte(cfg), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(`{"chat_template": [{"name": "tool_use", "template": "x"}, {"name": "default", "template": "{{'<|im_start|>'}}"}]}`)
	if tmpl, ok := ChatTemplateFor(dir); !ok || tmpl.Name() != "chatml" {
		t.Errorf("list form: %v %v", tmpl, ok)
	}
	write(`{"chat_template": "{% for m in messages %}[INST] {{ m.content }} [/INST]{% endfor %}"}`)
	if _, ok := ChatTemplateFor(dir); ok {
		t.Error("Mistral-style template matched a built-in")
	}
	write(`{"eos_token": "</s>"}`)
	if _, ok := ChatTemplateFor(dir); ok {
		t.Error("config without chat_template matched")
	}
}
