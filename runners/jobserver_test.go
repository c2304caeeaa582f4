package runners

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/apache/beam/sdks/v2/go/pkg/beam"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/io/textio"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/options/jobopts"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/register"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/testing/ptest"
)

func TestMain(m *testing.M) {
	ptest.MainWithDefault(m, "prism")
}

// shout is a registered DoFn, so the portable path must serialize it by name
// and run it in a worker (here the test process, via LOOPBACK).
func shout(s string) string { return strings.ToUpper(s) + "!" }

func init() {
	register.Function1x1(shout)
}

// usePortable points Beam's job flags at endpoint with a LOOPBACK environment
// for the rest of the test, restoring them afterwards.
func usePortable(t *testing.T, endpoint string) {
	t.Helper()
	oldEnd, oldEnv := *jobopts.Endpoint, *jobopts.EnvironmentType
	*jobopts.Endpoint, *jobopts.EnvironmentType = endpoint, "LOOPBACK"
	t.Cleanup(func() { *jobopts.Endpoint, *jobopts.EnvironmentType = oldEnd, oldEnv })
}

func TestPrismJobServerRunsAPipeline(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	endpoint, stop, err := StartPrismJobServer(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(stop)
	if !strings.HasPrefix(endpoint, "localhost:") {
		t.Errorf("endpoint %q, want localhost:PORT", endpoint)
	}
	usePortable(t, endpoint)

	out := filepath.Join(t.TempDir(), "out.txt")
	p, s := beam.NewPipelineWithRoot()
	words := beam.Create(s, "dpo", "positive", "smaug")
	textio.Write(s, out, beam.ParDo(s, shout, words))
	if _, err := beam.Run(ctx, "universal", p); err != nil {
		t.Fatalf("run on prism job server %s: %v", endpoint, err)
	}

	data, err := os.ReadFile(out)
	if err != nil {
		t.Fatalf("pipeline output: %v", err)
	}
	got := strings.Fields(string(data))
	slices.Sort(got)
	want := []string{"DPO!", "POSITIVE!", "SMAUG!"}
	if !slices.Equal(got, want) {
		t.Errorf("output lines %q, want %q", got, want)
	}

	// After stop the port is closed: nothing is left running.
	stop()
	stop() // idempotent
	if conn, err := net.DialTimeout("tcp", strings.Replace(endpoint, "localhost", "127.0.0.1", 1), time.Second); err == nil {
		conn.Close()
		t.Errorf("job server still accepts connections on %s after stop", endpoint)
	}
}

func TestPrismJobServerTwoAtOnce(t *testing.T) {
	// Tests in different packages start servers concurrently; they must get
	// distinct ports and share one cached binary.
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	a, stopA, err := StartPrismJobServer(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(stopA)
	b, stopB, err := StartPrismJobServer(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(stopB)
	if a == b {
		t.Fatalf("two job servers on one endpoint %s", a)
	}
}

func TestPrismBinaryFromEnvMustExist(t *testing.T) {
	t.Setenv(PrismBinaryEnv, filepath.Join(t.TempDir(), "no-such-prism"))
	_, _, err := StartPrismJobServer(context.Background())
	if err == nil || !strings.Contains(err.Error(), PrismBinaryEnv) {
		t.Fatalf("err = %v, want one naming $%s", err, PrismBinaryEnv)
	}
}
