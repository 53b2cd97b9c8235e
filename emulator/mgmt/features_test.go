package mgmt

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/Azure/go-amqp"

	"github.com/holdfast-dev/holdfast/emulator/broker"
)

func TestScheduleAndCancel(t *testing.T) {
	f := newFixture(t)
	due := t0.Add(time.Minute)
	var list []any
	for _, id := range []string{"m1", "m2"} {
		m := amqp.NewMessage([]byte(id))
		m.Annotations = amqp.Annotations{broker.AnnotationScheduledTime: due}
		raw, err := m.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		list = append(list, map[string]any{"message-id": id, "message": raw})
	}
	r := decode(t, f.h.Management("orders", sdkRequest(t, OpScheduleMessage, map[string]any{"messages": list})))
	seqs, ok := r.body["sequence-numbers"].([]int64)
	if r.code != 200 || !ok || len(seqs) != 2 || seqs[0] != 1 || seqs[1] != 2 {
		t.Fatalf("schedule: %d %q %#v", r.code, r.desc, r.body)
	}
	peek := decode(t, f.h.Management("orders", sdkRequest(t, OpPeekMessage, map[string]any{"from-sequence-number": int64(1), "message-count": int32(10)})))
	ms := sdkMessages(t, peek.body)
	if len(ms) != 2 || ms[0].Annotations[broker.AnnotationMessageState] != int32(broker.MessageStateScheduled) || ms[0].Properties.MessageID != "m1" {
		t.Fatalf("peek of scheduled messages: %+v", ms)
	}
	r = decode(t, f.h.Management("orders", sdkRequest(t, OpCancelScheduledMessage, map[string]any{"sequence-numbers": []int64{2}})))
	if r.code != 200 {
		t.Fatalf("cancel: %d %q", r.code, r.desc)
	}
	r = decode(t, f.h.Management("orders", sdkRequest(t, OpCancelScheduledMessage, map[string]any{"sequence-numbers": []int64{2}})))
	if r.code != 404 || r.cond != CondMessageNotFound {
		t.Errorf("second cancel: %d %q %q, want 404 message-not-found", r.code, r.cond, r.desc)
	}
	if got := f.e.Receive(1, broker.ReceiveAndDelete); len(got) != 0 {
		t.Fatalf("received %d before the scheduled time", len(got))
	}
	f.clk.Advance(time.Minute)
	if got := f.e.Receive(5, broker.ReceiveAndDelete); len(got) != 1 || got[0].SequenceNumber != 1 {
		t.Fatalf("after the scheduled time: %+v", got)
	}
}

func TestRenewLockFaults(t *testing.T) {
	tests := []struct {
		status   int
		wantCond string
	}{
		{410, CondLockLost},
		{503, CondServerBusy},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.status), func(t *testing.T) {
			f := newFixture(t)
			f.send(t, "a")
			d := f.e.Receive(1, broker.PeekLock)[0]
			if err := f.h.Faults().FailRenewLocks(2, tt.status); err != nil {
				t.Fatal(err)
			}
			renew := func() sdkResponse {
				return decode(t, f.h.Management("orders", sdkRequest(t, OpRenewLock, map[string]any{"lock-tokens": []amqp.UUID{d.LockToken}})))
			}
			for i := 0; i < 2; i++ {
				if r := renew(); r.code != int32(tt.status) || r.cond != tt.wantCond {
					t.Fatalf("renew %d: %d %q, want %d %q", i+1, r.code, r.cond, tt.status, tt.wantCond)
				}
			}
			if r := renew(); r.code != 200 {
				t.Fatalf("renew after the fault: %d %q", r.code, r.desc)
			}
			if st := f.h.Faults().State(); st.RenewLockFailures != 0 {
				t.Errorf("state %+v", st)
			}
		})
	}
	var f Faults
	for _, bad := range []struct{ n, status int }{{1, 404}, {-1, 410}} {
		if err := f.FailRenewLocks(bad.n, bad.status); err == nil {
			t.Errorf("FailRenewLocks(%d, %d) accepted", bad.n, bad.status)
		}
	}
}

func TestManagementDelay(t *testing.T) {
	f := newFixture(t)
	if err := f.h.Faults().DelayManagement(50 * time.Millisecond); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	r := decode(t, f.h.Management("orders", sdkRequest(t, OpPeekMessage, map[string]any{"from-sequence-number": int64(1), "message-count": int32(1)})))
	if el := time.Since(start); el < 50*time.Millisecond || r.code != 204 {
		t.Fatalf("reply %d after %s, want 204 after ≥ 50ms", r.code, el)
	}
	// Close cuts a long delay short.
	if err := f.h.Faults().DelayManagement(time.Hour); err != nil {
		t.Fatal(err)
	}
	done := make(chan sdkResponse)
	go func() {
		done <- decode(t, f.h.Management("orders", sdkRequest(t, OpPeekMessage, map[string]any{"from-sequence-number": int64(1), "message-count": int32(1)})))
	}()
	f.h.Close()
	if r := <-done; r.code != 204 {
		t.Errorf("after Close: %d", r.code)
	}
	f.h.Faults().Reset()
	if st := f.h.Faults().State(); st != (FaultState{DelayedRequests: 2}) {
		t.Errorf("after Reset: %+v", st)
	}
	if n := f.b.Stats().ManagementCalls; n != 2 {
		t.Errorf("management calls %d, want 2", n)
	}
}

// sign builds a token exactly as the azservicebus SDK's SAS signer does.
func sign(keyName, key, uri string, expiry time.Time) string {
	sr := strings.ToLower(url.QueryEscape(uri))
	se := fmt.Sprint(expiry.Unix())
	mac := hmac.New(sha256.New, []byte(key))
	mac.Write([]byte(sr + "\n" + se))
	sig := url.QueryEscape(base64.StdEncoding.EncodeToString(mac.Sum(nil)))
	return fmt.Sprintf("SharedAccessSignature sr=%s&sig=%s&se=%s&skn=%s", sr, sig, se, keyName)
}

func TestStrictAuth(t *testing.T) {
	clk := broker.NewManualClock(time.Now())
	b, err := broker.New(nil, &broker.Options{Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if err := b.CreateQueue("orders", broker.DefaultQueueProperties()); err != nil {
		t.Fatal(err)
	}
	h := New(b, &Options{Clock: clk, StrictAuth: []SASKey{{KeyName: "RootManageSharedAccessKey", Key: "s3cret"}, {KeyName: "sender", Key: "k2", Rights: RightSend}}})
	aud := "amqp://localhost:5672/orders"
	later := clk.Now().Add(time.Hour)
	tests := []struct {
		name, typ, token string
		wantCode         int32
		wantDesc         string
		wantRights       Rights
	}{
		{"valid", TokenTypeSAS, sign("RootManageSharedAccessKey", "s3cret", aud, later), 200, "", AllRights},
		{"send-only policy", TokenTypeSAS, sign("sender", "k2", aud, later), 200, "", RightSend},
		{"namespace-wide", TokenTypeSAS, sign("RootManageSharedAccessKey", "s3cret", "sb://localhost/", later), 200, "", AllRights},
		{"wrong key", TokenTypeSAS, sign("RootManageSharedAccessKey", "guess", aud, later), 401, "signature does not match", 0},
		{"unknown key name", TokenTypeSAS, sign("other", "s3cret", aud, later), 401, "unknown key name", 0},
		{"expired", TokenTypeSAS, sign("RootManageSharedAccessKey", "s3cret", aud, clk.Now().Add(-time.Second)), 401, "ExpiredToken: The token is expired. Expiration time: '", 0},
		{"other entity", TokenTypeSAS, sign("RootManageSharedAccessKey", "s3cret", "amqp://localhost:5672/payments", later), 401, "not", 0},
		{"not a SAS", TokenTypeSAS, "Bearer x", 401, "SharedAccessSignature", 0},
		{"jwt", "jwt", "eyJ", 401, "token type", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := wire(t, &amqp.Message{
				Properties:            &amqp.MessageProperties{MessageID: "5f0c7d8e-1111-4222-8333-444455556666"},
				ApplicationProperties: map[string]any{"operation": OpPutToken, "type": tt.typ, "name": aud, "expiration": "0"},
				Value:                 tt.token,
			})
			rep, g, ok := h.CBS(req)
			r := decode(t, rep)
			if r.code != tt.wantCode || !strings.Contains(r.desc, tt.wantDesc) {
				t.Fatalf("put-token: %d %q, want %d mentioning %q", r.code, r.desc, tt.wantCode, tt.wantDesc)
			}
			if ok != (r.code == 200) || g.Rights != tt.wantRights || (ok && (g.Path != "orders" || !g.Expires.Equal(later.Truncate(time.Second)))) {
				t.Errorf("grant %+v (ok %v), want rights %v on orders until %v", g, ok, tt.wantRights, later)
			}
			if r.code == 401 && r.cond != CondUnauthorized {
				t.Errorf("condition %q", r.cond)
			}
		})
	}
}

// Management operations need the claim Azure asks for: Listen to peek, renew and settle, Send to
// schedule; Manage covers both.
func TestManagementRights(t *testing.T) {
	f := newFixture(t)
	peek := func() *amqp.Message {
		return sdkRequest(t, OpPeekMessage, map[string]any{"from-sequence-number": int64(1), "message-count": int32(1)})
	}
	schedule := func() *amqp.Message {
		return sdkRequest(t, OpCancelScheduledMessage, map[string]any{"sequence-numbers": []int64{99}})
	}
	tests := []struct {
		name     string
		req      *amqp.Message
		rights   Rights
		wantCode int32
		wantDesc string
	}{
		{"peek with Send only", peek(), RightSend, 401, "Unauthorized access. 'Listen' claim(s) are required to perform this operation."},
		{"peek with Listen", peek(), RightListen, 204, ""},
		{"cancel with Listen only", schedule(), RightListen, 401, "Unauthorized access. 'Send' claim(s) are required to perform this operation."},
		{"cancel with Send", schedule(), RightSend, 404, ""},
		{"cancel with Manage", schedule(), AllRights, 404, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := decode(t, f.h.Answer("orders", tt.req, Caller{Rights: tt.rights}))
			if r.code != tt.wantCode || (tt.wantDesc != "" && r.desc != tt.wantDesc) {
				t.Fatalf("%d %q, want %d %q", r.code, r.desc, tt.wantCode, tt.wantDesc)
			}
		})
	}
}
