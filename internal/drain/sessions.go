package drain

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"
	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus"

	"github.com/holdfast-dev/holdfast/internal/config"
	"github.com/holdfast-dev/holdfast/internal/ledger"
	"github.com/holdfast-dev/holdfast/internal/process"
)

// SessionFuncs are Options.Sessions and Options.ListSessions for the session-enabled entity (a queue, or
// `topic/Subscriptions/sub`) on client: a receiver holding one session, released by closing it within
// closeTimeout (a session another receiver holds answers an error wrapping ledger.ErrSessionBusy), and the
// sessions Service Bus lists.
func SessionFuncs(client *azservicebus.Client, entity string, closeTimeout time.Duration) (
	open func(context.Context, string) (Receiver, func(), error), list func(context.Context) ([]string, error)) {
	open = func(ctx context.Context, sid string) (Receiver, func(), error) {
		sr, err := process.AcceptSession(ctx, client, entity, sid)
		if errors.Is(err, process.ErrSessionLocked) {
			return nil, nil, fmt.Errorf("%w: %w", ledger.ErrSessionBusy, err)
		}
		if err != nil {
			return nil, nil, err
		}
		release := func() {
			ctx, cancel := context.WithTimeout(context.Background(), closeTimeout)
			defer cancel()
			_ = sr.Close(ctx)
		}
		return sr, release, nil
	}
	list = func(ctx context.Context) ([]string, error) {
		e, err := config.ParseEntity(entity)
		if err != nil {
			return nil, err
		}
		var ids []string
		var pager *runtime.Pager[azservicebus.ListSessionsResponse]
		if e.Queue != "" {
			pager = client.NewListSessionsForQueuePager(e.Queue, nil)
		} else {
			pager = client.NewListSessionsForSubscriptionPager(e.Topic, e.Subscription, nil)
		}
		for pager.More() {
			page, err := pager.NextPage(ctx)
			if err != nil {
				return ids, err
			}
			ids = append(ids, page.Sessions...)
		}
		return ids, nil
	}
	return open, list
}
