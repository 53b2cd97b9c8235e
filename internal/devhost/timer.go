package devhost

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"
)

// Trigger says what started a timer invocation.
type Trigger string

const (
	TriggerSchedule Trigger = "schedule"
	TriggerStartup  Trigger = "runOnStartup"
	TriggerAdmin    Trigger = "admin"
	TriggerInvoke   Trigger = "invoke"
)

// InvocationResult describes one finished timer invocation.
type InvocationResult struct {
	Function     string
	InvocationID string
	Trigger      Trigger
	Start        time.Time
	Duration     time.Duration
	StatusCode   int             // the handler's HTTP status; 0 if no response arrived
	Logs         []string        // the response's Logs
	ReturnValue  json.RawMessage // the response's ReturnValue ("null" when absent)
	Err          error           // nil when the invocation succeeded
}

// timerState is one timer function's runtime state.
type timerState struct {
	fn *timerFunc

	// run serializes invocations of this function (the host's _invocationLock): scheduled,
	// start-up, admin and Invoke runs never overlap. It also guards status.
	run    sync.Mutex
	status scheduleStatus
}

// scheduleStatus is the in-memory schedule monitor state (the host keeps it in blob storage).
type scheduleStatus struct {
	Last, Next, LastUpdated time.Time
}

// timerLoop is the body of the goroutine owning one function's schedule. As in the host's
// TimerListener, the next occurrence is computed from the start of the previous run and armed
// only after that run returned; an overrun gives one immediate catch-up run, and missed
// occurrences in between are not replayed.
func (h *Host) timerLoop(ts *timerState) {
	ctx := h.timersCtx
	now := time.Now().UTC()
	if ts.fn.runOnStartup {
		h.runTimer(ts, TriggerStartup)
	}
	next := ts.fn.schedule.Next(now)
	for {
		if !sleepUntil(ctx, next) {
			return
		}
		start := time.Now().UTC()
		h.runTimer(ts, TriggerSchedule)
		next = ts.fn.schedule.Next(start)
	}
}

// sleepUntil waits until t or ctx is done; it reports whether t was reached.
func sleepUntil(ctx context.Context, t time.Time) bool {
	timer := time.NewTimer(time.Until(t))
	defer timer.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-timer.C:
		return ctx.Err() == nil
	}
}

// runTimer runs one invocation unless the host is closing. It is called on the timer loop
// goroutine and on admin goroutines.
func (h *Host) runTimer(ts *timerState, trig Trigger) {
	if !h.beginInvocation() {
		return
	}
	defer h.invocations.Done()
	h.invokeTimer(h.invCtx, ts, trig)
}

// beginInvocation registers an invocation; false once Close started.
func (h *Host) beginInvocation() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closing {
		return false
	}
	h.invocations.Add(1)
	return true
}

// Invoke runs the timer function name now, as the admin endpoint does, but waits for the result.
// It blocks until the function's previous invocation (if any) and this one finished, or ctx is
// done. The invocation itself is bounded by functionTimeout.
func (h *Host) Invoke(ctx context.Context, name string) (InvocationResult, error) {
	ts, ok := h.timers[lower(name)]
	if !ok {
		return InvocationResult{}, fmt.Errorf("%w: %q", ErrUnknownFunction, name)
	}
	if !h.beginInvocation() {
		return InvocationResult{}, ErrClosed
	}
	defer h.invocations.Done()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(h.invCtx, cancel)
	defer stop()
	res := h.invokeTimer(ctx, ts, TriggerInvoke)
	return res, res.Err
}

// invokeTimer sends one timer invocation to the handler and logs its outcome.
func (h *Host) invokeTimer(ctx context.Context, ts *timerState, trig Trigger) InvocationResult {
	ts.run.Lock()
	defer ts.run.Unlock()
	if ctx.Err() != nil {
		return InvocationResult{Function: ts.fn.name, Trigger: trig, Err: ctx.Err()}
	}
	res := InvocationResult{Function: ts.fn.name, InvocationID: newGUID(), Trigger: trig, Start: time.Now()}
	log := h.log.With("function", ts.fn.name, "invocationId", res.InvocationID)
	log.Info("executing", "reason", trig)

	body := h.timerEnvelope(ts, res.Start)
	if h.app.functionTimeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, h.app.functionTimeout)
		defer cancel()
	}
	h.call(ctx, ts.fn.name, res.InvocationID, body, &res)
	res.Duration = time.Since(res.Start)
	if ctx.Err() == context.DeadlineExceeded && res.Err != nil {
		res.Err = fmt.Errorf("timeout value of %s exceeded by function %s (the Functions host would restart the handler): %w",
			h.app.functionTimeout, ts.fn.name, res.Err)
	}
	for _, l := range res.Logs {
		log.Info("function log", "line", l)
	}
	if res.Err != nil {
		log.Error("failed", "status", res.StatusCode, "duration", res.Duration, "err", res.Err)
	} else {
		log.Info("succeeded", "status", res.StatusCode, "duration", res.Duration, "returnValue", res.ReturnValue)
	}
	if h.opts.OnInvocation != nil {
		h.opts.OnInvocation(res)
	}
	return res
}

// timerEnvelope builds the host's request body: {"Data":{"<binding>":TimerInfo},"Metadata":{"sys":…}}.
// It updates the in-memory schedule status; the caller holds ts.run.
func (h *Host) timerEnvelope(ts *timerState, now time.Time) []byte {
	var status any // JSON null when the monitor is off
	if ts.fn.monitor {
		st := &ts.status
		next := ts.fn.schedule.Next(now.UTC())
		status = map[string]string{
			"Last":        netTime(st.Last),
			"Next":        netTime(next),
			"LastUpdated": netTime(now),
		}
		st.Last, st.Next, st.LastUpdated = now, next, now
	}
	env := map[string]any{
		"Data": map[string]any{
			ts.fn.binding: map[string]any{
				"Schedule":       map[string]bool{"AdjustForDST": true},
				"ScheduleStatus": status,
				"IsPastDue":      false,
			},
		},
		"Metadata": map[string]any{
			"sys": map[string]string{
				"MethodName": ts.fn.name,
				"UtcNow":     now.UTC().Format("2006-01-02T15:04:05.0000000Z"),
				"RandGuid":   newGUID(),
			},
		},
	}
	b, _ := json.Marshal(env) // maps of strings and bools cannot fail
	return b
}

// netTime formats t like .NET's DateTimeOffset round-trip format in UTC
// (2026-09-24T13:08:00.0096035+00:00); the zero time gives 0001-01-01T00:00:00+00:00.
func netTime(t time.Time) string {
	if t.IsZero() {
		return "0001-01-01T00:00:00+00:00"
	}
	return t.UTC().Format("2006-01-02T15:04:05.0000000-07:00")
}

// call POSTs body to /<function> on the handler and fills res from the response.
func (h *Host) call(ctx context.Context, fn, invocationID string, body []byte, res *InvocationResult) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, h.HandlerURL()+"/"+fn, bytes.NewReader(body))
	if err != nil {
		res.Err = err
		return
	}
	setHostHeaders(req.Header, invocationID)
	req.Header.Set("Content-Type", "application/json; charset=utf-8")
	resp, err := h.client.Do(req)
	if err != nil {
		res.Err = fmt.Errorf("calling handler: %w", err)
		return
	}
	defer resp.Body.Close()
	res.StatusCode = resp.StatusCode
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		res.Err = fmt.Errorf("reading handler response: %w", err)
		return
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		res.Err = fmt.Errorf("handler answered %s: %s", resp.Status, truncate(string(raw), 2000))
		return
	}
	decodeInvocationResponse(resp.Header.Get("Content-Type"), raw, res)
}

// decodeInvocationResponse applies the host's reading of {"Outputs","Logs","ReturnValue"}.
func decodeInvocationResponse(contentType string, raw []byte, res *InvocationResult) {
	res.ReturnValue = json.RawMessage("null")
	if len(bytes.TrimSpace(raw)) == 0 {
		res.Err = fmt.Errorf("handler answered %d with an empty body; the Functions host would wait until functionTimeout and then restart the handler", res.StatusCode)
		return
	}
	if !strings.Contains(strings.ToLower(contentType), "json") {
		res.Err = fmt.Errorf("handler answered Content-Type %q; the Functions host needs application/json", contentType)
		return
	}
	var out struct {
		Outputs     json.RawMessage `json:"Outputs"`
		Logs        []string        `json:"Logs"`
		ReturnValue json.RawMessage `json:"ReturnValue"`
	}
	// The host matches keys case-insensitively, as encoding/json does.
	if err := json.Unmarshal(raw, &out); err != nil {
		res.Err = fmt.Errorf("handler response is not an invocation result object: %w", err)
		return
	}
	res.Logs = out.Logs
	if len(out.ReturnValue) > 0 {
		res.ReturnValue = out.ReturnValue
	}
}

func setHostHeaders(hd http.Header, invocationID string) {
	hd.Set("X-Azure-Functions-InvocationId", invocationID)
	hd.Set("X-Azure-Functions-HostVersion", HostVersion)
	hd.Set("User-Agent", "Azure-Functions-Host/"+HostVersion)
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

func lower(s string) string { return strings.ToLower(s) }
