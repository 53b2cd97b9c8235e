// Package process implements one run of the timer function: receive a batch, hold every lock, process with
// bounded concurrency, settle each message per its outcome, and stop within the run budget.
//
// A run's life:
//
//	start ──take due deferred──► receive/hold/process/settle ──► stop receiving ──wait for workers──► deadline: cancel + abandon ──► return
//	      (Options.Due, ≤ DueTime)                               (deadline − ReceiveMargin)            (cause ErrBudgetExhausted)
//
// Due deferred messages (a processor's Defer outcome whose not-before time has passed) are received by
// sequence number and processed like any other message; the DueSource keeps its index consistent with how
// each was settled.
//
// Guarantees (DESIGN §4): a message is completed only when its processor returned processor.Complete() while
// its context was alive — never after lock loss (invariant 1) or budget cancel, never for a zero, malformed or
// error-carrying Outcome; every received message is settled or abandoned before Run returns, except those
// whose lock was lost, which cannot be settled any more and are redelivered by Service Bus (invariant 4); Run
// starts goroutines only for the messages it holds, their processors and the renewer, and joins all of them
// before returning, except processors that ignore their context past Options.StuckGrace: those are counted
// as stuck, their messages abandoned, and their late outcomes ignored (invariant 7).
package process

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus"

	"github.com/holdfast-dev/holdfast/internal/config"
	"github.com/holdfast-dev/holdfast/processor"
)

// ErrBudgetExhausted is the context cause of a message still being processed when the run deadline passes.
// Such a message is abandoned.
var ErrBudgetExhausted = errors.New("process: run budget exhausted")

// ErrReceive wraps a failure to receive messages; the run stops receiving, finishes what it holds and fails.
var ErrReceive = errors.New("process: receive failed")

// Receiver is the part of *azservicebus.Receiver a run uses.
//
// ReceiveMessages blocks until at least one message arrives or ctx is done; it must not be called
// concurrently with itself. The run calls it from one goroutine only, with a context bounded by the
// no-message wait and the receive stop time. The settlement and renewal methods are called concurrently
// for different messages; each blocks until the service answers or ctx is done, and the SDK retries
// transient failures internally with the client's RetryOptions — the run does not retry settlement.
type Receiver interface {
	ReceiveMessages(ctx context.Context, maxMessages int, options *azservicebus.ReceiveMessagesOptions) ([]*azservicebus.ReceivedMessage, error)
	CompleteMessage(ctx context.Context, msg *azservicebus.ReceivedMessage, options *azservicebus.CompleteMessageOptions) error
	AbandonMessage(ctx context.Context, msg *azservicebus.ReceivedMessage, options *azservicebus.AbandonMessageOptions) error
	DeadLetterMessage(ctx context.Context, msg *azservicebus.ReceivedMessage, options *azservicebus.DeadLetterOptions) error
	DeferMessage(ctx context.Context, msg *azservicebus.ReceivedMessage, options *azservicebus.DeferMessageOptions) error
	RenewMessageLock(ctx context.Context, msg *azservicebus.ReceivedMessage, options *azservicebus.RenewMessageLockOptions) error
}

var _ Receiver = (*azservicebus.Receiver)(nil)

// Deferrer records msg in the deferral ledger, then defers it. A nil error means the message is deferred and
// indexed; any error means it was NOT deferred and the run abandons it.
//
// Defer is called concurrently for different messages, with a context bounded by Options.SettleTimeout. It
// must not retry past ctx.
type Deferrer interface {
	Defer(ctx context.Context, s DeferSettler, msg *azservicebus.ReceivedMessage, notBefore time.Time, reason string) error
}

// DeferSettler is what a Deferrer needs to defer a message: the run's receiver.
type DeferSettler interface {
	DeferMessage(ctx context.Context, msg *azservicebus.ReceivedMessage, options *azservicebus.DeferMessageOptions) error
}

// Defaults of Options.
const (
	DefaultBudget        = 4*time.Minute + 30*time.Second // host.json default functionTimeout 5 min − 30 s
	DefaultBatchSize     = 20
	DefaultConcurrency   = 8
	DefaultNoMessageWait = 5 * time.Second
	DefaultSettleTimeout = config.SettleTimeout // the handler's config checks budget + this + config.CloseTimeout ≤ functionTimeout
	DefaultReceiveLinger = 2 * time.Millisecond
	DefaultStuckGrace    = 5 * time.Second
	DefaultDueMax        = 100
	minReceiveMargin     = 2 * time.Second
)

// Options configure a run. A nil *Options, and every zero field, means the default.
type Options struct {
	// Budget is how long the run may take, from the call to Run. At start+Budget every message still being
	// processed is cancelled (cause ErrBudgetExhausted) and abandoned. 0 ⇒ DefaultBudget.
	Budget time.Duration
	// BatchSize bounds one ReceiveMessages call; the run asks for min(BatchSize, free workers). 0 ⇒ 20.
	BatchSize int
	// Concurrency is the number of messages processed at once. A worker is free again as soon as its
	// processor returns; up to Concurrency more messages may then be being settled, so at most 2×Concurrency
	// are held at once. 0 ⇒ 8.
	Concurrency int
	// MaxLockRenewal bounds how long one message's lock is renewed (RunSessions: how long one message is
	// processed under its session's lock; the session itself is held as long as the run works on it). 0 ⇒ Budget.
	MaxLockRenewal time.Duration
	// LockDuration is the entity's lock duration; when set, the renewer judges lock expiry on the service's
	// clock (lockrenew.Options.LockDuration). 0 ⇒ LockedUntil is compared with the local clock.
	LockDuration time.Duration
	// MaxConcurrentRenewals bounds RenewMessageLock calls in flight. 0 ⇒ Concurrency (at least the
	// renewer's own default when Concurrency is smaller).
	MaxConcurrentRenewals int
	// NoMessageWait: a receive that gets nothing for this long ends receiving, so a run over an empty
	// queue finishes quickly. 0 ⇒ 5 s.
	NoMessageWait time.Duration
	// ReceiveLinger: once one worker is free, the receive loop waits up to this long for more workers to
	// free up, so that short work is received in batches rather than one message per round trip. It never
	// delays a receive by more than this. 0 ⇒ 2 ms; negative ⇒ no lingering.
	ReceiveLinger time.Duration
	// ReceiveMargin: receiving stops when less than this remains before the deadline, so that received
	// messages have time to be processed. 0 ⇒ max(2 s, Budget/10).
	ReceiveMargin time.Duration
	// SettleTimeout bounds each settlement call (and Deferrer.Defer), and all settlement, the abandons of
	// stuck processors' messages included, ends by deadline + SettleTimeout. Settlement runs on a context
	// detached from the caller's, so messages are abandoned even when the caller's context is cancelled.
	// 0 ⇒ 15 s (config.SettleTimeout, which the configuration's budget check counts).
	SettleTimeout time.Duration
	// StuckGrace: once a message's context is done (budget, lock lost, maximum renewal, caller), the run
	// waits this long for its processor to return. Then it stops waiting, abandons the message (its lock is
	// still renewed until then), counts it in Summary.Stuck and ignores whatever the processor returns
	// later. It comes out of SettleTimeout, so it is at most SettleTimeout/2. 0 ⇒ min(5 s, SettleTimeout/3).
	StuckGrace time.Duration
	// ReceiveDone, if set, is called once, on the goroutine that called Run, when the run stops receiving
	// (before waiting for the messages in progress). The Service closes its receive link there.
	ReceiveDone func()
	// Deferrer handles defer outcomes; nil ⇒ defer outcomes are abandoned (and logged).
	Deferrer Deferrer
	// Due brings back deferred messages whose not-before time has passed: a run first takes them (as many
	// as workers are free, until DueMax or DueTime) and processes them like received ones, then receives
	// new messages. The run's receiver must implement DueReceiver. nil ⇒ no due phase.
	Due DueSource
	// DueMax bounds the due messages one run takes. 0 ⇒ 100.
	DueMax int
	// DueTime bounds the due phase, from the start of the run (never past the receive stop time).
	// 0 ⇒ Budget/4.
	DueTime time.Duration
	// Logger receives run and per-message events; nil ⇒ discard.
	Logger *slog.Logger

	// MaxSessions (RunSessions only) is how many sessions the run holds at once; each processes its messages
	// one at a time. 0 ⇒ Concurrency.
	MaxSessions int
	// SessionIdleWait (RunSessions only): a session with no message for this long is released, so the run can
	// serve another. 0 ⇒ 1 s.
	SessionIdleWait time.Duration
}

func (o *Options) withDefaults() Options {
	var v Options
	if o != nil {
		v = *o
	}
	if v.Budget <= 0 {
		v.Budget = DefaultBudget
	}
	if v.BatchSize <= 0 {
		v.BatchSize = DefaultBatchSize
	}
	if v.Concurrency <= 0 {
		v.Concurrency = DefaultConcurrency
	}
	if v.MaxLockRenewal <= 0 {
		v.MaxLockRenewal = v.Budget
	}
	if v.MaxSessions <= 0 {
		v.MaxSessions = v.Concurrency
	}
	if v.SessionIdleWait <= 0 {
		v.SessionIdleWait = DefaultSessionIdleWait
	}
	if v.MaxConcurrentRenewals <= 0 {
		v.MaxConcurrentRenewals = max(v.Concurrency, v.MaxSessions, 16)
	}
	if v.NoMessageWait <= 0 {
		v.NoMessageWait = DefaultNoMessageWait
	}
	if v.ReceiveLinger == 0 {
		v.ReceiveLinger = DefaultReceiveLinger
	}
	if v.ReceiveMargin <= 0 {
		v.ReceiveMargin = max(minReceiveMargin, v.Budget/10)
	}
	if v.SettleTimeout <= 0 {
		v.SettleTimeout = DefaultSettleTimeout
	}
	if v.DueMax <= 0 {
		v.DueMax = DefaultDueMax
	}
	if v.DueTime <= 0 {
		v.DueTime = v.Budget / 4
	}
	if v.StuckGrace <= 0 {
		v.StuckGrace = min(DefaultStuckGrace, v.SettleTimeout/3)
	}
	v.StuckGrace = min(v.StuckGrace, v.SettleTimeout/2)
	if v.Logger == nil {
		v.Logger = slog.New(slog.DiscardHandler)
	}
	return v
}

// Summary is the result of one run; its JSON is the invocation's ReturnValue.
type Summary struct {
	Received     int64  `json:"received"`
	Completed    int64  `json:"completed"`
	Abandoned    int64  `json:"abandoned"`
	DeadLettered int64  `json:"deadLettered"`
	Deferred     int64  `json:"deferred"`
	Renewals     uint64 `json:"renewals"`
	LocksLost    int64  `json:"locksLost"`
	// Stuck counts processors that had not returned StuckGrace after their message's context ended. Their
	// messages are also counted as abandoned (or locksLost); their goroutines may still be running.
	Stuck int64 `json:"stuck"`
	// Due counts the deferred messages taken back because their not-before time had passed (they are also
	// counted in Received and in how they were settled).
	Due int64 `json:"due"`
	// Sessions counts the sessions the run accepted (session-enabled entities; 0 otherwise).
	Sessions int64 `json:"sessions,omitempty"`
	// SessionRenewals counts session lock renewals; Renewals includes them.
	SessionRenewals uint64 `json:"sessionRenewals,omitempty"`
	// SessionLocksLost counts sessions whose lock was lost while the run held them. Their messages in progress
	// are counted in LocksLost.
	SessionLocksLost int64 `json:"sessionLocksLost,omitempty"`
	DurationMs       int64 `json:"durationMs"`
}

// String is the one-line summary used in logs.
func (s Summary) String() string {
	if s.Sessions > 0 || s.SessionLocksLost > 0 {
		return fmt.Sprintf("run: received=%d completed=%d abandoned=%d deadLettered=%d deferred=%d renewals=%d locksLost=%d stuck=%d due=%d sessions=%d sessionRenewals=%d sessionLocksLost=%d durationMs=%d",
			s.Received, s.Completed, s.Abandoned, s.DeadLettered, s.Deferred, s.Renewals, s.LocksLost, s.Stuck, s.Due, s.Sessions, s.SessionRenewals, s.SessionLocksLost, s.DurationMs)
	}
	return fmt.Sprintf("run: received=%d completed=%d abandoned=%d deadLettered=%d deferred=%d renewals=%d locksLost=%d stuck=%d due=%d durationMs=%d",
		s.Received, s.Completed, s.Abandoned, s.DeadLettered, s.Deferred, s.Renewals, s.LocksLost, s.Stuck, s.Due, s.DurationMs)
}

// Run performs one run over rcv with p. It blocks until every received message is settled, abandoned or
// known lost: at most Budget + SettleTimeout. Every goroutine it started has returned by then,
// except the processors counted in Summary.Stuck (see Options.StuckGrace), whose late outcomes are ignored.
//
// Cancelling ctx stops receiving and cancels processing (the messages are abandoned). The error is non-nil
// only when receiving failed (it wraps ErrReceive and the SDK error); the summary is valid either way.
func Run(ctx context.Context, rcv Receiver, p processor.Processor, opts *Options) (Summary, error) {
	if rcv == nil || p == nil {
		return Summary{}, errors.New("process: Run needs a receiver and a processor")
	}
	o := opts.withDefaults()
	r := newRun(ctx, rcv, p, o)
	return r.execute()
}
