package emulator

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/Azure/go-amqp"

	wire "github.com/holdfast-dev/holdfast/emulator/amqp"
	"github.com/holdfast-dev/holdfast/emulator/broker"
	"github.com/holdfast-dev/holdfast/emulator/mgmt"
)

// batchMessageFormat is the message-format of SendMessageBatch envelopes: each data section of the
// envelope is one complete encoded message.
const batchMessageFormat = 0x80013700

// handleTransfer takes one transfer frame from the client, reassembles multi-frame deliveries and
// processes each complete one: entity sends go to the broker, $cbs and $management requests are
// answered. Unsettled deliveries are acknowledged with a settled disposition.
func (c *conn) handleTransfer(s *session, t *wire.Transfer, payload []byte) *wire.Error {
	c.mu.Lock()
	s.nextIncomingID++
	s.sinceFlow++
	l := s.links[t.Handle]
	if l == nil || !l.clientSends {
		c.mu.Unlock()
		return &wire.Error{Condition: condUnattachedHandle, Description: fmt.Sprintf("transfer on handle %d, which is not an attached receiving link", t.Handle)}
	}
	l.active = time.Now()
	if l.in == nil {
		if t.DeliveryID == nil {
			c.mu.Unlock()
			return &wire.Error{Condition: condNotAllowed, Description: "first transfer of a delivery without delivery-id"}
		}
		l.in = &incoming{deliveryID: *t.DeliveryID, settled: t.Settled != nil && *t.Settled}
		if t.MessageFormat != nil {
			l.in.format = *t.MessageFormat
		}
	}
	in := l.in
	if t.Settled != nil && *t.Settled {
		in.settled = true
	}
	if !in.tooLarge {
		if uint64(len(in.buf))+uint64(len(payload)) > c.srv.opts.MaxMessageSize {
			in.tooLarge, in.buf = true, nil
		} else if in.buf == nil {
			in.buf = payload // a fresh copy from the frame reader: no need to copy again
		} else {
			in.buf = append(in.buf, payload...)
		}
	}
	if t.More && !t.Aborted {
		if s.sinceFlow >= sessionWindow/2 {
			_ = s.sendLocked(s.flowLocked(), nil)
		}
		c.mu.Unlock()
		return nil
	}
	l.in = nil
	l.rcvCount++
	if l.creditLeft > 0 {
		l.creditLeft--
	}
	if l.creditLeft <= senderCredit/2 {
		_ = s.sendLocked(l.creditFlowLocked(), nil)
	} else if s.sinceFlow >= sessionWindow/2 {
		_ = s.sendLocked(s.flowLocked(), nil)
	}
	c.mu.Unlock()
	if t.Aborted {
		return nil
	}

	state := c.process(l, in)
	if in.settled {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	_ = s.sendLocked(&wire.Disposition{Role: wire.RoleReceiver, First: in.deliveryID, Settled: true, State: state}, nil)
	return nil
}

// process handles one complete delivery from the client and returns its outcome.
func (c *conn) process(l *link, in *incoming) wire.DeliveryState {
	if in.tooLarge {
		return &wire.Rejected{Error: &wire.Error{
			Condition:   condMessageSize,
			Description: fmt.Sprintf("The message size exceeds the limit of %d bytes.", c.srv.opts.MaxMessageSize),
		}}
	}
	msgs, err := decodeMessages(in.format, in.buf)
	if err != nil {
		return &wire.Rejected{Error: &wire.Error{Condition: condDecodeError, Description: err.Error()}}
	}
	switch l.kind {
	case kindEntity:
		if e := c.authorize(l.path, mgmt.RightSend); e != nil { // the token may have expired since attach
			return &wire.Rejected{Error: e}
		}
		if err := c.srv.broker.Send(l.path, msgs...); err != nil {
			c.log.Debug("send refused", "path", l.path, "err", err)
			return &wire.Rejected{Error: brokerError(err)}
		}
	case kindCBS:
		for _, m := range msgs {
			reply, g, ok := c.srv.mgmt.CBS(m)
			if ok {
				c.addGrant(g)
			}
			c.routeReply(m, reply)
		}
	case kindMgmt:
		if d := c.srv.mgmt.Delay(); d > 0 {
			c.wg.Add(1)
			go c.answerLater(d, l.path, msgs)
			break
		}
		for _, m := range msgs {
			c.routeReply(m, c.srv.mgmt.Answer(l.path, m, c.callerFor(l.path, m)))
		}
	}
	return &wire.Accepted{}
}

// answerLater answers management requests after the injected delay d (the DelayManagement
// fault), so that only these replies wait, not the connection. It runs in its own goroutine,
// owned by c.wg; when the connection closes first the requests go unanswered.
func (c *conn) answerLater(d time.Duration, path string, msgs []*amqp.Message) {
	defer c.wg.Done()
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-c.done:
		return
	}
	for _, m := range msgs {
		c.routeReply(m, c.srv.mgmt.Answer(path, m, c.callerFor(path, m)))
	}
}

// decodeMessages decodes a delivery payload: one message, or a batch envelope of messages.
func decodeMessages(format uint32, payload []byte) ([]*amqp.Message, error) {
	var m amqp.Message
	if err := m.UnmarshalBinary(payload); err != nil {
		return nil, fmt.Errorf("decode message: %w", err)
	}
	switch format {
	case 0:
		return []*amqp.Message{&m}, nil
	case batchMessageFormat:
		msgs := make([]*amqp.Message, 0, len(m.Data))
		for i, d := range m.Data {
			var bm amqp.Message
			if err := bm.UnmarshalBinary(d); err != nil {
				return nil, fmt.Errorf("decode message %d of the batch: %w", i, err)
			}
			msgs = append(msgs, &bm)
		}
		return msgs, nil
	default:
		return nil, fmt.Errorf("unsupported message-format %#x", format)
	}
}

// brokerError maps a broker error to the AMQP condition the SDK recognises.
func brokerError(err error) *wire.Error {
	cond := condInternalError
	switch {
	case errors.Is(err, broker.ErrEntityNotFound):
		cond = condNotFound
	case errors.Is(err, broker.ErrSendToSubqueue):
		cond = condNotAllowed
	case errors.Is(err, broker.ErrInvalidMessage):
		cond = condInvalidField
	case errors.Is(err, broker.ErrLockLost):
		cond = condLockLost
	case errors.Is(err, broker.ErrNotAllowed):
		cond = condNotAllowed
	case errors.Is(err, broker.ErrEntityDisabled):
		cond = condEntityDisabled
	}
	return &wire.Error{Condition: cond, Description: err.Error()}
}

// routeReply sends a $cbs/$management reply on the link named by the request's reply-to. Replies are
// sent settled; a reply waits on the link when it has no credit.
func (c *conn) routeReply(req, reply *amqp.Message) {
	if req.Properties == nil || req.Properties.ReplyTo == nil || *req.Properties.ReplyTo == "" {
		c.log.Info("management request without reply-to dropped")
		return
	}
	payload, err := reply.MarshalBinary()
	if err != nil {
		c.log.Error("encode management reply", "err", err)
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	l := c.replyLinks[*req.Properties.ReplyTo]
	if l == nil {
		c.log.Info("no link for reply-to; reply dropped", "reply-to", *req.Properties.ReplyTo)
		return
	}
	l.replies = append(l.replies, payload)
	l.flushRepliesLocked()
}

// flushRepliesLocked sends waiting replies while the link has credit.
func (l *link) flushRepliesLocked() {
	for len(l.replies) > 0 && l.credit > 0 && !l.detached {
		p := l.replies[0]
		l.replies[0] = nil
		l.replies = l.replies[1:]
		var tag [8]byte
		binary.BigEndian.PutUint64(tag[:], uint64(l.deliveryCount))
		if _, err := l.transferLocked(tag[:], p, true); err != nil {
			return
		}
	}
}

// transferLocked sends one delivery on l, split into frames that fit the client's max-frame-size, and
// consumes one credit. It returns the delivery-id.
func (l *link) transferLocked(tag, payload []byte, settled bool) (uint32, error) {
	s := l.s
	l.active = time.Now()
	did := s.nextDeliveryID
	s.nextDeliveryID++
	l.deliveryCount++
	if l.credit > 0 {
		l.credit--
	}
	var format uint32
	t := &wire.Transfer{Handle: l.handle, DeliveryID: &did, DeliveryTag: tag, MessageFormat: &format, Settled: &settled}
	maxPayload, err := l.c.maxTransferPayload(t, len(payload))
	if err != nil {
		return did, err
	}
	for {
		chunk := payload
		if len(chunk) > maxPayload {
			chunk = payload[:maxPayload]
			t.More = true
		} else {
			t.More = false
		}
		if err := s.sendLocked(t, chunk); err != nil {
			return did, err
		}
		s.nextOutgoingID++
		payload = payload[len(chunk):]
		if !t.More {
			return did, nil
		}
		// Continuation frames repeat the delivery-id; the rest is taken from the first frame.
		t = &wire.Transfer{Handle: l.handle, DeliveryID: &did}
	}
}

// transferOverhead bounds the frame header plus a first transfer performative without its delivery tag:
// handle, delivery-id, message-format (five bytes each at most), settled, more and the list framing.
const transferOverhead = 8 + 48

// maxTransferPayload returns how many payload bytes fit in a frame with performative t, for a payload
// of n bytes. Payloads that clearly fit skip encoding t.
func (c *conn) maxTransferPayload(t *wire.Transfer, n int) (int, error) {
	limit := uint64(c.peerMaxFrame)
	const frameCap = 1 << 20 // never build frames above 1 MiB, even for peers that accept anything
	if limit > frameCap {
		limit = frameCap
	}
	if uint64(n+transferOverhead+len(t.DeliveryTag)) <= limit {
		return n, nil
	}
	more := t.More
	t.More = true
	hdr, err := wire.AppendFrame(nil, wire.Frame{Type: wire.FrameAMQP, Channel: 0xffff, Body: t})
	t.More = more
	if err != nil {
		return 0, fmt.Errorf("encode transfer: %w", err)
	}
	room := int(limit) - len(hdr)
	if room < 1 {
		return 0, fmt.Errorf("peer max-frame-size %d cannot carry a transfer", c.peerMaxFrame)
	}
	return room, nil
}
