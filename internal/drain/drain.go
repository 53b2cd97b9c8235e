// Package drain lists, resubmits, deletes and dead-letters the deferred messages indexed by the deferral
// ledger, and runs reconciliation on demand (DESIGN §2 "Drain → resubmit", issue 5).
//
// A Service works page by page. For each page it leases the ledger rows (ETag-conditional, so two drains
// never act on the same row), receives the deferred messages by sequence number in one call, acts on them and
// only then deletes the rows (invariant 3):
//
//   - resubmit: send a copy of each message (batched), then complete each original;
//   - delete: complete each original;
//   - deadletter: dead-letter each original with the caller's reason.
//
// A resubmitted copy's MessageID is a pure function of (entity, original sequence number) (invariant 5), so a
// drain that dies after sending and before completing is repeated safely: with duplicate detection on the
// entity, the second send of the same copy is dropped by Service Bus. Leases expire (Options.LeaseDuration), so
// the rows of a drain that died become leasable again.
//
// Resubmitted copies are sent to the entity the messages came from. For a subscription
// (`topic/Subscriptions/sub`) that is the topic, so every subscription whose filter matches receives the copy,
// not only the one it was deferred on.
package drain

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus"

	"github.com/holdfast-dev/holdfast/internal/ledger"
)

// Defaults and limits.
const (
	// DefaultBudget bounds one call: no page starts after it (the Functions HTTP limit is 230 s).
	DefaultBudget = 200 * time.Second
	// DefaultPageSize is how many ledger rows one page leases and receives at once.
	DefaultPageSize = 100
	// MaxPageSize bounds Options.PageSize (and the receive-by-sequence-number batch).
	MaxPageSize = 250
	// DefaultMaxCount is how many rows one call acts on at most, unless the request asks for fewer.
	DefaultMaxCount = MaxSequenceNumbers
	// DefaultConcurrency is how many ledger requests or settlements of a page run at once.
	DefaultConcurrency = 16
	// DefaultReconcilePages bounds one reconcile call (peek pages of 250 messages).
	DefaultReconcilePages = 20
	// DefaultSettleTimeout bounds each Service Bus and ledger call of a page once its rows are leased.
	DefaultSettleTimeout = 15 * time.Second
)

// Lineage properties set on every resubmitted copy. PropResubmitCount and PropDeferReason are the names the
// ledger writes and reads when a copy is deferred again.
const (
	PropOriginalMessageID      = "holdfast-original-message-id"
	PropOriginalSequenceNumber = "holdfast-original-sequence-number"
	PropResubmitCount          = ledger.PropResubmitCount
	PropDeferReason            = ledger.PropDeferReason
)

// Receiver reads and settles the deferred messages of the ledger's entity. *azservicebus.Receiver (peek-lock)
// implements it. Every method blocks until the service answers or ctx ends; the SDK retries transient
// failures inside the call, the drain never retries. Calls are safe to make concurrently.
//
//   - ReceiveDeferredMessages locks the deferred messages with the given sequence numbers. If one of them is not
//     a deferred message of the entity the whole call fails with an *azservicebus.Error of CodeNotFound.
//   - CompleteMessage and DeadLetterMessage settle one received message (deferred messages settle on the
//     management link: one operation each).
//   - PeekMessages browses without locking (used to tell a missing message from a locked one, and by
//     reconciliation).
type Receiver interface {
	ReceiveDeferredMessages(ctx context.Context, sequenceNumbers []int64, options *azservicebus.ReceiveDeferredMessagesOptions) ([]*azservicebus.ReceivedMessage, error)
	CompleteMessage(ctx context.Context, message *azservicebus.ReceivedMessage, options *azservicebus.CompleteMessageOptions) error
	DeadLetterMessage(ctx context.Context, message *azservicebus.ReceivedMessage, options *azservicebus.DeadLetterOptions) error
	PeekMessages(ctx context.Context, maxMessageCount int, options *azservicebus.PeekMessagesOptions) ([]*azservicebus.ReceivedMessage, error)
}

// Sender sends resubmitted copies to SendTarget(entity). *azservicebus.Sender implements it. SendMessageBatch
// is all-or-nothing, blocks until the service accepted the batch or ctx ends, and retries transient failures
// inside the call. Safe for concurrent use.
type Sender interface {
	NewMessageBatch(ctx context.Context, options *azservicebus.MessageBatchOptions) (*azservicebus.MessageBatch, error)
	SendMessageBatch(ctx context.Context, batch *azservicebus.MessageBatch, options *azservicebus.SendMessageBatchOptions) error
}

var (
	_ Receiver = (*azservicebus.Receiver)(nil)
	_ Sender   = (*azservicebus.Sender)(nil)
)

// SendTarget is the entity copies of messages deferred on entity are sent to: the queue itself, or the topic
// of a `topic/Subscriptions/sub` path.
func SendTarget(entity string) string {
	if i := strings.Index(strings.ToLower(entity), "/subscriptions/"); i > 0 {
		return entity[:i]
	}
	return entity
}

// Options configures a Service. Ledger, Receiver and Sender are required; zero values of the others mean the
// defaults.
type Options struct {
	// Ledger indexes the entity's deferred messages.
	Ledger *ledger.Ledger
	// Receiver is a peek-lock receiver on the ledger's entity. Not used (nil is fine) when Sessions is set.
	Receiver Receiver
	// Sessions, set for a session-enabled entity, gives a receiver that holds session sessionID — the only
	// way to receive, settle or peek that session's deferred messages — and the function that releases it. A
	// session another receiver holds (a run is processing it) gives an error wrapping ledger.ErrSessionBusy.
	// Every call blocks until the session is accepted or ctx ends.
	Sessions func(ctx context.Context, sessionID string) (Receiver, func(), error)
	// ListSessions, with Sessions, lists the entity's sessions that Service Bus reports (those with an active
	// message or a state; azservicebus Client.NewListSessionsForQueuePager), for reconciliation.
	ListSessions func(ctx context.Context) ([]string, error)
	// Sender sends to SendTarget(Ledger.Entity()). Only resubmit uses it.
	Sender Sender
	// Budget: no page starts once a call has run this long. Zero means DefaultBudget.
	Budget time.Duration
	// PageSize is the number of rows leased and received together, at most MaxPageSize. Zero means
	// DefaultPageSize.
	PageSize int
	// MaxCount is how many rows one call acts on at most. Zero means DefaultMaxCount.
	MaxCount int
	// LeaseDuration is how long a drain holds a row; a drain that died releases its rows when it runs out.
	// Zero means twice Budget.
	LeaseDuration time.Duration
	// Concurrency bounds the ledger requests and settlements of a page in flight. Zero means
	// DefaultConcurrency.
	Concurrency int
	// SettleTimeout bounds each call of a page once it has started (lease, receive, send, complete or
	// dead-letter, row delete or release), and all of a call's pages end by Budget + SettleTimeout. A started
	// page runs on a context detached from the caller's, so a caller that hangs up (or the platform's 230 s
	// cut) never leaves copies sent with their originals uncompleted and their rows leased. Zero means
	// DefaultSettleTimeout.
	SettleTimeout time.Duration
	// ReconcileLockDuration is the entity's lock duration, passed to ledger.Reconcile. Zero means its default.
	ReconcileLockDuration time.Duration
	// ReconcilePages bounds one reconcile call. Zero means DefaultReconcilePages.
	ReconcilePages int
	// Logger receives one line per call and warnings; nil discards them.
	Logger *slog.Logger
	// Now is the clock used for leases, dueOnly and budgets; nil means time.Now.
	Now func() time.Time
}

// Service drains one entity's deferred messages. It is immutable after New and safe for concurrent use:
// concurrent calls coordinate through ledger leases.
type Service struct {
	ledger   *ledger.Ledger
	recv     Receiver
	send     Sender
	entity   string
	o        Options
	log      *slog.Logger
	now      func() time.Time
	idPrefix string // MessageID prefix of the entity's copies

	// crash, when set (tests only), is called at each crashPoint; a non-nil result makes the page stop right
	// there and the call return it, as if the process had died.
	crash func(crashPoint) error
}

// crashPoint names a place in a page where tests simulate the process dying.
type crashPoint int

const (
	crashAfterSend    crashPoint = iota + 1 // copies sent; originals not completed
	crashAfterSettle                        // originals settled; rows not deleted
	crashAfterReceive                       // originals received (locked); nothing sent
)

// New returns a Service. It does no I/O.
func New(opts *Options) (*Service, error) {
	if opts == nil || opts.Ledger == nil || (opts.Receiver == nil && opts.Sessions == nil) || opts.Sender == nil {
		return nil, errors.New("drain: Options with a Ledger, a Receiver (or Sessions) and a Sender are required")
	}
	if opts.Sessions != nil && opts.ListSessions == nil {
		return nil, errors.New("drain: Options.Sessions needs Options.ListSessions")
	}
	o := *opts
	if o.Budget <= 0 {
		o.Budget = DefaultBudget
	}
	if o.PageSize <= 0 {
		o.PageSize = DefaultPageSize
	}
	if o.PageSize > MaxPageSize {
		return nil, fmt.Errorf("drain: PageSize %d exceeds %d", o.PageSize, MaxPageSize)
	}
	if o.MaxCount <= 0 {
		o.MaxCount = DefaultMaxCount
	}
	if o.LeaseDuration <= 0 {
		o.LeaseDuration = 2 * o.Budget
	}
	if o.Concurrency <= 0 {
		o.Concurrency = DefaultConcurrency
	}
	if o.ReconcilePages <= 0 {
		o.ReconcilePages = DefaultReconcilePages
	}
	if o.SettleTimeout <= 0 {
		o.SettleTimeout = DefaultSettleTimeout
	}
	s := &Service{
		ledger:   o.Ledger,
		recv:     o.Receiver,
		send:     o.Sender,
		entity:   o.Ledger.Entity(),
		o:        o,
		log:      o.Logger,
		now:      o.Now,
		idPrefix: messageIDPrefix(o.Ledger.Entity()),
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.now == nil {
		s.now = time.Now
	}
	return s, nil
}

// Entity returns the entity path the service drains.
func (s *Service) Entity() string { return s.entity }

func (s *Service) crashAt(p crashPoint) error {
	if s.crash == nil {
		return nil
	}
	return s.crash(p)
}

// NewClients opens, on client, the peek-lock receiver and the sender a Service of entity (a queue, or
// `topic/Subscriptions/sub`) needs. The SDK does no network I/O until first use. The caller closes both.
func NewClients(client *azservicebus.Client, entity string) (*azservicebus.Receiver, *azservicebus.Sender, error) {
	var (
		recv *azservicebus.Receiver
		err  error
	)
	if topic := SendTarget(entity); topic != entity {
		recv, err = client.NewReceiverForSubscription(topic, entity[len(topic)+len("/Subscriptions/"):], nil)
	} else {
		recv, err = client.NewReceiverForQueue(entity, nil)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("drain: receiver for %s: %w", entity, err)
	}
	send, err := client.NewSender(SendTarget(entity), nil)
	if err != nil {
		_ = recv.Close(context.Background())
		return nil, nil, fmt.Errorf("drain: sender for %s: %w", SendTarget(entity), err)
	}
	return recv, send, nil
}
