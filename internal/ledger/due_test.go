package ledger

import (
	"errors"
	"slices"
	"testing"
	"time"
)

// Due selects exactly the rows a run may take now: deferred (or with a lapsed run claim) and not-before
// passed; never pending rows, live leases, lapsed drain leases, future or unset not-before times, nor rows of
// another entity.
func TestDueSelectsRowsWhoseTimeHasCome(t *testing.T) {
	ctx, clock := testCtx(t), newTestClock()
	client := newTable(t)
	l := newTestLedger(t, client, "orders", clock)
	other := newTestLedger(t, client, "invoices", clock)
	now := clock.Now()
	past, future := now.Add(-time.Minute), now.Add(time.Minute)
	rows := []struct {
		seq       int64
		state     State
		notBefore time.Time
		lease     time.Time
		due       bool
	}{
		{1, StateDeferred, past, time.Time{}, true},
		{2, StateDeferred, now, time.Time{}, true}, // exactly now
		{3, StateDeferred, future, time.Time{}, false},
		{4, StateDeferred, time.Time{}, time.Time{}, false}, // no not-before: the operator drains it
		{5, StatePending, past, time.Time{}, false},
		{6, StateProcessing, past, future, false},   // a live run claim
		{7, StateProcessing, past, past, true},      // a run that died: its claim lapsed
		{8, StateResubmitting, past, future, false}, // a live drain lease
		{9, StateResubmitting, past, past, false},   // a drain that died: its copy may be sent, a drain re-run finishes it
	}
	for _, r := range rows {
		row := sampleRow(r.seq, clock)
		row.State, row.NotBefore, row.LeaseUntil = r.state, r.notBefore, r.lease
		if _, err := l.Put(ctx, row); err != nil {
			t.Fatal(err)
		}
	}
	otherRow := sampleRow(1, clock)
	otherRow.NotBefore = past
	if _, err := other.Put(ctx, otherRow); err != nil {
		t.Fatal(err)
	}

	got, err := l.Due(ctx, now, 0)
	if err != nil {
		t.Fatal(err)
	}
	var seqs []int64
	for _, r := range got {
		seqs = append(seqs, r.SequenceNumber)
		if r.Entity != "orders" || r.ETag == "" {
			t.Errorf("row %+v: want entity orders and an ETag", r)
		}
	}
	var want []int64
	for _, r := range rows {
		if r.due {
			want = append(want, r.seq)
		}
	}
	if !slices.Equal(seqs, want) {
		t.Fatalf("due rows %v, want %v", seqs, want)
	}
	if got, err := l.Due(ctx, now, 2); err != nil || len(got) != 2 || got[0].SequenceNumber != 1 || got[1].SequenceNumber != 2 {
		t.Fatalf("Due with max 2: %d rows, %v", len(got), err)
	}

	// Claiming takes the row out of the due set until its claim lapses; a second claim with the old ETag loses.
	claimed, err := l.Claim(ctx, got[0], future)
	if err != nil || claimed.State != StateProcessing || !claimed.LeaseUntil.Equal(future) {
		t.Fatalf("Claim: %+v, %v", claimed, err)
	}
	if _, err := l.Claim(ctx, got[0], future); !errors.Is(err, ErrConflict) {
		t.Fatalf("second Claim: %v, want ErrConflict", err)
	}
	after, err := l.Due(ctx, now, 0)
	if err != nil || len(after) != len(want)-1 || after[0].SequenceNumber != 2 {
		t.Fatalf("due after the claim: %d rows (first %v), %v", len(after), after, err)
	}
	if lapsed, err := l.Due(ctx, future, 0); err != nil || lapsed[0].SequenceNumber != 1 {
		t.Fatalf("due once the claim lapsed: %v, %v", lapsed, err)
	}
}

func TestDueOnMissingTable(t *testing.T) {
	clock := newTestClock()
	l := newTestLedger(t, newTable(t), "orders", clock)
	if rows, err := l.Due(testCtx(t), clock.Now(), 10); err != nil || len(rows) != 0 {
		t.Fatalf("Due on a missing table: %v, %v", rows, err)
	}
}
