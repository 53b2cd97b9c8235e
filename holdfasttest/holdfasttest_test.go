package holdfasttest_test

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus"

	"github.com/holdfast-dev/holdfast/holdfasttest"
	"github.com/holdfast-dev/holdfast/processor"
)

func TestMain(m *testing.M) { os.Exit(holdfasttest.Main(m)) }

// byBody completes "ok" after outlasting the lock, dead-letters "bad", and defers "later" once, to now, so the
// next run takes it back.
var byBody = processor.Func(func(ctx context.Context, m *azservicebus.ReceivedMessage) processor.Outcome {
	switch string(m.Body) {
	case "bad":
		return processor.DeadLetter("Bad", "cannot be processed")
	case "later":
		if m.DeliveryCount == 1 {
			return processor.Defer(time.Now(), "not yet")
		}
	case "ok":
		select {
		case <-time.After(2500 * time.Millisecond): // longer than the 1 s lock: renewals keep it
		case <-ctx.Done():
			return processor.Abandon(context.Cause(ctx))
		}
	}
	return processor.Complete()
})

func TestHandlerRunsTheProcessor(t *testing.T) {
	h := holdfasttest.Start(t, byBody, &holdfasttest.Options{LockDuration: time.Second})
	for _, b := range []string{"ok", "bad", "later"} {
		h.Send(t, &azservicebus.Message{Body: []byte(b)})
	}
	s := h.Run(t)
	if s.Received != 3 || s.Completed != 1 || s.DeadLettered != 1 || s.Deferred != 1 || s.LocksLost != 0 || s.Renewals < 2 {
		t.Fatalf("run 1: %+v\n%s", s, h.Logs())
	}
	if st := h.Stats(t); st != (holdfasttest.Stats{Deferred: 1, DeadLettered: 1}) {
		t.Fatalf("stats after run 1: %+v", st)
	}
	if dl := h.DeadLettered(t); len(dl) != 1 || *dl[0].DeadLetterReason != "Bad" {
		t.Fatalf("dead-lettered %v", dl)
	}
	// The deferred message is due: the next run takes it back by itself.
	if s := h.Run(t); s.Due != 1 || s.Completed != 1 {
		t.Fatalf("run 2: %+v\n%s", s, h.Logs())
	}
	if st := h.Stats(t); st != (holdfasttest.Stats{DeadLettered: 1}) {
		t.Fatalf("stats after run 2: %+v", st)
	}
}

func TestHandlerWithoutLedgerAbandonsDefers(t *testing.T) {
	h := holdfasttest.Start(t, byBody, &holdfasttest.Options{NoLedger: true, MaxDeliveryCount: 1})
	h.Send(t, &azservicebus.Message{Body: []byte("later")})
	if s := h.Run(t); s.Received != 1 || s.Abandoned != 1 || s.Deferred != 0 {
		t.Fatalf("summary %+v", s)
	}
	if _, ok := h.Settings()["DeferralStorage"]; ok {
		t.Fatal("NoLedger still configured deferral storage")
	}
}
