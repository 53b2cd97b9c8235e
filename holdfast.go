// Package holdfast is the entry point of a holdfast custom handler: an Azure Functions custom handler that
// receives Service Bus messages on a timer, keeps their locks renewed while your processor works, settles
// them by the processor's outcome, records deferred messages in a Table Storage ledger, brings them back when
// they are due, and serves the deferred-message drain over HTTP.
//
// Your own handler is a program of a few lines in your own module:
//
//	func main() { holdfast.Main(myProcessor{}) }
//
// where myProcessor implements processor.Processor. Main reads the same app settings as the built-in handler
// (see the README's configuration table), serves on FUNCTIONS_CUSTOMHANDLER_PORT and exits when the host
// stops it. Run does the same for a caller that owns the process (tests, an embedding program).
//
// The same binary also runs without the Functions host (standalone mode, see Mode): `handler run-once` performs
// one run and exits with a code that says whether anything was lost, `handler worker` performs runs until
// SIGTERM, and `handler serve` serves the drain and the operator page.
//
// The public surface is this package, processor (the interface you implement), lockrenew (the lock renewer,
// usable on its own) and holdfasttest (the emulator and Azurite for your processor's tests).
package holdfast

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/holdfast-dev/holdfast/internal/process"
	"github.com/holdfast-dev/holdfast/processor"
)

// Exit codes of Main, also returned by ExitCode.
const (
	ExitOK     = 0 // stopped by a signal (or ctx) after a clean shutdown; run-once: nothing lost or abandoned
	ExitFailed = 1 // the listener could not open, the server failed, shutdown was incomplete; run-once: the run failed
	ExitConfig = 2 // invalid settings, start-up wiring or arguments (the one stderr line names the problem)
	// ExitLost (run-once): the run finished, but a lock was lost or a processor was stuck: a message may be
	// processed again (Service Bus redelivers it), so the work must be idempotent or looked at.
	ExitLost = 3
	// ExitAbandoned (run-once): the run finished and nothing was lost, but messages were abandoned (a processor
	// failure, the budget's end, a defer without a ledger): Service Bus redelivers them.
	ExitAbandoned = 4
)

// ErrConfig is wrapped by Run's error when the settings are invalid or the handler cannot be wired; the
// error names the setting and the fix. ExitCode maps it to ExitConfig.
var ErrConfig = errors.New("holdfast: invalid configuration")

// ErrServe is wrapped by Run's error when the listener cannot open, the server fails, or shutdown does not
// finish in time. ExitCode maps it to ExitFailed.
var ErrServe = errors.New("holdfast: serve failed")

// Errors of a run-once run (ModeRunOnce), after the run: ErrRunFailed (the run failed: receiving or connecting;
// ExitFailed), ErrLost (a lock was lost or a processor stuck; ExitLost), ErrAbandoned (messages were abandoned;
// ExitAbandoned). The summary is printed either way.
var (
	ErrRunFailed = errors.New("holdfast: run failed")
	ErrLost      = errors.New("holdfast: locks lost or processors stuck")
	ErrAbandoned = errors.New("holdfast: messages abandoned")
)

// Options configure Run. A nil *Options, and every zero field, means the default: what Main does.
type Options struct {
	// Mode is what Run does: ModeHandler (the zero value: the Functions custom handler), ModeRunOnce,
	// ModeWorker or ModeServe. Main takes it from the command line (ParseArgs).
	Mode Mode
	// Processor handles every message. nil ⇒ the built-in processor named by HOLDFAST_PROCESSOR ("demo" or
	// "webhook"), which is what the repository's own handler runs. When Processor is set, HOLDFAST_PROCESSOR
	// and the webhook settings are ignored (a start-up log line says so).
	Processor processor.Processor
	// Getenv reads the app settings. nil ⇒ os.Getenv.
	Getenv func(string) string
	// Dir is where host.json is read from (functionTimeout bounds the run budget). "" ⇒ the working
	// directory, which the Functions host sets to the app root. Standalone modes do not read host.json.
	Dir string
	// Stdout receives the slog JSON logs (the Functions host records stderr lines as errors). nil ⇒ os.Stdout.
	Stdout io.Writer
	// Stderr receives one line when start-up fails. nil ⇒ os.Stderr.
	Stderr io.Writer
	// Ready, if set, is called once with the listener's address (host:port) when the handler accepts
	// connections (ModeHandler, ModeServe). FUNCTIONS_CUSTOMHANDLER_PORT "0", or HOLDFAST_LISTEN_ADDR
	// "127.0.0.1:0", picks a free port.
	Ready func(addr string)
	// NoMessageWait: a run whose receive gets nothing for this long stops receiving, so a run over an empty
	// queue ends quickly. 0 ⇒ 5 s. Tests shorten it.
	NoMessageWait time.Duration
}

// Summary is the result of one ProcessQueue run, the invocation's ReturnValue: how many messages were
// received, completed, abandoned, dead-lettered, deferred, taken back because due, lost their lock, or had a
// processor that ignored its context (stuck), and the renewals made.
type Summary = process.Summary

// Main runs the handler with p in the mode the command line names (ParseArgs: no argument is the Functions
// custom handler; run-once, worker or serve run standalone) and exits the process with ExitCode's code. It
// never returns. p nil runs the built-in processor named by HOLDFAST_PROCESSOR.
//
// As a custom handler, the listener opens before anything slow happens (the host gives a custom handler 30 s
// to start): Service Bus and Table clients do no network I/O until the first invocation. SIGTERM or SIGINT
// cancels the run in progress (its messages are abandoned), then the handler shuts down.
func Main(p processor.Processor) {
	mode, err := ParseArgs(os.Args[1:])
	if err != nil {
		fmt.Fprintf(os.Stderr, "holdfast: %v\n%s", err, Usage)
		os.Exit(ExitConfig)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	code := ExitCode(Run(ctx, &Options{Mode: mode, Processor: p}))
	stop()
	os.Exit(code)
}

// Run wires the handler from the app settings and runs it in Options.Mode. As a custom handler (and in
// ModeServe) it serves until ctx is cancelled, then shuts down and returns nil after a clean shutdown, or an
// error wrapping ErrServe. ModeRunOnce returns after one run (see ErrRunFailed, ErrLost, ErrAbandoned),
// ModeWorker once ctx is cancelled and the run in progress has abandoned what it held. An error wrapping
// ErrConfig means nothing was run or served. Logs go to Options.Stdout as slog JSON; a start-up failure is also
// written as one line to Options.Stderr.
func Run(ctx context.Context, opts *Options) error {
	var o Options
	if opts != nil {
		o = *opts
	}
	if o.Getenv == nil {
		o.Getenv = os.Getenv
	}
	if o.Dir == "" {
		o.Dir = "."
	}
	if o.Stdout == nil {
		o.Stdout = os.Stdout
	}
	if o.Stderr == nil {
		o.Stderr = os.Stderr
	}
	return run(ctx, o)
}

// ExitCode maps Run's error to Main's exit code.
func ExitCode(err error) int {
	switch {
	case err == nil:
		return ExitOK
	case errors.Is(err, ErrConfig):
		return ExitConfig
	case errors.Is(err, ErrLost):
		return ExitLost
	case errors.Is(err, ErrAbandoned):
		return ExitAbandoned
	default:
		return ExitFailed
	}
}
