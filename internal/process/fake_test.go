package process

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus"
)

// fakeReceiver is an in-memory Receiver. Messages are locked for lockDuration when received; a message whose
// ID is in lost fails renewal and settlement with CodeLockLost.
type fakeReceiver struct {
	lockDuration time.Duration

	mu          sync.Mutex
	queue       []*azservicebus.ReceivedMessage // guarded by mu
	settled     map[string]string               // guarded by mu; message ID → "complete" | "abandon" | "deadletter" | "defer"
	attempts    map[string]int                  // guarded by mu; message ID → settlement calls, successful or not
	dlReason    map[string]string               // guarded by mu; message ID → reason|description
	lost        map[string]bool                 // guarded by mu
	failOp      map[string]error                // guarded by mu; op → error returned by that settlement
	hang        bool                            // read-only after setup: settlements block until ctx is done
	receiveErr  error                           // guarded by mu; returned once the queue is empty
	asked       []int                           // guarded by mu; maxMessages of each ReceiveMessages call
	renewals    int                             // guarded by mu
	settleCtxOK bool                            // guarded by mu; false once a settlement got a done context
}

func newFake(lock time.Duration, bodies ...string) *fakeReceiver {
	f := &fakeReceiver{lockDuration: lock, settled: map[string]string{}, attempts: map[string]int{}, dlReason: map[string]string{},
		lost: map[string]bool{}, failOp: map[string]error{}, settleCtxOK: true}
	for i, b := range bodies {
		sn := int64(i + 1)
		f.queue = append(f.queue, &azservicebus.ReceivedMessage{MessageID: fmt.Sprintf("m%d", i), Body: []byte(b),
			SequenceNumber: &sn, DeliveryCount: 1})
	}
	return f
}

func (f *fakeReceiver) ReceiveMessages(ctx context.Context, n int, _ *azservicebus.ReceiveMessagesOptions) ([]*azservicebus.ReceivedMessage, error) {
	f.mu.Lock()
	f.asked = append(f.asked, n)
	if len(f.queue) > 0 {
		k := min(n, len(f.queue))
		out := f.queue[:k]
		f.queue = f.queue[k:]
		until := time.Now().Add(f.lockDuration)
		for _, m := range out {
			m.LockedUntil = &until
		}
		f.mu.Unlock()
		return out, nil
	}
	err := f.receiveErr
	f.mu.Unlock()
	if err != nil {
		return nil, err
	}
	<-ctx.Done()
	return nil, ctx.Err()
}

func (f *fakeReceiver) settle(ctx context.Context, msg *azservicebus.ReceivedMessage, op string) error {
	if f.hang {
		<-ctx.Done()
		return ctx.Err()
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.attempts[msg.MessageID]++
	if ctx.Err() != nil {
		f.settleCtxOK = false
	}
	if f.lost[msg.MessageID] {
		return &azservicebus.Error{Code: azservicebus.CodeLockLost}
	}
	if err := f.failOp[op]; err != nil {
		return err
	}
	if prev, ok := f.settled[msg.MessageID]; ok {
		return fmt.Errorf("fake: %s already settled (%s)", msg.MessageID, prev)
	}
	f.settled[msg.MessageID] = op
	return nil
}

func (f *fakeReceiver) CompleteMessage(ctx context.Context, m *azservicebus.ReceivedMessage, _ *azservicebus.CompleteMessageOptions) error {
	return f.settle(ctx, m, "complete")
}

func (f *fakeReceiver) AbandonMessage(ctx context.Context, m *azservicebus.ReceivedMessage, _ *azservicebus.AbandonMessageOptions) error {
	return f.settle(ctx, m, "abandon")
}

func (f *fakeReceiver) DeadLetterMessage(ctx context.Context, m *azservicebus.ReceivedMessage, o *azservicebus.DeadLetterOptions) error {
	if err := f.settle(ctx, m, "deadletter"); err != nil {
		return err
	}
	f.mu.Lock()
	f.dlReason[m.MessageID] = *o.Reason + "|" + *o.ErrorDescription
	f.mu.Unlock()
	return nil
}

func (f *fakeReceiver) DeferMessage(ctx context.Context, m *azservicebus.ReceivedMessage, _ *azservicebus.DeferMessageOptions) error {
	return f.settle(ctx, m, "defer")
}

func (f *fakeReceiver) RenewMessageLock(ctx context.Context, m *azservicebus.ReceivedMessage, _ *azservicebus.RenewMessageLockOptions) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.lost[m.MessageID] {
		return &azservicebus.Error{Code: azservicebus.CodeLockLost}
	}
	f.renewals++
	until := time.Now().Add(f.lockDuration)
	m.LockedUntil = &until
	return nil
}

// add queues more messages, numbered after the existing ones.
func (f *fakeReceiver) add(bodies ...string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, b := range bodies {
		n := len(f.attempts) + len(f.queue) + 100
		sn := int64(n)
		f.queue = append(f.queue, &azservicebus.ReceivedMessage{MessageID: fmt.Sprintf("m%d", n), Body: []byte(b),
			SequenceNumber: &sn, DeliveryCount: 1})
	}
}

func (f *fakeReceiver) loseLock(id string) {
	f.mu.Lock()
	f.lost[id] = true
	f.mu.Unlock()
}

func (f *fakeReceiver) settledCopy() map[string]string {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make(map[string]string, len(f.settled))
	for k, v := range f.settled {
		out[k] = v
	}
	return out
}

// fakeDeferrer defers through the settler unless err is set.
type fakeDeferrer struct {
	err error

	mu      sync.Mutex
	reasons map[string]string // guarded by mu
}

func (d *fakeDeferrer) Defer(ctx context.Context, s DeferSettler, msg *azservicebus.ReceivedMessage, notBefore time.Time, reason string) error {
	if d.err != nil {
		return d.err
	}
	if notBefore.IsZero() {
		return errors.New("fake: zero notBefore")
	}
	if err := s.DeferMessage(ctx, msg, nil); err != nil {
		return err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.reasons == nil {
		d.reasons = map[string]string{}
	}
	d.reasons[msg.MessageID] = reason
	return nil
}

// ReceiveDeferredMessages and PeekMessages make the fake a DueReceiver; the fake due source never calls them.
func (f *fakeReceiver) ReceiveDeferredMessages(context.Context, []int64, *azservicebus.ReceiveDeferredMessagesOptions) ([]*azservicebus.ReceivedMessage, error) {
	return nil, errors.New("fake: not supported")
}

func (f *fakeReceiver) PeekMessages(context.Context, int, *azservicebus.PeekMessagesOptions) ([]*azservicebus.ReceivedMessage, error) {
	return nil, errors.New("fake: not supported")
}

// fakeDue is a DueSource over a list of due messages; it records what the run asked and how each message was
// settled. events, if set, receives "take" at each TakeDue call.
type fakeDue struct {
	f      *fakeReceiver // locks the messages it hands out for f.lockDuration
	err    error         // returned with the first take
	events func(string)
	extra  int // a source breaking its contract: each take returns up to this many messages more than asked

	mu      sync.Mutex
	ready   []*azservicebus.ReceivedMessage // guarded by mu
	asked   []int                           // guarded by mu
	settled map[string]Settlement           // guarded by mu; message ID → settlement
	claims  []time.Time                     // guarded by mu; claimUntil of each take
}

func newFakeDue(f *fakeReceiver, bodies ...string) *fakeDue {
	d := &fakeDue{f: f, settled: map[string]Settlement{}}
	for i, b := range bodies {
		sn := int64(1000 + i)
		d.ready = append(d.ready, &azservicebus.ReceivedMessage{MessageID: fmt.Sprintf("d%d", i), Body: []byte(b),
			SequenceNumber: &sn, DeliveryCount: 2})
	}
	return d
}

func (d *fakeDue) TakeDue(_ context.Context, _ DueReceiver, max int, claimUntil time.Time) ([]DueMessage, error) {
	if d.events != nil {
		d.events("take")
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.asked = append(d.asked, max)
	d.claims = append(d.claims, claimUntil)
	k := min(max+d.extra, len(d.ready))
	until := time.Now().Add(d.f.lockDuration)
	var out []DueMessage
	for _, m := range d.ready[:k] {
		m.LockedUntil = &until
		id := m.MessageID
		out = append(out, DueMessage{Message: m, Settled: func(_ context.Context, s Settlement) {
			d.mu.Lock()
			defer d.mu.Unlock()
			if _, dup := d.settled[id]; dup {
				panic("fake: Settled called twice for " + id)
			}
			d.settled[id] = s
		}})
	}
	d.ready = d.ready[k:]
	err := d.err
	d.err = nil
	return out, err
}

func (d *fakeDue) settledCopy() map[string]Settlement {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make(map[string]Settlement, len(d.settled))
	for k, v := range d.settled {
		out[k] = v
	}
	return out
}
