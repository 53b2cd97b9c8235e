package emulator_test

import (
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus"

	"github.com/holdfast-dev/holdfast/emulator"
	"github.com/holdfast-dev/holdfast/emulator/broker"
	"github.com/holdfast-dev/holdfast/emulator/mgmt"
)

// clientFor is newClient signing with another policy.
func clientFor(t *testing.T, srv *emulator.Server, keyName, key string) *azservicebus.Client {
	t.Helper()
	c, err := azservicebus.NewClientFromConnectionString(srv.ConnectionStringFor(keyName, key), &azservicebus.ClientOptions{
		RetryOptions: azservicebus.RetryOptions{MaxRetries: 1, RetryDelay: 10 * time.Millisecond, MaxRetryDelay: 50 * time.Millisecond},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close(ctxT(t)) })
	return c
}

// wantUnauthorized asserts the SDK reports CodeUnauthorizedAccess with Azure's description for
// the missing claim (what Microsoft's TestClientUnauthorizedCreds matches).
func wantUnauthorized(t *testing.T, what string, err error, claim string) {
	t.Helper()
	if sdkCode(err) != azservicebus.CodeUnauthorizedAccess {
		t.Fatalf("%s: %v, want CodeUnauthorizedAccess", what, err)
	}
	if want := "Unauthorized access. '" + claim + "' claim(s) are required to perform this operation"; !strings.Contains(err.Error(), want) {
		t.Fatalf("%s: %v, want %q", what, err, want)
	}
}

// In strict mode each policy's rights are enforced: Send to send and schedule, Listen to receive,
// peek and settle (Microsoft's TestClientUnauthorizedCreds and TestReceiverUnauthorizedCreds).
func TestPolicyRights(t *testing.T) {
	srv := startServer(t, &emulator.Options{StrictAuth: true, Policies: []mgmt.SASKey{
		{KeyName: "send-only", Key: "s-key", Rights: mgmt.RightSend},
		{KeyName: "listen-only", Key: "l-key", Rights: mgmt.RightListen},
	}})
	q := newQueue(t, srv, nil)

	sendOnly := clientFor(t, srv, "send-only", "s-key")
	s, err := sendOnly.NewSender(q, nil)
	if err != nil {
		t.Fatal(err)
	}
	send(t, s, &azservicebus.Message{Body: []byte("one")}, &azservicebus.Message{Body: []byte("two")})
	if _, err := s.ScheduleMessages(ctxT(t), []*azservicebus.Message{{Body: []byte("later")}}, time.Now().Add(time.Hour), nil); err != nil {
		t.Fatalf("ScheduleMessages with Send: %v", err)
	}
	sr, err := sendOnly.NewReceiverForQueue(q, nil)
	if err != nil {
		t.Fatal(err)
	}
	msgs, err := sr.ReceiveMessages(ctxT(t), 1, nil)
	if len(msgs) != 0 {
		t.Fatalf("a send-only policy received %d messages", len(msgs))
	}
	wantUnauthorized(t, "receive with Send only", err, "Listen")
	_, err = sr.PeekMessages(ctxT(t), 1, nil)
	wantUnauthorized(t, "peek with Send only", err, "Listen")

	listenOnly := clientFor(t, srv, "listen-only", "l-key")
	r, err := listenOnly.NewReceiverForQueue(q, nil)
	if err != nil {
		t.Fatal(err)
	}
	got := receiveN(t, r, 1)[0]
	if err := r.RenewMessageLock(ctxT(t), got, nil); err != nil {
		t.Fatalf("renew with Listen: %v", err)
	}
	if err := r.CompleteMessage(ctxT(t), got, nil); err != nil {
		t.Fatalf("complete with Listen: %v", err)
	}
	ls, err := listenOnly.NewSender(q, nil)
	if err != nil {
		t.Fatal(err)
	}
	wantUnauthorized(t, "send with Listen only", ls.SendMessage(ctxT(t), &azservicebus.Message{Body: []byte("forged")}, nil), "Send")

	e, _ := srv.Broker().Entity(q)
	if st := e.Stats(); st.Counters.Sent != 3 || st.Active != 1 || st.Scheduled != 1 {
		t.Errorf("stats %+v: want 3 stored (1 left active, 1 scheduled), nothing from the listen-only sender", st)
	}
}

// Policies come from Config.json's SharedAccessPolicies too; bad ones stop the start.
func TestPoliciesFromConfig(t *testing.T) {
	cfg, err := broker.ParseConfig([]byte(`{"UserConfig": {"Namespaces": [{"Name": "ns",
		"Queues": [{"Name": "orders"}],
		"SharedAccessPolicies": [{"Name": "sender", "Key": "k", "Rights": ["Send"]}]}]}}`))
	if err != nil {
		t.Fatal(err)
	}
	srv := startServer(t, &emulator.Options{StrictAuth: true, Config: cfg})
	s, err := clientFor(t, srv, "sender", "k").NewSender("orders", nil)
	if err != nil {
		t.Fatal(err)
	}
	send(t, s, &azservicebus.Message{Body: []byte("x")})
	r, err := clientFor(t, srv, "sender", "k").NewReceiverForQueue("orders", nil)
	if err != nil {
		t.Fatal(err)
	}
	_, err = r.ReceiveMessages(ctxT(t), 1, nil)
	wantUnauthorized(t, "receive with a Config.json send-only policy", err, "Listen")

	for _, bad := range []string{
		`[{"Name": "x", "Key": "k", "Rights": ["Read"]}]`,
		`[{"Name": "x", "Key": "k", "Rights": ["Manage"]}]`,
		`[{"Name": "x", "Key": "", "Rights": ["Send"]}]`,
		`[{"Name": "x", "Key": "k", "Rights": ["Send"]}, {"Name": "x", "Key": "k2", "Rights": ["Listen"]}]`,
	} {
		if _, err := broker.ParseConfig([]byte(`{"UserConfig": {"Namespaces": [{"Name": "ns", "SharedAccessPolicies": ` + bad + `}]}}`)); err == nil {
			t.Errorf("policies %s accepted", bad)
		}
	}
}

// A token is honoured until its expiry (se): once the broker's clock passes it, sends on the
// same link are refused until the client puts a new token.
func TestTokenExpiry(t *testing.T) {
	clk := broker.NewManualClock(time.Now())
	srv := startServer(t, &emulator.Options{StrictAuth: true, Clock: clk})
	q := newQueue(t, srv, nil)
	c := clientFor(t, srv, emulator.DefaultKeyName, emulator.DefaultKey)
	s, err := c.NewSender(q, nil)
	if err != nil {
		t.Fatal(err)
	}
	send(t, s, &azservicebus.Message{Body: []byte("before")})
	clk.Advance(3 * time.Hour) // the SDK signs tokens for 2 hours
	err = s.SendMessage(ctxT(t), &azservicebus.Message{Body: []byte("after")}, nil)
	if sdkCode(err) != azservicebus.CodeUnauthorizedAccess || !strings.Contains(err.Error(), "ExpiredToken") {
		t.Fatalf("send after the token expired: %v, want CodeUnauthorizedAccess (ExpiredToken)", err)
	}
	e, _ := srv.Broker().Entity(q)
	if st := e.Stats(); st.Counters.Sent != 1 {
		t.Errorf("sent %d, want only the message before the expiry", st.Counters.Sent)
	}
}
