// Package testenv starts the local services holdfast's integration tests run against. Today that is Azurite's
// Table Storage server, installed from npm (package.json pins the version; run `npm ci` at the repository root).
//
// Tests call Azurite(t) for a connection string. One Azurite process serves every test of a test binary when
// the package's TestMain runs through Main; without it, each caller gets its own process, stopped in t.Cleanup.
// Setting HOLDFAST_TEST_TABLES to a full Table Storage connection string makes every helper return it instead
// of starting anything.
package testenv

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// EnvTables names the environment variable that, when set to a full Table Storage connection string, replaces
// the local Azurite.
const EnvTables = "HOLDFAST_TEST_TABLES"

// devAccountKey is Azurite's well-known development account key (published in Azurite's and the SDK's
// documentation; it is not a secret).
const devAccountKey = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="

// azuriteBin is the Azurite Table server's path relative to the repository root.
var azuriteBin = filepath.Join("node_modules", ".bin", "azurite-table")

const (
	startTimeout  = 30 * time.Second
	startAttempts = 3
	pollInterval  = 50 * time.Millisecond
)

// shared is the one Azurite of a test binary whose TestMain runs through Main. mainActive is set by Main
// before any test runs and read by tests afterwards; once and the fields it fills are guarded by mu.
var shared struct {
	mu         sync.Mutex
	mainActive bool
	once       sync.Once
	conn       string
	stop       func()
	err        error
}

// TablesConnectionString returns the full Table Storage connection string for an Azurite-style endpoint at
// addr ("host:port"), using the development account.
func TablesConnectionString(addr string) string {
	return "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=" + devAccountKey +
		";TableEndpoint=http://" + addr + "/devstoreaccount1;"
}

// ClosedPortTables returns a connection string to a Table endpoint on 127.0.0.1 where nothing listens, for
// tests of "table storage unavailable". The port was free when the call returned.
func ClosedPortTables() string {
	port, err := freePort()
	if err != nil {
		// Port 1 is privileged and unused on test machines: connections are refused.
		port = 1
	}
	return TablesConnectionString(net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
}

// Azurite returns a connection string to a running Table Storage endpoint: $HOLDFAST_TEST_TABLES when set, the
// shared Azurite of the test binary when TestMain uses Main, or else a fresh Azurite stopped in t.Cleanup.
// It fails the test (never skips) when Azurite cannot start, e.g. because `npm ci` was not run.
func Azurite(t testing.TB) string {
	t.Helper()
	if conn := os.Getenv(EnvTables); conn != "" {
		return conn
	}
	shared.mu.Lock()
	defer shared.mu.Unlock()
	if shared.mainActive {
		shared.once.Do(func() { shared.conn, shared.stop, shared.err = StartAzurite() })
		if shared.err != nil {
			t.Fatalf("testenv: %v", shared.err)
		}
		return shared.conn
	}
	conn, stop, err := StartAzurite()
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	t.Cleanup(stop)
	return conn
}

// Main runs m with one Azurite shared by all tests that call Azurite, stops it afterwards, and returns m's exit
// code. Use it as `func TestMain(m *testing.M) { os.Exit(testenv.Main(m)) }`. Azurite starts lazily, on the
// first call to Azurite, so binaries whose selected tests do not need it never start it.
func Main(m *testing.M) int {
	shared.mu.Lock()
	shared.mainActive = true
	shared.mu.Unlock()

	code := m.Run()

	shared.mu.Lock()
	defer shared.mu.Unlock()
	if shared.stop != nil {
		shared.stop()
		shared.stop = nil
	}
	return code
}

// StartAzurite starts a private Azurite Table server on a free 127.0.0.1 port with in-memory persistence and
// waits until it accepts connections. The caller owns it: stop kills its process group, waits for it and
// removes its workspace; stop is safe to call more than once. If HOLDFAST_TEST_TABLES is set, StartAzurite
// returns it and a no-op stop.
func StartAzurite() (conn string, stop func(), err error) {
	if conn := os.Getenv(EnvTables); conn != "" {
		return conn, func() {}, nil
	}
	bin, err := findAzurite()
	if err != nil {
		return "", nil, err
	}
	var errs []error
	for range startAttempts {
		conn, stop, err := startOnce(bin)
		if err == nil {
			return conn, stop, nil
		}
		// The most likely cause is a port taken between freePort and Azurite's listen; try another.
		errs = append(errs, err)
	}
	return "", nil, fmt.Errorf("start azurite: %w", errors.Join(errs...))
}

// startOnce runs one Azurite process and waits for it to listen or exit.
func startOnce(bin string) (string, func(), error) {
	port, err := freePort()
	if err != nil {
		return "", nil, err
	}
	workspace, err := os.MkdirTemp("", "holdfast-azurite-")
	if err != nil {
		return "", nil, fmt.Errorf("azurite workspace: %w", err)
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	cmd := exec.Command(bin,
		"--tableHost", "127.0.0.1", "--tablePort", strconv.Itoa(port),
		"--disableTelemetry", "--inMemoryPersistence", "--skipApiVersionCheck", "--silent")
	cmd.Dir = workspace           // Azurite writes nothing with in-memory persistence; if it ever does, it lands here.
	out := &tailBuffer{max: 4096} // kept for the error if Azurite fails to start
	cmd.Stdout, cmd.Stderr = out, out
	setProcessGroup(cmd)
	if err := cmd.Start(); err != nil {
		_ = os.RemoveAll(workspace)
		return "", nil, fmt.Errorf("run %s: %w", bin, err)
	}

	// exited is closed by the waiter goroutine, which owns cmd.Wait; stop joins it through exited.
	exited := make(chan struct{})
	var waitErr error
	go func() {
		waitErr = cmd.Wait()
		close(exited)
	}()
	var stopOnce sync.Once
	stop := func() {
		stopOnce.Do(func() {
			killProcessGroup(cmd)
			<-exited
			_ = os.RemoveAll(workspace)
		})
	}

	if err := awaitListening(addr, exited, startTimeout); err != nil {
		stop()
		if waitErr != nil {
			err = fmt.Errorf("%w (process: %v)", err, waitErr)
		}
		if o := out.String(); o != "" {
			err = fmt.Errorf("%w; output: %s", err, o)
		}
		return "", nil, err
	}
	return TablesConnectionString(addr), stop, nil
}

// awaitListening dials addr until it accepts a connection, the process exits, or timeout passes.
func awaitListening(addr string, exited <-chan struct{}, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(pollInterval)
	defer tick.Stop()
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			_ = c.Close()
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("azurite did not listen on %s within %v: %w", addr, timeout, err)
		}
		select {
		case <-exited:
			return fmt.Errorf("azurite exited before listening on %s", addr)
		case <-tick.C:
		}
	}
}

// freePort returns a TCP port on 127.0.0.1 that was free at the time of the call.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// findAzurite returns the Azurite Table server: node_modules/.bin/azurite-table in the working directory or
// the nearest directory above it that has one (a module nested in the repository, such as an example, finds
// the repository's), else azurite-table on PATH.
func findAzurite() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("find azurite: %w", err)
	}
	for d := dir; ; {
		bin := filepath.Join(d, azuriteBin)
		if _, err := os.Stat(bin); err == nil {
			return bin, nil
		}
		parent := filepath.Dir(d)
		if parent == d {
			break
		}
		d = parent
	}
	if bin, err := exec.LookPath(filepath.Base(azuriteBin)); err == nil {
		return bin, nil
	}
	root, err := RepoRoot()
	if err != nil {
		root = dir
	}
	return "", fmt.Errorf("azurite not installed: no %s at or above %s and no %s on PATH (run `npm ci` in %s): %w",
		azuriteBin, dir, filepath.Base(azuriteBin), root, os.ErrNotExist)
}

// RepoRoot returns the repository root: the nearest directory at or above the working directory holding go.mod.
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("find repository root: %w", err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("find repository root: no go.mod at or above the working directory")
		}
		dir = parent
	}
}

// tailBuffer keeps the last max bytes written to it. Written by exec's copying goroutines, read after the
// process exited; mu guards b.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	b   []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, p...)
	if len(t.b) > t.max {
		t.b = t.b[len(t.b)-t.max:]
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return strings.TrimSpace(string(t.b))
}
