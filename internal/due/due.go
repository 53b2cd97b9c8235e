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
// back. Once the delivery count passes MaxDeliveryCount, Service Bus dead-letters it; the next take finds it
// gone and deletes the row.
package due

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus"

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

var _ process.DueSource = (*Source)(nil)

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
	rows, err := s.ledger.Due(ctx, s.now(), max)
	if err != nil && len(rows) == 0 {
		return nil, fmt.Errorf("due: read due rows: %w", err)
	}
	claimed := s.claim(ctx, rows, claimUntil)
	if len(claimed) == 0 {
		return nil, err
	}
	msgs, rerr := s.receive(ctx, r, claimed)
	out := make([]process.DueMessage, 0, len(msgs))
	for _, h := range msgs {
		out = append(out, process.DueMessage{Message: h.msg, Settled: s.settled(h.row)})
	}
	if len(out) > 0 {
		s.log.Info("took due deferred messages", slog.Int("count", len(out)))
	}
	return out, errors.Join(err, rerr)
}

// claim claims rows until claimUntil; rows another drain or run took first are skipped.
func (s *Source) claim(ctx context.Context, rows []ledger.Row, until time.Time) []ledger.Row {
	got := make([]ledger.Row, len(rows))
	errs := make([]error, len(rows))
	s.forEach(len(rows), func(i int) { got[i], errs[i] = s.ledger.Claim(ctx, rows[i], until) })
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

// held is a claimed row and its received message.
type held struct {
	row ledger.Row
	msg *azservicebus.ReceivedMessage
}

// receive locks the messages of the claimed rows: one call; when Service Bus answers that one of them is not
// found (the whole call fails then), one call per number. A row whose message is missing is resolved by
// resolveMissing. A failure of the service releases the rows and is returned.
func (s *Source) receive(ctx context.Context, r process.DueReceiver, rows []ledger.Row) ([]held, error) {
	seqs := make([]int64, len(rows))
	for i, row := range rows {
		seqs[i] = row.SequenceNumber
	}
	msgs, err := r.ReceiveDeferredMessages(ctx, seqs, nil)
	if err != nil && !isNotFound(err) {
		for _, row := range rows {
			s.release(ctx, row, "receive deferred message: "+err.Error())
		}
		return nil, fmt.Errorf("due: receive deferred messages: %w", err)
	}
	bySeq := make(map[int64]*azservicebus.ReceivedMessage, len(msgs))
	for _, m := range msgs {
		if m.SequenceNumber != nil {
			bySeq[*m.SequenceNumber] = m
		}
	}
	out := make([]held, 0, len(rows))
	var missing []ledger.Row
	for _, row := range rows {
		if m := bySeq[row.SequenceNumber]; m != nil {
			out = append(out, held{row, m})
		} else {
			missing = append(missing, row)
		}
	}
	if len(missing) == 0 {
		return out, nil
	}
	found := make([]*azservicebus.ReceivedMessage, len(missing))
	errs := make([]error, len(missing))
	s.forEach(len(missing), func(i int) {
		got, err := r.ReceiveDeferredMessages(ctx, []int64{missing[i].SequenceNumber}, nil)
		if err == nil && len(got) == 1 {
			found[i] = got[0]
		}
		errs[i] = err
	})
	for i, row := range missing {
		switch {
		case found[i] != nil:
			out = append(out, held{row, found[i]})
		case errs[i] == nil || isNotFound(errs[i]):
			s.resolveMissing(ctx, r, row)
		default:
			s.release(ctx, row, "receive deferred message: "+errs[i].Error())
		}
	}
	return out, nil
}

// resolveMissing deals with a row whose message could not be received: a peek that shows the message gone
// proves the row stale, and it is deleted (invariant 3); a message that still exists (locked elsewhere, or not
// deferred) keeps its row, released with the reason.
func (s *Source) resolveMissing(ctx context.Context, r process.DueReceiver, row ledger.Row) {
	seq := row.SequenceNumber
	log := s.log.With(slog.Int64("sequenceNumber", seq))
	peeked, err := r.PeekMessages(ctx, 1, &azservicebus.PeekMessagesOptions{FromSequenceNumber: &seq})
	if err != nil {
		s.release(ctx, row, "message not received and peek failed: "+err.Error())
		return
	}
	if len(peeked) == 1 && peeked[0].SequenceNumber != nil && *peeked[0].SequenceNumber == seq {
		why := "the due message is locked by another receiver"
		if peeked[0].State != azservicebus.MessageStateDeferred {
			why = "the message is not deferred; reconciliation settles the row"
		}
		log.Warn("due message exists but cannot be received", slog.String("why", why))
		s.release(ctx, row, why)
		return
	}
	if err := s.ledger.Delete(ctx, row); err != nil && !errors.Is(err, ledger.ErrNotFound) {
		log.Warn("due message is gone but its ledger row could not be deleted", slog.Any("error", err))
		return
	}
	log.Info("due message is gone (completed elsewhere, expired or dead-lettered); ledger row deleted")
}

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

// forEach calls f(0…n-1) with at most s.conc calls in flight and returns when all have returned.
func (s *Source) forEach(n int, f func(i int)) {
	sem := make(chan struct{}, s.conc)
	var wg sync.WaitGroup
	for i := range n {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			f(i)
		})
	}
	wg.Wait()
}

func isNotFound(err error) bool {
	var sbErr *azservicebus.Error
	return errors.As(err, &sbErr) && sbErr.Code == azservicebus.CodeNotFound
}
