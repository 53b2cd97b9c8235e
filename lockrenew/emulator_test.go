package lockrenew_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus"

	"github.com/holdfast-dev/holdfast/emulator"
	"github.com/holdfast-dev/holdfast/emulator/broker"
	"github.com/holdfast-dev/holdfast/internal/testenv"
	"github.com/holdfast-dev/holdfast/lockrenew"
)

// These tests run the renewer against the in-process emulator through the real SDK, in real time,
// with a 2 s lock.
const emulatorLock = 2 * time.Second

// emulatorReceiver starts an emulator with one queue whose lock lasts emulatorLock, sends n messages
// and receives them. Everything is closed when the test ends.
func emulatorReceiver(t *testing.T, n int) (*azservicebus.Receiver, []*azservicebus.ReceivedMessage) {
	t.Helper()
	props := broker.DefaultQueueProperties()
	props.LockDuration = emulatorLock
	_, client := testenv.Emulator(t, "renew", props, &azservicebus.ClientOptions{
		RetryOptions: azservicebus.RetryOptions{MaxRetries: 2, RetryDelay: 50 * time.Millisecond, MaxRetryDelay: 200 * time.Millisecond},
	})

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	sender, err := client.NewSender("renew", nil)
	if err != nil {
		t.Fatalf("NewSender: %v", err)
	}
	defer sender.Close(ctx)
	for range n {
		if err := sender.SendMessage(ctx, &azservicebus.Message{Body: []byte("work")}, nil); err != nil {
			t.Fatalf("SendMessage: %v", err)
		}
	}
	receiver, err := client.NewReceiverForQueue("renew", nil)
	if err != nil {
		t.Fatalf("NewReceiverForQueue: %v", err)
	}
	t.Cleanup(func() { _ = receiver.Close(context.Background()) })
	var msgs []*azservicebus.ReceivedMessage
	for len(msgs) < n {
		got, err := receiver.ReceiveMessages(ctx, n-len(msgs), nil)
		if err != nil {
			t.Fatalf("ReceiveMessages: %v", err)
		}
		msgs = append(msgs, got...)
	}
	return receiver, msgs
}

func TestEmulatorRenewalOutlivesLockDuration(t *testing.T) {
	receiver, msgs := emulatorReceiver(t, 2)
	held, unheld := msgs[0], msgs[1]
	renewer := lockrenew.New(receiver, nil)
	defer renewer.Close()
	msgCtx, release := renewer.Hold(context.Background(), held)
	defer release()

	// "Process" for more than twice the lock duration; the unheld message's lock expires meanwhile.
	time.Sleep(time.Until(*unheld.LockedUntil) + emulatorLock)

	if err := msgCtx.Err(); err != nil {
		t.Fatalf("held message's context done (cause %v); want its lock renewed", context.Cause(msgCtx))
	}
	st := renewer.Stats()
	if st.Renewals < 2 || st.LocksLost != 0 {
		t.Errorf("stats = %+v; want at least 2 renewals and no lost lock", st)
	}
	t.Logf("renewals %d, mean latency %v, max %v", st.Renewals, st.Mean(), st.LatencyMax)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := receiver.CompleteMessage(ctx, held, nil); err != nil {
		t.Errorf("CompleteMessage(held) after %v: %v; want success", 2*emulatorLock, err)
	}
	var sbErr *azservicebus.Error
	if err := receiver.CompleteMessage(ctx, unheld, nil); !errors.As(err, &sbErr) || sbErr.Code != azservicebus.CodeLockLost {
		t.Errorf("CompleteMessage(unheld) = %v; want CodeLockLost (the control message's lock should expire)", err)
	}
}

func TestEmulatorSettledMessageReportsLockLost(t *testing.T) {
	receiver, msgs := emulatorReceiver(t, 1)
	renewer := lockrenew.New(receiver, nil)
	defer renewer.Close()
	msgCtx, release := renewer.Hold(context.Background(), msgs[0])
	defer release()

	// Settling the message elsewhere makes its next renewal fail with the service's lock-lost error.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := receiver.CompleteMessage(ctx, msgs[0], nil); err != nil {
		t.Fatalf("CompleteMessage: %v", err)
	}
	select {
	case <-msgCtx.Done():
	case <-ctx.Done():
		t.Fatalf("message context still live %v after settlement; want lock lost at the next renewal", 10*time.Second)
	}
	cause := context.Cause(msgCtx)
	var sbErr *azservicebus.Error
	if !errors.Is(cause, lockrenew.ErrLockLost) || !errors.As(cause, &sbErr) || sbErr.Code != azservicebus.CodeLockLost {
		t.Errorf("cause = %v; want ErrLockLost wrapping CodeLockLost", cause)
	}
	if st := renewer.Stats(); st.LocksLost != 1 || st.Failures != 1 {
		t.Errorf("stats = %+v; want 1 lost lock after 1 failed renewal", st)
	}
}

// emulatorSession starts an emulator with a session queue whose lock lasts emulatorLock, sends two messages
// to session "s", accepts it with a client using retry, receives the first message and returns the emulator,
// the session receiver and the message.
func emulatorSession(t *testing.T, retry azservicebus.RetryOptions) (*emulator.Server, *azservicebus.SessionReceiver, *azservicebus.ReceivedMessage) {
	t.Helper()
	props := broker.DefaultQueueProperties()
	props.LockDuration, props.RequiresSession = emulatorLock, true
	srv, client := testenv.Emulator(t, "orders", props, &azservicebus.ClientOptions{RetryOptions: retry})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	sender, err := client.NewSender("orders", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer sender.Close(ctx)
	sid := "s"
	for _, b := range []string{"first", "second"} {
		if err := sender.SendMessage(ctx, &azservicebus.Message{Body: []byte(b), SessionID: &sid}, nil); err != nil {
			t.Fatal(err)
		}
	}
	sr, err := client.AcceptNextSessionForQueue(ctx, "orders", nil)
	if err != nil {
		t.Fatalf("AcceptNextSessionForQueue: %v", err)
	}
	t.Cleanup(func() { _ = sr.Close(context.Background()) })
	msgs, err := sr.ReceiveMessages(ctx, 1, nil)
	if err != nil || len(msgs) != 1 {
		t.Fatalf("ReceiveMessages: %d, %v", len(msgs), err)
	}
	return srv, sr, msgs[0]
}

// A held session outlives its lock several times, and its message, covered by the session lock, is completed
// at the end.
func TestEmulatorSessionHoldOutlivesLock(t *testing.T) {
	_, sr, msg := emulatorSession(t, lockrenew.SessionRetryOptions(emulatorLock))
	renewer := lockrenew.New(nil, &lockrenew.Options{LockDuration: emulatorLock})
	defer renewer.Close()
	sessCtx, release := renewer.HoldSession(context.Background(), sr)
	time.Sleep(3 * emulatorLock)
	if err := sessCtx.Err(); err != nil {
		t.Fatalf("session context done (cause %v); want its lock renewed", context.Cause(sessCtx))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := sr.CompleteMessage(ctx, msg, nil); err != nil {
		t.Errorf("CompleteMessage after %v: %v; want success under the renewed session lock", 3*emulatorLock, err)
	}
	release()
	if st := renewer.Stats(); st.SessionRenewals < 3 || st.SessionLocksLost != 0 || st.Renewals != 0 {
		t.Errorf("stats = %+v; want at least 3 session renewals, none lost", st)
	}
}

// A session lock lost on the service ends the hold with ErrSessionLockLost at the next renewal — provided the
// client does not retry by itself (SessionRetryOptions): with the SDK's retries the renewal accepts the
// session again and the loss goes unnoticed, which is why SessionRetryOptions exists.
func TestEmulatorSessionLockLoss(t *testing.T) {
	for _, tt := range []struct {
		name    string
		retry   azservicebus.RetryOptions
		noticed bool
	}{
		{name: "SessionRetryOptions", retry: lockrenew.SessionRetryOptions(emulatorLock), noticed: true},
		{name: "SDK retries", retry: lockrenew.RetryOptions(emulatorLock), noticed: false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			srv, sr, _ := emulatorSession(t, tt.retry)
			renewer := lockrenew.New(nil, &lockrenew.Options{LockDuration: emulatorLock})
			defer renewer.Close()
			sessCtx, release := renewer.HoldSession(context.Background(), sr)
			defer release()
			if err := srv.Faults().ExpireSessionLock("orders", "s"); err != nil {
				t.Fatal(err)
			}
			select {
			case <-sessCtx.Done():
			case <-time.After(3 * emulatorLock):
			}
			if got := errors.Is(context.Cause(sessCtx), lockrenew.ErrSessionLockLost); got != tt.noticed {
				t.Fatalf("session lock loss noticed = %v (cause %v); want %v", got, context.Cause(sessCtx), tt.noticed)
			}
		})
	}
}
