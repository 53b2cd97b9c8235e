package ledger

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus"
)

// sessionMessage is fakeMessage in session sid.
func sessionMessage(sid string, seq int64, state azservicebus.MessageState) *azservicebus.ReceivedMessage {
	m := fakeMessage(seq, state, time.Time{})
	m.SessionID = &sid
	return m
}

// fakeSessionsOpener serves one fakePeeker per session; busy sessions answer ErrSessionBusy.
type fakeSessionsOpener struct {
	peekers map[string]*fakePeeker
	busy    map[string]bool
	opened  []string
	open    int // sessions open now
}

func (f *fakeSessionsOpener) opener(ctx context.Context, sid string) (Peeker, func(), error) {
	if f.busy[sid] {
		return nil, nil, fmt.Errorf("%w: %s", ErrSessionBusy, sid)
	}
	f.opened = append(f.opened, sid)
	f.open++
	p := f.peekers[sid]
	if p == nil {
		p = newFakePeeker()
	}
	return p, func() { f.open-- }, nil
}

// Reconciliation of a session entity walks each session — those Service Bus lists and those only the ledger
// knows (a session holding only deferred messages is not listed) — peeking within the session, with
// Reconcile's rules: a deferred message without a row is recovered with its session, a pending row marked,
// a gone row removed; a busy session is skipped and named; a call cut short resumes at its session.
func TestReconcileSessions(t *testing.T) {
	const lock = time.Minute
	ctx, clock := testCtx(t), newTestClock()
	l := newTestLedger(t, newTable(t), "orders", clock)
	str := func(s string) *string { return &s }
	put := func(seq int64, sid string, st State) {
		t.Helper()
		r := sampleRow(seq, clock)
		r.State, r.SessionID = st, str(sid)
		if _, err := l.Put(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	put(1, "a", StateDeferred) // deferred in a listed session ⇒ kept
	put(6, "a", StateDeferred) // gone ⇒ removed
	put(3, "b", StatePending)  // session only in the ledger; its message is deferred ⇒ marked
	put(5, "d", StateDeferred) // session only in the ledger; gone ⇒ removed
	put(7, "c", StateDeferred) // busy session ⇒ left alone
	clock.Advance(2 * lock)

	f := &fakeSessionsOpener{
		peekers: map[string]*fakePeeker{
			"a": newFakePeeker(sessionMessage("a", 1, azservicebus.MessageStateDeferred), sessionMessage("a", 2, azservicebus.MessageStateActive),
				sessionMessage("a", 4, azservicebus.MessageStateDeferred)), // 4: deferred without a row ⇒ recovered
			"b": newFakePeeker(sessionMessage("b", 3, azservicebus.MessageStateDeferred)),
		},
		busy: map[string]bool{"c": true},
	}
	listed := []string{"a", "c", "e"} // e: listed (state only), nothing deferred
	rep, err := l.ReconcileSessions(ctx, f.opener, listed, &ReconcileOptions{LockDuration: lock})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Added != 1 || rep.Marked != 1 || rep.Removed != 2 || rep.Sessions != 4 || !slices.Equal(rep.SessionsSkipped, []string{"c"}) || !rep.Done {
		t.Fatalf("report %+v; want 1 added, 1 marked, 2 removed, sessions a b d e walked, c skipped, done", rep)
	}
	if !slices.Equal(f.opened, []string{"a", "b", "d", "e"}) || f.open != 0 {
		t.Errorf("opened %v (%d still open); want a, b, d, e, each released", f.opened, f.open)
	}
	got, err := l.Get(ctx, 4)
	if err != nil || got.SessionID == nil || *got.SessionID != "a" || got.Reason != ReasonRecovered {
		t.Fatalf("recovered row: %+v, %v; want session a, reason recovered", got, err)
	}
	if got, err := l.Get(ctx, 3); err != nil || got.State != StateDeferred {
		t.Errorf("pending row of session b: %+v, %v; want marked deferred", got, err)
	}
	for _, seq := range []int64{5, 6} {
		if _, err := l.Get(ctx, seq); !errors.Is(err, ErrNotFound) {
			t.Errorf("row %d: %v; want removed", seq, err)
		}
	}
	if _, err := l.Get(ctx, 7); err != nil {
		t.Errorf("row of the busy session: %v; want kept", err)
	}
	ids, err := l.SessionIDs(ctx)
	if err != nil || !slices.Equal(ids, []string{"a", "b", "c"}) {
		t.Errorf("SessionIDs = %v, %v; want a, b, c", ids, err)
	}

	// One step per call: every call makes progress and the walk ends.
	f.opened = nil
	o := ReconcileOptions{LockDuration: lock, MaxPages: 1}
	calls := 0
	for ; calls < 20; calls++ {
		rep, err := l.ReconcileSessions(ctx, f.opener, listed, &o)
		if err != nil {
			t.Fatal(err)
		}
		if rep.Done {
			break
		}
		if rep.Cursor == o.Cursor {
			t.Fatalf("cursor %q does not advance", rep.Cursor)
		}
		o.Cursor = rep.Cursor
	}
	if calls == 20 || !slices.Contains(f.opened, "e") {
		t.Errorf("resumed walk: %d calls, opened %v", calls, f.opened)
	}
	if _, err := l.ReconcileSessions(ctx, f.opener, listed, &ReconcileOptions{Cursor: "12"}); !errors.Is(err, ErrInvalid) {
		t.Errorf("a plain cursor: %v; want ErrInvalid", err)
	}
}

// A row keeps its session: nil for a plain entity, "" and others for a session entity.
func TestRowSessionIDRoundTrip(t *testing.T) {
	ctx, clock := testCtx(t), newTestClock()
	l := newTestLedger(t, newTable(t), "orders", clock)
	for i, sid := range []*string{nil, new(string), func() *string { s := "order-42'x"; return &s }()} {
		r := sampleRow(int64(i+1), clock)
		r.SessionID = sid
		if _, err := l.Put(ctx, r); err != nil {
			t.Fatal(err)
		}
		got, err := l.Get(ctx, r.SequenceNumber)
		if err != nil {
			t.Fatal(err)
		}
		if (got.SessionID == nil) != (sid == nil) || sid != nil && *got.SessionID != *sid {
			t.Errorf("row %d: session %v; want %v", i+1, got.SessionID, sid)
		}
	}
	quoted := "order-42'x"
	rows, _, err := l.scanFrom(ctx, 0, 10, &quoted)
	if err != nil || len(rows) != 1 || rows[0].SequenceNumber != 3 {
		t.Errorf("scan of session %q: %v, %v; want row 3 only", quoted, rows, err)
	}
}
