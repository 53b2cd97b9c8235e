package emulator

import (
	"encoding/binary"
	"maps"
	"slices"
	"time"

	"github.com/Azure/go-amqp"

	wire "github.com/holdfast-dev/holdfast/emulator/amqp"
	"github.com/holdfast-dev/holdfast/emulator/broker"
)

// Application property names that carry the dead-letter reason and description.
const (
	deadLetterReasonKey      = "DeadLetterReason"
	deadLetterDescriptionKey = "DeadLetterErrorDescription"
)

// run delivers messages from the entity while the client grants credit. It is the link's own goroutine,
// owned by conn.wg, and returns when the link is detached, the connection closes or the entity is
// deleted (the link is then detached with amqp:not-found).
//
// With credit, each round takes the entity's Available channel before looking for messages, so a
// message that arrives in between wakes it. Without credit it waits for a flow only.
//
// A session link receives its session's messages only, and is detached with
// com.microsoft:session-lock-lost when the session lock ends under it. A link with credit on an
// entity whose receiving is disabled (broker.Entity.ReceiveError) is detached with
// com.microsoft:entity-disabled; a status change wakes it.
func (l *link) run() {
	defer l.c.wg.Done()
	var lost <-chan struct{} // nil without a session: never ready
	if l.sess != nil {
		lost = l.sess.Lost()
	}
	for {
		l.c.mu.Lock()
		detached, credit := l.detached, l.credit
		l.c.mu.Unlock()
		if detached {
			return
		}
		if isClosed(lost) {
			l.sessionLost()
			return
		}
		statusChanged := l.entity.StatusChanged()
		var avail <-chan struct{} // nil without credit: never ready
		if credit > 0 {
			if err := l.entity.ReceiveError(); err != nil {
				l.detachDisabled(err)
				return
			}
			var ds []broker.Delivery
			if l.sess != nil {
				avail = l.sess.Available()
				ds = l.sess.Receive(int(min(credit, maxReceiveBatch)), l.mode)
			} else {
				avail = l.entity.Available()
				ds = l.entity.Receive(int(min(credit, maxReceiveBatch)), l.mode)
			}
			if len(ds) > 0 {
				l.deliver(ds)
				continue
			}
			if isClosed(avail) && l.entityGone() {
				l.detachGone()
				return
			}
		}
		l.c.mu.Lock()
		if l.drain && !l.detached {
			l.finishDrainLocked()
		}
		l.c.mu.Unlock()
		select {
		case <-avail:
		case <-statusChanged:
		case <-l.wake:
		case <-lost:
		case <-l.done:
			return
		}
	}
}

func isClosed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// entityGone reports whether the link's entity was deleted (or replaced by a new one of the same name).
func (l *link) entityGone() bool {
	e, err := l.c.srv.broker.Entity(l.path)
	return err != nil || e != l.entity
}

// detachGone detaches the link from the server side because its entity no longer exists. The link stays
// in its session until the client answers with its own detach.
func (l *link) detachGone() {
	l.c.mu.Lock()
	defer l.c.mu.Unlock()
	l.forceDetachLocked(&wire.Error{Condition: condNotFound, Description: "The messaging entity '" + l.path + "' was deleted."})
}

// detachDisabled detaches the link from the server side because receiving from its entity is
// disabled (err is the entity's *broker.DisabledError). The service accepts a receive link on
// a disabled entity and fails it once the client grants credit, detaching it with
// com.microsoft:entity-disabled (MessagingEntityDisabled; azure-sdk-for-js#19189 describes
// it); links open when the status changes fail the same way. The SDK treats the condition as
// fatal: ReceiveMessages returns it.
func (l *link) detachDisabled(err error) {
	l.c.mu.Lock()
	defer l.c.mu.Unlock()
	l.forceDetachLocked(&wire.Error{Condition: condEntityDisabled, Description: err.Error()})
}

// deliver sends deliveries to the client. PeekLock deliveries that can no longer be sent (link gone,
// credit withdrawn) are released at once.
func (l *link) deliver(ds []broker.Delivery) {
	payloads := make([][]byte, len(ds))
	for i, d := range ds {
		p, err := broker.MarshalMessage(d.Message)
		if err != nil {
			l.c.log.Error("encode delivery", "path", l.path, "sequence-number", d.SequenceNumber, "err", err)
		}
		payloads[i] = p
	}
	var unsent []broker.Delivery
	l.c.mu.Lock()
	for i, d := range ds {
		if payloads[i] == nil || l.detached || (l.credit == 0 && l.mode == broker.PeekLock) {
			unsent = append(unsent, d)
			continue
		}
		settled := l.mode == broker.ReceiveAndDelete
		did, err := l.transferLocked(deliveryTag(d), payloads[i], settled)
		if err != nil {
			// The connection is going down; the lock expires or another connection settles it.
			continue
		}
		if !settled {
			l.s.unsettled[did] = pendingSettle{link: l, entity: l.entity, token: d.LockToken}
		}
	}
	l.c.mu.Unlock()
	for _, d := range unsent {
		if l.mode == broker.PeekLock {
			_ = l.entity.Release(d.LockToken)
		}
	}
}

// deliveryTag is the lock token in .NET GUID byte order (the SDK turns it back into RFC order). Settled
// (ReceiveAndDelete) deliveries have no lock token; their tag is the 8-byte sequence number, which the
// SDK does not mistake for a lock token.
func deliveryTag(d broker.Delivery) []byte {
	u := d.LockToken
	if u == (amqp.UUID{}) {
		return binary.BigEndian.AppendUint64(nil, uint64(d.SequenceNumber))
	}
	tag := make([]byte, 16)
	copy(tag, u[:])
	tag[0], tag[1], tag[2], tag[3] = u[3], u[2], u[1], u[0]
	tag[4], tag[5] = u[5], u[4]
	tag[6], tag[7] = u[7], u[6]
	return tag
}

// settlement is one delivery a client disposition refers to.
type settlement struct {
	id    uint32
	p     pendingSettle
	found bool
}

// handleDisposition settles PeekLock deliveries in the broker and, unless the client already settled,
// acknowledges each with a settled disposition.
func (c *conn) handleDisposition(s *session, d *wire.Disposition) {
	if d.Role != wire.RoleReceiver {
		return // the client settling its own transfers: the server settled them already
	}
	last := d.First
	if d.Last != nil && *d.Last >= d.First {
		last = *d.Last
	}
	var todo []settlement
	c.mu.Lock()
	if span := uint64(last) - uint64(d.First); span > uint64(len(s.unsettled))+64 {
		// A huge range: walk the unsettled map instead of every id in it.
		for _, id := range slices.Sorted(maps.Keys(s.unsettled)) {
			if id >= d.First && id <= last {
				todo = append(todo, settlement{id: id, p: s.unsettled[id], found: true})
				delete(s.unsettled, id)
			}
		}
	} else {
		for id := uint64(d.First); id <= uint64(last); id++ {
			p, ok := s.unsettled[uint32(id)]
			delete(s.unsettled, uint32(id))
			todo = append(todo, settlement{id: uint32(id), p: p, found: ok})
		}
	}
	now := time.Now()
	for _, st := range todo {
		if st.found {
			st.p.link.active = now
		}
	}
	c.mu.Unlock()

	for _, st := range todo {
		ack := c.settle(st, d.State)
		if d.Settled || ack == nil {
			continue
		}
		c.mu.Lock()
		_ = s.sendLocked(&wire.Disposition{Role: wire.RoleSender, First: st.id, Settled: true, State: ack}, nil)
		c.mu.Unlock()
	}
}

// settle applies one outcome in the broker and returns the state to acknowledge it with (nil: no
// acknowledgement, for a non-terminal state).
func (c *conn) settle(st settlement, state wire.DeliveryState) wire.DeliveryState {
	if _, ok := state.(*wire.Received); ok {
		return nil
	}
	if !st.found {
		return &wire.Rejected{Error: &wire.Error{Condition: condLockLost, Description: broker.LockLostDescription}}
	}
	e, tok := st.p.entity, st.p.token
	var err error
	ack := state
	switch s := state.(type) {
	case *wire.Accepted:
		err = e.Complete(tok)
	case *wire.Modified:
		props := annotationsToProperties(s.MessageAnnotations)
		if s.UndeliverableHere {
			err = e.Defer(tok, props)
		} else {
			err = e.Abandon(tok, props)
		}
	case *wire.Rejected:
		reason, desc, props := deadLetterInfo(s.Error)
		err = e.DeadLetter(tok, reason, desc, props)
		ack = &wire.Rejected{} // never echo the error: the SDK would read it as a failure
	case *wire.Released, nil:
		err = e.Release(tok)
		ack = &wire.Released{}
	default:
		err = e.Release(tok)
	}
	if err != nil {
		c.log.Debug("settlement failed", "path", e.Path(), "err", err)
		return &wire.Rejected{Error: brokerError(err)}
	}
	return ack
}

// annotationsToProperties converts modified.message-annotations into the application properties to
// set on the message (nil when there are none).
func annotationsToProperties(m map[any]any) map[string]any {
	if len(m) == 0 {
		return nil
	}
	props := make(map[string]any, len(m))
	for k, v := range m {
		if key, ok := mapKey(k); ok {
			props[key] = fromWire(v)
		}
	}
	return props
}

// deadLetterInfo splits rejected.error into reason, description and other properties.
func deadLetterInfo(e *wire.Error) (reason, desc string, props map[string]any) {
	if e == nil {
		return "", "", nil
	}
	for k, v := range e.Info {
		switch string(k) {
		case deadLetterReasonKey:
			reason, _ = v.(string)
		case deadLetterDescriptionKey:
			desc, _ = v.(string)
		default:
			if props == nil {
				props = make(map[string]any)
			}
			props[string(k)] = fromWire(v)
		}
	}
	return reason, desc, props
}

func mapKey(k any) (string, bool) {
	switch k := k.(type) {
	case string:
		return k, true
	case wire.Symbol:
		return string(k), true
	default:
		return "", false
	}
}

// fromWire converts a value decoded by our codec into the types go-amqp encodes the same way.
func fromWire(v any) any {
	switch v := v.(type) {
	case wire.Symbol:
		return amqp.Symbol(v)
	case wire.UUID:
		return amqp.UUID(v)
	case wire.Char:
		return int32(v)
	case wire.Described:
		return fromWire(v.Value)
	case []any:
		out := make([]any, len(v))
		for i, x := range v {
			out[i] = fromWire(x)
		}
		return out
	case map[any]any:
		out := make(map[string]any, len(v))
		for k, x := range v {
			if key, ok := mapKey(k); ok {
				out[key] = fromWire(x)
			}
		}
		return out
	default:
		return v
	}
}
