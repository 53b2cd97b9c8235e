package broker

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/Azure/go-amqp"
)

// Sessions (https://learn.microsoft.com/azure/service-bus-messaging/message-sessions). On an entity
// with RequiresSession every message belongs to the session its session-id (AMQP group-id) names;
// a receiver first locks a session — a named one (AcceptSession) or the next one with available
// messages (AcceptNextSession) — and then receives that session's messages only, in sequence
// order. The session lock lasts LockDuration and is renewed as a whole (SessionLock.Renew); the
// messages it delivers have lock tokens but no lock of their own: the session lock covers them.
// When the session lock expires, its locked messages are available again with their delivery
// count raised, and settling or renewing under it fails with ErrSessionLockLost; when the
// receiver closes the session (Release) they are available again without a count, as the
// service's "delivery count in sessions" table says. Each session may hold state (a byte
// string) that outlives its messages.

// Session errors. ErrSessionLockLost wraps ErrLockLost.
var (
	ErrSessionLockLost       = fmt.Errorf("session lock lost: %w", ErrLockLost)
	ErrSessionCannotBeLocked = errors.New("session cannot be locked")
)

// Descriptions the service uses for session errors.
const (
	// NonSessionReceiverDescription refuses a plain receiver on a session entity (Microsoft's
	// TestSessionReceiver_nonSessionReceiver matches it).
	NonSessionReceiverDescription = "It is not possible for an entity that requires sessions to create a non-sessionful message receiver."
	// SessionLockLostDescription is the text of com.microsoft:session-lock-lost.
	SessionLockLostDescription = "The session lock has expired on the MessageSession. Accept a new MessageSession."
	// MissingSessionIDDescription refuses a message without a session id on a session queue.
	MissingSessionIDDescription = "The SessionId was not set on a message, and it cannot be sent to the entity. Entities that have session support enabled can only receive messages that have the SessionId set to a valid value."
	// ReasonSessionIDIsNull dead-letters a topic message without a session id in a session subscription.
	ReasonSessionIDIsNull = "Session Id Is Null"
)

// msession is one session of a session entity. Its fields are guarded by the entity's mu.
type msession struct {
	id      string
	ready   minHeap[int64]        // sequence numbers of its available messages
	holder  *SessionLock          // the lock's holder; nil while unlocked
	until   time.Time             // the lock's expiry while held
	timer   Timer                 // expires the lock at until
	locked  map[amqp.UUID]*record // messages delivered under the lock and not settled
	state   []byte                // session state; nil when none
	stateAt time.Time             // last set-session-state
	count   int                   // records of the entity in this session (any state)
}

// SessionLock is one acquisition of a session's lock, by AcceptSession or AcceptNextSession.
// Its methods are safe for concurrent use; once the lock has ended (Lost is closed) they fail
// with ErrSessionLockLost, also after a later acquisition of the same session by someone else.
type SessionLock struct {
	e    *Entity
	s    *msession
	lost chan struct{} // closed when this acquisition ends
	why  error         // why it ended; set before lost is closed (guarded by e.mu)
}

// RequiresSession reports whether receivers of e must lock a session first.
func (e *Entity) RequiresSession() bool { return e.Properties().RequiresSession }

// sessionLocked returns the session id of e, creating it. Caller holds e.mu.
func (e *Entity) sessionLocked(id string) *msession {
	s := e.sessions[id]
	if s == nil {
		s = &msession{id: id, ready: minHeap[int64]{less: func(a, b int64) bool { return a < b }}, locked: map[amqp.UUID]*record{}}
		e.sessions[id] = s
	}
	return s
}

// gcSessionLocked forgets a session that holds nothing: no lock, no state, no message.
func (e *Entity) gcSessionLocked(s *msession) {
	if s.holder == nil && s.state == nil && s.count == 0 && e.sessions[s.id] == s {
		delete(e.sessions, s.id)
	}
}

// readySessionLocked drops stale entries from the top of s's ready heap and reports whether s
// has an available message.
func (e *Entity) readySessionLocked(s *msession) bool {
	for s.ready.Len() > 0 {
		if r := e.msgs[s.ready.items[0]]; r != nil && r.inReady {
			return true
		}
		s.ready.pop()
	}
	return false
}

// AcceptSession locks the session id (it need not hold messages yet) for LockDuration.
// Locked by someone else ⇒ ErrSessionCannotBeLocked; e does not require sessions ⇒
// ErrNotAllowed.
func (e *Entity) AcceptSession(id string) (*SessionLock, error) {
	e.mu.Lock()
	defer e.unlock()
	if err := e.sessionEntityLocked("accept session"); err != nil {
		return nil, err
	}
	s := e.sessionLocked(id)
	if s.holder != nil {
		return nil, fmt.Errorf("broker: accept session on %q: The requested session '%s' cannot be accepted. It may be locked by another receiver: %w",
			e.path, id, ErrSessionCannotBeLocked)
	}
	return e.lockSessionLocked(s), nil
}

// AcceptNextSession locks the unlocked session whose oldest available message is the oldest
// of all, or returns nil when no unlocked session has an available message now (wait on
// Available and try again).
func (e *Entity) AcceptNextSession() (*SessionLock, error) {
	e.mu.Lock()
	defer e.unlock()
	if err := e.sessionEntityLocked("accept next session"); err != nil {
		return nil, err
	}
	var best *msession
	for _, s := range e.sessions {
		if s.holder != nil || !e.readySessionLocked(s) {
			continue
		}
		if best == nil || s.ready.items[0] < best.ready.items[0] {
			best = s
		}
	}
	if best == nil {
		return nil, nil
	}
	return e.lockSessionLocked(best), nil
}

// unlockedReadyLocked reports whether an unlocked session has an available message.
func (e *Entity) unlockedReadyLocked() bool {
	for _, s := range e.sessions {
		if s.holder == nil && e.readySessionLocked(s) {
			return true
		}
	}
	return false
}

// checkSessionIDs refuses messages without a session id for a session queue, as the service
// does.
func (e *Entity) checkSessionIDs(msgs []*amqp.Message) error {
	if !e.props.RequiresSession {
		return nil
	}
	for i, m := range msgs {
		if _, ok := sessionID(m); !ok {
			return fmt.Errorf("broker: send to %q: message %d: %s: %w", e.path, i, MissingSessionIDDescription, ErrNotAllowed)
		}
	}
	return nil
}

// shutdownSessionsLocked stops every session lock timer and ends the locks with err.
func (e *Entity) shutdownSessionsLocked(err error) {
	for _, s := range e.sessions {
		e.disarmSessionLocked(s)
		if h := s.holder; h != nil {
			s.holder = nil
			h.why = err
			close(h.lost)
		}
	}
}

func (e *Entity) sessionEntityLocked(op string) error {
	if e.gone != nil {
		return fmt.Errorf("broker: %s on %q: %w", op, e.path, e.gone)
	}
	if !e.props.RequiresSession {
		return fmt.Errorf("broker: %s on %q: the entity does not require sessions: %w", op, e.path, ErrNotAllowed)
	}
	return nil
}

func (e *Entity) lockSessionLocked(s *msession) *SessionLock {
	l := &SessionLock{e: e, s: s, lost: make(chan struct{})}
	s.holder = l
	s.until = now(e.clock).Add(e.props.LockDuration)
	e.armSessionLocked(s)
	e.accessed = now(e.clock)
	return l
}

// armSessionLocked (re)starts s's lock timer.
func (e *Entity) armSessionLocked(s *msession) {
	e.disarmSessionLocked(s)
	holder := s.holder
	e.timers.Add(1)
	s.timer = e.clock.AfterFunc(s.until.Sub(e.clock.Now()), func() {
		defer e.timers.Done()
		e.mu.Lock()
		defer e.unlock()
		if e.gone == nil && s.holder == holder && !now(e.clock).Before(s.until) {
			e.endSessionLocked(s, true)
		}
	})
}

func (e *Entity) disarmSessionLocked(s *msession) {
	if s.timer != nil && s.timer.Stop() {
		e.timers.Done()
	}
	s.timer = nil
}

// endSessionLocked ends s's lock: by expiry (its locked messages count a delivery, as lock
// expiry does) or by release (they do not). Their lock tokens answer ErrSessionLockLost from
// now on.
func (e *Entity) endSessionLocked(s *msession, expired bool) {
	holder := s.holder
	if holder == nil {
		return
	}
	e.disarmSessionLocked(s)
	s.holder, s.until = nil, time.Time{}
	for _, r := range sortedRecords(s.locked) {
		tok := r.token
		e.unlockLocked(r)
		e.noteLostTokenLocked(tok)
		if expired {
			e.count.LockExpired++
			e.failedDeliveryLocked(r)
		} else {
			e.count.SessionReleased++
			if r.state == MessageStateActive {
				e.availableLocked(r)
			}
		}
	}
	if expired {
		holder.why = fmt.Errorf("broker: session %q of %q: %s: %w", s.id, e.path, SessionLockLostDescription, ErrSessionLockLost)
		e.log.Debug("session lock expired", "session", s.id)
	} else {
		holder.why = fmt.Errorf("broker: session %q of %q was closed: %w", s.id, e.path, ErrSessionLockLost)
	}
	close(holder.lost)
	e.gcSessionLocked(s)
	e.notifyLocked()
}

// sortedRecords returns the records of m in sequence order.
func sortedRecords(m map[amqp.UUID]*record) []*record {
	out := make([]*record, 0, len(m))
	for _, r := range m {
		out = append(out, r)
	}
	slices.SortFunc(out, func(a, b *record) int { return int(a.seq - b.seq) })
	return out
}

// maxLostTokens bounds the memory of lock tokens lost with a session lock.
const maxLostTokens = 100000

// noteLostTokenLocked remembers a token whose session lock ended, so that settling with it
// reports ErrSessionLockLost rather than an unknown token.
func (e *Entity) noteLostTokenLocked(tok amqp.UUID) {
	if e.lostTokens == nil || len(e.lostTokens) >= maxLostTokens {
		e.lostTokens = make(map[amqp.UUID]struct{})
	}
	e.lostTokens[tok] = struct{}{}
}

// heldLocked returns the session of l while l holds its lock; expired by time (a timer may lag)
// ends it first. Caller holds e.mu.
func (l *SessionLock) heldLocked(op string) (*msession, error) {
	e := l.e
	if e.gone != nil {
		return nil, fmt.Errorf("broker: %s on %q: %w", op, e.path, e.gone)
	}
	s := l.s
	if s.holder == l && !now(e.clock).Before(s.until) {
		e.endSessionLocked(s, true)
	}
	if s.holder != l {
		if l.why != nil {
			return nil, l.why
		}
		return nil, fmt.Errorf("broker: %s: session %q of %q is not locked by this receiver: %w", op, s.id, e.path, ErrSessionLockLost)
	}
	return s, nil
}

// ID returns the session id.
func (l *SessionLock) ID() string { return l.s.id }

// Entity returns the entity the session belongs to.
func (l *SessionLock) Entity() *Entity { return l.e }

// LockedUntil returns when the lock expires unless renewed (zero once it has ended).
func (l *SessionLock) LockedUntil() time.Time {
	l.e.mu.Lock()
	defer l.e.unlock()
	if l.s.holder != l {
		return time.Time{}
	}
	return l.s.until
}

// Lost returns a channel closed when the lock ends (expired, released, expired on demand or
// the entity is gone); Err then says why.
func (l *SessionLock) Lost() <-chan struct{} { return l.lost }

// Err returns why the lock ended (nil while it is held).
func (l *SessionLock) Err() error {
	l.e.mu.Lock()
	defer l.e.unlock()
	return l.why
}

// Renew extends the lock to now + LockDuration and returns the new expiry; the messages it
// covers follow.
func (l *SessionLock) Renew() (time.Time, error) {
	e := l.e
	e.mu.Lock()
	defer e.unlock()
	s, err := l.heldLocked("renew session lock")
	if err != nil {
		return time.Time{}, err
	}
	s.until = now(e.clock).Add(e.props.LockDuration)
	e.armSessionLocked(s)
	for _, r := range s.locked {
		r.until = s.until
	}
	e.count.LockRenewed++
	return s.until, nil
}

// Release ends the lock (the receiver closed the session): its locked messages are available
// again without counting a delivery. Releasing an ended lock does nothing.
func (l *SessionLock) Release() {
	e := l.e
	e.mu.Lock()
	defer e.unlock()
	if l.s.holder == l {
		e.endSessionLocked(l.s, false)
	}
}

// Available is Entity.Available for the session: closed when it may have an available
// message, or when the lock has ended.
func (l *SessionLock) Available() <-chan struct{} {
	e := l.e
	e.mu.Lock()
	defer e.unlock()
	if e.gone != nil || l.s.holder != l || e.readySessionLocked(l.s) {
		return closedChan
	}
	if e.wake == nil {
		e.wake = make(chan struct{})
	}
	return e.wake
}

// Receive takes up to max available messages of the session in sequence order without
// blocking (nothing once the lock has ended). In PeekLock they are locked under the session
// lock.
func (l *SessionLock) Receive(max int, mode ReceiveMode) []Delivery {
	e := l.e
	e.mu.Lock()
	defer e.unlock()
	s, err := l.heldLocked("receive")
	if err != nil || max <= 0 {
		return nil
	}
	return e.takeReadyLocked(&s.ready, max, mode)
}

// ReceiveDeferred is Entity.ReceiveDeferred within the session: only deferred messages of this
// session are found.
func (l *SessionLock) ReceiveDeferred(seqs []int64, mode ReceiveMode) ([]Delivery, error) {
	e := l.e
	e.mu.Lock()
	defer e.unlock()
	s, err := l.heldLocked("receive deferred")
	if err != nil {
		return nil, err
	}
	return e.receiveDeferredLocked(seqs, mode, s)
}

// Peek is Entity.Peek within the session.
func (l *SessionLock) Peek(fromSequenceNumber int64, max int) []*amqp.Message {
	e := l.e
	e.mu.Lock()
	defer e.unlock()
	if _, err := l.heldLocked("peek"); err != nil {
		return nil
	}
	return e.peekLocked(fromSequenceNumber, max, l.s)
}

// State returns the session's state (nil when none is set).
func (l *SessionLock) State() ([]byte, error) {
	e := l.e
	e.mu.Lock()
	defer e.unlock()
	s, err := l.heldLocked("get session state")
	if err != nil {
		return nil, err
	}
	return slices.Clone(s.state), nil
}

// SetState replaces the session's state; nil or empty clears it (the SDKs send a cleared
// state as an empty binary, and Microsoft's TestSessionReceiver_acceptSession expects nil back).
// It is kept after the session's messages are gone, and listed by ListSessions.
func (l *SessionLock) SetState(state []byte) error {
	e := l.e
	e.mu.Lock()
	defer e.unlock()
	s, err := l.heldLocked("set session state")
	if err != nil {
		return err
	}
	s.state = nil
	if len(state) > 0 {
		s.state = slices.Clone(state)
	}
	s.stateAt = now(e.clock)
	return nil
}

// LockedSession returns the current holder of session id's lock: ErrSessionLockLost when it is
// not locked.
func (e *Entity) LockedSession(id string) (*SessionLock, error) {
	e.mu.Lock()
	defer e.unlock()
	if err := e.sessionEntityLocked("find session"); err != nil {
		return nil, err
	}
	s := e.sessions[id]
	if s == nil || s.holder == nil {
		return nil, fmt.Errorf("broker: session %q of %q is not locked: %w", id, e.path, ErrSessionLockLost)
	}
	if _, err := s.holder.heldLocked("find session"); err != nil {
		return nil, err
	}
	return s.holder, nil
}

// ExpireSessionLock ends session id's lock now as if it had expired (a fault for tests: the
// holder's messages become available with their delivery count raised, its settlements and
// renewals fail with ErrSessionLockLost). Not locked ⇒ ErrSessionLockLost.
func (e *Entity) ExpireSessionLock(id string) error {
	e.mu.Lock()
	defer e.unlock()
	if err := e.sessionEntityLocked("expire session lock"); err != nil {
		return err
	}
	s := e.sessions[id]
	if s == nil || s.holder == nil {
		return fmt.Errorf("broker: expire session lock: session %q of %q is not locked: %w", id, e.path, ErrSessionLockLost)
	}
	e.endSessionLocked(s, true)
	return nil
}

// ListSessions returns up to top session ids after skipping skip, sorted: with updatedAfter
// zero the sessions holding an active message or a state (the service's default listing),
// otherwise those whose state was set after updatedAfter.
func (e *Entity) ListSessions(updatedAfter time.Time, skip, top int) ([]string, error) {
	e.mu.Lock()
	defer e.unlock()
	if err := e.sessionEntityLocked("list sessions"); err != nil {
		return nil, err
	}
	keep := map[*msession]bool{}
	if updatedAfter.IsZero() {
		for _, r := range e.msgs {
			if r.sess != nil && r.state == MessageStateActive {
				keep[r.sess] = true
			}
		}
	}
	var ids []string
	for _, s := range e.sessions {
		switch {
		case updatedAfter.IsZero() && (keep[s] || s.state != nil):
		case !updatedAfter.IsZero() && s.stateAt.After(updatedAfter):
		default:
			continue
		}
		ids = append(ids, s.id)
	}
	slices.Sort(ids)
	if skip >= len(ids) {
		return nil, nil
	}
	ids = ids[skip:]
	if top >= 0 && len(ids) > top {
		ids = ids[:top]
	}
	return ids, nil
}

// sessionID reads a message's session id (AMQP group-id); ok is false without one.
func sessionID(m *amqp.Message) (string, bool) {
	if m.Properties == nil || m.Properties.GroupID == nil {
		return "", false
	}
	return *m.Properties.GroupID, true
}
