// Command devhost runs a custom-handler function app locally: a stand-in for `func start` when
// Azure Functions Core Tools are not installed. See package internal/devhost for what it does and
// does not do.
//
//	go run ./cmd/devhost -script-root dist -settings local.settings.json -addr 127.0.0.1:7071
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/holdfast-dev/holdfast/internal/devhost"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run is the whole program: 0 after a clean shutdown when ctx is done, 1 when the app cannot be
// loaded or the handler fails, 2 for bad flags.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("devhost", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		root     = fs.String("script-root", "dist", "function app root (host.json and one folder per function)")
		settings = fs.String("settings", "", "local.settings.json path (default <script-root>/local.settings.json)")
		addr     = fs.String("addr", "127.0.0.1:7071", "listen address for /api/<route> and /admin/functions/<name>")
		level    = fs.String("log-level", "info", "log level: debug, info, warn, error")
		format   = fs.String("log-format", "auto", "log format: text (readable lines), json, or auto (text when stdout is a terminal)")
		drain    = fs.Duration("drain-timeout", 30*time.Second, "how long shutdown waits for running invocations")
	)
	if err := fs.Parse(args); err != nil {
		return 2
	}
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(*level)); err != nil {
		fmt.Fprintf(stderr, "devhost: -log-level: %v\n", err)
		return 2
	}
	log, err := newLogger(*format, stdout, lv)
	if err != nil {
		fmt.Fprintf(stderr, "devhost: -log-format: %v\n", err)
		return 2
	}
	h, err := devhost.New(&devhost.Options{
		ScriptRoot: *root, SettingsPath: *settings, Addr: *addr, Logger: log, DrainTimeout: *drain,
	})
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	if err := h.Start(ctx); err != nil {
		h.Close()
		fmt.Fprintln(stderr, err)
		return 1
	}
	select {
	case <-ctx.Done():
		log.Info("shutting down")
	case <-h.Done():
	}
	if err := h.Close(); err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	log.Info("stopped")
	return 0
}

// newLogger returns the dev host's logger: readable lines (devhost.NewConsoleHandler) for "text", JSON for
// "json", and for "auto" text when w is a terminal, JSON otherwise (a pipe or a file gets JSON lines).
func newLogger(format string, w io.Writer, level slog.Level) (*slog.Logger, error) {
	opts := &slog.HandlerOptions{Level: level}
	switch {
	case format == "text", format == "auto" && isTerminal(w):
		return slog.New(devhost.NewConsoleHandler(w, opts)), nil
	case format == "json", format == "auto":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("%q: use text, json or auto", format)
}

// isTerminal reports whether w is a character device (a terminal), without a dependency: a file, a pipe or a
// buffer is not.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}
