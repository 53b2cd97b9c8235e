package emulator

import (
	"errors"
	"time"

	"github.com/Azure/go-amqp"

	wire "github.com/holdfast-dev/holdfast/emulator/amqp"
	"github.com/holdfast-dev/holdfast/emulator/broker"
	"github.com/holdfast-dev/holdfast/emulator/mgmt"
)

// Session receivers. A receive link on a session entity carries the source filter
// com.microsoft:session-filter: a session id to lock that session, or null to lock the next
// session with available messages, waiting up to the link property com.microsoft:timeout (in
// ms; DefaultAcceptSessionTimeout without it) before answering com.microsoft:timeout. The
// answer's source filter names the session and its properties carry
// com.microsoft:locked-until-utc (.NET ticks). The link then delivers that session's messages;
// when the session lock expires it is detached with com.microsoft:session-lock-lost, and when
// it closes the session is free for another receiver at once.

// Link filter and property names and the session conditions.
const (
	sessionFilterName                     = "com.microsoft:session-filter"
	lockedUntilUTCProperty                = "com.microsoft:locked-until-utc"
	timeoutProperty                       = "com.microsoft:timeout"
	condTimeout               wire.Symbol = "com.microsoft:timeout"
	condSessionLockLost       wire.Symbol = mgmt.CondSessionLockLost
	condSessionCannotBeLocked wire.Symbol = mgmt.CondSessionCannotBeLocked
	sessfulOnPlainDescription             = "It is not possible for an entity that does not require sessions to create a sessionful message receiver."
)

// DefaultAcceptSessionTimeout is how long an accept-next-session attach waits for a session
// when the client sets no com.microsoft:timeout: a minute, as the service does (the Go SDK's
// errors.go: "It waits, up to one minute").
const DefaultAcceptSessionTimeout = time.Minute

// epochTicks is 1970-01-01 in .NET ticks (100 ns since 0001-01-01).
const epochTicks = 621355968000000000

func dotnetTicks(t time.Time) int64 { return epochTicks + t.UnixNano()/100 }

// sessionFilter reads the session filter of a receiver's source: wanted reports whether there
// is one; id is the session asked for, named false for "the next available".
func sessionFilter(src *wire.Source) (id string, named, wanted bool) {
	if src == nil {
		return "", false, false
	}
	f, ok := src.Filter[sessionFilterName]
	if !ok {
		return "", false, false
	}
	v := f
	if d, ok := f.(wire.Described); ok {
		v = d.Value
	}
	id, named = v.(string)
	return id, named, true
}

// sessionAttach returns the source and properties of the attach answering a session
// receiver: the filter names the locked session.
func sessionAttach(src *wire.Source, sl *broker.SessionLock) (*wire.Source, wire.Fields) {
	out := wire.Source{}
	if src != nil {
		out = *src
	}
	filter := make(map[wire.Symbol]any, len(out.Filter))
	for k, v := range out.Filter {
		filter[k] = v
	}
	d, ok := filter[sessionFilterName].(wire.Described)
	if !ok {
		d = wire.Described{Descriptor: uint64(0x00000137000000C)}
	}
	d.Value = sl.ID()
	filter[sessionFilterName] = d
	out.Filter = filter
	return &out, wire.Fields{lockedUntilUTCProperty: dotnetTicks(sl.LockedUntil())}
}

// attachSession applies the session rules to a receive link on entity l.entity. It returns done
// when it answered the attach itself (refused it, or left it pending on an accept-next wait);
// otherwise l.sess is set for a session entity and the caller completes the attach.
func (c *conn) attachSession(s *session, a *wire.Attach, l *link) (done bool) {
	e := l.entity
	id, named, wanted := sessionFilter(a.Source)
	switch {
	case e.RequiresSession() && !wanted:
		c.rejectAttach(s, a, &wire.Error{Condition: condNotAllowed, Description: broker.NonSessionReceiverDescription})
		return true
	case !wanted:
		return false
	case !e.RequiresSession():
		c.rejectAttach(s, a, &wire.Error{Condition: condNotAllowed, Description: sessfulOnPlainDescription})
		return true
	}
	var sl *broker.SessionLock
	var err error
	if named {
		sl, err = e.AcceptSession(id)
	} else {
		sl, err = e.AcceptNextSession()
	}
	if err != nil {
		c.rejectAttach(s, a, sessionError(err))
		return true
	}
	if sl != nil {
		l.sess = sl
		return false
	}
	timeout := DefaultAcceptSessionTimeout
	if ms, ok := a.Properties[timeoutProperty]; ok {
		if n, ok := mgmt.ToInt64(ms); ok && n >= 0 {
			timeout = time.Duration(n) * time.Millisecond
		}
	}
	c.mu.Lock()
	l.pending = a
	c.addLinkLocked(s, l)
	c.wg.Add(1)
	c.mu.Unlock()
	go c.acceptNextLater(s, l, timeout)
	return true
}

// sessionError maps a broker session error to the AMQP error refusing an attach.
func sessionError(err error) *wire.Error {
	switch {
	case errors.Is(err, broker.ErrSessionCannotBeLocked):
		return &wire.Error{Condition: condSessionCannotBeLocked, Description: err.Error()}
	case errors.Is(err, broker.ErrEntityNotFound):
		return &wire.Error{Condition: condNotFound, Description: err.Error()}
	}
	return brokerError(err)
}

// acceptNextLater waits for a session with available messages for an accept-next attach, up to
// timeout, then completes the attach or refuses it with com.microsoft:timeout. It runs in its
// own goroutine, owned by c.wg, and ends early when the client detaches the link or the
// connection closes.
func (c *conn) acceptNextLater(s *session, l *link, timeout time.Duration) {
	defer c.wg.Done()
	t := time.NewTimer(timeout)
	defer t.Stop()
	for {
		avail := l.entity.Available()
		sl, err := l.entity.AcceptNextSession()
		if err != nil || sl != nil {
			c.mu.Lock()
			defer c.mu.Unlock()
			switch {
			case l.detached:
				if sl != nil {
					sl.Release()
				}
			case err != nil:
				l.refusePendingLocked(sessionError(err))
			default:
				a := l.pending
				l.pending, l.sess = nil, sl
				c.completeReceiverAttachLocked(s, a, l)
			}
			return
		}
		select {
		case <-avail:
		case <-t.C:
			c.mu.Lock()
			if !l.detached {
				l.refusePendingLocked(&wire.Error{Condition: condTimeout, Description: fmtTimeout(timeout)})
			}
			c.mu.Unlock()
			return
		case <-l.done:
			return
		case <-c.done:
			return
		}
	}
}

func fmtTimeout(d time.Duration) string {
	return "No session available to complete the request within the timeout of " + timeSpan(d) + "."
}

// refusePendingLocked answers a pending accept-next attach with a null terminus and a closing
// detach carrying e. The link stays in its session until the client's detach. Caller holds
// c.mu.
func (l *link) refusePendingLocked(e *wire.Error) {
	a := l.pending
	l.pending = nil
	_ = l.s.sendLocked(nullTerminusAttach(a), nil)
	l.detachLocked()
	l.detachSent = true
	_ = l.s.sendLocked(&wire.Detach{Handle: l.handle, Closed: true, Error: e}, nil)
}

// sessionLost detaches a session link whose lock ended without the client closing it (expiry,
// or ExpireSessionLock) with com.microsoft:session-lock-lost.
func (l *link) sessionLost() {
	l.c.mu.Lock()
	defer l.c.mu.Unlock()
	if l.detached {
		return
	}
	l.c.log.Info("session lock lost: receive link detached", "link", l.name, "path", l.path, "session", l.sess.ID())
	l.forceDetachLocked(&wire.Error{Condition: condSessionLockLost, Description: broker.SessionLockLostDescription})
}

// callerFor describes the sender of a management request on path: its rights and the session
// held by the receive link its associated-link-name names.
func (c *conn) callerFor(path string, req *amqp.Message) mgmt.Caller {
	caller := mgmt.Caller{Rights: c.rights(path)}
	name, _ := req.ApplicationProperties["associated-link-name"].(string)
	if name == "" {
		return caller
	}
	caller.AssociatedLink = name
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, s := range c.sessions {
		for _, l := range s.links {
			if l.name == name && l.sess != nil && !l.detached {
				caller.Session = l.sess
				return caller
			}
		}
	}
	return caller
}
