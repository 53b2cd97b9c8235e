// Package broker holds the emulator's entity state: queues, their dead-letter subqueues,
// messages, locks and settlement. It knows nothing about AMQP framing: the connection engine
// hands it go-amqp *amqp.Message values (whose MarshalBinary/UnmarshalBinary are the
// message-section codec) and turns its results into transfers and dispositions.
//
// Every method of Broker and Entity is safe for concurrent use and never blocks on I/O. Each
// Entity has one mutex guarding its messages and locks; the Broker's mutex guards only the
// entity table. When a message moves to a dead-letter queue the parent's lock is held while
// the subqueue's lock is taken (never the reverse).
//
// Semantics follow Azure Service Bus (see the package tests for each transition): sequence
// numbers start at 1 per entity and strictly increase; available messages are delivered in
// sequence order; PeekLock locks expire after LockDuration (delivery count + 1, dead-lettered
// with reason MaxDeliveryCountExceeded when the count reaches MaxDeliveryCount); abandon
// counts a delivery, release does not; deferred messages are reachable only by sequence
// number. Deferring does not count a delivery (Azure counts the delivery that ended in a
// defer, so there MaxDeliveryCount 1 dead-letters on defer; here it does not). Dead-lettered messages keep their sequence number and enqueued time, start again at
// delivery count 0, and carry the message annotation x-opt-deadletter-source.
//
// Not implemented yet (the seams are in place): topics and subscriptions, scheduled messages
// (a future x-opt-scheduled-enqueue-time is stored but the message is available at once),
// duplicate detection, TTL expiry, sessions, auto-forwarding and fault injection.
package broker

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/Azure/go-amqp"
)

// Sentinel errors. Methods wrap them with detail; test with errors.Is.
var (
	ErrEntityNotFound  = errors.New("messaging entity not found")
	ErrEntityExists    = errors.New("messaging entity already exists")
	ErrLockLost        = errors.New("message lock lost")
	ErrMessageNotFound = errors.New("message not found")
	ErrClosed          = errors.New("broker closed")
	ErrSendToSubqueue  = errors.New("cannot send to a subqueue")
	// ErrInvalidMessage reports a message Send cannot accept (nil, or a malformed broker
	// annotation).
	ErrInvalidMessage = errors.New("invalid message")
)

// Subqueue and path suffixes, compared case-insensitively.
const (
	DeadLetterQueueSuffix = "/$DeadLetterQueue"
	ManagementSuffix      = "/$management"
)

// Options configure New. A nil *Options means all defaults.
type Options struct {
	Clock  Clock        // nil ⇒ RealClock()
	Logger *slog.Logger // nil ⇒ discard
}

// Broker is one emulated namespace.
type Broker struct {
	clock Clock
	log   *slog.Logger

	mu       sync.RWMutex       // guards the fields below
	queues   map[string]*Entity // lower-cased queue name → queue entity
	closed   bool
	topicCfg []TopicConfig // parsed but not built yet
}

// New builds a broker holding the queues of cfg (nil ⇒ an empty namespace). Topics in cfg are
// validated by ParseConfig but not built yet: New logs a warning for each and skips it.
func New(cfg *Config, opts *Options) (*Broker, error) {
	if opts == nil {
		opts = &Options{}
	}
	b := &Broker{clock: opts.Clock, log: opts.Logger, queues: make(map[string]*Entity)}
	if b.clock == nil {
		b.clock = RealClock()
	}
	if b.log == nil {
		b.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if cfg == nil {
		return b, nil
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("broker: %w", err)
	}
	for _, ns := range cfg.UserConfig.Namespaces {
		for _, q := range ns.Queues {
			if err := b.CreateQueue(q.Name, q.Properties); err != nil {
				b.Close()
				return nil, err
			}
		}
		for _, t := range ns.Topics {
			b.log.Warn("topics are not supported yet; skipping", "namespace", ns.Name, "topic", t.Name,
				"subscriptions", len(t.Subscriptions))
			b.topicCfg = append(b.topicCfg, t)
		}
	}
	return b, nil
}

// Close stops every lock timer and wakes every Available waiter. Afterwards all methods
// return ErrClosed (Receive and Peek return nothing). Close is idempotent.
func (b *Broker) Close() {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return
	}
	b.closed = true
	queues := b.queues
	b.queues = map[string]*Entity{}
	b.mu.Unlock()
	for _, q := range queues {
		q.shutdown(ErrClosed)
	}
}

// CreateQueue adds a queue (and its dead-letter subqueue). The name is checked with
// ValidateEntityName and the properties against the Config limits; zero-valued properties
// are not defaulted (start from DefaultQueueProperties).
func (b *Broker) CreateQueue(name string, p QueueProperties) error {
	if err := ValidateEntityName(name); err != nil {
		return fmt.Errorf("broker: create queue: %w", err)
	}
	if err := p.validate("Properties"); err != nil {
		return fmt.Errorf("broker: create queue %q: %w", name, err)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return ErrClosed
	}
	key := strings.ToLower(name)
	if prev, ok := b.queues[key]; ok {
		return fmt.Errorf("broker: create queue %q: %w (as %q)", name, ErrEntityExists, prev.path)
	}
	q := newEntity(name, KindQueue, p, b.clock, b.log)
	q.dlq = newEntity(name+DeadLetterQueueSuffix, KindDeadLetterQueue, p, b.clock, b.log)
	b.queues[key] = q
	b.log.Info("queue created", "queue", name, "lockDuration", p.LockDuration, "maxDeliveryCount", p.MaxDeliveryCount)
	return nil
}

// DeleteQueue removes a queue and its dead-letter subqueue with their messages. Outstanding
// *Entity values of the queue answer ErrEntityNotFound afterwards.
func (b *Broker) DeleteQueue(name string) error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return ErrClosed
	}
	key := strings.ToLower(name)
	q, ok := b.queues[key]
	if ok {
		delete(b.queues, key)
	}
	b.mu.Unlock()
	if !ok {
		return fmt.Errorf("broker: delete queue %q: %w", name, ErrEntityNotFound)
	}
	q.shutdown(fmt.Errorf("queue %q was deleted: %w", q.path, ErrEntityNotFound))
	return nil
}

// Queues returns the names of the queues, as created.
func (b *Broker) Queues() []string {
	b.mu.RLock()
	defer b.mu.RUnlock()
	names := make([]string, 0, len(b.queues))
	for _, q := range b.queues {
		names = append(names, q.path)
	}
	return names
}

// Entity resolves a receivable path, case-insensitively: "<queue>" or
// "<queue>/$DeadLetterQueue" (later "<topic>/Subscriptions/<sub>[/$DeadLetterQueue]").
func (b *Broker) Entity(path string) (*Entity, error) {
	b.mu.RLock()
	defer b.mu.RUnlock()
	if b.closed {
		return nil, ErrClosed
	}
	name, dlq := cutSuffixFold(path, DeadLetterQueueSuffix)
	q, ok := b.queues[strings.ToLower(name)]
	if !ok {
		return nil, fmt.Errorf("broker: %q: %w", path, ErrEntityNotFound)
	}
	if dlq {
		return q.dlq, nil
	}
	return q, nil
}

// Send enqueues msgs to a queue, all or nothing: every message is checked first. It assigns
// each a sequence number (x-opt-sequence-number), an enqueued time (x-opt-enqueued-time,
// UTC, millisecond precision) and a UUID string message-id when it has none. The broker owns
// the messages afterwards; callers must not touch them again.
func (b *Broker) Send(path string, msgs ...*amqp.Message) error {
	e, err := b.Entity(path)
	if err != nil {
		return err
	}
	if e.kind != KindQueue {
		return fmt.Errorf("broker: send to %q: %w", path, ErrSendToSubqueue)
	}
	return e.enqueue(msgs)
}

// Known reports whether a CBS audience path names an entity: "<entity>",
// "<entity>/$management", or any receivable path (case-insensitive).
func (b *Broker) Known(path string) bool {
	path = strings.Trim(path, "/")
	path, _ = cutSuffixFold(path, ManagementSuffix)
	_, err := b.Entity(path)
	return err == nil
}

// cutSuffixFold removes suffix from s when s ends with it, ignoring case.
func cutSuffixFold(s, suffix string) (string, bool) {
	if len(s) >= len(suffix) && strings.EqualFold(s[len(s)-len(suffix):], suffix) {
		return s[:len(s)-len(suffix)], true
	}
	return s, false
}

// now returns the clock's time in UTC truncated to milliseconds, the precision of AMQP
// timestamps, so what the broker stores is exactly what clients see.
func now(c Clock) time.Time { return c.Now().UTC().Truncate(time.Millisecond) }
