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
// number. Deferring counts the delivery that ended in the defer, as Azure does (with
// MaxDeliveryCount 1 a defer dead-letters the message). Dead-lettered messages keep their
// sequence number and enqueued time, start again at delivery count 0, and carry the message
// annotation x-opt-deadletter-source.
//
// Topics fan each message out to their subscriptions ("<topic>/Subscriptions/<sub>", each
// with its own dead-letter subqueue) whose rules match: correlation filters, or the true
// filter (no rules, or SQL "1=1"). A message sent with a future x-opt-scheduled-enqueue-time
// is Scheduled (state 2) until the Clock reaches that time. With RequiresDuplicateDetection a
// message whose message-id was sent within DuplicateDetectionHistoryTimeWindow (counted from
// the first sighting) is accepted and dropped. A message's TTL is the smaller of header.ttl
// and DefaultMessageTimeToLive; when it runs out the message moves to the dead-letter
// subqueue (reason TTLExpiredException) if DeadLetteringOnMessageExpiration, else it is
// dropped. A locked message expires only when its lock ends, a deferred one only when
// ReceiveDeferred asks for it; dead-lettered messages never expire.
//
// Not implemented: sessions, auto-forwarding, SQL filters and rule actions.
package broker

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
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
	// ErrNotAllowed reports an operation Service Bus refuses on this entity, such as
	// dead-lettering a message received from a dead-letter queue.
	ErrNotAllowed = errors.New("operation not allowed")
)

// Descriptions Service Bus puts in its errors, used verbatim so that clients matching on them
// (Microsoft's own tests do: TestReceiver_RenewMessageLock) see the same text.
const (
	// LockLostDescription is the service's text for a lock token that is unknown, expired or
	// already settled (com.microsoft:message-lock-lost, status 410).
	LockLostDescription = "The lock supplied is invalid. Either the lock expired, or the message has already been removed from the queue."
	// DeferredNotFoundDescription is the service's text when receive-by-sequence-number finds
	// no unlocked deferred message for a number (com.microsoft:message-not-found).
	DeferredNotFoundDescription = "Failed to lock one or more specified messages. Either the message is already locked or does not exist."
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

	mgmtCalls atomic.Uint64 // management and CBS requests answered (NoteManagementCall)

	mu     sync.RWMutex       // guards the fields below
	queues map[string]*Entity // lower-cased queue name → queue entity
	topics map[string]*topic  // lower-cased topic name → topic
	closed bool
}

// New builds a broker holding the queues, topics and subscriptions of cfg (nil ⇒ an empty
// namespace).
func New(cfg *Config, opts *Options) (*Broker, error) {
	if opts == nil {
		opts = &Options{}
	}
	b := &Broker{clock: opts.Clock, log: opts.Logger, queues: make(map[string]*Entity), topics: make(map[string]*topic)}
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
	// Entities may forward to entities defined after them: create everything, then check.
	for _, ns := range cfg.UserConfig.Namespaces {
		for _, q := range ns.Queues {
			if err := b.createQueue(q.Name, q.Properties, false); err != nil {
				b.Close()
				return nil, err
			}
		}
		for _, t := range ns.Topics {
			if err := b.createTopicConfig(t, false); err != nil {
				b.Close()
				return nil, err
			}
		}
	}
	for i, ns := range cfg.UserConfig.Namespaces {
		for j, q := range ns.Queues {
			if err := b.checkForwards(q.Name, q.Properties); err != nil {
				b.Close()
				return nil, &ConfigError{Path: fmt.Sprintf("UserConfig.Namespaces[%d].Queues[%d].Properties", i, j), Msg: err.Error()}
			}
		}
		for j, t := range ns.Topics {
			for k, sc := range t.Subscriptions {
				if err := b.checkForwards(t.Name+SubscriptionsSegment+sc.Name, sc.Properties.queueProperties()); err != nil {
					b.Close()
					return nil, &ConfigError{Path: fmt.Sprintf("UserConfig.Namespaces[%d].Topics[%d].Subscriptions[%d].Properties", i, j, k), Msg: err.Error()}
				}
			}
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
	queues, topics := b.queues, b.topics
	b.queues, b.topics = map[string]*Entity{}, map[string]*topic{}
	b.mu.Unlock()
	for _, q := range queues {
		q.shutdown(ErrClosed)
	}
	for _, t := range topics {
		t.shutdown(ErrClosed)
	}
}

// CreateTopicConfig creates a topic and its subscriptions as Config.json describes them. If
// a subscription fails, the topic is deleted again.
func (b *Broker) CreateTopicConfig(t TopicConfig) error { return b.createTopicConfig(t, true) }

func (b *Broker) createTopicConfig(t TopicConfig, checkForwards bool) error {
	if err := b.CreateTopic(t.Name, t.Properties); err != nil {
		return err
	}
	for _, s := range t.Subscriptions {
		if err := b.createSubscription(t.Name, s.Name, s.Properties, s.Rules, checkForwards); err != nil {
			_ = b.DeleteTopic(t.Name)
			return err
		}
	}
	return nil
}

// nameFreeLocked checks that no queue or topic has name (case-insensitively).
func (b *Broker) nameFreeLocked(name string) error {
	key := strings.ToLower(name)
	if prev, ok := b.queues[key]; ok {
		return fmt.Errorf("%w (queue %q)", ErrEntityExists, prev.path)
	}
	if prev, ok := b.topics[key]; ok {
		return fmt.Errorf("%w (topic %q)", ErrEntityExists, prev.name)
	}
	return nil
}

// CreateQueue adds a queue (and its dead-letter subqueue). The name is checked with
// ValidateEntityName and the properties against the Config limits; zero-valued properties
// are not defaulted (start from DefaultQueueProperties). ForwardTo and
// ForwardDeadLetteredMessagesTo must name an existing queue or topic (ErrEntityNotFound).
func (b *Broker) CreateQueue(name string, p QueueProperties) error {
	return b.createQueue(name, p, true)
}

func (b *Broker) createQueue(name string, p QueueProperties, checkForwards bool) error {
	if err := ValidateEntityName(name); err != nil {
		return fmt.Errorf("broker: create queue: %w", err)
	}
	if err := p.validate("Properties"); err != nil {
		return fmt.Errorf("broker: create queue %q: %w", name, err)
	}
	if checkForwards {
		if err := b.checkForwards(name, p); err != nil {
			return fmt.Errorf("broker: create queue %q: %w", name, err)
		}
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return ErrClosed
	}
	key := strings.ToLower(name)
	if err := b.nameFreeLocked(name); err != nil {
		return fmt.Errorf("broker: create queue %q: %w", name, err)
	}
	q := newEntity(b, name, KindQueue, p)
	q.dlq = newEntity(b, name+DeadLetterQueueSuffix, KindDeadLetterQueue, p.deadLetterProperties())
	b.queues[key] = q
	b.log.Info("queue created", "queue", name, "lockDuration", p.LockDuration, "maxDeliveryCount", p.MaxDeliveryCount)
	b.warnExtensions(p.ExtensionWarnings("queue " + name))
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

// Queues returns the names of the queues, as created, sorted.
func (b *Broker) Queues() []string {
	b.mu.RLock()
	defer b.mu.RUnlock()
	names := make([]string, 0, len(b.queues))
	for _, q := range b.queues {
		names = append(names, q.path)
	}
	slices.Sort(names)
	return names
}

// Entity resolves a receivable path, case-insensitively: "<queue>",
// "<topic>/Subscriptions/<sub>", or either followed by "/$DeadLetterQueue".
func (b *Broker) Entity(path string) (*Entity, error) {
	name, dlq := cutSuffixFold(path, DeadLetterQueueSuffix)
	var e *Entity
	if i := strings.LastIndex(strings.ToLower(name), strings.ToLower(SubscriptionsSegment)); i > 0 {
		if t, err := b.topic(name[:i]); err == nil {
			sub, ok := t.subscription(name[i+len(SubscriptionsSegment):])
			if !ok {
				return nil, fmt.Errorf("broker: %q: %w", path, ErrEntityNotFound)
			}
			e = sub
		} else if errors.Is(err, ErrClosed) {
			return nil, err
		}
		// No such topic: a queue may have "/Subscriptions/" in its name.
	}
	if e == nil {
		b.mu.RLock()
		closed := b.closed
		q, ok := b.queues[strings.ToLower(name)]
		b.mu.RUnlock()
		if closed {
			return nil, ErrClosed
		}
		if !ok {
			return nil, fmt.Errorf("broker: %q: %w", path, ErrEntityNotFound)
		}
		e = q
	}
	if dlq {
		return e.dlq, nil
	}
	return e, nil
}

// Send enqueues msgs to a queue or topic, all or nothing: every message is checked first
// (a nil message or a malformed x-opt-scheduled-enqueue-time ⇒ ErrInvalidMessage). It
// assigns each a sequence number (x-opt-sequence-number), an enqueued time
// (x-opt-enqueued-time, UTC, millisecond precision) and a UUID string message-id when it has
// none. Duplicates (duplicate detection) are accepted and dropped. A SendDisabled or
// Disabled queue or topic refuses them all (*DisabledError). The broker owns the
// messages afterwards; callers must not touch them again.
func (b *Broker) Send(path string, msgs ...*amqp.Message) error {
	_, err := b.Schedule(path, msgs...)
	return err
}

// Schedule is Send returning the sequence numbers assigned, in order (0 for a message
// dropped as a duplicate): the answer to schedule-message.
func (b *Broker) Schedule(path string, msgs ...*amqp.Message) ([]int64, error) {
	return b.sendHops(path, msgs, 0)
}

// sendHops is Schedule for messages that have taken hops auto-forwarding hops.
func (b *Broker) sendHops(path string, msgs []*amqp.Message, hops int) ([]int64, error) {
	if t, err := b.topic(path); err == nil {
		if err := t.sendRefusal(); err != nil {
			return nil, err
		}
		return t.send(b, msgs, hops)
	} else if errors.Is(err, ErrClosed) {
		return nil, err
	}
	e, err := b.Entity(path)
	if err != nil {
		return nil, err
	}
	if e.kind != KindQueue {
		return nil, fmt.Errorf("broker: send to %q (send to the queue or topic itself): %w", path, ErrSendToSubqueue)
	}
	if err := e.sendRefusal(); err != nil {
		return nil, err
	}
	return e.enqueue(msgs, hops)
}

// CancelScheduled removes scheduled messages of a queue or topic by sequence number before
// they are due, all or nothing (unknown or already due ⇒ ErrMessageNotFound).
func (b *Broker) CancelScheduled(path string, seqs ...int64) error {
	if t, err := b.topic(path); err == nil {
		return t.cancelScheduled(b.clock, seqs)
	}
	e, err := b.Entity(path)
	if err != nil {
		return err
	}
	if e.kind != KindQueue {
		return fmt.Errorf("broker: cancel scheduled on %q: %w", path, ErrSendToSubqueue)
	}
	return e.CancelScheduled(seqs)
}

// Known reports whether a CBS audience path names an entity: a topic, "<entity>",
// "<entity>/$management", or any receivable path (case-insensitive).
func (b *Broker) Known(path string) bool {
	path = strings.Trim(path, "/")
	path, _ = cutSuffixFold(path, ManagementSuffix)
	if _, err := b.topic(path); err == nil {
		return true
	}
	_, err := b.Entity(path)
	return err == nil
}

// Stats is a snapshot of the namespace: every entity in path order (queues, topics,
// subscriptions and their dead-letter subqueues, which are also counted in their parent's
// DeadLettered) and namespace-wide counters.
type Stats struct {
	Entities        []EntityStats
	ManagementCalls uint64 // $management and $cbs requests answered
}

// Stats returns a snapshot of every entity. Counts of different entities are taken one after
// the other, not atomically together.
func (b *Broker) Stats() Stats {
	b.mu.RLock()
	queues := make([]*Entity, 0, len(b.queues))
	for _, q := range b.queues {
		queues = append(queues, q)
	}
	topics := make([]*topic, 0, len(b.topics))
	for _, t := range b.topics {
		topics = append(topics, t)
	}
	b.mu.RUnlock()
	st := Stats{ManagementCalls: b.mgmtCalls.Load()}
	for _, q := range queues {
		st.Entities = append(st.Entities, q.Stats(), q.dlq.Stats())
	}
	for _, t := range topics {
		ts, subs := t.stats()
		st.Entities = append(st.Entities, ts)
		for _, s := range subs {
			st.Entities = append(st.Entities, s)
			if e, err := b.Entity(s.Path + DeadLetterQueueSuffix); err == nil {
				st.Entities = append(st.Entities, e.Stats())
			}
		}
	}
	slices.SortFunc(st.Entities, func(a, b EntityStats) int { return strings.Compare(a.Path, b.Path) })
	return st
}

// warnExtensions logs each property accepted beyond Azure's limits.
func (b *Broker) warnExtensions(warnings []string) {
	for _, w := range warnings {
		b.log.Warn(w)
	}
}

// NoteManagementCall counts one request answered on $management or $cbs (the mgmt package
// calls it).
func (b *Broker) NoteManagementCall() { b.mgmtCalls.Add(1) }

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
