package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/holdfast-dev/holdfast/internal/process"
)

const timerBody = `{"Data":{"myTimer":{"Schedule":{"AdjustForDST":true},"ScheduleStatus":null,"IsPastDue":false}},
"Metadata":{"sys":{"MethodName":"ProcessQueue","UtcNow":"2026-09-24T13:09:00.0123456Z","RandGuid":"x"}}}`

func newServer(t *testing.T, r Runner) *echo.Echo {
	t.Helper()
	e, err := New(&Options{Runner: r})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func do(e *echo.Echo, method, path, body string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	rec := httptest.NewRecorder()
	e.ServeHTTP(rec, req)
	return rec
}

func TestProcessQueueOK(t *testing.T) {
	sum := process.Summary{Received: 3, Completed: 2, Abandoned: 1, Renewals: 4, DurationMs: 12}
	var calls int
	e := newServer(t, RunnerFunc(func(context.Context) (process.Summary, error) { calls++; return sum, nil }))
	rec := do(e, http.MethodPost, ProcessQueuePath, timerBody)
	if rec.Code != http.StatusOK || calls != 1 {
		t.Fatalf("status %d calls %d body %s", rec.Code, calls, rec.Body)
	}
	if ct := rec.Header().Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Fatalf("content type %q", ct)
	}
	var got struct {
		Outputs     map[string]any
		Logs        []string
		ReturnValue map[string]any
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	if got.Outputs == nil || len(got.Logs) != 1 || !strings.Contains(got.Logs[0], "received=3") {
		t.Fatalf("body %s", rec.Body)
	}
	for _, k := range []string{"received", "completed", "abandoned", "deadLettered", "deferred", "renewals", "locksLost", "durationMs"} {
		if _, ok := got.ReturnValue[k]; !ok {
			t.Errorf("ReturnValue lacks %q: %s", k, rec.Body)
		}
	}
	if got.ReturnValue["completed"] != float64(2) {
		t.Errorf("ReturnValue %v", got.ReturnValue)
	}
}

func TestErrorsAreJSON(t *testing.T) {
	runner := RunnerFunc(func(context.Context) (process.Summary, error) { return process.Summary{}, nil })
	failing := RunnerFunc(func(context.Context) (process.Summary, error) {
		return process.Summary{Received: 1}, errors.Join(process.ErrReceive, errors.New("unauthorized"))
	})
	tests := []struct {
		name, method, path, body string
		runner                   Runner
		status                   int
		contains                 string
	}{
		{"empty body", http.MethodPost, ProcessQueuePath, "", runner, 400, "malformed timer invocation"},
		{"not json", http.MethodPost, ProcessQueuePath, "hello", runner, 400, "malformed"},
		{"no Data", http.MethodPost, ProcessQueuePath, `{"Metadata":{}}`, runner, 400, `missing \"Data\"`},
		{"timer not object", http.MethodPost, ProcessQueuePath, `{"Data":{"t":1}}`, runner, 400, "not a JSON object"},
		{"too large", http.MethodPost, ProcessQueuePath, `{"Data":{"t":{}},"x":"` + strings.Repeat("a", MaxInvocationBody) + `"}`, runner, 413, "exceeds"},
		{"run failed", http.MethodPost, ProcessQueuePath, timerBody, failing, 500, "run failed"},
		{"deferred list", http.MethodGet, DeferredPath, "", runner, 501, "not available"},
		{"deferred action", http.MethodPost, "/api/deferred/resubmit", `{"all":true}`, runner, 501, "not available"},
		{"unknown route", http.MethodGet, "/nope", "", runner, 404, "Not Found"},
		{"wrong method", http.MethodGet, ProcessQueuePath, "", runner, 405, "Method Not Allowed"},
		{"wrong method deferred", http.MethodDelete, DeferredPath, "", runner, 405, "Method Not Allowed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := do(newServer(t, tt.runner), tt.method, tt.path, tt.body)
			if rec.Code != tt.status {
				t.Fatalf("status %d, want %d; body %s", rec.Code, tt.status, rec.Body)
			}
			var got map[string]string
			if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil || got["error"] == "" {
				t.Fatalf("body %q is not {\"error\":…}: %v", rec.Body, err)
			}
			if !strings.Contains(rec.Body.String(), tt.contains) {
				t.Errorf("body %s does not mention %q", rec.Body, tt.contains)
			}
		})
	}
}

func TestReadinessProbe(t *testing.T) {
	rec := do(newServer(t, RunnerFunc(nil)), http.MethodGet, "/", "")
	if rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), "ok") {
		t.Fatalf("status %d body %s", rec.Code, rec.Body)
	}
}

func TestOverlappingRunIsRejected(t *testing.T) {
	started, finish := make(chan struct{}), make(chan struct{})
	var once sync.Once
	e := newServer(t, RunnerFunc(func(context.Context) (process.Summary, error) {
		once.Do(func() { close(started) })
		<-finish
		return process.Summary{}, nil
	}))
	var wg sync.WaitGroup
	var first *httptest.ResponseRecorder
	wg.Add(1)
	go func() {
		defer wg.Done()
		first = do(e, http.MethodPost, ProcessQueuePath, timerBody)
	}()
	<-started
	second := do(e, http.MethodPost, ProcessQueuePath, timerBody)
	close(finish)
	wg.Wait()
	if second.Code != http.StatusConflict || !strings.Contains(second.Body.String(), "already in progress") {
		t.Fatalf("second: %d %s", second.Code, second.Body)
	}
	if first.Code != http.StatusOK {
		t.Fatalf("first: %d %s", first.Code, first.Body)
	}
	// The guard is released: a later invocation runs.
	done := make(chan *httptest.ResponseRecorder)
	go func() { done <- do(e, http.MethodPost, ProcessQueuePath, timerBody) }()
	select {
	case rec := <-done:
		if rec.Code != 200 {
			t.Fatalf("third: %d", rec.Code)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("third invocation hung")
	}
}

func TestCustomDeferredHandlers(t *testing.T) {
	e, err := New(&Options{Runner: RunnerFunc(nil),
		DeferredList: func(c echo.Context) error { return c.JSON(200, map[string]any{"items": []int{}}) },
		DeferredAction: func(c echo.Context) error {
			return &StatusError{Status: 400, Msg: "unknown action " + c.Param("action")}
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	if rec := do(e, http.MethodGet, DeferredPath, ""); rec.Code != 200 {
		t.Fatalf("list: %d", rec.Code)
	}
	rec := do(e, http.MethodPost, "/api/deferred/frobnicate", "{}")
	if rec.Code != 400 || !strings.Contains(rec.Body.String(), "unknown action frobnicate") {
		t.Fatalf("action: %d %s", rec.Code, rec.Body)
	}
	// Custom handlers see every method, so they can answer a wrong one themselves.
	if rec := do(e, http.MethodGet, DeferredPath+"/", ""); rec.Code != 200 {
		t.Fatalf("list with a trailing slash: %d", rec.Code)
	}
	if rec := do(e, http.MethodDelete, DeferredPath, ""); rec.Code != 200 {
		t.Fatalf("DELETE on the list reached status %d, want the handler's 200", rec.Code)
	}
	if rec := do(e, http.MethodGet, "/api/deferred/resubmit", ""); rec.Code != 400 {
		t.Fatalf("GET on an action reached status %d, want the handler's 400", rec.Code)
	}
}

func TestNewNeedsOptions(t *testing.T) {
	if _, err := New(nil); err == nil {
		t.Fatal("nil options accepted")
	}
}

// Without a Runner (standalone serve) there is no ProcessQueue route: a timer invocation is a 404 JSON error,
// and the other routes still answer.
func TestNoRunnerNoProcessQueue(t *testing.T) {
	e, err := New(&Options{})
	if err != nil {
		t.Fatal(err)
	}
	if rec := do(e, http.MethodPost, ProcessQueuePath, timerBody); rec.Code != http.StatusNotFound || !strings.Contains(rec.Body.String(), `"error"`) {
		t.Errorf("POST %s without a runner: %d %s", ProcessQueuePath, rec.Code, rec.Body)
	}
	if rec := do(e, http.MethodGet, "/", ""); rec.Code != http.StatusOK {
		t.Errorf("GET / without a runner: %d", rec.Code)
	}
}

// TestDeadLetterAndUIRoutes: without handlers the dead-letter routes answer 501 JSON; with them, the
// deferred peek route wins over :action, and the page routes reach the UI handler.
func TestDeadLetterAndUIRoutes(t *testing.T) {
	e := newServer(t, RunnerFunc(func(context.Context) (process.Summary, error) { return process.Summary{}, nil }))
	for _, p := range []string{DeadLetterPath, "/api/deadletter/resubmit"} {
		if rec := do(e, http.MethodGet, p, ""); rec.Code != http.StatusNotImplemented || !strings.Contains(rec.Body.String(), `"error"`) {
			t.Errorf("%s without a handler: %d %s", p, rec.Code, rec.Body)
		}
	}
	hit := func(name string) echo.HandlerFunc {
		return func(c echo.Context) error { return c.String(http.StatusOK, name) }
	}
	e, err := New(&Options{Runner: RunnerFunc(func(context.Context) (process.Summary, error) { return process.Summary{}, nil }),
		DeferredList: hit("list"), DeferredAction: hit("action"), DeferredPeek: hit("peek"),
		DeadLetterList: hit("dlq-list"), DeadLetterAction: hit("dlq-action"), UI: hit("ui")})
	if err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]string{
		"/api/deferred/peek?sequenceNumber=1": "peek", "/api/deferred/resubmit": "action", "/api/deadletter": "dlq-list",
		"/api/deadletter/": "dlq-list", "/api/deadletter/peek": "dlq-action", "/api/ui": "ui", "/api/ui/": "ui", "/api/ui/app.js": "ui",
	} {
		if rec := do(e, http.MethodGet, path, ""); rec.Body.String() != want {
			t.Errorf("%s reached %q, want %q", path, rec.Body, want)
		}
	}
}

// TestCrossSiteWritesAreRefused: a POST a browser makes from another site's page (Sec-Fetch-Site cross-site or
// same-site) is refused with a 403 JSON error before any handler runs; the operator page's own calls
// (same-origin), clients that are not browsers (no header) and reads pass. Mutation: without the middleware
// a cross-site form could delete every dead-lettered message through a visitor's browser, and this fails.
func TestCrossSiteWritesAreRefused(t *testing.T) {
	var calls int
	hit := func(c echo.Context) error { calls++; return c.String(http.StatusOK, "done") }
	e, err := New(&Options{Runner: RunnerFunc(func(context.Context) (process.Summary, error) { return process.Summary{}, nil }),
		DeferredList: hit, DeferredAction: hit, DeadLetterList: hit, DeadLetterAction: hit})
	if err != nil {
		t.Fatal(err)
	}
	send := func(method, path, site string) *httptest.ResponseRecorder {
		req := httptest.NewRequest(method, path, strings.NewReader(`{"all":true}`))
		req.Header.Set("Content-Type", "text/plain") // what an HTML form can send without a preflight
		if site != "" {
			req.Header.Set("Sec-Fetch-Site", site)
		}
		rec := httptest.NewRecorder()
		e.ServeHTTP(rec, req)
		return rec
	}
	for _, site := range []string{"cross-site", "same-site"} {
		for _, path := range []string{"/api/deadletter/delete", "/api/deferred/resubmit", ProcessQueuePath} {
			rec := send(http.MethodPost, path, site)
			if rec.Code != http.StatusForbidden || !strings.Contains(rec.Body.String(), `"error"`) {
				t.Errorf("POST %s with Sec-Fetch-Site %s: %d %s, want a 403 JSON error", path, site, rec.Code, rec.Body)
			}
		}
	}
	if calls != 0 {
		t.Fatalf("%d refused requests reached a handler", calls)
	}
	for _, site := range []string{"", "same-origin", "none"} {
		if rec := send(http.MethodPost, "/api/deadletter/delete", site); rec.Code != http.StatusOK {
			t.Errorf("POST with Sec-Fetch-Site %q: %d %s", site, rec.Code, rec.Body)
		}
	}
	if rec := send(http.MethodGet, DeadLetterPath, "cross-site"); rec.Code != http.StatusOK {
		t.Errorf("a cross-site GET: %d, want it to pass (CORS keeps the answer from the other site)", rec.Code)
	}
}
