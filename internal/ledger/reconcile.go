package ledger

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"strconv"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/data/aztables"
	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus"
)

// ReasonRecovered is the Reason of rows Reconcile adds for deferred messages the ledger did not know.
const ReasonRecovered = "recovered"

// Reconcile defaults and limits.
const (
	// DefaultLockDuration is the age below which Reconcile never removes a row: Azure's longest lock, so a defer
	// in flight is never raced.
	DefaultLockDuration = 5 * time.Minute
	// MaxPeek is the most messages the service returns from one peek.
	MaxPeek = 250
	// DefaultReconcilePages is how many peek pages one Reconcile call covers at most.
	DefaultReconcilePages = 20
)

// Peeker browses an entity without locking. *azservicebus.Receiver implements it. PeekMessages returns up to
// maxMessageCount messages in every state, in sequence-number order starting at FromSequenceNumber; the SDK
// retries transient failures within the call. The service does not promise a minimum page size: a page may
// hold fewer messages than exist, even none, so Reconcile never concludes that a message is gone from a page
// that does not show it.
type Peeker interface {
	PeekMessages(ctx context.Context, maxMessageCount int, options *azservicebus.PeekMessagesOptions) ([]*azservicebus.ReceivedMessage, error)
}

var _ Peeker = (*azservicebus.Receiver)(nil)

// ReconcileOptions bounds and tunes one Reconcile call. nil or zero values mean the defaults.
type ReconcileOptions struct {
	// Cursor resumes where a previous call's report left off; "" starts at the first message.
	Cursor string
	// LockDuration is the entity's lock duration: rows younger than it are never removed, so a defer in flight
	// (row written, DeferMessage not yet answered) is not raced. Zero means DefaultLockDuration.
	LockDuration time.Duration
	// PageSize is the peek size and the most ledger rows one step reads, at most MaxPeek (the default).
	PageSize int
	// MaxPages stops the call after this many steps (one ledger page and one peek page each). Zero means
	// DefaultReconcilePages.
	MaxPages int
	// Budget stops the call once it has run this long: no step and no targeted check starts after it. Zero or
	// negative means no limit besides ctx.
	Budget time.Duration
}

// ReconcileReport says what one Reconcile call did. Cursor resumes the scan when Done is false.
type ReconcileReport struct {
	Scanned      int `json:"scanned"`      // messages peeked
	Checked      int `json:"checked"`      // targeted peeks at the sequence number of a row its page did not show
	Added        int `json:"added"`        // rows added for deferred messages that had none
	Marked       int `json:"marked"`       // pending rows marked deferred
	Removed      int `json:"removed"`      // rows removed: message proven gone, or seen not deferred
	ExpiringSoon int `json:"expiringSoon"` // rows whose message expires within the warning window
	// Sessions counts the sessions walked and SessionsSkipped names those another receiver held (session
	// entities only, see ReconcileSessions).
	Sessions        int      `json:"sessions,omitempty"`
	SessionsSkipped []string `json:"sessionsSkipped,omitempty"`
	Cursor          string   `json:"cursor,omitempty"`
	Done            bool     `json:"done"`
}

// Reconcile walks the entity with p (peek, no locks) and the ledger side by side, in sequence-number order,
// one bounded step at a time. A step reads up to PageSize ledger rows from the cursor, then peeks up to
// PageSize messages from it, and settles the range both cover:
//
//   - a deferred message without a row gets one (state deferred, Reason ReasonRecovered). Rows are read
//     before messages are peeked, so a drain that completes a message and deletes its row in between never
//     makes a row reappear for a message that is gone;
//   - a pending row whose message is deferred is marked deferred;
//   - a row whose message is seen and not deferred (active, locked, scheduled) is removed;
//   - a row whose message the page does not show is checked by a targeted peek at its own sequence number
//     (a page may come back short): removed only when that peek does not return it (proven gone), kept with
//     its reason otherwise;
//   - rows are removed only when older than LockDuration and not under a live drain lease;
//   - rows whose message expires within the ledger's ExpiryWarning are counted and logged.
//
// Every change is conditional on the row's ETag (an added row must not exist), so a concurrent Defer or drain
// wins and the row is left for the next pass. Changes go in entity group transactions. A step handles at most
// PageSize rows and PageSize messages; the call stops after MaxPages steps or, between steps and between
// targeted checks, once Budget has elapsed; the report's Cursor then resumes it. The walk is Done when a peek
// page is empty and no row is left after the cursor. An error (peek or table failure) returns the report of
// the work done so far, with Cursor at the step that failed. A Cursor the ledger did not issue gives
// ErrInvalid. Not safe to run concurrently with itself on the same entity (harmless, but wasted work).
func (l *Ledger) Reconcile(ctx context.Context, p Peeker, opts *ReconcileOptions) (ReconcileReport, error) {
	o := reconcileDefaults(opts)
	var rep ReconcileReport
	from, err := parseCursor(o.Cursor)
	if err != nil {
		return rep, err
	}
	rep.Cursor = o.Cursor
	if p == nil {
		return rep, invalid("nil peeker")
	}
	if err := l.EnsureTable(ctx); err != nil {
		return rep, err
	}
	start := l.now()
	overBudget := func() bool { return o.Budget > 0 && l.now().Sub(start) >= o.Budget }
	for range o.MaxPages {
		if overBudget() {
			break
		}
		end, err := l.reconcileStep(ctx, p, nil, &rep, o, from, overBudget)
		if err != nil {
			return rep, err
		}
		if end == math.MaxInt64 {
			rep.Cursor, rep.Done = "", true
			return rep, nil
		}
		if end >= from {
			from = end + 1
			rep.Cursor = strconv.FormatInt(from, 10)
		}
		if overBudget() {
			break
		}
	}
	return rep, nil
}

func reconcileDefaults(opts *ReconcileOptions) ReconcileOptions {
	var o ReconcileOptions
	if opts != nil {
		o = *opts
	}
	if o.LockDuration <= 0 {
		o.LockDuration = DefaultLockDuration
	}
	if o.PageSize <= 0 || o.PageSize > MaxPeek {
		o.PageSize = MaxPeek
	}
	if o.MaxPages <= 0 {
		o.MaxPages = DefaultReconcilePages
	}
	return o
}

func parseCursor(c string) (int64, error) {
	if c == "" {
		return 0, nil
	}
	n, err := strconv.ParseInt(c, 10, 64)
	if err != nil || n < 0 {
		return 0, invalid("reconcile cursor %.40q is not one this ledger issued", c)
	}
	return n, nil
}

// inRange drops messages without a sequence number or below from, and sorts nothing: peek is ordered.
func inRange(msgs []*azservicebus.ReceivedMessage, from int64) []*azservicebus.ReceivedMessage {
	out := msgs[:0:0]
	for _, m := range msgs {
		if m != nil && m.SequenceNumber != nil && *m.SequenceNumber >= from {
			out = append(out, m)
		}
	}
	return out
}

// reconcileStep reads the rows from `from`, then peeks the messages from it, settles the range [from, end]
// both cover and returns end (math.MaxInt64 once the walk is complete). end < from means the budget ran out
// before anything was settled. With sessionID set, p peeks within that session and only its rows are read.
func (l *Ledger) reconcileStep(ctx context.Context, p Peeker, sessionID *string, rep *ReconcileReport, o ReconcileOptions, from int64, overBudget func() bool) (int64, error) {
	rows, more, err := l.scanFrom(ctx, from, o.PageSize, sessionID)
	if err != nil {
		return from - 1, fmt.Errorf("ledger: reconcile: %w", err)
	}
	msgs, err := p.PeekMessages(ctx, o.PageSize, &azservicebus.PeekMessagesOptions{FromSequenceNumber: &from})
	if err != nil {
		return from - 1, fmt.Errorf("ledger: reconcile: peek from %d: %w", from, err)
	}
	msgs = inRange(msgs, from)
	// The range both sides cover: rows are complete up to the last one read (all of them when none is left);
	// messages are only known up to the last one peeked.
	end := int64(math.MaxInt64)
	if more {
		end = rows[len(rows)-1].SequenceNumber
	}
	if len(msgs) > 0 {
		end = min(end, *msgs[len(msgs)-1].SequenceNumber)
	}

	now := l.now()
	var ops []op
	bySeq := make(map[int64]*azservicebus.ReceivedMessage, len(msgs))
	for _, m := range msgs {
		if *m.SequenceNumber <= end {
			bySeq[*m.SequenceNumber] = m
		}
	}
	hasRow := make(map[int64]bool, len(rows))
	for _, r := range rows {
		if r.SequenceNumber > end {
			break
		}
		m, seen := bySeq[r.SequenceNumber]
		if !seen && removable(r, now, o.LockDuration) {
			if overBudget() {
				end = r.SequenceNumber - 1
				break
			}
			m, err = l.peekAt(ctx, p, r.SequenceNumber)
			rep.Checked++
			if err != nil {
				return from - 1, err
			}
		}
		hasRow[r.SequenceNumber] = true
		switch {
		case m == nil && !seen && removable(r, now, o.LockDuration): // proven gone by the targeted peek
			ops = append(ops, op{kind: aztables.TransactionTypeDelete, row: r})
		case m == nil: // not shown, not removable: nothing to decide
			l.warnExpiring(rep, r)
		case m.State != azservicebus.MessageStateDeferred:
			if removable(r, now, o.LockDuration) {
				ops = append(ops, op{kind: aztables.TransactionTypeDelete, row: r})
			}
		case r.State == StatePending:
			r.State = StateDeferred
			ops = append(ops, op{kind: aztables.TransactionTypeUpdateReplace, row: r})
			l.warnExpiring(rep, l.annotate(r))
		default:
			l.warnExpiring(rep, r)
		}
	}
	for _, m := range msgs {
		seq := *m.SequenceNumber
		if seq > end {
			break
		}
		rep.Scanned++
		if m.State == azservicebus.MessageStateDeferred && !hasRow[seq] {
			r := l.recoveredRow(m, now)
			ops = append(ops, op{kind: aztables.TransactionTypeAdd, row: r})
			l.warnExpiring(rep, l.annotate(r))
		}
	}
	if err := l.applyReconcile(ctx, rep, ops); err != nil {
		return from - 1, err
	}
	return end, nil
}

// peekAt is the targeted check of one sequence number: the message with that number, or nil when a peek from
// it returns another message or none (the message is gone).
func (l *Ledger) peekAt(ctx context.Context, p Peeker, seq int64) (*azservicebus.ReceivedMessage, error) {
	got, err := p.PeekMessages(ctx, 1, &azservicebus.PeekMessagesOptions{FromSequenceNumber: &seq})
	if err != nil {
		return nil, fmt.Errorf("ledger: reconcile: peek at %d: %w", seq, err)
	}
	for _, m := range got {
		if m != nil && m.SequenceNumber != nil && *m.SequenceNumber == seq {
			return m, nil
		}
	}
	return nil, nil
}

// removable reports whether r is old enough to be removed and not held by a live drain or run lease.
func removable(r Row, now time.Time, lock time.Duration) bool {
	if now.Sub(r.DeferredAt) < lock {
		return false
	}
	return !r.State.leased() || !now.Before(r.LeaseUntil)
}

// recoveredRow is the row Reconcile adds for a deferred message m the ledger did not know.
func (l *Ledger) recoveredRow(m *azservicebus.ReceivedMessage, now time.Time) Row {
	r := Row{
		Entity:         l.entity,
		SequenceNumber: *m.SequenceNumber,
		State:          StateDeferred,
		MessageID:      m.MessageID,
		CorrelationID:  deref(m.CorrelationID),
		Subject:        deref(m.Subject),
		Reason:         ReasonRecovered,
		DeferredAt:     now,
		DeliveryCount:  int64(m.DeliveryCount),
		ResubmitCount:  ResubmitCount(m.ApplicationProperties),
		SessionID:      copyString(m.SessionID),
	}
	r.ExpiresAt = l.expiresAt(m)
	if s, ok := m.ApplicationProperties[PropNotBefore].(string); ok {
		if t, err := time.Parse(time.RFC3339, s); err == nil {
			r.NotBefore = t
		}
	}
	return r
}

func (l *Ledger) warnExpiring(rep *ReconcileReport, r Row) {
	if !r.ExpiringSoon {
		return
	}
	rep.ExpiringSoon++
	l.log.Warn("deferred message expires soon; drain it before it dead-letters",
		slog.String("entity", l.entity), slog.Int64("sequenceNumber", r.SequenceNumber),
		slog.Time("expiresAt", r.ExpiresAt), slog.String("state", string(r.State)))
}

// applyReconcile applies ops and counts what took effect. Conflicts and already-gone rows mean a concurrent
// writer got there first: skipped. Anything else fails the call.
func (l *Ledger) applyReconcile(ctx context.Context, rep *ReconcileReport, ops []op) error {
	var errs []error
	for i, err := range l.apply(ctx, ops) {
		o := ops[i]
		switch {
		case err == nil:
			switch o.kind {
			case aztables.TransactionTypeAdd:
				rep.Added++
				l.log.Warn("deferred message had no ledger row; recovered", slog.String("entity", l.entity), slog.Int64("sequenceNumber", o.row.SequenceNumber))
			case aztables.TransactionTypeUpdateReplace:
				rep.Marked++
			case aztables.TransactionTypeDelete:
				rep.Removed++
				l.log.Info("removed ledger row without a deferred message", slog.String("entity", l.entity), slog.Int64("sequenceNumber", o.row.SequenceNumber), slog.String("state", string(o.row.State)))
			}
		case errors.Is(err, ErrConflict), errors.Is(err, ErrNotFound):
			l.log.Debug("reconcile lost a race; row left for the next pass", slog.Int64("sequenceNumber", o.row.SequenceNumber), slog.Any("error", err))
		default:
			errs = append(errs, fmt.Errorf("ledger: reconcile row %d: %w", o.row.SequenceNumber, err))
		}
	}
	return errors.Join(errs...)
}
