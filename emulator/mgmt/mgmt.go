// Package mgmt answers the Service Bus request/response operations the emulator serves:
// CBS put-token on "$cbs" and the "com.microsoft:*" operations on "<entity>/$management".
//
// The connection engine decodes each request transfer into a go-amqp *amqp.Message, calls CBS
// or Management, and sends the returned reply settled on the link whose address matches the
// request's reply-to. Handler methods are safe for concurrent use, never block beyond the
// broker's entity locks, and always return a reply (never nil): failures are status codes.
//
// Replies carry properties.correlation-id = the request's message-id as a string, int32
// status codes under both "statusCode" and "status-code", descriptions under both
// "statusDescription" and "status-description", and, on errors, the condition under both
// "errorCondition" and "error-condition". Status codes follow what the azservicebus SDK
// treats as fatal where a retry cannot help: 404 for unknown operations and entities, 410 for
// lost locks, 400 for malformed bodies.
package mgmt

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/Azure/go-amqp"

	"github.com/holdfast-dev/holdfast/emulator/broker"
)

// Operation names (application property "operation").
const (
	OpPutToken               = "put-token"
	OpRenewLock              = "com.microsoft:renew-lock"
	OpPeekMessage            = "com.microsoft:peek-message"
	OpReceiveBySequence      = "com.microsoft:receive-by-sequence-number"
	OpUpdateDisposition      = "com.microsoft:update-disposition"
	OpScheduleMessage        = "com.microsoft:schedule-message"
	OpCancelScheduledMessage = "com.microsoft:cancel-scheduled-message"
	OpRenewSessionLock       = "com.microsoft:renew-session-lock"
	OpGetSessionState        = "com.microsoft:get-session-state"
	OpSetSessionState        = "com.microsoft:set-session-state"
	OpGetMessageSessions     = "com.microsoft:get-message-sessions"
)

// Error conditions put in replies.
const (
	CondMessageNotFound = "com.microsoft:message-not-found"
	CondLockLost        = "com.microsoft:message-lock-lost"
	CondEntityNotFound  = "com.microsoft:entity-not-found"
	CondNotImplemented  = "amqp:not-implemented"
	CondInvalidField    = "amqp:invalid-field"
	CondInternalError   = "amqp:internal-error"
	CondServerBusy      = "com.microsoft:server-busy"
	CondNotAllowed      = "amqp:not-allowed"
	// CondSessionLockLost and CondSessionCannotBeLocked are Service Bus's session conditions.
	CondSessionLockLost       = "com.microsoft:session-lock-lost"
	CondSessionCannotBeLocked = "com.microsoft:session-cannot-be-locked"
	// CondEntityDisabled answers an operation the entity's status forbids.
	CondEntityDisabled = "com.microsoft:entity-disabled"
)

// MaxPeekCount caps message-count of one peek, as Azure does.
const MaxPeekCount = 250

// Options configure New. A nil *Options means all defaults.
type Options struct {
	Logger *slog.Logger // nil ⇒ discard
	// StrictAuth, when non-empty, makes put-token validate SAS tokens (ValidateSASToken)
	// against these keys and answer 401 otherwise. Empty: every token is accepted, as the
	// official emulator does.
	StrictAuth []SASKey
	// Clock tells the time tokens expire against; nil ⇒ the wall clock.
	Clock broker.Clock
}

// Handler answers CBS and management requests against one broker.
type Handler struct {
	b      *broker.Broker
	log    *slog.Logger
	keys   []SASKey
	clock  broker.Clock
	faults Faults
	done   chan struct{} // closed by Close: cuts injected delays short
	once   sync.Once
}

// New returns a Handler for b.
func New(b *broker.Broker, opts *Options) *Handler {
	h := &Handler{b: b, done: make(chan struct{})}
	if opts != nil {
		h.log, h.keys, h.clock = opts.Logger, slices.Clone(opts.StrictAuth), opts.Clock
	}
	if h.log == nil {
		h.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if h.clock == nil {
		h.clock = broker.RealClock()
	}
	return h
}

// Faults returns the handler's fault injection controls.
func (h *Handler) Faults() *Faults { return &h.faults }

// Close ends injected delays at once (their requests are answered without waiting). The
// handler keeps answering afterwards, without delays.
func (h *Handler) Close() { h.once.Do(func() { close(h.done) }) }

// status is a reply outcome: a code, a description and, for errors, a condition.
type status struct {
	code int32
	desc string
	cond string
}

var ok200 = status{code: 200, desc: "OK"}

func badRequest(format string, args ...any) status {
	return status{code: 400, desc: fmt.Sprintf(format, args...), cond: CondInvalidField}
}

// Grant is what a successful put-token gives the connection it arrived on: Rights on Path
// (an entity path as the audience named it) until Expires. In permissive mode every grant has
// AllRights and no expiry.
type Grant struct {
	Path    string
	Rights  Rights
	Expires time.Time // zero: never
}

// Strict reports whether put-token validates tokens (Options.StrictAuth); connections
// enforce the rights of their grants only then.
func (h *Handler) Strict() bool { return len(h.keys) > 0 }

// CBS answers one $cbs request. Only put-token is supported. The audience ("name") may be
// "amqp://host:port/<path>", "sb://host:port/<path>" or a bare path; 200 when the broker
// knows the path, 404 otherwise. With Options.StrictAuth the token is validated first: 401
// (amqp:unauthorized-access, the SDK's CodeUnauthorizedAccess) when it is not a valid SAS
// token for the audience; an expired one is described as the service does ("ExpiredToken:
// The token is expired. Expiration time: …", Microsoft's TestClientUnauthorizedCreds). ok
// reports a 200 answer, with what it grants.
func (h *Handler) CBS(req *amqp.Message) (_ *amqp.Message, g Grant, ok bool) {
	h.b.NoteManagementCall()
	op, _ := appString(req, "operation")
	if op != OpPutToken {
		return reply(req, status{code: 404, desc: fmt.Sprintf("unsupported $cbs operation %q (only put-token)", op), cond: CondNotImplemented}, nil), g, false
	}
	aud, found := appString(req, "name")
	if !found || aud == "" {
		return reply(req, badRequest("put-token: application property \"name\" (the audience) is missing or not a string"), nil), g, false
	}
	claims, st := h.authorize(req, aud)
	if st.code != 0 {
		h.log.Info("put-token rejected", "audience", aud, "reason", st.desc)
		return reply(req, st, nil), g, false
	}
	path := audiencePath(aud)
	if !h.b.Known(path) {
		h.log.Debug("put-token for unknown entity", "audience", aud)
		return reply(req, status{code: 404, desc: fmt.Sprintf("The messaging entity '%s' could not be found.", path), cond: CondEntityNotFound}, nil), g, false
	}
	return reply(req, status{code: 200, desc: "OK"}, nil), Grant{Path: path, Rights: claims.Rights, Expires: claims.Expires}, true
}

// authorize validates the token of a put-token request in strict mode (zero status: ok). In
// permissive mode every token grants AllRights without expiry.
func (h *Handler) authorize(req *amqp.Message, aud string) (Claims, status) {
	if len(h.keys) == 0 {
		return Claims{Rights: AllRights}, status{}
	}
	unauthorized := func(format string, args ...any) status {
		return status{code: 401, desc: "Unauthorized: " + fmt.Sprintf(format, args...), cond: CondUnauthorized}
	}
	if typ, _ := appString(req, "type"); typ != TokenTypeSAS {
		return Claims{}, unauthorized("token type %q is not accepted (want %q: strict mode validates SAS tokens only)", typ, TokenTypeSAS)
	}
	token, ok := req.Value.(string)
	if !ok {
		return Claims{}, unauthorized("the token (body) is %T, want a string", req.Value)
	}
	claims, err := h.CheckToken(token, aud)
	if err != nil {
		return Claims{}, status{code: 401, desc: TokenErrorDescription(token, err), cond: CondUnauthorized}
	}
	return claims, status{}
}

// TokenErrorDescription is the text of a 401 for token, refused by CheckToken with err: the
// service's for an expired token (ExpiredTokenDescription), else "Unauthorized: " and why.
func TokenErrorDescription(token string, err error) string {
	if errors.Is(err, ErrTokenExpired) {
		return ExpiredTokenDescription(tokenExpiry(token))
	}
	return "Unauthorized: " + err.Error()
}

// CheckToken validates a SAS token for audience against the handler's keys at the handler's
// clock (CheckSASToken) and returns what it grants: the check put-token makes in strict mode,
// for other front doors (the ATOM management API's Authorization header). Outside strict mode
// every token grants AllRights without expiry.
func (h *Handler) CheckToken(token, audience string) (Claims, error) {
	if len(h.keys) == 0 {
		return Claims{Rights: AllRights}, nil
	}
	return CheckSASToken(token, audience, h.keys, h.clock.Now())
}

// ExpiredTokenDescription is the service's text for an expired token.
func ExpiredTokenDescription(expired time.Time) string {
	return fmt.Sprintf("ExpiredToken: The token is expired. Expiration time: '%s'", expired.UTC().Format("2006-01-02 15:04:05Z"))
}

// UnauthorizedDescription is the service's text for an operation whose claim is missing
// (Microsoft's TestClientUnauthorizedCreds matches it): need is Listen or Send.
func UnauthorizedDescription(need Rights) string {
	return fmt.Sprintf("Unauthorized access. '%s' claim(s) are required to perform this operation.", need)
}

// audiencePath strips "scheme://host[:port]/" from a CBS audience.
func audiencePath(aud string) string {
	if _, rest, ok := strings.Cut(aud, "://"); ok {
		if _, p, ok := strings.Cut(rest, "/"); ok {
			return p
		}
		return ""
	}
	return strings.TrimPrefix(aud, "/")
}

// Management answers one request sent to "<entityPath>/$management" (entityPath is the link
// address without the suffix) for a caller holding every right.
//
// With a management delay fault set it waits that long first (cut short by Close): the
// caller's goroutine blocks for the delay. Callers that must not block call Delay and
// Answer instead.
func (h *Handler) Management(entityPath string, req *amqp.Message) *amqp.Message {
	if d := h.Delay(); d > 0 {
		t := time.NewTimer(d)
		select {
		case <-t.C:
		case <-h.done:
			t.Stop()
		}
	}
	return h.Answer(entityPath, req, Caller{Rights: AllRights})
}

// Delay returns how long the reply to a management request arriving now is to be delayed
// (the DelayManagement fault; 0 without it), and counts the request in
// FaultState.DelayedRequests when it is delayed. Call it once per request.
func (h *Handler) Delay() time.Duration { return h.faults.takeDelay() }

// Caller is what the connection engine knows about the sender of a management request.
type Caller struct {
	// Rights are the caller's claims on the entity (AllRights outside strict auth mode).
	Rights Rights
	// AssociatedLink is the request's "associated-link-name" application property: the
	// receive link the request acts for ("" when it names none).
	AssociatedLink string
	// Session is the session lock that link holds (nil when it names none, a link without a
	// session, or one no longer attached). Session operations of a request naming a link act
	// on it only: a session the link does not hold is a lost session lock.
	Session *broker.SessionLock
}

// Answer is Management without the injected delay: the connection engine waits Delay on a
// goroutine of its own and then calls Answer, so other traffic is not held up. c.Rights are
// the caller's claims on entityPath: schedule and cancel-scheduled need RightSend, every other
// operation RightListen; a missing claim answers 401 (amqp:unauthorized-access).
func (h *Handler) Answer(entityPath string, req *amqp.Message, c Caller) *amqp.Message {
	h.b.NoteManagementCall()
	op, _ := appString(req, "operation")
	need := RightListen
	if _, ok := pathOperations[op]; ok {
		need = RightSend
	}
	if !c.Rights.Has(need) && !c.Rights.Has(RightManage) {
		return reply(req, status{code: 401, desc: UnauthorizedDescription(need), cond: CondUnauthorized}, nil)
	}
	out, st := h.management(entityPath, op, req, c)
	if st.code >= 400 {
		h.log.Debug("management request failed", "entity", entityPath, "operation", op, "status", st.code, "description", st.desc)
	}
	return reply(req, st, out)
}

// operation is one supported management operation; body is the request's amqp-value map.
type operation func(h *Handler, e *broker.Entity, body map[string]any, c Caller) (map[string]any, status)

var operations = map[string]operation{
	OpRenewLock:          (*Handler).renewLock,
	OpPeekMessage:        (*Handler).peek,
	OpReceiveBySequence:  (*Handler).receiveBySequence,
	OpUpdateDisposition:  (*Handler).updateDisposition,
	OpRenewSessionLock:   (*Handler).renewSessionLock,
	OpGetSessionState:    (*Handler).getSessionState,
	OpSetSessionState:    (*Handler).setSessionState,
	OpGetMessageSessions: (*Handler).getMessageSessions,
}

// pathOperation is an operation on a send target (queue or topic) rather than a receivable
// entity.
type pathOperation func(h *Handler, path string, body map[string]any) (map[string]any, status)

var pathOperations = map[string]pathOperation{
	OpScheduleMessage:        (*Handler).scheduleMessages,
	OpCancelScheduledMessage: (*Handler).cancelScheduled,
}

func (h *Handler) management(entityPath, op string, req *amqp.Message, c Caller) (map[string]any, status) {
	if op == "" {
		return nil, badRequest("application property \"operation\" is missing or not a string")
	}
	if run, ok := pathOperations[op]; ok {
		if !h.b.Known(entityPath) {
			return nil, status{code: 404, desc: fmt.Sprintf("The messaging entity '%s' could not be found.", entityPath), cond: CondEntityNotFound}
		}
		body, st := requestBody(req)
		if st.code != 0 {
			return nil, st
		}
		return run(h, entityPath, body)
	}
	run, ok := operations[op]
	if !ok {
		return nil, status{code: 404, desc: fmt.Sprintf("unknown management operation %q", op), cond: CondNotImplemented}
	}
	e, err := h.b.Entity(entityPath)
	if err != nil {
		return nil, h.brokerStatus(op, err)
	}
	body, st := requestBody(req)
	if st.code != 0 {
		return nil, st
	}
	return run(h, e, body, c)
}

func (h *Handler) renewLock(e *broker.Entity, body map[string]any, _ Caller) (map[string]any, status) {
	tokens, st := uuids(body, "lock-tokens")
	if st.code != 0 {
		return nil, st
	}
	if code := h.faults.takeRenewFailure(); code != 0 {
		if code == 410 {
			return nil, status{code: 410, desc: "The lock supplied is invalid: it expired, or the message was already removed from the queue (injected fault).", cond: CondLockLost}
		}
		return nil, status{code: code, desc: "The server is busy; please retry (injected fault).", cond: CondServerBusy}
	}
	exp := make([]time.Time, len(tokens))
	for i, t := range tokens {
		until, err := e.RenewLock(t)
		if err != nil {
			return nil, h.brokerStatus(OpRenewLock, err)
		}
		exp[i] = until
	}
	return map[string]any{"expirations": exp}, ok200
}

func (h *Handler) peek(e *broker.Entity, body map[string]any, c Caller) (map[string]any, status) {
	from, st := integer(body, "from-sequence-number", true)
	if st.code != 0 {
		return nil, st
	}
	n, st := integer(body, "message-count", true)
	if st.code != 0 {
		return nil, st
	}
	if n <= 0 {
		return nil, badRequest("message-count must be positive, got %d", n)
	}
	var msgs []*amqp.Message
	if e.RequiresSession() && (c.Session != nil || body["session-id"] != nil) {
		sl, st := h.session(e, body, c)
		if st.code != 0 {
			return nil, st
		}
		msgs = sl.Peek(from, int(min(n, MaxPeekCount)))
	} else {
		msgs = e.Peek(from, int(min(n, MaxPeekCount)))
	}
	if len(msgs) == 0 {
		return nil, status{code: 204, desc: "No messages"}
	}
	list := make([]any, len(msgs))
	for i, m := range msgs {
		raw, err := broker.MarshalMessage(m)
		if err != nil {
			return nil, status{code: 500, desc: fmt.Sprintf("encode message %d: %v", i, err), cond: CondInternalError}
		}
		list[i] = map[string]any{"message": raw}
	}
	return map[string]any{"messages": list}, ok200
}

func (h *Handler) receiveBySequence(e *broker.Entity, body map[string]any, c Caller) (map[string]any, status) {
	seqs, st := int64s(body, "sequence-numbers")
	if st.code != 0 {
		return nil, st
	}
	if len(seqs) == 0 {
		return nil, badRequest("sequence-numbers must not be empty")
	}
	m, st := integer(body, "receiver-settle-mode", true)
	if st.code != 0 {
		return nil, st
	}
	var mode broker.ReceiveMode
	switch m {
	case 0:
		mode = broker.ReceiveAndDelete
	case 1:
		mode = broker.PeekLock
	default:
		return nil, badRequest("receiver-settle-mode must be 0 (receive-and-delete) or 1 (peek-lock), got %d", m)
	}
	var ds []broker.Delivery
	var err error
	if e.RequiresSession() {
		sl, st := h.session(e, body, c)
		if st.code != 0 {
			return nil, st
		}
		ds, err = sl.ReceiveDeferred(seqs, mode)
	} else {
		ds, err = e.ReceiveDeferred(seqs, mode)
	}
	if err != nil {
		return nil, h.brokerStatus(OpReceiveBySequence, err)
	}
	list := make([]any, len(ds))
	for i, d := range ds {
		raw, err := broker.MarshalMessage(d.Message)
		if err != nil {
			return nil, status{code: 500, desc: fmt.Sprintf("encode message %d: %v", d.SequenceNumber, err), cond: CondInternalError}
		}
		item := map[string]any{"message": raw}
		if mode == broker.PeekLock {
			item["lock-token"] = d.LockToken
		}
		list[i] = item
	}
	return map[string]any{"messages": list}, ok200
}

func (h *Handler) updateDisposition(e *broker.Entity, body map[string]any, _ Caller) (map[string]any, status) {
	disp, st := str(body, "disposition-status", true)
	if st.code != 0 {
		return nil, st
	}
	tokens, st := uuids(body, "lock-tokens")
	if st.code != 0 {
		return nil, st
	}
	props, st := stringMap(body, "properties-to-modify")
	if st.code != 0 {
		return nil, st
	}
	reason, st := str(body, "deadletter-reason", false)
	if st.code != 0 {
		return nil, st
	}
	desc, st := str(body, "deadletter-description", false)
	if st.code != 0 {
		return nil, st
	}
	var settle func(amqp.UUID) error
	switch disp {
	case "completed":
		settle = e.Complete
	case "abandoned":
		settle = func(t amqp.UUID) error { return e.Abandon(t, props) }
	case "defered", "deferred":
		settle = func(t amqp.UUID) error { return e.Defer(t, props) }
	case "suspended":
		settle = func(t amqp.UUID) error { return e.DeadLetter(t, reason, desc, props) }
	default:
		return nil, badRequest("disposition-status %q: must be completed, abandoned, suspended or defered", disp)
	}
	for _, t := range tokens {
		if h.faults.settlementRejected(t) {
			return nil, status{code: 410, desc: fmt.Sprintf("The lock supplied is invalid: lock token %s belongs to a receive link the service detached (injected fault).", t), cond: CondLockLost}
		}
		if err := settle(t); err != nil {
			return nil, h.brokerStatus(OpUpdateDisposition, err)
		}
	}
	return nil, ok200
}

// scheduleMessages answers schedule-message: each embedded message is sent (with its
// x-opt-scheduled-enqueue-time) and the sequence numbers are returned in order.
func (h *Handler) scheduleMessages(path string, body map[string]any) (map[string]any, status) {
	list, ok := body["messages"].([]any)
	if !ok {
		return nil, badRequest("messages is %T (want a list of maps)", body["messages"])
	}
	if len(list) == 0 {
		return nil, badRequest("messages must not be empty")
	}
	msgs := make([]*amqp.Message, len(list))
	for i, item := range list {
		m, st := stringKeyed(fmt.Sprintf("messages[%d]", i), item)
		if st.code != 0 {
			return nil, st
		}
		raw, ok := m["message"].([]byte)
		if !ok {
			return nil, badRequest("messages[%d].message is %T (want binary: an encoded AMQP message)", i, m["message"])
		}
		msgs[i] = new(amqp.Message)
		if err := msgs[i].UnmarshalBinary(raw); err != nil {
			return nil, badRequest("messages[%d].message does not decode: %v", i, err)
		}
		if id, ok := m["message-id"].(string); ok && id != "" {
			if msgs[i].Properties == nil {
				msgs[i].Properties = &amqp.MessageProperties{}
			}
			if msgs[i].Properties.MessageID == nil {
				msgs[i].Properties.MessageID = id
			}
		}
	}
	seqs, err := h.b.Schedule(path, msgs...)
	if err != nil {
		return nil, h.brokerStatus(OpScheduleMessage, err)
	}
	return map[string]any{"sequence-numbers": seqs}, ok200
}

// cancelScheduled answers cancel-scheduled-message (unknown numbers ⇒ 404 message-not-found).
func (h *Handler) cancelScheduled(path string, body map[string]any) (map[string]any, status) {
	seqs, st := int64s(body, "sequence-numbers")
	if st.code != 0 {
		return nil, st
	}
	if err := h.b.CancelScheduled(path, seqs...); err != nil {
		return nil, h.brokerStatus(OpCancelScheduledMessage, err)
	}
	return nil, ok200
}

// brokerStatus maps a broker error to a reply status.
func (h *Handler) brokerStatus(op string, err error) status {
	switch {
	case errors.Is(err, broker.ErrSessionLockLost):
		return status{code: 410, desc: err.Error(), cond: CondSessionLockLost}
	case errors.Is(err, broker.ErrSessionCannotBeLocked):
		return status{code: 410, desc: err.Error(), cond: CondSessionCannotBeLocked}
	case errors.Is(err, broker.ErrLockLost):
		return status{code: 410, desc: err.Error(), cond: CondLockLost}
	case errors.Is(err, broker.ErrMessageNotFound):
		return status{code: 404, desc: err.Error(), cond: CondMessageNotFound}
	case errors.Is(err, broker.ErrEntityNotFound):
		return status{code: 404, desc: err.Error(), cond: CondEntityNotFound}
	case errors.Is(err, broker.ErrClosed):
		return status{code: 503, desc: err.Error(), cond: CondServerBusy}
	case errors.Is(err, broker.ErrInvalidMessage), errors.Is(err, broker.ErrSendToSubqueue):
		return status{code: 400, desc: err.Error(), cond: CondInvalidField}
	case errors.Is(err, broker.ErrNotAllowed):
		return status{code: 400, desc: err.Error(), cond: CondNotAllowed}
	case errors.Is(err, broker.ErrEntityDisabled):
		// Scheduling on a SendDisabled entity. The service's status code for it is not
		// documented; 403 (refused) with the service's condition.
		return status{code: 403, desc: err.Error(), cond: CondEntityDisabled}
	default:
		h.log.Error("management operation failed", "operation", op, "err", err)
		return status{code: 500, desc: err.Error(), cond: CondInternalError}
	}
}

// reply builds the response message for req. Its body is an amqp-value map, empty when
// the operation returns nothing.
func reply(req *amqp.Message, st status, body map[string]any) *amqp.Message {
	props := map[string]any{
		"statusCode": st.code, "status-code": st.code,
		"statusDescription": st.desc, "status-description": st.desc,
	}
	if st.cond != "" {
		props["errorCondition"] = st.cond
		props["error-condition"] = st.cond
	}
	m := &amqp.Message{
		Properties:            &amqp.MessageProperties{CorrelationID: correlationID(req)},
		ApplicationProperties: props,
	}
	if body == nil {
		body = map[string]any{} // always a body section: some AMQP stacks reject messages without one
	}
	m.Value = body
	return m
}

// correlationID renders the request's message-id as the string the SDK matches on.
func correlationID(req *amqp.Message) string {
	if req == nil || req.Properties == nil || req.Properties.MessageID == nil {
		return ""
	}
	switch id := req.Properties.MessageID.(type) {
	case string:
		return id
	case amqp.UUID:
		return id.String()
	case *amqp.UUID:
		return id.String()
	case []byte:
		return string(id)
	default:
		return fmt.Sprint(id)
	}
}

func appString(req *amqp.Message, key string) (string, bool) {
	if req == nil {
		return "", false
	}
	s, ok := req.ApplicationProperties[key].(string)
	return s, ok
}

// requestBody returns the amqp-value map of a request (string or symbol keys).
func requestBody(req *amqp.Message) (map[string]any, status) {
	switch v := req.Value.(type) {
	case nil:
		return nil, badRequest("request body is missing (want an amqp-value map)")
	case map[string]any, map[any]any:
		return stringKeyed("request body", v)
	default:
		return nil, badRequest("request body is %T (want an amqp-value map)", v)
	}
}

// stringKeyed returns v as a map with string keys. go-amqp decodes maps whose keys are all
// strings or symbols as map[string]any, and other maps (including empty ones) as map[any]any.
func stringKeyed(what string, v any) (map[string]any, status) {
	switch m := v.(type) {
	case map[string]any:
		return m, status{}
	case map[any]any:
		out := make(map[string]any, len(m))
		for k, val := range m {
			switch k := k.(type) {
			case string:
				out[k] = val
			case amqp.Symbol:
				out[string(k)] = val
			default:
				return nil, badRequest("%s has a key of type %T (want string or symbol)", what, k)
			}
		}
		return out, status{}
	}
	return nil, badRequest("%s is %T (want a map)", what, v)
}

func uuids(body map[string]any, key string) ([]amqp.UUID, status) {
	v, ok := body[key]
	if !ok {
		return nil, badRequest("%s is missing", key)
	}
	var out []amqp.UUID
	switch v := v.(type) {
	case []amqp.UUID:
		out = v
	case amqp.UUID:
		out = []amqp.UUID{v}
	case []any:
		out = make([]amqp.UUID, len(v))
		for i, x := range v {
			u, ok := x.(amqp.UUID)
			if !ok {
				return nil, badRequest("%s[%d] is %T (want uuid)", key, i, x)
			}
			out[i] = u
		}
	default:
		return nil, badRequest("%s is %T (want an array of uuid)", key, v)
	}
	if len(out) == 0 {
		return nil, badRequest("%s must not be empty", key)
	}
	return out, status{}
}

func int64s(body map[string]any, key string) ([]int64, status) {
	v, ok := body[key]
	if !ok {
		return nil, badRequest("%s is missing", key)
	}
	switch v := v.(type) {
	case []int64:
		return v, status{}
	case []any:
		out := make([]int64, len(v))
		for i, x := range v {
			n, ok := ToInt64(x)
			if !ok {
				return nil, badRequest("%s[%d] is %T (want long)", key, i, x)
			}
			out[i] = n
		}
		return out, status{}
	default:
		if n, ok := ToInt64(v); ok {
			return []int64{n}, status{}
		}
		return nil, badRequest("%s is %T (want an array of long)", key, v)
	}
}

// integer reads an integer of any AMQP integer type.
func integer(body map[string]any, key string, required bool) (int64, status) {
	v, ok := body[key]
	if !ok || v == nil {
		if required {
			return 0, badRequest("%s is missing", key)
		}
		return 0, status{}
	}
	n, ok := ToInt64(v)
	if !ok {
		return 0, badRequest("%s is %T (want an integer)", key, v)
	}
	return n, status{}
}

// ToInt64 reads an integer of any AMQP integer type (false for others, and for unsigned
// values beyond int64).
func ToInt64(v any) (int64, bool) {
	switch n := v.(type) {
	case int8:
		return int64(n), true
	case int16:
		return int64(n), true
	case int32:
		return int64(n), true
	case int64:
		return n, true
	case int:
		return int64(n), true
	case uint8:
		return int64(n), true
	case uint16:
		return int64(n), true
	case uint32:
		return int64(n), true
	case uint64:
		if n > 1<<63-1 {
			return 0, false
		}
		return int64(n), true
	case uint:
		if uint64(n) > 1<<63-1 {
			return 0, false
		}
		return int64(n), true
	}
	return 0, false
}

func str(body map[string]any, key string, required bool) (string, status) {
	v, ok := body[key]
	if !ok || v == nil {
		if required {
			return "", badRequest("%s is missing", key)
		}
		return "", status{}
	}
	switch s := v.(type) {
	case string:
		return s, status{}
	case amqp.Symbol:
		return string(s), status{}
	case *string:
		return *s, status{}
	}
	return "", badRequest("%s is %T (want a string)", key, v)
}

// stringMap reads an optional map with string or symbol keys (properties-to-modify).
func stringMap(body map[string]any, key string) (map[string]any, status) {
	v, ok := body[key]
	if !ok || v == nil {
		return nil, status{}
	}
	return stringKeyed(key, v)
}
