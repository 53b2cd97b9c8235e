package holdfast

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/labstack/echo/v4"

	"github.com/holdfast-dev/holdfast/internal/config"
	"github.com/holdfast-dev/holdfast/internal/drain"
	"github.com/holdfast-dev/holdfast/internal/ledger"
	"github.com/holdfast-dev/holdfast/internal/process"
)

// lazyDrain serves the DrainDeferred routes. It opens its Service Bus client, receiver and sender on the first
// request, so start-up does no network or credential work, and closes them at shutdown. Safe for concurrent
// use.
type lazyDrain struct {
	lazy[*drain.Handler]
}

func newLazyDrain(cfg *config.Config, l *ledger.Ledger, logger *slog.Logger) *lazyDrain {
	d := &lazyDrain{}
	d.open = func() (*drain.Handler, func(context.Context) error, error) {
		client, err := process.NewClient(cfg.ServiceBus, process.ClientOptions(cfg))
		if err != nil {
			return nil, nil, err
		}
		recv, send, err := drain.NewClients(client, cfg.Entity.String())
		if err != nil {
			_ = client.Close(context.Background())
			return nil, nil, err
		}
		closeAll := func(ctx context.Context) error {
			return errors.Join(recv.Close(ctx), send.Close(ctx), client.Close(ctx))
		}
		o := &drain.Options{Ledger: l, Receiver: recv, Sender: send, Logger: logger}
		if cfg.RequiresSession {
			o.Receiver = nil // a plain receiver cannot attach to a session entity
			o.Sessions, o.ListSessions = drain.SessionFuncs(client, cfg.Entity.String(), config.CloseTimeout)
		}
		svc, err := drain.New(o)
		if err != nil {
			_ = closeAll(context.Background())
			return nil, nil, err
		}
		return drain.NewHandler(svc, logger), closeAll, nil
	}
	return d
}

// List serves /api/deferred.
func (d *lazyDrain) List(c echo.Context) error {
	h, err := d.get()
	if err != nil {
		return drainUnavailable(err)
	}
	return h.List(c)
}

// Action serves /api/deferred/:action.
func (d *lazyDrain) Action(c echo.Context) error {
	h, err := d.get()
	if err != nil {
		return drainUnavailable(err)
	}
	return h.Action(c)
}

func drainUnavailable(err error) error {
	return echo.NewHTTPError(503, fmt.Sprintf("the drain is unavailable: %v", err))
}

// Close closes the receiver, the sender and the client, if they were opened. Later requests get 503.
func (d *lazyDrain) Close(ctx context.Context) error {
	if d == nil {
		return nil
	}
	return d.lazy.Close(ctx)
}
