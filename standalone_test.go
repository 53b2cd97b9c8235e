package holdfast

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus"

	"github.com/holdfast-dev/holdfast/emulator"
	"github.com/holdfast-dev/holdfast/emulator/broker"
	"github.com/holdfast-dev/holdfast/internal/testenv"
	"github.com/holdfast-dev/holdfast/processor"
)

func TestParseArgs(t *testing.T) {
	for args, want := range map[string]Mode{"": ModeHandler, "run-once": ModeRunOnce, "worker": ModeWorker, "serve": ModeServe} {
		got, err := ParseArgs(strings.Fields(args))
		if err != nil || got != want {
			t.Errorf("ParseArgs(%q) = %q, %v; want %q", args, got, err, want)
		}
	}
	for _, args := range []string{"bogus", "handler", "run-once worker", "--help", "Worker"} {
		if m, err := ParseArgs(strings.Fields(args)); !errors.Is(err, ErrUsage) {
			t.Errorf("ParseArgs(%q) = %q, %v; want ErrUsage", args, m, err)
		}
	}
	if err := Run(context.Background(), &Options{Mode: "bogus", Getenv: func(string) string { return "" }, Stdout: &testenv.Buffer{}, Stderr: &testenv.Buffer{}}); ExitCode(err) != ExitConfig {
		t.Errorf("Run with an unknown mode: %v", err)
	}
}

// sendBodies sends one message per body to the queue "orders".
func sendBodies(t *testing.T, client *azservicebus.Client, bodies ...string) {
	t.Helper()
	sender, err := client.NewSender("orders", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer sender.Close(context.Background())
	for _, b := range bodies {
		if err := sender.SendMessage(context.Background(), &azservicebus.Message{Body: []byte(b)}, nil); err != nil {
			t.Fatal(err)
		}
	}
}

// runOnceResult runs ModeRunOnce and returns Run's error and the last stdout line, decoded; every stdout line
// must be JSON.
func runOnceResult(t *testing.T, srv *emulator.Server, extra map[string]string) (error, RunResult, *testenv.Buffer) {
	t.Helper()
	vars := map[string]string{"ServiceBusConnection": srv.ConnectionString(), "HOLDFAST_ENTITY": "orders", "HOLDFAST_RUN_BUDGET": "20s"}
	for k, v := range extra {
		vars[k] = v
	}
	o, out, errOut := testOptions(vars, t.TempDir())
	o.Mode, o.NoMessageWait = ModeRunOnce, 300*time.Millisecond
	err := Run(context.Background(), o)
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	for _, l := range lines {
		if !json.Valid([]byte(l)) {
			t.Errorf("stdout line is not JSON: %q", l)
		}
	}
	var res RunResult
	if jerr := json.Unmarshal([]byte(lines[len(lines)-1]), &res); jerr != nil {
		t.Fatalf("last stdout line %q: %v", lines[len(lines)-1], jerr)
	}
	if errOut.String() != "" {
		t.Errorf("stderr: %q", errOut)
	}
	return err, res, out
}

// run-once: one run, the result as the last stdout line, and an exit code for each way a run ends — nothing
// lost, messages abandoned, a lock lost, the run failed — each checked against the emulator's own counts.
func TestRunOnceExitCodes(t *testing.T) {
	t.Run("ok", func(t *testing.T) {
		srv, client := startOrdersQueue(t, func(p *broker.QueueProperties) { p.LockDuration = 2 * time.Second })
		sendBodies(t, client, `{}`, `{"workSeconds":0.1}`, `{"outcome":"deadletter"}`)
		err, res, out := runOnceResult(t, srv, nil)
		if err != nil || ExitCode(err) != ExitOK || res.Result != "ok" || res.ExitCode != ExitOK {
			t.Fatalf("err %v, result %+v\n%s", err, res, out)
		}
		if s := res.Summary; s.Received != 3 || s.Completed != 2 || s.DeadLettered != 1 {
			t.Fatalf("summary %+v", s)
		}
		if st := entityStats(t, srv, "orders"); st.Active != 0 || st.Counters.Completed != 2 {
			t.Fatalf("queue after the run: %+v", st)
		}
	})
	t.Run("abandoned", func(t *testing.T) {
		srv, client := startOrdersQueue(t, func(p *broker.QueueProperties) { p.LockDuration, p.MaxDeliveryCount = 2*time.Second, 10 })
		sendBodies(t, client, `{}`, `{"outcome":"fail"}`)
		err, res, _ := runOnceResult(t, srv, nil)
		if !errors.Is(err, ErrAbandoned) || ExitCode(err) != ExitAbandoned || res.Result != "abandoned" || res.ExitCode != ExitAbandoned {
			t.Fatalf("err %v, result %+v", err, res)
		}
		if res.Summary.Abandoned == 0 || res.Summary.Completed != 1 {
			t.Fatalf("summary %+v", res.Summary)
		}
	})
	t.Run("lost", func(t *testing.T) {
		srv, client := startOrdersQueue(t, func(p *broker.QueueProperties) { p.LockDuration = time.Second })
		sendBodies(t, client, `{"workSeconds":3}`)
		// Every renewal answers 410: the lock is lost, the message must not be completed.
		if err := srv.Faults().FailRenewLocks(1000, 410); err != nil {
			t.Fatal(err)
		}
		err, res, _ := runOnceResult(t, srv, nil)
		if !errors.Is(err, ErrLost) || ExitCode(err) != ExitLost || res.Result != "lost" || res.Summary.LocksLost != 1 {
			t.Fatalf("err %v, result %+v", err, res)
		}
		if st := entityStats(t, srv, "orders"); st.Counters.Completed != 0 {
			t.Fatalf("a message whose lock was lost was completed: %+v", st)
		}
	})
	t.Run("failed", func(t *testing.T) {
		srv, _ := startOrdersQueue(t, func(*broker.QueueProperties) {})
		err, res, _ := runOnceResult(t, srv, map[string]string{"HOLDFAST_ENTITY": "no-such-queue"})
		if !errors.Is(err, ErrRunFailed) || ExitCode(err) != ExitFailed || res.Result != "failed" || res.Error == "" {
			t.Fatalf("err %v, result %+v", err, res)
		}
	})
}

func entityStats(t *testing.T, srv *emulator.Server, path string) broker.EntityStats {
	t.Helper()
	e, err := srv.Broker().Entity(path)
	if err != nil {
		t.Fatal(err)
	}
	return e.Stats()
}

// Standalone, the run budget is checked against HOLDFAST_PROCESS_TIMEOUT, never against host.json: a budget
// longer than host.json's functionTimeout starts, one that does not fit the process timeout is refused naming
// both settings.
func TestStandaloneBudgetIgnoresHostJSON(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "host.json"), []byte(`{"functionTimeout":"00:01:00"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	vars := map[string]string{"ServiceBusConnection": sbConn, "HOLDFAST_ENTITY": "q", "HOLDFAST_RUN_BUDGET": "20m",
		"HOLDFAST_PROCESS_TIMEOUT": "20m", "HOLDFAST_LISTEN_ADDR": "127.0.0.1:0"}
	o, out, errOut := testOptions(vars, dir)
	o.Mode = ModeServe
	if err := Run(context.Background(), o); ExitCode(err) != ExitConfig || !strings.Contains(errOut.String(), "HOLDFAST_PROCESS_TIMEOUT") ||
		!strings.Contains(errOut.String(), "HOLDFAST_RUN_BUDGET") {
		t.Fatalf("budget 20m in a 20m process: %v\n%s", err, errOut)
	}
	vars["HOLDFAST_PROCESS_TIMEOUT"] = "30m"
	o, out, errOut = testOptions(vars, dir)
	o.Mode = ModeServe
	addr := serveHandler(t, o, out)
	if addr == "" || errOut.String() != "" {
		t.Fatalf("serve did not start: %s", errOut)
	}
}

// worker: runs one after another until cancelled; a message that arrives while the worker idles is processed
// by a later run, and cancelling while a message is being worked on abandons it at once (it is available
// again, not left locked) and returns nil.
func TestWorkerLoopsAndShutsDownGracefully(t *testing.T) {
	const lockDuration = 10 * time.Second
	srv, client := startOrdersQueue(t, func(p *broker.QueueProperties) { p.LockDuration = lockDuration })
	vars := map[string]string{"ServiceBusConnection": srv.ConnectionString(), "HOLDFAST_ENTITY": "orders", "HOLDFAST_RUN_BUDGET": "30s"}
	o, out, _ := testOptions(vars, t.TempDir())
	o.Mode, o.NoMessageWait = ModeWorker, 200*time.Millisecond
	held := make(chan struct{}, 1)
	o.Processor = processor.Func(func(ctx context.Context, m *azservicebus.ReceivedMessage) processor.Outcome {
		if string(m.Body) == "hold" {
			held <- struct{}{}
			<-ctx.Done()
			return processor.Abandon(context.Cause(ctx))
		}
		return processor.Complete()
	})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- Run(ctx, o) }()

	// Several empty runs pass before these arrive; a later run completes them.
	waitFor(t, 10*time.Second, func() bool { return strings.Count(out.String(), `"msg":"run finished"`) >= 2 }, "two idle runs")
	sendBodies(t, client, "a", "b", "c")
	waitFor(t, 20*time.Second, func() bool { return entityStats(t, srv, "orders").Counters.Completed == 3 }, "three completions")

	sendBodies(t, client, "hold")
	select {
	case <-held:
	case <-time.After(20 * time.Second):
		t.Fatalf("the held message was never received; log %s", out)
	}
	stopRun(t, cancel, done)
	waitFor(t, lockDuration/2, func() bool { return entityStats(t, srv, "orders").Locked == 0 }, "the held message unlocked")
	if st := entityStats(t, srv, "orders"); st.Active != 1 || st.Counters.Abandoned != 1 || st.Counters.Completed != 3 {
		t.Fatalf("after shutdown: %+v, want the held message abandoned once and active", st)
	}
	if !strings.Contains(out.String(), `"msg":"worker stopping"`) || !strings.Contains(out.String(), `"msg":"stopped"`) {
		t.Errorf("no stop logs: %s", out)
	}
}

// serve: the drain and the page, no ProcessQueue (runs come from run-once and worker).
func TestServeHasNoTimerRoute(t *testing.T) {
	srv, _ := startOrdersQueue(t, func(*broker.QueueProperties) {})
	vars := map[string]string{"ServiceBusConnection": srv.ConnectionString(), "HOLDFAST_ENTITY": "orders",
		"DeferralStorage": testenv.Azurite(t), "HOLDFAST_DEFERRAL_TABLE": "servemode", "HOLDFAST_LISTEN_ADDR": "127.0.0.1:0"}
	o, out, _ := testOptions(vars, t.TempDir())
	o.Mode = ModeServe
	addr := serveHandler(t, o, out)
	for path, want := range map[string]int{"/api/deferred": http.StatusOK, "/api/deadletter": http.StatusOK, "/api/ui": http.StatusOK} {
		resp, err := http.Get("http://" + addr + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("GET %s: %d, want %d", path, resp.StatusCode, want)
		}
	}
	resp, err := http.Post("http://"+addr+"/ProcessQueue", "application/json", strings.NewReader(`{"Data":{"timer":{}}}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("POST /ProcessQueue in serve mode: %d, want 404", resp.StatusCode)
	}
	if !strings.Contains(out.String(), `"mode":"serve"`) {
		t.Errorf("no serve-mode listening log: %s", out)
	}
}

// stopRun cancels Run's context, as SIGTERM does, and fails unless Run returns nil within the shutdown's
// bounds (settling, closing and the clients' close).
func stopRun(t *testing.T, cancel context.CancelFunc, done <-chan error) {
	t.Helper()
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(40 * time.Second):
		t.Fatal("Run did not return after its context was cancelled")
	}
}

// waitFor polls cond until it holds or d passes.
func waitFor(t *testing.T, d time.Duration, cond func() bool, what string) {
	t.Helper()
	for deadline := time.Now().Add(d); !cond(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}
