// Package conformance is the one Service Bus conformance suite of holdfast. It drives a namespace through the
// unmodified azservicebus SDK and asserts the queue semantics the rest of the project relies on: settlement,
// lock expiry and renewal, delivery counts, dead-lettering, deferral, peeking and the error codes the SDK
// reports. The same cases run against the in-process emulator in every `make test`, and against a real
// namespace when SERVICEBUS_CONNECTION_STRING is set; differences between targets live in Features, never in
// the cases.
package conformance

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus"
)

// QueueSpec describes a queue a case needs. Zero values mean the target's defaults.
type QueueSpec struct {
	LockDuration     time.Duration
	MaxDeliveryCount int32
	RequiresSession  bool
}

// Features records where targets legitimately differ.
type Features struct {
	// MinLockDuration is the shortest lock the target accepts (Azure: 5 s; the emulator: 1 s). Cases that
	// wait for a lock to expire use it.
	MinLockDuration time.Duration
}

// Target is one namespace to run the suite against.
type Target struct {
	// ConnectionString is passed to azservicebus.NewClientFromConnectionString.
	ConnectionString string
	// NewQueue creates an empty queue with spec and returns its name. It removes the queue in t.Cleanup.
	NewQueue func(t *testing.T, spec QueueSpec) string
	Features Features
}

// Run runs every case against target as subtests of t.
func Run(t *testing.T, target Target) {
	if target.Features.MinLockDuration <= 0 {
		t.Fatal("conformance: Target.Features.MinLockDuration must be set")
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			c.run(t, newEnv(t, target))
		})
	}
}

type testCase struct {
	name string
	run  func(t *testing.T, e *env)
}

// cases is filled by the files of this package, one file per area.
var cases []testCase

func register(name string, run func(t *testing.T, e *env)) {
	cases = append(cases, testCase{name: name, run: run})
}

// env is what a case gets: a client on the target and helpers bound to t.
type env struct {
	t      *testing.T
	target Target
	client *azservicebus.Client
}

func newEnv(t *testing.T, target Target) *env {
	t.Helper()
	client, err := azservicebus.NewClientFromConnectionString(target.ConnectionString, nil)
	if err != nil {
		t.Fatalf("NewClientFromConnectionString: %v", err)
	}
	t.Cleanup(func() { _ = client.Close(context.Background()) })
	return &env{t: t, target: target, client: client}
}

// ctx returns a context bounded well inside the test timeout; it is cancelled at cleanup.
func (e *env) ctx() context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	e.t.Cleanup(cancel)
	return ctx
}

func (e *env) queue(spec QueueSpec) string {
	e.t.Helper()
	return e.target.NewQueue(e.t, spec)
}

func (e *env) sender(queue string) *azservicebus.Sender {
	e.t.Helper()
	s, err := e.client.NewSender(queue, nil)
	if err != nil {
		e.t.Fatalf("NewSender(%s): %v", queue, err)
	}
	e.t.Cleanup(func() { _ = s.Close(context.Background()) })
	return s
}

func (e *env) receiver(queue string, opts *azservicebus.ReceiverOptions) *azservicebus.Receiver {
	e.t.Helper()
	r, err := e.client.NewReceiverForQueue(queue, opts)
	if err != nil {
		e.t.Fatalf("NewReceiverForQueue(%s): %v", queue, err)
	}
	e.t.Cleanup(func() { _ = r.Close(context.Background()) })
	return r
}

func (e *env) send(queue string, msgs ...*azservicebus.Message) {
	e.t.Helper()
	s := e.sender(queue)
	for _, m := range msgs {
		if err := s.SendMessage(e.ctx(), m, nil); err != nil {
			e.t.Fatalf("SendMessage: %v", err)
		}
	}
}

// messageReceiver is what receiveN needs: an *azservicebus.Receiver or *SessionReceiver.
type messageReceiver interface {
	ReceiveMessages(ctx context.Context, maxMessages int, options *azservicebus.ReceiveMessagesOptions) ([]*azservicebus.ReceivedMessage, error)
}

// receiveN receives exactly n messages, failing the test if they do not arrive in time.
func (e *env) receiveN(r messageReceiver, n int) []*azservicebus.ReceivedMessage {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var got []*azservicebus.ReceivedMessage
	for len(got) < n {
		msgs, err := r.ReceiveMessages(ctx, n-len(got), nil)
		if err != nil {
			e.t.Fatalf("ReceiveMessages: got %d of %d messages: %v", len(got), n, err)
		}
		got = append(got, msgs...)
	}
	return got
}

// receiveNone asserts that nothing is delivered within wait.
func (e *env) receiveNone(r *azservicebus.Receiver, wait time.Duration) {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	msgs, err := r.ReceiveMessages(ctx, 1, nil)
	if len(msgs) > 0 {
		e.t.Fatalf("expected no message, got sequence number %d", *msgs[0].SequenceNumber)
	}
	if err != nil && !errors.Is(err, context.DeadlineExceeded) {
		e.t.Fatalf("ReceiveMessages: %v", err)
	}
}

func (e *env) complete(r *azservicebus.Receiver, msgs ...*azservicebus.ReceivedMessage) {
	e.t.Helper()
	for _, m := range msgs {
		if err := r.CompleteMessage(e.ctx(), m, nil); err != nil {
			e.t.Fatalf("CompleteMessage(seq %d): %v", *m.SequenceNumber, err)
		}
	}
}

// peekAll peeks every message of the queue from sequence number 1.
func (e *env) peekAll(r *azservicebus.Receiver) []*azservicebus.ReceivedMessage {
	e.t.Helper()
	var all []*azservicebus.ReceivedMessage
	from := int64(1)
	for {
		msgs, err := r.PeekMessages(e.ctx(), 100, &azservicebus.PeekMessagesOptions{FromSequenceNumber: &from})
		if err != nil {
			e.t.Fatalf("PeekMessages: %v", err)
		}
		if len(msgs) == 0 {
			return all
		}
		all = append(all, msgs...)
		from = *msgs[len(msgs)-1].SequenceNumber + 1
	}
}

// wantCode asserts err is an *azservicebus.Error with code.
func wantCode(t *testing.T, err error, code azservicebus.Code) {
	t.Helper()
	var sbErr *azservicebus.Error
	if !errors.As(err, &sbErr) {
		t.Fatalf("want *azservicebus.Error with code %q, got %T: %v", code, err, err)
	}
	if sbErr.Code != code {
		t.Fatalf("want code %q, got %q (%v)", code, sbErr.Code, err)
	}
}

// wantText asserts err's text contains want.
func wantText(t *testing.T, err error, want string) {
	t.Helper()
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("error %v, want one containing %q", err, want)
	}
}

func ptr[T any](v T) *T { return &v }

func body(i int) []byte { return []byte(fmt.Sprintf("message-%04d", i)) }
