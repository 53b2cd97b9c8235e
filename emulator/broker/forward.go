package broker

import (
	"errors"
	"fmt"
	"strings"

	"github.com/Azure/go-amqp"
)

// Auto-forwarding (https://learn.microsoft.com/azure/service-bus-messaging/service-bus-auto-forwarding):
// a queue or subscription with ForwardTo hands every message that becomes active on to that queue
// or topic, and with ForwardDeadLetteredMessagesTo every message it dead-letters (explicitly, at
// MaxDeliveryCount or at TTL expiry) on to that entity instead of its own dead-letter queue. A
// message may travel at most MaxForwardHops hops; the entity that would forward it once more
// dead-letters it with reason MaxTransferHopCountExceeded. When the destination cannot take the
// message (it was deleted) the source dead-letters it, as the service does when the destination
// is disabled or full.

// MaxForwardHops is the number of auto-forwarding hops a message may take (Azure: 4).
const MaxForwardHops = 4

// Dead-letter reasons of auto-forwarding. The first is Azure's (dead-letter queue documentation);
// the second is the emulator's for a destination that no longer exists.
const (
	ReasonMaxTransferHopCountExceeded = "MaxTransferHopCountExceeded"
	ReasonForwardingFailed            = "ForwardingFailed"
)

// forwardItem is a message on its way from one entity to another, sent after the source's lock
// is released.
type forwardItem struct {
	from *Entity
	to   string // a queue or topic path
	msg  *amqp.Message
	hops int // hops taken once delivered
}

// ForwardPath is the entity path a ForwardTo / ForwardDeadLetteredMessagesTo value names: the
// value itself, or the path of a URL such as "https://<namespace>/<queue>" (the admin client
// writes that form).
func ForwardPath(v string) string {
	if _, rest, ok := strings.Cut(v, "://"); ok {
		_, path, _ := strings.Cut(rest, "/")
		v = path
	}
	return strings.Trim(v, "/")
}

// checkForwards verifies that an entity's forwarding destinations name existing queues or
// topics other than itself.
func (b *Broker) checkForwards(path string, p QueueProperties) error {
	for _, f := range []struct{ name, v string }{{"ForwardTo", p.ForwardTo}, {"ForwardDeadLetteredMessagesTo", p.ForwardDeadLetteredMessagesTo}} {
		if f.v == "" {
			continue
		}
		to := ForwardPath(f.v)
		if strings.EqualFold(to, path) {
			return fmt.Errorf("%s %q: an entity cannot forward to itself", f.name, f.v)
		}
		if !b.sendTarget(to) {
			return fmt.Errorf("%s %q: no queue or topic %q exists: %w", f.name, f.v, to, ErrEntityNotFound)
		}
	}
	return nil
}

// sendTarget reports whether path names a queue or a topic.
func (b *Broker) sendTarget(path string) bool {
	b.mu.RLock()
	defer b.mu.RUnlock()
	key := strings.ToLower(path)
	_, q := b.queues[key]
	_, t := b.topics[key]
	return q || t
}

// forwardLocked takes an unlocked record out of e and queues it for to (sent when e's lock is
// released), or dead-letters it in e when it has already taken MaxForwardHops hops. Caller
// holds e.mu.
func (e *Entity) forwardLocked(r *record, to string) {
	if r.hops >= MaxForwardHops {
		e.moveToDLQLocked(r, ReasonMaxTransferHopCountExceeded,
			fmt.Sprintf("The maximum number of allowed hops (%d) when forwarding between entities has been exceeded.", MaxForwardHops))
		return
	}
	e.dropLocked(r)
	r.inReady = false
	e.count.Forwarded++
	e.outbox = append(e.outbox, forwardItem{from: e, to: ForwardPath(to), msg: r.msg, hops: r.hops + 1})
}

// unlock releases e.mu, then sends the messages e queued for forwarding meanwhile. Every
// method that may activate or dead-letter a message unlocks with it.
func (e *Entity) unlock() {
	out := e.outbox
	e.outbox = nil
	e.mu.Unlock()
	if len(out) > 0 {
		e.b.forward(out)
	}
}

// forward delivers forwarded messages to their destinations. No entity lock is held.
func (b *Broker) forward(items []forwardItem) {
	for _, it := range items {
		_, err := b.sendHops(it.to, []*amqp.Message{it.msg}, it.hops)
		if err == nil {
			continue
		}
		if errors.Is(err, ErrClosed) {
			return
		}
		it.from.log.Warn("auto-forwarding failed: the message is dead-lettered in the source", "to", it.to, "err", err)
		it.from.forwardFailed(it, err)
	}
}

// forwardFailed puts a message its destination refused into e's dead-letter queue.
func (e *Entity) forwardFailed(it forwardItem, err error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.gone != nil || e.dlq == nil {
		return
	}
	seq := int64(0)
	if s, ok := it.msg.Annotations[AnnotationSequenceNumber].(int64); ok {
		seq = s
	}
	r := &record{seq: seq, msg: it.msg, hops: it.hops - 1}
	e.moveToDLQLocked(r, ReasonForwardingFailed, fmt.Sprintf("Auto-forwarding to '%s' failed: %v", it.to, err))
}
