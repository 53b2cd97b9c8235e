package mgmt

import (
	"fmt"
	"time"

	"github.com/holdfast-dev/holdfast/emulator/broker"
)

// The session operations of the $management node
// (https://learn.microsoft.com/azure/service-bus-messaging/service-bus-amqp-request-response):
// renew-session-lock, get-session-state, set-session-state on a session the caller has locked,
// and get-message-sessions on the entity.

// listAllSessions is the last-updated-time the SDKs send to ask for the default listing
// (sessions with active messages or state): DateTime.MaxValue, which the .NET decoder reads
// from 10000-01-01T00:00:00Z (the Go SDK's client.go); anything from 9999-12-31 on counts.
var listAllSessions = time.Date(9999, 12, 31, 0, 0, 0, 0, time.UTC)

// session resolves the session a request acts on. A request naming its receive link
// (associated-link-name, as the SDKs send) acts on the session that link holds, which must be
// the body's "session-id" when it has one; a link no longer holding it (detached, or its lock
// lost) answers 410 com.microsoft:session-lock-lost. A request naming no link acts on the
// current holder of the body's session-id.
func (h *Handler) session(e *broker.Entity, body map[string]any, c Caller) (*broker.SessionLock, status) {
	id, st := str(body, "session-id", false)
	if st.code != 0 {
		return nil, st
	}
	_, named := body["session-id"]
	if c.AssociatedLink != "" {
		if c.Session == nil || c.Session.Entity() != e || (named && id != c.Session.ID()) {
			return nil, status{code: 410, cond: CondSessionLockLost, desc: fmt.Sprintf(
				"%s (the receive link '%s' holds no lock on session '%s')", broker.SessionLockLostDescription, c.AssociatedLink, id)}
		}
		return c.Session, status{}
	}
	if !named {
		return nil, badRequest("session-id is missing and the request names no session receiver (associated-link-name)")
	}
	sl, err := e.LockedSession(id)
	if err != nil {
		return nil, h.brokerStatus("session", err)
	}
	return sl, status{}
}

func (h *Handler) renewSessionLock(e *broker.Entity, body map[string]any, c Caller) (map[string]any, status) {
	sl, st := h.session(e, body, c)
	if st.code != 0 {
		return nil, st
	}
	if code := h.faults.takeRenewFailure(); code != 0 {
		if code == 410 {
			return nil, status{code: 410, desc: broker.SessionLockLostDescription + " (injected fault)", cond: CondSessionLockLost}
		}
		return nil, status{code: code, desc: "The server is busy; please retry (injected fault).", cond: CondServerBusy}
	}
	until, err := sl.Renew()
	if err != nil {
		return nil, h.brokerStatus(OpRenewSessionLock, err)
	}
	return map[string]any{"expiration": until}, ok200
}

func (h *Handler) getSessionState(e *broker.Entity, body map[string]any, c Caller) (map[string]any, status) {
	sl, st := h.session(e, body, c)
	if st.code != 0 {
		return nil, st
	}
	state, err := sl.State()
	if err != nil {
		return nil, h.brokerStatus(OpGetSessionState, err)
	}
	if state == nil {
		return map[string]any{"session-state": nil}, ok200
	}
	return map[string]any{"session-state": state}, ok200
}

func (h *Handler) setSessionState(e *broker.Entity, body map[string]any, c Caller) (map[string]any, status) {
	sl, st := h.session(e, body, c)
	if st.code != 0 {
		return nil, st
	}
	var state []byte
	switch v := body["session-state"].(type) {
	case nil:
	case []byte:
		state = v
	default:
		return nil, badRequest("session-state is %T (want binary or null)", v)
	}
	if err := sl.SetState(state); err != nil {
		return nil, h.brokerStatus(OpSetSessionState, err)
	}
	return nil, ok200
}

func (h *Handler) getMessageSessions(e *broker.Entity, body map[string]any, _ Caller) (map[string]any, status) {
	skip, st := integer(body, "skip", false)
	if st.code != 0 {
		return nil, st
	}
	top, st := integer(body, "top", true)
	if st.code != 0 {
		return nil, st
	}
	if skip < 0 || top < 0 {
		return nil, badRequest("skip (%d) and top (%d) must not be negative", skip, top)
	}
	var after time.Time
	switch v := body["last-updated-time"].(type) {
	case nil:
	case time.Time:
		if v.Before(listAllSessions) {
			after = v
		}
	default:
		return nil, badRequest("last-updated-time is %T (want a timestamp)", v)
	}
	ids, err := e.ListSessions(after, int(skip), int(top))
	if err != nil {
		return nil, h.brokerStatus(OpGetMessageSessions, err)
	}
	if len(ids) == 0 {
		return nil, status{code: 204, desc: "No sessions"}
	}
	return map[string]any{"skip": int32(skip) + int32(len(ids)), "sessions-ids": ids}, ok200
}
