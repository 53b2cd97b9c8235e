package process

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus"

	"github.com/holdfast-dev/holdfast/internal/config"
	"github.com/holdfast-dev/holdfast/lockrenew"
	"github.com/holdfast-dev/holdfast/processor"
)

// DeferrerFunc adapts a function (for instance a method value of a ledger whose Defer takes its own,
// identical settler interface) to Deferrer.
type DeferrerFunc func(ctx context.Context, s DeferSettler, msg *azservicebus.ReceivedMessage, notBefore time.Time, reason string) error

// Defer calls f.
func (f DeferrerFunc) Defer(ctx context.Context, s DeferSettler, msg *azservicebus.ReceivedMessage, notBefore time.Time, reason string) error {
	return f(ctx, s, msg, notBefore, reason)
}

// ErrClosed is returned by Service.Run after Close.
var ErrClosed = errors.New("process: service closed")

// closeTimeout bounds closing a run's receiver and the client; config validation counts it in the time a run
// may take after its budget.
const closeTimeout = config.CloseTimeout

// ServiceOptions configure a Service. Config and Processor are required.
type ServiceOptions struct {
	Config    *config.Config
	Processor processor.Processor
	// Deferrer is the deferral ledger; nil ⇒ defer outcomes are abandoned.
	Deferrer Deferrer
	// Due brings due deferred messages back into each run (see Options.Due); nil ⇒ none.
	Due DueSource
	// Logger: nil ⇒ discard.
	Logger *slog.Logger
	// ClientOptions are passed to the azservicebus client; nil ⇒ ClientOptions(Config).
	ClientOptions *azservicebus.ClientOptions
	// NoMessageWait, SettleTimeout and SessionIdleWait override the run defaults (see Options).
	NoMessageWait, SettleTimeout, SessionIdleWait time.Duration
}

// Service performs runs against the configured entity. It creates the azservicebus client on the first Run
// (creating it does no network I/O; the AMQP connection opens on first use), opens a receiver per run and
// closes it when the run ends, which also stops the SDK's background releaser. Run is safe to call from
// several goroutines, but runs are not meant to overlap (the HTTP layer refuses that).
type Service struct {
	cfg    *config.Config
	opts   ServiceOptions
	logger *slog.Logger

	mu     sync.Mutex
	client *azservicebus.Client // guarded by mu; nil until the first Run
	closed bool                 // guarded by mu
}

// NewService validates opts and returns a Service. It does no I/O.
func NewService(opts *ServiceOptions) (*Service, error) {
	if opts == nil || opts.Config == nil || opts.Processor == nil {
		return nil, errors.New("process: ServiceOptions.Config and .Processor are required")
	}
	if err := opts.Config.Validate(); err != nil {
		return nil, err
	}
	s := &Service{cfg: opts.Config, opts: *opts, logger: opts.Logger}
	if s.logger == nil {
		s.logger = slog.New(slog.DiscardHandler)
	}
	return s, nil
}

// Run performs one run (see process.Run) with the configured budget, batch size and concurrency; on a
// session-enabled entity (Config.RequiresSession) a session run (see RunSessions) with Config.MaxSessions.
func (s *Service) Run(ctx context.Context) (Summary, error) {
	client, err := s.getClient()
	if err != nil {
		return Summary{}, err
	}
	if s.cfg.RequiresSession {
		return RunSessions(ctx, &clientSessions{client: client, entity: s.cfg.Entity}, s.opts.Processor, s.runOptions(nil))
	}
	// Two receivers: one receives (and settles while its link is open), the other renews, and settles by
	// lock token once the receive link is closed (see splitReceiver), so that link can close as soon as
	// receiving ends.
	recv, err := s.newReceiver(client)
	if err != nil {
		return Summary{}, fmt.Errorf("%w: open receiver for %s: %w", ErrReceive, s.cfg.Entity, err)
	}
	settle, err := s.newReceiver(client)
	if err != nil {
		s.closeReceiver(ctx, recv)
		return Summary{}, fmt.Errorf("%w: open settlement receiver for %s: %w", ErrReceive, s.cfg.Entity, err)
	}
	defer s.closeReceiver(ctx, settle)
	split := &splitReceiver{recv: recv, settle: settle}
	stopReceiving := func() { split.closeReceive(func() { s.closeReceiver(ctx, recv) }) }
	defer stopReceiving()
	return Run(ctx, split, s.opts.Processor, s.runOptions(stopReceiving))
}

// runOptions are the options of a run of the configured entity.
func (s *Service) runOptions(receiveDone func()) *Options {
	return &Options{
		Budget:          s.cfg.RunBudget,
		BatchSize:       s.cfg.BatchSize,
		Concurrency:     s.cfg.Concurrency,
		MaxSessions:     s.cfg.MaxSessions,
		MaxLockRenewal:  s.cfg.MaxLockRenewal,
		LockDuration:    s.cfg.LockDuration,
		NoMessageWait:   s.opts.NoMessageWait,
		SettleTimeout:   s.opts.SettleTimeout,
		SessionIdleWait: s.opts.SessionIdleWait,
		ReceiveDone:     receiveDone,
		Deferrer:        s.opts.Deferrer,
		Due:             s.opts.Due,
		Logger:          s.logger.With(slog.String("entity", s.cfg.Entity.String())),
	}
}

// clientSessions accepts sessions of entity on client (Sessions).
type clientSessions struct {
	client *azservicebus.Client
	entity config.Entity
}

func (c *clientSessions) AcceptNextSession(ctx context.Context) (SessionReceiver, error) {
	var (
		sr  *azservicebus.SessionReceiver
		err error
	)
	if c.entity.Queue != "" {
		sr, err = c.client.AcceptNextSessionForQueue(ctx, c.entity.Queue, nil)
	} else {
		sr, err = c.client.AcceptNextSessionForSubscription(ctx, c.entity.Topic, c.entity.Subscription, nil)
	}
	if err != nil {
		return nil, err
	}
	return sr, nil
}

func (c *clientSessions) AcceptSession(ctx context.Context, id string) (SessionReceiver, error) {
	sr, err := AcceptSession(ctx, c.client, c.entity.String(), id)
	if err != nil {
		return nil, err
	}
	return sr, nil
}

// AcceptSession locks session id of entity (a queue, or `topic/Subscriptions/sub`) on client. A session locked
// by another receiver gives an error wrapping ErrSessionLocked.
func AcceptSession(ctx context.Context, client *azservicebus.Client, entity, id string) (*azservicebus.SessionReceiver, error) {
	e, err := config.ParseEntity(entity)
	if err != nil {
		return nil, err
	}
	var sr *azservicebus.SessionReceiver
	if e.Queue != "" {
		sr, err = client.AcceptSessionForQueue(ctx, e.Queue, id, nil)
	} else {
		sr, err = client.AcceptSessionForSubscription(ctx, e.Topic, e.Subscription, id, nil)
	}
	if err != nil && IsSessionLocked(err) {
		return nil, fmt.Errorf("%w: session %q of %s: %w", ErrSessionLocked, id, entity, err)
	}
	return sr, err
}

// closeReceiver closes r within closeTimeout, even when ctx is already cancelled.
func (s *Service) closeReceiver(ctx context.Context, r *azservicebus.Receiver) {
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), closeTimeout)
	defer cancel()
	if err := r.Close(cctx); err != nil {
		s.logger.Warn("closing a receiver failed", slog.Any("error", err))
	}
}

func (s *Service) getClient() (*azservicebus.Client, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, ErrClosed
	}
	if s.client != nil {
		return s.client, nil
	}
	opts := s.opts.ClientOptions
	if opts == nil {
		opts = ClientOptions(s.cfg)
		if s.cfg.RequiresSession {
			opts = &azservicebus.ClientOptions{RetryOptions: lockrenew.SessionRetryOptions(s.cfg.LockDuration)}
		}
	}
	c, err := NewClient(s.cfg.ServiceBus, opts)
	if err != nil {
		return nil, err
	}
	s.client = c
	return c, nil
}

// ClientOptions are the azservicebus client options for cfg's entity (a session run's client uses
// lockrenew.SessionRetryOptions instead, see lockrenew.HoldSession): retry options derived from its lock
// duration (lockrenew.RetryOptions), so that a dropped connection is recovered within the renewal lead of
// the locks the client holds. Every client that receives, renews or settles the entity's messages uses them.
func ClientOptions(cfg *config.Config) *azservicebus.ClientOptions {
	return &azservicebus.ClientOptions{RetryOptions: lockrenew.RetryOptions(cfg.LockDuration)}
}

// NewClient returns a client for conn: the connection string, or the namespace with the configured
// credential. It does no network I/O.
func NewClient(conn config.Connection, opts *azservicebus.ClientOptions) (*azservicebus.Client, error) {
	if conn.ConnectionString != "" {
		c, err := azservicebus.NewClientFromConnectionString(conn.ConnectionString, opts)
		if err != nil {
			return nil, fmt.Errorf("process: %s: %w", config.SettingServiceBus, err)
		}
		return c, nil
	}
	cred, err := conn.TokenCredential()
	if err != nil {
		return nil, err
	}
	c, err := azservicebus.NewClient(conn.Endpoint, cred, opts)
	if err != nil {
		return nil, fmt.Errorf("process: %s: %w", config.SettingServiceBusNamespace, err)
	}
	return c, nil
}

func (s *Service) newReceiver(c *azservicebus.Client) (*azservicebus.Receiver, error) {
	ro := &azservicebus.ReceiverOptions{ReceiveMode: azservicebus.ReceiveModePeekLock}
	if e := s.cfg.Entity; e.Queue != "" {
		return c.NewReceiverForQueue(e.Queue, ro)
	}
	return c.NewReceiverForSubscription(s.cfg.Entity.Topic, s.cfg.Entity.Subscription, ro)
}

// Close closes the client; later Runs fail with ErrClosed. It does not wait for a Run in progress: cancel
// its context first.
func (s *Service) Close(ctx context.Context) error {
	s.mu.Lock()
	c := s.client
	s.client, s.closed = nil, true
	s.mu.Unlock()
	if c == nil {
		return nil
	}
	return c.Close(ctx)
}
