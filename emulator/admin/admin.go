// Package admin serves the emulator's admin HTTP API: list, create and delete entities, read
// per-entity counts and operation counters, and inject faults. Requests and replies are JSON;
// entity bodies use the official emulator's Config.json schema (ISO-8601 durations).
//
//	GET    /entities                                 queues, topics and their subscriptions
//	PUT    /queues/{name}                            body: a Config.json queue "Properties" object (optional)
//	DELETE /queues/{name}
//	PUT    /topics/{name}                            body: {"Properties":{…},"Subscriptions":[…]} (optional)
//	DELETE /topics/{name}
//	PUT    /topics/{topic}/subscriptions/{name}      body: {"Properties":{…},"Rules":[…]} (optional)
//	DELETE /topics/{topic}/subscriptions/{name}
//	GET    /stats                                    counts and counters of every entity
//	GET    /faults                                   the faults in force
//	DELETE /faults                                   clear every fault
//	POST   /faults/renew-lock                        {"count":3,"status":410|503}
//	POST   /faults/management-delay                  {"delay":"2s"}
//	POST   /faults/drop-connections                  {} ⇒ {"dropped":n}
//	POST   /faults/detach-idle-receivers             {"idle":"2s","settleOnManagement":true}
//	POST   /faults/refuse-connections                {"duration":"5s"}
//
// Errors are {"error":"<what is wrong>","code":"<stable code>"} with codes InvalidRequest
// (400), Forbidden (403), NotFound (404), Conflict (409) and NotSupported (501).
//
// Requests carrying an api-version query parameter (all requests of the SDKs' administration
// clients) go to the ATOM entity-management API instead (package atom).
package admin

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/holdfast-dev/holdfast/emulator/atom"
	"github.com/holdfast-dev/holdfast/emulator/broker"
	"github.com/holdfast-dev/holdfast/emulator/mgmt"
)

// Faults controls the faults answered at the management level. Calls take effect for the
// next request, never block, and are safe for concurrent use. *mgmt.Faults implements it.
type Faults interface {
	// FailRenewLocks fails the next n renew-lock or renew-session-lock requests with status 410 or 503.
	FailRenewLocks(n int, status int) error
	// DelayManagement delays every $management reply by d (0 clears it).
	DelayManagement(d time.Duration) error
	// Reset clears every fault, including connection-level ones when the value also
	// implements ConnectionFaults.
	Reset()
	// State reports the management-level faults in force.
	State() mgmt.FaultState
}

var _ Faults = (*mgmt.Faults)(nil)

// ConnectionFaults are faults of the connection engine. When the Faults value passed to New
// also implements this interface, the matching routes work; otherwise they answer 501.
// Methods return without waiting for connections to finish closing and are safe for
// concurrent use.
type ConnectionFaults interface {
	// DropConnections closes every open client connection now (connection:forced) and
	// reports how many there were.
	DropConnections() int
	// DetachIdleReceivers detaches receive links that have had no transfer or flow for
	// idle (0 turns the behaviour off), as the service does after 10 minutes. With
	// settleOnManagement false, settling their messages through $management then answers
	// lock-lost (410); with true it is accepted.
	DetachIdleReceivers(idle time.Duration, settleOnManagement bool) error
	// RefuseConnections rejects new connections for d (0 stops refusing).
	RefuseConnections(d time.Duration) error
	// ConnectionFaultState reports the connection-level faults in force.
	ConnectionFaultState() ConnectionFaultState
}

// ConnectionFaultState is a snapshot of the connection-level faults.
type ConnectionFaultState struct {
	DetachIdleAfter    time.Duration
	SettleOnManagement bool
	RefuseUntil        time.Time // zero: not refusing
}

// Options configure New. A nil *Options means all defaults.
type Options struct {
	Logger *slog.Logger // nil ⇒ discard
	// AllowRemote serves clients on any address; by default only loopback clients are
	// served (others get 403).
	AllowRemote bool
	// ATOM configures the ATOM entity-management API served beside the JSON routes (see
	// package atom). Nil means its defaults.
	ATOM *atom.Options
}

// Error codes of error replies.
const (
	CodeInvalidRequest = "InvalidRequest"
	CodeForbidden      = "Forbidden"
	CodeNotFound       = "NotFound"
	CodeConflict       = "Conflict"
	CodeNotSupported   = "NotSupported"
)

// MaxBodyBytes caps request bodies.
const MaxBodyBytes = 1 << 20

type server struct {
	atom   http.Handler
	b      *broker.Broker
	faults Faults
	conn   ConnectionFaults // nil when faults does not implement it
	log    *slog.Logger
	remote bool
}

// New returns the admin API over b. faults may be nil: fault routes then answer 501.
func New(b *broker.Broker, faults Faults, opts *Options) http.Handler {
	s := &server{b: b, faults: faults}
	var atomOpts atom.Options
	if opts != nil {
		s.log, s.remote = opts.Logger, opts.AllowRemote
		if opts.ATOM != nil {
			atomOpts = *opts.ATOM
		}
	}
	if s.log == nil {
		s.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if atomOpts.Logger == nil {
		atomOpts.Logger = s.log
	}
	s.atom = atom.New(b, &atomOpts)
	s.conn, _ = faults.(ConnectionFaults)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /entities", s.listEntities)
	mux.HandleFunc("PUT /queues/{name...}", s.putQueue)
	mux.HandleFunc("DELETE /queues/{name...}", s.deleteQueue)
	mux.HandleFunc("PUT /topics/{name...}", s.putTopic)
	mux.HandleFunc("DELETE /topics/{name...}", s.deleteTopic)
	mux.HandleFunc("PUT /topics/{topic}/subscriptions/{name}", s.putSubscription)
	mux.HandleFunc("DELETE /topics/{topic}/subscriptions/{name}", s.deleteSubscription)
	mux.HandleFunc("GET /stats", s.stats)
	mux.HandleFunc("GET /faults", s.getFaults)
	mux.HandleFunc("DELETE /faults", s.resetFaults)
	mux.HandleFunc("POST /faults/renew-lock", s.failRenewLocks)
	mux.HandleFunc("POST /faults/management-delay", s.delayManagement)
	mux.HandleFunc("POST /faults/drop-connections", s.dropConnections)
	mux.HandleFunc("POST /faults/detach-idle-receivers", s.detachIdle)
	mux.HandleFunc("POST /faults/refuse-connections", s.refuseConnections)
	return s.guard(mux)
}

// guard rejects non-loopback clients unless AllowRemote.
func (s *server) guard(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !s.remote && !loopback(r.RemoteAddr) {
			writeError(w, http.StatusForbidden, CodeForbidden, fmt.Sprintf("the admin API serves loopback clients only (you are %s)", r.RemoteAddr))
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, MaxBodyBytes)
		if isATOM(r) {
			s.atom.ServeHTTP(w, r)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// isATOM reports whether r is for the ATOM API: the SDKs' administration clients always send
// an api-version query parameter, which the JSON routes never take.
func isATOM(r *http.Request) bool {
	_, ok := r.URL.Query()["api-version"]
	return ok
}

func loopback(remote string) bool {
	host, _, err := net.SplitHostPort(remote)
	if err != nil {
		host = remote
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// apiError is an error with an HTTP status and a stable code.
type apiError struct {
	status int
	code   string
	msg    string
}

func (e *apiError) Error() string { return e.msg }

func badRequest(format string, args ...any) error {
	return &apiError{status: http.StatusBadRequest, code: CodeInvalidRequest, msg: fmt.Sprintf(format, args...)}
}

// fail writes err: an *apiError as is, broker sentinels and config errors mapped.
func (s *server) fail(w http.ResponseWriter, err error) {
	var ae *apiError
	var ce *broker.ConfigError
	switch {
	case errors.As(err, &ae):
		writeError(w, ae.status, ae.code, ae.msg)
	case errors.As(err, &ce):
		writeError(w, http.StatusBadRequest, CodeInvalidRequest, ce.Error())
	case errors.Is(err, broker.ErrEntityNotFound):
		writeError(w, http.StatusNotFound, CodeNotFound, err.Error())
	case errors.Is(err, broker.ErrEntityExists):
		writeError(w, http.StatusConflict, CodeConflict, err.Error())
	case errors.Is(err, broker.ErrClosed):
		writeError(w, http.StatusServiceUnavailable, "Closed", err.Error())
	default:
		// Remaining broker errors are validation failures of names or properties.
		writeError(w, http.StatusBadRequest, CodeInvalidRequest, err.Error())
	}
}

func writeError(w http.ResponseWriter, status int, code, msg string) {
	writeJSON(w, status, map[string]string{"error": msg, "code": code})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// readBody reads the whole (size-capped) request body.
func readBody(r *http.Request) ([]byte, error) {
	data, err := io.ReadAll(r.Body)
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, badRequest("request body is larger than %d bytes", MaxBodyBytes)
		}
		return nil, badRequest("reading the request body: %v", err)
	}
	return data, nil
}
