package broker

import (
	"crypto/rand"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/Azure/go-amqp"
)

// EntityKind says what an Entity is.
type EntityKind int

const (
	KindQueue           EntityKind = iota // a queue: Send target and receivable
	KindDeadLetterQueue                   // a "<entity>/$DeadLetterQueue" subqueue: receivable only
	KindSubscription                      // a topic subscription "<topic>/Subscriptions/<sub>": receivable only
	KindTopic                             // a topic: Send target only (appears in stats, never as an *Entity)
)

// ReceiveMode is the settlement mode of a receive.
type ReceiveMode int

const (
	PeekLock         ReceiveMode = iota // lock the message; the receiver settles it later
	ReceiveAndDelete                    // remove the message as it is handed out
)

// MessageState is the value of the x-opt-message-state annotation.
type MessageState int32

const (
	MessageStateActive    MessageState = 0
	MessageStateDeferred  MessageState = 1
	MessageStateScheduled MessageState = 2 // enqueued with a future x-opt-scheduled-enqueue-time
)

// Annotation keys the broker owns.
const (
	AnnotationSequenceNumber   = "x-opt-sequence-number"
	AnnotationEnqueuedTime     = "x-opt-enqueued-time"
	AnnotationLockedUntil      = "x-opt-locked-until"
	AnnotationMessageState     = "x-opt-message-state"
	AnnotationLockToken        = "x-opt-lock-token" // a delivery annotation
	AnnotationDeadLetterSource = "x-opt-deadletter-source"
	AnnotationScheduledTime    = "x-opt-scheduled-enqueue-time"
)

// Application properties set on dead-lettered messages, and the reason the broker uses.
const (
	PropDeadLetterReason           = "DeadLetterReason"
	PropDeadLetterErrorDescription = "DeadLetterErrorDescription"
	ReasonMaxDeliveryCountExceeded = "MaxDeliveryCountExceeded"
	ReasonTTLExpired               = "TTLExpiredException"
)

// Delivery is one message handed to a receiver. Message is a fresh copy the caller owns (it
// may marshal or mutate it): broker annotations set (x-opt-sequence-number int64,
// x-opt-enqueued-time time.Time, x-opt-locked-until time.Time in PeekLock, x-opt-message-state
// int32 when not active), Header.DeliveryCount = prior deliveries, Properties non-nil, and in
// PeekLock DeliveryAnnotations["x-opt-lock-token"] = LockToken and DeliveryTag =
// LockTokenTag(LockToken), the 16-byte delivery-tag the SDK reads the lock token from.
type Delivery struct {
	Message        *amqp.Message
	LockToken      amqp.UUID // zero in ReceiveAndDelete
	SequenceNumber int64
	LockedUntil    time.Time // zero in ReceiveAndDelete
}

// Counters count operations on one entity since it was created. Sent counts messages stored
// (for a dead-letter subqueue: messages moved in); Received counts deliveries of any kind,
// ReceivedBySequence those of ReceiveDeferred among them.
type Counters struct {
	Sent, Received, ReceivedBySequence, Peeked uint64
	Completed, Abandoned, Deferred, Released   uint64
	SessionReleased                            uint64 // locked messages unlocked by closing their session's receiver
	DeadLettered                               uint64 // explicit dead-letters and MaxDeliveryCount moves
	LockExpired, LockRenewed                   uint64
	Scheduled, ScheduleCancelled               uint64 // messages stored as scheduled; cancelled before due
	Duplicates                                 uint64 // sends dropped by duplicate detection
	Expired                                    uint64 // messages whose TTL ran out (dead-lettered or dropped)
	Forwarded                                  uint64 // messages auto-forwarded to another entity
}

// EntityStats is a snapshot of one entity. Active counts messages in the active state,
// locked or not (as Azure's ActiveMessageCount does); Locked counts locked messages of any
// state; DeadLettered counts the messages in the entity's dead-letter subqueue.
type EntityStats struct {
	Path                                              string
	Kind                                              EntityKind
	Active, Locked, Deferred, Scheduled, DeadLettered int
	Counters                                          Counters
	// SizeInBytes is the encoded size of the messages the entity holds (its dead-letter
	// subqueue's not included).
	SizeInBytes int64
	// CreatedAt is when the entity was created, UpdatedAt when its properties last changed
	// (CreatedAt until then), AccessedAt when a message was last sent to or received from it
	// (zero until then).
	CreatedAt, UpdatedAt, AccessedAt time.Time
}

// Entity is a receivable entity: a queue or a dead-letter subqueue. Its methods are safe for
// concurrent use and never block beyond the entity's mutex. Lock tokens are valid on any
// link or connection: settlement looks them up per entity.
type Entity struct {
	b      *Broker // forwarding resolves destinations through it
	path   string
	kind   EntityKind
	props  QueueProperties
	clock  Clock
	log    *slog.Logger
	dlq    *Entity        // the dead-letter subqueue; nil for a subqueue. Immutable.
	timers sync.WaitGroup // one count per armed timer (lock, schedule, expiry); shutdown waits for callbacks

	mu      sync.Mutex // guards the fields below and every record in msgs
	gone    error      // set by shutdown: ErrClosed or a wrapped ErrEntityNotFound
	nextSeq int64      // last sequence number assigned
	msgs    map[int64]*record
	ready   minHeap[int64] // sequence numbers of available messages, exactly those with inReady set
	locks   map[amqp.UUID]*record
	wake    chan struct{} // closed by notifyLocked; nil when nobody waits
	count   Counters
	dedup   *dedupe             // nil unless RequiresDuplicateDetection (queues only; topics hold their own)
	expiry  minHeap[expiryItem] // (expires-at, seq) of active records with a TTL; may hold stale entries
	expT    Timer               // the sweep timer for expiry's earliest entry; nil when none is armed
	expAt   time.Time           // when expT fires
	outbox  []forwardItem       // auto-forwarded messages to send once mu is released (unlock)

	// status is the entity's own status ("" means StatusActive); topicDisabled is set on a
	// subscription while its topic is Disabled; statusCh is closed (and cleared) when either
	// changes, to wake receive links (StatusChanged).
	status        EntityStatus
	topicDisabled bool
	statusCh      chan struct{}

	sessions   map[string]*msession   // by session id (RequiresSession entities)
	lostTokens map[amqp.UUID]struct{} // lock tokens whose session lock ended (ErrSessionLockLost)

	// created, updated, accessed: see EntityStats (guarded by mu).
	created, updated, accessed time.Time
}

// record is one stored message. Its fields are guarded by the mutex of the entity whose msgs
// map holds it (ownership moves with the record to the dead-letter subqueue).
type record struct {
	seq     int64
	msg     *amqp.Message // broker-owned; never handed out in PeekLock
	state   MessageState
	count   uint32 // failed deliveries so far: the header's delivery-count
	inReady bool   // in the entity's ready heap

	locked bool
	token  amqp.UUID
	until  time.Time
	timer  Timer // the lock timer

	expires time.Time // when the TTL runs out; zero = never (or not yet active)
	sched   Timer     // the activation timer of a scheduled record
	hops    int       // auto-forwarding hops the message has taken to reach this entity
	sess    *msession // its session, on a session entity
}

func newEntity(b *Broker, path string, kind EntityKind, p QueueProperties) *Entity {
	e := &Entity{
		b: b, path: path, kind: kind, props: p, clock: b.clock, log: b.log.With("entity", path),
		msgs: make(map[int64]*record), locks: make(map[amqp.UUID]*record), sessions: make(map[string]*msession),
		ready:  minHeap[int64]{less: func(a, b int64) bool { return a < b }},
		expiry: minHeap[expiryItem]{less: func(a, b expiryItem) bool { return a.at.Before(b.at) }},
	}
	e.created = now(b.clock)
	e.updated = e.created
	if kind == KindQueue && p.RequiresDuplicateDetection {
		e.dedup = newDedupe(p.DuplicateDetectionHistoryTimeWindow)
	}
	return e
}

// Path returns the entity's path as created (e.g. "orders" or "orders/$DeadLetterQueue").
func (e *Entity) Path() string { return e.path }

// Kind returns what the entity is.
func (e *Entity) Kind() EntityKind { return e.kind }

// LockDuration returns how long a PeekLock lock lasts before it must be renewed.
func (e *Entity) LockDuration() time.Duration { return e.Properties().LockDuration }

// Properties returns the entity's properties (they change with Broker.UpdateQueue and
// UpdateSubscription).
func (e *Entity) Properties() QueueProperties {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.props
}

// Err returns nil while the entity is usable, and afterwards why it is not: ErrClosed after
// Broker.Close, a wrapped ErrEntityNotFound after DeleteQueue. Receive loops check it when
// Available wakes them with nothing to receive.
func (e *Entity) Err() error {
	e.mu.Lock()
	defer e.unlock()
	return e.gone
}

// DeadLetterQueue returns the entity's dead-letter subqueue, or nil for a subqueue.
func (e *Entity) DeadLetterQueue() *Entity { return e.dlq }

// Receive takes up to max available messages in sequence order without blocking (none ⇒
// nil). PeekLock locks them for LockDuration; ReceiveAndDelete removes them.
func (e *Entity) Receive(max int, mode ReceiveMode) []Delivery {
	if max <= 0 {
		return nil
	}
	e.mu.Lock()
	defer e.unlock()
	if e.gone != nil || e.props.RequiresSession || !e.hasReadyLocked() {
		return nil
	}
	return e.takeReadyLocked(&e.ready, max, mode)
}

// takeReadyLocked delivers up to max available messages of a ready heap (the entity's, or a
// session's) in sequence order. Caller holds e.mu.
func (e *Entity) takeReadyLocked(ready *minHeap[int64], max int, mode ReceiveMode) []Delivery {
	out := make([]Delivery, 0, min(max, ready.Len()))
	t := now(e.clock)
	for len(out) < max && ready.Len() > 0 {
		r := e.msgs[ready.pop()]
		if r == nil || !r.inReady { // removed while ready (TTL expiry, moved, settled)
			continue
		}
		r.inReady = false
		if r.expiredAt(t) { // the sweep timer may lag the deadline
			e.expireMessageLocked(r)
			continue
		}
		out = append(out, e.deliverLocked(r, mode, t))
	}
	e.count.Received += uint64(len(out))
	if len(out) > 0 {
		e.accessed = t
	}
	return out
}

// hasReadyLocked drops stale entries from the top of the ready heap and reports whether a
// message is available.
func (e *Entity) hasReadyLocked() bool {
	for e.ready.Len() > 0 {
		if r := e.msgs[e.ready.items[0]]; r != nil && r.inReady {
			return true
		}
		e.ready.pop()
	}
	return false
}

// Available returns a channel that is closed the next time messages may have become
// available (send, abandon, release, lock expiry, entity closed). It is already closed when
// messages are available now — on a session entity: when an unlocked session has an available
// message (AcceptNextSession would succeed). Callers call Receive, and when it returns nothing
// wait on a fresh Available channel (broadcast: every waiter wakes).
func (e *Entity) Available() <-chan struct{} {
	e.mu.Lock()
	defer e.unlock()
	if e.gone != nil || (!e.props.RequiresSession && e.hasReadyLocked()) || (e.props.RequiresSession && e.unlockedReadyLocked()) {
		return closedChan
	}
	if e.wake == nil {
		e.wake = make(chan struct{})
	}
	return e.wake
}

var closedChan = func() chan struct{} { c := make(chan struct{}); close(c); return c }()

// Complete removes the locked message. Unknown or expired token ⇒ ErrLockLost.
func (e *Entity) Complete(token amqp.UUID) error {
	return e.settle("complete", token, func(r *record) {
		e.dropLocked(r)
		e.count.Completed++
	})
}

// Abandon unlocks the message, applies propertiesToModify to its application properties and
// counts a failed delivery: it becomes available again (a deferred message stays deferred),
// or moves to the dead-letter subqueue when the count reaches MaxDeliveryCount.
func (e *Entity) Abandon(token amqp.UUID, propertiesToModify map[string]any) error {
	return e.settle("abandon", token, func(r *record) {
		applyProps(r.msg, propertiesToModify)
		e.count.Abandoned++
		e.failedDeliveryLocked(r)
	})
}

// Defer unlocks the message and sets it Deferred: from now on only ReceiveDeferred reaches
// it. propertiesToModify are applied to its application properties. As on Azure, the delivery
// that ended in the defer counts: the delivery count goes up by one, and a message reaching
// MaxDeliveryCount is dead-lettered (MaxDeliveryCountExceeded) instead of deferred.
func (e *Entity) Defer(token amqp.UUID, propertiesToModify map[string]any) error {
	return e.settle("defer", token, func(r *record) {
		applyProps(r.msg, propertiesToModify)
		r.state = MessageStateDeferred
		e.count.Deferred++
		e.failedDeliveryLocked(r)
	})
}

// DeadLetter moves the message to the dead-letter subqueue with application properties
// DeadLetterReason and DeadLetterErrorDescription plus propertiesToModify. A message of a
// dead-letter queue cannot be dead-lettered ("you can't dead-letter a message from a DLQ",
// Azure's dead-letter queue documentation): ErrNotAllowed, and the message stays locked.
func (e *Entity) DeadLetter(token amqp.UUID, reason, description string, propertiesToModify map[string]any) error {
	if e.kind == KindDeadLetterQueue {
		e.mu.Lock()
		defer e.unlock()
		if _, err := e.lockedLocked("dead-letter", token); err != nil {
			return err
		}
		return fmt.Errorf("broker: dead-letter on %q: a message cannot be dead-lettered from a dead-letter queue: %w", e.path, ErrNotAllowed)
	}
	return e.settle("dead-letter", token, func(r *record) {
		applyProps(r.msg, propertiesToModify)
		e.count.DeadLettered++
		e.deadLetterLocked(r, reason, description)
	})
}

// Release unlocks the message without counting a delivery; an active message becomes
// available again at once.
func (e *Entity) Release(token amqp.UUID) error {
	return e.settle("release", token, func(r *record) {
		e.count.Released++
		if r.state == MessageStateActive {
			e.availableLocked(r)
		}
	})
}

// RenewLock extends the lock to now + LockDuration and returns the new locked-until time.
// Unknown, expired or settled token ⇒ ErrLockLost.
func (e *Entity) RenewLock(token amqp.UUID) (time.Time, error) {
	e.mu.Lock()
	defer e.unlock()
	r, err := e.lockedLocked("renew lock", token)
	if err != nil {
		return time.Time{}, err
	}
	if r.sess != nil {
		return time.Time{}, fmt.Errorf("broker: renew lock on %q: the messages of a session are covered by the session lock (renew the session lock): %w", e.path, ErrNotAllowed)
	}
	e.disarmLocked(r)
	r.until = now(e.clock).Add(e.props.LockDuration)
	e.armLocked(r)
	e.count.LockRenewed++
	return r.until, nil
}

// Peek returns copies of up to max messages with sequence number ≥ fromSequenceNumber, in
// order, in any state (locked, deferred with x-opt-message-state 1, later scheduled with 2),
// without locking them.
func (e *Entity) Peek(fromSequenceNumber int64, max int) []*amqp.Message {
	e.mu.Lock()
	defer e.unlock()
	return e.peekLocked(fromSequenceNumber, max, nil)
}

// peekLocked is Peek over the messages of session sess (nil: every message).
func (e *Entity) peekLocked(fromSequenceNumber int64, max int, sess *msession) []*amqp.Message {
	if max <= 0 || e.gone != nil {
		return nil
	}
	seqs := make([]int64, 0, min(len(e.msgs), 256))
	for s, r := range e.msgs {
		if s >= fromSequenceNumber && (sess == nil || r.sess == sess) {
			seqs = append(seqs, s)
		}
	}
	slices.Sort(seqs)
	if len(seqs) > max {
		seqs = seqs[:max]
	}
	out := make([]*amqp.Message, len(seqs))
	for i, s := range seqs {
		out[i] = e.viewLocked(e.msgs[s])
	}
	e.count.Peeked += uint64(len(out))
	return out
}

// ReceiveDeferred locks (PeekLock) or removes (ReceiveAndDelete) deferred messages by
// sequence number and returns them in the order asked (duplicates once). A requested deferred
// message whose TTL has run out expires now (as on Azure, deferred messages expire only when
// someone tries to receive them) and counts as missing. If any number is not an unlocked
// deferred message of this entity it returns an error wrapping ErrMessageNotFound that names
// the numbers, and changes nothing else. On a session entity deferred messages are received
// within their session (SessionLock.ReceiveDeferred): ErrNotAllowed here.
func (e *Entity) ReceiveDeferred(seqs []int64, mode ReceiveMode) ([]Delivery, error) {
	e.mu.Lock()
	defer e.unlock()
	if e.props.RequiresSession && e.gone == nil {
		return nil, fmt.Errorf("broker: receive deferred on %q: the entity requires sessions (receive through a session): %w", e.path, ErrNotAllowed)
	}
	return e.receiveDeferredLocked(seqs, mode, nil)
}

// receiveDeferredLocked is ReceiveDeferred over the messages of session sess (nil: a
// non-session entity).
func (e *Entity) receiveDeferredLocked(seqs []int64, mode ReceiveMode, sess *msession) ([]Delivery, error) {
	if e.gone != nil {
		return nil, fmt.Errorf("broker: receive deferred on %q: %w", e.path, e.gone)
	}
	t := now(e.clock)
	for _, s := range seqs {
		if r := e.msgs[s]; r != nil && r.state == MessageStateDeferred && !r.locked && r.expiredAt(t) {
			e.expireMessageLocked(r)
		}
	}
	var missing []int64
	for _, s := range seqs {
		r := e.msgs[s]
		if r == nil || r.state != MessageStateDeferred || r.locked || r.sess != sess {
			missing = append(missing, s)
		}
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("%s (receive deferred on %q: sequence numbers %v are not unlocked deferred messages of this entity): %w",
			DeferredNotFoundDescription, e.path, missing, ErrMessageNotFound)
	}
	out := make([]Delivery, 0, len(seqs))
	for _, s := range seqs {
		r := e.msgs[s]
		if r == nil || r.locked { // a duplicate already handed out above
			continue
		}
		out = append(out, e.deliverLocked(r, mode, t))
	}
	e.count.Received += uint64(len(out))
	e.count.ReceivedBySequence += uint64(len(out))
	e.accessed = now(e.clock)
	return out, nil
}

// Stats returns the entity's message counts and counters.
func (e *Entity) Stats() EntityStats {
	e.mu.Lock()
	st := EntityStats{Path: e.path, Kind: e.kind, Counters: e.count, CreatedAt: e.created, UpdatedAt: e.updated, AccessedAt: e.accessed}
	for _, r := range e.msgs {
		st.SizeInBytes += encodedSize(r.msg)
		switch r.state {
		case MessageStateActive:
			st.Active++
		case MessageStateDeferred:
			st.Deferred++
		case MessageStateScheduled:
			st.Scheduled++
		}
		if r.locked {
			st.Locked++
		}
	}
	e.mu.Unlock()
	if e.dlq != nil { // after releasing e.mu: stats never hold two entity locks
		e.dlq.mu.Lock()
		st.DeadLettered = len(e.dlq.msgs)
		e.dlq.mu.Unlock()
	}
	return st
}

// enqueue stores new messages (Broker.Send, Broker.Schedule; hops > 0 when auto-forwarded) and
// returns their sequence numbers; a message dropped by duplicate detection gets 0.
func (e *Entity) enqueue(msgs []*amqp.Message, hops int) ([]int64, error) {
	if err := checkMessages(e.path, msgs); err != nil {
		return nil, err
	}
	e.mu.Lock()
	defer e.unlock()
	if e.gone != nil {
		return nil, fmt.Errorf("broker: send to %q: %w", e.path, e.gone)
	}
	if err := e.checkSessionIDs(msgs); err != nil {
		return nil, err
	}
	t := now(e.clock)
	seqs := make([]int64, len(msgs))
	for i, m := range msgs {
		if key := messageIDKey(m); e.dedup != nil && key != "" && e.dedup.seen(key, t) {
			e.count.Duplicates++
			e.log.Debug("duplicate message dropped", "messageId", m.Properties.MessageID)
			continue
		}
		e.nextSeq++
		seqs[i] = e.nextSeq
		e.storeLocked(m, e.nextSeq, t, hops)
	}
	e.notifyLocked()
	return seqs, nil
}

// checkMessages validates a batch before anything is stored.
func checkMessages(path string, msgs []*amqp.Message) error {
	for i, m := range msgs {
		if m == nil {
			return fmt.Errorf("broker: send to %q: message %d is nil: %w", path, i, ErrInvalidMessage)
		}
		if v, ok := m.Annotations[AnnotationScheduledTime]; ok && v != nil {
			if _, ok := v.(time.Time); !ok {
				return fmt.Errorf("broker: send to %q: message %d: annotation %s is %T, want a timestamp: %w",
					path, i, AnnotationScheduledTime, v, ErrInvalidMessage)
			}
		}
	}
	return nil
}

// storeLocked stores one new message with sequence number seq at time t: scheduled when it
// carries a future x-opt-scheduled-enqueue-time, otherwise active at once. Caller holds e.mu
// and calls notifyLocked afterwards.
func (e *Entity) storeLocked(m *amqp.Message, seq int64, t time.Time, hops int) {
	prepareStored(m, seq, t)
	r := &record{seq: seq, msg: m, hops: hops}
	e.msgs[seq] = r
	if e.props.RequiresSession {
		sid, ok := sessionID(m)
		if !ok { // only a topic's copy gets here: a queue refuses it at send
			e.count.Sent++
			e.deadLetterLocked(r, ReasonSessionIDIsNull, MissingSessionIDDescription)
			return
		}
		r.sess = e.sessionLocked(sid)
		r.sess.count++
	}
	e.count.Sent++
	e.accessed = t
	if at, ok := m.Annotations[AnnotationScheduledTime].(time.Time); ok && at.After(t) {
		r.state = MessageStateScheduled
		e.count.Scheduled++
		e.armScheduleLocked(r, at)
		return
	}
	e.activateLocked(r, t)
}

// prepareStored stamps a message entering the broker and strips keys the broker owns.
func prepareStored(m *amqp.Message, seq int64, t time.Time) {
	m.Format = 0
	m.DeliveryTag = nil
	if m.Annotations == nil {
		m.Annotations = make(amqp.Annotations, 2)
	}
	delete(m.Annotations, AnnotationLockedUntil)
	delete(m.Annotations, AnnotationMessageState)
	m.Annotations[AnnotationSequenceNumber] = seq
	m.Annotations[AnnotationEnqueuedTime] = t
	delete(m.DeliveryAnnotations, AnnotationLockToken)
	if m.Properties == nil {
		m.Properties = &amqp.MessageProperties{}
	}
	if m.Properties.MessageID == nil {
		m.Properties.MessageID = newUUID().String()
	}
}

// deliverLocked hands r out: PeekLock locks it and returns a copy; ReceiveAndDelete removes
// it and returns the stored message itself (nobody else can see it any more).
func (e *Entity) deliverLocked(r *record, mode ReceiveMode, t time.Time) Delivery {
	if mode == ReceiveAndDelete {
		e.dropLocked(r)
		decorate(r.msg, r, false)
		return Delivery{Message: r.msg, SequenceNumber: r.seq}
	}
	r.locked = true
	r.token = newUUID()
	e.locks[r.token] = r
	if r.sess != nil { // the session lock covers it: no lock timer of its own
		r.until = r.sess.until
		r.sess.locked[r.token] = r
	} else {
		r.until = t.Add(e.props.LockDuration)
		e.armLocked(r)
	}
	m := copyMessage(r.msg)
	decorate(m, r, true)
	tag := LockTokenTag(r.token)
	m.DeliveryTag = tag[:]
	return Delivery{Message: m, LockToken: r.token, SequenceNumber: r.seq, LockedUntil: r.until}
}

// viewLocked returns a copy of r for Peek.
func (e *Entity) viewLocked(r *record) *amqp.Message {
	m := copyMessage(r.msg)
	decorate(m, r, false)
	return m
}

// decorate sets the per-delivery broker fields on m (a copy, or a removed record's message).
func decorate(m *amqp.Message, r *record, withToken bool) {
	if m.Header == nil {
		m.Header = &amqp.MessageHeader{Priority: 4}
	}
	m.Header.DeliveryCount = r.count
	if r.locked {
		m.Annotations[AnnotationLockedUntil] = r.until
	}
	if r.state != MessageStateActive {
		m.Annotations[AnnotationMessageState] = int32(r.state)
	}
	if withToken {
		if m.DeliveryAnnotations == nil {
			m.DeliveryAnnotations = make(amqp.Annotations, 1)
		}
		m.DeliveryAnnotations[AnnotationLockToken] = r.token
	}
}

// settle runs f on the record locked by token after unlocking it, then wakes waiters.
func (e *Entity) settle(op string, token amqp.UUID, f func(r *record)) error {
	e.mu.Lock()
	defer e.unlock()
	r, err := e.lockedLocked(op, token)
	if err != nil {
		return err
	}
	e.unlockLocked(r)
	f(r)
	e.notifyLocked()
	return nil
}

// lockedLocked finds the record locked by token, expiring it first when its time is up (a
// real clock's timer may lag the deadline).
func (e *Entity) lockedLocked(op string, token amqp.UUID) (*record, error) {
	if e.gone != nil {
		return nil, fmt.Errorf("broker: %s on %q: %w", op, e.path, e.gone)
	}
	r, ok := e.locks[token]
	if !ok {
		if _, lost := e.lostTokens[token]; lost {
			return nil, fmt.Errorf("%s (%s on %q: lock token %s): %w", SessionLockLostDescription, op, e.path, token, ErrSessionLockLost)
		}
		return nil, fmt.Errorf("%s (%s on %q: lock token %s is unknown, expired or settled): %w", LockLostDescription, op, e.path, token, ErrLockLost)
	}
	if r.sess != nil {
		if !now(e.clock).Before(r.sess.until) {
			e.endSessionLocked(r.sess, true)
			return nil, fmt.Errorf("%s (%s on %q: lock token %s): %w", SessionLockLostDescription, op, e.path, token, ErrSessionLockLost)
		}
		return r, nil
	}
	if !now(e.clock).Before(r.until) {
		e.expireLocked(r)
		return nil, fmt.Errorf("%s (%s on %q: lock token %s expired at %s): %w", LockLostDescription, op, e.path, token, r.until.Format(time.RFC3339Nano), ErrLockLost)
	}
	return r, nil
}

// armLocked starts r's lock timer. Each armed timer holds one count of e.timers, released by
// the callback or by a successful Stop in disarmLocked.
func (e *Entity) armLocked(r *record) {
	tok := r.token
	e.timers.Add(1)
	r.timer = e.clock.AfterFunc(r.until.Sub(e.clock.Now()), func() {
		defer e.timers.Done()
		e.expireToken(tok)
	})
}

func (e *Entity) disarmLocked(r *record) {
	if r.timer != nil && r.timer.Stop() {
		e.timers.Done()
	}
	r.timer = nil
}

// expireToken is the lock timer callback. It looks the token up in this entity's own table,
// so a stale timer whose record was settled or moved never touches that record.
func (e *Entity) expireToken(tok amqp.UUID) {
	e.mu.Lock()
	defer e.unlock()
	if e.gone != nil {
		return
	}
	if r, ok := e.locks[tok]; ok {
		e.expireLocked(r)
	}
}

func (e *Entity) expireLocked(r *record) {
	e.unlockLocked(r)
	e.count.LockExpired++
	e.log.Debug("lock expired", "sequenceNumber", r.seq, "deliveryCount", r.count+1)
	e.failedDeliveryLocked(r)
	e.notifyLocked()
}

func (e *Entity) unlockLocked(r *record) {
	e.disarmLocked(r)
	delete(e.locks, r.token)
	if r.sess != nil {
		delete(r.sess.locked, r.token)
	}
	r.locked = false
	r.token = amqp.UUID{}
	r.until = time.Time{}
}

// failedDeliveryLocked counts a delivery that ended without settlement (abandon, lock
// expiry, defer): dead-letter at MaxDeliveryCount, else make an active message available
// again. In a dead-letter queue nothing is counted: MaxDeliveryCount does not apply there and
// the count the message arrived with stays (Microsoft's TestMessageSettlementUsingReceiver
// abandons a message in the DLQ and expects the same delivery count back).
func (e *Entity) failedDeliveryLocked(r *record) {
	if e.kind != KindDeadLetterQueue {
		r.count++
	}
	if e.dlq != nil && int(r.count) >= e.props.MaxDeliveryCount {
		e.deadLetterLocked(r, ReasonMaxDeliveryCountExceeded,
			fmt.Sprintf("Message could not be consumed after %d delivery attempts.", r.count))
		return
	}
	if r.state == MessageStateActive {
		e.availableLocked(r)
	}
}

// deadLetterLocked dead-letters an unlocked record of a queue or subscription: to its
// ForwardDeadLetteredMessagesTo destination when it has one, else to its dead-letter subqueue.
func (e *Entity) deadLetterLocked(r *record, reason, description string) {
	if to := e.props.ForwardDeadLetteredMessagesTo; to != "" {
		stampDeadLetter(r.msg, reason, description)
		r.msg.Annotations[AnnotationDeadLetterSource] = e.path
		e.forwardLocked(r, to)
		return
	}
	e.moveToDLQLocked(r, reason, description)
}

func stampDeadLetter(m *amqp.Message, reason, description string) {
	if m.ApplicationProperties == nil {
		m.ApplicationProperties = make(map[string]any, 2)
	}
	m.ApplicationProperties[PropDeadLetterReason] = reason
	m.ApplicationProperties[PropDeadLetterErrorDescription] = description
}

// moveToDLQLocked moves an unlocked record to the dead-letter subqueue, keeping its sequence
// number, enqueued time and delivery count (Microsoft's TestMessageSettlementUsingReceiver:
// abandoned once, then dead-lettered, the DLQ delivers it with delivery count 2), and making it
// active there.
func (e *Entity) moveToDLQLocked(r *record, reason, description string) {
	m := r.msg
	stampDeadLetter(m, reason, description)
	e.dropLocked(r)
	r.sess = nil // a dead-letter queue has no sessions
	r.inReady = false
	r.expires = time.Time{} // messages do not expire in a dead-letter subqueue
	m.Annotations[AnnotationDeadLetterSource] = e.path
	r.state = MessageStateActive
	e.log.Debug("message dead-lettered", "sequenceNumber", r.seq, "reason", reason)
	e.dlq.adopt(r)
}

// adopt stores a record moved from the parent entity (whose lock the caller holds).
func (e *Entity) adopt(r *record) {
	e.mu.Lock()
	defer e.unlock()
	if e.gone != nil {
		return // the subqueue is being deleted with its parent
	}
	e.msgs[r.seq] = r
	e.count.Sent++
	e.readyLocked(r)
	e.notifyLocked()
}

func (e *Entity) readyLocked(r *record) {
	if r.inReady {
		return
	}
	r.inReady = true
	if r.sess != nil {
		r.sess.ready.push(r.seq)
	} else {
		e.ready.push(r.seq)
	}
}

// dropLocked removes r from the entity (settled, received and deleted, expired, moved).
func (e *Entity) dropLocked(r *record) {
	delete(e.msgs, r.seq)
	if r.sess != nil {
		r.sess.count--
		e.gcSessionLocked(r.sess)
	}
}

func (e *Entity) notifyLocked() {
	if e.wake != nil {
		close(e.wake)
		e.wake = nil
	}
}

// shutdown stops the entity for good (Close, DeleteQueue): every lock timer is stopped and
// every Available waiter woken; later calls fail with err. It waits for lock-timer callbacks
// already running, then shuts the dead-letter subqueue down.
func (e *Entity) shutdown(err error) {
	e.mu.Lock()
	if e.gone == nil {
		e.gone = err
		for _, r := range e.locks {
			e.disarmLocked(r)
		}
		for _, r := range e.msgs {
			e.stopScheduleLocked(r)
		}
		e.shutdownSessionsLocked(err)
		e.stopSweepLocked()
		e.notifyLocked()
	}
	e.mu.Unlock()
	e.timers.Wait()
	if e.dlq != nil {
		e.dlq.shutdown(err)
	}
}

func applyProps(m *amqp.Message, props map[string]any) {
	if len(props) == 0 {
		return
	}
	if m.ApplicationProperties == nil {
		m.ApplicationProperties = make(map[string]any, len(props))
	}
	maps.Copy(m.ApplicationProperties, props)
}

// copyMessage returns a copy of m whose maps, header, properties and data the caller owns.
// Values inside maps (and Sequence/Value bodies) are shared: they are immutable in practice.
func copyMessage(src *amqp.Message) *amqp.Message {
	m := &amqp.Message{
		Format:                src.Format,
		DeliveryAnnotations:   cloneAnnotations(src.DeliveryAnnotations, 1),
		Annotations:           cloneAnnotations(src.Annotations, 2),
		ApplicationProperties: maps.Clone(src.ApplicationProperties),
		Value:                 src.Value,
		Sequence:              slices.Clone(src.Sequence),
		Footer:                cloneAnnotations(src.Footer, 0),
	}
	if src.Header != nil {
		h := *src.Header
		m.Header = &h
	}
	if src.Properties != nil {
		p := *src.Properties
		m.Properties = &p
	}
	if len(src.Data) > 0 {
		n := 0
		for _, d := range src.Data {
			n += len(d)
		}
		buf := make([]byte, 0, n)
		m.Data = make([][]byte, len(src.Data))
		for i, d := range src.Data {
			start := len(buf)
			buf = append(buf, d...)
			m.Data[i] = buf[start:len(buf):len(buf)]
		}
	}
	return m
}

func cloneAnnotations(a amqp.Annotations, extra int) amqp.Annotations {
	if a == nil {
		if extra == 0 {
			return nil
		}
		return make(amqp.Annotations, extra)
	}
	c := make(amqp.Annotations, len(a)+extra)
	maps.Copy(c, a)
	return c
}

// LockTokenTag returns the delivery-tag for a lock token: the UUID in .NET GUID byte order
// (bytes 0-3 reversed, 4-5 and 6-7 swapped), which the SDK converts back to RFC order.
func LockTokenTag(token amqp.UUID) [16]byte {
	t := token
	t[0], t[1], t[2], t[3] = token[3], token[2], token[1], token[0]
	t[4], t[5] = token[5], token[4]
	t[6], t[7] = token[7], token[6]
	return t
}

// LockTokenFromTag is the inverse of LockTokenTag; ok is false unless tag has 16 bytes.
func LockTokenFromTag(tag []byte) (token amqp.UUID, ok bool) {
	if len(tag) != 16 {
		return amqp.UUID{}, false
	}
	return LockTokenTag(amqp.UUID(tag)), true // the swap is its own inverse
}

// newUUID returns a random (version 4) UUID.
func newUUID() amqp.UUID {
	var u amqp.UUID
	_, _ = rand.Read(u[:]) // crypto/rand.Read never fails (Go ≥ 1.24)
	u[6] = u[6]&0x0f | 0x40
	u[8] = u[8]&0x3f | 0x80
	return u
}
