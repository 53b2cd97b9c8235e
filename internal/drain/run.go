package drain

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus"

	"github.com/holdfast-dev/holdfast/internal/ledger"
)

// maxSkippedListed bounds Result.Skipped; SkippedCount keeps the full count.
const maxSkippedListed = 1000

// Result is the answer of a resubmit, delete or deadletter call. Processed counts the selected rows this call
// took a decision on (acted on, not found, skipped or failed). Continuation is "" when the selection is
// exhausted; otherwise the caller sends the same request again with it.
type Result struct {
	Action       Action    `json:"action"`
	DryRun       bool      `json:"dryRun,omitempty"`
	Processed    int       `json:"processed"`
	Resubmitted  int       `json:"resubmitted"`
	Completed    int       `json:"completed"`
	DeadLettered int       `json:"deadLettered"`
	NotFound     []int64   `json:"notFound"`
	Failed       []Failure `json:"failed"`
	Skipped      []Skip    `json:"skipped"`
	SkippedCount int       `json:"skippedCount"`
	// Eligible lists, on a dry run, the sequence numbers the call would have acted on.
	Eligible     []int64 `json:"eligible,omitempty"`
	Continuation string  `json:"continuation"`
	// Partial and Error are set on the answer of a call that failed after it started (HTTP 503): the fields
	// above say what it did, Continuation where to resume.
	Partial bool   `json:"partial,omitempty"`
	Error   string `json:"error,omitempty"`
}

// Failure is a row the call could not act on; its row is kept (released) for a later call.
type Failure struct {
	SequenceNumber int64  `json:"sequenceNumber"`
	Error          string `json:"error"`
}

// Skip is a selected row the call left alone, and why.
type Skip struct {
	SequenceNumber int64  `json:"sequenceNumber"`
	Reason         string `json:"reason"`
}

// result collects a call's outcome; pages add to it from several goroutines.
type result struct {
	mu  sync.Mutex
	res Result // guarded by mu
	// abort is set when a page-wide Service Bus call failed (receive, send): later pages would fail the
	// same way, so the call stops after the page. Guarded by mu.
	abort error
}

func (r *result) stop(err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.abort == nil {
		r.abort = err
	}
}

func (r *result) aborted() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.abort
}

func (r *result) add(f func(*Result)) {
	r.mu.Lock()
	defer r.mu.Unlock()
	f(&r.res)
}

func (r *result) fail(seq int64, err error) {
	r.add(func(res *Result) { res.Failed = append(res.Failed, Failure{seq, err.Error()}) })
}

func (r *result) skip(seq int64, reason string) {
	r.add(func(res *Result) {
		res.SkippedCount++
		if len(res.Skipped) < maxSkippedListed {
			res.Skipped = append(res.Skipped, Skip{seq, reason})
		}
	})
}

// Run performs a resubmit, delete or deadletter request page by page until the selection is exhausted, the
// call's count limit is reached, its budget has elapsed (the page in progress is finished; the first page
// always runs) or a page-wide Service Bus call (receive, send) failed, which later pages would repeat.
// Per-row problems are reported in the Result, never as an error.
//
// A page, once its rows are leased, runs to its end on a context detached from ctx (each call bounded by
// Options.SettleTimeout, every page by Budget + SettleTimeout): ctx ending stops the call between pages
// only, so copies are never left sent with their originals uncompleted and their rows leased.
//
// A bad request (including a continuation this API did not issue) gives a *RequestError and touches
// nothing. Any other error (the ledger unreachable while selecting rows, ctx ended between pages) comes
// with the partial Result of the pages already done, whose Continuation resumes the call. Safe for
// concurrent use: concurrent calls split the rows between them through leases.
//
// The loop reads out.res without the lock: only this goroutine writes Processed, and the page goroutines
// that write the other fields have been joined when a page returns.
func (s *Service) Run(ctx context.Context, req Request) (Result, error) {
	start := s.now()
	out := &result{res: Result{Action: req.Action, DryRun: req.DryRun, NotFound: []int64{}, Failed: []Failure{}, Skipped: []Skip{}}}
	if req.Action == ActionReconcile {
		return out.res, badRequest(http.StatusBadRequest, "reconcile is not a drain action")
	}
	if req.Action == ActionDeadLetter && req.Reason == "" {
		return out.res, badRequest(http.StatusBadRequest, `deadletter needs a non-empty "reason"`)
	}
	cur, err := req.decodeCursor()
	if err != nil {
		return out.res, err
	}
	limit := s.o.MaxCount
	if req.MaxCount > 0 {
		limit = min(limit, req.MaxCount)
	}
	// Pages end by the budget plus one settlement, on the wall clock (s.now may be a test's clock).
	pagesStop := time.Now().Add(s.o.Budget + s.o.SettleTimeout)
	done := false
	for pages := 0; !done; pages++ {
		// At least one page per call, so a continuation always makes progress.
		if out.res.Processed >= limit || (pages > 0 && s.now().Sub(start) >= s.o.Budget) {
			out.res.Continuation = req.encodeCursor(cur)
			break
		}
		if err := ctx.Err(); err != nil {
			out.res.Continuation = req.encodeCursor(cur)
			return out.res, fmt.Errorf("drain: %s stopped between pages: %w", req.Action, err)
		}
		n := min(s.o.PageSize, limit-out.res.Processed)
		var rows []ledger.Row
		next := cur
		rows, next, done, err = s.selectPage(ctx, req, cur, n, out)
		if err != nil {
			out.res.Continuation = req.encodeCursor(cur)
			return out.res, err
		}
		cur = next
		pctx, cancel := context.WithDeadline(context.WithoutCancel(ctx), pagesStop)
		err = s.page(pctx, req, rows, out)
		cancel()
		if err != nil {
			out.res.Continuation = req.encodeCursor(cur)
			return out.res, err
		}
		if err := out.aborted(); err != nil && !done {
			s.log.Warn("drain call stopped early after a Service Bus failure", slog.String("entity", s.entity), slog.Any("error", err))
			out.res.Continuation = req.encodeCursor(cur)
			break
		}
	}
	s.log.Info("drain call finished", slog.String("entity", s.entity), slog.String("action", string(req.Action)),
		slog.Bool("dryRun", req.DryRun), slog.Int("processed", out.res.Processed), slog.Int("resubmitted", out.res.Resubmitted),
		slog.Int("completed", out.res.Completed), slog.Int("deadLettered", out.res.DeadLettered),
		slog.Int("notFound", len(out.res.NotFound)), slog.Int("failed", len(out.res.Failed)),
		slog.Int("skipped", out.res.SkippedCount), slog.Duration("elapsed", s.now().Sub(start)), slog.Bool("more", !done))
	return out.res, nil
}

// selectPage reads the next ≤ n selected rows and returns those a drain may act on now, the advanced cursor,
// and whether the selection is exhausted. Rows it leaves alone are reported as skipped or not found; all of
// them count as processed.
func (s *Service) selectPage(ctx context.Context, req Request, cur cursor, n int, out *result) ([]ledger.Row, cursor, bool, error) {
	var rows []ledger.Row
	var done bool
	if req.All {
		got, next, err := s.ledger.List(ctx, n, cur.Ledger)
		if isInvalid(err) { // a crafted ledger token inside a continuation that is otherwise well-formed
			return nil, cur, false, badRequest(http.StatusBadRequest, `"continuation" %.40q is not a token this API issued`, req.Continuation)
		}
		if err != nil {
			return nil, cur, false, fmt.Errorf("drain: list ledger rows: %w", err)
		}
		rows, cur.Ledger, done = got, next, next == ""
		out.add(func(r *Result) { r.Processed += len(got) })
	} else {
		end := min(cur.Index+n, len(req.SequenceNumbers))
		seqs := req.SequenceNumbers[cur.Index:end]
		got, err := s.getRows(ctx, seqs, out)
		if err != nil {
			return nil, cur, false, err
		}
		rows, cur.Index, done = got, end, end == len(req.SequenceNumbers)
		out.add(func(r *Result) { r.Processed += len(seqs) })
	}
	now := s.now()
	eligible := rows[:0]
	for _, r := range rows {
		switch {
		case !r.Leasable(now) && r.State == ledger.StatePending:
			out.skip(r.SequenceNumber, "pending: the message may not be deferred yet; reconcile settles it")
		case !r.Leasable(now):
			out.skip(r.SequenceNumber, "leased by another drain until "+r.LeaseUntil.UTC().Format(time.RFC3339))
		case req.DueOnly && r.NotBefore.After(now):
			out.skip(r.SequenceNumber, "not due until "+r.NotBefore.UTC().Format(time.RFC3339))
		default:
			eligible = append(eligible, r)
		}
	}
	return eligible, cur, done, nil
}

// getRows reads the rows of seqs, in order; numbers without a row are reported not found.
func (s *Service) getRows(ctx context.Context, seqs []int64, out *result) ([]ledger.Row, error) {
	rows := make([]ledger.Row, len(seqs))
	errs := make([]error, len(seqs))
	s.forEach(len(seqs), func(i int) {
		rows[i], errs[i] = s.ledger.Get(ctx, seqs[i])
	})
	found := rows[:0]
	for i, err := range errs {
		switch {
		case err == nil:
			found = append(found, rows[i])
		case errors.Is(err, ledger.ErrNotFound):
			out.add(func(r *Result) { r.NotFound = append(r.NotFound, seqs[i]) })
		default:
			return nil, fmt.Errorf("drain: read ledger row %d: %w", seqs[i], err)
		}
	}
	return found, nil
}

// forEach calls f(0…n-1) with at most Concurrency calls in flight and returns when all have returned.
func (s *Service) forEach(n int, f func(i int)) { ForEach(n, s.o.Concurrency, f) }

// ForEach calls f(0…n-1) with at most limit calls in flight (a single call runs on the caller's goroutine)
// and returns when all have returned.
func ForEach(n, limit int, f func(i int)) {
	if n == 1 {
		f(0)
		return
	}
	sem := make(chan struct{}, limit)
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

// page acts on one page of eligible rows: lease, receive, act, settle, delete rows. ctx is detached from the
// caller's and bounded by the call's pages stop; each call within is bounded by SettleTimeout (s.call). A
// non-nil error is a simulated crash (tests); everything else is reported per row.
func (s *Service) page(ctx context.Context, req Request, rows []ledger.Row, out *result) error {
	if len(rows) == 0 {
		return nil
	}
	if req.DryRun {
		out.add(func(r *Result) {
			for _, row := range rows {
				r.Eligible = append(r.Eligible, row.SequenceNumber)
			}
		})
		return nil
	}
	leased := s.lease(ctx, rows, out)
	if len(leased) == 0 {
		return nil
	}
	if s.o.Sessions != nil {
		return s.pageSessions(ctx, req, leased, out)
	}
	return s.act(ctx, req, s.recv, leased, out)
}

// pageSessions acts on leased rows of a session-enabled entity session by session, each through a receiver
// of its session. The rows of a session that cannot be accepted (another receiver holds it: a run is
// processing it) are released and reported failed, saying so; they stay for a later call.
func (s *Service) pageSessions(ctx context.Context, req Request, leased []ledger.Row, out *result) error {
	for _, g := range ledger.GroupBySession(leased) {
		sid, rows := g.SessionID, g.Rows
		cctx, cancel := s.call(ctx)
		recv, release, err := s.o.Sessions(cctx, sid)
		cancel()
		if err != nil {
			why := fmt.Errorf("session %q could not be accepted: %w", sid, err)
			if errors.Is(err, ledger.ErrSessionBusy) {
				why = fmt.Errorf("session %q is locked by another receiver (a run is processing it); the row is kept, try again later", sid)
			}
			for _, r := range rows {
				s.giveUp(ctx, r, why, out)
			}
			continue
		}
		err = s.act(ctx, req, recv, rows, out)
		release()
		if err != nil {
			return err
		}
	}
	return nil
}

// act receives the messages of leased rows through recv, acts on them, settles them through recv and deletes
// their rows.
func (s *Service) act(ctx context.Context, req Request, recv Receiver, leased []ledger.Row, out *result) error {
	msgs := s.receive(ctx, recv, leased, out)
	if len(msgs) == 0 {
		return nil
	}
	if err := s.crashAt(crashAfterReceive); err != nil {
		return err
	}
	if req.Action == ActionResubmit {
		msgs = s.sendCopies(ctx, msgs, out)
		if err := s.crashAt(crashAfterSend); err != nil {
			return err
		}
	}
	settled := s.settle(ctx, req, recv, msgs, out)
	if err := s.crashAt(crashAfterSettle); err != nil {
		return err
	}
	if len(settled) > 0 {
		cctx, cancel := s.call(ctx)
		defer cancel()
		if err := s.ledger.DeleteBatch(cctx, settled); err != nil {
			// The messages are settled; their rows run out of lease and the next drain or reconcile finds
			// the messages gone and removes them.
			s.log.Warn("messages settled but some ledger rows could not be deleted", slog.String("entity", s.entity), slog.Any("error", err))
		}
	}
	return nil
}

// call bounds one Service Bus or ledger call of a page by SettleTimeout.
func (s *Service) call(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, s.o.SettleTimeout)
}

// held is a leased row and, once received, its message.
type held struct {
	row ledger.Row
	msg *azservicebus.ReceivedMessage
}

// lease claims rows for this call; rows another drain (or a defer) changed are skipped.
func (s *Service) lease(ctx context.Context, rows []ledger.Row, out *result) []ledger.Row {
	until := s.now().Add(s.o.LeaseDuration)
	got := make([]ledger.Row, len(rows))
	errs := make([]error, len(rows))
	s.forEach(len(rows), func(i int) {
		cctx, cancel := s.call(ctx)
		defer cancel()
		got[i], errs[i] = s.ledger.Lease(cctx, rows[i], until)
	})
	leased := got[:0]
	for i, err := range errs {
		seq := rows[i].SequenceNumber
		switch {
		case err == nil:
			leased = append(leased, got[i])
		case errors.Is(err, ledger.ErrConflict):
			out.skip(seq, "changed by another drain or a defer while being leased")
		case errors.Is(err, ledger.ErrNotFound):
			out.skip(seq, "row removed by another drain or reconcile")
		default:
			out.fail(seq, fmt.Errorf("lease ledger row: %w", err))
		}
	}
	return leased
}

// release gives a leased row back with lastError; a failure is only logged (the lease runs out anyway).
func (s *Service) release(ctx context.Context, row ledger.Row, lastError string) {
	cctx, cancel := s.call(ctx)
	defer cancel()
	if _, err := s.ledger.Release(cctx, row, lastError); err != nil {
		s.log.Warn("could not release ledger row; its lease will run out", slog.String("entity", s.entity),
			slog.Int64("sequenceNumber", row.SequenceNumber), slog.Any("error", err))
	}
}

// giveUp releases row and reports err as its failure.
func (s *Service) giveUp(ctx context.Context, row ledger.Row, err error, out *result) {
	s.release(ctx, row, err.Error())
	out.fail(row.SequenceNumber, err)
}

// receive locks the deferred messages of the leased rows (Fetch). Rows whose message is gone are deleted
// (invariant 3: proven gone) and reported not found; rows whose message exists but cannot be received
// (locked by another receiver, no longer deferred) or whose receive failed are released and reported failed.
func (s *Service) receive(ctx context.Context, recv Receiver, rows []ledger.Row, out *result) []held {
	fetched, err := Fetch(ctx, recv, rows, s.o.Concurrency, s.call)
	if err != nil {
		out.stop(err)
	}
	hs := make([]held, 0, len(rows))
	for _, f := range fetched {
		switch {
		case f.Msg != nil:
			hs = append(hs, held{row: f.Row, msg: f.Msg})
		case f.Gone:
			cctx, cancel := s.call(ctx)
			if err := s.ledger.Delete(cctx, f.Row); err != nil && !errors.Is(err, ledger.ErrNotFound) {
				s.log.Warn("message gone but its ledger row could not be deleted", slog.String("entity", s.entity),
					slog.Int64("sequenceNumber", f.Row.SequenceNumber), slog.Any("error", err))
			}
			cancel()
			out.add(func(r *Result) { r.NotFound = append(r.NotFound, f.Row.SequenceNumber) })
		default:
			s.giveUp(ctx, f.Row, f.Err, out)
		}
	}
	return hs
}

// sendCopies sends a copy of every held message in as few batches as fit, and returns those whose copy was
// sent. A message whose copy cannot be built or sent is released and reported failed; its original stays
// deferred (and locked until its lock runs out).
func (s *Service) sendCopies(ctx context.Context, hs []held, out *result) []held {
	sent := make([]held, 0, len(hs))
	var batch *azservicebus.MessageBatch
	var inBatch []held
	flush := func() {
		if batch == nil || len(inBatch) == 0 {
			return
		}
		cctx, cancel := s.call(ctx)
		err := s.send.SendMessageBatch(cctx, batch, nil)
		cancel()
		if err != nil {
			out.stop(err)
			for _, h := range inBatch {
				s.giveUp(ctx, h.row, fmt.Errorf("send copy: %w", err), out)
			}
		} else {
			sent = append(sent, inBatch...)
		}
		batch, inBatch = nil, nil
	}
	for _, h := range hs {
		c, err := s.copyOf(h.msg, h.row)
		if err != nil {
			s.giveUp(ctx, h.row, err, out)
			continue
		}
		for attempt := 0; ; attempt++ {
			if batch == nil {
				cctx, cancel := s.call(ctx)
				batch, err = s.send.NewMessageBatch(cctx, nil)
				cancel()
				if err != nil {
					s.giveUp(ctx, h.row, fmt.Errorf("new message batch: %w", err), out)
					break
				}
			}
			err = batch.AddMessage(c, nil)
			if err == nil {
				inBatch = append(inBatch, h)
				break
			}
			if !errors.Is(err, azservicebus.ErrMessageTooLarge) || len(inBatch) == 0 || attempt > 0 {
				s.giveUp(ctx, h.row, fmt.Errorf("add copy to batch: %w", err), out)
				break
			}
			flush() // full: send what it holds and retry in a fresh batch
		}
	}
	flush()
	return sent
}

// settle completes (resubmit, delete) or dead-letters (deadletter) every held original, concurrently, and
// returns the rows whose message is settled. Others are released and reported failed.
func (s *Service) settle(ctx context.Context, req Request, recv Receiver, hs []held, out *result) []ledger.Row {
	errs := make([]error, len(hs))
	s.forEach(len(hs), func(i int) {
		cctx, cancel := s.call(ctx)
		defer cancel()
		if req.Action == ActionDeadLetter {
			errs[i] = recv.DeadLetterMessage(cctx, hs[i].msg, &azservicebus.DeadLetterOptions{Reason: &req.Reason, ErrorDescription: &req.Description})
		} else {
			errs[i] = recv.CompleteMessage(cctx, hs[i].msg, nil)
		}
	})
	settled := make([]ledger.Row, 0, len(hs))
	n := 0
	for i, err := range errs {
		if err != nil {
			what := "complete original"
			switch req.Action {
			case ActionResubmit:
				what = "copy sent, but completing the original failed (a retry resends the same MessageID)"
			case ActionDeadLetter:
				what = "dead-letter original"
			}
			s.giveUp(ctx, hs[i].row, fmt.Errorf("%s: %w", what, err), out)
			continue
		}
		settled = append(settled, hs[i].row)
		n++
	}
	out.add(func(r *Result) {
		switch req.Action {
		case ActionResubmit:
			r.Resubmitted += n
		case ActionDelete:
			r.Completed += n
		case ActionDeadLetter:
			r.DeadLettered += n
		}
	})
	return settled
}
