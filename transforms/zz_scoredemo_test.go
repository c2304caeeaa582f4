//go:build scoredemo

package transforms

import (
	"os"
	"testing"

	"github.com/apache/beam/sdks/v2/go/pkg/beam"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/testing/ptest"

	"github.com/dpopflow/dpopflow/train/gpt"
	"github.com/dpopflow/dpopflow/transforms/synth"
)

// Throwaway: builds a demo input for the score CLI. Deleted after use.
func TestScoreDemoInput(t *testing.T) {
	f, _ := os.Create("/tmp/scoredemo/data.jsonl")
	cfg := synth.Default()
	if _, err := synth.WriteJSONL(f, cfg); err != nil {
		t.Fatal(err)
	}
	f.Close()
	o := DefaultPreprocessOptions()
	o.Inputs, o.Output, o.MaxLength, o.MaxPromptLength = []string{"/tmp/scoredemo/data.jsonl"}, "/tmp/scoredemo/in", 128, 64
	p, s := beam.NewPipelineWithRoot()
	if err := Preprocess(s, o); err != nil {
		t.Fatal(err)
	}
	if err := ptest.Run(p); err != nil {
		t.Fatal(err)
	}
	m, _ := gpt.New(gpt.DefaultConfig(258), 1)
	if err := m.Save("/tmp/scoredemo/ckpt"); err != nil {
		t.Fatal(err)
	}
}
