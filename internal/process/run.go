package process

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus"

	"github.com/holdfast-dev/holdfast/lockrenew"
	"github.com/holdfast-dev/holdfast/processor"
)

// run is the state of one Run call. Fields are immutable after newRun unless noted.
type run struct {
	rcv    Receiver
	proc   processor.Processor
	o      Options
	logger *slog.Logger

	start       time.Time
	deadline    time.Time
	stopReceive time.Time
	// settleStop bounds every settlement, including the abandons that follow the deadline and those of
	// stuck processors (StuckGrace is at most half of SettleTimeout): deadline + SettleTimeout.
	settleStop time.Time

	// workCtx is the parent of every message context. It is cancelled with ErrBudgetExhausted at the
	// deadline, or with the caller's cause when the caller's context ends.
	workCtx    context.Context
	cancelWork context.CancelCauseFunc
	// settleCtx carries the caller's values but not its cancellation: settlement must happen even after
	// the caller gave up.
	settleCtx context.Context

	renewer *lockrenew.Renewer

	// slots has one token per message received and not yet processed; its capacity is Concurrency. Taken by
	// the receive loop (the goroutine running execute), handed over by the message's worker goroutine for a
	// settleSlots token once the processor has returned (see worker.toSettling).
	slots chan struct{}
	// settleSlots has one token per message being settled; its capacity is Concurrency. A worker takes one
	// before it gives its slot back, so the receive loop can fetch the next messages while the previous ones
	// are settled, and at most 2×Concurrency messages are held at once.
	settleSlots chan struct{}
	// receiveStopped is closed once receiving has ended and ReceiveDone has returned.
	receiveStopped chan struct{}
	// workers joins the per-message goroutines.
	workers sync.WaitGroup

	// Counters, written by worker goroutines (received: by the receive loop) with atomics.
	received, completed, abandoned, deadLettered, deferred, locksLost, stuck, due atomic.Int64

	// Session runs (RunSessions) only. sess is immutable; dueEnd is set before the session workers start.
	sess         Sessions
	dueEnd       time.Time
	sessions     atomic.Int64
	acceptFailed atomic.Bool // an accept failed other than for want of a session: stop accepting
}

func newRun(ctx context.Context, rcv Receiver, p processor.Processor, o Options) *run {
	r := &run{rcv: rcv, proc: p, o: o, logger: o.Logger, start: time.Now()}
	r.deadline = r.start.Add(o.Budget)
	r.stopReceive = r.deadline.Add(-o.ReceiveMargin)
	r.settleStop = r.deadline.Add(o.SettleTimeout)
	workCtx, cancelWork := context.WithCancelCause(ctx)
	r.workCtx, r.cancelWork = workCtx, cancelWork
	r.settleCtx = context.WithoutCancel(ctx)
	r.slots = make(chan struct{}, o.Concurrency)
	r.settleSlots = make(chan struct{}, o.Concurrency)
	r.receiveStopped = make(chan struct{})
	var lr lockrenew.LockRenewer
	maxRenewal := o.MaxLockRenewal
	if rcv != nil {
		lr = rcv
	} else {
		// A session run holds sessions only: it bounds each message by MaxLockRenewal itself (handleSession), and a
		// session's hold by the run.
		maxRenewal = -1
	}
	r.renewer = lockrenew.New(lr, &lockrenew.Options{
		MaxRenewalDuration:    maxRenewal,
		LockDuration:          o.LockDuration,
		MaxConcurrentRenewals: o.MaxConcurrentRenewals,
		Logger:                o.Logger,
	})
	return r
}

// execute runs the receive loop on the calling goroutine, then joins the workers and the renewer.
func (r *run) execute() (Summary, error) {
	stopBudget := r.startBudget()
	r.dueLoop()
	err := r.receiveLoop()
	if r.o.ReceiveDone != nil {
		r.o.ReceiveDone()
	}
	close(r.receiveStopped)
	r.workers.Wait()
	return r.finish(stopBudget, err)
}

// startBudget arms the budget timer, which cancels every message still in progress at the deadline. The
// returned function stops it, or joins its AfterFunc goroutine when it fired.
func (r *run) startBudget() (stop func()) {
	budgetDone := make(chan struct{})
	budget := time.AfterFunc(time.Until(r.deadline), func() {
		defer close(budgetDone)
		r.cancelWork(ErrBudgetExhausted)
	})
	return func() {
		if !budget.Stop() {
			<-budgetDone
		}
	}
}

// finish ends a run whose work is joined: it stops the budget timer and the renewer, logs the summary and
// returns it with err.
func (r *run) finish(stopBudget func(), err error) (Summary, error) {
	stopBudget()
	r.cancelWork(context.Canceled)
	r.renewer.Close()
	s := r.summary()
	attrs := []any{slog.Any("summary", s)}
	if err != nil {
		attrs = append(attrs, slog.Any("error", err))
		r.logger.Error("run failed", attrs...)
	} else {
		r.logger.Info("run finished", attrs...)
	}
	return s, err
}

func (r *run) summary() Summary {
	st := r.renewer.Stats()
	return Summary{
		Received:         r.received.Load(),
		Completed:        r.completed.Load(),
		Abandoned:        r.abandoned.Load(),
		DeadLettered:     r.deadLettered.Load(),
		Deferred:         r.deferred.Load(),
		Renewals:         st.Renewals + st.SessionRenewals,
		LocksLost:        r.locksLost.Load(),
		Stuck:            r.stuck.Load(),
		Due:              r.due.Load(),
		Sessions:         r.sessions.Load(),
		SessionRenewals:  st.SessionRenewals,
		SessionLocksLost: int64(st.SessionLocksLost),
		DurationMs:       time.Since(r.start).Milliseconds(),
	}
}

// receiveLoop receives until the receive stop time, an empty receive, the caller's cancellation or a receive
// error (returned).
func (r *run) receiveLoop() error {
	for {
		n := r.takeSlots(r.stopReceive)
		if n == 0 {
			return nil // stop time reached or cancelled while waiting for a free worker
		}
		msgs, stop, err := r.receive(n)
		for range n - len(msgs) {
			<-r.slots // give back the slots no message came for
		}
		for _, m := range msgs {
			r.dispatch(m, nil)
		}
		if err != nil || stop {
			return err
		}
	}
}

// takeSlots blocks until at least one worker is free, then takes up to BatchSize free slots. It returns 0
// when until (the receive stop time, or the end of the due phase) passes or the caller's context ends first.
func (r *run) takeSlots(until time.Time) int {
	wait := time.Until(until)
	if wait <= 0 || r.workCtx.Err() != nil {
		return 0
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case r.slots <- struct{}{}:
	case <-t.C:
		return 0
	case <-r.workCtx.Done():
		return 0
	}
	n := 1
	want := min(r.o.BatchSize, cap(r.slots))
	var linger <-chan time.Time // nil until the first time no slot is free: lingering starts then
	for n < want {
		select {
		case r.slots <- struct{}{}:
			n++
			continue
		default:
		}
		if r.o.ReceiveLinger <= 0 {
			return n
		}
		if linger == nil {
			lt := time.NewTimer(r.o.ReceiveLinger)
			defer lt.Stop()
			linger = lt.C
		}
		select {
		case r.slots <- struct{}{}:
			n++
		case <-linger:
			return n
		case <-r.workCtx.Done():
			return n
		}
	}
	return n
}

// receive asks for up to n messages, waiting at most NoMessageWait and never past the receive stop time.
// stop reports that receiving should end (nothing arrived in time, or the caller cancelled).
func (r *run) receive(n int) (msgs []*azservicebus.ReceivedMessage, stop bool, err error) {
	wait := min(r.o.NoMessageWait, time.Until(r.stopReceive))
	if wait <= 0 {
		return nil, true, nil
	}
	ctx, cancel := context.WithTimeout(r.workCtx, wait)
	defer cancel()
	msgs, err = r.rcv.ReceiveMessages(ctx, n, nil)
	if len(msgs) > 0 {
		return msgs, false, nil // the SDK drops errors that come with messages; the next call reports them
	}
	switch {
	case r.workCtx.Err() != nil:
		return nil, true, nil
	case ctx.Err() != nil:
		r.logger.Debug("no message within the wait; receiving ends", slog.Duration("wait", wait))
		return nil, true, nil
	case err != nil:
		return nil, true, fmt.Errorf("%w: %w", ErrReceive, err)
	default:
		return nil, false, nil // the SDK recovered its link; try again
	}
}

// dispatch holds msg's lock at once and starts its worker. The caller has taken a slot for msg. settled, if
// not nil, is told what became of msg once it is handled (due deferred messages: see DueMessage).
func (r *run) dispatch(msg *azservicebus.ReceivedMessage, settled func(context.Context, Settlement)) {
	r.received.Add(1)
	msgCtx, release := r.renewer.Hold(r.workCtx, msg)
	r.workers.Add(1)
	go func() {
		defer r.workers.Done()
		w := worker{r: r}
		defer w.done()
		defer release()
		s := r.handle(msgCtx, msg, &w)
		if settled != nil {
			ctx, cancel := r.settleContext()
			defer cancel()
			settled(ctx, s)
		}
	}()
}

// worker tracks which token a message's worker goroutine holds: a slot while the message waits for or is in
// its processor, then a settleSlots token while it is settled.
type worker struct {
	r        *run
	settling bool
}

// toSettling trades the worker's slot for a settlement token, waiting for one if Concurrency messages are
// being settled already. It is idempotent.
func (w *worker) toSettling() {
	if w.settling {
		return
	}
	w.r.settleSlots <- struct{}{}
	<-w.r.slots
	w.settling = true
}

// done gives back the token the worker holds.
func (w *worker) done() {
	if w.settling {
		<-w.r.settleSlots
	} else {
		<-w.r.slots
	}
}

// handle processes one message and settles it. It runs on the message's worker goroutine.
func (r *run) handle(ctx context.Context, msg *azservicebus.ReceivedMessage, w *worker) Settlement {
	return r.processAndSettle(ctx, r.rcv, msg, r.msgLog(msg), w.toSettling, func() {
		if r.workCtx.Err() != nil {
			// The run is ending: abandon only once receiving has stopped and ReceiveDone has returned (the
			// Service closes its receive link there), so the message is not delivered straight back onto the
			// credit of the run's own receive link, where it would stay locked once that link closes.
			// workCtx being done ends the receive loop promptly.
			<-r.receiveStopped
		}
	})
}

// processAndSettle processes msg under ctx (the message's or the session's hold) and settles it through s:
// as the processor's outcome; abandoned when ctx ended with the lock still held (budget exhausted, maximum
// renewal reached, the caller cancelled); not at all when ctx ended because the lock was lost (invariant 1:
// another receiver may own the message, and settling would fail anyway; Service Bus redelivers it). processed
// runs once the processor returned or was given up on, beforeAbandon before a cancelled message is abandoned;
// either may be nil.
func (r *run) processAndSettle(ctx context.Context, s settler, msg *azservicebus.ReceivedMessage, log *msgLog,
	processed, beforeAbandon func()) Settlement {
	out, stuck := r.process(ctx, msg, log)
	if processed != nil {
		processed()
	}
	if stuck {
		// The processor ignored its context for StuckGrace: its goroutine is left behind, and whatever it
		// returns later is dropped by process. The message is treated like any cancelled one.
		r.stuck.Add(1)
		log.Error("processor did not return after its context ended; the run stops waiting for it and will ignore its outcome",
			slog.Duration("grace", r.o.StuckGrace), slog.Any("cause", context.Cause(ctx)))
	}
	if ctx.Err() == nil {
		return r.settle(s, log, msg, out)
	}
	cause := context.Cause(ctx)
	if errors.Is(cause, lockrenew.ErrLockLost) { // ErrSessionLockLost wraps it
		r.locksLost.Add(1)
		log.Warn("lock lost; message not settled", slog.String("outcome", out.Kind.String()), slog.Any("cause", cause))
		return SettledNone
	}
	log.Warn("processing cancelled; abandoning", slog.String("outcome", out.Kind.String()), slog.Any("cause", cause))
	if beforeAbandon != nil {
		beforeAbandon()
	}
	return r.abandon(s, log, msg)
}

// process calls the processor on its own goroutine and waits for its outcome. Once ctx is done it waits at
// most StuckGrace more; then it gives up and reports stuck, and the processor's goroutine — the only one a
// run leaves behind — drops its outcome when it eventually returns. A panic becomes an abandon outcome.
func (r *run) process(ctx context.Context, msg *azservicebus.ReceivedMessage, log *msgLog) (processor.Outcome, bool) {
	res := make(chan processor.Outcome, 1)
	// claimed is won by whichever comes first: the processor returning (its outcome counts) or the worker
	// giving up (the outcome is dropped).
	var claimed atomic.Bool
	go func() {
		out := r.call(ctx, msg)
		if !claimed.CompareAndSwap(false, true) {
			log.Warn("stuck processor returned after the run gave up on it; outcome ignored", slog.String("outcome", out.Kind.String()))
			return
		}
		res <- out
	}()
	select {
	case out := <-res:
		return out, false
	case <-ctx.Done():
	}
	grace := time.NewTimer(r.o.StuckGrace)
	defer grace.Stop()
	select {
	case out := <-res:
		return out, false
	case <-grace.C:
	}
	if claimed.CompareAndSwap(false, true) {
		return processor.Outcome{}, true
	}
	return <-res, false // it returned just as the grace ran out
}

// call runs the processor, turning a panic into an abandon outcome.
func (r *run) call(ctx context.Context, msg *azservicebus.ReceivedMessage) (out processor.Outcome) {
	defer func() {
		if v := recover(); v != nil {
			out = processor.Abandon(fmt.Errorf("process: processor panicked: %v", v))
		}
	}()
	return r.proc.Process(ctx, msg)
}

// settler is what settles a message: the run's Receiver, or the session receiver a session message came from.
type settler interface {
	CompleteMessage(ctx context.Context, msg *azservicebus.ReceivedMessage, options *azservicebus.CompleteMessageOptions) error
	AbandonMessage(ctx context.Context, msg *azservicebus.ReceivedMessage, options *azservicebus.AbandonMessageOptions) error
	DeadLetterMessage(ctx context.Context, msg *azservicebus.ReceivedMessage, options *azservicebus.DeadLetterOptions) error
	DeferMessage(ctx context.Context, msg *azservicebus.ReceivedMessage, options *azservicebus.DeferMessageOptions) error
}

// settle applies out to msg through s. Only a valid outcome is applied (processor.Outcome.Validate): the zero
// Outcome, an unknown Kind and any Outcome with Err set abandon the message (invariant 1).
func (r *run) settle(s settler, log *msgLog, msg *azservicebus.ReceivedMessage, out processor.Outcome) Settlement {
	if err := out.Validate(); err != nil {
		level := slog.LevelWarn // Abandon(err): the processor's own transient failure
		if errors.Is(err, processor.ErrInvalidOutcome) {
			level = slog.LevelError
		}
		log.Log(context.Background(), level, "processor error; abandoning", slog.String("outcome", out.Kind.String()), slog.Any("error", err))
		return r.abandon(s, log, msg)
	}
	ctx, cancel := r.settleContext()
	defer cancel()
	switch out.Kind {
	case processor.KindComplete:
		if err := s.CompleteMessage(ctx, msg, nil); err != nil {
			return r.settleFailed(s, log, msg, "complete", err)
		}
		r.completed.Add(1)
		log.Debug("completed")
		return SettledComplete
	case processor.KindDeadLetter:
		opts := &azservicebus.DeadLetterOptions{Reason: &out.Reason, ErrorDescription: &out.Description}
		if err := s.DeadLetterMessage(ctx, msg, opts); err != nil {
			return r.settleFailed(s, log, msg, "dead-letter", err)
		}
		r.deadLettered.Add(1)
		log.Info("dead-lettered", slog.String("reason", out.Reason), slog.String("description", out.Description))
		return SettledDeadLetter
	case processor.KindDefer:
		if r.o.Deferrer == nil {
			log.Warn("defer requested but no deferral ledger is configured; abandoning")
			return r.abandon(s, log, msg)
		}
		if err := r.o.Deferrer.Defer(ctx, s, msg, out.NotBefore, out.Reason); err != nil {
			log.Warn("defer failed; abandoning", slog.Any("error", err))
			return r.abandon(s, log, msg)
		}
		r.deferred.Add(1)
		log.Info("deferred", slog.Time("notBefore", out.NotBefore), slog.String("reason", out.Reason))
		return SettledDefer
	default: // KindAbandon without an error
		log.Info("processor abandoned the message")
		return r.abandon(s, log, msg)
	}
}

// settleContext returns the context of one settlement call: detached from the caller, bounded by
// SettleTimeout and by settleStop, so that Run returns by deadline + SettleTimeout even when the service
// stops answering.
func (r *run) settleContext() (context.Context, context.CancelFunc) {
	d := time.Now().Add(r.o.SettleTimeout)
	if r.settleStop.Before(d) {
		d = r.settleStop
	}
	return context.WithDeadline(r.settleCtx, d)
}

// abandon abandons msg through s, counting it; a lost lock is counted as such.
func (r *run) abandon(s settler, log *msgLog, msg *azservicebus.ReceivedMessage) Settlement {
	ctx, cancel := r.settleContext()
	defer cancel()
	if err := s.AbandonMessage(ctx, msg, nil); err != nil {
		if isLockLost(err) {
			r.locksLost.Add(1)
		}
		log.Error("abandon failed; the message is redelivered when its lock expires", slog.Any("error", err))
		return SettledNone
	}
	r.abandoned.Add(1)
	return SettledAbandon
}

// settleFailed handles a failed complete or dead-letter: a lost lock is counted; otherwise the message is
// abandoned so it is redelivered without waiting for the lock to expire.
func (r *run) settleFailed(s settler, log *msgLog, msg *azservicebus.ReceivedMessage, op string, err error) Settlement {
	if isLockLost(err) {
		r.locksLost.Add(1)
		log.Warn(op+" failed: lock lost; message not settled", slog.Any("error", err))
		return SettledNone
	}
	log.Error(op+" failed; abandoning", slog.Any("error", err))
	return r.abandon(s, log, msg)
}

// isLockLost reports whether err says the lock is gone: the service's CodeLockLost, or a session settlement
// cut short because the session's lock was lost (lockrenew.ErrSessionLockLost wraps ErrLockLost).
func isLockLost(err error) bool {
	var sbErr *azservicebus.Error
	return errors.Is(err, lockrenew.ErrLockLost) || errors.As(err, &sbErr) && sbErr.Code == azservicebus.CodeLockLost
}

func seq(msg *azservicebus.ReceivedMessage) int64 {
	if msg.SequenceNumber == nil {
		return 0
	}
	return *msg.SequenceNumber
}

// msgLog is a message's logger, built on first use: most messages are settled without a log record, and
// slog.Logger.With allocates (and pre-encodes, with the JSON handler) the message's attributes. Safe for
// concurrent use (a stuck processor's goroutine may log while the worker does).
type msgLog struct {
	base *slog.Logger
	msg  *azservicebus.ReceivedMessage
	once sync.Once
	l    *slog.Logger // set by once
}

// msgLog returns the logger of msg: the run's, with its message ID, sequence number and delivery count.
func (r *run) msgLog(msg *azservicebus.ReceivedMessage) *msgLog {
	return &msgLog{base: r.logger, msg: msg}
}

// Log logs at level when the run's logger is enabled for it.
func (m *msgLog) Log(ctx context.Context, level slog.Level, text string, args ...any) {
	if !m.base.Enabled(ctx, level) {
		return
	}
	m.once.Do(func() {
		m.l = m.base.With(slog.String("messageId", m.msg.MessageID), slog.Int64("sequenceNumber", seq(m.msg)),
			slog.Int64("deliveryCount", int64(m.msg.DeliveryCount)))
	})
	m.l.Log(ctx, level, text, args...)
}

func (m *msgLog) Debug(text string, args ...any) {
	m.Log(context.Background(), slog.LevelDebug, text, args...)
}
func (m *msgLog) Info(text string, args ...any) {
	m.Log(context.Background(), slog.LevelInfo, text, args...)
}
func (m *msgLog) Warn(text string, args ...any) {
	m.Log(context.Background(), slog.LevelWarn, text, args...)
}
func (m *msgLog) Error(text string, args ...any) {
	m.Log(context.Background(), slog.LevelError, text, args...)
}
