package deadletter

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"net/http"
	"slices"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus"

	"github.com/holdfast-dev/holdfast/internal/browse"
	"github.com/holdfast-dev/holdfast/internal/drain"
)

// Result is the answer of a resubmit or delete call: the deferred drain's shape (Processed counts the
// selected messages the call decided on; DeadLettered stays 0), plus Released, the messages the call received
// ahead of or beside the selected ones and abandoned (left in the DLQ as they were).
type Result struct {
	drain.Result
	Released int `json:"released"`
}

// ParseAction returns the action of POST /api/deadletter/{action}: resubmit or delete (a message cannot be
// dead-lettered out of a DLQ). Anything else is a *drain.RequestError (404).
func ParseAction(s string) (drain.Action, error) {
	switch a := drain.Action(s); a {
	case drain.ActionResubmit, drain.ActionDelete:
		return a, nil
	}
	return "", drain.NewRequestError(http.StatusNotFound, "unknown action %q: use resubmit or delete", s)
}

// cursor is the opaque continuation of a call: every selected message with a sequence number ≤ After has
// been decided on. It is bound to the action and selection by a hash.
type cursor struct {
	V      int          `json:"v"`
	Action drain.Action `json:"a"`
	Hash   uint64       `json:"h"`
	After  int64        `json:"after"`
}

func selectionHash(action drain.Action, sel drain.Selection) uint64 {
	h := fnv.New64a()
	fmt.Fprintf(h, "dlq|%s|%t|", action, sel.All)
	for _, n := range sel.SequenceNumbers {
		fmt.Fprintf(h, "%d,", n)
	}
	return h.Sum64()
}

func encodeCursor(action drain.Action, sel drain.Selection, after int64) string {
	b, _ := json.Marshal(cursor{V: 1, Action: action, Hash: selectionHash(action, sel), After: after}) // plain fields
	return base64.RawURLEncoding.EncodeToString(b)
}

func decodeCursor(action drain.Action, sel drain.Selection) (int64, error) {
	if sel.Continuation == "" {
		return 0, nil
	}
	var c cursor
	b, err := base64.RawURLEncoding.DecodeString(sel.Continuation)
	if err == nil {
		err = json.Unmarshal(b, &c)
	}
	if err != nil || c.V != 1 || c.After < 0 {
		return 0, drain.NewRequestError(http.StatusBadRequest, `"continuation" %.40q is not a token this API issued`, sel.Continuation)
	}
	if c.Action != action || c.Hash != selectionHash(action, sel) {
		return 0, drain.NewRequestError(http.StatusBadRequest, `"continuation" belongs to a different request: resend the same action and selection with it`)
	}
	return c.After, nil
}

// call is the state of one resubmit or delete call. Only the goroutine running Run touches it; settlement
// goroutines return their errors to it.
type call struct {
	s      *Service
	recv   Receiver
	action drain.Action
	sel    drain.Selection
	limit  int
	from   int64          // the cursor: messages with a sequence number ≤ from were decided by earlier calls
	after  int64          // every selected message ≤ after has been received by this call (or decided earlier)
	wanted map[int64]bool // sequence-number selection: the numbers > from not decided yet
	held   []*azservicebus.ReceivedMessage
	bytes  int       // body bytes of held
	until  time.Time // scanning stops then: half the lock of the earliest held message
	last   int64     // sequence-number selection: the highest wanted number when the call started
	why    string    // why scanning stopped early, for the selected messages it did not reach
	res    Result
}

// Run resubmits or deletes the selected DLQ messages, page by page, until the selection is decided, the count
// limit or budget is reached (the first page always runs; the answer then carries a continuation), the DLQ
// has nothing more to receive, or the scan window (MaxHeld, MaxHeldBytes, half a lock) is full. Per-message
// problems are reported in the Result; a non-nil error (bad request, receiver unavailable, ctx ended) comes
// with the Result of the pages done, whose Continuation resumes the call. Messages held without acting on them are abandoned before Run returns,
// on a context detached from ctx, as are the settlements of messages whose copies were sent.
func (s *Service) Run(ctx context.Context, action drain.Action, sel drain.Selection) (Result, error) {
	start := s.now()
	res := Result{Result: drain.Result{Action: action, DryRun: sel.DryRun, NotFound: []int64{}, Failed: []drain.Failure{}, Skipped: []drain.Skip{}}}
	if _, err := ParseAction(string(action)); err != nil {
		return res, err
	}
	from, err := decodeCursor(action, sel)
	if err != nil {
		return res, err
	}
	c := &call{s: s, action: action, sel: sel, limit: s.o.MaxCount, from: from, after: from, res: res}
	if sel.MaxCount > 0 {
		c.limit = min(c.limit, sel.MaxCount)
	}
	if !sel.All {
		c.wanted = make(map[int64]bool, len(sel.SequenceNumbers))
		for _, n := range sel.SequenceNumbers {
			if n > from {
				c.wanted[n] = true
				c.last = max(c.last, n)
			}
		}
	}
	if sel.DryRun {
		err = c.dryRun(ctx, start)
	} else {
		err = c.run(ctx, start)
	}
	s.log.Info("dead-letter drain call finished", slog.String("entity", s.o.Entity), slog.String("action", string(action)),
		slog.Bool("dryRun", sel.DryRun), slog.Int("processed", c.res.Processed), slog.Int("resubmitted", c.res.Resubmitted),
		slog.Int("completed", c.res.Completed), slog.Int("released", c.res.Released), slog.Int("notFound", len(c.res.NotFound)),
		slog.Int("failed", len(c.res.Failed)), slog.Duration("elapsed", s.now().Sub(start)), slog.Bool("more", c.res.Continuation != ""))
	return c.res, err
}

// run receives and acts page by page. See Run.
func (c *call) run(ctx context.Context, start time.Time) error {
	recv, err := c.s.o.NewReceiver()
	if err != nil {
		return fmt.Errorf("deadletter: open a receiver on the dead-letter queue: %w", err)
	}
	c.recv = recv
	defer c.release(ctx) // closes the receive link, then gives the held messages back
	more, err := c.more(ctx)
	for pages := 0; more && err == nil; pages++ {
		if !c.sel.All && (len(c.wanted) == 0 || c.after >= c.last) {
			break // with sequence-ordered delivery nothing selected is left to receive
		}
		if c.res.Processed >= c.limit || (pages > 0 && c.s.now().Sub(start) >= c.s.o.Budget) {
			c.res.Continuation = encodeCursor(c.action, c.sel, c.after)
			break
		}
		if c.full() {
			break
		}
		n := c.s.o.PageSize
		if c.sel.All {
			n = min(n, c.limit-c.res.Processed)
		} else if n, err = c.window(ctx); err != nil || n == 0 {
			break
		}
		var msgs []*azservicebus.ReceivedMessage
		if msgs, err = c.receive(ctx, n); err != nil || len(msgs) == 0 {
			break
		}
		var sendErr error
		if sendErr, err = c.page(ctx, msgs); err != nil {
			break
		}
		if sendErr != nil {
			c.s.log.Warn("dead-letter drain call stopped early after a send failure", slog.String("entity", c.s.o.Entity), slog.Any("error", sendErr))
			c.res.Continuation = encodeCursor(c.action, c.sel, c.after)
			break
		}
		if c.sel.All {
			// A peek of one message is cheaper than a receive that waits ReceiveWait on an empty DLQ.
			more, err = c.more(ctx)
		}
	}
	if err != nil {
		// What was decided stands; the continuation resumes after it.
		c.res.Continuation = encodeCursor(c.action, c.sel, c.after)
		if ctx.Err() == nil {
			c.classify(ctx)
		}
		return err
	}
	c.classify(ctx)
	return nil
}

// more reports whether the DLQ has an active message after c.after: a peek of one message, then of up to
// four pages past deferred ones (which a receive never returns).
func (c *call) more(ctx context.Context) (bool, error) {
	from := c.after + 1
	for i, n := range []int{1, MaxPageSize, MaxPageSize, MaxPageSize, MaxPageSize} {
		got, err := c.s.o.Shared.PeekMessages(ctx, n, &azservicebus.PeekMessagesOptions{FromSequenceNumber: &from})
		if err != nil {
			return false, fmt.Errorf("deadletter: peek: %w", err)
		}
		for _, m := range got {
			if m.State == azservicebus.MessageStateActive {
				return true, nil
			}
		}
		if len(got) < n || got[len(got)-1].SequenceNumber == nil {
			return false, nil
		}
		if from = *got[len(got)-1].SequenceNumber + 1; i == 4 {
			break
		}
	}
	return true, nil
}

// window returns how many active messages after c.after, up to the last selected number, the next receive asks
// for: a sequence-number selection receives no more than that, so it holds (and abandons) nothing it could have
// left alone. It peeks a page and, as more does, up to four further pages past pages with none of them (deferred
// messages, which a receive never returns); 0 means none is left. Still none after five pages: a whole page.
func (c *call) window(ctx context.Context) (int, error) {
	from := c.after + 1
	for range 5 {
		got, err := c.s.o.Shared.PeekMessages(ctx, c.s.o.PageSize, &azservicebus.PeekMessagesOptions{FromSequenceNumber: &from})
		if err != nil {
			return 0, fmt.Errorf("deadletter: peek: %w", err)
		}
		n := 0
		for _, m := range got {
			if m.SequenceNumber != nil && *m.SequenceNumber <= c.last && m.State == azservicebus.MessageStateActive {
				n++
			}
		}
		if n > 0 || len(got) < c.s.o.PageSize {
			return n, nil
		}
		last := got[len(got)-1].SequenceNumber
		if last == nil || *last >= c.last {
			return 0, nil
		}
		from = *last + 1
	}
	return c.s.o.PageSize, nil
}

// receive returns up to n messages, or none when nothing arrived within ReceiveWait (the messages a peek
// showed are locked by another receiver).
func (c *call) receive(ctx context.Context, n int) ([]*azservicebus.ReceivedMessage, error) {
	wctx, cancel := context.WithTimeout(ctx, c.s.o.ReceiveWait)
	defer cancel()
	msgs, err := c.recv.ReceiveMessages(wctx, n, nil)
	if err != nil && ctx.Err() == nil && errors.Is(err, context.DeadlineExceeded) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("deadletter: receive: %w", err)
	}
	return msgs, nil
}

// full reports whether the scan window is used up, and notes why.
func (c *call) full() bool {
	switch {
	case len(c.held) >= c.s.o.MaxHeld:
		c.why = fmt.Sprintf("not reached: the call held %d messages ahead of it, its limit", len(c.held))
	case c.bytes >= c.s.o.MaxHeldBytes:
		c.why = fmt.Sprintf("not reached: the call held %d bytes of messages ahead of it, its limit", c.bytes)
	case !c.until.IsZero() && !c.s.now().Before(c.until):
		c.why = "not reached: the messages ahead of it were held for half their lock duration"
	default:
		return false
	}
	return true
}

// hold keeps m locked until the call ends.
func (c *call) hold(m *azservicebus.ReceivedMessage) {
	c.held = append(c.held, m)
	c.bytes += len(m.Body)
	if m.LockedUntil != nil {
		now := c.s.now()
		if u := now.Add(m.LockedUntil.Sub(now) / 2); c.until.IsZero() || u.Before(c.until) {
			c.until = u
		}
	}
}

// page sorts msgs by sequence number, picks the ones to act on (up to the count limit; the rest are held)
// and acts on them. It returns the send failure that should stop the call, if any.
func (c *call) page(ctx context.Context, msgs []*azservicebus.ReceivedMessage) (sendErr error, err error) {
	slices.SortFunc(msgs, func(a, b *azservicebus.ReceivedMessage) int { return compareSeq(a, b) })
	var act []*azservicebus.ReceivedMessage
	cut := false
	for _, m := range msgs {
		if m.SequenceNumber == nil {
			c.hold(m)
			continue
		}
		seq := *m.SequenceNumber
		if cut || c.res.Processed+len(act) >= c.limit {
			cut = true // not decided: a later call receives it again
			c.hold(m)
			continue
		}
		c.after = max(c.after, seq)
		if seq <= c.from || (!c.sel.All && !c.wanted[seq]) {
			c.hold(m)
			continue
		}
		delete(c.wanted, seq)
		act = append(act, m)
	}
	c.res.Processed += len(act)
	if len(act) == 0 {
		return nil, ctx.Err()
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), settleTimeout)
	defer cancel()
	if c.action == drain.ActionResubmit {
		act, sendErr = c.sendCopies(sctx, act)
	}
	c.complete(sctx, act)
	return sendErr, ctx.Err()
}

func compareSeq(a, b *azservicebus.ReceivedMessage) int {
	switch {
	case a.SequenceNumber == nil || b.SequenceNumber == nil:
		return 0
	case *a.SequenceNumber < *b.SequenceNumber:
		return -1
	case *a.SequenceNumber > *b.SequenceNumber:
		return 1
	}
	return 0
}

// sendCopies sends a copy of every message and returns those whose copy was sent. The others are held (and
// so abandoned at the end) and reported failed.
func (c *call) sendCopies(ctx context.Context, msgs []*azservicebus.ReceivedMessage) ([]*azservicebus.ReceivedMessage, error) {
	copies := make([]*azservicebus.Message, 0, len(msgs))
	built := make([]*azservicebus.ReceivedMessage, 0, len(msgs))
	for _, m := range msgs {
		cp, err := c.s.copyOf(m)
		if err != nil {
			c.fail(m, err)
			continue
		}
		copies, built = append(copies, cp), append(built, m)
	}
	errs, sendErr := drain.SendCopies(ctx, c.s.o.Sender, copies)
	sent := built[:0]
	for i, m := range built {
		if errs[i] != nil {
			c.fail(m, errs[i])
			continue
		}
		sent = append(sent, m)
	}
	return sent, sendErr
}

// fail holds m and reports err for it.
func (c *call) fail(m *azservicebus.ReceivedMessage, err error) {
	c.hold(m)
	c.res.Failed = append(c.res.Failed, drain.Failure{SequenceNumber: *m.SequenceNumber, Error: err.Error()})
}

// complete completes the originals concurrently. A message whose complete fails is reported failed and not
// abandoned: its lock is most likely gone.
func (c *call) complete(ctx context.Context, msgs []*azservicebus.ReceivedMessage) {
	errs := make([]error, len(msgs))
	c.forEach(len(msgs), func(i int) { errs[i] = c.recv.CompleteMessage(ctx, msgs[i], nil) })
	for i, err := range errs {
		seq := *msgs[i].SequenceNumber
		switch {
		case err == nil && c.action == drain.ActionResubmit:
			c.res.Resubmitted++
		case err == nil:
			c.res.Completed++
		case c.action == drain.ActionResubmit:
			c.res.Failed = append(c.res.Failed, drain.Failure{SequenceNumber: seq,
				Error: "copy sent, but completing the original failed (a retry resends the same MessageID): " + err.Error()})
		default:
			c.res.Failed = append(c.res.Failed, drain.Failure{SequenceNumber: seq, Error: "complete: " + err.Error()})
		}
	}
}

// release closes the call's receive link, then abandons every held message by lock token on the shared
// receiver (see SharedReceiver), concurrently, on a context detached from ctx.
func (c *call) release(ctx context.Context) {
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), settleTimeout)
	defer cancel()
	if err := c.recv.Close(sctx); err != nil {
		c.s.log.Warn("closing the dead-letter receiver failed", slog.Any("error", err))
	}
	if len(c.held) == 0 {
		return
	}
	errs := make([]error, len(c.held))
	c.forEach(len(c.held), func(i int) {
		errs[i] = c.s.o.Shared.AbandonMessage(sctx, &azservicebus.ReceivedMessage{LockToken: c.held[i].LockToken}, nil)
	})
	n := 0
	for _, err := range errs {
		if err == nil {
			n++
		}
	}
	if n < len(errs) {
		c.s.log.Warn("some held dead-letter messages could not be abandoned; their locks run out", slog.String("entity", c.s.o.Entity),
			slog.Int("held", len(errs)), slog.Int("abandoned", n))
	}
	c.res.Released += n
	c.held, c.bytes = nil, 0
}

// classify decides the selected numbers a finished scan did not receive — those at or below c.after, or all
// of them when the call is not continued: a peek tells a missing message (not found) from one that exists
// but was not received (failed, with the reason).
func (c *call) classify(ctx context.Context) {
	var left []int64
	for n := range c.wanted {
		if c.res.Continuation == "" || n <= c.after {
			left = append(left, n)
		}
	}
	slices.Sort(left)
	if len(left) == 0 {
		return
	}
	got := make([]*azservicebus.ReceivedMessage, len(left))
	errs := make([]error, len(left))
	c.forEach(len(left), func(i int) { got[i], errs[i] = browse.Peek(ctx, c.s.o.Shared, left[i]) })
	for i, seq := range left {
		delete(c.wanted, seq)
		c.res.Processed++
		switch {
		case errors.Is(errs[i], browse.ErrNotFound):
			c.res.NotFound = append(c.res.NotFound, seq)
		case errs[i] != nil:
			c.res.Failed = append(c.res.Failed, drain.Failure{SequenceNumber: seq, Error: errs[i].Error()})
		case got[i].State == azservicebus.MessageStateDeferred:
			c.res.Failed = append(c.res.Failed, drain.Failure{SequenceNumber: seq, Error: "the message is deferred in the dead-letter queue; only active dead-lettered messages are drained"})
		case seq > c.after && c.why != "":
			c.res.Failed = append(c.res.Failed, drain.Failure{SequenceNumber: seq, Error: c.why})
		default:
			c.res.Failed = append(c.res.Failed, drain.Failure{SequenceNumber: seq, Error: "the message exists but was not received: another receiver holds its lock"})
		}
	}
}

// dryRun peeks instead of receiving: it reports in Eligible the selected messages a call would act on,
// not-found numbers, and deferred ones as skipped. Nothing is locked.
func (c *call) dryRun(ctx context.Context, start time.Time) error {
	from := c.from + 1
	for pages := 0; ; pages++ {
		if !c.sel.All && (len(c.wanted) == 0 || from > c.last) {
			break
		}
		if c.res.Processed >= c.limit || (pages > 0 && c.s.now().Sub(start) >= c.s.o.Budget) {
			c.res.Continuation = encodeCursor(c.action, c.sel, c.after)
			break
		}
		got, err := c.s.o.Shared.PeekMessages(ctx, MaxPageSize, &azservicebus.PeekMessagesOptions{FromSequenceNumber: &from})
		if err != nil {
			return fmt.Errorf("deadletter: peek: %w", err)
		}
		for _, m := range got {
			if m.SequenceNumber == nil || c.res.Processed >= c.limit {
				break
			}
			seq := *m.SequenceNumber
			from, c.after = seq+1, seq
			if !c.sel.All && !c.wanted[seq] {
				continue
			}
			delete(c.wanted, seq)
			c.res.Processed++
			if m.State == azservicebus.MessageStateDeferred {
				c.res.Skipped = append(c.res.Skipped, drain.Skip{SequenceNumber: seq, Reason: "deferred in the dead-letter queue"})
				c.res.SkippedCount++
				continue
			}
			c.res.Eligible = append(c.res.Eligible, seq)
		}
		if len(got) < MaxPageSize {
			break
		}
	}
	for n := range c.wanted {
		if c.res.Continuation == "" || n <= c.after {
			c.res.NotFound = append(c.res.NotFound, n)
			c.res.Processed++
		}
	}
	slices.Sort(c.res.NotFound)
	return nil
}

// forEach calls f(0…n-1) with at most Concurrency calls in flight and returns when all have returned.
func (c *call) forEach(n int, f func(i int)) { drain.ForEach(n, c.s.o.Concurrency, f) }
