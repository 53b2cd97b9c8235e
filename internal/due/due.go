// Package due brings deferred messages back into timer runs once their not-before time has passed. Source
// implements process.DueSource on the deferral ledger: deferring is holdfast's retry mechanism (a processor's
// Defer outcome, the webhook's 429/503 mapping), so a due message must come back by itself rather than wait
// for an operator's drain.
//
// For each run, TakeDue claims due rows (ledger state processing, conditional on the row's ETag, so a drain
// or another run never acts on the same message), receives their messages by sequence number, and hands
// them to the run with a callback that keeps the row consistent with the settlement:
//
//	completed, dead-lettered → row deleted (invariant 3: the message is gone)
//	deferred again           → the run's Deferrer already rewrote the row (new not-before, state deferred)
//	abandoned                → row released (state deferred, still due): Service Bus leaves an abandoned
//	                           deferred message deferred, with its delivery count incremented
//	not settled (lock lost)  → row left claimed; the claim lapses and a later run takes it again
//
// Abandoning a deferred message keeps it deferred: azservicebus v1.11.0's own test TestDeferredMessages/Abandon
// (messageSettler_test.go) abandons a received deferred message and peeks it back with its delivery count + 1,
// and azure-sdk-for-go PR #17682 states "AbandonMessage() updates the delivery count. The message remains
// deferred however." So the message is not redelivered by a normal receive, and only its ledger row brings it
// back. Once the delivery count passes MaxDeliveryCount, Service Bus dead-letters it (deferral does not stop
// that: Azure/azure-service-bus#375, where a defer on a queue with MaxDeliveryCount 1 dead-letters the message
// with MaxDeliveryCountExceeded, by design); the next take finds it gone and deletes the row.
package due

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/holdfast-dev/holdfast/internal/drain"
	"github.com/holdfast-dev/holdfast/internal/ledger"
	"github.com/holdfast-dev/holdfast/internal/process"
)

// DefaultConcurrency bounds the ledger requests of one take in flight.
const DefaultConcurrency = 16

// Options configure a Source. A nil *Options, and every zero field, means the default.
type Options struct {
	// Logger receives per-row events; nil ⇒ discard.
	Logger *slog.Logger
	// Now is the clock that decides what is due; nil ⇒ time.Now.
	Now func() time.Time
	// Concurrency bounds ledger requests in flight; 0 ⇒ DefaultConcurrency.
	Concurrency int
}

// Source is the ledger-backed process.DueSource. Safe for concurrent use.
type Source struct {
	ledger *ledger.Ledger
	log    *slog.Logger
	now    func() time.Time
	conc   int
}

var (
	_ process.DueSource        = (*Source)(nil)
	_ process.SessionDueSource = (*Source)(nil)
)

// New returns the Source of l's entity.
func New(l *ledger.Ledger, opts *Options) (*Source, error) {
	if l == nil {
		return nil, errors.New("due: a ledger is required")
	}
	var o Options
	if opts != nil {
		o = *opts
	}
	s := &Source{ledger: l, log: o.Logger, now: o.Now, conc: o.Concurrency}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	s.log = s.log.With(slog.String("entity", l.Entity()))
	if s.now == nil {
		s.now = time.Now
	}
	if s.conc <= 0 {
		s.conc = DefaultConcurrency
	}
	return s, nil
}

// TakeDue implements process.DueSource.
func (s *Source) TakeDue(ctx context.Context, r process.DueReceiver, max int, claimUntil time.Time) ([]process.DueMessage, error) {
	if max <= 0 {
		return nil, nil
	}
	claimed, err := s.claimDue(ctx, max, claimUntil)
	if len(claimed) == 0 {
		return nil, err
	}
	msgs, rerr := s.take(ctx, r, claimed, s.log)
	return msgs, errors.Join(err, rerr)
}

// ClaimDueSessions implements process.SessionDueSource: it claims up to max due rows and groups them by
// their session (a row without one falls in the session ""). Each group's Take receives its messages through
// the session's receiver with the rules of TakeDue; its Release puts the rows back, due again at the next run,
// with why as their last error.
func (s *Source) ClaimDueSessions(ctx context.Context, max int, claimUntil time.Time) ([]process.DueSession, error) {
	if max <= 0 {
		return nil, nil
	}
	claimed, err := s.claimDue(ctx, max, claimUntil)
	if err != nil && len(claimed) == 0 {
		return nil, err
	}
	groups := ledger.GroupBySession(claimed)
	out := make([]process.DueSession, 0, len(groups))
	for _, g := range groups {
		sid, rows := g.SessionID, g.Rows
		out = append(out, process.DueSession{
			SessionID: sid,
			Take: func(ctx context.Context, r process.DueReceiver) ([]process.DueMessage, error) {
				return s.take(ctx, r, rows, s.log.With(slog.String("sessionId", sid)))
			},
			Release: func(ctx context.Context, why string) {
				for _, r := range rows {
					s.release(ctx, r, why)
				}
			},
		})
	}
	return out, err
}

// claimDue reads up to max due rows and claims them until claimUntil. The error says the rows could not all be
// read; the rows claimed before that are returned with it.
func (s *Source) claimDue(ctx context.Context, max int, claimUntil time.Time) ([]ledger.Row, error) {
	rows, err := s.ledger.Due(ctx, s.now(), max)
	if err != nil {
		err = fmt.Errorf("due: read due rows: %w", err)
	}
	if len(rows) == 0 {
		return nil, err
	}
	return s.claim(ctx, rows, claimUntil), err
}

// claim claims rows until claimUntil; rows another drain or run took first are skipped.
func (s *Source) claim(ctx context.Context, rows []ledger.Row, until time.Time) []ledger.Row {
	got := make([]ledger.Row, len(rows))
	errs := make([]error, len(rows))
	drain.ForEach(len(rows), s.conc, func(i int) { got[i], errs[i] = s.ledger.Claim(ctx, rows[i], until) })
	claimed := got[:0]
	for i, err := range errs {
		switch {
		case err == nil:
			claimed = append(claimed, got[i])
		case errors.Is(err, ledger.ErrConflict), errors.Is(err, ledger.ErrNotFound):
			// Taken or changed by a drain, a defer or another run since it was read.
		default:
			s.log.Warn("could not claim a due ledger row; a later run tries again",
				slog.Int64("sequenceNumber", rows[i].SequenceNumber), slog.Any("error", err))
		}
	}
	return claimed
}

// take receives the messages of the claimed rows (receive) and returns them with the callbacks that keep their
// rows consistent with their settlement (settled).
func (s *Source) take(ctx context.Context, r process.DueReceiver, rows []ledger.Row, log *slog.Logger) ([]process.DueMessage, error) {
	msgs, err := s.receive(ctx, r, rows)
	out := make([]process.DueMessage, 0, len(msgs))
	for _, f := range msgs {
		out = append(out, process.DueMessage{Message: f.Msg, Settled: s.settled(f.Row)})
	}
	if len(out) > 0 {
		log.Info("took due deferred messages", slog.Int("count", len(out)))
	}
	return out, err
}

// receive locks the messages of the claimed rows (drain.Fetch, as the drain does). A row whose message is
// gone is deleted (invariant 3: proven gone); one whose message exists but cannot be received (locked by
// another receiver, not deferred) or whose receive failed is released with the reason, for a later run. A
// failure of the service is returned.
func (s *Source) receive(ctx context.Context, r process.DueReceiver, rows []ledger.Row) ([]drain.Fetched, error) {
	fetched, err := drain.Fetch(ctx, r, rows, s.conc, noBound)
	got := fetched[:0]
	for _, f := range fetched {
		log := s.log.With(slog.Int64("sequenceNumber", f.Row.SequenceNumber))
		switch {
		case f.Msg != nil:
			got = append(got, f)
		case f.Gone:
			if err := s.ledger.Delete(ctx, f.Row); err != nil && !errors.Is(err, ledger.ErrNotFound) {
				log.Warn("due message is gone but its ledger row could not be deleted", slog.Any("error", err))
				continue
			}
			log.Info("due message is gone (completed elsewhere, expired or dead-lettered); ledger row deleted")
		default:
			log.Warn("due message not received; its row is released for a later run", slog.Any("error", f.Err))
			s.release(ctx, f.Row, f.Err.Error())
		}
	}
	if err != nil {
		return got, fmt.Errorf("due: receive deferred messages: %w", err)
	}
	return got, nil
}

// noBound leaves each request's context as TakeDue's (the run bounds the whole take).
func noBound(ctx context.Context) (context.Context, context.CancelFunc) { return ctx, func() {} }

// settled returns the callback that keeps row consistent with how the run settled its message.
func (s *Source) settled(row ledger.Row) func(context.Context, process.Settlement) {
	return func(ctx context.Context, st process.Settlement) {
		log := s.log.With(slog.Int64("sequenceNumber", row.SequenceNumber), slog.String("settlement", st.String()))
		switch st {
		case process.SettledComplete, process.SettledDeadLetter:
			if err := s.ledger.Delete(ctx, row); err != nil && !errors.Is(err, ledger.ErrNotFound) {
				// Reconciliation removes rows whose message is gone.
				log.Warn("message settled but its ledger row could not be deleted", slog.Any("error", err))
			}
		case process.SettledDefer:
			// The run's Deferrer rewrote the row with the new not-before time.
		case process.SettledAbandon:
			// The message stays deferred (see the package documentation), so the row must stay: released,
			// due again at the next run.
			s.release(ctx, row, "abandoned by the run")
		default:
			// The lock was lost: the message stays deferred; the claim lapses and a later run takes the row.
			log.Warn("due message not settled; its row is taken again once the claim lapses", slog.Time("claimUntil", row.LeaseUntil))
		}
	}
}

// release puts a claimed row back (state deferred, no lease) with lastError. When the row changed meanwhile
// (the run's Deferrer rewrote it, then failed to defer), it is read again and released from its new version:
// the message is deferred either way. Failures are logged: the claim lapses on its own.
func (s *Source) release(ctx context.Context, row ledger.Row, lastError string) {
	_, err := s.ledger.Release(ctx, row, lastError)
	if errors.Is(err, ledger.ErrConflict) {
		var cur ledger.Row
		if cur, err = s.ledger.Get(ctx, row.SequenceNumber); err == nil {
			_, err = s.ledger.Release(ctx, cur, lastError)
		}
	}
	if err != nil && !errors.Is(err, ledger.ErrNotFound) {
		s.log.Warn("could not release a claimed ledger row; its claim lapses on its own",
			slog.Int64("sequenceNumber", row.SequenceNumber), slog.Any("error", err))
	}
}
