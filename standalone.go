package holdfast

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/holdfast-dev/holdfast/internal/config"
)

// Mode is what the handler does. The zero value is the Functions custom handler; the others run the same
// settings, ledger and drain without the Functions host (standalone mode).
type Mode string

// Modes, named as on the command line.
const (
	// ModeHandler serves the Functions host: timer runs arrive as POST /ProcessQueue, the drain as /api/….
	ModeHandler Mode = ""
	// ModeRunOnce performs one run, prints its result as the last line of stdout and returns (see ExitCode).
	ModeRunOnce Mode = "run-once"
	// ModeWorker performs runs one after another until ctx is cancelled (SIGTERM): the run in progress is
	// cancelled, abandons what it holds within the settle and close timeouts, and the worker returns.
	ModeWorker Mode = "worker"
	// ModeServe serves the drain and the operator page (not ProcessQueue) on HOLDFAST_LISTEN_ADDR.
	ModeServe Mode = "serve"
)

// SettingListenAddr is where ModeServe listens (host:port). The drain has no authentication of its own, so
// the default is the loopback interface; expose it only behind something that authenticates.
const SettingListenAddr = "HOLDFAST_LISTEN_ADDR"

// DefaultListenAddr is ModeServe's address when HOLDFAST_LISTEN_ADDR is unset.
const DefaultListenAddr = "127.0.0.1:8080"

// Usage is the command line's help, printed with an unknown argument.
const Usage = `usage: handler [run-once | worker | serve]
  (none)    Azure Functions custom handler: serve the host on 127.0.0.1:$FUNCTIONS_CUSTOMHANDLER_PORT
  run-once  one run within HOLDFAST_RUN_BUDGET; the result is the last stdout line; exit 0 ok, 1 run failed,
            2 bad settings, 3 a lock was lost or a processor stuck, 4 messages were abandoned
  worker    runs one after another until SIGTERM, then abandon what is held and exit
  serve     the drain and the operator page on HOLDFAST_LISTEN_ADDR (default 127.0.0.1:8080)
`

// ErrUsage is wrapped by ParseArgs's error for an unknown command line.
var ErrUsage = errors.New("holdfast: unknown command line")

// ParseArgs returns the mode named by the command line's arguments (os.Args[1:]): none, or one of run-once,
// worker, serve.
func ParseArgs(args []string) (Mode, error) {
	switch {
	case len(args) == 0:
		return ModeHandler, nil
	case len(args) > 1:
		return "", fmt.Errorf("%w: %q: one mode at most", ErrUsage, args)
	}
	m := Mode(args[0])
	if err := m.validate(); err != nil || m == ModeHandler {
		return "", fmt.Errorf("%w: %q is not a mode", ErrUsage, args[0])
	}
	return m, nil
}

// Standalone reports whether m runs without the Functions host.
func (m Mode) Standalone() bool { return m != ModeHandler }

// String is the mode's command-line name ("handler" for the custom handler).
func (m Mode) String() string {
	if m == ModeHandler {
		return "handler"
	}
	return string(m)
}

func (m Mode) validate() error {
	switch m {
	case ModeHandler, ModeRunOnce, ModeWorker, ModeServe:
		return nil
	}
	return fmt.Errorf("%w: unknown mode %q (use run-once, worker or serve)", ErrUsage, string(m))
}

// RunResult is the last line run-once prints on stdout: how the run ended, the exit code Main exits with,
// the run's summary and, for a failed run, the error.
type RunResult struct {
	// Result is "ok", "failed", "lost" or "abandoned" (see ExitOK … ExitAbandoned).
	Result   string  `json:"result"`
	ExitCode int     `json:"exitCode"`
	Summary  Summary `json:"summary"`
	Error    string  `json:"error,omitempty"`
}

// runOnce performs one run, prints its RunResult as the last stdout line and returns the error that gives
// its exit code.
func runOnce(ctx context.Context, h *handler, cfg *config.Config, o Options, logger *slog.Logger) error {
	logger.Info("run-once starting", slog.String("entity", cfg.Entity.String()), slog.String("runBudget", cfg.RunBudget.String()),
		slog.String("processor", h.processorName))
	sum, runErr := h.service.Run(ctx)
	closeStandalone(h, logger)

	err := outcome(sum, runErr)
	res := RunResult{Result: "ok", ExitCode: ExitCode(err), Summary: sum}
	switch {
	case errors.Is(err, ErrRunFailed):
		res.Result, res.Error = "failed", runErr.Error()
	case errors.Is(err, ErrLost):
		res.Result = "lost"
	case errors.Is(err, ErrAbandoned):
		res.Result = "abandoned"
	}
	line, jerr := json.Marshal(res)
	if jerr != nil { // a Summary always marshals; keep the contract anyway
		line = []byte(`{"result":"failed","exitCode":1}`)
	}
	if _, werr := fmt.Fprintf(o.Stdout, "%s\n", line); werr != nil && err == nil {
		err = fmt.Errorf("%w: writing the result: %w", ErrServe, werr)
	}
	return err
}

// outcome maps a run's summary and error to run-once's error (nil when nothing was lost or abandoned).
func outcome(sum Summary, runErr error) error {
	switch {
	case runErr != nil:
		return fmt.Errorf("%w: %w", ErrRunFailed, runErr)
	case sum.LocksLost > 0 || sum.Stuck > 0:
		return fmt.Errorf("%w: %d locks lost, %d processors stuck", ErrLost, sum.LocksLost, sum.Stuck)
	case sum.Abandoned > 0:
		return fmt.Errorf("%w: %d abandoned", ErrAbandoned, sum.Abandoned)
	}
	return nil
}

// Worker back-off after a failed run (connection or receive failure), doubling up to the maximum.
const (
	workerBackoffMin = time.Second
	workerBackoffMax = 30 * time.Second
)

// work performs runs until ctx is cancelled. A run over an empty queue ends after the no-message wait, so an
// idle worker polls with one long receive at a time; a failed run is retried after a growing pause. On
// cancellation the run in progress abandons what it holds (bounded by the settle and close timeouts) before
// work returns nil.
func work(ctx context.Context, h *handler, cfg *config.Config, logger *slog.Logger) error {
	logger.Info("worker starting", slog.String("entity", cfg.Entity.String()), slog.String("runBudget", cfg.RunBudget.String()),
		slog.String("processor", h.processorName))
	var backoff time.Duration
	runs := 0
	for ctx.Err() == nil {
		_, err := h.service.Run(ctx) // logs "run finished" / "run failed" with the summary
		runs++
		if err == nil || ctx.Err() != nil {
			backoff = 0
			continue
		}
		backoff = min(max(2*backoff, workerBackoffMin), workerBackoffMax)
		logger.Warn("worker: run failed; retrying", slog.Duration("after", backoff), slog.Any("error", err))
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
		case <-t.C:
		}
	}
	logger.Info("worker stopping", slog.Int("runs", runs), slog.Any("cause", context.Cause(ctx)))
	closeStandalone(h, logger)
	logger.Info("stopped")
	return nil
}

// closeStandalone closes the clients after the last run, within the shutdown timeout.
func closeStandalone(h *handler, logger *slog.Logger) {
	ctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	h.close(ctx, logger)
}
