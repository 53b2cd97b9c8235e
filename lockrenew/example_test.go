package lockrenew_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus"

	"github.com/holdfast-dev/holdfast/lockrenew"
)

// Receive a batch, hold every message at once, and process each under its own context.
func Example() {
	client, err := azservicebus.NewClientFromConnectionString(os.Getenv("SERVICEBUS_CONNECTION_STRING"), nil)
	if err != nil {
		log.Fatal(err)
	}
	defer client.Close(context.Background())
	receiver, err := client.NewReceiverForQueue("orders", nil)
	if err != nil {
		log.Fatal(err)
	}
	defer receiver.Close(context.Background())

	renewer := lockrenew.New(receiver, &lockrenew.Options{
		MaxRenewalDuration: 10 * time.Minute,
		Logger:             slog.Default(),
	})
	defer renewer.Close()

	ctx := context.Background()
	msgs, err := receiver.ReceiveMessages(ctx, 10, nil)
	if err != nil {
		log.Fatal(err)
	}
	var wg sync.WaitGroup
	for _, msg := range msgs {
		msgCtx, release := renewer.Hold(ctx, msg) // before the message waits for anything
		wg.Go(func() {
			defer release()
			settleCtx := context.WithoutCancel(msgCtx)
			if err := handle(msgCtx, msg); err != nil {
				if errors.Is(context.Cause(msgCtx), lockrenew.ErrLockLost) {
					return // the lock is gone: another receiver may own the message
				}
				_ = receiver.AbandonMessage(settleCtx, msg, nil)
				return
			}
			_ = receiver.CompleteMessage(settleCtx, msg, nil)
		})
	}
	wg.Wait()
	s := renewer.Stats()
	log.Printf("renewals %d, failures %d, locks lost %d, mean latency %v", s.Renewals, s.Failures, s.LocksLost, s.Mean())
}

// handle stands for the application's processing; it must stop when ctx is done.
func handle(ctx context.Context, msg *azservicebus.ReceivedMessage) error {
	select {
	case <-ctx.Done():
		return context.Cause(ctx)
	case <-time.After(time.Second):
		return nil
	}
}

// refusingReceiver answers every renewal like the service does for a message whose lock has expired.
type refusingReceiver struct{}

func (refusingReceiver) RenewMessageLock(context.Context, *azservicebus.ReceivedMessage, *azservicebus.RenewMessageLockOptions) error {
	return &azservicebus.Error{Code: azservicebus.CodeLockLost}
}

// A lost lock cancels the message's context; its cause says why.
func ExampleRenewer_Hold() {
	renewer := lockrenew.New(refusingReceiver{}, nil)
	defer renewer.Close()

	lockedUntil := time.Now().Add(100 * time.Millisecond) // less than 400 ms left: renewed at once
	msg := &azservicebus.ReceivedMessage{MessageID: "order-42", LockedUntil: &lockedUntil}
	msgCtx, release := renewer.Hold(context.Background(), msg)
	defer release()

	<-msgCtx.Done()
	cause := context.Cause(msgCtx)
	var sbErr *azservicebus.Error
	fmt.Println("lock lost:", errors.Is(cause, lockrenew.ErrLockLost))
	fmt.Println("service code:", errors.As(cause, &sbErr) && sbErr.Code == azservicebus.CodeLockLost)
	// Output:
	// lock lost: true
	// service code: true
}
