package emulator_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus"

	"github.com/holdfast-dev/holdfast/emulator"
	"github.com/holdfast-dev/holdfast/emulator/broker"
)

// startManual starts a server whose broker runs on a ManualClock reading the wall clock's now,
// so that SDK timestamps (scheduled times) and broker time agree.
func startManual(t *testing.T) (*emulator.Server, *broker.ManualClock) {
	t.Helper()
	clk := broker.NewManualClock(time.Now())
	return startServer(t, &emulator.Options{Clock: clk}), clk
}

func sdkCode(err error) azservicebus.Code {
	var sbErr *azservicebus.Error
	if errors.As(err, &sbErr) {
		return sbErr.Code
	}
	return ""
}

func bodies(ms []*azservicebus.ReceivedMessage) []string {
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = string(m.Body)
	}
	return out
}

func TestSubscriptionFanOutAndFilters(t *testing.T) {
	cfg, err := broker.ParseConfig([]byte(`{"UserConfig":{"Namespaces":[{"Name":"sbemulatorns","Topics":[{"Name":"events",
		"Subscriptions":[
			{"Name":"all"},
			{"Name":"red","Rules":[{"Name":"r","Properties":{"FilterType":"Correlation","CorrelationFilter":{"Label":"red"}}}]},
			{"Name":"big","Rules":[{"Name":"b","Properties":{"FilterType":"Correlation","CorrelationFilter":{"ContentType":"application/json","Properties":{"size":3,"kind":"box"}}}}]}
		]}]}]}}`))
	if err != nil {
		t.Fatal(err)
	}
	srv := startServer(t, &emulator.Options{Config: cfg})
	c := newClient(t, srv)
	s, err := c.NewSender("events", nil)
	if err != nil {
		t.Fatal(err)
	}
	red, ct := "red", "application/json"
	send(t, s,
		&azservicebus.Message{Body: []byte("red"), Subject: &red},
		&azservicebus.Message{Body: []byte("big"), ContentType: &ct, ApplicationProperties: map[string]any{"size": int64(3), "kind": "box"}},
		&azservicebus.Message{Body: []byte("small"), ContentType: &ct, ApplicationProperties: map[string]any{"size": int64(2), "kind": "box"}})
	want := map[string][]string{"all": {"red", "big", "small"}, "red": {"red"}, "big": {"big"}}
	for sub, w := range want {
		r, err := c.NewReceiverForSubscription("events", sub, &azservicebus.ReceiverOptions{ReceiveMode: azservicebus.ReceiveModeReceiveAndDelete})
		if err != nil {
			t.Fatal(err)
		}
		got := bodies(receiveN(t, r, len(w)))
		if strings.Join(got, ",") != strings.Join(w, ",") {
			t.Errorf("%s received %v, want %v", sub, got, w)
		}
		// Nothing else arrived: peek finds no message beyond those.
		if left, err := r.PeekMessages(ctxT(t), 10, nil); err != nil || len(left) != 0 {
			t.Errorf("%s: %d messages left (%v)", sub, len(left), err)
		}
	}
}

func TestScheduledDeliveryAndCancel(t *testing.T) {
	srv, clk := startManual(t)
	q := newQueue(t, srv, nil)
	c := newClient(t, srv)
	s, err := c.NewSender(q, nil)
	if err != nil {
		t.Fatal(err)
	}
	due := clk.Now().Add(time.Hour)
	seqs, err := s.ScheduleMessages(ctxT(t), []*azservicebus.Message{{Body: []byte("keep")}, {Body: []byte("cancel")}}, due, nil)
	if err != nil || len(seqs) != 2 {
		t.Fatalf("ScheduleMessages: %v, %v", seqs, err)
	}
	send(t, s, &azservicebus.Message{Body: []byte("via send"), ScheduledEnqueueTime: &due})
	if err := s.CancelScheduledMessages(ctxT(t), seqs[1:], nil); err != nil {
		t.Fatalf("CancelScheduledMessages: %v", err)
	}
	err = s.CancelScheduledMessages(ctxT(t), seqs[1:], nil)
	if sdkCode(err) != azservicebus.CodeNotFound {
		t.Errorf("second cancel: %v, want CodeNotFound", err)
	}
	r, err := c.NewReceiverForQueue(q, nil)
	if err != nil {
		t.Fatal(err)
	}
	peeked, err := r.PeekMessages(ctxT(t), 10, nil)
	if err != nil || len(peeked) != 2 {
		t.Fatalf("peek: %d messages, %v", len(peeked), err)
	}
	for _, m := range peeked {
		if m.State != azservicebus.MessageStateScheduled {
			t.Errorf("%q state %v, want scheduled", m.Body, m.State)
		}
	}
	// Not before its time: a receive with a short deadline gets nothing.
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	early, err := r.ReceiveMessages(ctx, 10, nil)
	cancel()
	if len(early) != 0 {
		t.Fatalf("received %v before the scheduled time (err %v)", bodies(early), err)
	}
	clk.Set(due)
	got := receiveN(t, r, 2)
	if b := bodies(got); b[0] != "keep" || b[1] != "via send" {
		t.Errorf("received %v", b)
	}
	if got[0].EnqueuedTime == nil || got[0].EnqueuedTime.Before(due.Truncate(time.Millisecond)) {
		t.Errorf("enqueued time %v, want the scheduled time %v", got[0].EnqueuedTime, due)
	}
}

func TestDuplicateDetectionWindow(t *testing.T) {
	srv, clk := startManual(t)
	p := broker.DefaultQueueProperties()
	p.RequiresDuplicateDetection = true
	p.DuplicateDetectionHistoryTimeWindow = time.Minute
	q := newQueue(t, srv, &p)
	c := newClient(t, srv)
	s, err := c.NewSender(q, nil)
	if err != nil {
		t.Fatal(err)
	}
	id := "order-42"
	send(t, s, &azservicebus.Message{Body: []byte("first"), MessageID: &id})
	clk.Advance(59 * time.Second)
	send(t, s, &azservicebus.Message{Body: []byte("inside the window"), MessageID: &id}) // accepted, dropped
	clk.Advance(time.Second)
	send(t, s, &azservicebus.Message{Body: []byte("after the window"), MessageID: &id})
	r, err := c.NewReceiverForQueue(q, &azservicebus.ReceiverOptions{ReceiveMode: azservicebus.ReceiveModeReceiveAndDelete})
	if err != nil {
		t.Fatal(err)
	}
	got := bodies(receiveN(t, r, 2))
	if got[0] != "first" || got[1] != "after the window" {
		t.Errorf("received %v", got)
	}
	e, _ := srv.Broker().Entity(q)
	if st := e.Stats(); st.Counters.Duplicates != 1 || st.Active != 0 {
		t.Errorf("stats %+v", st)
	}
}

func TestTTLExpiryToDeadLetterQueue(t *testing.T) {
	srv, clk := startManual(t)
	p := broker.DefaultQueueProperties()
	p.DefaultMessageTimeToLive = time.Hour
	p.DeadLetteringOnMessageExpiration = true
	q := newQueue(t, srv, &p)
	c := newClient(t, srv)
	s, err := c.NewSender(q, nil)
	if err != nil {
		t.Fatal(err)
	}
	ttl := 10 * time.Second
	send(t, s, &azservicebus.Message{Body: []byte("short"), TimeToLive: &ttl}, &azservicebus.Message{Body: []byte("default")})
	clk.Advance(ttl)
	dlq, err := c.NewReceiverForQueue(q, &azservicebus.ReceiverOptions{SubQueue: azservicebus.SubQueueDeadLetter})
	if err != nil {
		t.Fatal(err)
	}
	m := receiveN(t, dlq, 1)[0]
	if string(m.Body) != "short" || m.DeadLetterReason == nil || *m.DeadLetterReason != broker.ReasonTTLExpired {
		t.Fatalf("DLQ got %q reason %v", m.Body, m.DeadLetterReason)
	}
	if err := dlq.CompleteMessage(ctxT(t), m, nil); err != nil {
		t.Fatal(err)
	}
	r, err := c.NewReceiverForQueue(q, nil)
	if err != nil {
		t.Fatal(err)
	}
	kept := receiveN(t, r, 1)[0]
	if string(kept.Body) != "default" {
		t.Errorf("queue kept %q", kept.Body)
	}
	// As on the service, a message sent without a TTL is delivered without one (the SDK reports
	// 0) although the entity's default limits its life.
	if kept.TimeToLive == nil || *kept.TimeToLive != 0 || kept.RawAMQPMessage.Header.TTL != 0 {
		t.Errorf("TimeToLive %v, header %+v: want no TTL written into the header", kept.TimeToLive, kept.RawAMQPMessage.Header)
	}
	if err := r.AbandonMessage(ctxT(t), kept, nil); err != nil {
		t.Fatal(err)
	}
	clk.Advance(time.Hour)
	if m := receiveN(t, dlq, 1)[0]; string(m.Body) != "default" || *m.DeadLetterReason != broker.ReasonTTLExpired {
		t.Fatalf("after the entity's default TTL the DLQ got %q reason %v", m.Body, *m.DeadLetterReason)
	}
}

func TestStrictAuth(t *testing.T) {
	srv := startServer(t, &emulator.Options{StrictAuth: true, Key: "right-key"})
	q := newQueue(t, srv, nil)
	good := newClient(t, srv)
	s, err := good.NewSender(q, nil)
	if err != nil {
		t.Fatal(err)
	}
	send(t, s, &azservicebus.Message{Body: []byte("signed")})

	bad, err := azservicebus.NewClientFromConnectionString(strings.Replace(srv.ConnectionString(), "right-key", "wrong-key", 1), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer bad.Close(context.Background())
	bs, err := bad.NewSender(q, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = bs.SendMessage(ctxT(t), &azservicebus.Message{Body: []byte("forged")}, nil)
	if sdkCode(err) != azservicebus.CodeUnauthorizedAccess {
		t.Fatalf("send with the wrong key: %v, want CodeUnauthorizedAccess", err)
	}
	e, _ := srv.Broker().Entity(q)
	if st := e.Stats(); st.Counters.Sent != 1 {
		t.Errorf("sent %d messages, want only the signed one", st.Counters.Sent)
	}
}

// receiveLocked sends one message to a new queue and receives it in PeekLock mode.
func receiveLocked(t *testing.T, srv *emulator.Server, c *azservicebus.Client) (*azservicebus.Receiver, *azservicebus.ReceivedMessage) {
	t.Helper()
	q := newQueue(t, srv, nil)
	s, err := c.NewSender(q, nil)
	if err != nil {
		t.Fatal(err)
	}
	send(t, s, &azservicebus.Message{Body: []byte("work")})
	r, err := c.NewReceiverForQueue(q, nil)
	if err != nil {
		t.Fatal(err)
	}
	return r, receiveN(t, r, 1)[0]
}

func TestFaultRenewLockFails(t *testing.T) {
	tests := []struct {
		name     string
		status   int
		wantCode azservicebus.Code // "" ⇒ the SDK retries and the renewal succeeds
	}{
		{"410 is lock lost", 410, azservicebus.CodeLockLost},
		{"503 is retried", 503, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := startServer(t, nil)
			c := newClient(t, srv)
			r, m := receiveLocked(t, srv, c)
			if err := srv.Faults().FailRenewLocks(1, tt.status); err != nil {
				t.Fatal(err)
			}
			err := r.RenewMessageLock(ctxT(t), m, nil)
			if tt.wantCode != "" {
				if sdkCode(err) != tt.wantCode {
					t.Fatalf("renew: %v, want %s", err, tt.wantCode)
				}
				// The fault is used up: the next renewal works (the lock itself was kept).
				err = r.RenewMessageLock(ctxT(t), m, nil)
			}
			if err != nil {
				t.Fatalf("renew after the fault: %v", err)
			}
			if err := r.CompleteMessage(ctxT(t), m, nil); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestFaultManagementDelay(t *testing.T) {
	srv := startServer(t, nil)
	c := newClient(t, srv)
	q := newQueue(t, srv, nil)
	s0, err := c.NewSender(q, nil)
	if err != nil {
		t.Fatal(err)
	}
	send(t, s0, &azservicebus.Message{Body: []byte("work")})
	r, err := c.NewReceiverForQueue(q, nil)
	if err != nil {
		t.Fatal(err)
	}
	m := receiveN(t, r, 1)[0]
	const delay = 600 * time.Millisecond
	if err := srv.Faults().DelayManagement(delay); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if err := r.RenewMessageLock(ctxT(t), m, nil); err != nil {
		t.Fatal(err)
	}
	if el := time.Since(start); el < delay {
		t.Errorf("renewal answered after %s, want ≥ %s", el, delay)
	}
	// Only management replies wait: a send on the same connection while a renewal is held
	// goes through at once.
	renewed := make(chan error, 1)
	go func() { renewed <- r.RenewMessageLock(ctxT(t), m, nil) }()
	deadline := time.Now().Add(testTimeout)
	for srv.Faults().State().DelayedRequests < 2 { // wait until the server holds the renewal
		if time.Now().After(deadline) {
			t.Fatal("the second renewal never reached the server")
		}
		time.Sleep(5 * time.Millisecond) // polling interval for the condition above
	}
	sendStart := time.Now()
	send(t, s0, &azservicebus.Message{Body: []byte("not delayed")})
	if el := time.Since(sendStart); el >= delay/2 {
		t.Errorf("send took %s during a delayed renewal, want < %s", el, delay/2)
	}
	if err := <-renewed; err != nil {
		t.Fatal(err)
	}
	// A caller with a shorter deadline gives up, as against a slow service.
	ctx, cancel := context.WithTimeout(context.Background(), delay/3)
	err = r.RenewMessageLock(ctx, m, nil)
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("renew with a short deadline: %v, want context.DeadlineExceeded", err)
	}
}

func TestFaultDropConnections(t *testing.T) {
	srv := startServer(t, nil)
	c := newClient(t, srv)
	q := newQueue(t, srv, nil)
	s, err := c.NewSender(q, nil)
	if err != nil {
		t.Fatal(err)
	}
	send(t, s, &azservicebus.Message{Body: []byte("before")})
	r, err := c.NewReceiverForQueue(q, nil)
	if err != nil {
		t.Fatal(err)
	}
	m := receiveN(t, r, 1)[0]
	if n := srv.Faults().DropConnections(); n < 1 {
		t.Fatalf("dropped %d connections, want ≥ 1", n)
	}
	// The SDK reconnects: sender and receiver work again, and the lock taken on the dropped
	// connection survived (renewal goes over the new connection's $management link).
	send(t, s, &azservicebus.Message{Body: []byte("after")})
	if got := bodies(receiveN(t, r, 1)); got[0] != "after" {
		t.Fatalf("received %v after the drop", got)
	}
	if err := r.RenewMessageLock(ctxT(t), m, nil); err != nil {
		t.Fatalf("renew after the drop: %v", err)
	}
	e, _ := srv.Broker().Entity(q)
	if st := e.Stats(); st.Locked != 2 {
		t.Errorf("locked %d, want 2 (the message from before the drop is still locked)", st.Locked)
	}
}

func TestFaultDetachIdleReceivers(t *testing.T) {
	tests := []struct {
		name               string
		settleOnManagement bool
		wantCode           azservicebus.Code
	}{
		{"settlement accepted", true, ""},
		{"settlement lock-lost", false, azservicebus.CodeLockLost},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := startServer(t, nil)
			c := newClient(t, srv)
			r, m := receiveLocked(t, srv, c)
			if err := srv.Faults().DetachIdleReceivers(100*time.Millisecond, tt.settleOnManagement); err != nil {
				t.Fatal(err)
			}
			deadline := time.Now().Add(testTimeout)
			for srv.Faults().IdleDetaches() == 0 {
				if time.Now().After(deadline) {
					t.Fatal("the idle receive link was never detached")
				}
				time.Sleep(10 * time.Millisecond) // polling interval for the condition above
			}
			if err := srv.Faults().DetachIdleReceivers(0, false); err != nil { // stop detaching the recovered link
				t.Fatal(err)
			}
			if err := r.RenewMessageLock(ctxT(t), m, nil); err != nil {
				t.Fatalf("renew after the detach must still work: %v", err)
			}
			err := r.CompleteMessage(ctxT(t), m, nil)
			if tt.wantCode == "" && err != nil {
				t.Fatalf("complete: %v", err)
			}
			if tt.wantCode != "" && sdkCode(err) != tt.wantCode {
				t.Fatalf("complete: %v, want %s", err, tt.wantCode)
			}
		})
	}
}

func TestFaultRefuseConnections(t *testing.T) {
	srv := startServer(t, nil)
	q := newQueue(t, srv, nil)
	const refuse = 300 * time.Millisecond
	if err := srv.Faults().RefuseConnections(refuse); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	c, err := azservicebus.NewClientFromConnectionString(srv.ConnectionString(), &azservicebus.ClientOptions{
		RetryOptions: azservicebus.RetryOptions{MaxRetries: 10, RetryDelay: 50 * time.Millisecond, MaxRetryDelay: 100 * time.Millisecond},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(context.Background())
	s, err := c.NewSender(q, nil)
	if err != nil {
		t.Fatal(err)
	}
	// The SDK retries the refused connection and succeeds once the window ends.
	if err := s.SendMessage(ctxT(t), &azservicebus.Message{Body: []byte("eventually")}, nil); err != nil {
		t.Fatalf("send: %v", err)
	}
	if el := time.Since(start); el < refuse || srv.Faults().RefusedConnections() == 0 {
		t.Errorf("sent after %s with %d refused connections; want ≥ %s and some refused", el, srv.Faults().RefusedConnections(), refuse)
	}
}

func TestAdminAPIOverHTTP(t *testing.T) {
	srv := startServer(t, &emulator.Options{AdminAddr: "127.0.0.1:0"})
	base := "http://" + srv.AdminAddr()
	req, _ := http.NewRequest(http.MethodPut, base+"/queues/orders", strings.NewReader(`{"LockDuration":"PT5S"}`))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("PUT /queues/orders: %d", resp.StatusCode)
	}
	resp, err = http.Post(base+"/faults/renew-lock", "application/json", strings.NewReader(`{"count":2,"status":503}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if st := srv.Faults().State(); resp.StatusCode != 200 || st.RenewLockFailures != 2 || st.RenewLockStatus != 503 {
		t.Fatalf("POST /faults/renew-lock: %d, state %+v", resp.StatusCode, st)
	}
	resp, err = http.Get(base + "/stats")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var stats struct {
		Entities []struct{ Path, Kind string } `json:"entities"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&stats); err != nil || len(stats.Entities) != 2 || stats.Entities[0].Path != "orders" {
		t.Fatalf("GET /stats: %+v, %v", stats, err)
	}
}

// Auto-forwarding through the unmodified SDK, with ForwardTo in the URL form the admin client
// writes (Microsoft's TestAdminClient_Queue_Forwarding).
func TestAutoForwarding(t *testing.T) {
	srv := startServer(t, nil)
	out := newQueue(t, srv, nil)
	p := broker.DefaultQueueProperties()
	p.ForwardTo = "https://localhost/" + out
	in := newQueue(t, srv, &p)
	c := newClient(t, srv)
	s, err := c.NewSender(in, nil)
	if err != nil {
		t.Fatal(err)
	}
	send(t, s, &azservicebus.Message{Body: []byte("this message will be auto-forwarded")})
	r, err := c.NewReceiverForQueue(out, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := bodies(receiveN(t, r, 1)); got[0] != "this message will be auto-forwarded" {
		t.Fatalf("received %v", got)
	}
}

// The session lock-loss fault: the held messages come back in order with their delivery count
// raised (the SDK's session receiver re-accepts the session by itself). Their old lock tokens
// are refused (mgmt's TestSessionOperations); through the SDK such a settlement ends in
// CodeLockLost only after its settle retries (about 50 s with the defaults), too slow here.
func TestFaultExpireSessionLock(t *testing.T) {
	srv := startServer(t, nil)
	p := broker.DefaultQueueProperties()
	p.RequiresSession = true
	q := newQueue(t, srv, &p)
	c := newClient(t, srv)
	s, err := c.NewSender(q, nil)
	if err != nil {
		t.Fatal(err)
	}
	sid := "order-42"
	for _, b := range []string{"one", "two", "three"} {
		send(t, s, &azservicebus.Message{Body: []byte(b), SessionID: &sid})
	}
	r, err := c.AcceptSessionForQueue(ctxT(t), q, sid, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close(ctxT(t))
	var got []*azservicebus.ReceivedMessage
	for len(got) < 3 {
		ms, err := r.ReceiveMessages(ctxT(t), 3-len(got), nil)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, ms...)
	}
	if err := r.CompleteMessage(ctxT(t), got[0], nil); err != nil {
		t.Fatal(err)
	}
	if err := srv.Faults().ExpireSessionLock(q, sid); err != nil {
		t.Fatal(err)
	}
	var again []*azservicebus.ReceivedMessage
	for len(again) < 2 {
		ms, err := r.ReceiveMessages(ctxT(t), 2-len(again), nil)
		if err != nil {
			t.Fatal(err)
		}
		again = append(again, ms...)
	}
	if string(again[0].Body) != "two" || string(again[1].Body) != "three" || again[0].DeliveryCount != 2 || again[1].DeliveryCount != 2 {
		t.Fatalf("redelivered %q/%d %q/%d, want two and three with delivery count 2",
			again[0].Body, again[0].DeliveryCount, again[1].Body, again[1].DeliveryCount)
	}
	for _, m := range again {
		if err := r.CompleteMessage(ctxT(t), m, nil); err != nil {
			t.Fatal(err)
		}
	}
	if err := srv.Faults().ExpireSessionLock(q, "not-locked"); !errors.Is(err, broker.ErrSessionLockLost) {
		t.Errorf("expiring an unlocked session: %v, want ErrSessionLockLost", err)
	}
}
