package holdfast

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"

	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus"
	"github.com/labstack/echo/v4"

	"github.com/holdfast-dev/holdfast/internal/config"
	"github.com/holdfast-dev/holdfast/internal/drain"
	"github.com/holdfast-dev/holdfast/internal/ledger"
	"github.com/holdfast-dev/holdfast/internal/process"
)

// errDrainClosed answers drain requests that arrive during shutdown.
var errDrainClosed = errors.New("holdfast: shutting down")

// lazyDrain serves the DrainDeferred routes. It opens its Service Bus client, receiver and sender on the first
// request, so start-up does no network or credential work, and closes them at shutdown. Safe for concurrent
// use.
type lazyDrain struct {
	cfg    *config.Config
	ledger *ledger.Ledger
	logger *slog.Logger

	mu      sync.Mutex
	client  *azservicebus.Client   // guarded by mu; nil until the first request
	recv    *azservicebus.Receiver // guarded by mu
	send    *azservicebus.Sender   // guarded by mu
	handler *drain.Handler         // guarded by mu
	closed  bool                   // guarded by mu
}

// get returns the drain handler, building it on the first call.
func (d *lazyDrain) get() (*drain.Handler, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return nil, errDrainClosed
	}
	if d.handler != nil {
		return d.handler, nil
	}
	client, err := process.NewClient(d.cfg.ServiceBus, process.ClientOptions(d.cfg))
	if err != nil {
		return nil, err
	}
	recv, send, err := drain.NewClients(client, d.cfg.Entity.String())
	if err != nil {
		_ = client.Close(context.Background())
		return nil, err
	}
	svc, err := drain.New(&drain.Options{Ledger: d.ledger, Receiver: recv, Sender: send, Logger: d.logger})
	if err != nil {
		_ = client.Close(context.Background())
		return nil, err
	}
	d.client, d.recv, d.send, d.handler = client, recv, send, drain.NewHandler(svc, d.logger)
	return d.handler, nil
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
	d.mu.Lock()
	client, recv, send := d.client, d.recv, d.send
	d.client, d.recv, d.send, d.handler, d.closed = nil, nil, nil, nil, true
	d.mu.Unlock()
	if client == nil {
		return nil
	}
	return errors.Join(recv.Close(ctx), send.Close(ctx), client.Close(ctx))
}
