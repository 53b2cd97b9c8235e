package emulator_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus"
	"github.com/Azure/go-amqp"

	"github.com/holdfast-dev/holdfast/emulator"
)

// waitFor polls cond (every 10 ms, the polling interval, not a synchronization sleep) until it
// holds or the test times out.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(testTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// dialConn dials srv with go-amqp (no SDK recovery in the way).
func dialConn(t *testing.T, srv *emulator.Server) *amqp.Conn {
	t.Helper()
	conn, err := amqp.Dial(ctxT(t), "amqp://"+srv.Addr(), &amqp.ConnOptions{SASLType: amqp.SASLTypeAnonymous()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return conn
}

// The service detaches any link idle for 10 minutes (here shortened) with
// amqp:link:detach-forced, senders included.
func TestIdleLinkDetached(t *testing.T) {
	srv := startServer(t, &emulator.Options{LinkIdleTimeout: 100 * time.Millisecond, ConnectionIdleTimeout: -1})
	q := newQueue(t, srv, nil)
	sess, err := dialConn(t, srv).NewSession(ctxT(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	s, err := sess.NewSender(ctxT(t), q, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Send(ctxT(t), amqp.NewMessage([]byte("active")), nil); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the idle sender to be detached", func() bool { return srv.Faults().IdleDetaches() > 0 })
	err = s.Send(ctxT(t), amqp.NewMessage([]byte("too late")), nil)
	var le *amqp.LinkError
	if !errors.As(err, &le) || le.RemoteErr == nil || le.RemoteErr.Condition != amqp.ErrCondDetachForced ||
		!strings.Contains(le.RemoteErr.Description, "AmqpMessagePublisher.IdleTimerExpired: Idle timeout: 00:00:00.1000000") {
		t.Fatalf("send on the idle link: %v, want detach-forced by the publisher idle timer", err)
	}
}

// After an idle receive link is detached the SDK reattaches on its own, and messages received
// before are still settled through $management (Microsoft's
// TestMessageSettlementUsingOnlyBackupSettlement shows the service accepting that).
func TestIdleReceiverSettlesThroughManagement(t *testing.T) {
	srv := startServer(t, &emulator.Options{LinkIdleTimeout: 200 * time.Millisecond})
	c := newClient(t, srv)
	r, m := receiveLocked(t, srv, c)
	waitFor(t, "the idle receiver to be detached", func() bool { return srv.Faults().IdleDetaches() > 0 })
	if err := r.CompleteMessage(ctxT(t), m, nil); err != nil {
		t.Fatalf("complete after the idle detach: %v", err)
	}
	if _, err := r.PeekMessages(ctxT(t), 1, nil); err != nil {
		t.Fatalf("the SDK did not recover: %v", err)
	}
}

// A connection whose links have all closed is closed after ConnectionIdleTimeout (5 minutes on
// the service), one that never attaches a link after ConnectionOpenTimeout (1 minute); a
// connection with a link stays open.
func TestIdleConnectionsClosed(t *testing.T) {
	srv := startServer(t, &emulator.Options{LinkIdleTimeout: -1, ConnectionIdleTimeout: 150 * time.Millisecond, ConnectionOpenTimeout: 100 * time.Millisecond})
	q := newQueue(t, srv, nil)

	busy := dialConn(t, srv)
	bs, err := busy.NewSession(ctxT(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bs.NewReceiver(ctxT(t), q, nil); err != nil {
		t.Fatal(err)
	}
	emptied := dialConn(t, srv)
	es, err := emptied.NewSession(ctxT(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	l, err := es.NewSender(ctxT(t), q, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Close(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	silent := dialConn(t, srv)

	wantClosed := func(name string, c *amqp.Conn, millis string) {
		t.Helper()
		select {
		case <-c.Done():
		case <-ctxT(t).Done():
			t.Fatalf("%s connection was never closed", name)
		}
		var ce *amqp.ConnError
		if err := c.Err(); !errors.As(err, &ce) || ce.RemoteErr == nil || ce.RemoteErr.Condition != amqp.ErrCondConnectionForced ||
			!strings.Contains(ce.RemoteErr.Description, "did not have any active links in the past "+millis+" milliseconds") {
			t.Fatalf("%s connection closed with %v", name, err)
		}
	}
	wantClosed("a linkless", silent, "100")
	wantClosed("an emptied", emptied, "150")
	select {
	case <-busy.Done():
		t.Fatalf("a connection with an attached link was closed: %v", busy.Err())
	default:
	}
}

// The SDK recovers from the idle rules by itself: after its connection was closed for
// idleness a client sends and receives again.
func TestSDKRecoversFromIdleClose(t *testing.T) {
	srv := startServer(t, &emulator.Options{LinkIdleTimeout: 100 * time.Millisecond, ConnectionIdleTimeout: 100 * time.Millisecond})
	q := newQueue(t, srv, nil)
	c := newClient(t, srv)
	s, err := c.NewSender(q, nil)
	if err != nil {
		t.Fatal(err)
	}
	send(t, s, &azservicebus.Message{Body: []byte("first")})
	waitFor(t, "the client's connection to be closed", func() bool { return srv.Connections() == 0 })
	send(t, s, &azservicebus.Message{Body: []byte("second")})
	r, err := c.NewReceiverForQueue(q, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := bodies(receiveN(t, r, 2)); got[0] != "first" || got[1] != "second" {
		t.Fatalf("received %v", got)
	}
}
