package emulator_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"github.com/Azure/go-amqp"

	"github.com/holdfast-dev/holdfast/emulator"
	wire "github.com/holdfast-dev/holdfast/emulator/amqp"
	"github.com/holdfast-dev/holdfast/emulator/broker"
)

// dialAMQP opens a go-amqp connection and session to srv.
func dialAMQP(t *testing.T, srv *emulator.Server) *amqp.Session {
	t.Helper()
	conn, err := amqp.Dial(ctxT(t), "amqp://"+srv.Addr(), &amqp.ConnOptions{SASLType: amqp.SASLTypeAnonymous()})
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	sess, err := conn.NewSession(ctxT(t), nil)
	if err != nil {
		t.Fatalf("NewSession: %v", err)
	}
	return sess
}

func TestAttachUnknownAddress(t *testing.T) {
	srv := startServer(t, nil)
	sess := dialAMQP(t, srv)
	tests := []struct {
		name   string
		attach func() error
	}{
		{"receiver", func() error { _, err := sess.NewReceiver(ctxT(t), "nope", nil); return err }},
		{"sender", func() error { _, err := sess.NewSender(ctxT(t), "nope", nil); return err }},
		{"management", func() error { _, err := sess.NewSender(ctxT(t), "nope/$management", nil); return err }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.attach()
			var ae *amqp.Error
			if !errors.As(err, &ae) || ae.Condition != amqp.ErrCondNotFound {
				t.Fatalf("attach: %v, want amqp:not-found", err)
			}
		})
	}
	// The session survives refused attaches.
	q := newQueue(t, srv, nil)
	if _, err := sess.NewSender(ctxT(t), q, nil); err != nil {
		t.Fatalf("attach to an existing queue after refusals: %v", err)
	}
}

func TestMalformedFrameClosesOnlyThatConnection(t *testing.T) {
	srv := startServer(t, nil)
	nc, err := net.Dial("tcp", srv.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	_ = nc.SetDeadline(time.Now().Add(testTimeout))
	fr := wire.NewFrameReader(nc)
	if _, err := nc.Write(wire.HeaderAMQP[:]); err != nil {
		t.Fatal(err)
	}
	if h, err := fr.ReadProtocolHeader(); err != nil || h != wire.HeaderAMQP {
		t.Fatalf("protocol header: %q, %v", h[:], err)
	}
	open, err := wire.AppendFrame(nil, wire.Frame{Type: wire.FrameAMQP, Body: &wire.Open{ContainerID: "raw", MaxFrameSize: 65536}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := nc.Write(open); err != nil {
		t.Fatal(err)
	}
	if f, err := fr.ReadFrame(); err != nil {
		t.Fatalf("read open: %v", err)
	} else if _, ok := f.Body.(*wire.Open); !ok {
		t.Fatalf("got %T, want open", f.Body)
	}
	// A frame whose body is a described type with an unknown encoding byte.
	garbage := []byte{0, 0, 0, 16, 2, 0, 0, 0, 0x00, 0x53, 0x11, 0xff, 0xff, 0xff, 0xff, 0xff}
	if _, err := nc.Write(garbage); err != nil {
		t.Fatal(err)
	}
	var closeErr *wire.Error
	for {
		f, err := fr.ReadFrame()
		if err != nil {
			t.Fatalf("connection ended without close: %v", err)
		}
		if c, ok := f.Body.(*wire.Close); ok {
			closeErr = c.Error
			break
		}
	}
	if closeErr == nil || closeErr.Condition != "amqp:decode-error" {
		t.Fatalf("close error = %v, want amqp:decode-error", closeErr)
	}
	if _, err := fr.ReadFrame(); !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
		var ne net.Error
		if !errors.As(err, &ne) {
			t.Fatalf("after close: %v, want the connection closed", err)
		}
	}

	// Another connection keeps working.
	sess := dialAMQP(t, srv)
	q := newQueue(t, srv, nil)
	s, err := sess.NewSender(ctxT(t), q, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Send(ctxT(t), amqp.NewMessage([]byte("ok")), nil); err != nil {
		t.Fatalf("Send on a second connection: %v", err)
	}
}

func TestReleaseKeepsDeliveryCount(t *testing.T) {
	srv := startServer(t, nil)
	q := newQueue(t, srv, nil)
	sess := dialAMQP(t, srv)
	s, err := sess.NewSender(ctxT(t), q, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Send(ctxT(t), amqp.NewMessage([]byte("r")), nil); err != nil {
		t.Fatal(err)
	}
	second := amqp.ReceiverSettleModeSecond
	r, err := sess.NewReceiver(ctxT(t), q, &amqp.ReceiverOptions{SettlementMode: &second, Credit: 1})
	if err != nil {
		t.Fatal(err)
	}
	m, err := r.Receive(ctxT(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(m.DeliveryTag) != 16 {
		t.Fatalf("delivery tag of %d bytes, want 16", len(m.DeliveryTag))
	}
	if err := r.ReleaseMessage(ctxT(t), m); err != nil {
		t.Fatalf("ReleaseMessage: %v", err)
	}
	again, err := r.Receive(ctxT(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	if again.Header == nil || again.Header.DeliveryCount != 0 {
		t.Fatalf("redelivered header %+v, want delivery-count 0", again.Header)
	}
	if err := r.AcceptMessage(ctxT(t), again); err != nil {
		t.Fatalf("AcceptMessage: %v", err)
	}
}

func TestDrain(t *testing.T) {
	srv := startServer(t, nil)
	q := newQueue(t, srv, nil)
	sess := dialAMQP(t, srv)
	s, err := sess.NewSender(ctxT(t), q, nil)
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if err := s.Send(ctxT(t), amqp.NewMessage([]byte("d")), nil); err != nil {
			t.Fatal(err)
		}
	}
	settled := amqp.SenderSettleModeSettled
	r, err := sess.NewReceiver(ctxT(t), q, &amqp.ReceiverOptions{Credit: -1, RequestedSenderSettleMode: &settled})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.IssueCredit(5); err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		if _, err := r.Receive(ctxT(t), nil); err != nil {
			t.Fatalf("receive %d: %v", i, err)
		}
	}
	if err := r.DrainCredit(ctxT(t), nil); err != nil {
		t.Fatalf("DrainCredit: %v", err)
	}
	// With the credit drained, a new message is not delivered.
	if err := s.Send(ctxT(t), amqp.NewMessage([]byte("late")), nil); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if m, err := r.Receive(ctx, nil); err == nil {
		t.Fatalf("received %q without credit", m.GetData())
	}
	if err := r.IssueCredit(1); err != nil {
		t.Fatal(err)
	}
	if m, err := r.Receive(ctxT(t), nil); err != nil || string(m.GetData()) != "late" {
		t.Fatalf("after new credit: %v, %v", m, err)
	}
}

// rawConn is a minimal AMQP client written with our codec, for what go-amqp will not send.
type rawConn struct {
	t  *testing.T
	nc net.Conn
	fr *wire.FrameReader
}

func rawDial(t *testing.T, srv *emulator.Server) *rawConn {
	t.Helper()
	nc, err := net.Dial("tcp", srv.Addr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = nc.Close() })
	_ = nc.SetDeadline(time.Now().Add(testTimeout))
	rc := &rawConn{t: t, nc: nc, fr: wire.NewFrameReader(nc)}
	if _, err := nc.Write(wire.HeaderAMQP[:]); err != nil {
		t.Fatal(err)
	}
	if h, err := rc.fr.ReadProtocolHeader(); err != nil || h != wire.HeaderAMQP {
		t.Fatalf("protocol header: %q, %v", h[:], err)
	}
	rc.send(0, &wire.Open{ContainerID: "raw", MaxFrameSize: 65536}, nil)
	expectBody[*wire.Open](rc)
	return rc
}

func (rc *rawConn) send(ch uint16, body wire.Performative, payload []byte) {
	rc.t.Helper()
	b, err := wire.AppendFrame(nil, wire.Frame{Type: wire.FrameAMQP, Channel: ch, Body: body, Payload: payload})
	if err != nil {
		rc.t.Fatalf("encode %T: %v", body, err)
	}
	if _, err := rc.nc.Write(b); err != nil {
		rc.t.Fatalf("write %T: %v", body, err)
	}
}

// next returns the next non-empty frame.
func (rc *rawConn) next() wire.Frame {
	rc.t.Helper()
	for {
		f, err := rc.fr.ReadFrame()
		if err != nil {
			rc.t.Fatalf("read frame: %v", err)
		}
		if f.Body != nil {
			return f
		}
	}
}

func expectBody[T wire.Performative](rc *rawConn) T {
	rc.t.Helper()
	f := rc.next()
	b, ok := f.Body.(T)
	if !ok {
		rc.t.Fatalf("got %T (%+v), want %T", f.Body, f.Body, b)
	}
	return b
}

func TestRawTransfers(t *testing.T) {
	srv := startServer(t, &emulator.Options{MaxMessageSize: 4096})
	q := newQueue(t, srv, nil)
	rc := rawDial(t, srv)
	rc.send(0, &wire.Begin{NextOutgoingID: 0, IncomingWindow: 100, OutgoingWindow: 100, HandleMax: 10}, nil)
	if b := expectBody[*wire.Begin](rc); b.RemoteChannel == nil || *b.RemoteChannel != 0 || b.IncomingWindow == 0 {
		t.Fatalf("begin reply %+v", b)
	}
	addr := q
	rc.send(0, &wire.Attach{Name: "s", Handle: 0, Role: wire.RoleSender, Target: &wire.Target{Address: &addr}, Source: &wire.Source{}}, nil)
	if a := expectBody[*wire.Attach](rc); a.MaxMessageSize == nil || *a.MaxMessageSize != 4096 || a.Target == nil {
		t.Fatalf("attach reply %+v", a)
	}
	if f := expectBody[*wire.Flow](rc); f.LinkCredit == nil || *f.LinkCredit == 0 || f.NextIncomingID == nil {
		t.Fatalf("flow %+v", f)
	}

	valid, err := amqp.NewMessage(bytes.Repeat([]byte("v"), 3000)).MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		payload []byte
		format  uint32
		want    amqp.ErrCond // "" means accepted
	}{
		{"too large", make([]byte, 5000), 0, "amqp:link:message-size-exceeded"},
		{"valid in two frames", valid, 0, ""},
		{"unknown message format", valid, 0x1234, "amqp:decode-error"},
		{"garbage", []byte{0xde, 0xad}, 0, "amqp:decode-error"},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id, f, settled := uint32(i), tt.format, false
			half := len(tt.payload) / 2
			rc.send(0, &wire.Transfer{Handle: 0, DeliveryID: &id, DeliveryTag: []byte{byte(i)}, MessageFormat: &f, Settled: &settled, More: true}, tt.payload[:half])
			rc.send(0, &wire.Transfer{Handle: 0}, tt.payload[half:])
			d := expectBody[*wire.Disposition](rc)
			if d.First != id || !d.Settled || d.Role != wire.RoleReceiver {
				t.Fatalf("disposition %+v", d)
			}
			switch s := d.State.(type) {
			case *wire.Accepted:
				if tt.want != "" {
					t.Fatalf("accepted, want %s", tt.want)
				}
			case *wire.Rejected:
				if s.Error == nil || string(s.Error.Condition) != string(tt.want) {
					t.Fatalf("rejected with %v, want %q", s.Error, tt.want)
				}
			default:
				t.Fatalf("state %T", d.State)
			}
		})
	}
	e, _ := srv.Broker().Entity(q)
	if got := e.Peek(0, 10); len(got) != 1 || len(got[0].GetData()) != 3000 {
		t.Fatalf("queue holds %d messages, want the one valid message", len(got))
	}
}

// TestEndOnAChannelWithoutSessionIsIgnored: go-amqp ends an "abandoned" session (one whose begin timed out)
// on its next NewSession even when the begin never reached the peer; that end must not cost the connection.
// Mutation: treating it like any other frame on a channel without a session closes the connection with
// amqp:not-allowed and the begin below gets a close instead of its reply.
func TestEndOnAChannelWithoutSessionIsIgnored(t *testing.T) {
	srv := startServer(t, nil)
	rc := rawDial(t, srv)
	rc.send(3, &wire.End{}, nil)
	rc.send(0, &wire.Begin{IncomingWindow: 100, OutgoingWindow: 100, HandleMax: 10}, nil)
	if b := expectBody[*wire.Begin](rc); b.RemoteChannel == nil || *b.RemoteChannel != 0 {
		t.Fatalf("begin reply %+v", b)
	}
	// Any other frame on a channel without a session still closes the connection.
	rc.send(3, &wire.Detach{Handle: 0}, nil)
	if cl := expectBody[*wire.Close](rc); cl.Error == nil || cl.Error.Condition != "amqp:not-allowed" {
		t.Fatalf("close %+v, want amqp:not-allowed", cl)
	}
}

func TestKeepAlive(t *testing.T) {
	srv := startServer(t, &emulator.Options{KeepAlive: 10 * time.Millisecond})
	rc := rawDial(t, srv)
	for i := range 3 {
		f, err := rc.fr.ReadFrame()
		if err != nil {
			t.Fatalf("read keepalive %d: %v", i, err)
		}
		if f.Body != nil {
			t.Fatalf("frame %d is %T, want an empty keepalive frame", i, f.Body)
		}
	}
}

// TestEndFreesChannelAndRoutesRepliesByName ends a session with its links attached, reuses the channel,
// and checks that a $cbs reply is routed to a reply link named by reply-to (no target address), once the
// link has credit.
func TestEndFreesChannelAndRoutesRepliesByName(t *testing.T) {
	srv := startServer(t, nil)
	q := newQueue(t, srv, nil)
	rc := rawDial(t, srv)
	cbs := "$cbs"
	for round := range 2 {
		rc.send(0, &wire.Begin{IncomingWindow: 100, OutgoingWindow: 100, HandleMax: 10}, nil)
		expectBody[*wire.Begin](rc)
		rc.send(0, &wire.Attach{Name: "cbs-req", Handle: 0, Role: wire.RoleSender, Source: &wire.Source{}, Target: &wire.Target{Address: &cbs}}, nil)
		expectBody[*wire.Attach](rc)
		expectBody[*wire.Flow](rc)
		settled := wire.SndSettled
		rc.send(0, &wire.Attach{Name: "cbs-reply-by-name", Handle: 1, Role: wire.RoleReceiver, SndSettleMode: &settled, Source: &wire.Source{Address: &cbs}, Target: &wire.Target{}}, nil)
		if a := expectBody[*wire.Attach](rc); a.SndSettleMode == nil || *a.SndSettleMode != wire.SndSettled {
			t.Fatalf("reply link attach did not echo snd-settle-mode: %+v", a)
		}

		req := amqp.NewMessage(nil)
		req.Value = "SharedAccessSignature sr=x&sig=y&se=1&skn=k"
		id := "req-" + string(rune('a'+round))
		replyTo := "cbs-reply-by-name"
		req.Properties = &amqp.MessageProperties{MessageID: id, ReplyTo: &replyTo}
		req.ApplicationProperties = map[string]any{"operation": "put-token", "type": "servicebus.windows.net:sastoken", "name": "amqp://localhost/" + q, "expiration": "0"}
		payload, err := req.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		did, format, unsettled := uint32(0), uint32(0), false
		rc.send(0, &wire.Transfer{Handle: 0, DeliveryID: &did, DeliveryTag: []byte{1}, MessageFormat: &format, Settled: &unsettled}, payload)
		if d := expectBody[*wire.Disposition](rc); d.First != 0 || !d.Settled {
			t.Fatalf("request ack %+v", d)
		} else if _, ok := d.State.(*wire.Accepted); !ok {
			t.Fatalf("request ack state %T, want accepted", d.State)
		}
		// The reply waits for credit.
		nid, dc, credit, h := uint32(1), uint32(0), uint32(5), uint32(1)
		rc.send(0, &wire.Flow{NextIncomingID: &nid, IncomingWindow: 100, OutgoingWindow: 100, Handle: &h, DeliveryCount: &dc, LinkCredit: &credit}, nil)
		var tr *wire.Transfer
		var f wire.Frame
		for tr == nil {
			f = rc.next()
			tr, _ = f.Body.(*wire.Transfer)
		}
		if tr.Handle != 1 || tr.Settled == nil || !*tr.Settled {
			t.Fatalf("reply transfer %+v", tr)
		}
		var reply amqp.Message
		if err := reply.UnmarshalBinary(f.Payload); err != nil {
			t.Fatal(err)
		}
		if reply.Properties == nil || reply.Properties.CorrelationID != id || reply.ApplicationProperties["status-code"] != int32(200) {
			t.Fatalf("reply properties %+v, application properties %v", reply.Properties, reply.ApplicationProperties)
		}
		// End without detaching; the next round begins on the same channel with the same handles.
		rc.send(0, &wire.End{}, nil)
		expectBody[*wire.End](rc)
	}
}

func TestDeletedQueueDetachesReceiver(t *testing.T) {
	srv := startServer(t, nil)
	q := newQueue(t, srv, nil)
	sess := dialAMQP(t, srv)
	r, err := sess.NewReceiver(ctxT(t), q, &amqp.ReceiverOptions{Credit: 10})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Broker().DeleteQueue(q); err != nil {
		t.Fatal(err)
	}
	_, err = r.Receive(ctxT(t), nil)
	var le *amqp.LinkError
	if !errors.As(err, &le) || le.RemoteErr == nil || le.RemoteErr.Condition != amqp.ErrCondNotFound {
		t.Fatalf("Receive on a deleted queue: %v, want a link error with amqp:not-found", err)
	}
}

func TestSASL(t *testing.T) {
	srv := startServer(t, nil)
	tests := []struct {
		mechanism wire.Symbol
		wantCode  uint8
	}{
		{"ANONYMOUS", 0},
		{"MSSBCBS", 0},
		{"PLAIN", 0}, // not offered, but accepted
		{"EXTERNAL", 1},
	}
	for _, tt := range tests {
		t.Run(string(tt.mechanism), func(t *testing.T) {
			nc, err := net.Dial("tcp", srv.Addr())
			if err != nil {
				t.Fatal(err)
			}
			defer nc.Close()
			_ = nc.SetDeadline(time.Now().Add(testTimeout))
			rc := &rawConn{t: t, nc: nc, fr: wire.NewFrameReader(nc)}
			if _, err := nc.Write(wire.HeaderSASL[:]); err != nil {
				t.Fatal(err)
			}
			if h, err := rc.fr.ReadProtocolHeader(); err != nil || h != wire.HeaderSASL {
				t.Fatalf("SASL header: %q, %v", h[:], err)
			}
			mechs := expectBody[*wire.SASLMechanisms](rc)
			if len(mechs.Mechanisms) != 2 || mechs.Mechanisms[0] != "MSSBCBS" || mechs.Mechanisms[1] != "ANONYMOUS" {
				t.Fatalf("mechanisms %v, want [MSSBCBS ANONYMOUS]", mechs.Mechanisms)
			}
			b, err := wire.AppendFrame(nil, wire.Frame{Type: wire.FrameSASL, Body: &wire.SASLInit{Mechanism: tt.mechanism, InitialResponse: []byte("x")}})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := nc.Write(b); err != nil {
				t.Fatal(err)
			}
			if o := expectBody[*wire.SASLOutcome](rc); o.Code != tt.wantCode {
				t.Fatalf("outcome code %d, want %d", o.Code, tt.wantCode)
			}
		})
	}
}

// One $cbs sender/receiver pair per connection, as the service allows: a second link in the same
// direction is refused with amqp:not-allowed (the SDK then resets its connection), and once the
// first is closed a new one attaches.
func TestSecondCBSLinkRefused(t *testing.T) {
	srv := startServer(t, nil)
	conn, err := amqp.Dial(ctxT(t), "amqp://"+srv.Addr(), &amqp.ConnOptions{SASLType: amqp.SASLTypeAnonymous()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	sess, err := conn.NewSession(ctxT(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	first, err := sess.NewSender(ctxT(t), "$cbs", nil)
	if err != nil {
		t.Fatalf("first $cbs sender: %v", err)
	}
	reply, err := sess.NewReceiver(ctxT(t), "$cbs", nil)
	if err != nil {
		t.Fatalf("first $cbs receiver: %v", err)
	}
	wantNotAllowed := func(what string, err error) {
		t.Helper()
		var ae *amqp.Error
		if !errors.As(err, &ae) || ae.Condition != amqp.ErrCondNotAllowed {
			t.Fatalf("%s: %v, want amqp:not-allowed", what, err)
		}
	}
	_, err = sess.NewSender(ctxT(t), "$cbs", nil)
	wantNotAllowed("second $cbs sender", err)
	_, err = sess.NewReceiver(ctxT(t), "$cbs", nil)
	wantNotAllowed("second $cbs receiver", err)
	// Another session of the same connection counts too.
	other, err := conn.NewSession(ctxT(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	_, err = other.NewSender(ctxT(t), "$cbs", nil)
	wantNotAllowed("$cbs sender on a second session", err)

	if err := first.Close(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	if err := reply.Close(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	if _, err := other.NewSender(ctxT(t), "$cbs", nil); err != nil {
		t.Fatalf("$cbs sender after the first closed: %v", err)
	}
}

// TestStatusDetachesWaitingReceiver: a receive link waiting with credit is detached with
// com.microsoft:entity-disabled as soon as its queue's status disables receiving, and a sender's
// transfers to a SendDisabled queue are rejected with the same condition (broker.EntityStatus).
func TestStatusDetachesWaitingReceiver(t *testing.T) {
	srv := startServer(t, nil)
	q := newQueue(t, srv, nil)
	sess := dialAMQP(t, srv)
	r, err := sess.NewReceiver(ctxT(t), q, &amqp.ReceiverOptions{Credit: 10})
	if err != nil {
		t.Fatal(err)
	}
	s, err := sess.NewSender(ctxT(t), q, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Send(ctxT(t), amqp.NewMessage([]byte("one")), nil); err != nil {
		t.Fatal(err)
	}
	// Receiving it proves the credit arrived: the link now waits with credit left.
	m, err := r.Receive(ctxT(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.AcceptMessage(ctxT(t), m); err != nil {
		t.Fatal(err)
	}

	if err := srv.Broker().SetStatus(q, broker.StatusSendDisabled); err != nil {
		t.Fatal(err)
	}
	var ae *amqp.Error
	if err := s.Send(ctxT(t), amqp.NewMessage([]byte("two")), nil); !errors.As(err, &ae) || ae.Condition != "com.microsoft:entity-disabled" {
		t.Fatalf("Send to a SendDisabled queue: %v, want com.microsoft:entity-disabled", err)
	}

	if err := srv.Broker().SetStatus(q, broker.StatusReceiveDisabled); err != nil {
		t.Fatal(err)
	}
	_, err = r.Receive(ctxT(t), nil)
	var le *amqp.LinkError
	if !errors.As(err, &le) || le.RemoteErr == nil || le.RemoteErr.Condition != "com.microsoft:entity-disabled" {
		t.Fatalf("Receive after the queue became ReceiveDisabled: %v, want a detach with com.microsoft:entity-disabled", err)
	}
	if err := s.Send(ctxT(t), amqp.NewMessage([]byte("three")), nil); err != nil {
		t.Fatalf("Send to a ReceiveDisabled queue: %v", err)
	}
}
