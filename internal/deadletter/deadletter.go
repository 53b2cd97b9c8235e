// Package deadletter lists, resubmits and deletes the messages in the dead-letter queue (DLQ) of the entity
// holdfast processes — where the run's dead-letters and the broker's (MaxDeliveryCountExceeded,
// TTLExpiredException) end up. It is the DLQ twin of package drain and takes the same request shapes.
//
// # Selecting dead-lettered messages by sequence number
//
// Service Bus can receive a message by its sequence number only when the message is deferred
// ("receive(sequenceNumber)" is the deferral API, Azure docs message-deferral); an active message in the DLQ
// is reached only by receiving it, and a peek-lock receiver gets the available messages in sequence order
// (Azure docs service-bus-queues-topics-subscriptions: FIFO delivery to competing consumers). So a call
// receives from the head of the DLQ in PeekLock mode, page by page, and
//
//   - acts on the messages it selects (resubmit: send a copy, then complete the original; delete: complete);
//   - keeps every other message it received locked until the call ends and then abandons it. Abandoning a
//     message at once would make it the head again and the next receive would return it, so a scan could
//     never get past it. The DLQ fully supports peek-lock, does not observe time-to-live, and a message
//     cannot be dead-lettered out of it (Azure docs service-bus-dead-letter-queues), so the abandon leaves the
//     message where it was; Service Bus does not even raise its delivery count there (Microsoft's
//     TestMessageSettlementUsingReceiver: abandoned in the DLQ, received again with the same count).
//
// Holding costs lock time and memory, so a call holds at most Options.MaxHeld messages (and MaxHeldBytes of
// body), each for at most half of its lock (LockedUntil read against the local clock, as package lockrenew
// does); selected messages beyond that window are reported failed with the reason. Deferring the
// selected messages instead and receiving them by sequence number later would free the scan from lock
// time but cost two more operations per message. For {"all":true} nothing is held: every received message is
// acted on, so a drain costs one receive and one send per page plus one complete per message.
//
// # Idempotence
//
// A copy's MessageID is MessageID(entity, DLQ sequence number): the deferred drain's function of the DLQ's
// path, so the two drains never share an ID even though a dead-lettered message keeps its sequence number.
// Send-then-complete, with duplicate detection on the entity, drops the second copy when a call that sent
// but did not complete is repeated. The lineage properties of package drain are set, plus the dead-letter
// reason and description; the copy does not carry the DeadLetterReason and DeadLetterErrorDescription
// application properties Service Bus put on the original.
package deadletter

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus"

	"github.com/holdfast-dev/holdfast/internal/browse"
	"github.com/holdfast-dev/holdfast/internal/drain"
	"github.com/holdfast-dev/holdfast/internal/ledger"
)

// Defaults and limits.
const (
	// DefaultPageSize is how many messages one receive asks for.
	DefaultPageSize = 250
	// MaxPageSize bounds Options.PageSize and a list page (one peek).
	MaxPageSize = 250
	// DefaultMaxHeld bounds the messages a call keeps locked without acting on them.
	DefaultMaxHeld = 5000
	// DefaultMaxHeldBytes bounds the bodies of those messages.
	DefaultMaxHeldBytes = 64 << 20
	// DefaultReceiveWait is how long a receive waits for messages a peek showed to be there.
	DefaultReceiveWait = 5 * time.Second
	// settleTimeout bounds the settlements and abandons a call makes on a context detached from the request.
	settleTimeout = 60 * time.Second
)

// Lineage properties set on every copy, beside drain.PropOriginalMessageID, PropOriginalSequenceNumber (the
// DLQ sequence number) and PropResubmitCount.
const (
	PropDeadLetterReason      = "holdfast-dead-letter-reason"
	PropDeadLetterDescription = "holdfast-dead-letter-description"
)

// Application properties Service Bus sets on dead-lettered messages (Azure docs service-bus-dead-letter-queues).
const (
	sbDeadLetterReason      = "DeadLetterReason"
	sbDeadLetterDescription = "DeadLetterErrorDescription"
)

// SharedReceiver is a receiver on the DLQ that never receives, shared by concurrent calls:
// *azservicebus.Receiver opened with SubQueueDeadLetter implements it. It lists and peeks, and abandons by
// lock token (azservicebus ≥ 1.10 settles a ReceivedMessage that holds only a LockToken over the $management
// link; non-session entities), which lets a call close its receive link before giving its held messages back:
// a receive link keeps the credit of its last receive, so messages abandoned while it is open would be pushed
// back onto it, and one in flight when it closes would stay locked until its lock expired. Methods block until
// the service answers or ctx ends and are safe for concurrent use.
type SharedReceiver interface {
	browse.Peeker
	AbandonMessage(ctx context.Context, m *azservicebus.ReceivedMessage, options *azservicebus.AbandonMessageOptions) error
}

// Receiver is a peek-lock receiver on the DLQ, owned by one call. *azservicebus.Receiver opened with
// SubQueueDeadLetter implements it. Every method blocks until the service answers or ctx ends; the SDK retries
// transient failures inside the call.
//
//   - ReceiveMessages locks and returns up to n available messages, waiting until at least one arrives or ctx
//     ends (then it returns ctx's error and no messages). Not safe for concurrent calls.
//   - CompleteMessage settles a received message: one operation, safe concurrently.
//   - PeekMessages browses without locking.
//   - Close detaches the receiver; messages it holds stay locked until abandoned or their lock expires.
type Receiver interface {
	browse.Peeker
	ReceiveMessages(ctx context.Context, n int, options *azservicebus.ReceiveMessagesOptions) ([]*azservicebus.ReceivedMessage, error)
	CompleteMessage(ctx context.Context, m *azservicebus.ReceivedMessage, options *azservicebus.CompleteMessageOptions) error
	Close(ctx context.Context) error
}

var (
	_ Receiver       = (*azservicebus.Receiver)(nil)
	_ SharedReceiver = (*azservicebus.Receiver)(nil)
)

// Path returns the path of entity's dead-letter queue.
func Path(entity string) string { return entity + "/$DeadLetterQueue" }

// MessageID returns the MessageID of the copy of the message with sequence number seq in entity's DLQ: a pure
// function of its arguments, distinct from every drain.MessageID(entity, …).
func MessageID(entity string, seq int64) string { return drain.MessageID(Path(entity), seq) }

// Options configures a Service. Entity, Shared, NewReceiver and Sender are required; zero values of the
// others mean the defaults.
type Options struct {
	// Entity is the queue or `topic/Subscriptions/sub` whose DLQ is drained.
	Entity string
	// Shared lists, peeks and gives held messages back (see SharedReceiver).
	Shared SharedReceiver
	// NewReceiver opens a peek-lock receiver on the DLQ for one resubmit or delete call, which closes it.
	NewReceiver func() (Receiver, error)
	// Sender sends to drain.SendTarget(Entity).
	Sender drain.Sender
	// Budget: no page starts once a call has run this long. Zero means drain.DefaultBudget.
	Budget time.Duration
	// PageSize is how many messages one receive asks for, at most MaxPageSize. Zero means DefaultPageSize.
	PageSize int
	// MaxCount is how many messages one call decides on at most. Zero means drain.DefaultMaxCount.
	MaxCount int
	// Concurrency bounds the settlements and peeks in flight. Zero means drain.DefaultConcurrency.
	Concurrency int
	// MaxHeld and MaxHeldBytes bound the messages (and their body bytes) a call keeps locked without acting
	// on them. Zero means DefaultMaxHeld and DefaultMaxHeldBytes.
	MaxHeld, MaxHeldBytes int
	// ReceiveWait bounds a receive that expects messages. Zero means DefaultReceiveWait.
	ReceiveWait time.Duration
	// Logger receives one line per call and warnings; nil discards them.
	Logger *slog.Logger
	// Now is the clock for budgets and lock windows; nil means time.Now.
	Now func() time.Time
}

// Service drains one entity's DLQ. Immutable after New and safe for concurrent use: each resubmit or delete
// call has its own receiver, and two calls never lock the same message.
type Service struct {
	o   Options
	log *slog.Logger
	now func() time.Time
}

// New returns a Service. It does no I/O.
func New(opts *Options) (*Service, error) {
	if opts == nil || opts.Entity == "" || opts.Shared == nil || opts.NewReceiver == nil || opts.Sender == nil {
		return nil, errors.New("deadletter: Options with an Entity, Shared, NewReceiver and a Sender are required")
	}
	o := *opts
	if o.PageSize > MaxPageSize {
		return nil, fmt.Errorf("deadletter: PageSize %d exceeds %d", o.PageSize, MaxPageSize)
	}
	o.Budget = orDefault(o.Budget, drain.DefaultBudget)
	o.PageSize = orDefault(o.PageSize, DefaultPageSize)
	o.MaxCount = orDefault(o.MaxCount, drain.DefaultMaxCount)
	o.Concurrency = orDefault(o.Concurrency, drain.DefaultConcurrency)
	o.MaxHeld = orDefault(o.MaxHeld, DefaultMaxHeld)
	o.MaxHeldBytes = orDefault(o.MaxHeldBytes, DefaultMaxHeldBytes)
	o.ReceiveWait = orDefault(o.ReceiveWait, DefaultReceiveWait)
	s := &Service{o: o, log: o.Logger, now: o.Now}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.now == nil {
		s.now = time.Now
	}
	return s, nil
}

func orDefault[T int | time.Duration](v, def T) T {
	if v <= 0 {
		return def
	}
	return v
}

// Entity returns the entity whose DLQ the service drains.
func (s *Service) Entity() string { return s.o.Entity }

// Item is one DLQ message as the list API shows it.
type Item struct {
	SequenceNumber             int64       `json:"sequenceNumber"`
	MessageID                  string      `json:"messageId"`
	State                      string      `json:"state"`
	DeadLetterReason           string      `json:"deadLetterReason"`
	DeadLetterErrorDescription string      `json:"deadLetterErrorDescription"`
	DeadLetterSource           string      `json:"deadLetterSource,omitempty"`
	EnqueuedAt                 *time.Time  `json:"enqueuedAt,omitempty"`
	DeliveryCount              uint32      `json:"deliveryCount"`
	ResubmitCount              int64       `json:"resubmitCount"`
	Body                       browse.Body `json:"body"`
}

// Page is the answer of a list call. Continuation is "" after the last page.
type Page struct {
	Entity       string `json:"entity"`
	Items        []Item `json:"items"`
	Continuation string `json:"continuation"`
}

// List peeks up to top messages (≤ 0 means DefaultPageSize, at most MaxPageSize) from the sequence number
// continuation names ("" = the first). One peek; nothing is locked.
func (s *Service) List(ctx context.Context, top int, continuation string) (Page, error) {
	if top <= 0 {
		top = DefaultPageSize
	}
	if top > MaxPageSize {
		return Page{}, drain.NewRequestError(http.StatusBadRequest, `"top" must be from 1 to %d, got %d`, MaxPageSize, top)
	}
	from := int64(0)
	if continuation != "" {
		n, err := browse.ParseSequenceNumber(continuation)
		if err != nil {
			return Page{}, drain.NewRequestError(http.StatusBadRequest, `"continuation" %.40q is not a token this API issued`, continuation)
		}
		from = n
	}
	msgs, err := s.o.Shared.PeekMessages(ctx, top, &azservicebus.PeekMessagesOptions{FromSequenceNumber: &from})
	if err != nil {
		return Page{}, fmt.Errorf("deadletter: list: %w", err)
	}
	p := Page{Entity: s.o.Entity, Items: make([]Item, 0, len(msgs))}
	for _, m := range msgs {
		if m.SequenceNumber == nil {
			continue
		}
		v := browse.MessageOf(m, browse.PreviewBytes)
		p.Items = append(p.Items, Item{
			SequenceNumber:             v.SequenceNumber,
			MessageID:                  v.MessageID,
			State:                      v.State,
			DeadLetterReason:           v.DeadLetterReason,
			DeadLetterErrorDescription: v.DeadLetterErrorDescription,
			DeadLetterSource:           v.DeadLetterSource,
			EnqueuedAt:                 v.EnqueuedAt,
			DeliveryCount:              v.DeliveryCount,
			ResubmitCount:              ledger.ResubmitCount(m.ApplicationProperties),
			Body:                       v.Body,
		})
	}
	if len(msgs) == top && len(p.Items) > 0 {
		p.Continuation = fmt.Sprint(p.Items[len(p.Items)-1].SequenceNumber + 1)
	}
	return p, nil
}

// copyOf builds the copy of the dead-lettered message m (see the package doc).
func (s *Service) copyOf(m *azservicebus.ReceivedMessage) (*azservicebus.Message, error) {
	reason, _ := m.ApplicationProperties[sbDeadLetterReason].(string)
	desc, _ := m.ApplicationProperties[sbDeadLetterDescription].(string)
	return drain.NewCopy(m, MessageID(s.o.Entity, *m.SequenceNumber), map[string]any{
		drain.PropOriginalMessageID:      m.MessageID,
		drain.PropOriginalSequenceNumber: *m.SequenceNumber,
		drain.PropResubmitCount:          ledger.ResubmitCount(m.ApplicationProperties) + 1,
		PropDeadLetterReason:             reason,
		PropDeadLetterDescription:        desc,
	}, sbDeadLetterReason, sbDeadLetterDescription, ledger.PropNotBefore)
}

// OpenReceiver opens, on client, a peek-lock receiver on the DLQ of entity (a queue, or
// `topic/Subscriptions/sub`). The SDK does no network I/O until first use. The caller closes it.
func OpenReceiver(client *azservicebus.Client, entity string) (*azservicebus.Receiver, error) {
	o := &azservicebus.ReceiverOptions{SubQueue: azservicebus.SubQueueDeadLetter}
	var (
		r   *azservicebus.Receiver
		err error
	)
	if topic := drain.SendTarget(entity); topic != entity {
		r, err = client.NewReceiverForSubscription(topic, entity[len(topic)+len("/Subscriptions/"):], o)
	} else {
		r, err = client.NewReceiverForQueue(entity, o)
	}
	if err != nil {
		return nil, fmt.Errorf("deadletter: receiver for %s: %w", Path(entity), err)
	}
	return r, nil
}
