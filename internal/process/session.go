package process

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus"
	"github.com/Azure/go-amqp"

	"github.com/holdfast-dev/holdfast/lockrenew"
	"github.com/holdfast-dev/holdfast/processor"
)

// ErrSessionLockLost is the context cause of every message in progress in a session whose lock was lost
// (lockrenew.ErrSessionLockLost; it wraps lockrenew.ErrLockLost). None of the session's messages received
// under that lock is settled; Service Bus redelivers them, in order, to the next receiver of the session.
var ErrSessionLockLost = lockrenew.ErrSessionLockLost

// ErrSessionLocked: AcceptSession found the session locked by another receiver
// (com.microsoft:session-cannot-be-locked). Whoever holds it is processing it; try again later.
var ErrSessionLocked = errors.New("process: session is locked by another receiver")

// DefaultSessionIdleWait is how long a session is kept without a message before it is released.
const DefaultSessionIdleWait = time.Second

// SessionReceiver is the part of *azservicebus.SessionReceiver a session run uses: one accepted session.
//
// ReceiveMessages blocks until at least one message arrives or ctx is done. Settlement happens on this
// receiver (Service Bus settles a session's messages only through a receiver that holds the session: the SDK
// settles by lock token on a second receiver for non-session entities only). RenewSessionLock extends the
// lock that covers every message received through it. ReceiveDeferredMessages and PeekMessages act within
// the session. Every call blocks until the service answers or ctx ends. Close releases the session.
type SessionReceiver interface {
	ReceiveMessages(ctx context.Context, maxMessages int, options *azservicebus.ReceiveMessagesOptions) ([]*azservicebus.ReceivedMessage, error)
	settler
	DueReceiver
	lockrenew.SessionLockRenewer
	Close(ctx context.Context) error
}

var _ SessionReceiver = (*azservicebus.SessionReceiver)(nil)

// Sessions accepts sessions of the run's entity. Safe for concurrent use.
//
// AcceptNextSession locks the next session with an available message. When none becomes available it blocks
// until ctx ends (Service Bus answers the accept with com.microsoft:timeout; the SDK derives that timeout from
// ctx's deadline and reports CodeTimeout), and the error satisfies IsNoSession. AcceptSession locks the named
// session, with or without messages; an error wrapping ErrSessionLocked means another receiver holds it.
type Sessions interface {
	AcceptNextSession(ctx context.Context) (SessionReceiver, error)
	AcceptSession(ctx context.Context, sessionID string) (SessionReceiver, error)
}

// IsNoSession reports whether err, returned by Sessions.AcceptNextSession, means that no session became
// available in time: the service's com.microsoft:timeout (CodeTimeout, azservicebus client.go
// AcceptNextSessionForQueue: "if the operation times out because there are no available sessions it will
// return an *azservicebus.Error where the Code is CodeTimeout") or the context's own deadline.
func IsNoSession(err error) bool {
	var sbErr *azservicebus.Error
	return errors.Is(err, context.DeadlineExceeded) || errors.As(err, &sbErr) && sbErr.Code == azservicebus.CodeTimeout
}

// IsSessionLocked reports whether err means the session is locked by another receiver: ErrSessionLocked, or
// the service's com.microsoft:session-cannot-be-locked, which the SDK passes on as an *amqp.Error.
func IsSessionLocked(err error) bool {
	var ae *amqp.Error
	return errors.Is(err, ErrSessionLocked) || errors.As(err, &ae) && ae.Condition == "com.microsoft:session-cannot-be-locked"
}

// DueSession is one session's share of the due deferred messages a SessionDueSource claimed.
type DueSession struct {
	SessionID string
	// Take receives the claimed messages through r, a receiver that holds the session, and returns them (in any
	// order) with their settlement callbacks. An entry whose message cannot be received is dealt with by the
	// source, as for DueSource.TakeDue. Required.
	Take func(ctx context.Context, r DueReceiver) ([]DueMessage, error)
	// Release gives the claims back without receiving, because the session could not be accepted (why says
	// why); they are due again at the next run. Required.
	Release func(ctx context.Context, why string)
}

// SessionDueSource brings deferred messages of a session-enabled entity back into runs: a deferred message
// of a session can only be received through a receiver of that session.
//
// ClaimDueSessions claims up to max due entries until claimUntil and returns them grouped by session. A
// non-nil error means the source could not be read; the sessions returned with it are still to be taken. It
// blocks until its work is done or ctx ends; a run calls it once, from its own goroutine.
type SessionDueSource interface {
	ClaimDueSessions(ctx context.Context, max int, claimUntil time.Time) ([]DueSession, error)
}

// RunSessions performs one run over a session-enabled entity with p: up to Options.MaxSessions sessions are
// held at once (the next available ones, as they free up), and each session's messages are processed in
// order, one at a time. The session lock is renewed in the background (lockrenew.Renewer.HoldSession); the
// messages have no lock of their own. When a session's lock is lost, the message in progress is cancelled
// with cause ErrSessionLockLost and nothing received under that lock is settled. A session is released
// (its receiver closed) once it has no message within Options.SessionIdleWait, when the run stops receiving,
// or after a message could not be settled, so one run serves many sessions. Settlement goes through the
// session's own receiver.
//
// Due deferred messages (Options.Due must then implement SessionDueSource) are taken first, session by session,
// each through a receiver of its session; a session another receiver holds is left for a later run.
//
// The budget, stuck processors, Outcome contract, summary and goroutine guarantees are Run's. The error is
// non-nil only when accepting sessions failed other than for want of one (it wraps ErrReceive).
func RunSessions(ctx context.Context, s Sessions, p processor.Processor, opts *Options) (Summary, error) {
	if s == nil || p == nil {
		return Summary{}, errors.New("process: RunSessions needs Sessions and a processor")
	}
	o := opts.withDefaults()
	r := newRun(ctx, nil, p, o)
	r.sess = s
	return r.executeSessions()
}

// executeSessions runs MaxSessions session workers (each first serves due sessions, then accepts the next
// available ones) and joins them, on the calling goroutine's behalf.
func (r *run) executeSessions() (Summary, error) {
	stopBudget := r.startBudget()
	jobs := r.claimDueSessions()
	var errMu sync.Mutex
	var firstErr error // guarded by errMu
	var wg sync.WaitGroup
	for range r.o.MaxSessions {
		wg.Go(func() {
			for job := range jobs {
				r.serveDueSession(job)
			}
			if err := r.sessionWorker(); err != nil {
				errMu.Lock()
				if firstErr == nil {
					firstErr = err
				}
				errMu.Unlock()
			}
		})
	}
	wg.Wait()
	if r.o.ReceiveDone != nil {
		r.o.ReceiveDone()
	}
	return r.finish(stopBudget, firstErr)
}

// sessionWorker accepts the next available session and serves it, again and again, until none is available
// within NoMessageWait, receiving stops or accepting fails (returned, wrapping ErrReceive). An accept that
// fails with a lost connection is tried once more: the SDK does not retry accepts, and the failed one
// recovered the connection (azservicebus v1.11.0 internal/namespace.go: a claim negotiation that fails with a
// connection error recovers the connection and returns the error), as after a connection the service closed
// while the client was idle.
func (r *run) sessionWorker() error {
	retried := false
	for {
		wait := min(r.o.NoMessageWait, time.Until(r.stopReceive))
		if wait <= 0 || r.workCtx.Err() != nil || r.acceptFailed.Load() {
			return nil
		}
		ctx, cancel := context.WithTimeout(r.workCtx, wait)
		sr, err := r.sess.AcceptNextSession(ctx)
		cancel()
		switch {
		case err == nil:
			retried = false
		case r.workCtx.Err() != nil || IsNoSession(err):
			r.logger.Debug("no session available within the wait; this worker stops", slog.Duration("wait", wait))
			return nil
		case !retried && isConnectionLost(err):
			retried = true
			r.logger.Warn("accepting a session failed on a lost connection; trying once more", slog.Any("error", err))
			continue
		default:
			r.acceptFailed.Store(true)
			return fmt.Errorf("%w: accept next session: %w", ErrReceive, err)
		}
		r.serveSession(sr, nil)
	}
}

// isConnectionLost reports whether err is the SDK's CodeConnectionLost.
func isConnectionLost(err error) bool {
	var sbErr *azservicebus.Error
	return errors.As(err, &sbErr) && sbErr.Code == azservicebus.CodeConnectionLost
}

// claimDueSessions claims the due deferred messages of the entity, grouped by session, and returns them as a
// closed channel of jobs for the session workers. Failures are logged; they never fail the run.
func (r *run) claimDueSessions() <-chan DueSession {
	jobs := make(chan DueSession)
	if r.o.Due == nil {
		close(jobs)
		return jobs
	}
	src, ok := r.o.Due.(SessionDueSource)
	if !ok {
		r.logger.Warn("the due source cannot take deferred messages of sessions; due deferred messages are left to the drain")
		close(jobs)
		return jobs
	}
	r.dueEnd = minTime(r.start.Add(r.o.DueTime), r.stopReceive)
	ctx, cancel := context.WithDeadline(r.workCtx, r.dueEnd)
	defer cancel()
	claimUntil := r.settleStop.Add(r.o.SettleTimeout) // the claim outlasts everything the run may still do
	got, err := src.ClaimDueSessions(ctx, r.o.DueMax, claimUntil)
	if err != nil {
		r.logger.Warn("taking due deferred messages failed; the run goes on with new messages", slog.Any("error", err))
	}
	buf := make(chan DueSession, len(got))
	for _, j := range got {
		buf <- j
	}
	close(buf)
	return buf
}

// serveDueSession accepts job's session, takes its due messages through it and processes them in sequence
// order; a session that cannot be accepted before the due phase ends gives its claims back.
func (r *run) serveDueSession(job DueSession) {
	sctx, scancel := r.settleContext()
	defer scancel()
	wait := min(r.o.NoMessageWait, time.Until(r.dueEnd))
	if wait <= 0 || r.workCtx.Err() != nil {
		job.Release(sctx, "the run's due phase ended before the session could be accepted")
		return
	}
	ctx, cancel := context.WithTimeout(r.workCtx, wait)
	sr, err := r.sess.AcceptSession(ctx, job.SessionID)
	cancel()
	if err != nil {
		why := fmt.Sprintf("session %q could not be accepted: %v", job.SessionID, err)
		if IsSessionLocked(err) {
			why = fmt.Sprintf("session %q is locked by another receiver (it is being processed); a later run takes these messages", job.SessionID)
		}
		r.logger.Warn("due deferred messages of a session left for a later run", slog.String("sessionId", job.SessionID), slog.String("why", why))
		job.Release(sctx, why)
		return
	}
	r.serveSession(sr, &job)
}

// serveSession holds sr's session lock and processes its messages one at a time: the due ones of job first
// (when job is set, and then only those), else those ServiceBus delivers, until none comes within
// SessionIdleWait. It then releases the hold and closes sr.
func (r *run) serveSession(sr SessionReceiver, job *DueSession) {
	r.sessions.Add(1)
	l := newSessionLink(sr, r.settleCtx)
	// The hold ends only with the lost lock or release (the run's renewer has no maximum renewal), not with the
	// run's work: a session lock lost after the budget ended the work — while a stuck processor is waited for, or
	// the message in progress abandoned — is still seen (l.lost), counted, and settles nothing. sessCtx, the
	// session's work, ends with the hold or with the run's work, whichever ends first, with its cause.
	holdCtx, release := r.renewer.HoldSession(context.WithoutCancel(r.workCtx), l)
	stopLost := l.watch(holdCtx)
	sessCtx, endWork := context.WithCancelCause(holdCtx)
	stopWork := afterFunc(r.workCtx, func() { endWork(context.Cause(r.workCtx)) })
	defer func() {
		stopWork()
		endWork(nil)
	}()
	log := r.logger.With(slog.String("sessionId", l.id))
	log.Debug("session accepted")
	if job != nil {
		r.serveDue(sessCtx, l, job, log)
	} else {
		r.serveActive(sessCtx, l, log)
	}
	if l.lost() { // counted by the renewer (Summary.SessionLocksLost)
		log.Warn("session lock lost; its messages are redelivered in order to the next receiver of the session",
			slog.Any("cause", context.Cause(holdCtx)))
	}
	release()
	stopLost()
	ctx, cancel := context.WithTimeout(r.settleCtx, closeTimeout)
	defer cancel()
	if err := sr.Close(ctx); err != nil {
		log.Warn("closing a session receiver failed", slog.Any("error", err))
	}
}

// serveActive receives and processes the session's messages one at a time, in the order Service Bus
// delivers them, until one of the session's ends: idle, receiving stops, lock lost, a message not settled.
func (r *run) serveActive(sessCtx context.Context, l *sessionLink, log *slog.Logger) {
	for {
		wait := min(r.o.SessionIdleWait, time.Until(r.stopReceive))
		if wait <= 0 || sessCtx.Err() != nil {
			return
		}
		ctx, cancel := context.WithTimeout(sessCtx, wait)
		msgs, err := l.sr.ReceiveMessages(ctx, 1, nil)
		idle := ctx.Err() != nil
		cancel()
		if len(msgs) == 0 {
			switch {
			case sessCtx.Err() != nil:
			case idle:
				log.Debug("no message in the session within the idle wait; releasing it", slog.Duration("wait", wait))
			default:
				// The SDK answered without a message before the wait ended: its link failed (it recovers on the next
				// call by accepting the session again). Release the session instead.
				log.Warn("receiving from the session failed; releasing it", slog.Any("error", err))
			}
			return
		}
		r.received.Add(1)
		if !r.handleSession(sessCtx, l, msgs[0], nil) {
			return
		}
	}
}

// serveDue takes job's messages through the session and processes them in sequence order.
func (r *run) serveDue(sessCtx context.Context, l *sessionLink, job *DueSession, log *slog.Logger) {
	ctx, cancel := context.WithDeadline(sessCtx, r.dueEnd)
	msgs, err := job.Take(ctx, l)
	cancel()
	if err != nil {
		log.Warn("taking due deferred messages of the session failed", slog.Any("error", err))
	}
	slices.SortFunc(msgs, func(a, b DueMessage) int { return int(seq(a.Message) - seq(b.Message)) })
	r.received.Add(int64(len(msgs)))
	r.due.Add(int64(len(msgs)))
	for i, m := range msgs {
		if r.handleSession(sessCtx, l, m.Message, m.Settled) {
			continue
		}
		// The session ended with this message: the others were received under the same lock.
		for _, rest := range msgs[i+1:] {
			mlog := r.msgLog(rest.Message)
			sctx, scancel := r.settleContext()
			if l.lost() {
				r.locksLost.Add(1)
				mlog.Warn("session lock lost; message not settled")
				rest.Settled(sctx, SettledNone)
			} else {
				rest.Settled(sctx, r.abandon(l, mlog, rest.Message))
			}
			scancel()
		}
		return
	}
}

// handleSession processes msg under sessCtx and settles it through l. It reports whether the session may
// go on: false once the session's lock is lost, the run is ending, or msg could not be settled (then the
// session is released so Service Bus can hand msg, still first in line, to the next receiver). settled, if
// not nil, is told what became of msg.
func (r *run) handleSession(sessCtx context.Context, l *sessionLink, msg *azservicebus.ReceivedMessage, settled func(context.Context, Settlement)) bool {
	log := r.msgLog(msg)
	// MaxLockRenewal bounds each message, as in a plain run, not the session's hold: the message is cancelled
	// with ErrMaxRenewal while the session's lock is still held, and abandoned.
	msgCtx, cancel := context.WithTimeoutCause(sessCtx, r.o.MaxLockRenewal,
		fmt.Errorf("%w (%s)", lockrenew.ErrMaxRenewal, r.o.MaxLockRenewal))
	st := r.sessionOutcome(msgCtx, l, msg, log)
	cancel()
	if settled != nil {
		ctx, cancel := r.settleContext()
		settled(ctx, st)
		cancel()
	}
	return st != SettledNone && sessCtx.Err() == nil
}

// sessionOutcome processes msg and settles it, as run.handle does for a plain message.
func (r *run) sessionOutcome(sessCtx context.Context, l *sessionLink, msg *azservicebus.ReceivedMessage, log *msgLog) Settlement {
	// A lost session lock takes every lock token received under it (invariant 1).
	return r.processAndSettle(sessCtx, l, msg, log, nil, nil)
}

// sessionLink is the run's view of one accepted session: sr, with the settlements and renewals on it
// serialized, its LockedUntil cached, and its settlements cancelled once its lock is lost.
//
// Why serialized: azservicebus v1.11.0's SessionReceiver writes its session ID and LockedUntil without a lock
// when it re-creates its link (newLink, after a failure during a call) and when RenewSessionLock succeeds;
// a settlement that recovers the link on the worker goroutine while the renewer renews would race. A
// settlement on a live link takes milliseconds, so the renewer waits little; on a failed link the lock is
// lost anyway. Receiving is not serialized: the run never receives again after a failed receive.
type sessionLink struct {
	sr SessionReceiver
	id string // sr.SessionID(), read at accept

	// sem has one token, held by each settlement, deferred receive, peek and renewal on sr.
	sem chan struct{}
	// until is sr.LockedUntil() as of the accept and of the latest renewal through the link.
	until atomic.Pointer[time.Time]
	// lostCtx is cancelled (markLost) once the hold on the session ends with a lost lock (see watch). It
	// carries the run's values; every call on sr derives its context from it.
	lostCtx  context.Context
	markLost context.CancelFunc
	// sessCtx is the hold's context, set by watch before any call; read once lostCtx is done.
	sessCtx context.Context
}

var (
	_ settler                      = (*sessionLink)(nil)
	_ DueReceiver                  = (*sessionLink)(nil)
	_ lockrenew.SessionLockRenewer = (*sessionLink)(nil)
)

// newSessionLink wraps sr; base carries the values of the calls on it (not their cancellation).
func newSessionLink(sr SessionReceiver, base context.Context) *sessionLink {
	l := &sessionLink{sr: sr, id: sr.SessionID(), sem: make(chan struct{}, 1)}
	l.lostCtx, l.markLost = context.WithCancel(context.WithoutCancel(base))
	u := sr.LockedUntil()
	l.until.Store(&u)
	return l
}

// watch marks the link lost when sessCtx ends with a lost session lock, and returns the function that stops
// watching (joining the watcher).
func (l *sessionLink) watch(sessCtx context.Context) (stop func()) {
	l.sessCtx = sessCtx
	stopWatch := afterFunc(sessCtx, func() {
		if errors.Is(context.Cause(sessCtx), lockrenew.ErrSessionLockLost) {
			l.markLost()
		}
	})
	return func() {
		stopWatch()
		l.markLost() // releases lostCtx's resources; the link is not used any more
	}
}

// afterFunc is context.AfterFunc whose stop also waits for f when f has started, so no goroutine of it
// outlives stop.
func afterFunc(ctx context.Context, f func()) (stop func()) {
	done := make(chan struct{})
	stopAfter := context.AfterFunc(ctx, func() {
		defer close(done)
		f()
	})
	return func() {
		if !stopAfter() {
			<-done
		}
	}
}

// lost reports whether the session's lock was lost.
func (l *sessionLink) lost() bool {
	return l.sessCtx != nil && errors.Is(context.Cause(l.sessCtx), lockrenew.ErrSessionLockLost)
}

// do runs f on sr holding the link's token, with ctx's deadline and cancellation, and also cancelled once the
// session's lock is lost (a settlement that can no longer succeed does not wait out its timeout); the error
// then wraps the lost lock's cause.
func (l *sessionLink) do(ctx context.Context, f func(context.Context) error) error {
	cctx, cancel := context.WithCancel(l.lostCtx)
	if dl, ok := ctx.Deadline(); ok {
		cancel()
		cctx, cancel = context.WithDeadline(l.lostCtx, dl)
	}
	defer cancel()
	defer afterFunc(ctx, cancel)()
	if err := cctx.Err(); err != nil {
		return l.why(err)
	}
	select {
	case l.sem <- struct{}{}:
	case <-cctx.Done():
		return l.why(cctx.Err())
	}
	defer func() { <-l.sem }()
	if err := f(cctx); err != nil {
		return l.why(err)
	}
	return nil
}

// why adds the lost session lock to err when that is what ended the call.
func (l *sessionLink) why(err error) error {
	if l.lost() {
		return fmt.Errorf("%w: %w", context.Cause(l.sessCtx), err)
	}
	return err
}

func (l *sessionLink) CompleteMessage(ctx context.Context, m *azservicebus.ReceivedMessage, o *azservicebus.CompleteMessageOptions) error {
	return l.do(ctx, func(ctx context.Context) error { return l.sr.CompleteMessage(ctx, m, o) })
}

func (l *sessionLink) AbandonMessage(ctx context.Context, m *azservicebus.ReceivedMessage, o *azservicebus.AbandonMessageOptions) error {
	return l.do(ctx, func(ctx context.Context) error { return l.sr.AbandonMessage(ctx, m, o) })
}

func (l *sessionLink) DeadLetterMessage(ctx context.Context, m *azservicebus.ReceivedMessage, o *azservicebus.DeadLetterOptions) error {
	return l.do(ctx, func(ctx context.Context) error { return l.sr.DeadLetterMessage(ctx, m, o) })
}

func (l *sessionLink) DeferMessage(ctx context.Context, m *azservicebus.ReceivedMessage, o *azservicebus.DeferMessageOptions) error {
	return l.do(ctx, func(ctx context.Context) error { return l.sr.DeferMessage(ctx, m, o) })
}

func (l *sessionLink) ReceiveDeferredMessages(ctx context.Context, seqs []int64, o *azservicebus.ReceiveDeferredMessagesOptions) ([]*azservicebus.ReceivedMessage, error) {
	var msgs []*azservicebus.ReceivedMessage
	err := l.do(ctx, func(ctx context.Context) error {
		var err error
		msgs, err = l.sr.ReceiveDeferredMessages(ctx, seqs, o)
		return err
	})
	return msgs, err
}

func (l *sessionLink) PeekMessages(ctx context.Context, n int, o *azservicebus.PeekMessagesOptions) ([]*azservicebus.ReceivedMessage, error) {
	var msgs []*azservicebus.ReceivedMessage
	err := l.do(ctx, func(ctx context.Context) error {
		var err error
		msgs, err = l.sr.PeekMessages(ctx, n, o)
		return err
	})
	return msgs, err
}

// RenewSessionLock renews through sr and caches the new LockedUntil. The renewer calls it from the hold's
// goroutine only.
func (l *sessionLink) RenewSessionLock(ctx context.Context, o *azservicebus.RenewSessionLockOptions) error {
	select {
	case l.sem <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { <-l.sem }()
	if err := l.sr.RenewSessionLock(ctx, o); err != nil {
		return err
	}
	u := l.sr.LockedUntil()
	l.until.Store(&u)
	return nil
}

// LockedUntil is the session lock's expiry as of the accept or the latest renewal.
func (l *sessionLink) LockedUntil() time.Time { return *l.until.Load() }

// SessionID names the session.
func (l *sessionLink) SessionID() string { return l.id }

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}
