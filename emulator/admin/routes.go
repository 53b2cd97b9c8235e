package admin

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/holdfast-dev/holdfast/emulator/broker"
)

// EntityList is the reply of GET /entities.
type EntityList struct {
	Queues []string    `json:"queues"`
	Topics []TopicInfo `json:"topics"`
}

// TopicInfo names a topic and its subscriptions.
type TopicInfo struct {
	Name          string   `json:"name"`
	Subscriptions []string `json:"subscriptions"`
}

func (s *server) listEntities(w http.ResponseWriter, r *http.Request) {
	out := EntityList{Queues: s.b.Queues(), Topics: []TopicInfo{}}
	for _, t := range s.b.Topics() {
		subs, err := s.b.Subscriptions(t)
		if err != nil {
			continue // deleted meanwhile
		}
		out.Topics = append(out.Topics, TopicInfo{Name: t, Subscriptions: subs})
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *server) putQueue(w http.ResponseWriter, r *http.Request) {
	data, err := readBody(r)
	if err != nil {
		s.fail(w, err)
		return
	}
	p, err := broker.ParseQueueProperties(data)
	if err != nil {
		s.fail(w, err)
		return
	}
	if err := s.b.CreateQueue(r.PathValue("name"), p); err != nil {
		s.fail(w, err)
		return
	}
	writeJSON(w, http.StatusCreated, map[string]string{"queue": r.PathValue("name")})
}

func (s *server) deleteQueue(w http.ResponseWriter, r *http.Request) {
	if err := s.b.DeleteQueue(r.PathValue("name")); err != nil {
		s.fail(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *server) putTopic(w http.ResponseWriter, r *http.Request) {
	data, err := readBody(r)
	if err != nil {
		s.fail(w, err)
		return
	}
	t, err := broker.ParseTopicConfig(r.PathValue("name"), data)
	if err != nil {
		s.fail(w, err)
		return
	}
	if err := s.b.CreateTopicConfig(t); err != nil {
		s.fail(w, err)
		return
	}
	writeJSON(w, http.StatusCreated, map[string]string{"topic": t.Name})
}

func (s *server) deleteTopic(w http.ResponseWriter, r *http.Request) {
	if err := s.b.DeleteTopic(r.PathValue("name")); err != nil {
		s.fail(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *server) putSubscription(w http.ResponseWriter, r *http.Request) {
	data, err := readBody(r)
	if err != nil {
		s.fail(w, err)
		return
	}
	sc, err := broker.ParseSubscriptionConfig(r.PathValue("name"), data)
	if err != nil {
		s.fail(w, err)
		return
	}
	if err := s.b.CreateSubscription(r.PathValue("topic"), sc.Name, sc.Properties, sc.Rules); err != nil {
		s.fail(w, err)
		return
	}
	writeJSON(w, http.StatusCreated, map[string]string{"topic": r.PathValue("topic"), "subscription": sc.Name})
}

func (s *server) deleteSubscription(w http.ResponseWriter, r *http.Request) {
	if err := s.b.DeleteSubscription(r.PathValue("topic"), r.PathValue("name")); err != nil {
		s.fail(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// Stats is the reply of GET /stats.
type Stats struct {
	ManagementCalls uint64        `json:"managementCalls"`
	Entities        []EntityStats `json:"entities"`
}

// EntityStats are one entity's counts and counters.
type EntityStats struct {
	Path         string   `json:"path"`
	Kind         string   `json:"kind"` // queue, topic, subscription, deadLetterQueue
	Active       int      `json:"active"`
	Locked       int      `json:"locked"`
	Deferred     int      `json:"deferred"`
	Scheduled    int      `json:"scheduled"`
	DeadLettered int      `json:"deadLettered"`
	Counters     Counters `json:"counters"`
}

// Counters are operation counters since the entity was created.
type Counters struct {
	Sends              uint64 `json:"sends"`
	Receives           uint64 `json:"receives"`
	ReceivesBySequence uint64 `json:"receivesBySequenceNumber"`
	Peeks              uint64 `json:"peeks"`
	Renewals           uint64 `json:"renewals"`
	Completes          uint64 `json:"completes"`
	Abandons           uint64 `json:"abandons"`
	Defers             uint64 `json:"defers"`
	Releases           uint64 `json:"releases"`
	DeadLetters        uint64 `json:"deadLetters"`
	LockExpiries       uint64 `json:"lockExpiries"`
	Scheduled          uint64 `json:"scheduled"`
	ScheduleCancels    uint64 `json:"scheduleCancels"`
	Duplicates         uint64 `json:"duplicates"`
	Expired            uint64 `json:"expired"`
	Forwarded          uint64 `json:"forwarded"`
}

var kindNames = map[broker.EntityKind]string{
	broker.KindQueue: "queue", broker.KindTopic: "topic", broker.KindSubscription: "subscription",
	broker.KindDeadLetterQueue: "deadLetterQueue",
}

// StatsOf converts broker stats to the JSON shape of GET /stats.
func StatsOf(st broker.Stats) Stats {
	out := Stats{ManagementCalls: st.ManagementCalls, Entities: make([]EntityStats, 0, len(st.Entities))}
	for _, e := range st.Entities {
		c := e.Counters
		out.Entities = append(out.Entities, EntityStats{
			Path: e.Path, Kind: kindNames[e.Kind], Active: e.Active, Locked: e.Locked, Deferred: e.Deferred,
			Scheduled: e.Scheduled, DeadLettered: e.DeadLettered,
			Counters: Counters{
				Sends: c.Sent, Receives: c.Received, ReceivesBySequence: c.ReceivedBySequence, Peeks: c.Peeked,
				Renewals: c.LockRenewed, Completes: c.Completed, Abandons: c.Abandoned, Defers: c.Deferred,
				Releases: c.Released, DeadLetters: c.DeadLettered, LockExpiries: c.LockExpired,
				Scheduled: c.Scheduled, ScheduleCancels: c.ScheduleCancelled, Duplicates: c.Duplicates, Expired: c.Expired,
				Forwarded: c.Forwarded,
			},
		})
	}
	return out
}

func (s *server) stats(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, StatsOf(s.b.Stats()))
}

// FaultState is the reply of GET /faults.
type FaultState struct {
	RenewLockFailures  int      `json:"renewLockFailures"`
	RenewLockStatus    int      `json:"renewLockStatus,omitempty"`
	ManagementDelay    Duration `json:"managementDelay"`
	DelayedRequests    uint64   `json:"delayedRequests"`
	DetachIdleAfter    Duration `json:"detachIdleAfter"`
	SettleOnManagement bool     `json:"settleOnManagement"`
	RefuseUntil        string   `json:"refuseConnectionsUntil,omitempty"`
}

func (s *server) getFaults(w http.ResponseWriter, r *http.Request) {
	if s.faults == nil {
		s.fail(w, errNoFaults)
		return
	}
	m := s.faults.State()
	out := FaultState{RenewLockFailures: m.RenewLockFailures, RenewLockStatus: m.RenewLockStatus, ManagementDelay: Duration(m.ManagementDelay), DelayedRequests: m.DelayedRequests}
	if s.conn != nil {
		c := s.conn.ConnectionFaultState()
		out.DetachIdleAfter, out.SettleOnManagement = Duration(c.DetachIdleAfter), c.SettleOnManagement
		if !c.RefuseUntil.IsZero() {
			out.RefuseUntil = c.RefuseUntil.UTC().Format(time.RFC3339Nano)
		}
	}
	writeJSON(w, http.StatusOK, out)
}

var (
	errNoFaults     = &apiError{status: http.StatusNotImplemented, code: CodeNotSupported, msg: "fault injection is not available on this server"}
	errNoConnFaults = &apiError{status: http.StatusNotImplemented, code: CodeNotSupported, msg: "connection-level faults are not available on this server"}
)

func (s *server) resetFaults(w http.ResponseWriter, r *http.Request) {
	if s.faults == nil {
		s.fail(w, errNoFaults)
		return
	}
	s.faults.Reset()
	w.WriteHeader(http.StatusNoContent)
}

// RenewLockFault is the body of POST /faults/renew-lock.
type RenewLockFault struct {
	Count  int `json:"count"`
	Status int `json:"status"` // 410 (lock lost) or 503 (server busy); 0 ⇒ 410
}

// DelayFault is the body of POST /faults/management-delay.
type DelayFault struct {
	Delay Duration `json:"delay"`
}

// DetachIdleFault is the body of POST /faults/detach-idle-receivers. SettleOnManagement
// defaults to true (the service accepts settlement through $management after a detach);
// false is a what-if beyond the service.
type DetachIdleFault struct {
	Idle               Duration `json:"idle"`
	SettleOnManagement *bool    `json:"settleOnManagement,omitempty"`
}

// RefuseFault is the body of POST /faults/refuse-connections.
type RefuseFault struct {
	Duration Duration `json:"duration"`
}

func (s *server) failRenewLocks(w http.ResponseWriter, r *http.Request) {
	var req RenewLockFault
	if !s.decode(w, r, &req) {
		return
	}
	if req.Status == 0 {
		req.Status = 410
	}
	if err := s.faults.FailRenewLocks(req.Count, req.Status); err != nil {
		s.fail(w, badRequest("%v", err))
		return
	}
	s.log.Info("fault set: fail renew-lock", "count", req.Count, "status", req.Status)
	writeJSON(w, http.StatusOK, req)
}

func (s *server) delayManagement(w http.ResponseWriter, r *http.Request) {
	var req DelayFault
	if !s.decode(w, r, &req) {
		return
	}
	if err := s.faults.DelayManagement(time.Duration(req.Delay)); err != nil {
		s.fail(w, badRequest("%v", err))
		return
	}
	s.log.Info("fault set: delay management", "delay", time.Duration(req.Delay))
	writeJSON(w, http.StatusOK, req)
}

func (s *server) dropConnections(w http.ResponseWriter, r *http.Request) {
	var req struct{}
	if !s.decodeConn(w, r, &req) {
		return
	}
	n := s.conn.DropConnections()
	s.log.Info("fault: dropped connections", "count", n)
	writeJSON(w, http.StatusOK, map[string]int{"dropped": n})
}

func (s *server) detachIdle(w http.ResponseWriter, r *http.Request) {
	var req DetachIdleFault
	if !s.decodeConn(w, r, &req) {
		return
	}
	settle := req.SettleOnManagement == nil || *req.SettleOnManagement
	req.SettleOnManagement = &settle
	if err := s.conn.DetachIdleReceivers(time.Duration(req.Idle), settle); err != nil {
		s.fail(w, badRequest("%v", err))
		return
	}
	s.log.Info("fault set: detach idle receivers", "idle", time.Duration(req.Idle), "settleOnManagement", settle)
	writeJSON(w, http.StatusOK, req)
}

func (s *server) refuseConnections(w http.ResponseWriter, r *http.Request) {
	var req RefuseFault
	if !s.decodeConn(w, r, &req) {
		return
	}
	if err := s.conn.RefuseConnections(time.Duration(req.Duration)); err != nil {
		s.fail(w, badRequest("%v", err))
		return
	}
	s.log.Info("fault set: refuse connections", "duration", time.Duration(req.Duration))
	writeJSON(w, http.StatusOK, req)
}

// decode reads a fault request body into v (empty body ⇒ zero value); it writes the error
// reply and returns false when faults are unavailable or the body is invalid.
func (s *server) decode(w http.ResponseWriter, r *http.Request, v any) bool {
	if s.faults == nil {
		s.fail(w, errNoFaults)
		return false
	}
	if err := decodeJSON(r, v); err != nil {
		s.fail(w, err)
		return false
	}
	return true
}

func (s *server) decodeConn(w http.ResponseWriter, r *http.Request, v any) bool {
	if s.conn == nil {
		s.fail(w, errNoConnFaults)
		return false
	}
	return s.decode(w, r, v)
}

// decodeJSON decodes one JSON object strictly: unknown fields, wrong types and trailing data
// are errors naming the problem.
func decodeJSON(r *http.Request, v any) error {
	data, err := readBody(r)
	if err != nil {
		return err
	}
	return DecodeStrict(data, v)
}

// DecodeStrict decodes data into v rejecting unknown fields and trailing data; empty input
// leaves v unchanged. Errors are 400 InvalidRequest replies.
func DecodeStrict(data []byte, v any) error {
	if len(bytes.TrimSpace(data)) == 0 {
		return nil
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return badRequest("invalid JSON body: %v", err)
	}
	if dec.More() {
		return badRequest("invalid JSON body: trailing data after the object")
	}
	return nil
}

// Duration is a JSON duration: a Go duration string ("1.5s", "2m") or ISO-8601 ("PT2S");
// negative values are rejected. It encodes as a Go duration string.
type Duration time.Duration

// MarshalJSON encodes d as a Go duration string.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

// UnmarshalJSON accepts a Go or ISO-8601 duration string.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("duration must be a string such as \"2s\" or \"PT2S\", got %s", b)
	}
	v, err := time.ParseDuration(s)
	if err != nil && strings.HasPrefix(strings.ToUpper(s), "P") {
		v, err = broker.ParseISODuration(s)
	}
	if err != nil {
		return fmt.Errorf("duration %q: want a Go duration (\"2s\") or ISO-8601 (\"PT2S\")", s)
	}
	if v < 0 {
		return fmt.Errorf("duration %q must not be negative", s)
	}
	*d = Duration(v)
	return nil
}
