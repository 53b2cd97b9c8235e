// Command handler is the holdfast Azure Functions custom handler. It only wires: settings → config →
// processor, ledger, run service → HTTP server on 127.0.0.1:$FUNCTIONS_CUSTOMHANDLER_PORT.
//
// The listener opens before anything slow happens (the host gives the handler 30 s): Service Bus and Table
// clients do no network I/O until the first invocation. Logs are slog JSON on stdout (the host records stderr
// as errors); a configuration error is also printed as one line on stderr and exits with status 2. SIGTERM or
// SIGINT cancels the run in progress (its messages are abandoned) and shuts the server down.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/data/aztables"
	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus"

	"github.com/holdfast-dev/holdfast/internal/config"
	"github.com/holdfast-dev/holdfast/internal/httpapi"
	"github.com/holdfast-dev/holdfast/internal/ledger"
	"github.com/holdfast-dev/holdfast/internal/process"
	"github.com/holdfast-dev/holdfast/internal/processors"
)

const (
	portEnv     = "FUNCTIONS_CUSTOMHANDLER_PORT"
	defaultPort = "8080" // when run outside the host
	// shutdownTimeout bounds the graceful shutdown after a signal: the cancelled run abandons its
	// messages, then the server and the client close.
	shutdownTimeout = 30 * time.Second
)

// Exit codes.
const (
	exitOK     = 0
	exitFailed = 1
	exitConfig = 2
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	os.Exit(run(ctx, env{getenv: os.Getenv, dir: ".", stdout: os.Stdout, stderr: os.Stderr}))
}

// env is what run takes from the process, so tests can supply their own.
type env struct {
	getenv         func(string) string
	dir            string // where host.json is looked for
	stdout, stderr io.Writer
	ready          func(addr string) // called once the listener is open; may be nil
}

// run wires and serves until ctx is cancelled; it returns the exit code.
func run(ctx context.Context, e env) int {
	logger := slog.New(slog.NewJSONHandler(e.stdout, nil))
	cfg, err := loadConfig(e)
	if err != nil {
		fmt.Fprintf(e.stderr, "holdfast: invalid configuration: %v\n", oneLine(err))
		logger.Error("invalid configuration", slog.Any("error", err))
		return exitConfig
	}
	h, err := wire(cfg, logger)
	if err != nil {
		fmt.Fprintf(e.stderr, "holdfast: %v\n", oneLine(err))
		logger.Error("start-up failed", slog.Any("error", err))
		return exitConfig
	}

	port := e.getenv(portEnv)
	if port == "" {
		port = defaultPort
	}
	ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", port))
	if err != nil {
		fmt.Fprintf(e.stderr, "holdfast: listen on port %s (%s): %v\n", port, portEnv, err)
		logger.Error("listen failed", slog.String("port", port), slog.Any("error", err))
		return exitFailed
	}
	logger.Info("listening", slog.String("addr", ln.Addr().String()), slog.String("entity", cfg.Entity.String()),
		slog.String("runBudget", cfg.RunBudget.String()), slog.String("processor", cfg.Processor))
	if e.ready != nil {
		e.ready(ln.Addr().String())
	}
	return serve(ctx, ln, h, logger)
}

func loadConfig(e env) (*config.Config, error) {
	timeout, err := config.FunctionTimeoutFromDir(e.dir)
	if err != nil {
		return nil, err
	}
	return config.LoadWith(e.getenv, &config.LoadOptions{FunctionTimeout: timeout})
}

// handler is the wired application.
type handler struct {
	http    http.Handler
	service *process.Service
	drain   *lazyDrain // nil without deferral storage
}

func wire(cfg *config.Config, logger *slog.Logger) (*handler, error) {
	proc, err := processors.New(cfg.Processor, cfg)
	if err != nil {
		return nil, err
	}
	l, err := newLedger(cfg, logger)
	if err != nil {
		return nil, err
	}
	var deferrer process.Deferrer
	opts := &httpapi.Options{Logger: logger}
	var d *lazyDrain
	if l != nil {
		deferrer = process.DeferrerFunc(func(ctx context.Context, s process.DeferSettler, msg *azservicebus.ReceivedMessage, notBefore time.Time, reason string) error {
			return l.Defer(ctx, s, msg, notBefore, reason)
		})
		d = &lazyDrain{cfg: cfg, ledger: l, logger: logger}
		opts.DeferredList, opts.DeferredAction = d.List, d.Action
	}
	svc, err := process.NewService(&process.ServiceOptions{Config: cfg, Processor: proc, Deferrer: deferrer, Logger: logger})
	if err != nil {
		return nil, err
	}
	opts.Runner = svc
	e, err := httpapi.New(opts)
	if err != nil {
		return nil, err
	}
	return &handler{http: e, service: svc, drain: d}, nil
}

// newLedger builds the deferral ledger from DeferralStorage; without it (nil, nil), defer outcomes are
// abandoned and the drain routes answer 501.
func newLedger(cfg *config.Config, logger *slog.Logger) (*ledger.Ledger, error) {
	st := cfg.Storage
	if !st.IsSet() {
		logger.Warn("no deferral storage configured: defer outcomes will be abandoned and the drain is off",
			slog.String("setting", config.SettingStorage))
		return nil, nil
	}
	var (
		client *aztables.Client
		err    error
	)
	if st.ConnectionString != "" {
		client, err = ledger.NewClientFromConnectionString(st.ConnectionString, cfg.DeferralTable, nil)
	} else {
		cred, cerr := st.TokenCredential()
		if cerr != nil {
			return nil, cerr
		}
		client, err = ledger.NewClientWithCredential(st.Endpoint, cfg.DeferralTable, cred, nil)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", config.SettingStorage, err)
	}
	return ledger.New(client, &ledger.Options{Entity: cfg.Entity.String(), Logger: logger})
}

// serve serves on ln until ctx is cancelled, then shuts down: request contexts are cancelled so a run in
// progress abandons its messages, the server drains, the Service Bus client closes.
func serve(ctx context.Context, ln net.Listener, h *handler, logger *slog.Logger) int {
	baseCtx, cancelBase := context.WithCancel(context.Background())
	defer cancelBase()
	srv := &http.Server{
		Handler:           h.http,
		ReadHeaderTimeout: 10 * time.Second,
		BaseContext:       func(net.Listener) context.Context { return baseCtx },
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()

	code := exitOK
	select {
	case <-ctx.Done():
		logger.Info("shutting down", slog.Any("cause", context.Cause(ctx)))
	case err := <-serveErr:
		logger.Error("server failed", slog.Any("error", err))
		code = exitFailed
	}
	cancelBase() // cancels in-flight runs: they stop, abandon what they hold and answer
	sctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		logger.Error("shutdown incomplete", slog.Any("error", err))
		code = exitFailed
	}
	if err := <-serveErr; err != nil && !errors.Is(err, http.ErrServerClosed) {
		code = exitFailed
	}
	if err := h.service.Close(sctx); err != nil {
		logger.Warn("closing the Service Bus client failed", slog.Any("error", err))
	}
	if err := h.drain.Close(sctx); err != nil {
		logger.Warn("closing the drain's Service Bus client failed", slog.Any("error", err))
	}
	logger.Info("stopped")
	return code
}

// oneLine flattens a (possibly joined) error for the single stderr line.
func oneLine(err error) string {
	s := err.Error()
	out := make([]rune, 0, len(s))
	for _, r := range s {
		if r == '\n' {
			out = append(out, ';', ' ')
			continue
		}
		out = append(out, r)
	}
	return string(out)
}
