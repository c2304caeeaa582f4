package runners

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"
	"time"

	"github.com/apache/beam/sdks/v2/go/pkg/beam/core"
)

// PrismBinaryEnv names an environment variable that, when set, is the path of a
// prebuilt standalone Prism binary; StartPrismJobServer then skips the build
// (for CI machines without a module cache, or to pin a different Prism).
const PrismBinaryEnv = "DPOPFLOW_PRISM_BIN"

// prismPackage is the main package of Beam's standalone Prism job server. It is
// built from the Beam module this binary was built against, so the job server
// and the SDK that submits to it speak the same protocol version.
const prismPackage = "github.com/apache/beam/sdks/v2/go/cmd/prism"

// How long to wait for a started job server to accept connections. Prism is
// up in well under a second; the margin is for a machine busy compiling.
const prismStartTimeout = 30 * time.Second

// prismIdleShutdown is a safety net: if the process that started the job server
// dies without calling stop (a test binary killed by -timeout), the orphaned
// server exits by itself once it has had no job for this long.
const prismIdleShutdown = 10 * time.Minute

var prismBuild struct {
	mu   sync.Mutex
	path string // set once a build (or the cache) succeeded in this process
}

// PrismBinary returns the path of a standalone Prism job server binary, building
// it on first use. Builds are cached in os.TempDir() under a name keyed by the
// Beam SDK version, Go version and platform, so repeated test runs (and several
// test binaries running at once) build it once: the build goes to a temporary
// name and is renamed into place, so a concurrent reader never sees half a file.
// Building needs the go command and the Beam module in the module cache, and
// runs from the current directory, which must lie inside this module (tests do).
func PrismBinary(ctx context.Context) (string, error) {
	if p := os.Getenv(PrismBinaryEnv); p != "" {
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("prism binary from $%s: %w", PrismBinaryEnv, err)
		}
		return p, nil
	}
	prismBuild.mu.Lock()
	defer prismBuild.mu.Unlock()
	if prismBuild.path != "" {
		return prismBuild.path, nil
	}
	dir := filepath.Join(os.TempDir(), fmt.Sprintf("dpopflow-prism-beam%s-%s-%s-%s",
		core.SdkVersion, runtime.Version(), runtime.GOOS, runtime.GOARCH))
	exe := "prism"
	if runtime.GOOS == "windows" {
		exe += ".exe"
	}
	path := filepath.Join(dir, exe)
	if fi, err := os.Stat(path); err == nil && fi.Mode().IsRegular() && fi.Size() > 0 {
		prismBuild.path = path
		return path, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("prism build cache directory: %w", err)
	}
	goCmd, err := exec.LookPath("go")
	if err != nil {
		return "", fmt.Errorf("build prism job server: no go command on PATH (or set $%s to a prism binary): %w", PrismBinaryEnv, err)
	}
	tmp, err := os.CreateTemp(dir, exe+".building-*")
	if err != nil {
		return "", fmt.Errorf("prism build: %w", err)
	}
	tmp.Close()
	defer os.Remove(tmp.Name()) // no-op once renamed
	cmd := exec.CommandContext(ctx, goCmd, "build", "-o", tmp.Name(), prismPackage)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("go build %s (beam %s): %w\n%s", prismPackage, core.SdkVersion, err, out.Bytes())
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return "", fmt.Errorf("install prism binary in cache: %w", err)
	}
	prismBuild.path = path
	return path, nil
}

// StartPrismJobServer starts Beam's standalone Prism job server on a free
// loopback port and waits until it accepts connections. Submit to it with
//
//	--runner=universal --endpoint=<endpoint> --environment_type=LOOPBACK
//
// (the same portable path a Flink or Spark job server takes; the caller must
// link the universal runner, which this package does). LOOPBACK matters: the
// default environment, DOCKER, tries to build and start a container.
//
// ctx bounds the build and the start-up only; the server lives until stop is
// called. stop kills the process and waits for it; it is safe to call more
// than once. Tests should call it from t.Cleanup.
func StartPrismJobServer(ctx context.Context) (endpoint string, stop func(), err error) {
	bin, err := PrismBinary(ctx)
	if err != nil {
		return "", nil, err
	}
	// The free port is found by binding and releasing it, so another process
	// can take it in between; that race shows up as an early exit, and a
	// second port is tried.
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		endpoint, stop, err := startPrism(ctx, bin)
		if err == nil {
			return endpoint, stop, nil
		}
		lastErr = err
		if ctx.Err() != nil || !errors.Is(err, errExitedEarly) {
			break
		}
	}
	return "", nil, lastErr
}

var errExitedEarly = errors.New("prism job server exited during start-up")

func startPrism(ctx context.Context, bin string) (string, func(), error) {
	port, err := freePort()
	if err != nil {
		return "", nil, err
	}
	cmd := exec.Command(bin,
		"--job_port="+strconv.Itoa(port),
		// No web UI: its fixed default port (8074) would collide between
		// servers started in parallel.
		"--serve_http=false",
		"--idle_shutdown_timeout="+prismIdleShutdown.String(),
		"--log_level=warn",
	)
	logs := &tailBuffer{max: 64 << 10}
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		return "", nil, fmt.Errorf("start prism job server %s: %w", bin, err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			_ = cmd.Process.Kill()
			<-exited
		})
	}

	endpoint := net.JoinHostPort("localhost", strconv.Itoa(port))
	deadline := time.Now().Add(prismStartTimeout)
	for {
		conn, err := net.DialTimeout("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), time.Second)
		if err == nil {
			conn.Close()
			return endpoint, stop, nil
		}
		select {
		case werr := <-exited:
			exited <- werr // let stop's receive return
			return "", nil, fmt.Errorf("%w on port %d (%v); its output:\n%s", errExitedEarly, port, werr, logs.String())
		case <-ctx.Done():
			stop()
			return "", nil, fmt.Errorf("waiting for prism job server on port %d: %w; its output:\n%s", port, ctx.Err(), logs.String())
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			stop()
			return "", nil, fmt.Errorf("prism job server did not accept connections on port %d within %v; its output:\n%s",
				port, prismStartTimeout, logs.String())
		}
	}
}

// freePort asks the kernel for an unused TCP port on the loopback interface.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port for the prism job server: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// tailBuffer keeps the last max bytes written to it, safely for the concurrent
// writes exec makes from the child's stdout and stderr.
type tailBuffer struct {
	mu  sync.Mutex
	buf []byte
	max int
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if over := len(t.buf) - t.max; over > 0 {
		t.buf = append(t.buf[:0], t.buf[over:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.buf)
}
