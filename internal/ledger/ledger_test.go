package ledger

import (
	"errors"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/data/aztables"
)

func TestRowCRUDAndConflicts(t *testing.T) {
	ctx, clock := testCtx(t), newTestClock()
	l := newTestLedger(t, newTable(t), "orders/Subscriptions/audit", clock)
	if err := l.EnsureTable(ctx); err != nil {
		t.Fatal(err)
	}
	if err := l.EnsureTable(ctx); err != nil {
		t.Fatalf("EnsureTable on an existing table: %v", err)
	}

	want := sampleRow(42, clock)
	added, err := l.Add(ctx, want)
	if err != nil {
		t.Fatal(err)
	}
	if added.ETag == "" {
		t.Fatal("Add returned no ETag")
	}
	if _, err := l.Add(ctx, want); !errors.Is(err, ErrConflict) {
		t.Fatalf("second Add error = %v, want ErrConflict", err)
	}

	got, err := l.Get(ctx, 42)
	if err != nil {
		t.Fatal(err)
	}
	want.Entity, want.ETag = l.Entity(), got.ETag
	if got != want {
		t.Fatalf("Get = %+v\nwant  %+v", got, want)
	}

	updated := got
	updated.LastError = "send failed"
	updated, err = l.Update(ctx, updated)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.Update(ctx, got); !errors.Is(err, ErrConflict) {
		t.Fatalf("Update with a stale ETag: error = %v, want ErrConflict", err)
	}
	if _, err := l.Update(ctx, Row{SequenceNumber: 42, State: StateDeferred}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("Update without an ETag: error = %v, want ErrInvalid", err)
	}

	until := clock.Now().Add(time.Minute)
	leased, err := l.Lease(ctx, updated, until)
	if err != nil {
		t.Fatal(err)
	}
	if leased.State != StateResubmitting || !leased.LeaseUntil.Equal(until) || leased.LastError != "send failed" {
		t.Fatalf("Lease = %+v, want state resubmitting until %v keeping LastError", leased, until)
	}
	if _, err := l.Lease(ctx, updated, until); !errors.Is(err, ErrConflict) {
		t.Fatalf("second Lease with the pre-lease ETag: error = %v, want ErrConflict", err)
	}

	released, err := l.Release(ctx, leased, "receive failed")
	if err != nil {
		t.Fatal(err)
	}
	if released.State != StateDeferred || !released.LeaseUntil.IsZero() || released.LastError != "receive failed" {
		t.Fatalf("Release = %+v, want deferred, no lease, the last error", released)
	}
	if stored, err := l.Get(ctx, 42); err != nil || stored != released {
		t.Fatalf("stored after Release = %+v, %v\nwant %+v", stored, err, released)
	}
	if _, err := l.Release(ctx, leased, ""); !errors.Is(err, ErrConflict) {
		t.Fatalf("Release with the lease's stale ETag: error = %v, want ErrConflict", err)
	}
	leased = released

	if err := l.Delete(ctx, updated); !errors.Is(err, ErrConflict) {
		t.Fatalf("Delete with a stale ETag: error = %v, want ErrConflict", err)
	}
	if err := l.Delete(ctx, leased); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Get(ctx, 42); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get after Delete: error = %v, want ErrNotFound", err)
	}
	if err := l.Delete(ctx, leased); !errors.Is(err, ErrNotFound) {
		t.Fatalf("second Delete: error = %v, want ErrNotFound", err)
	}
	if _, err := l.Update(ctx, leased); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Update of a deleted row: error = %v, want ErrNotFound", err)
	}
}

func TestMissingTable(t *testing.T) {
	ctx, clock := testCtx(t), newTestClock()
	l := newTestLedger(t, newTable(t), "orders", clock)
	if _, err := l.Get(ctx, 1); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get on a missing table: error = %v, want ErrNotFound", err)
	}
	rows, next, err := l.List(ctx, 10, "")
	if err != nil || len(rows) != 0 || next != "" {
		t.Fatalf("List on a missing table = %d rows, %q, %v; want empty", len(rows), next, err)
	}
	if _, err := l.Put(ctx, sampleRow(1, clock)); err != nil {
		t.Fatalf("Put creates the missing table: %v", err)
	}
	if _, err := l.Get(ctx, 1); err != nil {
		t.Fatalf("Get after Put: %v", err)
	}
}

func TestRowValidation(t *testing.T) {
	ctx, clock := testCtx(t), newTestClock()
	l := newTestLedger(t, newTable(t), "orders", clock)
	bad := []struct {
		name string
		row  Row
	}{
		{"negative sequence number", Row{SequenceNumber: -1, State: StateDeferred}},
		{"unknown state", Row{SequenceNumber: 1, State: "lost"}},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := l.Put(ctx, tt.row); !errors.Is(err, ErrInvalid) {
				t.Fatalf("Put error = %v, want ErrInvalid", err)
			}
		})
	}
	if _, err := New(nil, &Options{Entity: "q"}); !errors.Is(err, ErrInvalid) {
		t.Errorf("New(nil client) error = %v, want ErrInvalid", err)
	}
	if _, err := New(l.client, &Options{}); !errors.Is(err, ErrInvalid) {
		t.Errorf("New without entity error = %v, want ErrInvalid", err)
	}
	if _, err := NewClientFromConnectionString("UseDevelopmentStorage=true", "deferred", nil); !errors.Is(err, ErrInvalid) {
		t.Errorf("development-storage shortcut: error = %v, want ErrInvalid", err)
	}
	if _, err := NewClientFromConnectionString("", "bad-name", nil); !errors.Is(err, ErrInvalid) {
		t.Errorf("bad table name: error = %v, want ErrInvalid", err)
	}
	if _, err := NewClientWithCredential("https://acct.table.core.windows.net/", "deferred", nil, nil); !errors.Is(err, ErrInvalid) {
		t.Errorf("nil credential: error = %v, want ErrInvalid", err)
	}
}

func TestListPaginates(t *testing.T) {
	ctx, clock := testCtx(t), newTestClock()
	client := newTable(t)
	l := newTestLedger(t, client, "orders", clock)
	other := newTestLedger(t, client, "orders/Subscriptions/other", clock)
	const n = 25
	for seq := int64(1); seq <= n; seq++ {
		if _, err := l.Put(ctx, sampleRow(seq*7, clock)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := other.Put(ctx, sampleRow(3, clock)); err != nil {
		t.Fatal(err)
	}

	var seqs []int64
	next, pages := "", 0
	for {
		rows, cont, err := l.List(ctx, 10, next)
		if err != nil {
			t.Fatal(err)
		}
		if len(rows) > 10 {
			t.Fatalf("page of %d rows, want ≤ 10", len(rows))
		}
		for _, r := range rows {
			seqs = append(seqs, r.SequenceNumber)
		}
		pages++
		if cont == "" {
			break
		}
		if pages > n {
			t.Fatal("List never ends")
		}
		next = cont
	}
	if len(seqs) != n || pages < 3 {
		t.Fatalf("listed %d rows in %d pages, want %d rows in ≥ 3 pages", len(seqs), pages, n)
	}
	for i, s := range seqs {
		if s != int64(i+1)*7 {
			t.Fatalf("row %d has sequence number %d, want %d (ordered, other entities excluded)", i, s, (i+1)*7)
		}
	}

	for _, bad := range []string{"not base64!", "e30", "eyJ2IjoyfQ"} {
		if _, _, err := l.List(ctx, 10, bad); !errors.Is(err, ErrInvalid) {
			t.Errorf("List with token %q: error = %v, want ErrInvalid", bad, err)
		}
	}
}

func TestDeleteBatchSplitsPerPartition(t *testing.T) {
	ctx, clock := testCtx(t), newTestClock()
	counter := &requestCounter{}
	client := newTableWith(t, &aztables.ClientOptions{ClientOptions: policy.ClientOptions{PerCallPolicies: []policy.Policy{counter}}})
	queue := newTestLedger(t, client, "orders", clock)
	sub := newTestLedger(t, client, "orders/Subscriptions/audit", clock)
	var rows []Row
	for seq := int64(1); seq <= 130; seq++ {
		for _, l := range []*Ledger{queue, sub} {
			r, err := l.Put(ctx, sampleRow(seq, clock))
			if err != nil {
				t.Fatal(err)
			}
			rows = append(rows, r)
		}
	}
	if err := queue.DeleteBatch(ctx, rows); err != nil {
		t.Fatalf("DeleteBatch of 260 rows in 2 partitions: %v", err)
	}
	// 130 rows per partition: a transaction of 100 and one of 30, for each of the 2 partitions.
	if n := counter.count("batch"); n != 4 {
		t.Errorf("DeleteBatch sent %d transactions, want 4", n)
	}
	if n := counter.count(http.MethodDelete); n != 0 {
		t.Errorf("DeleteBatch fell back to single deletes (%d)", n)
	}
	for _, l := range []*Ledger{queue, sub} {
		if left, _, err := l.List(ctx, 1000, ""); err != nil || len(left) != 0 {
			t.Fatalf("%s after DeleteBatch: %d rows, %v; want none", l.Entity(), len(left), err)
		}
	}
}

func TestDeleteBatchKeepsChangedRows(t *testing.T) {
	ctx, clock := testCtx(t), newTestClock()
	l := newTestLedger(t, newTable(t), "orders", clock)
	var rows []Row
	for seq := int64(1); seq <= 120; seq++ {
		r, err := l.Put(ctx, sampleRow(seq, clock))
		if err != nil {
			t.Fatal(err)
		}
		rows = append(rows, r)
	}
	// Row 50 changes after it was read (a concurrent defer); row 60 is already gone.
	if _, err := l.Update(ctx, rows[49]); err != nil {
		t.Fatal(err)
	}
	if err := l.Delete(ctx, rows[59]); err != nil {
		t.Fatal(err)
	}

	err := l.DeleteBatch(ctx, rows)
	if !errors.Is(err, ErrConflict) {
		t.Fatalf("DeleteBatch with one changed row: error = %v, want ErrConflict", err)
	}
	left, _, err := l.List(ctx, 1000, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(left) != 1 || left[0].SequenceNumber != 50 {
		t.Fatalf("rows left = %v, want only the changed row 50", seqsOf(left))
	}
}

func seqsOf(rows []Row) string {
	s := make([]int64, len(rows))
	for i, r := range rows {
		s[i] = r.SequenceNumber
	}
	return fmt.Sprint(s)
}

func TestExpiringSoonFlag(t *testing.T) {
	ctx, clock := testCtx(t), newTestClock()
	l, err := New(newTable(t), &Options{Entity: "orders", Now: clock.Now, ExpiryWarning: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	soon, later, never := sampleRow(1, clock), sampleRow(2, clock), sampleRow(3, clock)
	soon.ExpiresAt = clock.Now().Add(30 * time.Minute)
	later.ExpiresAt = clock.Now().Add(2 * time.Hour)
	never.ExpiresAt = time.Time{}
	for _, r := range []Row{soon, later, never} {
		if _, err := l.Put(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	rows, _, err := l.List(ctx, 10, "")
	if err != nil {
		t.Fatal(err)
	}
	want := map[int64]bool{1: true, 2: false, 3: false}
	for _, r := range rows {
		if r.ExpiringSoon != want[r.SequenceNumber] {
			t.Errorf("row %d ExpiringSoon = %v, want %v", r.SequenceNumber, r.ExpiringSoon, want[r.SequenceNumber])
		}
	}
	if len(rows) != 3 || !rows[2].ExpiresAt.IsZero() {
		t.Fatalf("rows = %+v, want 3 with row 3 never expiring", rows)
	}
}

func TestTimesBeyondTableRangeAreOmitted(t *testing.T) {
	ctx, clock := testCtx(t), newTestClock()
	l := newTestLedger(t, newTable(t), "orders", clock)
	r := sampleRow(1, clock)
	r.ExpiresAt = time.Date(10001, 1, 1, 0, 0, 0, 0, time.UTC)
	if _, err := l.Put(ctx, r); err != nil {
		t.Fatal(err)
	}
	got, err := l.Get(ctx, 1)
	if err != nil || !got.ExpiresAt.IsZero() || got.ExpiringSoon {
		t.Fatalf("row = %+v, %v; want ExpiresAt unset (never)", got, err)
	}
}
