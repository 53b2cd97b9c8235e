package ledger

import (
	"context"
	"errors"
	"reflect"
	"slices"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/data/aztables"
	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus"
)

// fakePeeker serves peeks from a fixed set of messages, as the service does: ordered, from a sequence number.
// pageLimit, when set, returns that many messages at most from each page peek (n > 1), as the service may;
// afterPage runs after each page peek returned.
type fakePeeker struct {
	mu        sync.Mutex
	msgs      []*azservicebus.ReceivedMessage // sorted by sequence number; guarded by mu
	peeks     int                             // guarded by mu
	targeted  int                             // peeks of one message; guarded by mu
	pageLimit func(page int) int              // guarded by mu
	afterPage func(page int)                  // called without mu
	err       error
}

func newFakePeeker(msgs ...*azservicebus.ReceivedMessage) *fakePeeker {
	sort.Slice(msgs, func(i, j int) bool { return *msgs[i].SequenceNumber < *msgs[j].SequenceNumber })
	return &fakePeeker{msgs: msgs}
}

func (p *fakePeeker) PeekMessages(_ context.Context, n int, o *azservicebus.PeekMessagesOptions) ([]*azservicebus.ReceivedMessage, error) {
	p.mu.Lock()
	p.peeks++
	if n == 1 {
		p.targeted++
	}
	if p.err != nil {
		p.mu.Unlock()
		return nil, p.err
	}
	page := p.peeks - p.targeted // page peeks so far, this one included
	if n > 1 && p.pageLimit != nil {
		n = min(n, p.pageLimit(page))
	}
	var out []*azservicebus.ReceivedMessage
	for _, m := range p.msgs {
		if *m.SequenceNumber >= *o.FromSequenceNumber && len(out) < n {
			out = append(out, m)
		}
	}
	after := p.afterPage
	p.mu.Unlock()
	if after != nil && n != 1 {
		after(page)
	}
	return out, nil
}

// remove drops message seq, as completing it would.
func (p *fakePeeker) remove(seq int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.msgs = slices.DeleteFunc(p.msgs, func(m *azservicebus.ReceivedMessage) bool { return *m.SequenceNumber == seq })
}

// reconcileAll runs Reconcile with o from the start until Done and sums the reports; it fails after 100 calls.
func reconcileAll(ctx context.Context, t *testing.T, l *Ledger, p Peeker, o ReconcileOptions) (total ReconcileReport, calls int) {
	t.Helper()
	o.Cursor = ""
	for calls < 100 {
		rep, err := l.Reconcile(ctx, p, &o)
		if err != nil {
			t.Fatal(err)
		}
		calls++
		total.Scanned += rep.Scanned
		total.Checked += rep.Checked
		total.Added += rep.Added
		total.Marked += rep.Marked
		total.Removed += rep.Removed
		total.ExpiringSoon += rep.ExpiringSoon
		if rep.Done {
			total.Done = true
			return total, calls
		}
		if rep.Cursor == o.Cursor {
			t.Fatalf("call %d: cursor %q does not advance", calls, rep.Cursor)
		}
		o.Cursor = rep.Cursor
	}
	t.Fatalf("reconcile not done after %d calls", calls)
	return total, calls
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
	// Rows 6, 9 and 300 are old and their messages are not in any page: each gets a targeted peek.
	want := ReconcileReport{Scanned: 6, Checked: 3, Added: 1, Marked: 1, Removed: 4, ExpiringSoon: 1, Done: true}
	if !reflect.DeepEqual(rep, want) {
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

// seedRows writes rows seqs (state deferred, reason "seeded") at the clock's time, in table batches.
func seedRows(ctx context.Context, t *testing.T, l *Ledger, clock *testClock, seqs ...int64) {
	t.Helper()
	if err := l.EnsureTable(ctx); err != nil {
		t.Fatal(err)
	}
	ops := make([]op, len(seqs))
	for i, seq := range seqs {
		r := sampleRow(seq, clock)
		r.Reason = "seeded"
		ops[i] = op{kind: aztables.TransactionTypeAdd, row: r}
	}
	for i, err := range l.apply(ctx, ops) {
		if err != nil {
			t.Fatalf("seed row %d: %v", seqs[i], err)
		}
	}
}

// TestReconcileShortPagesKeepLiveRows: the service may answer a peek with fewer messages than exist, even
// none. Rows of deferred messages a page did not show are checked one by one and kept, with their reason;
// nothing is removed and nothing is re-added as recovered.
func TestReconcileShortPagesKeepLiveRows(t *testing.T) {
	ctx, clock := testCtx(t), newTestClock()
	l := newTestLedger(t, newTable(t), "orders", clock)
	seqs := []int64{1, 2, 3, 4, 5, 6}
	seedRows(ctx, t, l, clock, seqs...)
	clock.Advance(DefaultLockDuration + time.Second) // every row is old enough to be removed
	var msgs []*azservicebus.ReceivedMessage
	for _, seq := range seqs {
		msgs = append(msgs, fakeMessage(seq, azservicebus.MessageStateDeferred, time.Time{}))
	}
	p := newFakePeeker(msgs...)
	p.pageLimit = func(page int) int { return []int{0, 1, 0, 2}[min(page-1, 3)] } // an early empty page, then short ones

	rep, _ := reconcileAll(ctx, t, l, p, ReconcileOptions{PageSize: 4})
	if rep.Removed != 0 || rep.Added != 0 || rep.Checked == 0 {
		t.Fatalf("short pages: %+v; want rows checked one by one, none removed or re-added", rep)
	}
	p.pageLimit = nil
	if rep, _ = reconcileAll(ctx, t, l, p, ReconcileOptions{}); rep.Removed+rep.Added+rep.Marked != 0 {
		t.Fatalf("a full pass afterwards changed rows: %+v", rep)
	}
	rows, _, err := l.List(ctx, 100, "")
	if err != nil || len(rows) != len(seqs) {
		t.Fatalf("rows %v, %v; want the %d rows kept", rows, err, len(seqs))
	}
	for _, r := range rows {
		if r.Reason != "seeded" {
			t.Errorf("row %d reason %q; the original reason must survive", r.SequenceNumber, r.Reason)
		}
	}
}

// TestReconcileNoPhantomRow: a drain completes a deferred message and deletes its row while reconcile runs,
// right after reconcile peeked it. Reconcile must not add a row for the message it just saw.
func TestReconcileNoPhantomRow(t *testing.T) {
	ctx, clock := testCtx(t), newTestClock()
	l := newTestLedger(t, newTable(t), "orders", clock)
	seedRows(ctx, t, l, clock, 3)
	p := newFakePeeker(fakeMessage(3, azservicebus.MessageStateDeferred, time.Time{}))
	p.afterPage = func(page int) { // the drain: complete the original, then delete its row
		if page != 1 {
			return
		}
		p.remove(3)
		if err := l.Delete(ctx, Row{SequenceNumber: 3}); err != nil {
			t.Errorf("drain's delete: %v", err)
		}
	}
	rep, _ := reconcileAll(ctx, t, l, p, ReconcileOptions{})
	if _, err := l.Get(ctx, 3); !errors.Is(err, ErrNotFound) || rep.Added != 0 {
		t.Fatalf("report %+v, row 3: %v; want no row for the completed message", rep, err)
	}
}

// TestReconcileFinalSweepIsBounded: when the entity holds no message, the rows left are still handled a page
// at a time, within MaxPages, each removal proven by its own targeted peek, and the cursor resumes.
func TestReconcileFinalSweepIsBounded(t *testing.T) {
	ctx, clock := testCtx(t), newTestClock()
	l := newTestLedger(t, newTable(t), "orders", clock)
	const n, page, pages = 600, 100, 2
	seqs := make([]int64, n)
	for i := range seqs {
		seqs[i] = int64(10 + i)
	}
	seedRows(ctx, t, l, clock, seqs...)
	clock.Advance(DefaultLockDuration + time.Second)
	p := newFakePeeker() // every message is gone

	first, err := l.Reconcile(ctx, p, &ReconcileOptions{PageSize: page, MaxPages: pages})
	if err != nil {
		t.Fatal(err)
	}
	if first.Done || first.Removed > page*pages || first.Cursor == "" {
		t.Fatalf("first call: %+v; want at most %d rows removed and a cursor", first, page*pages)
	}
	rep, calls := reconcileAll(ctx, t, l, p, ReconcileOptions{PageSize: page, MaxPages: pages})
	if rep.Removed != n-first.Removed || rep.Checked != rep.Removed || calls < (n-first.Removed)/(page*pages) {
		t.Fatalf("the rest: %+v in %d calls; want %d removed, each after a targeted peek", rep, calls, n-first.Removed)
	}
}
