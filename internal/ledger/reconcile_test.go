package ledger

import (
	"context"
	"errors"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus"
)

// fakePeeker serves peeks from a fixed set of messages, as the service does: ordered, from a sequence number.
type fakePeeker struct {
	mu    sync.Mutex
	msgs  []*azservicebus.ReceivedMessage // sorted by sequence number; guarded by mu
	peeks int                             // guarded by mu
	err   error
}

func newFakePeeker(msgs ...*azservicebus.ReceivedMessage) *fakePeeker {
	sort.Slice(msgs, func(i, j int) bool { return *msgs[i].SequenceNumber < *msgs[j].SequenceNumber })
	return &fakePeeker{msgs: msgs}
}

func (p *fakePeeker) PeekMessages(_ context.Context, n int, o *azservicebus.PeekMessagesOptions) ([]*azservicebus.ReceivedMessage, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.peeks++
	if p.err != nil {
		return nil, p.err
	}
	var out []*azservicebus.ReceivedMessage
	for _, m := range p.msgs {
		if *m.SequenceNumber >= *o.FromSequenceNumber && len(out) < n {
			out = append(out, m)
		}
	}
	return out, nil
}

func TestReconcileDiffsLedgerAgainstPeek(t *testing.T) {
	const lock = time.Minute
	ctx, clock := testCtx(t), newTestClock()
	l, err := New(newTable(t), &Options{Entity: "orders/Subscriptions/audit", Now: clock.Now, ExpiryWarning: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	old, fresh := clock.Now(), clock.Now().Add(2*lock) // rows written at "old" are older than the lock at the end
	soon := fresh.Add(30 * time.Minute)

	type seed struct {
		seq        int64
		state      State
		at         time.Time
		leaseUntil time.Time
	}
	rows := []seed{
		{2, StatePending, old, time.Time{}},              // message deferred ⇒ marked
		{3, StateDeferred, old, time.Time{}},             // message deferred ⇒ kept
		{4, StatePending, old, time.Time{}},              // message active, row old ⇒ removed (crash before defer)
		{5, StatePending, fresh, time.Time{}},            // message active, row fresh ⇒ kept (defer in flight)
		{6, StateDeferred, old, time.Time{}},             // message gone, old ⇒ removed (completed elsewhere)
		{7, StateDeferred, fresh, time.Time{}},           // message gone, fresh ⇒ kept
		{8, StateResubmitting, old, soon.Add(time.Hour)}, // message gone, drain lease live ⇒ kept
		{9, StateResubmitting, old, old},                 // message gone, lease expired ⇒ removed
		{300, StateDeferred, old, time.Time{}},           // beyond the last message, gone ⇒ removed
	}
	for _, s := range rows {
		r := sampleRow(s.seq, clock)
		r.State, r.DeferredAt, r.LeaseUntil = s.state, s.at, s.leaseUntil
		if _, err := l.Put(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	clock.Advance(2*lock + time.Second)

	orphan := fakeMessage(1, azservicebus.MessageStateDeferred, soon) // deferred behind the ledger's back
	orphan.ApplicationProperties = map[string]any{PropNotBefore: "2026-11-22T05:00:00Z"}
	p := newFakePeeker(
		orphan,
		fakeMessage(2, azservicebus.MessageStateDeferred, time.Time{}),
		fakeMessage(3, azservicebus.MessageStateDeferred, time.Time{}),
		fakeMessage(4, azservicebus.MessageStateActive, time.Time{}),
		fakeMessage(5, azservicebus.MessageStateActive, time.Time{}),
		fakeMessage(10, azservicebus.MessageStateScheduled, time.Time{}), // no row, not deferred ⇒ ignored
	)

	rep, err := l.Reconcile(ctx, p, &ReconcileOptions{LockDuration: lock, PageSize: 2})
	if err != nil {
		t.Fatal(err)
	}
	want := ReconcileReport{Scanned: 6, Added: 1, Marked: 1, Removed: 4, ExpiringSoon: 1, Done: true}
	if rep != want {
		t.Fatalf("report = %+v, want %+v", rep, want)
	}

	states := map[int64]State{}
	all, _, err := l.List(ctx, 100, "")
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range all {
		states[r.SequenceNumber] = r.State
	}
	wantStates := map[int64]State{1: StateDeferred, 2: StateDeferred, 3: StateDeferred, 5: StatePending, 7: StateDeferred, 8: StateResubmitting}
	if len(states) != len(wantStates) {
		t.Fatalf("rows after reconcile = %v, want %v", states, wantStates)
	}
	for seq, st := range wantStates {
		if states[seq] != st {
			t.Errorf("row %d state = %q, want %q", seq, states[seq], st)
		}
	}
	rec, err := l.Get(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	if rec.Reason != ReasonRecovered || !rec.ExpiringSoon || rec.NotBefore.IsZero() || rec.MessageID != orphan.MessageID {
		t.Errorf("recovered row = %+v, want reason %q, expiring soon, not-before from the message", rec, ReasonRecovered)
	}

	// A second pass changes nothing.
	rep, err = l.Reconcile(ctx, p, &ReconcileOptions{LockDuration: lock})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Added+rep.Marked+rep.Removed != 0 || !rep.Done {
		t.Fatalf("second pass report = %+v, want no changes", rep)
	}
}

func TestReconcileResumesFromCursor(t *testing.T) {
	ctx, clock := testCtx(t), newTestClock()
	l := newTestLedger(t, newTable(t), "orders", clock)
	var msgs []*azservicebus.ReceivedMessage
	for seq := int64(1); seq <= 7; seq++ {
		msgs = append(msgs, fakeMessage(seq, azservicebus.MessageStateDeferred, time.Time{}))
	}
	p := newFakePeeker(msgs...)

	var total ReconcileReport
	cursor, calls := "", 0
	for {
		rep, err := l.Reconcile(ctx, p, &ReconcileOptions{Cursor: cursor, PageSize: 2, MaxPages: 1})
		if err != nil {
			t.Fatal(err)
		}
		calls++
		total.Scanned += rep.Scanned
		total.Added += rep.Added
		if rep.Done {
			break
		}
		if rep.Cursor == "" || rep.Cursor == cursor || calls > 10 {
			t.Fatalf("call %d: cursor %q does not advance from %q", calls, rep.Cursor, cursor)
		}
		cursor = rep.Cursor
	}
	if total.Scanned != 7 || total.Added != 7 || calls != 5 {
		t.Fatalf("scanned %d, added %d in %d calls; want 7, 7 in 5 (4 pages of ≤ 2, then the end)", total.Scanned, total.Added, calls)
	}
}

func TestReconcileBudgetStopsBetweenPages(t *testing.T) {
	ctx, clock := testCtx(t), newTestClock()
	l := newTestLedger(t, newTable(t), "orders", clock)
	p := newFakePeeker(fakeMessage(1, azservicebus.MessageStateActive, time.Time{}))
	rep, err := l.Reconcile(ctx, p, &ReconcileOptions{Cursor: "1", Budget: -1})
	if err != nil || rep.Scanned != 1 || !rep.Done {
		t.Fatalf("negative budget (no limit): report %+v, %v; want one page to the end", rep, err)
	}
	before := p.peeks
	// A clock that jumps past the budget at every reading: no page is peeked, the cursor is kept.
	jumpy, err := New(l.client, &Options{Entity: "orders", Now: func() time.Time { clock.Advance(time.Hour); return clock.Now() }})
	if err != nil {
		t.Fatal(err)
	}
	rep, err = jumpy.Reconcile(ctx, p, &ReconcileOptions{Cursor: "1", Budget: time.Minute})
	if err != nil || rep.Done || rep.Cursor != "1" || p.peeks != before {
		t.Fatalf("exhausted budget: report %+v, %v, %d new peeks; want not done, cursor kept, no new peek", rep, err, p.peeks-before)
	}
}

func TestReconcileErrors(t *testing.T) {
	ctx, clock := testCtx(t), newTestClock()
	l := newTestLedger(t, newTable(t), "orders", clock)
	if _, err := l.Reconcile(ctx, newFakePeeker(), &ReconcileOptions{Cursor: "abc"}); !errors.Is(err, ErrInvalid) {
		t.Errorf("bad cursor: error = %v, want ErrInvalid", err)
	}
	if _, err := l.Reconcile(ctx, nil, nil); !errors.Is(err, ErrInvalid) {
		t.Errorf("nil peeker: error = %v, want ErrInvalid", err)
	}
	peekErr := errors.New("connection lost")
	rep, err := l.Reconcile(ctx, &fakePeeker{err: peekErr}, &ReconcileOptions{Cursor: "12"})
	if !errors.Is(err, peekErr) || rep.Cursor != "12" || rep.Done {
		t.Errorf("peek failure: report %+v, error %v; want the peek error and the cursor kept", rep, err)
	}
	down, err := New(unavailableClient(t), &Options{Entity: "orders"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := down.Reconcile(ctx, newFakePeeker(), nil); err == nil {
		t.Error("reconcile with the table unavailable returned nil")
	}
}
