package ledger

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus"
)

// recordingSettler records DeferMessage calls; check runs inside the call (e.g. to inspect the ledger then).
type recordingSettler struct {
	mu    sync.Mutex
	calls []*azservicebus.DeferMessageOptions // guarded by mu
	check func(msg *azservicebus.ReceivedMessage)
	err   error
}

func (s *recordingSettler) DeferMessage(ctx context.Context, msg *azservicebus.ReceivedMessage, o *azservicebus.DeferMessageOptions) error {
	if s.check != nil {
		s.check(msg)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls = append(s.calls, o)
	return s.err
}

func (s *recordingSettler) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.calls)
}

func TestDeferIndexesBeforeDeferring(t *testing.T) {
	ctx, clock := testCtx(t), newTestClock()
	l := newTestLedger(t, newTable(t), "orders", clock)
	expires := clock.Now().Add(48 * time.Hour)
	msg := fakeMessage(77, azservicebus.MessageStateActive, expires)
	msg.CorrelationID, msg.Subject = ptr("order-9"), ptr("order.created")
	msg.ApplicationProperties = map[string]any{PropResubmitCount: int64(2)}
	notBefore := clock.Now().Add(10 * time.Minute)

	s := &recordingSettler{check: func(*azservicebus.ReceivedMessage) {
		// Invariant 2: the row exists before the message is deferred.
		r, err := l.Get(ctx, 77)
		if err != nil || r.State != StatePending {
			t.Errorf("during DeferMessage: row = %+v, %v; want a pending row", r, err)
		}
	}}
	if err := l.Defer(ctx, s, msg, notBefore, "stock low"); err != nil {
		t.Fatal(err)
	}
	if s.count() != 1 {
		t.Fatalf("DeferMessage called %d times, want 1", s.count())
	}
	props := s.calls[0].PropertiesToModify
	if props[PropDeferReason] != "stock low" || props[PropNotBefore] != notBefore.UTC().Format(time.RFC3339) {
		t.Errorf("PropertiesToModify = %v, want reason and RFC 3339 not-before", props)
	}
	got, err := l.Get(ctx, 77)
	if err != nil {
		t.Fatal(err)
	}
	want := Row{
		Entity: "orders", SequenceNumber: 77, State: StateDeferred, MessageID: msg.MessageID,
		CorrelationID: "order-9", Subject: "order.created", Reason: "stock low",
		DeferredAt: clock.Now(), NotBefore: notBefore, ExpiresAt: expires, DeliveryCount: 1, ResubmitCount: 2,
		ETag: got.ETag,
	}
	if got != want {
		t.Fatalf("row = %+v\nwant  %+v", got, want)
	}
}

// A message sent without a TTL (the entity's default applies) has an unknown expiry in its row, not its
// enqueued time: the SDK's ExpiresAt for it is EnqueuedTime + 0. Mutation: copying msg.ExpiresAt as it is
// flags every such row as expiring and makes this fail.
func TestDeferWithoutMessageTTLLeavesExpiryUnknown(t *testing.T) {
	ctx, clock := testCtx(t), newTestClock()
	l := newTestLedger(t, newTable(t), "orders", clock)
	if err := l.Defer(ctx, &recordingSettler{}, noTTLMessage(8, azservicebus.MessageStateActive, clock.Now().Add(-time.Minute)), time.Time{}, "later"); err != nil {
		t.Fatal(err)
	}
	got, err := l.Get(ctx, 8)
	if err != nil || !got.ExpiresAt.IsZero() || got.ExpiringSoon {
		t.Fatalf("row = %+v, %v; want no expiry and not expiring soon", got, err)
	}
}

func TestDeferSameMessageTwiceIsIdempotent(t *testing.T) {
	ctx, clock := testCtx(t), newTestClock()
	l := newTestLedger(t, newTable(t), "orders", clock)
	msg := fakeMessage(5, azservicebus.MessageStateActive, time.Time{})
	s := &recordingSettler{}
	if err := l.Defer(ctx, s, msg, time.Time{}, "first"); err != nil {
		t.Fatal(err)
	}
	msg.DeliveryCount = 2
	if err := l.Defer(ctx, s, msg, time.Time{}, "second"); err != nil {
		t.Fatalf("re-deferring the same sequence number: %v", err)
	}
	rows, _, err := l.List(ctx, 10, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 1 || rows[0].State != StateDeferred || rows[0].DeliveryCount != 2 || rows[0].Reason != "second" {
		t.Fatalf("rows = %+v, want one deferred row with the latest delivery", rows)
	}
	if _, ok := s.calls[0].PropertiesToModify[PropNotBefore]; ok {
		t.Error("a zero not-before was written as a property")
	}
}

func TestDeferTableUnavailableDoesNotDefer(t *testing.T) {
	var logs bytes.Buffer
	l, err := New(unavailableClient(t), &Options{Entity: "orders", Logger: slog.New(slog.NewJSONHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	s := &recordingSettler{}
	err = l.Defer(testCtx(t), s, fakeMessage(1, azservicebus.MessageStateActive, time.Time{}), time.Time{}, "r")
	if err == nil {
		t.Fatal("Defer with the table unavailable returned nil")
	}
	if s.count() != 0 {
		t.Fatal("DeferMessage was called although the ledger write failed (invariant 2)")
	}
	if out := logs.String(); !strings.Contains(out, `"level":"WARN"`) || !strings.Contains(out, "abandoned") || !strings.Contains(out, "connect") {
		t.Errorf("log = %s, want a warning that the message is abandoned, with the connection error as cause", out)
	}
}

func TestDeferSettleFailureLeavesPendingRow(t *testing.T) {
	ctx, clock := testCtx(t), newTestClock()
	l := newTestLedger(t, newTable(t), "orders", clock)
	lockLost := errors.New("lock lost")
	err := l.Defer(ctx, &recordingSettler{err: lockLost}, fakeMessage(9, azservicebus.MessageStateActive, time.Time{}), time.Time{}, "r")
	if !errors.Is(err, lockLost) {
		t.Fatalf("Defer error = %v, want the settler's error", err)
	}
	if r, err := l.Get(ctx, 9); err != nil || r.State != StatePending {
		t.Fatalf("row = %+v, %v; want it left pending for reconciliation", r, err)
	}
}

func TestDeferRejectsBadInput(t *testing.T) {
	clock := newTestClock()
	l := newTestLedger(t, newTable(t), "orders", clock)
	ctx := testCtx(t)
	tests := []struct {
		name string
		s    DeferSettler
		msg  *azservicebus.ReceivedMessage
	}{
		{"nil message", &recordingSettler{}, nil},
		{"no sequence number", &recordingSettler{}, &azservicebus.ReceivedMessage{MessageID: "x"}},
		{"nil settler", nil, fakeMessage(1, azservicebus.MessageStateActive, time.Time{})},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := l.Defer(ctx, tt.s, tt.msg, time.Time{}, "r"); !errors.Is(err, ErrInvalid) {
				t.Fatalf("Defer error = %v, want ErrInvalid", err)
			}
		})
	}
}

func TestDeferCrashPointsLeaveAPendingRow(t *testing.T) {
	tests := []struct {
		point      crashPoint
		wantDefers int
	}{
		{crashAfterRecord, 0},
		{crashAfterDefer, 1},
	}
	for _, tt := range tests {
		ctx, clock := testCtx(t), newTestClock()
		l := newTestLedger(t, newTable(t), "orders", clock)
		l.crash = func(p crashPoint) error {
			if p == tt.point {
				return errCrashed
			}
			return nil
		}
		s := &recordingSettler{}
		if err := l.Defer(ctx, s, fakeMessage(3, azservicebus.MessageStateActive, time.Time{}), time.Time{}, "r"); !errors.Is(err, errCrashed) {
			t.Fatalf("crash point %d: Defer error = %v, want the simulated crash", tt.point, err)
		}
		if s.count() != tt.wantDefers {
			t.Errorf("crash point %d: %d defers, want %d", tt.point, s.count(), tt.wantDefers)
		}
		if r, err := l.Get(ctx, 3); err != nil || r.State != StatePending {
			t.Errorf("crash point %d: row = %+v, %v; want pending", tt.point, r, err)
		}
	}
}
