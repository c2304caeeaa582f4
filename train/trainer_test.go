package train

import (
	"context"
	"errors"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/dpopflow/dpopflow/schemas"
	"github.com/dpopflow/dpopflow/train/gpt"
)

// tinyModel keeps the unit-test runs to seconds on two shared cores.
var tinyModel = gpt.Config{NPositions: 48, NEmbd: 32, NLayer: 2, NHead: 4}

func decodeBytes(ids []int32) string {
	b := make([]byte, 0, len(ids))
	for _, id := range ids {
		if id < 256 {
			b = append(b, byte(id))
		}
	}
	return string(b)
}

func testConfig(t *testing.T, data string) Config {
	cfg := DefaultConfig()
	cfg.Data = data
	cfg.Output = filepath.Join(t.TempDir(), "out")
	cfg.Model = tinyModel
	cfg.Quiet = true
	cfg.Log = testWriter{t}
	cfg.Decode = decodeBytes
	cfg.EvalGenerations = 4
	cfg.EvalSteps, cfg.SaveSteps = 0, 0
	return cfg
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

var (
	sftOnce sync.Once
	sftDir  string
	sftData string
	sftRes  Result
	sftErr  error
)

// sftReference trains one small SFT model on math pairs, shared by the tests
// that need a reference: the SFT test checks it, the preference tests start
// from it.
func sftReference(t *testing.T) (refDir, dataDir string, res Result) {
	t.Helper()
	sftOnce.Do(func() {
		root, err := os.MkdirTemp("", "dpopflow-train-test-")
		if err != nil {
			sftErr = err
			return
		}
		sftData = filepath.Join(root, "data")
		writeDataset(t, sftData, byteMeta, mathRows(400, 11, 8), 2)
		cfg := testConfig(t, sftData)
		cfg.Output = filepath.Join(root, "sft")
		cfg.Loss = LossSFT
		cfg.LearningRate = 3e-3
		cfg.MaxSteps = 150
		cfg.BatchSize = 16
		cfg.EvalPairs = 32
		cfg.EvalGenerations = 8
		sftRes, sftErr = Train(context.Background(), cfg)
		sftDir = sftRes.FinalDir
	})
	if sftErr != nil {
		t.Fatalf("SFT reference run: %v", sftErr)
	}
	return sftDir, sftData, sftRes
}

func TestMain(m *testing.M) {
	code := m.Run()
	if sftData != "" {
		os.RemoveAll(filepath.Dir(sftData))
	}
	os.Exit(code)
}

func TestSFTLowersEvalLoss(t *testing.T) {
	refDir, _, res := sftReference(t)
	rows, err := ReadMetrics(res.MetricsPath)
	if err != nil {
		t.Fatal(err)
	}
	first, last := rows[0], res.Eval
	// A fresh model is near uniform over 258 ids: ln 258 ≈ 5.55 nats per token.
	if first["loss"] < 5 || first["loss"] > 6 {
		t.Errorf("first-step loss %v, want about ln 258 = 5.55", first["loss"])
	}
	if last["eval/loss"] > 1.6 {
		t.Errorf("eval/loss after SFT %v, want < 1.6 (from 5.55)", last["eval/loss"])
	}
	for _, k := range []string{"eval/post_edit_logp", "eval/pre_edit_logp", "eval/accuracy"} {
		if _, ok := last[k]; !ok {
			t.Errorf("eval metrics lack %s: %v", k, last)
		}
	}
	if res.Steps != 150 {
		t.Errorf("ran %d steps", res.Steps)
	}
	m, err := gpt.Load(refDir)
	if err != nil {
		t.Fatalf("final model does not load: %v", err)
	}
	if m.Config().NEmbd != 32 || m.Config().VocabSize != testVocab {
		t.Errorf("final model config %+v", m.Config())
	}
	t.Logf("SFT: loss %.6f → eval/loss %.6f, post-edit logp %.3f, accuracy %.2f",
		first["loss"], last["eval/loss"], last["eval/post_edit_logp"], last["eval/accuracy"])
}

// stripTiming drops the wall-clock metric, the only one allowed to differ.
func stripTiming(rows []map[string]float64) []map[string]float64 {
	for _, r := range rows {
		delete(r, "tokens/s")
	}
	return rows
}

func compareMetrics(t *testing.T, what string, a, b []map[string]float64, tol float64) {
	t.Helper()
	if len(a) != len(b) {
		t.Fatalf("%s: %d metric rows vs %d", what, len(a), len(b))
	}
	for i := range a {
		if len(a[i]) != len(b[i]) {
			t.Errorf("%s row %d: keys differ: %v vs %v", what, i, a[i], b[i])
		}
		for k, v := range a[i] {
			if w, ok := b[i][k]; !ok || math.Abs(v-w) > tol*math.Max(1, math.Abs(v)) {
				t.Errorf("%s row %d (step %v) %s: %v vs %v", what, i, a[i]["step"], k, v, w)
			}
		}
	}
}

// A run stopped after step 3 (as a kill would: no save beyond the step-3
// checkpoint) and resumed gives the same trajectory as an uninterrupted run;
// and the same seed gives the same run.
func TestResumeAndDeterminism(t *testing.T) {
	refDir, data, _ := sftReference(t)
	base := testConfig(t, data)
	base.Ref = refDir
	base.ComputeRef = true
	base.MaxSteps = 6
	base.BatchSize = 4
	base.GradientAccumulationSteps = 2
	base.LearningRate = 1e-3
	base.SaveSteps = 3
	base.EvalSteps = 2
	base.EvalPairs = 8
	base.EvalGenerations = 2

	whole := base
	if _, err := Train(context.Background(), whole); err != nil {
		t.Fatal(err)
	}
	wantRows, err := ReadMetrics(filepath.Join(whole.Output, metricsFile))
	if err != nil {
		t.Fatal(err)
	}

	again := base
	again.Output = filepath.Join(t.TempDir(), "again")
	if _, err := Train(context.Background(), again); err != nil {
		t.Fatal(err)
	}
	gotAgain, _ := ReadMetrics(filepath.Join(again.Output, metricsFile))
	compareMetrics(t, "same seed", stripTiming(wantRows), stripTiming(gotAgain), 0)

	killed := base
	killed.Output = filepath.Join(t.TempDir(), "killed")
	ctx, cancel := context.WithCancel(context.Background())
	killed.OnStep = func(step int, _ map[string]float64) {
		if step == 4 { // step 4 ran but is not checkpointed: resume must redo it
			cancel()
		}
	}
	_, err = Train(ctx, killed)
	if !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), "checkpoint-3") {
		t.Fatalf("stopped run: %v, want a cancellation naming checkpoint-3", err)
	}
	killed.OnStep = nil
	res, err := Train(context.Background(), killed)
	if err != nil {
		t.Fatal(err)
	}
	if res.ResumedFrom != 3 || res.Steps != 6 {
		t.Errorf("resumed from %d, ran to %d; want 3 and 6", res.ResumedFrom, res.Steps)
	}
	gotRows, _ := ReadMetrics(filepath.Join(killed.Output, metricsFile))
	compareMetrics(t, "resumed", stripTiming(wantRows), stripTiming(gotRows), 1e-6)

	w1, _ := os.ReadFile(filepath.Join(whole.Output, "final", "model.safetensors"))
	w2, _ := os.ReadFile(filepath.Join(killed.Output, "final", "model.safetensors"))
	if string(w1) != string(w2) {
		t.Error("resumed run's final weights differ from the uninterrupted run's")
	}

	changed := killed
	changed.Beta = 0.1
	changed.MaxSteps = 9
	if _, err := Train(context.Background(), changed); err == nil || !strings.Contains(err.Error(), "cannot resume") {
		t.Errorf("resume with another beta: %v", err)
	}
}

func TestDivergenceStopsWithClearError(t *testing.T) {
	_, data, _ := sftReference(t)
	cfg := testConfig(t, data)
	cfg.Loss = LossSFT
	cfg.LearningRate = 1e30
	cfg.WarmupRatio = 0
	cfg.MaxGradNorm = 0
	cfg.MaxSteps = 5
	cfg.BatchSize = 4
	cfg.SaveSteps = 1
	cfg.EvalGenerations = 0
	_, err := Train(context.Background(), cfg)
	if err == nil {
		t.Fatal("a learning rate of 1e30 trained without error")
	}
	if !regexp.MustCompile(`step \d+: (loss|grad_norm) is (NaN|[+-]Inf)`).MatchString(err.Error()) {
		t.Errorf("error %q does not say which step went non-finite", err)
	}
	t.Log(err)
	if _, statErr := os.Stat(filepath.Join(cfg.Output, "final")); statErr == nil {
		t.Error("a diverged run saved final/")
	}
	if step, _, _ := latestCheckpoint(cfg.Output); step < 1 || !strings.Contains(err.Error(), "checkpoint-") {
		t.Errorf("last good checkpoint %d not kept or not named in %q", step, err)
	}
}

func TestPreferenceLossNeedsReferenceLogps(t *testing.T) {
	dir := t.TempDir()
	writeDataset(t, dir, byteMeta, mathRows(20, 1, 5), 1)
	cfg := testConfig(t, dir)
	cfg.Ref = "/nonexistent-ref"
	_, err := Train(context.Background(), cfg)
	if err == nil || !strings.Contains(err.Error(), "go run ./pipelines/score") || !strings.Contains(err.Error(), "--compute_ref") {
		t.Errorf("unscored data: %v", err)
	}
	cfg.Ref = ""
	if _, err := Train(context.Background(), cfg); err == nil || !strings.Contains(err.Error(), "--ref") {
		t.Errorf("dpop without a reference: %v", err)
	}
}

// With the shards scored by the reference itself, step 1 runs at policy =
// reference: DPO's and DPOP's loss is exactly ln 2 and the rewards are 0.
func TestScoredShardsStartAtLn2(t *testing.T) {
	refDir, _, _ := sftReference(t)
	ref, err := gpt.Load(refDir)
	if err != nil {
		t.Fatal(err)
	}
	rows := mathRows(40, 21, 5)
	var seqs []gpt.Sequence
	for i := range rows {
		e := MakeExample(&rows[i], ref.Config().NPositions)
		seqs = append(seqs, e.Chosen, e.Rejected)
	}
	lp, err := ref.CompletionLogps(seqs)
	if err != nil {
		t.Fatal(err)
	}
	for i := range rows {
		rows[i].RefChosenLogps, rows[i].RefRejectedLogps = lp[2*i], lp[2*i+1]
		rows[i].RefChosenLogp, rows[i].RefRejectedLogp = float32(sum32(lp[2*i])), float32(sum32(lp[2*i+1]))
	}
	meta := byteMeta
	meta.RefModel = ref.WeightsSHA256()
	dir := t.TempDir()
	writeDataset(t, dir, meta, rows, 2)

	for _, loss := range []string{LossDPO, LossDPOP} {
		cfg := testConfig(t, dir)
		cfg.Loss, cfg.Ref = loss, refDir
		cfg.MaxSteps, cfg.BatchSize, cfg.EvalGenerations = 1, 8, 0
		var first map[string]float64
		cfg.OnStep = func(_ int, m map[string]float64) { first = m }
		res, err := Train(context.Background(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		if math.Abs(first["loss"]-math.Ln2) > 1e-5 || math.Abs(first["rewards/margins"]) > 1e-5 {
			t.Errorf("%s step 1: loss %v margins %v, want ln 2 and 0", loss, first["loss"], first["rewards/margins"])
		}
		// The reference measures come from the stored per-token log-probs
		// and from the model alike; both are the reference's.
		if math.Abs(res.Eval["eval/ref_post_edit_logp"]-res.Eval["eval/post_edit_logp"]) > 0.5 {
			t.Errorf("%s: after one small step post-edit %v vs reference %v", loss,
				res.Eval["eval/post_edit_logp"], res.Eval["eval/ref_post_edit_logp"])
		}
	}

	// IPO at policy = reference: h = −1/(2β), loss 1/(4β²).
	cfg := testConfig(t, dir)
	cfg.Loss, cfg.Ref, cfg.Beta = LossIPO, refDir, 0.3
	cfg.MaxSteps, cfg.BatchSize, cfg.EvalGenerations = 1, 8, 0
	res, err := Train(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if want := 1 / (4 * 0.3 * 0.3); math.Abs(res.Train["loss"]-want) > 1e-4 {
		t.Errorf("ipo step 1: loss %v, want 1/(4β²) = %v", res.Train["loss"], want)
	}

	// Shards scored by some other model are refused.
	meta.RefModel = strings.Repeat("ab", 32)
	other := t.TempDir()
	writeDataset(t, other, meta, rows, 1)
	cfg = testConfig(t, other)
	cfg.Ref = refDir
	if _, err := Train(context.Background(), cfg); err == nil || !strings.Contains(err.Error(), "scored with model") {
		t.Errorf("shards scored by another model: %v", err)
	}
}

// The paper's Figure 4 in miniature: from the same SFT reference, on
// low-distance pairs, DPO lowers the log-probs of the chosen tokens after the
// edit while DPOP keeps them at the reference's level or above. (Short run; the
// lead's end-to-end run shows the full effect.)
func TestDPOLowersChosenLogpsDPOPDoesNot(t *testing.T) {
	refDir, data, _ := sftReference(t)
	post := map[string]float64{}
	var refPost float64
	for _, loss := range []string{LossDPO, LossDPOP} {
		cfg := testConfig(t, data)
		cfg.Loss, cfg.Ref, cfg.ComputeRef = loss, refDir, true
		cfg.MaxSteps, cfg.BatchSize, cfg.LearningRate = 40, 8, 1e-3
		cfg.EvalPairs, cfg.EvalGenerations = 48, 0
		res, err := Train(context.Background(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		post[loss] = res.Eval["eval/post_edit_logp"]
		refPost = res.Eval["eval/ref_post_edit_logp"]
		t.Logf("%s: eval post-edit logp %.3f (reference %.3f), logps/chosen %.2f, reward accuracy %.2f",
			loss, post[loss], refPost, res.Train["logps/chosen"], res.Eval["eval/rewards/accuracies"])
	}
	if post[LossDPOP] < refPost-0.02 {
		t.Errorf("DPOP lowered post-edit logp: %.3f from reference %.3f", post[LossDPOP], refPost)
	}
	if post[LossDPO] > post[LossDPOP]-0.05 {
		t.Errorf("DPO post-edit logp %.3f not below DPOP's %.3f", post[LossDPO], post[LossDPOP])
	}
}

func TestEvalHelpers(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"3+4=7. The answer is 7.", "7"},
		{"The answer is 5. Wait. The answer is 12", "12"},
		{"  B  ", "B"},
		{"The answer is  C .", "C"},
	} {
		if got := FinalAnswer(c.in); got != c.want {
			t.Errorf("FinalAnswer(%q) = %q, want %q", c.in, got, c.want)
		}
	}
	r := schemas.Row{Chosen: "2+2=4. The answer is 4.", Extra: `{"answer":"4"}`}
	if !AnswerCorrect("2+2=4. The answer is 4.", &r) || AnswerCorrect("2+2=5. The answer is 5.", &r) {
		t.Error("AnswerCorrect on the extra answer")
	}
	arc := schemas.Row{Chosen: " D) aphid", Extra: `{"answer":"D","kind":"arc"}`}
	if !AnswerCorrect(" D) aphid", &arc) || !AnswerCorrect(" D) aph", &arc) || AnswerCorrect(" A) hen", &arc) || AnswerCorrect(" DD", &arc) {
		t.Error("AnswerCorrect on a multiple-choice pair whose answer is a letter")
	}
	if got := ExpectedAnswer(&schemas.Row{Chosen: "x. The answer is 9."}); got != "9" {
		t.Errorf("expected answer from chosen text: %q", got)
	}
	if got := ExpectedAnswer(&schemas.Row{Extra: `{"answer": 12}`}); got != "12" {
		t.Errorf("numeric extra answer: %q", got)
	}

	lp := []float32{-1, -2, -3, -4}
	if s, n := PostEditLogp(lp, 1); s != -9 || n != 3 {
		t.Errorf("PostEditLogp = %v, %d", s, n)
	}
	if s, n := PreEditLogp(lp, 1); s != -1 || n != 1 {
		t.Errorf("PreEditLogp = %v, %d", s, n)
	}
	rows := []*schemas.Row{{LowDistance: true, FirstDiff: 2}, {LowDistance: true, FirstDiff: 0}, {LowDistance: false}}
	e := MeasureEditLogps(rows, [][]float32{{-1, -1, -4, -2}, {-0.5, -0.5}, {-6, -2}})
	// Post-edit tokens pooled: (−4 −2 −0.5 −0.5)/4; pre-edit (−1 −1)/2; high (−6 −2)/2.
	if e.PostEdit != -1.75 || e.NPostEdit != 4 || e.PreEdit != -1 || e.HighDistance != -4 {
		t.Errorf("MeasureEditLogps = %+v", e)
	}
}

// Two accumulated micro-batches of 4 pairs give the gradient of one batch of 8
// (the batch loss is a mean over pairs, and each micro-batch is scaled by ½).
func TestGradientAccumulationMatchesOneBatch(t *testing.T) {
	m, err := gpt.New(gpt.Config{VocabSize: testVocab, NPositions: 48, NEmbd: 16, NLayer: 1, NHead: 2, LayerNormEpsilon: 1e-5}, 3)
	if err != nil {
		t.Fatal(err)
	}
	rows := mathRows(8, 4, 0)
	ex := make([]Example, len(rows))
	for i := range rows {
		ex[i] = MakeExample(&rows[i], 48)
	}
	refModel, _ := gpt.New(m.Config(), 4) // a different model, so the policy is off the kink
	refs := &refSums{model: refModel, compute: true, cache: map[*schemas.Row][2]float64{}}
	obj, _ := NewObjective(LossDPOP, 0.3, 50)
	grads := func(batches ...[]Example) []float32 {
		m.ZeroGrad()
		for _, b := range batches {
			if _, _, err := forwardBackward(m, obj, refs, b, 1/float64(len(batches))); err != nil {
				t.Fatal(err)
			}
		}
		var out []float32
		for _, p := range m.Params() {
			out = append(out, p.Grad...)
		}
		return out
	}
	one, two := grads(ex), grads(ex[:4], ex[4:])
	var maxDiff, maxAbs float64
	for i := range one {
		maxDiff = math.Max(maxDiff, math.Abs(float64(one[i]-two[i])))
		maxAbs = math.Max(maxAbs, math.Abs(float64(one[i])))
	}
	if maxAbs == 0 || maxDiff > 1e-4*maxAbs {
		t.Errorf("accumulated gradient differs from the one-batch gradient by %g (largest entry %g)", maxDiff, maxAbs)
	}
}
