package holdfast

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/data/aztables"
	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus"

	"github.com/holdfast-dev/holdfast/internal/config"
	"github.com/holdfast-dev/holdfast/internal/due"
	"github.com/holdfast-dev/holdfast/internal/httpapi"
	"github.com/holdfast-dev/holdfast/internal/ledger"
	"github.com/holdfast-dev/holdfast/internal/process"
	"github.com/holdfast-dev/holdfast/internal/processors"
	"github.com/holdfast-dev/holdfast/internal/ui"
	"github.com/holdfast-dev/holdfast/processor"
)

// Wiring: settings → config → processor, ledger, run service, drain → echo routes → HTTP server on
// 127.0.0.1:$FUNCTIONS_CUSTOMHANDLER_PORT.

const (
	portEnv     = "FUNCTIONS_CUSTOMHANDLER_PORT"
	defaultPort = "8080" // when run outside the host
	// shutdownTimeout bounds the graceful shutdown after a signal: the cancelled run abandons its
	// messages, then the server and the client close.
	shutdownTimeout = 30 * time.Second
)

// run wires the handler and runs it in o.Mode. o has its defaults filled in.
func run(ctx context.Context, o Options) error {
	logger := slog.New(slog.NewJSONHandler(o.Stdout, nil))
	if err := o.Mode.validate(); err != nil {
		fmt.Fprintf(o.Stderr, "holdfast: %v\n", err)
		logger.Error("invalid mode", slog.Any("error", err))
		return fmt.Errorf("%w: %w", ErrConfig, err)
	}
	cfg, err := loadConfig(o)
	if err != nil {
		fmt.Fprintf(o.Stderr, "holdfast: invalid configuration: %v\n", oneLine(err))
		logger.Error("invalid configuration", slog.Any("error", err))
		return fmt.Errorf("%w: %w", ErrConfig, err)
	}
	h, err := wire(cfg, o, logger)
	if err != nil {
		fmt.Fprintf(o.Stderr, "holdfast: %v\n", oneLine(err))
		logger.Error("start-up failed", slog.Any("error", err))
		return fmt.Errorf("%w: %w", ErrConfig, err)
	}
	switch o.Mode {
	case ModeRunOnce:
		return runOnce(ctx, h, cfg, o, logger)
	case ModeWorker:
		return work(ctx, h, cfg, logger)
	}

	addr, setting, err := listenAddr(o)
	if err != nil {
		fmt.Fprintf(o.Stderr, "holdfast: %v\n", err)
		logger.Error("invalid listen address", slog.Any("error", err))
		return fmt.Errorf("%w: %w", ErrConfig, err)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		fmt.Fprintf(o.Stderr, "holdfast: listen on %s (%s): %v\n", addr, setting, err)
		logger.Error("listen failed", slog.String("addr", addr), slog.Any("error", err))
		return fmt.Errorf("%w: listen on %s (%s): %w", ErrServe, addr, setting, err)
	}
	logger.Info("listening", slog.String("addr", ln.Addr().String()), slog.String("mode", o.Mode.String()),
		slog.String("entity", cfg.Entity.String()), slog.String("runBudget", cfg.RunBudget.String()), slog.String("processor", h.processorName))
	if o.Ready != nil {
		o.Ready(ln.Addr().String())
	}
	return serve(ctx, ln, h, logger)
}

// listenAddr is where the handler listens: 127.0.0.1:$FUNCTIONS_CUSTOMHANDLER_PORT under the Functions host
// (only the host talks to it), HOLDFAST_LISTEN_ADDR in ModeServe. It also names the setting, for messages.
func listenAddr(o Options) (addr, setting string, err error) {
	if o.Mode == ModeServe {
		addr = o.Getenv(SettingListenAddr)
		if addr == "" {
			return DefaultListenAddr, SettingListenAddr, nil
		}
		if _, _, err := net.SplitHostPort(addr); err != nil {
			return "", SettingListenAddr, fmt.Errorf("%s: %q is not host:port (%v); use e.g. %q", SettingListenAddr, addr, err, DefaultListenAddr)
		}
		return addr, SettingListenAddr, nil
	}
	port := o.Getenv(portEnv)
	if port == "" {
		port = defaultPort
	}
	return net.JoinHostPort("127.0.0.1", port), portEnv, nil
}

// loadConfig reads the settings: with host.json's functionTimeout under the host, without it standalone.
func loadConfig(o Options) (*config.Config, error) {
	lo := &config.LoadOptions{CustomProcessor: o.Processor != nil}
	if o.Mode.Standalone() {
		lo.Standalone = true
		return config.LoadWith(o.Getenv, lo)
	}
	return config.LoadApp(o.Getenv, o.Dir, lo)
}

// handler is the wired application.
type handler struct {
	http          http.Handler
	service       *process.Service
	drain         *lazyDrain // nil without deferral storage
	deadLetter    *lazyDeadLetter
	processorName string    // for the start-up log: a built-in name, or "custom"
	builtin       io.Closer // the built-in processor when it holds resources (the webhook's connections); else nil
}

// chooseProcessor returns the program's processor, or else the built-in one named by HOLDFAST_PROCESSOR.
func chooseProcessor(cfg *config.Config, o Options, logger *slog.Logger) (processor.Processor, string, error) {
	if o.Processor != nil {
		if v := o.Getenv(config.SettingProcessor); v != "" {
			logger.Info("the program supplies its own processor; the setting is ignored",
				slog.String("setting", config.SettingProcessor), slog.String("value", v))
		}
		return o.Processor, "custom", nil
	}
	p, err := processors.New(cfg.Processor, cfg)
	return p, cfg.Processor, err
}

func wire(cfg *config.Config, o Options, logger *slog.Logger) (*handler, error) {
	proc, name, err := chooseProcessor(cfg, o, logger)
	if err != nil {
		return nil, err
	}
	l, err := newLedger(cfg, logger)
	if err != nil {
		return nil, err
	}
	svcOpts := &process.ServiceOptions{Config: cfg, Processor: proc, Logger: logger, NoMessageWait: o.NoMessageWait}
	dl := newLazyDeadLetter(cfg, l, logger)
	opts := &httpapi.Options{Logger: logger, DeadLetterList: dl.List, DeadLetterAction: dl.Action, DeferredPeek: dl.DeferredPeek, UI: ui.Handler()}
	var d *lazyDrain
	if l != nil {
		svcOpts.Deferrer = process.DeferrerFunc(func(ctx context.Context, s process.DeferSettler, msg *azservicebus.ReceivedMessage, notBefore time.Time, reason string) error {
			return l.Defer(ctx, s, msg, notBefore, reason)
		})
		// Each run first takes the deferred messages that are due.
		if svcOpts.Due, err = due.New(l, &due.Options{Logger: logger}); err != nil {
			return nil, err
		}
		d = newLazyDrain(cfg, l, logger)
		opts.DeferredList, opts.DeferredAction = d.List, d.Action
	}
	svc, err := process.NewService(svcOpts)
	if err != nil {
		return nil, err
	}
	if o.Mode == ModeHandler {
		opts.Runner = svc // ProcessQueue: standalone runs are started by run-once and worker, not over HTTP
	}
	e, err := httpapi.New(opts)
	if err != nil {
		return nil, err
	}
	h := &handler{http: e, service: svc, drain: d, deadLetter: dl, processorName: name}
	if c, ok := proc.(io.Closer); ok && o.Processor == nil {
		h.builtin = c // a program's own processor is the program's to close
	}
	return h, nil
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
	return ledger.New(client, &ledger.Options{Entity: cfg.Entity.String(), Logger: logger, DefaultTTL: cfg.MessageTTL})
}

// serve serves on ln until ctx is cancelled, then shuts down: request contexts are cancelled so a run in
// progress abandons its messages, the server drains, the Service Bus clients close. The error wraps ErrServe.
func serve(ctx context.Context, ln net.Listener, h *handler, logger *slog.Logger) error {
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

	var errs []error
	select {
	case <-ctx.Done():
		logger.Info("shutting down", slog.Any("cause", context.Cause(ctx)))
	case err := <-serveErr:
		logger.Error("server failed", slog.Any("error", err))
		errs = append(errs, err)
		serveErr <- nil // joined below
	}
	cancelBase() // cancels in-flight runs: they stop, abandon what they hold and answer
	sctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		logger.Error("shutdown incomplete", slog.Any("error", err))
		errs = append(errs, err)
	}
	if err := <-serveErr; err != nil && !errors.Is(err, http.ErrServerClosed) {
		errs = append(errs, err)
	}
	h.close(sctx, logger)
	logger.Info("stopped")
	if len(errs) > 0 {
		return fmt.Errorf("%w: %w", ErrServe, errors.Join(errs...))
	}
	return nil
}

// close closes the Service Bus clients of the run service and of both drains (those opened), and the
// built-in processor's connections.
func (h *handler) close(ctx context.Context, logger *slog.Logger) {
	if err := h.service.Close(ctx); err != nil {
		logger.Warn("closing the Service Bus client failed", slog.Any("error", err))
	}
	if err := h.drain.Close(ctx); err != nil {
		logger.Warn("closing the drain's Service Bus client failed", slog.Any("error", err))
	}
	if err := h.deadLetter.Close(ctx); err != nil {
		logger.Warn("closing the dead-letter drain's Service Bus client failed", slog.Any("error", err))
	}
	if h.builtin != nil {
		if err := h.builtin.Close(); err != nil {
			logger.Warn("closing the processor failed", slog.Any("error", err))
		}
	}
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
