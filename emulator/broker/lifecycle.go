package broker

import (
	"fmt"
	"time"

	"github.com/Azure/go-amqp"
)

// This file holds the time-driven parts of a message's life: scheduled activation, TTL
// expiry and duplicate detection. Every method whose name ends in Locked needs e.mu held.

// neverExpires is the TTL from which on a message is treated as immortal (MaxDuration, the
// P10675199D of Config.json, and anything near it).
const neverExpires = 100 * 365 * 24 * time.Hour

// effectiveTTL is the message's time to live: its header TTL capped by the entity default,
// or the default when the header has none. Zero means it never expires.
func effectiveTTL(m *amqp.Message, def time.Duration) time.Duration {
	ttl := def
	if m.Header != nil && m.Header.TTL > 0 && m.Header.TTL < ttl {
		ttl = m.Header.TTL
	}
	if ttl <= 0 || ttl >= neverExpires {
		return 0
	}
	return ttl
}

// expiredAt reports whether r's TTL has run out at t.
func (r *record) expiredAt(t time.Time) bool {
	return !r.expires.IsZero() && !t.Before(r.expires)
}

// activateLocked makes a new or due scheduled record active at t: its TTL starts now and it
// becomes available. The header is left as the sender wrote it: a message sent without a TTL
// is delivered without one even when the entity's default limits its life, as the service
// does (Microsoft's TestSender_SendAMQPMessageWithMultipleByteSlicesInData compares the
// received header field by field; azure-service-bus issue #432 shows a peeked message without
// its entity's TTL).
func (e *Entity) activateLocked(r *record, t time.Time) {
	r.state = MessageStateActive
	if to := e.props.ForwardTo; to != "" && e.kind != KindDeadLetterQueue {
		e.forwardLocked(r, to)
		return
	}
	if e.kind != KindDeadLetterQueue {
		if ttl := effectiveTTL(r.msg, e.props.DefaultMessageTimeToLive); ttl > 0 {
			r.expires = t.Add(ttl)
		}
	}
	e.availableLocked(r)
}

// availableLocked makes an unlocked active record available, or expires it when its TTL has
// run out (a locked message expires only once its lock ends).
func (e *Entity) availableLocked(r *record) {
	if r.expiredAt(now(e.clock)) {
		e.expireMessageLocked(r)
		return
	}
	e.readyLocked(r)
	if !r.expires.IsZero() {
		e.watchExpiryLocked(r)
	}
}

// expireMessageLocked ends an unlocked record whose TTL ran out: to the dead-letter subqueue
// with reason TTLExpiredException when DeadLetteringOnMessageExpiration is set, else dropped.
func (e *Entity) expireMessageLocked(r *record) {
	r.inReady = false // a stale heap entry, if any, is skipped by Receive
	e.count.Expired++
	if e.props.DeadLetteringOnMessageExpiration && e.dlq != nil {
		e.deadLetterLocked(r, ReasonTTLExpired, "The message expired and was dead lettered.")
		return
	}
	e.dropLocked(r)
	e.log.Debug("message expired", "sequenceNumber", r.seq)
}

// armScheduleLocked starts the activation timer of a scheduled record.
func (e *Entity) armScheduleLocked(r *record, at time.Time) {
	seq := r.seq
	e.timers.Add(1)
	r.sched = e.clock.AfterFunc(at.Sub(e.clock.Now()), func() {
		defer e.timers.Done()
		e.activateDue(seq)
	})
}

func (e *Entity) stopScheduleLocked(r *record) {
	if r.sched != nil && r.sched.Stop() {
		e.timers.Done()
	}
	r.sched = nil
}

// activateDue is the schedule timer callback: the record's enqueued time becomes now.
func (e *Entity) activateDue(seq int64) {
	e.mu.Lock()
	defer e.unlock()
	if e.gone != nil {
		return
	}
	r := e.msgs[seq]
	if r == nil || r.state != MessageStateScheduled {
		return // cancelled
	}
	r.sched = nil
	t := now(e.clock)
	r.msg.Annotations[AnnotationEnqueuedTime] = t
	e.activateLocked(r, t)
	e.notifyLocked()
}

// CancelScheduled removes scheduled messages before they are due, all or nothing: if any
// number is not a scheduled message of this entity it returns an error wrapping
// ErrMessageNotFound naming the numbers, and changes nothing.
func (e *Entity) CancelScheduled(seqs []int64) error {
	e.mu.Lock()
	defer e.unlock()
	if e.gone != nil {
		return fmt.Errorf("broker: cancel scheduled on %q: %w", e.path, e.gone)
	}
	var missing []int64
	for _, s := range seqs {
		if r := e.msgs[s]; r == nil || r.state != MessageStateScheduled {
			missing = append(missing, s)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("broker: cancel scheduled on %q: sequence numbers %v are not scheduled messages of this entity: %w",
			e.path, missing, ErrMessageNotFound)
	}
	for _, s := range seqs {
		if r := e.msgs[s]; r != nil {
			e.stopScheduleLocked(r)
			e.dropLocked(r)
			e.count.ScheduleCancelled++
		}
	}
	return nil
}

// hasScheduled reports whether seq is a scheduled message of e.
func (e *Entity) hasScheduled(seq int64) bool {
	e.mu.Lock()
	defer e.unlock()
	r := e.msgs[seq]
	return r != nil && r.state == MessageStateScheduled
}

// watchExpiryLocked adds r to the expiry heap and makes sure the sweep timer fires by the
// earliest deadline. The heap is rebuilt when stale entries outnumber live ones.
func (e *Entity) watchExpiryLocked(r *record) {
	if e.expiry.Len() > 2*len(e.msgs)+64 {
		e.expiry.items = e.expiry.items[:0]
		for _, x := range e.msgs {
			if !x.expires.IsZero() && x.state == MessageStateActive && !x.locked && x != r {
				e.expiry.push(expiryItem{at: x.expires, seq: x.seq})
			}
		}
	}
	e.expiry.push(expiryItem{at: r.expires, seq: r.seq})
	e.rearmSweepLocked()
}

// rearmSweepLocked arms the sweep timer for the heap's earliest entry unless it already
// fires by then.
func (e *Entity) rearmSweepLocked() {
	if e.expiry.Len() == 0 || e.gone != nil {
		return
	}
	at := e.expiry.items[0].at
	if e.expT != nil && !e.expAt.After(at) {
		return
	}
	e.stopSweepLocked()
	e.expAt = at
	e.timers.Add(1)
	e.expT = e.clock.AfterFunc(at.Sub(e.clock.Now()), func() {
		defer e.timers.Done()
		e.sweep()
	})
}

func (e *Entity) stopSweepLocked() {
	if e.expT != nil && e.expT.Stop() {
		e.timers.Done()
	}
	e.expT = nil
}

// sweep is the expiry timer callback: it expires every due, unlocked, active message. Locked
// messages are checked again when their lock ends, deferred ones when ReceiveDeferred asks.
func (e *Entity) sweep() {
	e.mu.Lock()
	defer e.unlock()
	e.expT = nil
	if e.gone != nil {
		return
	}
	t := now(e.clock)
	for e.expiry.Len() > 0 && !e.expiry.items[0].at.After(t) {
		it := e.expiry.pop()
		r := e.msgs[it.seq]
		if r == nil || !r.expires.Equal(it.at) || r.locked || r.state != MessageStateActive {
			continue
		}
		e.expireMessageLocked(r)
	}
	e.rearmSweepLocked()
}

type expiryItem struct {
	at  time.Time
	seq int64
}

// dedupe remembers message ids for a fixed window from their first sighting (Azure's window
// does not slide: a duplicate does not extend it). Guarded by its owner's mutex.
type dedupe struct {
	window time.Duration
	first  map[string]time.Time
	order  []dedupEntry // in sighting order; order[head:] are live
	head   int
}

type dedupEntry struct {
	key string
	at  time.Time
}

func newDedupe(window time.Duration) *dedupe {
	return &dedupe{window: window, first: make(map[string]time.Time)}
}

// seen records key at t and reports whether it was already recorded inside the window.
func (d *dedupe) seen(key string, t time.Time) bool {
	for d.head < len(d.order) && !d.order[d.head].at.Add(d.window).After(t) {
		old := d.order[d.head]
		if at, ok := d.first[old.key]; ok && at.Equal(old.at) {
			delete(d.first, old.key)
		}
		d.order[d.head] = dedupEntry{}
		d.head++
	}
	if d.head > 1024 && d.head*2 > len(d.order) {
		d.order = append([]dedupEntry(nil), d.order[d.head:]...)
		d.head = 0
	}
	if _, dup := d.first[key]; dup {
		return true
	}
	d.first[key] = t
	d.order = append(d.order, dedupEntry{key: key, at: t})
	return false
}

// messageIDKey renders a message-id (string, uuid, ulong or binary) as a map key that keeps
// ids of different AMQP types apart. prepareStored has set one on every message.
func messageIDKey(m *amqp.Message) string {
	if m.Properties == nil || m.Properties.MessageID == nil {
		return ""
	}
	switch id := m.Properties.MessageID.(type) {
	case string:
		return "s:" + id
	case amqp.UUID:
		return "u:" + id.String()
	case []byte:
		return "b:" + string(id)
	default:
		return fmt.Sprintf("%T:%v", id, id)
	}
}
