package tokenize

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// Message is one turn of a conversation.
type Message struct {
	Role    string `json:"role"`
	Content string `json:"content"`
}

// ChatTemplate renders a conversation into the text a model is trained on.
//
// The markers a template writes (<|im_start|>, <|eot_id|>, ...) are plain text:
// our tokenizers encode them as ordinary text, never as special ids, exactly as
// they encode the same strings found inside user data. That is consistent
// between scoring and training, and it keeps user text from forging turns.
type ChatTemplate interface {
	Name() string
	// Render writes msgs in order; with addGenerationPrompt it appends the
	// header that starts an assistant turn.
	Render(msgs []Message, addGenerationPrompt bool) string
}

// Chat template names accepted by NewChatTemplate.
const (
	TemplatePlain  = "plain"
	TemplateChatML = "chatml"
	TemplateLlama3 = "llama3"
)

// NewChatTemplate returns the template called name: "plain" (role: content\n),
// "chatml" or "llama3".
func NewChatTemplate(name string) (ChatTemplate, error) {
	switch name {
	case TemplatePlain:
		return plainTemplate{}, nil
	case TemplateChatML:
		return chatMLTemplate{}, nil
	case TemplateLlama3:
		return llama3Template{}, nil
	}
	return nil, fmt.Errorf("chat template %q: unknown (want plain, chatml or llama3)", name)
}

type plainTemplate struct{}

func (plainTemplate) Name() string { return TemplatePlain }

func (plainTemplate) Render(msgs []Message, gen bool) string {
	var b strings.Builder
	for _, m := range msgs {
		b.WriteString(m.Role)
		b.WriteString(": ")
		b.WriteString(m.Content)
		b.WriteByte('\n')
	}
	if gen {
		// The prefix of an assistant message as rendered above, so that
		// RenderPair's split falls exactly at the start of the answer.
		b.WriteString("assistant: ")
	}
	return b.String()
}

type chatMLTemplate struct{}

func (chatMLTemplate) Name() string { return TemplateChatML }

func (chatMLTemplate) Render(msgs []Message, gen bool) string {
	var b strings.Builder
	for _, m := range msgs {
		b.WriteString("<|im_start|>")
		b.WriteString(m.Role)
		b.WriteByte('\n')
		b.WriteString(m.Content)
		b.WriteString("<|im_end|>\n")
	}
	if gen {
		b.WriteString("<|im_start|>assistant\n")
	}
	return b.String()
}

type llama3Template struct{}

func (llama3Template) Name() string { return TemplateLlama3 }

// Render always starts with <|begin_of_text|>, even for no messages, so that
// the rendering of a prompt is a prefix of the rendering of prompt+completion.
func (llama3Template) Render(msgs []Message, gen bool) string {
	var b strings.Builder
	b.WriteString("<|begin_of_text|>")
	for _, m := range msgs {
		b.WriteString("<|start_header_id|>")
		b.WriteString(m.Role)
		b.WriteString("<|end_header_id|>\n\n")
		b.WriteString(m.Content)
		b.WriteString("<|eot_id|>")
	}
	if gen {
		b.WriteString("<|start_header_id|>assistant<|end_header_id|>\n\n")
	}
	return b.String()
}

// RenderPair renders a prompt and its completion so that
// promptText+completionText == t.Render(prompt ++ completion, false).
// When the completion starts with an assistant message, the prompt part ends with
// the assistant header (the generation prompt), so the completion part holds only
// what the model must produce: the answer text and its end-of-turn marker.
func RenderPair(t ChatTemplate, prompt, completion []Message) (promptText, completionText string) {
	all := make([]Message, 0, len(prompt)+len(completion))
	all = append(all, prompt...)
	all = append(all, completion...)
	full := t.Render(all, false)
	gen := len(completion) > 0 && completion[0].Role == "assistant"
	for _, p := range []string{t.Render(prompt, gen), t.Render(prompt, false)} {
		if strings.HasPrefix(full, p) {
			return p, full[len(p):]
		}
	}
	// A template whose prompt rendering is not a prefix of the whole: keep the
	// invariant and put everything in the completion.
	return "", full
}

// ChatTemplateFor reads the chat_template of the tokenizer_config.json beside a
// tokenizer.json (tokenizerPath may be the file or its directory) and returns
// the built-in template it matches: ChatML when it writes "<|im_start|>", Llama-3
// when it writes "<|start_header_id|>". The Jinja template itself is not run.
// It returns false when there is no config, no chat_template, or no match.
func ChatTemplateFor(tokenizerPath string) (ChatTemplate, bool) {
	dir := tokenizerPath
	if st, err := os.Stat(tokenizerPath); err == nil && !st.IsDir() {
		dir = filepath.Dir(tokenizerPath)
	}
	raw, err := os.ReadFile(filepath.Join(dir, "tokenizer_config.json"))
	if err != nil {
		return nil, false
	}
	var cfg struct {
		ChatTemplate json.RawMessage `json:"chat_template"`
	}
	if json.Unmarshal(raw, &cfg) != nil || len(cfg.ChatTemplate) == 0 {
		return nil, false
	}
	// chat_template is either a string or a list of {"name", "template"}.
	var texts []string
	var one string
	if json.Unmarshal(cfg.ChatTemplate, &one) == nil {
		texts = append(texts, one)
	} else {
		var named []struct {
			Name     string `json:"name"`
			Template string `json:"template"`
		}
		if json.Unmarshal(cfg.ChatTemplate, &named) != nil {
			return nil, false
		}
		// Prefer the "default" entry, as transformers does.
		for _, n := range named {
			if n.Name == "default" {
				texts = append([]string{n.Template}, texts...)
			} else {
				texts = append(texts, n.Template)
			}
		}
	}
	for _, s := range texts {
		switch {
		case strings.Contains(s, "<|start_header_id|>"):
			return llama3Template{}, true
		case strings.Contains(s, "<|im_start|>"):
			return chatMLTemplate{}, true
		}
	}
	return nil, false
}
