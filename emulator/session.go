package emulator

import (
	"fmt"
	"math"
	"time"

	"github.com/Azure/go-amqp"

	wire "github.com/holdfast-dev/holdfast/emulator/amqp"
	"github.com/holdfast-dev/holdfast/emulator/broker"
)

// sessionWindow is the incoming and outgoing window the server advertises. The server re-advertises it
// (with its next-incoming-id) at least every sessionWindow/2 transfer frames, so the client never stalls.
const sessionWindow = 5000

// session is one AMQP session. The server uses the client's channel number for its own half.
// Every field is guarded by conn.mu; links is written only by the connection goroutine.
type session struct {
	c  *conn
	ch uint16

	nextIncomingID uint32 // transfer-id of the next transfer frame from the client
	sinceFlow      uint32 // transfer frames received since the last flow the server sent
	nextOutgoingID uint32 // transfer-id of the next transfer frame to the client
	nextDeliveryID uint32 // delivery-id of the next delivery to the client

	links     map[uint32]*link         // by handle (the server uses the client's handle numbers)
	unsettled map[uint32]pendingSettle // deliveries to the client awaiting its disposition, by delivery-id
	ended     bool
}

// pendingSettle is what a client disposition of a PeekLock delivery settles.
type pendingSettle struct {
	link   *link
	entity *broker.Entity
	token  amqp.UUID
}

func (c *conn) handleBegin(ch uint16, b *wire.Begin) *wire.Error {
	if b.RemoteChannel != nil {
		return &wire.Error{Condition: condNotAllowed, Description: "begin with remote-channel: the server never begins sessions"}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.sessions[ch] != nil {
		return &wire.Error{Condition: condNotAllowed, Description: fmt.Sprintf("channel %d already has a session", ch)}
	}
	s := &session{
		c:              c,
		ch:             ch,
		nextIncomingID: b.NextOutgoingID,
		links:          make(map[uint32]*link),
		unsettled:      make(map[uint32]pendingSettle),
	}
	c.sessions[ch] = s
	remote := ch
	_ = c.writeFrame(wire.Frame{Type: wire.FrameAMQP, Channel: ch, Body: &wire.Begin{
		RemoteChannel:  &remote,
		NextOutgoingID: s.nextOutgoingID,
		IncomingWindow: sessionWindow,
		OutgoingWindow: sessionWindow,
		HandleMax:      math.MaxUint32 - 1,
	}})
	return nil
}

// handleEnd ends the session: its links are detached implicitly and the channel can be reused.
func (c *conn) handleEnd(s *session, e *wire.End) {
	if e.Error != nil {
		c.log.Info("client ended a session with an error", "channel", s.ch, "condition", e.Error.Condition, "description", e.Error.Description)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	s.endLocked()
	delete(c.sessions, s.ch)
	_ = c.writeFrame(wire.Frame{Type: wire.FrameAMQP, Channel: s.ch, Body: &wire.End{}})
}

// endLocked detaches every link of s and marks it ended. Unsettled PeekLock deliveries stay locked.
func (s *session) endLocked() {
	for h, l := range s.links {
		l.detachLocked()
		delete(s.links, h)
	}
	s.ended = true
}

// flowLocked returns a session flow carrying the current session state; the caller adds link fields.
func (s *session) flowLocked() *wire.Flow {
	nid := s.nextIncomingID
	s.sinceFlow = 0
	return &wire.Flow{
		NextIncomingID: &nid,
		IncomingWindow: sessionWindow,
		NextOutgoingID: s.nextOutgoingID,
		OutgoingWindow: sessionWindow,
	}
}

// sendLocked writes a frame on the session's channel unless the session has ended.
func (s *session) sendLocked(body wire.Performative, payload []byte) error {
	if s.ended {
		return errSessionEnded
	}
	return s.c.writeFrame(wire.Frame{Type: wire.FrameAMQP, Channel: s.ch, Body: body, Payload: payload})
}

func (c *conn) handleFlow(s *session, f *wire.Flow) *wire.Error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if f.Handle == nil {
		if f.Echo {
			_ = s.sendLocked(s.flowLocked(), nil)
		}
		return nil
	}
	l := s.links[*f.Handle]
	if l == nil {
		// A flow racing a detach, or for an attach the server refused: nothing to update.
		c.log.Debug("flow for a handle that is not attached", "channel", s.ch, "handle", *f.Handle)
		return nil
	}
	if l.clientSends {
		l.active = time.Now()
		if f.Echo {
			_ = s.sendLocked(l.creditFlowLocked(), nil)
		}
		return nil
	}
	if f.LinkCredit != nil {
		// credit = delivery-count(receiver) + link-credit(receiver) - delivery-count(sender), mod 2^32.
		dc := l.deliveryCount
		if f.DeliveryCount != nil {
			dc = *f.DeliveryCount
		}
		l.credit = dc + *f.LinkCredit - l.deliveryCount
		if l.credit > math.MaxInt32 { // a count from the client's future: treat as no credit
			l.credit = 0
		}
	}
	if f.Drain {
		l.drain = true
	}
	l.active = time.Now()
	if l.kind == kindEntity {
		l.signal()
	} else {
		l.flushRepliesLocked()
		if l.drain {
			l.finishDrainLocked()
		}
	}
	if f.Echo {
		_ = s.sendLocked(l.sendFlowLocked(false), nil)
	}
	return nil
}
