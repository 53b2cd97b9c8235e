package holdfast

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus"
	"github.com/labstack/echo/v4"

	"github.com/holdfast-dev/holdfast/internal/browse"
	"github.com/holdfast-dev/holdfast/internal/config"
	"github.com/holdfast-dev/holdfast/internal/deadletter"
	"github.com/holdfast-dev/holdfast/internal/drain"
	"github.com/holdfast-dev/holdfast/internal/ledger"
	"github.com/holdfast-dev/holdfast/internal/process"
)

// lazyDeadLetter serves the DrainDeadLetter routes and GET /api/deferred/peek. Like lazyDrain it opens its
// Service Bus client and links on the first request, so start-up does no network or credential work, and
// closes them at shutdown. It needs no deferral storage. Safe for concurrent use.
type lazyDeadLetter struct {
	lazy[deadLetterRoutes]
}

// deadLetterRoutes are what lazyDeadLetter builds on the first request.
type deadLetterRoutes struct {
	handler *deadletter.Handler
	peek    echo.HandlerFunc // peeks the entity's deferred messages
}

// newLazyDeadLetter: l is nil without deferral storage; it is used to find a deferred message's session.
func newLazyDeadLetter(cfg *config.Config, l *ledger.Ledger, logger *slog.Logger) *lazyDeadLetter {
	d := &lazyDeadLetter{}
	d.open = func() (deadLetterRoutes, func(context.Context) error, error) {
		entity := cfg.Entity.String()
		client, err := process.NewClient(cfg.ServiceBus, process.ClientOptions(cfg))
		if err != nil {
			return deadLetterRoutes{}, nil, err
		}
		fail := func(err error) (deadLetterRoutes, func(context.Context) error, error) {
			_ = client.Close(context.Background()) // and with it the links it opened
			return deadLetterRoutes{}, nil, err
		}
		// shared is the DLQ receiver that lists, peeks and abandons by token; main is the entity's
		// receiver, for peeking deferred messages.
		shared, err := deadletter.OpenReceiver(client, entity)
		if err != nil {
			return fail(err)
		}
		main, send, err := drain.NewClients(client, entity)
		if err != nil {
			return fail(err)
		}
		svc, err := deadletter.New(&deadletter.Options{
			Entity:      entity,
			Shared:      shared,
			NewReceiver: func() (deadletter.Receiver, error) { return deadletter.OpenReceiver(client, entity) },
			Sender:      send,
			Logger:      logger,
		})
		if err != nil {
			return fail(err)
		}
		var peeker browse.Peeker = main
		if cfg.RequiresSession {
			open, _ := drain.SessionFuncs(client, entity, config.CloseTimeout)
			peeker = &sessionPeeker{ledger: l, open: open}
		}
		closeAll := func(ctx context.Context) error {
			return errors.Join(shared.Close(ctx), main.Close(ctx), send.Close(ctx), client.Close(ctx))
		}
		return deadLetterRoutes{handler: deadletter.NewHandler(svc, logger), peek: browse.Handler(peeker)}, closeAll, nil
	}
	return d
}

// List serves /api/deadletter.
func (d *lazyDeadLetter) List(c echo.Context) error {
	r, err := d.get()
	if err != nil {
		return deadLetterUnavailable(err)
	}
	return r.handler.List(c)
}

// Action serves /api/deadletter/:action.
func (d *lazyDeadLetter) Action(c echo.Context) error {
	r, err := d.get()
	if err != nil {
		return deadLetterUnavailable(err)
	}
	return r.handler.Action(c)
}

// DeferredPeek serves GET /api/deferred/peek?sequenceNumber=N.
func (d *lazyDeadLetter) DeferredPeek(c echo.Context) error {
	r, err := d.get()
	if err != nil {
		return deadLetterUnavailable(err)
	}
	return r.peek(c)
}

// sessionPeeker peeks a deferred message of a session-enabled entity: Service Bus peeks a session's messages
// only through a receiver that holds the session, so it reads the message's session from its ledger row,
// accepts that session, peeks and releases it. The dead-letter queue needs none of this: it has no sessions.
type sessionPeeker struct {
	ledger *ledger.Ledger
	open   func(context.Context, string) (drain.Receiver, func(), error) // the drain's (drain.SessionFuncs)
}

func (p *sessionPeeker) PeekMessages(ctx context.Context, n int, o *azservicebus.PeekMessagesOptions) ([]*azservicebus.ReceivedMessage, error) {
	if p.ledger == nil || o == nil || o.FromSequenceNumber == nil {
		return nil, errors.New("the entity requires sessions: a deferred message is peeked through its session, which only its ledger row (DeferralStorage) knows")
	}
	row, err := p.ledger.Get(ctx, *o.FromSequenceNumber)
	if errors.Is(err, ledger.ErrNotFound) {
		return nil, nil // no row: no deferred message holdfast knows of
	}
	if err != nil {
		return nil, err
	}
	if row.SessionID == nil {
		return nil, fmt.Errorf("ledger row %d records no session", row.SequenceNumber)
	}
	r, release, err := p.open(ctx, *row.SessionID)
	if err != nil {
		return nil, fmt.Errorf("peek within session %q: %w", *row.SessionID, err)
	}
	defer release()
	return r.PeekMessages(ctx, n, o)
}

func deadLetterUnavailable(err error) error {
	return echo.NewHTTPError(503, fmt.Sprintf("the dead-letter drain is unavailable: %v", err))
}

// Close closes the links and the client, if they were opened. Later requests get 503.
func (d *lazyDeadLetter) Close(ctx context.Context) error {
	if d == nil {
		return nil
	}
	return d.lazy.Close(ctx)
}
