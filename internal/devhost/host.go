package devhost

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"
)

// Sentinel errors; callers branch on them with errors.Is.
var (
	// ErrHandlerExited means the custom handler process ended on its own, at start-up or later.
	ErrHandlerExited = errors.New("devhost: custom handler exited")
	// ErrNotReady means the handler did not answer HTTP within Options.ReadyTimeout.
	ErrNotReady = errors.New("devhost: custom handler not ready")
	// ErrClosed is returned for work requested after Close began.
	ErrClosed = errors.New("devhost: host closed")
	// ErrUnknownFunction is returned by Invoke for a name that is not a timer function.
	ErrUnknownFunction = errors.New("devhost: unknown timer function")
)

// HostVersion is sent in X-Azure-Functions-HostVersion and User-Agent.
const HostVersion = "4.0.0-holdfast-devhost"

// Options configure a Host. A nil *Options or a zero field means the default.
type Options struct {
	// ScriptRoot is the function app root holding host.json and one folder per function.
	// Default "dist".
	ScriptRoot string
	// SettingsPath is local.settings.json; a missing file means no Values. Default
	// <ScriptRoot>/local.settings.json.
	SettingsPath string
	// Addr is the listen address for /api/<route> and /admin. Default "127.0.0.1:7071"; use
	// "127.0.0.1:0" in tests.
	Addr string
	// Environ is the dev host's process environment, which wins over Values. Default os.Environ().
	Environ []string
	// Logger receives the host's records and the handler's output. Default slog.Default().
	Logger *slog.Logger
	// ReadyTimeout bounds the wait for the handler to answer HTTP. Default 30 s (the host's
	// InitializationTimeout).
	ReadyTimeout time.Duration
	// DrainTimeout bounds how long Close waits for running invocations before cancelling them.
	// Default 30 s.
	DrainTimeout time.Duration
	// KillGrace is how long the handler has to exit after SIGTERM before SIGKILL. Default 10 s.
	KillGrace time.Duration
	// OnInvocation, if set, is called after each timer invocation (scheduled, start-up, admin or
	// Invoke) on the goroutine that ran it. It must not block for long.
	OnInvocation func(InvocationResult)
}

func (o *Options) withDefaults() Options {
	var r Options
	if o != nil {
		r = *o
	}
	if r.ScriptRoot == "" {
		r.ScriptRoot = "dist"
	}
	if r.SettingsPath == "" {
		r.SettingsPath = r.ScriptRoot + string(os.PathSeparator) + "local.settings.json"
	}
	if r.Addr == "" {
		r.Addr = "127.0.0.1:7071"
	}
	if r.Environ == nil {
		r.Environ = os.Environ()
	}
	if r.Logger == nil {
		r.Logger = slog.Default()
	}
	if r.ReadyTimeout <= 0 {
		r.ReadyTimeout = 30 * time.Second
	}
	if r.DrainTimeout <= 0 {
		r.DrainTimeout = 30 * time.Second
	}
	if r.KillGrace <= 0 {
		r.KillGrace = 10 * time.Second
	}
	return r
}

// Host runs one function app. Methods are safe for concurrent use. Lifecycle: New, Start once,
// Close once (Close without Start is fine).
type Host struct {
	opts Options
	log  *slog.Logger
	app  *app

	// ctx is cancelled by Close after invocations drained; it stops the handler process.
	ctx    context.Context
	cancel context.CancelFunc
	// stopTimers is cancelled first in Close: no new scheduled runs.
	timersCtx  context.Context
	stopTimers context.CancelFunc
	// invCtx is the parent of every invocation; cancelled when DrainTimeout passes in Close.
	invCtx    context.Context
	cancelInv context.CancelFunc

	timers map[string]*timerState // by lower-case name; immutable after New
	client *http.Client           // calls the handler; safe for concurrent use

	mu       sync.Mutex // guards the fields below
	started  bool
	closing  bool
	proc     *handlerProc
	ln       net.Listener
	srv      *http.Server
	failErr  error         // why done was closed
	done     chan struct{} // closed when the host stops serving (handler exit or Close)
	doneOnce sync.Once

	// loops counts the timer loop goroutines, the handler wait goroutine and the HTTP server
	// goroutine; invocations counts running invocations (scheduled, admin, Invoke).
	loops       sync.WaitGroup
	invocations sync.WaitGroup
}

// New loads and validates the function app. It starts nothing.
func New(opts *Options) (*Host, error) {
	o := opts.withDefaults()
	a, err := loadApp(o.ScriptRoot, o.SettingsPath, o.Environ)
	if err != nil {
		return nil, err
	}
	h := &Host{opts: o, log: o.Logger, app: a, timers: map[string]*timerState{}, done: make(chan struct{})}
	h.ctx, h.cancel = context.WithCancel(context.Background())
	h.timersCtx, h.stopTimers = context.WithCancel(h.ctx)
	h.invCtx, h.cancelInv = context.WithCancel(h.ctx)
	for _, t := range a.timers {
		h.timers[lower(t.name)] = &timerState{fn: t}
	}
	var timeout time.Duration // the host's client timeout: functionTimeout + 1 min, or none
	if a.functionTimeout > 0 {
		timeout = a.functionTimeout + time.Minute
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.Proxy = nil // the handler is always on 127.0.0.1
	h.client = &http.Client{
		Transport:     tr,
		Timeout:       timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	return h, nil
}

// Start listens on Options.Addr, launches the handler, waits until it answers HTTP, then starts
// serving HTTP and the timer schedules (runOnStartup timers fire at once). ctx bounds start-up
// only. On error everything started is stopped again; the host must still be Closed.
func (h *Host) Start(ctx context.Context) error {
	h.mu.Lock()
	if h.started || h.closing {
		h.mu.Unlock()
		return fmt.Errorf("devhost: Start called twice or after Close")
	}
	h.started = true
	h.mu.Unlock()

	if h.app.settingsFileUsed == "" {
		h.log.Warn("no local.settings.json found; the handler gets only the process environment", "path", h.opts.SettingsPath)
	}
	if !strings.EqualFold(h.app.workerRuntime, "custom") {
		h.log.Warn("FUNCTIONS_WORKER_RUNTIME should be \"custom\" for a custom handler", "value", h.app.workerRuntime)
	}
	for _, k := range h.app.settingsSkipped {
		h.log.Info("skipping setting from local.settings.json: already defined in the process environment", "name", k)
	}
	ln, err := net.Listen("tcp", h.opts.Addr)
	if err != nil {
		return fmt.Errorf("devhost: listen %s: %w", h.opts.Addr, err)
	}
	proc, err := startHandler(h.ctx, h.app, newGUID(), h.log, h.opts.KillGrace)
	if err != nil {
		ln.Close()
		return err
	}
	h.mu.Lock()
	h.proc, h.ln = proc, ln
	h.mu.Unlock()
	h.loops.Add(1)
	go func() {
		defer h.loops.Done()
		proc.wait()
		h.handlerExited(proc)
	}()

	if err := proc.waitReady(ctx, h.opts.ReadyTimeout); err != nil {
		h.fail(err)
		return err
	}
	h.log.Info("handler ready", "port", proc.port)
	h.serve(ln)
	for _, ts := range h.timers {
		h.loops.Add(1)
		go func() {
			defer h.loops.Done()
			h.timerLoop(ts)
		}()
	}
	h.logFunctions()
	return nil
}

func (h *Host) logFunctions() {
	for _, t := range h.app.timers {
		h.log.Info("function", "name", t.name, "trigger", "timerTrigger", "schedule", t.scheduleText, "runOnStartup", t.runOnStartup)
	}
	for _, f := range h.app.https {
		h.log.Info("function", "name", f.name, "trigger", "httpTrigger", "url", "http://"+h.Addr()+"/"+f.route.template,
			"authLevel", f.authLevel, "forwarded", f.forward)
	}
}

// handlerExited runs on the wait goroutine after the process ended.
func (h *Host) handlerExited(proc *handlerProc) {
	h.mu.Lock()
	closing := h.closing
	h.mu.Unlock()
	if closing {
		h.log.Info("handler stopped", "state", proc.cmd.ProcessState.String())
		return
	}
	err := proc.exitError()
	h.log.Error("handler exited; the dev host stops (the Functions host would restart it)", "err", err)
	h.fail(err)
}

// fail records the first failure and closes Done.
func (h *Host) fail(err error) {
	h.mu.Lock()
	if h.failErr == nil {
		h.failErr = err
	}
	h.mu.Unlock()
	h.doneOnce.Do(func() { close(h.done) })
}

// Done is closed when the host stops serving: the handler exited on its own, or Close was called.
func (h *Host) Done() <-chan struct{} { return h.done }

// Err returns why the host stopped on its own (wrapping ErrHandlerExited or ErrNotReady), or nil.
func (h *Host) Err() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.failErr
}

// Addr returns the address the host listens on (host:port), or "" before Start.
func (h *Host) Addr() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.ln == nil {
		return ""
	}
	return h.ln.Addr().String()
}

// HandlerPID returns the handler's process id, or 0 before Start.
func (h *Host) HandlerPID() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.proc == nil {
		return 0
	}
	return h.proc.cmd.Process.Pid
}

// HandlerURL returns the handler's base URL (http://127.0.0.1:<port>), or "" before Start.
func (h *Host) HandlerURL() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.proc == nil {
		return ""
	}
	return fmt.Sprintf("http://127.0.0.1:%d", h.proc.port)
}

// Close stops the timer schedules and new HTTP requests, waits up to DrainTimeout for running
// invocations and forwarded requests, cancels what is left, sends SIGTERM to the handler (SIGKILL
// after KillGrace) and waits for it and for every goroutine the host started. It returns the
// failure recorded by Err, if any. Safe to call more than once.
func (h *Host) Close() error {
	h.mu.Lock()
	already := h.closing
	h.closing = true
	srv := h.srv
	ln := h.ln
	h.mu.Unlock()
	if already {
		h.loops.Wait()
		return h.Err()
	}
	h.stopTimers()
	drainCtx, cancelDrain := context.WithTimeout(context.Background(), h.opts.DrainTimeout)
	defer cancelDrain()
	if srv != nil {
		if err := srv.Shutdown(drainCtx); err != nil {
			h.log.Warn("HTTP shutdown incomplete; closing open connections", "err", err)
			srv.Close()
		}
	} else if ln != nil {
		ln.Close()
	}
	if !waitGroupWithin(&h.invocations, drainCtx) {
		h.log.Warn("invocations still running after the drain timeout; cancelling them", "timeout", h.opts.DrainTimeout)
	}
	h.cancelInv()
	h.invocations.Wait()
	h.cancel() // SIGTERM to the handler
	h.loops.Wait()
	h.client.CloseIdleConnections()
	h.doneOnce.Do(func() { close(h.done) })
	return h.Err()
}

// waitGroupWithin waits for wg until ctx is done; it reports whether wg finished. The helper
// goroutine it starts ends when wg does, which the caller waits for afterwards.
func waitGroupWithin(wg *sync.WaitGroup, ctx context.Context) bool {
	ch := make(chan struct{})
	go func() { wg.Wait(); close(ch) }()
	select {
	case <-ch:
		return true
	case <-ctx.Done():
		return false
	}
}

func newGUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}
