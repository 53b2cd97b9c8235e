package ledger

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/data/aztables"
)

// Due returns up to max rows (max ≤ 0 means 100; at most 1000) whose message is due at now: NotBefore is
// set and not after now, and the row is deferred or a run's claim on it ran out. A row without NotBefore is
// never due: it waits for an operator's drain. So is a row whose drain lease ran out (state resubmitting): that
// drain may have sent the message's copy before it died, and only a drain re-run completes the original without
// delivering the work twice (the copy's MessageID makes the resend a duplicate); a run that processed the
// original would leave the copy to be processed again. Rows come in sequence-number order. Due follows
// continuations until it has max rows or the table has no more, so it makes one request per page the service
// returns (a filtered query may return short or empty pages); ctx bounds it. A missing table has no rows.
func (l *Ledger) Due(ctx context.Context, now time.Time, max int) ([]Row, error) {
	if max <= 0 {
		max = defaultTop
	}
	max = min(max, maxTop)
	at := now.UTC().Format(time.RFC3339Nano)
	// Table Storage compares a missing property as false, so rows without NotBefore never match.
	filter := fmt.Sprintf("PartitionKey eq '%s' and %s le datetime'%s' and (%s eq '%s' or (%s eq '%s' and %s le datetime'%s'))",
		l.pk, colNotBefore, at, colState, StateDeferred, colState, StateProcessing, colLeaseUntil, at)
	pager := l.client.NewListEntitiesPager(&aztables.ListEntitiesOptions{Filter: &filter, Top: ptr(int32(max))})
	var rows []Row
	for len(rows) < max && pager.More() {
		page, err := pager.NextPage(ctx)
		if err != nil {
			err = translate(err)
			if errors.Is(err, errTableNotFound) {
				return nil, nil
			}
			return rows, fmt.Errorf("ledger: due rows: %w", err)
		}
		got, err := l.decodeRows(page.Entities)
		if err != nil {
			return rows, err
		}
		for _, r := range got {
			// The filter already selects these; the check keeps Due honest with Leasable.
			if len(rows) < max && r.Leasable(now) && r.State != StateResubmitting && !r.NotBefore.IsZero() && !r.NotBefore.After(now) {
				rows = append(rows, r)
			}
		}
	}
	return rows, nil
}

// Claim leases r for a timer run that processes its due message: state processing, LeaseUntil until,
// conditional on r.ETag. It returns the claimed row (with the ETag to use next) or ErrConflict when a drain,
// a defer or another run changed the row first. One request.
func (l *Ledger) Claim(ctx context.Context, r Row, until time.Time) (Row, error) {
	r.State = StateProcessing
	r.LeaseUntil = until
	return l.Update(ctx, r)
}
