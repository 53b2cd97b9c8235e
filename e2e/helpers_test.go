package e2e

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus"

	"github.com/holdfast-dev/holdfast/emulator"
	"github.com/holdfast-dev/holdfast/emulator/broker"
	"github.com/holdfast-dev/holdfast/internal/devhost"
	"github.com/holdfast-dev/holdfast/internal/testenv"
)

// stageApp builds a script root like `make build`: host.json, the function folders and the
// handler, plus local.settings.json with values.
func stageApp(t *testing.T, values map[string]string) string {
	t.Helper()
	return stageAppFrom(t, "..", handlerBin, values)
}

// stageAppFrom is stageApp for the app whose host.json and functions/ are in dir, with the handler binary bin.
func stageAppFrom(t *testing.T, dir, bin string, values map[string]string) string {
	t.Helper()
	root := t.TempDir()
	copyFile(t, filepath.Join(dir, "host.json"), filepath.Join(root, "host.json"), 0o644)
	fns, err := filepath.Glob(filepath.Join(dir, "functions", "*", "function.json"))
	if err != nil || len(fns) == 0 {
		t.Fatalf("no function folders: %v", err)
	}
	for _, fn := range fns {
		copyFile(t, fn, filepath.Join(root, filepath.Base(filepath.Dir(fn)), "function.json"), 0o644)
	}
	copyFile(t, bin, filepath.Join(root, "handler"), 0o755)
	v := map[string]string{
		"FUNCTIONS_WORKER_RUNTIME": "custom",
		"ProcessQueueSchedule":     "0 0 0 1 1 *", // yearly: the tests fire the timer by hand
		"HOLDFAST_PROCESSOR":       "demo",
	}
	for k, x := range values {
		v[k] = x
	}
	b, _ := json.Marshal(map[string]any{"IsEncrypted": false, "Values": v})
	if err := os.WriteFile(filepath.Join(root, "local.settings.json"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	return root
}

func copyFile(t *testing.T, from, to string, mode os.FileMode) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(to), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, mode); err != nil {
		t.Fatal(err)
	}
}

// hermeticEnv is the handler's process environment: enough to run, nothing from the developer's
// shell that could shadow local.settings.json.
func hermeticEnv() []string {
	var env []string
	for _, k := range []string{"PATH", "HOME", "TMPDIR"} {
		if v, ok := os.LookupEnv(k); ok {
			env = append(env, k+"="+v)
		}
	}
	return env
}

// stack is the emulator with one queue, the dev host running the staged app, and an SDK client.
// Its fields are used by the test goroutine only.
type stack struct {
	srv    *emulator.Server
	queue  string
	root   string // the staged app; every dev host of the stack runs it
	client *azservicebus.Client

	// host and results belong to the dev host started last (see startHost).
	host    *devhost.Host
	results chan devhost.InvocationResult
}

const queue = "e2e-demo"

// shortLockQueue is the queue of the outcome tests: a 2 s lock (so long work needs renewals) and
// two deliveries before dead-lettering.
func shortLockQueue() broker.QueueProperties {
	p := broker.DefaultQueueProperties()
	p.LockDuration, p.MaxDeliveryCount = 2*time.Second, 2
	return p
}

// startStack starts the emulator with the queue `queue` (shortLockQueue), Azurite (shared), and the
// dev host with the real handler. Everything stops at test cleanup.
func startStack(t *testing.T, extra map[string]string) *stack {
	t.Helper()
	return startStackOn(t, queue, shortLockQueue(), extra)
}

// startStackOn is startStack with the queue's name and properties chosen by the caller. extra
// overrides or adds app settings.
func startStackOn(t *testing.T, name string, props broker.QueueProperties, extra map[string]string) *stack {
	t.Helper()
	return startStackStaged(t, name, props, extra, stageApp)
}

// startStackStaged is startStackOn with the app staged by stage (stageApp: the repository's own handler).
func startStackStaged(t *testing.T, name string, props broker.QueueProperties, extra map[string]string,
	stage func(*testing.T, map[string]string) string) *stack {
	t.Helper()
	srv, err := emulator.Start(&emulator.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	if err := srv.Broker().CreateQueue(name, props); err != nil {
		t.Fatal(err)
	}
	values := map[string]string{
		"ServiceBusConnection": srv.ConnectionString(),
		"HOLDFAST_ENTITY":      name,
		"DeferralStorage":      testenv.Azurite(t),
		"HOLDFAST_BATCH_SIZE":  "10",
		"HOLDFAST_CONCURRENCY": "4",
		"HOLDFAST_RUN_BUDGET":  "40s",
	}
	for k, v := range extra {
		values[k] = v
	}
	st := &stack{srv: srv, queue: name, root: stage(t, values)}
	st.startHost(t)
	c, err := azservicebus.NewClientFromConnectionString(srv.ConnectionString(), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(context.Background()) })
	st.client = c
	return st
}

// startHost starts a dev host, and with it a new handler process, on the stack's app. It replaces
// st.host and st.results; the host is closed at test cleanup unless stopHost closed it first.
func (st *stack) startHost(t *testing.T) {
	t.Helper()
	results := make(chan devhost.InvocationResult, 10)
	h, err := devhost.New(&devhost.Options{
		ScriptRoot:   st.root,
		Addr:         "127.0.0.1:0",
		Environ:      hermeticEnv(),
		Logger:       slog.New(slog.NewJSONHandler(testWriter{t}, nil)),
		DrainTimeout: 10 * time.Second,
		OnInvocation: func(r devhost.InvocationResult) { results <- r },
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	if err := h.Start(context.Background()); err != nil {
		t.Fatalf("dev host start: %v", err)
	}
	st.host, st.results = h, results
}

// stopHost closes the current dev host: it stops serving, the handler gets SIGTERM and is waited
// for. A failure recorded by the host fails the test.
func (st *stack) stopHost(t *testing.T) {
	t.Helper()
	if err := st.host.Close(); err != nil {
		t.Fatalf("dev host close: %v", err)
	}
}

// testWriter sends log lines to t.Log so they show only for failing tests.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

type summary struct {
	Received     int   `json:"received"`
	Completed    int   `json:"completed"`
	Abandoned    int   `json:"abandoned"`
	DeadLettered int   `json:"deadLettered"`
	Deferred     int   `json:"deferred"`
	Renewals     int   `json:"renewals"`
	LocksLost    int   `json:"locksLost"`
	Stuck        int   `json:"stuck"`
	Due          int   `json:"due"`
	DurationMs   int64 `json:"durationMs"`
}

// runTimer fires ProcessQueue through the host's admin endpoint, waits for the invocation to
// finish (or ctx to end) and returns the run's summary. Any failure of the invocation fails the test.
func (st *stack) runTimer(ctx context.Context, t *testing.T) (devhost.InvocationResult, summary) {
	t.Helper()
	status, body := st.call(t, http.MethodPost, "/admin/functions/ProcessQueue", `{"input":""}`)
	if status != http.StatusAccepted {
		t.Fatalf("admin status %d: %s", status, body)
	}
	var res devhost.InvocationResult
	select {
	case res = <-st.results:
	case <-ctx.Done():
		t.Fatal("timer invocation did not finish")
	}
	if res.Err != nil || res.StatusCode != 200 {
		t.Fatalf("invocation: status %d err %v", res.StatusCode, res.Err)
	}
	var sum summary
	if err := json.Unmarshal(res.ReturnValue, &sum); err != nil {
		t.Fatalf("ReturnValue %s: %v", res.ReturnValue, err)
	}
	t.Logf("ReturnValue %s", res.ReturnValue)
	return res, sum
}

// call sends one request to the dev host (path starts with "/"; body "" sends none) and returns
// the status and the whole response body.
func (st *stack) call(t *testing.T, method, path, body string) (int, []byte) {
	t.Helper()
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, "http://"+st.host.Addr()+path, r)
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading the body: %v", method, path, err)
	}
	return resp.StatusCode, b
}

// deadLettered peeks at (up to 100 of) the queue's dead-letter messages.
func (st *stack) deadLettered(ctx context.Context, t *testing.T) []*azservicebus.ReceivedMessage {
	t.Helper()
	dlq, err := st.client.NewReceiverForQueue(st.queue, &azservicebus.ReceiverOptions{SubQueue: azservicebus.SubQueueDeadLetter})
	if err != nil {
		t.Fatal(err)
	}
	defer dlq.Close(ctx)
	msgs, err := dlq.PeekMessages(ctx, 100, nil)
	if err != nil {
		t.Fatal(err)
	}
	return msgs
}
