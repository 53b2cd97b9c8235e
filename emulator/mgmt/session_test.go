package mgmt

import (
	"slices"
	"testing"
	"time"

	"github.com/Azure/go-amqp"

	"github.com/holdfast-dev/holdfast/emulator/broker"
)

// The session operations as the SDK sends them (associated-link-name names the session
// receiver), and the session-lock-lost answers once the lock is gone.
func TestSessionOperations(t *testing.T) {
	f := newFixtureWith(t, func(p *broker.QueueProperties) { p.RequiresSession = true })
	b, clk, e, h := f.b, f.clk, f.e, f.h
	for _, sid := range []string{"s", "s", "other"} {
		m := amqp.NewMessage([]byte("m"))
		m.Properties = &amqp.MessageProperties{GroupID: &sid}
		if err := b.Send("orders", m); err != nil {
			t.Fatal(err)
		}
	}
	sl, err := e.AcceptSession("s")
	if err != nil {
		t.Fatal(err)
	}
	caller := Caller{Rights: AllRights, AssociatedLink: "receiver-link", Session: sl}
	ask := func(op string, body map[string]any, c Caller) sdkResponse {
		t.Helper()
		return decode(t, h.Answer("orders", sdkRequest(t, op, body), c))
	}

	clk.Advance(10 * time.Second)
	r := ask(OpRenewSessionLock, map[string]any{"session-id": "s"}, caller)
	if exp, _ := r.body["expiration"].(time.Time); r.code != 200 || !exp.Equal(clk.Now().Add(30*time.Second)) {
		t.Fatalf("renew-session-lock: %d %q %v", r.code, r.desc, r.body)
	}
	if r := ask(OpSetSessionState, map[string]any{"session-id": "s", "session-state": []byte("st")}, caller); r.code != 200 {
		t.Fatalf("set-session-state: %d %q", r.code, r.desc)
	}
	if r := ask(OpGetSessionState, map[string]any{"session-id": "s"}, caller); r.code != 200 || string(r.body["session-state"].([]byte)) != "st" {
		t.Fatalf("get-session-state: %d %v", r.code, r.body)
	}
	// A request naming a link that holds another session (or none) does not reach this one.
	if r := ask(OpGetSessionState, map[string]any{"session-id": "other"}, caller); r.code != 410 || r.cond != CondSessionLockLost {
		t.Fatalf("state of a session the link does not hold: %d %q", r.code, r.cond)
	}
	r = ask(OpGetMessageSessions, map[string]any{"last-updated-time": time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC), "skip": int32(0), "top": int32(100)}, Caller{Rights: AllRights})
	if ids, _ := r.body["sessions-ids"].([]string); r.code != 200 || !slices.Equal(ids, []string{"other", "s"}) {
		t.Fatalf("get-message-sessions: %d %v", r.code, r.body)
	}
	if r := ask(OpGetMessageSessions, map[string]any{"last-updated-time": clk.Now(), "skip": int32(0), "top": int32(100)}, Caller{Rights: AllRights}); r.code != 204 {
		t.Fatalf("sessions updated after now: %d %v", r.code, r.body)
	}

	ds := sl.Receive(2, broker.PeekLock)
	if r := ask(OpRenewLock, map[string]any{"lock-tokens": []amqp.UUID{ds[0].LockToken}}, caller); r.code != 400 || r.cond != CondNotAllowed {
		t.Fatalf("renew-lock on a session message: %d %q", r.code, r.cond)
	}
	if err := e.Defer(ds[1].LockToken, nil); err != nil {
		t.Fatal(err)
	}
	r = ask(OpReceiveBySequence, map[string]any{"sequence-numbers": []int64{ds[1].SequenceNumber}, "receiver-settle-mode": uint32(1)}, caller)
	if r.code != 200 {
		t.Fatalf("receive-by-sequence-number in the session: %d %q", r.code, r.desc)
	}
	deferredToken := r.body["messages"].([]any)[0].(map[string]any)["lock-token"].(amqp.UUID)
	if r := ask(OpReceiveBySequence, map[string]any{"sequence-numbers": []int64{ds[1].SequenceNumber}, "receiver-settle-mode": uint32(1)}, Caller{Rights: AllRights}); r.code != 400 {
		t.Fatalf("receive-by-sequence-number on a session queue without a session: %d %q", r.code, r.desc)
	}

	// The lock ends: the old tokens, the renewal and the state answer session-lock-lost.
	if err := e.ExpireSessionLock("s"); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		op   string
		body map[string]any
	}{
		{OpUpdateDisposition, map[string]any{"disposition-status": "completed", "lock-tokens": []amqp.UUID{ds[0].LockToken}}},
		{OpUpdateDisposition, map[string]any{"disposition-status": "completed", "lock-tokens": []amqp.UUID{deferredToken}}},
		{OpRenewSessionLock, map[string]any{"session-id": "s"}},
		{OpSetSessionState, map[string]any{"session-id": "s", "session-state": []byte("late")}},
	} {
		if r := ask(tt.op, tt.body, caller); r.code != 410 || r.cond != CondSessionLockLost {
			t.Errorf("%s after the session lock was lost: %d %q %q", tt.op, r.code, r.cond, r.desc)
		}
	}
	ids, _ := e.ListSessions(time.Time{}, 0, 10)
	if !slices.Equal(ids, []string{"other", "s"}) {
		t.Errorf("sessions after the loss: %v", ids)
	}
}

// FailRenewLocks applies to renew-session-lock: 503 is server-busy, 410 is session-lock-lost (the condition
// the service answers when the session lock is gone), and the session lock itself stays held.
func TestRenewSessionLockFaults(t *testing.T) {
	f := newFixtureWith(t, func(p *broker.QueueProperties) { p.RequiresSession = true })
	sid := "s"
	m := amqp.NewMessage([]byte("m"))
	m.Properties = &amqp.MessageProperties{GroupID: &sid}
	if err := f.b.Send("orders", m); err != nil {
		t.Fatal(err)
	}
	sl, err := f.e.AcceptSession(sid)
	if err != nil {
		t.Fatal(err)
	}
	caller := Caller{Rights: AllRights, AssociatedLink: "receiver-link", Session: sl}
	renew := func() sdkResponse {
		t.Helper()
		return decode(t, f.h.Answer("orders", sdkRequest(t, OpRenewSessionLock, map[string]any{"session-id": sid}), caller))
	}
	for _, tt := range []struct {
		status int
		cond   string
	}{{503, CondServerBusy}, {410, CondSessionLockLost}} {
		if err := f.h.Faults().FailRenewLocks(1, tt.status); err != nil {
			t.Fatal(err)
		}
		if r := renew(); int(r.code) != tt.status || r.cond != tt.cond {
			t.Errorf("renew-session-lock with a %d fault: %d %q, want %d %q", tt.status, r.code, r.cond, tt.status, tt.cond)
		}
		if r := renew(); r.code != 200 {
			t.Errorf("renew-session-lock after the fault: %d %q: the session lock should still be held", r.code, r.desc)
		}
	}
}
