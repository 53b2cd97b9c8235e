package holdfast

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus"

	"github.com/holdfast-dev/holdfast/emulator/broker"
	"github.com/holdfast-dev/holdfast/internal/testenv"
	"github.com/holdfast-dev/holdfast/processor"
)

// testOptions reads the settings from vars and host.json from dir, and captures stdout and stderr.
func testOptions(vars map[string]string, dir string) (*Options, *testenv.Buffer, *testenv.Buffer) {
	out, errOut := &testenv.Buffer{}, &testenv.Buffer{}
	return &Options{Getenv: func(k string) string { return vars[k] }, Dir: dir, Stdout: out, Stderr: errOut}, out, errOut
}

// invocation is the custom-handler answer to a timer invocation.
type invocation struct {
	Outputs     map[string]any
	Logs        []string
	ReturnValue map[string]float64
}

// fireTimer posts a ProcessQueue timer invocation, as the host does, and returns the answer; anything but a
// 200 with a JSON envelope fails the test.
func fireTimer(t *testing.T, addr string, out *testenv.Buffer) invocation {
	t.Helper()
	resp, err := http.Post("http://"+addr+"/ProcessQueue", "application/json",
		strings.NewReader(`{"Data":{"timer":{"Schedule":{"AdjustForDST":true},"ScheduleStatus":null,"IsPastDue":false}},"Metadata":{}}`))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var got invocation
	if err := json.NewDecoder(resp.Body).Decode(&got); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d, decode %v; log %s", resp.StatusCode, err, out)
	}
	return got
}

// serveHandler runs the handler with o until the test ends, then stops it and checks it returned nil. It
// returns the handler's address.
func serveHandler(t *testing.T, o *Options, out *testenv.Buffer) string {
	t.Helper()
	addrc := make(chan string, 1)
	o.Ready = func(a string) { addrc <- a }
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Run(ctx, o) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	select {
	case addr := <-addrc:
		return addr
	case err := <-done:
		done <- err // for the cleanup
		t.Fatalf("Run returned before listening: %v\n%s", err, out)
		return ""
	}
}

func TestBadConfigExitsNamingTheSetting(t *testing.T) {
	tests := []struct {
		name     string
		vars     map[string]string
		hostJSON string
		setting  string
	}{
		{"no connection", map[string]string{"HOLDFAST_ENTITY": "q"}, "", "ServiceBusConnection"},
		{"bad batch", map[string]string{"ServiceBusConnection": sbConn, "HOLDFAST_ENTITY": "q", "HOLDFAST_BATCH_SIZE": "many"}, "", "HOLDFAST_BATCH_SIZE"},
		{"budget vs host.json", map[string]string{"ServiceBusConnection": sbConn, "HOLDFAST_ENTITY": "q", "HOLDFAST_RUN_BUDGET": "3m"},
			`{"functionTimeout":"00:02:00"}`, "HOLDFAST_RUN_BUDGET"},
		{"bad host.json", map[string]string{"ServiceBusConnection": sbConn, "HOLDFAST_ENTITY": "q"}, `{"functionTimeout":"soon"}`, "functionTimeout"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			if tt.hostJSON != "" {
				if err := os.WriteFile(filepath.Join(dir, "host.json"), []byte(tt.hostJSON), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			o, out, errOut := testOptions(tt.vars, dir)
			err := Run(context.Background(), o)
			if code := ExitCode(err); code != ExitConfig || !errors.Is(err, ErrConfig) {
				t.Fatalf("exit code %d (%v), want %d", code, err, ExitConfig)
			}
			lines := strings.Split(strings.TrimSpace(errOut.String()), "\n")
			if len(lines) != 1 || !strings.Contains(lines[0], tt.setting) {
				t.Fatalf("stderr %q: want one line naming %s", errOut, tt.setting)
			}
			var rec map[string]any
			if err := json.Unmarshal([]byte(strings.Split(out.String(), "\n")[0]), &rec); err != nil || rec["level"] != "ERROR" {
				t.Fatalf("stdout is not a JSON error log: %q (%v)", out, err)
			}
		})
	}
}

const sbConn = "Endpoint=sb://127.0.0.1:1/;SharedAccessKeyName=k;SharedAccessKey=dg==;UseDevelopmentEmulator=true"

func TestServesAndShutsDown(t *testing.T) {
	vars := map[string]string{"ServiceBusConnection": sbConn, "HOLDFAST_ENTITY": "q", "FUNCTIONS_CUSTOMHANDLER_PORT": "0"}
	o, out, errOut := testOptions(vars, t.TempDir())
	addrc := make(chan string, 1)
	o.Ready = func(a string) { addrc <- a }
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	start := time.Now()
	go func() { done <- Run(ctx, o) }()

	var addr string
	select {
	case addr = <-addrc:
	case err := <-done:
		t.Fatalf("exited: %v: %s %s", err, out, errOut)
	}
	if el := time.Since(start); el > 2*time.Second {
		t.Errorf("listening took %v", el)
	}
	resp, err := http.Get("http://" + addr + "/api/deferred")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotImplemented {
		t.Fatalf("GET /api/deferred: %d", resp.StatusCode)
	}
	resp, err = http.Post("http://"+addr+"/ProcessQueue", "application/json", strings.NewReader("{"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("malformed envelope: %d", resp.StatusCode)
	}

	cancel()
	select {
	case err := <-done:
		if err != nil || ExitCode(err) != ExitOK {
			t.Fatalf("Run: %v; stdout %s", err, out)
		}
	case <-time.After(40 * time.Second):
		t.Fatal("no shutdown")
	}
	if errOut.String() != "" {
		t.Errorf("stderr not empty: %q", errOut)
	}
	for _, line := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		if !json.Valid([]byte(line)) {
			t.Errorf("stdout line is not JSON: %q", line)
		}
	}
	if !strings.Contains(out.String(), `"msg":"stopped"`) {
		t.Errorf("no stop log: %s", out)
	}
}

func TestProcessQueueAgainstEmulator(t *testing.T) {
	srv, client := startOrdersQueue(t, func(p *broker.QueueProperties) {
		p.LockDuration, p.MaxDeliveryCount = 2*time.Second, 2
	})
	sender, err := client.NewSender("orders", nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, body := range []string{`{"workSeconds":0.1}`, `{}`, `{"outcome":"fail"}`, `{"outcome":"deadletter"}`, `not json`} {
		if err := sender.SendMessage(context.Background(), &azservicebus.Message{Body: []byte(body)}, nil); err != nil {
			t.Fatal(err)
		}
	}
	sender.Close(context.Background())

	vars := map[string]string{"ServiceBusConnection": srv.ConnectionString(), "HOLDFAST_ENTITY": "orders",
		"HOLDFAST_RUN_BUDGET": "20s", "FUNCTIONS_CUSTOMHANDLER_PORT": "0"}
	o, out, _ := testOptions(vars, t.TempDir())
	addr := serveHandler(t, o, out)

	got := fireTimer(t, addr, out)
	// The failing message is abandoned, redelivered at once and abandoned again, until the queue's
	// MaxDeliveryCount (2) moves it to the dead-letter queue.
	want := map[string]float64{"received": 6, "completed": 2, "deadLettered": 2, "abandoned": 2, "deferred": 0, "locksLost": 0}
	for k, v := range want {
		if got.ReturnValue[k] != v {
			t.Errorf("%s = %v, want %v (ReturnValue %v)\n%s", k, got.ReturnValue[k], v, got.ReturnValue, out)
		}
	}
	if len(got.Logs) == 0 || got.Outputs == nil {
		t.Errorf("envelope %+v", got)
	}
}

func TestShutdownAbandonsTheRunInProgress(t *testing.T) {
	const lockDuration = 10 * time.Second
	srv, client := startOrdersQueue(t, func(p *broker.QueueProperties) {
		p.LockDuration = lockDuration
	})
	sender, err := client.NewSender("orders", nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := sender.SendMessage(context.Background(), &azservicebus.Message{Body: []byte(`{"workSeconds":120}`)}, nil); err != nil {
		t.Fatal(err)
	}
	sender.Close(context.Background())
	entity, err := srv.Broker().Entity("orders")
	if err != nil {
		t.Fatal(err)
	}

	vars := map[string]string{"ServiceBusConnection": srv.ConnectionString(), "HOLDFAST_ENTITY": "orders", "FUNCTIONS_CUSTOMHANDLER_PORT": "0"}
	o, out, _ := testOptions(vars, t.TempDir())
	// The processor tells when it holds the message, then works until the shutdown cancels it.
	started := make(chan struct{}, 1)
	o.Processor = processor.Func(func(ctx context.Context, m *azservicebus.ReceivedMessage) processor.Outcome {
		started <- struct{}{}
		<-ctx.Done()
		return processor.Abandon(context.Cause(ctx))
	})
	addrc := make(chan string, 1)
	o.Ready = func(a string) { addrc <- a }
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- Run(ctx, o) }()
	addr := <-addrc

	type result struct {
		status int
		body   map[string]any
		err    error
	}
	resc := make(chan result, 1)
	go func() {
		resp, err := http.Post("http://"+addr+"/ProcessQueue", "application/json", strings.NewReader(`{"Data":{"timer":{}}}`))
		if err != nil {
			resc <- result{err: err}
			return
		}
		defer resp.Body.Close()
		var r result
		r.status = resp.StatusCode
		r.err = json.NewDecoder(resp.Body).Decode(&r.body)
		resc <- r
	}()
	// Wait until the run holds the message, then stop the handler as the host would (SIGTERM).
	select {
	case <-started:
	case <-time.After(20 * time.Second):
		t.Fatalf("message never received; log %s", out)
	}
	stopRun(t, cancel, done)
	r := <-resc
	if r.err != nil || r.status != http.StatusOK {
		t.Fatalf("invocation: %d %v", r.status, r.err)
	}
	if rv, _ := r.body["ReturnValue"].(map[string]any); rv["abandoned"] != float64(1) || rv["completed"] != float64(0) {
		t.Fatalf("ReturnValue %v", r.body["ReturnValue"])
	}
	// The emulator processes the receiver's detach asynchronously; wait for it, but well within the lock
	// duration so that an expired lock cannot pass for an abandon.
	for deadline := time.Now().Add(lockDuration / 2); entity.Stats().Locked != 0; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("after shutdown: %+v, want the message unlocked", entity.Stats())
		}
	}
	if st := entity.Stats(); st.Active != 1 || st.Counters.Abandoned != 1 {
		t.Fatalf("after shutdown: %+v, want the message abandoned once and active", st)
	}
}

// TestCustomProcessorIgnoresTheSetting: with Options.Processor set (what holdfast.Main(p) does), the run uses
// that processor, HOLDFAST_PROCESSOR is not validated (here it names a processor that needs settings that are
// absent) and a start-up log line says it is ignored.
func TestCustomProcessorIgnoresTheSetting(t *testing.T) {
	srv, client := startOrdersQueue(t, func(p *broker.QueueProperties) { p.LockDuration = 2 * time.Second })
	sender, err := client.NewSender("orders", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer sender.Close(context.Background())
	if err := sender.SendMessage(context.Background(), &azservicebus.Message{Body: []byte("not a demo body")}, nil); err != nil {
		t.Fatal(err)
	}
	var seen atomic.Int32
	p := processor.Func(func(ctx context.Context, m *azservicebus.ReceivedMessage) processor.Outcome {
		seen.Add(1)
		return processor.Complete()
	})
	vars := map[string]string{"ServiceBusConnection": srv.ConnectionString(), "HOLDFAST_ENTITY": "orders",
		"HOLDFAST_PROCESSOR": "no-such-processor", "HOLDFAST_RUN_BUDGET": "20s", "FUNCTIONS_CUSTOMHANDLER_PORT": "0"}
	o, out, _ := testOptions(vars, t.TempDir())
	o.Processor = p
	addr := serveHandler(t, o, out)

	if got := fireTimer(t, addr, out); got.ReturnValue["completed"] != 1 || seen.Load() != 1 {
		t.Fatalf("ReturnValue %v, processor calls %d\n%s", got.ReturnValue, seen.Load(), out)
	}
	if !strings.Contains(out.String(), `"setting":"HOLDFAST_PROCESSOR","value":"no-such-processor"`) ||
		!strings.Contains(out.String(), `"processor":"custom"`) {
		t.Fatalf("no start-up line about the ignored setting:\n%s", out)
	}
}
