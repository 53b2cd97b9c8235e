package devhost

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

const (
	timerJSON = `{"bindings":[{"name":"timer","type":"timerTrigger","direction":"in","schedule":"%s","runOnStartup":%t}]}`
	httpJSON  = `{"bindings":[{"name":"req","type":"httpTrigger","direction":"in","authLevel":"function","methods":["get","post"],"route":"deferred/{action?}"},{"name":"res","type":"http","direction":"out"}]}`
)

func timerFn(schedule string, startup bool) string {
	return strings.Replace(strings.Replace(timerJSON, "%s", schedule, 1), "%t", map[bool]string{true: "true", false: "false"}[startup], 1)
}

// writeApp creates a function app whose handler is this test binary.
func writeApp(t *testing.T, functions map[string]string, values map[string]string) string {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	root := t.TempDir()
	host := map[string]any{
		"version":         "2.0",
		"functionTimeout": "00:01:00",
		"customHandler": map[string]any{
			"description":                 map[string]any{"defaultExecutablePath": exe, "arguments": []string{}},
			"enableForwardingHttpRequest": true,
		},
	}
	mustWriteJSON(t, filepath.Join(root, "host.json"), host)
	for name, fj := range functions {
		if err := os.MkdirAll(filepath.Join(root, name), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(root, name, "function.json"), []byte(fj), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// GORACE: a -race test binary otherwise sleeps 1 s at exit, which slows every Close.
	v := map[string]string{"FUNCTIONS_WORKER_RUNTIME": "custom", "FAKE_HANDLER": "1", "GORACE": "atexit_sleep_ms=0"}
	for k, x := range values {
		v[k] = x
	}
	mustWriteJSON(t, filepath.Join(root, "local.settings.json"), map[string]any{"IsEncrypted": false, "Values": v})
	return root
}

func mustWriteJSON(t *testing.T, path string, v any) {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// lockedBuffer is an io.Writer safe for concurrent use, for capturing logs.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

type testHost struct {
	*Host
	logs    *lockedBuffer
	results chan InvocationResult
}

// newTestHost builds and starts a host for root; Close runs at cleanup.
func newTestHost(t *testing.T, root string, mod func(*Options)) *testHost {
	t.Helper()
	th := &testHost{logs: &lockedBuffer{}, results: make(chan InvocationResult, 100)}
	o := &Options{
		ScriptRoot:   root,
		Addr:         "127.0.0.1:0",
		Environ:      os.Environ(),
		Logger:       slog.New(slog.NewJSONHandler(th.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		DrainTimeout: 5 * time.Second,
		KillGrace:    5 * time.Second,
		OnInvocation: func(r InvocationResult) { th.results <- r },
	}
	if mod != nil {
		mod(o)
	}
	h, err := New(o)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	th.Host = h
	t.Cleanup(func() { _ = h.Close() })
	if err := h.Start(context.Background()); err != nil {
		t.Fatalf("Start: %v\nlogs:\n%s", err, th.logs)
	}
	return th
}

func (th *testHost) next(t *testing.T) InvocationResult {
	t.Helper()
	select {
	case r := <-th.results:
		return r
	case <-time.After(20 * time.Second):
		t.Fatalf("no invocation finished\nlogs:\n%s", th.logs)
		return InvocationResult{}
	}
}

type fakeReturn struct {
	N             int             `json:"n"`
	MaxConcurrent int             `json:"maxConcurrent"`
	Request       json.RawMessage `json:"request"`
	Headers       http.Header     `json:"headers"`
}

func decodeReturn(t *testing.T, r InvocationResult) fakeReturn {
	t.Helper()
	if r.Err != nil {
		t.Fatalf("invocation failed: %v", r.Err)
	}
	var fr fakeReturn
	if err := json.Unmarshal(r.ReturnValue, &fr); err != nil {
		t.Fatalf("ReturnValue %s: %v", r.ReturnValue, err)
	}
	return fr
}

func TestTimerRunOnStartupEnvelope(t *testing.T) {
	root := writeApp(t, map[string]string{"ProcessQueue": timerFn("%Sched%", true)},
		map[string]string{"Sched": "0 0 0 1 1 *"}) // yearly: only the start-up run fires
	th := newTestHost(t, root, nil)
	r := th.next(t)
	if r.Trigger != TriggerStartup || r.Function != "ProcessQueue" || r.StatusCode != 200 {
		t.Fatalf("result = %+v", r)
	}
	if len(r.Logs) != 1 || r.Logs[0] != "run 1" {
		t.Errorf("Logs = %q", r.Logs)
	}
	fr := decodeReturn(t, r)
	var env struct {
		Data struct {
			Timer struct {
				Schedule       map[string]bool    `json:"Schedule"`
				ScheduleStatus *map[string]string `json:"ScheduleStatus"`
				IsPastDue      *bool              `json:"IsPastDue"`
			} `json:"timer"`
		} `json:"Data"`
		Metadata struct {
			Sys map[string]string `json:"sys"`
		} `json:"Metadata"`
	}
	if err := json.Unmarshal(fr.Request, &env); err != nil {
		t.Fatalf("envelope %s: %v", fr.Request, err)
	}
	tm := env.Data.Timer
	if !tm.Schedule["AdjustForDST"] || tm.IsPastDue == nil || *tm.IsPastDue {
		t.Errorf("timer = %s", fr.Request)
	}
	if tm.ScheduleStatus == nil {
		t.Fatalf("ScheduleStatus is null for a yearly schedule: %s", fr.Request)
	}
	st := *tm.ScheduleStatus
	if st["Last"] != "0001-01-01T00:00:00+00:00" {
		t.Errorf("first run Last = %q", st["Last"])
	}
	next, err := time.Parse(time.RFC3339, st["Next"])
	if err != nil || next.Month() != time.January || next.Day() != 1 || !next.After(time.Now()) {
		t.Errorf("Next = %q (%v)", st["Next"], err)
	}
	if env.Metadata.Sys["MethodName"] != "ProcessQueue" || env.Metadata.Sys["RandGuid"] == "" {
		t.Errorf("Metadata.sys = %v", env.Metadata.Sys)
	}
	if _, err := time.Parse(time.RFC3339Nano, env.Metadata.Sys["UtcNow"]); err != nil {
		t.Errorf("UtcNow: %v", err)
	}
	if got := fr.Headers.Get("X-Azure-Functions-InvocationId"); got != r.InvocationID || got == "" {
		t.Errorf("InvocationId header %q, result %q", got, r.InvocationID)
	}
	if ct := fr.Headers.Get("Content-Type"); ct != "application/json; charset=utf-8" {
		t.Errorf("Content-Type = %q", ct)
	}
	if ua := fr.Headers.Get("User-Agent"); !strings.HasPrefix(ua, "Azure-Functions-Host/") {
		t.Errorf("User-Agent = %q", ua)
	}
	select {
	case extra := <-th.results:
		t.Errorf("unexpected second invocation %+v", extra)
	default:
	}
	logs := th.logs.String()
	if !strings.Contains(logs, `"level":"WARN","msg":"handler stderr","line":"warning: fake handler in use"`) {
		t.Errorf("stderr line with 'warn' not logged at WARN:\n%s", logs)
	}
	if !strings.Contains(logs, `"msg":"handler stdout","line":{"msg":"fake handler listening"}`) {
		t.Errorf("stdout JSON line not embedded:\n%s", logs)
	}
}

func TestTimerScheduleWithSeconds(t *testing.T) {
	root := writeApp(t, map[string]string{"Tick": timerFn("* * * * * *", false)}, nil)
	th := newTestHost(t, root, nil)
	first, second := th.next(t), th.next(t)
	for _, r := range []InvocationResult{first, second} {
		if r.Trigger != TriggerSchedule {
			t.Errorf("trigger = %s", r.Trigger)
		}
		fr := decodeReturn(t, r)
		// Every second is more often than once a minute: the monitor is off, ScheduleStatus null.
		if !bytes.Contains(fr.Request, []byte(`"ScheduleStatus":null`)) {
			t.Errorf("ScheduleStatus not null: %s", fr.Request)
		}
	}
	if gap := second.Start.Sub(first.Start); gap < 500*time.Millisecond || gap > 3*time.Second {
		t.Errorf("runs %v apart, want about 1s", gap)
	}
}

func TestAdminNoOverlap(t *testing.T) {
	root := writeApp(t, map[string]string{"ProcessQueue": timerFn("0 0 0 1 1 *", false)},
		map[string]string{"FAKE_TIMER_DELAY": "150ms"})
	th := newTestHost(t, root, nil)
	url := "http://" + th.Addr() + "/admin/functions/ProcessQueue"
	for range 3 {
		resp, err := http.Post(url, "application/json", strings.NewReader(`{"input":""}`))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusAccepted {
			t.Fatalf("admin status %d", resp.StatusCode)
		}
	}
	peak := 0
	for range 3 {
		r := th.next(t)
		if r.Trigger != TriggerAdmin {
			t.Errorf("trigger %s", r.Trigger)
		}
		peak = max(peak, decodeReturn(t, r).MaxConcurrent)
	}
	if peak != 1 {
		t.Errorf("handler saw %d concurrent invocations of one timer, want 1", peak)
	}
}

func TestAdminErrors(t *testing.T) {
	root := writeApp(t, map[string]string{"ProcessQueue": timerFn("0 0 0 1 1 *", false), "DrainDeferred": httpJSON}, nil)
	th := newTestHost(t, root, nil)
	tests := []struct {
		name, method, path, body string
		want                     int
	}{
		{"unknown function", "POST", "/admin/functions/Nope", `{"input":""}`, 404},
		{"http function", "POST", "/admin/functions/DrainDeferred", `{"input":""}`, 404},
		{"bad body", "POST", "/admin/functions/ProcessQueue", `{"input":`, 400},
		{"wrong method", "GET", "/admin/functions/ProcessQueue", ``, 405},
		{"case-insensitive name", "POST", "/admin/functions/processqueue", `{}`, 202},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest(tc.method, "http://"+th.Addr()+tc.path, strings.NewReader(tc.body))
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tc.want {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tc.want, b)
			}
			if tc.want >= 400 && !json.Valid(b) {
				t.Errorf("error body is not JSON: %q", b)
			}
		})
	}
	if r := th.next(t); r.Err != nil || r.Trigger != TriggerAdmin {
		t.Errorf("admin run: %+v", r)
	}
}

func TestInvokeFailureReported(t *testing.T) {
	root := writeApp(t, map[string]string{"Fail": timerFn("0 0 0 1 1 *", false)}, nil)
	th := newTestHost(t, root, nil)
	r, err := th.Invoke(context.Background(), "Fail")
	if err == nil || r.StatusCode != 500 || !strings.Contains(err.Error(), "boom") {
		t.Fatalf("Invoke = %+v, %v; want the handler's 500 and body", r, err)
	}
	if _, err := th.Invoke(context.Background(), "Missing"); !errors.Is(err, ErrUnknownFunction) {
		t.Errorf("Invoke(Missing) = %v, want ErrUnknownFunction", err)
	}
}

type echoReply struct {
	Method   string            `json:"method"`
	Path     string            `json:"path"`
	RawQuery string            `json:"rawQuery"`
	Headers  http.Header       `json:"headers"`
	Body     string            `json:"body"`
	Env      map[string]string `json:"env"`
}

func TestForwarding(t *testing.T) {
	root := writeApp(t, map[string]string{"DrainDeferred": httpJSON}, map[string]string{"FROM_VALUES": "values", "SHADOWED": "values"})
	th := newTestHost(t, root, func(o *Options) { o.Environ = append(os.Environ(), "SHADOWED=process") })
	tests := []struct {
		name, method, path, body string
		header                   map[string]string
		wantStatus               int
	}{
		{"list", "GET", "/api/deferred?top=5&continuation=a%2Fb", "", nil, 200},
		{"action with body", "POST", "/api/deferred/resubmit", `{"all":true}`, map[string]string{"Content-Type": "application/json", "X-Custom": "v1"}, 200},
		{"status passes through", "POST", "/api/deferred/delete", `{}`, map[string]string{"X-Fake-Status": "409"}, 409},
		{"case-insensitive route", "GET", "/API/Deferred", "", nil, 200},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest(tc.method, "http://"+th.Addr()+tc.path, strings.NewReader(tc.body))
			for k, v := range tc.header {
				req.Header.Set(k, v)
			}
			req.Header.Set("X-Fake-Env", "FROM_VALUES,SHADOWED,FUNCTIONS_CUSTOMHANDLER_PORT,FUNCTIONS_APP_ROOT_PATH")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			if resp.StatusCode != tc.wantStatus || resp.Header.Get("X-Fake-Reply") != "yes" {
				t.Fatalf("status %d reply header %q", resp.StatusCode, resp.Header.Get("X-Fake-Reply"))
			}
			var got echoReply
			if err := json.NewDecoder(resp.Body).Decode(&got); err != nil {
				t.Fatal(err)
			}
			wantPath, wantQuery, _ := strings.Cut(tc.path, "?")
			if got.Method != tc.method || got.Path != wantPath || got.RawQuery != wantQuery || got.Body != tc.body {
				t.Errorf("handler saw %s %s ? %s body %q", got.Method, got.Path, got.RawQuery, got.Body)
			}
			for k, v := range tc.header {
				if got.Headers.Get(k) != v {
					t.Errorf("header %s = %q, want %q", k, got.Headers.Get(k), v)
				}
			}
			if got.Headers.Get("X-Azure-Functions-InvocationId") == "" || !strings.HasPrefix(got.Headers.Get("User-Agent"), "Azure-Functions-Host/") {
				t.Errorf("host headers missing: %v", got.Headers)
			}
			if got.Env["FROM_VALUES"] != "values" || got.Env["SHADOWED"] != "process" {
				t.Errorf("env = %v: Values must reach the handler and the process environment must win", got.Env)
			}
			if got.Env["FUNCTIONS_CUSTOMHANDLER_PORT"] == "" || got.Env["FUNCTIONS_APP_ROOT_PATH"] != root {
				t.Errorf("host variables = %v", got.Env)
			}
		})
	}
	for _, tc := range []struct{ method, path string }{
		{"GET", "/api/other"}, {"DELETE", "/api/deferred"}, {"GET", "/api/deferred/a/b"}, {"GET", "/deferred"},
	} {
		req, _ := http.NewRequest(tc.method, "http://"+th.Addr()+tc.path, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotFound {
			t.Errorf("%s %s = %d, want 404", tc.method, tc.path, resp.StatusCode)
		}
	}
	if !strings.Contains(th.logs.String(), `"name":"SHADOWED"`) {
		t.Errorf("skipped setting not logged")
	}
}

func TestHandlerExitAtStartup(t *testing.T) {
	root := writeApp(t, map[string]string{"ProcessQueue": timerFn("0 0 0 1 1 *", true)}, map[string]string{"FAKE_EXIT_CODE": "3"})
	h, err := New(&Options{ScriptRoot: root, Addr: "127.0.0.1:0", Logger: slog.New(slog.NewJSONHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	err = h.Start(context.Background())
	if !errors.Is(err, ErrHandlerExited) || !strings.Contains(err.Error(), "exit status 3") ||
		!strings.Contains(err.Error(), "FAKE_SETTING is invalid") {
		t.Fatalf("Start = %v; want ErrHandlerExited with the exit status and stderr", err)
	}
	if !errors.Is(h.Close(), ErrHandlerExited) {
		t.Errorf("Close did not report the failure")
	}
}

func TestHandlerNotReady(t *testing.T) {
	root := writeApp(t, map[string]string{"ProcessQueue": timerFn("0 0 0 1 1 *", false)}, map[string]string{"FAKE_READY_DELAY": "1m"})
	h, err := New(&Options{ScriptRoot: root, Addr: "127.0.0.1:0", ReadyTimeout: 300 * time.Millisecond, KillGrace: time.Second,
		Logger: slog.New(slog.NewJSONHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	if err := h.Start(context.Background()); !errors.Is(err, ErrNotReady) {
		t.Errorf("Start = %v, want ErrNotReady", err)
	}
	pid := h.HandlerPID()
	h.Close()
	if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
		t.Errorf("handler pid %d still exists after Close: %v", pid, err)
	}
}

func TestHandlerExitLater(t *testing.T) {
	root := writeApp(t, map[string]string{"DrainDeferred": `{"bindings":[{"name":"req","type":"httpTrigger","direction":"in","route":"crash"},{"name":"res","type":"http","direction":"out"}]}`}, nil)
	th := newTestHost(t, root, nil)
	resp, err := http.Get("http://" + th.Addr() + "/api/crash")
	if err == nil {
		resp.Body.Close()
	}
	select {
	case <-th.Done():
	case <-time.After(20 * time.Second):
		t.Fatal("Done not closed after the handler exited")
	}
	if err := th.Err(); !errors.Is(err, ErrHandlerExited) || !strings.Contains(err.Error(), "exit status 7") {
		t.Errorf("Err = %v", err)
	}
}

func TestCleanShutdown(t *testing.T) {
	base := runtime.NumGoroutine()
	root := writeApp(t, map[string]string{"ProcessQueue": timerFn("* * * * * *", true), "DrainDeferred": httpJSON},
		map[string]string{"FAKE_TIMER_DELAY": "300ms"})
	th := newTestHost(t, root, nil)
	pid := th.HandlerPID()
	resp, err := http.Get("http://" + th.Addr() + "/api/deferred")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	// Close while the start-up invocation may still be running: it must finish, not be cut off.
	if err := th.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
		t.Errorf("handler pid %d still exists after Close: %v", pid, err)
	}
	for r := range len(th.results) {
		_ = r
		if res := <-th.results; res.Err != nil {
			t.Errorf("invocation cut off by Close: %v", res.Err)
		}
	}
	if !strings.Contains(th.logs.String(), `"msg":"handler stdout","line":{"msg":"fake handler stopped"}`) {
		t.Errorf("handler did not stop gracefully on SIGTERM:\n%s", th.logs)
	}
	http.DefaultClient.CloseIdleConnections()
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > base && time.Now().Before(deadline) {
		runtime.Gosched()
		time.Sleep(10 * time.Millisecond) // polling a count that has no event to wait on
	}
	if n := runtime.NumGoroutine(); n > base {
		buf := make([]byte, 1<<16)
		t.Errorf("goroutines: %d before, %d after Close\n%s", base, n, buf[:runtime.Stack(buf, true)])
	}
	if _, err := http.Post("http://"+th.Addr()+"/admin/functions/ProcessQueue", "application/json", strings.NewReader(`{}`)); err == nil {
		t.Errorf("listener still open after Close")
	}
}

// TestTimerOverrunCatchUp checks the host's overrun rule: the next occurrence is computed from the
// start of the previous run, so a run longer than the interval is followed at once by one
// catch-up run (not by the next occurrence after it ended), and runs never overlap.
func TestTimerOverrunCatchUp(t *testing.T) {
	root := writeApp(t, map[string]string{"Tick": timerFn("*/2 * * * * *", false)},
		map[string]string{"FAKE_TIMER_DELAY": "2500ms"})
	// Close cancels the third run quickly instead of waiting for it.
	th := newTestHost(t, root, func(o *Options) { o.DrainTimeout = 100 * time.Millisecond })
	first, second := th.next(t), th.next(t)
	gap := second.Start.Sub(first.Start)
	// Catch-up: second starts right after first ends (≈2.5 s). Re-arming from the end of the run
	// would wait for the next even second after it (≈4 s).
	if gap < 2400*time.Millisecond || gap > 3500*time.Millisecond {
		t.Errorf("second run started %v after the first; want one immediate catch-up (≈2.5s)", gap)
	}
	if fr := decodeReturn(t, second); fr.MaxConcurrent != 1 {
		t.Errorf("handler saw %d concurrent runs", fr.MaxConcurrent)
	}
}

// With ?wait=true the admin endpoint answers when the run is over, with its return value; a failed
// invocation is a 502 whose body says why; the plain form still answers 202 at once.
func TestAdminWait(t *testing.T) {
	root := writeApp(t, map[string]string{"ProcessQueue": timerFn("0 0 0 1 1 *", false), "Fail": timerFn("0 0 0 1 1 *", false)},
		map[string]string{"FAKE_TIMER_DELAY": "200ms"})
	th := newTestHost(t, root, nil)
	post := func(path string) (int, AdminResult, []byte) {
		t.Helper()
		resp, err := http.Post("http://"+th.Addr()+path, "application/json", strings.NewReader(`{"input":""}`))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		var res AdminResult
		if resp.StatusCode != http.StatusAccepted {
			if err := json.Unmarshal(b, &res); err != nil {
				t.Fatalf("%s: status %d, body %q: %v", path, resp.StatusCode, b, err)
			}
		}
		return resp.StatusCode, res, b
	}
	status, res, _ := post("/admin/functions/ProcessQueue?wait=true")
	if status != http.StatusOK || res.Error != "" || res.Status != 200 || res.DurationMs < 200 || res.InvocationID == "" {
		t.Fatalf("wait: status %d, %+v", status, res)
	}
	var rv fakeReturn
	if err := json.Unmarshal(res.ReturnValue, &rv); err != nil || rv.N != 1 || len(res.Logs) != 1 || res.Logs[0] != "run 1" {
		t.Errorf("return value %s (%v), logs %q", res.ReturnValue, err, res.Logs)
	}
	if r := th.next(t); r.InvocationID != res.InvocationID {
		t.Errorf("OnInvocation saw %s, the answer names %s", r.InvocationID, res.InvocationID)
	}

	status, res, _ = post("/admin/functions/Fail?wait=1")
	if status != http.StatusBadGateway || !strings.Contains(res.Error, "boom") || res.Status != 500 {
		t.Errorf("failed run: status %d, %+v", status, res)
	}
	th.next(t)
	if status, _, b := post("/admin/functions/ProcessQueue?wait=maybe"); status != http.StatusBadRequest || !strings.Contains(string(b), "wait") {
		t.Errorf("bad wait: status %d %s", status, b)
	}
	if status, _, _ := post("/admin/functions/ProcessQueue"); status != http.StatusAccepted {
		t.Errorf("plain admin call: status %d, want 202", status)
	}
	th.next(t)
}
