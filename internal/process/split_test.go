package process

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus"

	"github.com/holdfast-dev/holdfast/emulator"
	"github.com/holdfast-dev/holdfast/emulator/broker"
	"github.com/holdfast-dev/holdfast/internal/testenv"
	"github.com/holdfast-dev/holdfast/lockrenew"
)

// TestSettlementSurvivesADroppedConnection: a message received before the connection dropped is completed
// within 3 s (nothing renews it here to recover the connection), whether it is settled while the receive
// link is open or by lock token after it closed. The SDK alone waits at least 3.2 s before its
// first retry of a settlement (its default retry options, whatever the client's), and retries a disposition
// on the dead receive link until the context ends.
func TestSettlementSurvivesADroppedConnection(t *testing.T) {
	for _, linkOpen := range []bool{true, false} {
		t.Run(fmt.Sprintf("receive link open %t", linkOpen), func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			lock := 10 * time.Second
			srv, s, msg := splitWithOneMessage(ctx, t, lock, &azservicebus.ClientOptions{RetryOptions: lockrenew.RetryOptions(lock)})
			if err := s.RenewMessageLock(ctx, msg, nil); err != nil { // the settlement receiver's links exist
				t.Fatal(err)
			}
			if !linkOpen {
				s.closeReceive(func() { _ = s.recv.Close(ctx) })
			}
			if n := srv.Faults().DropConnections(); n == 0 {
				t.Fatal("no connection dropped")
			}
			sctx, scancel := context.WithTimeout(ctx, 3*time.Second)
			defer scancel()
			if err := s.CompleteMessage(sctx, msg, nil); err != nil {
				t.Fatalf("complete after the connection dropped: %v", err)
			}
			ent, err := srv.Broker().Entity("q")
			if err != nil {
				t.Fatal(err)
			}
			if st := ent.Stats(); st.Counters.Completed != 1 || st.Active != 0 {
				t.Fatalf("after the complete: %+v", st)
			}
		})
	}
}

// TestCompleteAnsweredLockLostIsCheckedByPeek: a complete whose lock token was already settled (as when the
// reply to an earlier attempt was lost with the connection) returns nil, since the message is gone; a complete
// whose lock expired while the message stays in the queue returns the lock-lost error.
func TestCompleteAnsweredLockLostIsCheckedByPeek(t *testing.T) {
	for _, tc := range []struct {
		name     string
		lock     time.Duration
		settled  bool // the token is settled before the complete, else its lock expires
		wantLost bool
	}{
		{name: "already completed", lock: 30 * time.Second, settled: true},
		{name: "lock expired", lock: time.Second, wantLost: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			srv, s, msg := splitWithOneMessage(ctx, t, tc.lock, nil)
			ent, err := srv.Broker().Entity("q")
			if err != nil {
				t.Fatal(err)
			}
			if tc.settled {
				if err := s.settle.CompleteMessage(ctx, byToken(msg), nil); err != nil {
					t.Fatal(err)
				}
			} else {
				for ent.Stats().Counters.LockExpired == 0 {
					if ctx.Err() != nil {
						t.Fatal("the lock never expired")
					}
					time.Sleep(20 * time.Millisecond) // polling the emulator's counter
				}
			}
			err = s.CompleteMessage(ctx, msg, nil)
			if lost := isLockLost(err); lost != tc.wantLost || (!lost && err != nil) {
				t.Fatalf("complete: %v; want lock lost %t", err, tc.wantLost)
			}
			st := ent.Stats()
			if want := map[bool]int{true: 1, false: 0}[tc.wantLost]; st.Active != want || st.Counters.Completed != uint64(1-want) {
				t.Fatalf("queue %+v: want %d active and %d completed", st, want, 1-want)
			}
		})
	}
}

// splitWithOneMessage starts the emulator with queue "q" (locks of lock), a client with opts, and a
// splitReceiver on it; it sends one message and returns it as received through the split receiver.
func splitWithOneMessage(ctx context.Context, t *testing.T, lock time.Duration, opts *azservicebus.ClientOptions) (*emulator.Server, *splitReceiver, *azservicebus.ReceivedMessage) {
	t.Helper()
	props := broker.DefaultQueueProperties()
	props.LockDuration = lock
	srv, client := testenv.Emulator(t, "q", props, opts)
	sender, err := client.NewSender("q", nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := sender.SendMessage(ctx, &azservicebus.Message{Body: []byte("x")}, nil); err != nil {
		t.Fatal(err)
	}
	recv, err := client.NewReceiverForQueue("q", nil)
	if err != nil {
		t.Fatal(err)
	}
	settle, err := client.NewReceiverForQueue("q", nil)
	if err != nil {
		t.Fatal(err)
	}
	s := &splitReceiver{recv: recv, settle: settle}
	msgs, err := s.ReceiveMessages(ctx, 1, nil)
	if err != nil || len(msgs) != 1 {
		t.Fatalf("receive: %v, %v", msgs, err)
	}
	return srv, s, msgs[0]
}
