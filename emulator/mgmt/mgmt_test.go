package mgmt

import (
	"strings"
	"testing"
	"time"

	"github.com/Azure/go-amqp"

	"github.com/holdfast-dev/holdfast/emulator/broker"
)

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

type fixture struct {
	b   *broker.Broker
	clk *broker.ManualClock
	e   *broker.Entity
	h   *Handler
}

func newFixture(t *testing.T) *fixture { return newFixtureWith(t, nil) }

// newFixtureWith is newFixture with the queue's properties changed by mutate.
func newFixtureWith(t *testing.T, mutate func(*broker.QueueProperties)) *fixture {
	t.Helper()
	clk := broker.NewManualClock(t0)
	b, err := broker.New(nil, &broker.Options{Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	p := broker.DefaultQueueProperties()
	p.LockDuration = 30 * time.Second
	if mutate != nil {
		mutate(&p)
	}
	if err := b.CreateQueue("orders", p); err != nil {
		t.Fatal(err)
	}
	e, _ := b.Entity("orders")
	return &fixture{b: b, clk: clk, e: e, h: New(b, nil)}
}

func (f *fixture) send(t *testing.T, bodies ...string) {
	t.Helper()
	for _, s := range bodies {
		if err := f.b.Send("orders", amqp.NewMessage([]byte(s))); err != nil {
			t.Fatal(err)
		}
	}
}

// deferAll receives every available message and defers it; it returns their sequence numbers.
func (f *fixture) deferAll(t *testing.T) []int64 {
	t.Helper()
	var seqs []int64
	for _, d := range f.e.Receive(100, broker.PeekLock) {
		if err := f.e.Defer(d.LockToken, nil); err != nil {
			t.Fatal(err)
		}
		seqs = append(seqs, d.SequenceNumber)
	}
	return seqs
}

// sdkRequest builds a management request the way azservicebus v1.11.0 does (internal/mgmt.go
// and rpc.go), then sends it through the wire codec.
func sdkRequest(t *testing.T, op string, body map[string]any) *amqp.Message {
	t.Helper()
	replyTo := "orders/$management$orders/$management-reply-to-1"
	m := &amqp.Message{
		Properties: &amqp.MessageProperties{MessageID: "5f0c7d8e-1111-4222-8333-444455556666", ReplyTo: &replyTo},
		ApplicationProperties: map[string]any{
			"operation": op, "associated-link-name": "receiver-link", "server-timeout": uint(59000),
		},
	}
	if body != nil {
		m.Value = body
	}
	return wire(t, m)
}

// wire round-trips a message through MarshalBinary/UnmarshalBinary, as the link does.
func wire(t *testing.T, m *amqp.Message) *amqp.Message {
	t.Helper()
	raw, err := m.MarshalBinary()
	if err != nil {
		t.Fatalf("marshal: %v", err)
	}
	var out amqp.Message
	if err := out.UnmarshalBinary(raw); err != nil {
		t.Fatalf("unmarshal: %v", err)
	}
	return &out
}

// sdkResponse decodes a reply as the SDK's rpcLink does: string correlation-id, int32 status.
type sdkResponse struct {
	code int32
	desc string
	cond string
	body map[string]any
}

func decode(t *testing.T, reply *amqp.Message) sdkResponse {
	t.Helper()
	if reply == nil {
		t.Fatal("nil reply")
	}
	m := wire(t, reply)
	if m.Properties == nil {
		t.Fatal("reply without properties")
	}
	if id, ok := m.Properties.CorrelationID.(string); !ok || id != "5f0c7d8e-1111-4222-8333-444455556666" {
		t.Fatalf("correlation-id %#v, want the request's message-id string", m.Properties.CorrelationID)
	}
	var r sdkResponse
	for _, k := range []string{"status-code", "statusCode"} {
		c, ok := m.ApplicationProperties[k].(int32)
		if !ok {
			t.Fatalf("%s = %#v, want int32", k, m.ApplicationProperties[k])
		}
		r.code = c
	}
	r.desc, _ = m.ApplicationProperties["statusDescription"].(string)
	if d2, _ := m.ApplicationProperties["status-description"].(string); d2 != r.desc {
		t.Errorf("status descriptions differ: %q vs %q", r.desc, d2)
	}
	r.cond, _ = m.ApplicationProperties["errorCondition"].(string)
	switch body := m.Value.(type) {
	case map[string]any:
		r.body = body
	case map[any]any: // go-amqp decodes an empty map this way
		if len(body) != 0 {
			t.Fatalf("reply body has non-string keys: %v", body)
		}
	default:
		t.Fatalf("reply body is %T, want an amqp-value map", m.Value)
	}
	return r
}

// sdkMessages extracts "messages" exactly as internal/mgmt.go PeekMessages/ReceiveDeferred do.
func sdkMessages(t *testing.T, body map[string]any) []*amqp.Message {
	t.Helper()
	list, ok := body["messages"].([]any)
	if !ok {
		t.Fatalf("messages is %T, want []any (an AMQP list)", body["messages"])
	}
	out := make([]*amqp.Message, len(list))
	for i, item := range list {
		entry, ok := item.(map[string]any)
		if !ok {
			t.Fatalf("messages[%d] is %T, want map[string]any", i, item)
		}
		raw, ok := entry["message"].([]byte)
		if !ok {
			t.Fatalf("messages[%d].message is %T, want []byte", i, entry["message"])
		}
		var m amqp.Message
		if err := m.UnmarshalBinary(raw); err != nil {
			t.Fatal(err)
		}
		out[i] = &m
	}
	return out
}

func TestCBS(t *testing.T) {
	f := newFixture(t)
	tests := []struct {
		op, audience string
		want         int32
	}{
		{"put-token", "amqp://localhost:5672/orders", 200},
		{"put-token", "amqp://localhost:5672/orders/$management", 200},
		{"put-token", "sb://localhost:5672/ORDERS/$DeadLetterQueue", 200},
		{"put-token", "amqp://localhost:5672/missing", 404},
		{"put-token", "amqp://localhost:5672/", 404},
		{"put-token", "", 400},
		{"delete-token", "amqp://localhost:5672/orders", 404},
	}
	for _, tt := range tests {
		m := &amqp.Message{
			Properties: &amqp.MessageProperties{MessageID: "5f0c7d8e-1111-4222-8333-444455556666"},
			ApplicationProperties: map[string]any{
				"operation": tt.op, "type": "servicebus.windows.net:sastoken", "expiration": "1795322771",
			},
			Value: "SharedAccessSignature sr=x&sig=y&se=1795322771&skn=RootManageSharedAccessKey",
		}
		if tt.audience != "" {
			m.ApplicationProperties["name"] = tt.audience
		}
		rep, _, _ := f.h.CBS(wire(t, m))
		r := decode(t, rep)
		if r.code != tt.want {
			t.Errorf("%s %q: status %d (%s), want %d", tt.op, tt.audience, r.code, r.desc, tt.want)
		}
	}
}

func TestRenewLock(t *testing.T) {
	f := newFixture(t)
	f.send(t, "a")
	d := f.e.Receive(1, broker.PeekLock)[0]
	f.clk.Advance(10 * time.Second)
	r := decode(t, f.h.Management("orders", sdkRequest(t, OpRenewLock, map[string]any{"lock-tokens": []amqp.UUID{d.LockToken}})))
	if r.code != 200 {
		t.Fatalf("status %d %s", r.code, r.desc)
	}
	exp, ok := r.body["expirations"].([]time.Time)
	if !ok || len(exp) != 1 {
		t.Fatalf("expirations is %#v, want []time.Time (an AMQP array of timestamp)", r.body["expirations"])
	}
	if want := t0.Add(40 * time.Second); !exp[0].Equal(want) {
		t.Errorf("expiration %v, want %v", exp[0], want)
	}
	if err := f.e.Complete(d.LockToken); err != nil {
		t.Fatal(err)
	}
	r = decode(t, f.h.Management("orders", sdkRequest(t, OpRenewLock, map[string]any{"lock-tokens": []amqp.UUID{d.LockToken}})))
	if r.code != 410 || r.cond != CondLockLost {
		t.Errorf("renew after complete: %d %q, want 410 %s", r.code, r.cond, CondLockLost)
	}
}

func TestPeekMessage(t *testing.T) {
	f := newFixture(t)
	f.send(t, "a", "b")
	deferred := f.deferAll(t)
	f.send(t, "c")
	req := func(from int64, n int32) sdkResponse {
		return decode(t, f.h.Management("orders", sdkRequest(t, OpPeekMessage, map[string]any{
			"from-sequence-number": from, "message-count": n,
		})))
	}
	r := req(0, 10)
	if r.code != 200 {
		t.Fatalf("peek: %d %s", r.code, r.desc)
	}
	msgs := sdkMessages(t, r.body)
	if len(msgs) != 3 {
		t.Fatalf("peeked %d messages, want 3", len(msgs))
	}
	for i, m := range msgs {
		if seq, ok := m.Annotations["x-opt-sequence-number"].(int64); !ok || seq != int64(i+1) {
			t.Errorf("message %d: x-opt-sequence-number %#v", i, m.Annotations["x-opt-sequence-number"])
		}
		if _, ok := m.Annotations["x-opt-enqueued-time"].(time.Time); !ok {
			t.Errorf("message %d: x-opt-enqueued-time %#v", i, m.Annotations["x-opt-enqueued-time"])
		}
		state, _ := m.Annotations["x-opt-message-state"].(int32)
		if wantDeferred := i < len(deferred); wantDeferred != (state == 1) {
			t.Errorf("message %d: x-opt-message-state %v", i, m.Annotations["x-opt-message-state"])
		}
	}
	if r := req(3, 10); r.code != 200 || len(sdkMessages(t, r.body)) != 1 {
		t.Errorf("peek from 3: %d", r.code)
	}
	if r := req(4, 10); r.code != 204 {
		t.Errorf("peek past the end: status %d, want 204", r.code)
	}
	if r := req(1, 0); r.code != 400 || !strings.Contains(r.desc, "message-count") {
		t.Errorf("peek of 0 messages: %d %q, want 400 naming message-count", r.code, r.desc)
	}
}

func TestReceiveBySequenceNumber(t *testing.T) {
	f := newFixture(t)
	f.send(t, "a", "b", "c")
	seqs := f.deferAll(t)
	for _, mode := range []any{uint32(1), uint8(1), int64(1)} { // the SDK sends uint32; the docs say ubyte
		f := newFixture(t)
		f.send(t, "a")
		s := f.deferAll(t)
		r := decode(t, f.h.Management("orders", sdkRequest(t, OpReceiveBySequence, map[string]any{
			"sequence-numbers": s, "receiver-settle-mode": mode,
		})))
		if r.code != 200 {
			t.Errorf("receiver-settle-mode %T: status %d %s", mode, r.code, r.desc)
		}
	}

	r := decode(t, f.h.Management("orders", sdkRequest(t, OpReceiveBySequence, map[string]any{
		"sequence-numbers": seqs[:2], "receiver-settle-mode": uint32(1),
	})))
	if r.code != 200 {
		t.Fatalf("status %d %s", r.code, r.desc)
	}
	list := r.body["messages"].([]any)
	msgs := sdkMessages(t, r.body)
	if len(msgs) != 2 {
		t.Fatalf("%d messages, want 2", len(msgs))
	}
	var tokens []amqp.UUID
	for i, m := range msgs {
		tok, ok := m.DeliveryAnnotations["x-opt-lock-token"].(amqp.UUID)
		if !ok {
			t.Fatalf("message %d: delivery annotation x-opt-lock-token %#v, want uuid", i, m.DeliveryAnnotations["x-opt-lock-token"])
		}
		if mapTok := list[i].(map[string]any)["lock-token"]; mapTok != tok {
			t.Errorf("message %d: map lock-token %v differs from x-opt-lock-token %v", i, mapTok, tok)
		}
		if m.Annotations["x-opt-message-state"] != int32(1) || m.Annotations["x-opt-sequence-number"] != seqs[i] {
			t.Errorf("message %d: annotations %v", i, m.Annotations)
		}
		if until, ok := m.Annotations["x-opt-locked-until"].(time.Time); !ok || !until.Equal(t0.Add(30*time.Second)) {
			t.Errorf("message %d: x-opt-locked-until %#v", i, m.Annotations["x-opt-locked-until"])
		}
		tokens = append(tokens, tok)
	}
	// Settle the first on the management link; it is gone afterwards: 404, never 204.
	r = decode(t, f.h.Management("orders", sdkRequest(t, OpUpdateDisposition, map[string]any{
		"disposition-status": "completed", "lock-tokens": []amqp.UUID{tokens[0]},
	})))
	if r.code != 200 {
		t.Fatalf("complete: %d %s", r.code, r.desc)
	}
	r = decode(t, f.h.Management("orders", sdkRequest(t, OpReceiveBySequence, map[string]any{
		"sequence-numbers": []int64{seqs[0]}, "receiver-settle-mode": uint32(1),
	})))
	if r.code != 404 || r.cond != CondMessageNotFound {
		t.Errorf("receive of a completed message: %d %q, want 404 %s", r.code, r.cond, CondMessageNotFound)
	}
	// ReceiveAndDelete: no lock token, message removed.
	r = decode(t, f.h.Management("orders", sdkRequest(t, OpReceiveBySequence, map[string]any{
		"sequence-numbers": []int64{seqs[2]}, "receiver-settle-mode": uint32(0),
	})))
	if r.code != 200 {
		t.Fatalf("receive-and-delete: %d %s", r.code, r.desc)
	}
	if item := r.body["messages"].([]any)[0].(map[string]any); item["lock-token"] != nil {
		t.Errorf("receive-and-delete reply carries a lock-token")
	}
	if got := f.e.Peek(seqs[2], 1); len(got) != 0 {
		t.Errorf("receive-and-delete left the message")
	}
}

func TestUpdateDisposition(t *testing.T) {
	reason, desc := "bad input", "field x"
	tests := []struct {
		name  string
		body  func(tok amqp.UUID) map[string]any
		check func(t *testing.T, f *fixture)
	}{
		{"abandoned with properties", func(tok amqp.UUID) map[string]any {
			return map[string]any{"disposition-status": "abandoned", "lock-tokens": []amqp.UUID{tok},
				"properties-to-modify": map[string]any{"hello": "world"}}
		}, func(t *testing.T, f *fixture) {
			d := f.e.Receive(1, broker.PeekLock)
			if len(d) != 1 || d[0].Message.Header.DeliveryCount != 1 || d[0].Message.ApplicationProperties["hello"] != "world" {
				t.Errorf("after abandon: %+v", d)
			}
		}},
		{"defered", func(tok amqp.UUID) map[string]any {
			return map[string]any{"disposition-status": "defered", "lock-tokens": []amqp.UUID{tok}}
		}, func(t *testing.T, f *fixture) {
			if st := f.e.Stats(); st.Deferred != 1 {
				t.Errorf("after defer: stats %+v", st)
			}
		}},
		{"suspended", func(tok amqp.UUID) map[string]any {
			return map[string]any{"disposition-status": "suspended", "lock-tokens": []amqp.UUID{tok},
				"deadletter-reason": &reason, "deadletter-description": &desc}
		}, func(t *testing.T, f *fixture) {
			d := f.e.DeadLetterQueue().Receive(1, broker.PeekLock)
			if len(d) != 1 || d[0].Message.ApplicationProperties["DeadLetterReason"] != reason ||
				d[0].Message.ApplicationProperties["DeadLetterErrorDescription"] != desc {
				t.Errorf("after dead-letter: %+v", d)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			f.send(t, "a")
			d := f.e.Receive(1, broker.PeekLock)[0]
			r := decode(t, f.h.Management("orders", sdkRequest(t, OpUpdateDisposition, tt.body(d.LockToken))))
			if r.code != 200 {
				t.Fatalf("status %d %s", r.code, r.desc)
			}
			tt.check(t, f)
			r = decode(t, f.h.Management("orders", sdkRequest(t, OpUpdateDisposition, tt.body(d.LockToken))))
			if r.code != 410 || r.cond != CondLockLost {
				t.Errorf("second settlement: %d %q, want 410", r.code, r.cond)
			}
		})
	}
}

func TestBadRequests(t *testing.T) {
	f := newFixture(t)
	tok := amqp.UUID{1}
	tests := []struct {
		name, entity, op string
		body             map[string]any
		wantCode         int32
		wantDesc         string
	}{
		{"unknown op", "orders", "com.microsoft:frobnicate", map[string]any{}, 404, "com.microsoft:frobnicate"},
		{"unknown op without body", "orders", "com.microsoft:frobnicate", nil, 404, "com.microsoft:frobnicate"},
		{"unknown op on unknown entity", "missing", "com.microsoft:frobnicate", nil, 404, "com.microsoft:frobnicate"},
		{"schedule nothing", "orders", OpScheduleMessage, map[string]any{"messages": []any{}}, 400, "messages must not be empty"},
		{"schedule garbage", "orders", OpScheduleMessage, map[string]any{"messages": []any{map[string]any{"message": []byte{1, 2}}}}, 400, "messages[0].message"},
		{"schedule unknown entity", "missing", OpScheduleMessage, map[string]any{"messages": []any{}}, 404, "missing"},
		{"cancel unknown", "orders", OpCancelScheduledMessage, map[string]any{"sequence-numbers": []int64{1}}, 404, "not scheduled"},
		{"session op on a plain queue", "orders", OpRenewSessionLock, map[string]any{"session-id": "s"}, 400, "does not require sessions"},
		{"unknown entity", "missing", OpPeekMessage, map[string]any{}, 404, "missing"},
		{"no body", "orders", OpPeekMessage, nil, 400, "body"},
		{"missing from", "orders", OpPeekMessage, map[string]any{"message-count": int32(1)}, 400, "from-sequence-number"},
		{"wrong type", "orders", OpPeekMessage, map[string]any{"from-sequence-number": "1", "message-count": int32(1)}, 400, "from-sequence-number"},
		{"missing tokens", "orders", OpRenewLock, map[string]any{}, 400, "lock-tokens"},
		{"tokens not uuids", "orders", OpRenewLock, map[string]any{"lock-tokens": []string{"x"}}, 400, "lock-tokens"},
		{"missing seqs", "orders", OpReceiveBySequence, map[string]any{"receiver-settle-mode": uint32(1)}, 400, "sequence-numbers"},
		{"missing mode", "orders", OpReceiveBySequence, map[string]any{"sequence-numbers": []int64{1}}, 400, "receiver-settle-mode"},
		{"bad mode", "orders", OpReceiveBySequence, map[string]any{"sequence-numbers": []int64{1}, "receiver-settle-mode": uint32(7)}, 400, "receiver-settle-mode"},
		{"bad status", "orders", OpUpdateDisposition, map[string]any{"disposition-status": "exploded", "lock-tokens": []amqp.UUID{tok}}, 400, "disposition-status"},
		{"bad props", "orders", OpUpdateDisposition, map[string]any{"disposition-status": "abandoned", "lock-tokens": []amqp.UUID{tok}, "properties-to-modify": "x"}, 400, "properties-to-modify"},
		{"unknown token", "orders", OpUpdateDisposition, map[string]any{"disposition-status": "completed", "lock-tokens": []amqp.UUID{tok}}, 410, "lock"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := decode(t, f.h.Management(tt.entity, sdkRequest(t, tt.op, tt.body)))
			if r.code != tt.wantCode || !strings.Contains(r.desc, tt.wantDesc) {
				t.Errorf("status %d %q; want %d mentioning %q", r.code, r.desc, tt.wantCode, tt.wantDesc)
			}
			if r.cond == "" {
				t.Error("error reply without errorCondition")
			}
		})
	}
	// A missing operation property.
	req := sdkRequest(t, "x", map[string]any{})
	delete(req.ApplicationProperties, "operation")
	if r := decode(t, f.h.Management("orders", req)); r.code != 400 || !strings.Contains(r.desc, "operation") {
		t.Errorf("no operation: %d %q", r.code, r.desc)
	}
}

// TestSymbolKeys: map keys sent as symbols decode to strings and work the same.
func TestSymbolKeys(t *testing.T) {
	f := newFixture(t)
	f.send(t, "a")
	req := sdkRequest(t, OpPeekMessage, nil)
	req.Value = map[amqp.Symbol]any{"from-sequence-number": int64(1), "message-count": int32(5)}
	req = wire(t, req)
	if r := decode(t, f.h.Management("orders", req)); r.code != 200 {
		t.Errorf("symbol keys: %d %s", r.code, r.desc)
	}
}

func TestManagementOnDeadLetterQueue(t *testing.T) {
	f := newFixture(t)
	f.send(t, "a")
	d := f.e.Receive(1, broker.PeekLock)[0]
	if err := f.e.DeadLetter(d.LockToken, "why", "desc", nil); err != nil {
		t.Fatal(err)
	}
	r := decode(t, f.h.Management("orders/$deadletterqueue", sdkRequest(t, OpPeekMessage, map[string]any{
		"from-sequence-number": int64(0), "message-count": int32(10),
	})))
	if r.code != 200 {
		t.Fatalf("peek DLQ: %d %s", r.code, r.desc)
	}
	msgs := sdkMessages(t, r.body)
	if len(msgs) != 1 || msgs[0].ApplicationProperties["DeadLetterReason"] != "why" ||
		msgs[0].Annotations["x-opt-deadletter-source"] != "orders" {
		t.Fatalf("DLQ peek: %+v", msgs)
	}
	if r := decode(t, f.h.Management("orders", sdkRequest(t, OpPeekMessage, map[string]any{
		"from-sequence-number": int64(0), "message-count": int32(10),
	}))); r.code != 204 {
		t.Errorf("peek of the emptied queue: %d, want 204", r.code)
	}
}

func TestCorrelationIDTypes(t *testing.T) {
	u := amqp.UUID{0x5f, 0x0c, 0x7d, 0x8e, 0x11, 0x11, 0x42, 0x22, 0x83, 0x33, 0x44, 0x44, 0x55, 0x55, 0x66, 0x66}
	tests := []struct {
		id   any
		want string
	}{
		{"abc", "abc"},
		{u, "5f0c7d8e-1111-4222-8333-444455556666"},
		{uint64(42), "42"},
		{[]byte("raw"), "raw"},
		{nil, ""},
	}
	for _, tt := range tests {
		req := &amqp.Message{Properties: &amqp.MessageProperties{MessageID: tt.id}}
		if got := correlationID(wire(t, req)); got != tt.want {
			t.Errorf("correlationID(%#v) = %q, want %q", tt.id, got, tt.want)
		}
	}
}

func TestIntegerDecoding(t *testing.T) {
	good := []any{int8(3), int16(3), int32(3), int64(3), int(3), uint8(3), uint16(3), uint32(3), uint64(3), uint(3)}
	for _, v := range good {
		if n, st := integer(map[string]any{"k": v}, "k", true); st.code != 0 || n != 3 {
			t.Errorf("integer(%T) = %d, %+v", v, n, st)
		}
	}
	for _, v := range []any{uint64(1 << 63), "3", 3.0} {
		if _, st := integer(map[string]any{"k": v}, "k", true); st.code != 400 || !strings.Contains(st.desc, "k") {
			t.Errorf("integer(%#v) = %+v, want 400 naming k", v, st)
		}
	}
	seqs, st := int64s(map[string]any{"s": []any{int32(1), uint64(2)}}, "s")
	if st.code != 0 || len(seqs) != 2 || seqs[1] != 2 {
		t.Errorf("int64s of a list: %v, %+v", seqs, st)
	}
	if _, st := int64s(map[string]any{"s": []any{"x"}}, "s"); st.code != 400 || !strings.Contains(st.desc, "s[0]") {
		t.Errorf("int64s of a bad list: %+v", st)
	}
	toks, st := uuids(map[string]any{"t": []any{amqp.UUID{1}}}, "t")
	if st.code != 0 || len(toks) != 1 {
		t.Errorf("uuids of a list: %v, %+v", toks, st)
	}
	if _, st := uuids(map[string]any{"t": []amqp.UUID{}}, "t"); st.code != 400 {
		t.Errorf("empty lock-tokens: %+v, want 400", st)
	}
	if _, st := stringKeyed("m", map[any]any{int64(1): "x"}); st.code != 400 {
		t.Errorf("map with an integer key: %+v, want 400", st)
	}
}
