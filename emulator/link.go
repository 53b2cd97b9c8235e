package emulator

import (
	"errors"
	"fmt"
	"strings"
	"time"

	wire "github.com/holdfast-dev/holdfast/emulator/amqp"
	"github.com/holdfast-dev/holdfast/emulator/broker"
	"github.com/holdfast-dev/holdfast/emulator/mgmt"
)

const (
	// senderCredit is the credit the server grants each client sender; it is topped up once half is used.
	senderCredit = 1000
	// maxReceiveBatch caps one broker Receive call of a receiver link.
	maxReceiveBatch = 1000
	// managementSuffix ends the address of a $management link.
	managementSuffix = "/$management"
	cbsAddress       = "$cbs"
)

var errSessionEnded = errors.New("session ended")

type linkKind int

const (
	kindEntity linkKind = iota // a queue, subscription or dead-letter queue
	kindCBS                    // $cbs
	kindMgmt                   // <entity>/$management
)

// link is one attached link. The server takes the opposite role of the client: clientSends links carry
// messages and requests to the server, the others carry deliveries and replies to the client.
//
// Immutable fields are set before the link is published; the rest is guarded by conn.mu.
type link struct {
	c           *conn
	s           *session
	name        string
	handle      uint32
	clientSends bool
	kind        linkKind
	path        string // entity path (the address without the $management suffix for kindMgmt)

	// Entity receiver links (client receives from an entity).
	entity *broker.Entity
	mode   broker.ReceiveMode
	// sess is the session the link holds on a session entity (nil otherwise, or while an
	// accept-next attach waits for a session: then pending is set). Written before the link's
	// goroutine starts, under conn.mu.
	sess    *broker.SessionLock
	pending *wire.Attach  // the client's attach while an accept-next waits for a session
	wake    chan struct{} // capacity 1: credit or drain changed
	done    chan struct{} // closed when the link is detached

	replyKeys []string // keys of this link in conn.replyLinks

	// Guarded by conn.mu.
	active     time.Time // last attach, flow, transfer or disposition (idle detach)
	detached   bool
	detachSent bool // the server detached first; the client's detach needs no answer

	// Client sender links (server receives).
	rcvCount   uint32    // deliveries received (the receiver's delivery-count)
	creditLeft uint32    // credit the client still holds
	in         *incoming // delivery being reassembled from frames with more=true

	// Client receiver links (server sends).
	deliveryCount uint32   // the sender's delivery-count
	credit        uint32   // link credit the client granted
	drain         bool     // the client asked to drain
	replies       [][]byte // encoded replies waiting for credit
}

// incoming is a delivery from the client being reassembled.
type incoming struct {
	deliveryID uint32
	settled    bool
	format     uint32
	buf        []byte
	tooLarge   bool
}

// classify maps an address to a link kind and an entity path. Leading slashes and an
// "amqp[s]://host[:port]" or "sb://host[:port]" prefix are ignored.
func classify(addr string) (linkKind, string) {
	if i := strings.Index(addr, "://"); i >= 0 {
		rest := addr[i+3:]
		if j := strings.IndexByte(rest, '/'); j >= 0 {
			addr = rest[j:]
		} else {
			addr = ""
		}
	}
	addr = strings.TrimLeft(addr, "/")
	if strings.EqualFold(addr, cbsAddress) {
		return kindCBS, addr
	}
	if p, ok := cutSuffixFold(addr, managementSuffix); ok && p != "" {
		return kindMgmt, p
	}
	return kindEntity, addr
}

func sourceAddress(s *wire.Source) string {
	if s == nil || s.Address == nil {
		return ""
	}
	return *s.Address
}

func targetAddress(t *wire.Target) string {
	if t == nil || t.Address == nil {
		return ""
	}
	return *t.Address
}

func (c *conn) handleAttach(s *session, a *wire.Attach) *wire.Error {
	c.mu.Lock()
	inUse := s.links[a.Handle] != nil
	c.mu.Unlock()
	if inUse {
		return &wire.Error{Condition: condHandleInUse, Description: fmt.Sprintf("handle %d is already attached", a.Handle)}
	}
	if a.Role == wire.RoleSender {
		c.attachClientSender(s, a)
	} else {
		c.attachClientReceiver(s, a)
	}
	return nil
}

// attachClientSender attaches a link on which the client sends messages ($cbs, $management or an entity).
func (c *conn) attachClientSender(s *session, a *wire.Attach) {
	addr := targetAddress(a.Target)
	kind, path := classify(addr)
	if kind != kindCBS && !c.srv.broker.Known(path) {
		c.rejectAttach(s, a, notFound(addr))
		return
	}
	if kind == kindCBS && c.hasCBSLink(true) {
		c.rejectAttach(s, a, errSecondCBSLink)
		return
	}
	need := mgmt.RightSend
	if kind == kindMgmt {
		need = 0 // any claim; each operation checks its own
	}
	if e := c.authorize(path, need); kind != kindCBS && e != nil {
		c.rejectAttach(s, a, e)
		return
	}
	l := &link{c: c, s: s, name: a.Name, handle: a.Handle, clientSends: true, kind: kind, path: path, active: time.Now()}
	if a.InitialDeliveryCount != nil {
		l.rcvCount = *a.InitialDeliveryCount
	}
	maxSize := c.srv.opts.MaxMessageSize
	c.mu.Lock()
	defer c.mu.Unlock()
	c.addLinkLocked(s, l)
	_ = s.sendLocked(&wire.Attach{
		Name:           a.Name,
		Handle:         a.Handle,
		Role:           wire.RoleReceiver,
		SndSettleMode:  a.SndSettleMode,
		RcvSettleMode:  a.RcvSettleMode,
		Source:         a.Source,
		Target:         a.Target,
		MaxMessageSize: &maxSize,
	}, nil)
	_ = s.sendLocked(l.creditFlowLocked(), nil)
	c.log.Debug("attached client sender", "link", a.Name, "address", addr)
}

// attachClientReceiver attaches a link on which the server sends: deliveries from an entity, or
// $cbs/$management replies.
func (c *conn) attachClientReceiver(s *session, a *wire.Attach) {
	addr := sourceAddress(a.Source)
	kind, path := classify(addr)
	l := &link{c: c, s: s, name: a.Name, handle: a.Handle, kind: kind, path: path, done: make(chan struct{}), active: time.Now()}
	switch kind {
	case kindCBS:
		if c.hasCBSLink(false) {
			c.rejectAttach(s, a, errSecondCBSLink)
			return
		}
	case kindMgmt:
		if !c.srv.broker.Known(path) {
			c.rejectAttach(s, a, notFound(addr))
			return
		}
		if e := c.authorize(path, 0); e != nil {
			c.rejectAttach(s, a, e)
			return
		}
	case kindEntity:
		e, err := c.srv.broker.Entity(path)
		if err != nil {
			c.rejectAttach(s, a, notFound(addr))
			return
		}
		if ae := c.authorize(path, mgmt.RightListen); ae != nil {
			c.rejectAttach(s, a, ae)
			return
		}
		l.entity = e
		l.mode = broker.PeekLock
		if a.SndSettleMode != nil && *a.SndSettleMode == wire.SndSettled {
			l.mode = broker.ReceiveAndDelete
		}
		l.wake = make(chan struct{}, 1)
		if done := c.attachSession(s, a, l); done {
			return
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.addLinkLocked(s, l)
	if kind != kindEntity {
		// Replies are routed by the request's reply-to, which names the reply link's target address
		// (Go, .NET) or its name (JavaScript).
		for _, k := range []string{targetAddress(a.Target), a.Name} {
			if k != "" {
				c.replyLinks[k] = l
				l.replyKeys = append(l.replyKeys, k)
			}
		}
	}
	c.completeReceiverAttachLocked(s, a, l)
}

// completeReceiverAttachLocked answers a client receiver's attach and, for an entity, starts
// the link's goroutine. On a session link the source's session filter carries the session id
// and the link properties the lock's expiry, as the service sends them. Caller holds c.mu.
func (c *conn) completeReceiverAttachLocked(s *session, a *wire.Attach, l *link) {
	var zero uint32
	maxSize := c.srv.opts.MaxMessageSize
	reply := &wire.Attach{
		Name:                 a.Name,
		Handle:               a.Handle,
		Role:                 wire.RoleSender,
		SndSettleMode:        a.SndSettleMode,
		RcvSettleMode:        a.RcvSettleMode,
		Source:               a.Source,
		Target:               a.Target,
		InitialDeliveryCount: &zero,
		MaxMessageSize:       &maxSize,
	}
	if l.sess != nil {
		reply.Source, reply.Properties = sessionAttach(a.Source, l.sess)
	}
	_ = s.sendLocked(reply, nil)
	if l.kind == kindEntity {
		c.wg.Add(1)
		go l.run()
	}
	c.log.Debug("attached client receiver", "link", a.Name, "path", l.path, "mode", l.mode)
}

// errSecondCBSLink refuses a second $cbs link in one direction on a connection: the service
// allows one sender/receiver pair per connection and answers amqp:not-allowed, on which the SDK
// resets the connection (its cbs.go; Microsoft's TestAMQPLinksCBSLinkStillOpen).
var errSecondCBSLink = &wire.Error{Condition: condNotAllowed,
	Description: "A $cbs link is already open in this direction on this connection: only one sender/receiver pair is allowed per connection."}

// hasCBSLink reports whether the connection already has an attached $cbs link on which the
// client sends (clientSends) or receives.
func (c *conn) hasCBSLink(clientSends bool) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, s := range c.sessions {
		for _, l := range s.links {
			if l.kind == kindCBS && l.clientSends == clientSends && !l.detached {
				return true
			}
		}
	}
	return false
}

func notFound(addr string) *wire.Error {
	return &wire.Error{Condition: condNotFound, Description: fmt.Sprintf("The messaging entity '%s' could not be found.", addr)}
}

// rejectAttach refuses an attach the AMQP way: an attach with a null terminus, then a closing detach
// carrying the error.
func (c *conn) rejectAttach(s *session, a *wire.Attach, e *wire.Error) {
	c.log.Debug("attach refused", "link", a.Name, "condition", e.Condition, "description", e.Description)
	c.mu.Lock()
	defer c.mu.Unlock()
	_ = s.sendLocked(nullTerminusAttach(a), nil)
	_ = s.sendLocked(&wire.Detach{Handle: a.Handle, Closed: true, Error: e}, nil)
}

// nullTerminusAttach is the attach answering a refused client attach a: the server's terminus
// is null (the refusal's detach follows).
func nullTerminusAttach(a *wire.Attach) *wire.Attach {
	reply := &wire.Attach{Name: a.Name, Handle: a.Handle, SndSettleMode: a.SndSettleMode, RcvSettleMode: a.RcvSettleMode}
	if a.Role == wire.RoleSender {
		reply.Role = wire.RoleReceiver
		reply.Source = a.Source
	} else {
		reply.Role = wire.RoleSender
		reply.Target = a.Target
	}
	return reply
}

func (c *conn) handleDetach(s *session, d *wire.Detach) {
	c.mu.Lock()
	defer c.mu.Unlock()
	l := s.links[d.Handle]
	if l == nil {
		return // the client answering a detach the server sent after refusing an attach
	}
	if d.Error != nil {
		c.log.Debug("client detached with an error", "link", l.name, "condition", d.Error.Condition, "description", d.Error.Description)
	}
	if l.pending != nil && !l.detachSent {
		// An accept-next attach still waiting for a session: answer it (no terminus) first.
		_ = s.sendLocked(nullTerminusAttach(l.pending), nil)
	}
	l.detachLocked()
	delete(s.links, d.Handle)
	if !l.detachSent {
		_ = s.sendLocked(&wire.Detach{Handle: d.Handle, Closed: true}, nil)
	}
}

// addLinkLocked publishes an attached link in its session and counts it on the connection.
// Caller holds c.mu.
func (c *conn) addLinkLocked(s *session, l *link) {
	s.links[l.handle] = l
	c.liveLinks++
	c.everLinked = true
}

// detachLocked stops the link: its goroutine returns, replies are no longer routed to it and its
// unsettled deliveries are forgotten (the SDK settles those through $management; the locks stay).
func (l *link) detachLocked() {
	if l.detached {
		return
	}
	l.detached = true
	if l.c.liveLinks--; l.c.liveLinks == 0 {
		l.c.noLinksSince = time.Now()
	}
	if l.sess != nil {
		l.sess.Release() // closing a session receiver frees the session at once (lock order: conn.mu, then the entity's)
	}
	if l.done != nil {
		close(l.done)
	}
	if l.entity != nil {
		for id, p := range l.s.unsettled {
			if p.link == l {
				delete(l.s.unsettled, id)
			}
		}
	}
	for _, k := range l.replyKeys {
		if l.c.replyLinks[k] == l {
			delete(l.c.replyLinks, k)
		}
	}
}

// signal wakes the link goroutine without blocking.
func (l *link) signal() {
	select {
	case l.wake <- struct{}{}:
	default:
	}
}

// creditFlowLocked returns the flow that grants a client sender senderCredit more deliveries.
func (l *link) creditFlowLocked() *wire.Flow {
	l.creditLeft = senderCredit
	f := l.s.flowLocked()
	h, dc, credit := l.handle, l.rcvCount, uint32(senderCredit)
	f.Handle, f.DeliveryCount, f.LinkCredit = &h, &dc, &credit
	return f
}

// sendFlowLocked returns the flow describing a server-sending link's state.
func (l *link) sendFlowLocked(drain bool) *wire.Flow {
	f := l.s.flowLocked()
	h, dc, credit := l.handle, l.deliveryCount, l.credit
	f.Handle, f.DeliveryCount, f.LinkCredit, f.Drain = &h, &dc, &credit, drain
	return f
}

// finishDrainLocked answers a drain request: the unused credit is consumed and the flow echoed.
func (l *link) finishDrainLocked() {
	l.deliveryCount += l.credit
	l.credit = 0
	l.drain = false
	_ = l.s.sendLocked(l.sendFlowLocked(true), nil)
}
