package process

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus"

	"github.com/holdfast-dev/holdfast/lockrenew"
	"github.com/holdfast-dev/holdfast/processor"
)

// Unit tests of the session run's logic on in-memory sessions; the emulator tests prove it through the SDK.

// fakeSessions holds sessions of messages. AcceptNextSession hands out an unlocked session with messages, or
// waits for ctx; AcceptSession locks the named one (ErrSessionLocked when held, acceptErr when set).
type fakeSessions struct {
	lock time.Duration

	mu        sync.Mutex
	queues    map[string][]*azservicebus.ReceivedMessage // guarded by mu: available messages per session
	held      map[string]bool                            // guarded by mu
	accepted  []string                                   // guarded by mu: sessions accepted, in order
	acceptErr error                                      // guarded by mu: returned by AcceptNextSession
	recv      []*fakeSessionReceiver                     // guarded by mu
	renewErr  error                                      // guarded by mu: returned by every RenewSessionLock
	seq       int64                                      // guarded by mu
}

func newFakeSessions(lock time.Duration) *fakeSessions {
	return &fakeSessions{lock: lock, queues: map[string][]*azservicebus.ReceivedMessage{}, held: map[string]bool{}}
}

func (f *fakeSessions) add(sid string, bodies ...string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, b := range bodies {
		f.seq++
		sn, id := f.seq, sid
		f.queues[sid] = append(f.queues[sid], &azservicebus.ReceivedMessage{MessageID: fmt.Sprintf("%s/%s", sid, b),
			Body: []byte(b), SequenceNumber: &sn, SessionID: &id, DeliveryCount: 1})
	}
}

func (f *fakeSessions) AcceptNextSession(ctx context.Context) (SessionReceiver, error) {
	f.mu.Lock()
	if f.acceptErr != nil {
		defer f.mu.Unlock()
		return nil, f.acceptErr
	}
	ids := make([]string, 0, len(f.queues))
	for id, q := range f.queues {
		if len(q) > 0 && !f.held[id] {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	if len(ids) > 0 {
		defer f.mu.Unlock()
		return f.acceptLocked(ids[0]), nil
	}
	f.mu.Unlock()
	<-ctx.Done()
	return nil, ctx.Err()
}

func (f *fakeSessions) AcceptSession(_ context.Context, id string) (SessionReceiver, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.held[id] {
		return nil, fmt.Errorf("%w: %s", ErrSessionLocked, id)
	}
	return f.acceptLocked(id), nil
}

func (f *fakeSessions) acceptLocked(id string) *fakeSessionReceiver {
	f.held[id] = true
	f.accepted = append(f.accepted, id)
	r := &fakeSessionReceiver{f: f, id: id, until: time.Now().Add(f.lock), settled: map[string]string{}}
	f.recv = append(f.recv, r)
	return r
}

// fakeSessionReceiver is one accepted session of fakeSessions.
type fakeSessionReceiver struct {
	f  *fakeSessions
	id string

	mu         sync.Mutex
	until      time.Time                       // guarded by mu
	inflight   []*azservicebus.ReceivedMessage // guarded by mu: received, not settled
	settled    map[string]string               // guarded by mu: message ID → settlement
	order      []string                        // guarded by mu: settlements in order, "op:id"
	closed     bool                            // guarded by mu
	hangSettle bool                            // read-only after setup: settlements block until ctx is done
	settling   bool                            // guarded by mu: a settlement is in progress
	overlap    bool                            // guarded by mu: a renewal ran while a settlement was in progress
	renewals   int                             // guarded by mu
}

func (r *fakeSessionReceiver) ReceiveMessages(ctx context.Context, n int, _ *azservicebus.ReceiveMessagesOptions) ([]*azservicebus.ReceivedMessage, error) {
	r.f.mu.Lock()
	q := r.f.queues[r.id]
	if len(q) > 0 {
		m := q[0]
		r.f.queues[r.id] = q[1:]
		r.f.mu.Unlock()
		r.mu.Lock()
		r.inflight = append(r.inflight, m)
		r.mu.Unlock()
		return []*azservicebus.ReceivedMessage{m}, nil
	}
	r.f.mu.Unlock()
	<-ctx.Done()
	return nil, ctx.Err()
}

func (r *fakeSessionReceiver) settle(ctx context.Context, op string, m *azservicebus.ReceivedMessage) error {
	r.mu.Lock()
	r.settling = true
	r.mu.Unlock()
	defer func() {
		r.mu.Lock()
		r.settling = false
		r.mu.Unlock()
	}()
	if r.hangSettle {
		<-ctx.Done()
		return ctx.Err()
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.settled[m.MessageID] = op
	r.order = append(r.order, op+":"+m.MessageID)
	r.inflight = slices.DeleteFunc(r.inflight, func(x *azservicebus.ReceivedMessage) bool { return x == m })
	if op == "abandon" {
		r.f.mu.Lock()
		c := *m
		c.DeliveryCount++
		r.f.queues[r.id] = append([]*azservicebus.ReceivedMessage{&c}, r.f.queues[r.id]...)
		r.f.mu.Unlock()
	}
	return nil
}

func (r *fakeSessionReceiver) CompleteMessage(ctx context.Context, m *azservicebus.ReceivedMessage, _ *azservicebus.CompleteMessageOptions) error {
	return r.settle(ctx, "complete", m)
}
func (r *fakeSessionReceiver) AbandonMessage(ctx context.Context, m *azservicebus.ReceivedMessage, _ *azservicebus.AbandonMessageOptions) error {
	return r.settle(ctx, "abandon", m)
}
func (r *fakeSessionReceiver) DeadLetterMessage(ctx context.Context, m *azservicebus.ReceivedMessage, _ *azservicebus.DeadLetterOptions) error {
	return r.settle(ctx, "deadletter", m)
}
func (r *fakeSessionReceiver) DeferMessage(ctx context.Context, m *azservicebus.ReceivedMessage, _ *azservicebus.DeferMessageOptions) error {
	return r.settle(ctx, "defer", m)
}
func (r *fakeSessionReceiver) ReceiveDeferredMessages(_ context.Context, seqs []int64, _ *azservicebus.ReceiveDeferredMessagesOptions) ([]*azservicebus.ReceivedMessage, error) {
	var out []*azservicebus.ReceivedMessage
	for _, s := range seqs {
		sn, id := s, r.id
		out = append(out, &azservicebus.ReceivedMessage{MessageID: fmt.Sprintf("deferred-%d", s), SequenceNumber: &sn, SessionID: &id,
			State: azservicebus.MessageStateDeferred, DeliveryCount: 2})
	}
	return out, nil
}
func (r *fakeSessionReceiver) PeekMessages(context.Context, int, *azservicebus.PeekMessagesOptions) ([]*azservicebus.ReceivedMessage, error) {
	return nil, nil
}
func (r *fakeSessionReceiver) RenewSessionLock(ctx context.Context, _ *azservicebus.RenewSessionLockOptions) error {
	r.f.mu.Lock()
	err := r.f.renewErr
	r.f.mu.Unlock()
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.settling {
		r.overlap = true
	}
	if err != nil {
		return err
	}
	r.renewals++
	r.until = time.Now().Add(r.f.lock)
	return nil
}
func (r *fakeSessionReceiver) LockedUntil() time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.until
}
func (r *fakeSessionReceiver) SessionID() string { return r.id }

// Close releases the session: unsettled messages are available again, first, delivery count unchanged.
func (r *fakeSessionReceiver) Close(context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.closed = true
	r.f.mu.Lock()
	defer r.f.mu.Unlock()
	r.f.queues[r.id] = append(slices.Clone(r.inflight), r.f.queues[r.id]...)
	r.inflight = nil
	r.f.held[r.id] = false
	return nil
}

func sessionOpts(o Options) *Options {
	if o.NoMessageWait == 0 {
		o.NoMessageWait = time.Second
	}
	if o.SessionIdleWait == 0 {
		o.SessionIdleWait = 100 * time.Millisecond
	}
	if o.Budget == 0 {
		o.Budget = time.Minute
	}
	return &o
}

// Messages of a session are processed one at a time, in order; sessions side by side up to MaxSessions;
// every receiver is closed; every goroutine joined.
func TestSessionRunOrderAndConcurrency(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFakeSessions(30 * time.Second)
		for _, sid := range []string{"a", "b", "c", "d"} {
			f.add(sid, "1", "2", "3")
		}
		var mu sync.Mutex
		active, most := map[string]int{}, 0
		var order []string
		p := processor.Func(func(ctx context.Context, m *azservicebus.ReceivedMessage) processor.Outcome {
			mu.Lock()
			active[*m.SessionID]++
			n := 0
			for _, v := range active {
				if v > 1 {
					t.Errorf("session %s has %d messages in processing", *m.SessionID, v)
				}
				n += v
			}
			most = max(most, n)
			order = append(order, m.MessageID)
			mu.Unlock()
			time.Sleep(40 * time.Second) // work longer than the session lock
			mu.Lock()
			active[*m.SessionID]--
			mu.Unlock()
			return processor.Complete()
		})
		base := runtime.NumGoroutine()
		s, err := RunSessions(context.Background(), f, p, sessionOpts(Options{MaxSessions: 2, Budget: 10 * time.Minute}))
		if err != nil {
			t.Fatal(err)
		}
		if s.Sessions != 4 || s.Completed != 12 || s.SessionRenewals < 12 || s.LocksLost != 0 {
			t.Fatalf("summary %+v; want 4 sessions, 12 completed, renewals through the work", s)
		}
		if most != 2 {
			t.Errorf("at most %d messages in processing at once; want MaxSessions = 2", most)
		}
		for _, sid := range []string{"a", "b", "c", "d"} {
			var got []string
			for _, id := range order {
				if strings.HasPrefix(id, sid+"/") {
					got = append(got, id)
				}
			}
			if want := []string{sid + "/1", sid + "/2", sid + "/3"}; !slices.Equal(got, want) {
				t.Errorf("session %s processed %v; want %v", sid, got, want)
			}
		}
		for _, r := range f.recv {
			if !r.closed || r.overlap {
				t.Errorf("session %s: closed %v, renewal during a settlement %v", r.id, r.closed, r.overlap)
			}
		}
		synctest.Wait()
		if n := runtime.NumGoroutine(); n > base {
			t.Errorf("%d goroutines after the run; %d before", n, base)
		}
	})
}

// Guard: a message whose session lock was lost is never settled, whatever its processor returned. Tested on
// sessionOutcome alone (the link's own guard, lostCtx, is left live here).
func TestSessionOutcomeAfterLockLostSettlesNothing(t *testing.T) {
	f := newFakeSessions(time.Minute)
	f.add("s", "1")
	sr := f.acceptLocked("s")
	msgs, _ := sr.ReceiveMessages(context.Background(), 1, nil)
	r := newRun(context.Background(), nil, processor.Func(func(context.Context, *azservicebus.ReceivedMessage) processor.Outcome {
		return processor.Complete()
	}), sessionOpts(Options{}).withDefaults())
	defer r.renewer.Close()
	l := newSessionLink(sr, context.Background())
	sessCtx, cancel := context.WithCancelCause(context.Background())
	l.sessCtx = sessCtx
	cancel(fmt.Errorf("%w: test", lockrenew.ErrSessionLockLost))
	if st := r.sessionOutcome(sessCtx, l, msgs[0], r.msgLog(msgs[0])); st != SettledNone {
		t.Errorf("settlement %v; want none", st)
	}
	if len(sr.settled) != 0 || r.locksLost.Load() != 1 {
		t.Errorf("settled %v, locks lost %d; want nothing settled and 1 lost", sr.settled, r.locksLost.Load())
	}
}

// Guard: once the session's lock is lost, a settlement in progress on its link is cancelled and later ones
// do not reach the receiver; both errors wrap ErrSessionLockLost (so the run counts them as lost locks).
func TestSessionLinkCancelsSettlementsOnLockLoss(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFakeSessions(time.Minute)
		f.add("s", "1", "2")
		sr := f.acceptLocked("s")
		sr.hangSettle = true
		msgs, _ := sr.ReceiveMessages(context.Background(), 1, nil)
		l := newSessionLink(sr, context.Background())
		holdCtx, lose := context.WithCancelCause(context.Background())
		stop := l.watch(holdCtx)
		defer stop()
		errc := make(chan error, 1)
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), time.Hour)
			defer cancel()
			errc <- l.CompleteMessage(ctx, msgs[0], nil)
		}()
		synctest.Wait()
		lose(fmt.Errorf("%w: test", lockrenew.ErrSessionLockLost))
		synctest.Wait()
		select {
		case err := <-errc:
			if !errors.Is(err, lockrenew.ErrSessionLockLost) || !isLockLost(err) {
				t.Errorf("settlement in progress ended with %v; want ErrSessionLockLost", err)
			}
		default:
			t.Fatal("the settlement in progress was not cancelled by the lost session lock")
		}
		sr.hangSettle = false
		ctx, cancel := context.WithTimeout(context.Background(), time.Hour)
		defer cancel()
		if err := l.AbandonMessage(ctx, msgs[0], nil); !errors.Is(err, lockrenew.ErrSessionLockLost) || len(sr.settled) != 0 {
			t.Errorf("abandon after the loss: %v, settled %v; want ErrSessionLockLost and nothing settled", err, sr.settled)
		}
	})
}

// Renewals wait for a settlement in progress on the same session (the SDK's session receiver is not safe for
// a renewal racing a settlement that re-creates its link).
func TestSessionLinkSerializesRenewalAndSettlement(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFakeSessions(time.Minute)
		f.add("s", "1")
		sr := f.acceptLocked("s")
		sr.hangSettle = true
		msgs, _ := sr.ReceiveMessages(context.Background(), 1, nil)
		l := newSessionLink(sr, context.Background())
		settleCtx, endSettle := context.WithTimeout(context.Background(), time.Hour)
		go func() { _ = l.CompleteMessage(settleCtx, msgs[0], nil) }()
		synctest.Wait()
		renewed := make(chan error, 1)
		go func() { renewed <- l.RenewSessionLock(context.Background(), nil) }()
		synctest.Wait()
		select {
		case err := <-renewed:
			t.Fatalf("renewal returned (%v) while a settlement was in progress", err)
		default:
		}
		endSettle()
		if err := <-renewed; err != nil || sr.overlap || sr.renewals != 1 {
			t.Errorf("renewal: %v, overlapped a settlement %v, renewals %d", err, sr.overlap, sr.renewals)
		}
		if !l.LockedUntil().Equal(sr.LockedUntil()) {
			t.Errorf("cached LockedUntil %v; want the renewed %v", l.LockedUntil(), sr.LockedUntil())
		}
	})
}

// A lost session lock ends the session: its message in progress is cancelled with ErrSessionLockLost and not
// settled, the receiver is closed, and the message comes back (here to the same run) in order.
func TestSessionRunLockLoss(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFakeSessions(30 * time.Second)
		f.add("s", "1", "2")
		var mu sync.Mutex
		var causes []error
		var once sync.Once
		p := processor.Func(func(ctx context.Context, m *azservicebus.ReceivedMessage) processor.Outcome {
			first := false
			once.Do(func() { first = true })
			if first {
				f.mu.Lock()
				f.renewErr = &azservicebus.Error{Code: azservicebus.CodeLockLost}
				f.mu.Unlock()
				<-ctx.Done()
				mu.Lock()
				causes = append(causes, context.Cause(ctx))
				mu.Unlock()
				f.mu.Lock()
				f.renewErr = nil
				f.mu.Unlock()
				return processor.Complete()
			}
			return processor.Complete()
		})
		s, err := RunSessions(context.Background(), f, p, sessionOpts(Options{MaxSessions: 1}))
		if err != nil {
			t.Fatal(err)
		}
		if len(causes) != 1 || !errors.Is(causes[0], ErrSessionLockLost) {
			t.Fatalf("causes %v; want one ErrSessionLockLost", causes)
		}
		if s.SessionLocksLost != 1 || s.LocksLost != 1 || s.Completed != 2 || s.Sessions != 2 {
			t.Fatalf("summary %+v; want the lost session counted, its message lost once, then both completed", s)
		}
		if first := f.recv[0]; len(first.settled) != 0 || !first.closed {
			t.Errorf("first receiver settled %v, closed %v; want nothing settled and closed", first.settled, first.closed)
		}
		if got := f.recv[1].order; !slices.Equal(got, []string{"complete:s/1", "complete:s/2"}) {
			t.Errorf("second receiver settled %v; want both in order", got)
		}
	})
}

// At the budget's end the message in progress is abandoned through its session's receiver, and the session is
// released.
func TestSessionRunBudgetAbandons(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFakeSessions(30 * time.Second)
		f.add("s", "1", "2")
		p := processor.Func(func(ctx context.Context, m *azservicebus.ReceivedMessage) processor.Outcome {
			<-ctx.Done()
			return processor.Abandon(context.Cause(ctx))
		})
		s, err := RunSessions(context.Background(), f, p, sessionOpts(Options{Budget: 20 * time.Second}))
		if err != nil {
			t.Fatal(err)
		}
		if s.Abandoned != 1 || s.Received != 1 || s.Completed != 0 || s.LocksLost != 0 {
			t.Fatalf("summary %+v; want the message in progress abandoned", s)
		}
		if r := f.recv[0]; !slices.Equal(r.order, []string{"abandon:s/1"}) || !r.closed {
			t.Errorf("receiver settled %v, closed %v", r.order, r.closed)
		}
	})
}

// A session lock lost after the budget ended the session's work — while the run waits out a stuck processor —
// is still a lost session lock: counted (sessionLocksLost, locksLost) and nothing settled under it (the
// message in progress is not abandoned; Service Bus redelivers it).
func TestSessionRunLockLostAfterBudget(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFakeSessions(4 * time.Second)
		f.add("s", "1")
		unblock := make(chan struct{})
		defer func() {
			close(unblock)
			synctest.Wait()
		}()
		p := processor.Func(func(ctx context.Context, _ *azservicebus.ReceivedMessage) processor.Outcome {
			<-ctx.Done() // the budget: from now on the session's renewals are refused
			f.mu.Lock()
			f.renewErr = &azservicebus.Error{Code: azservicebus.CodeLockLost}
			f.mu.Unlock()
			<-unblock // then ignores its context
			return processor.Complete()
		})
		s, err := RunSessions(context.Background(), f, p, sessionOpts(Options{Budget: 20 * time.Second, StuckGrace: 10 * time.Second,
			LockDuration: 4 * time.Second, MaxLockRenewal: time.Minute}))
		if err != nil {
			t.Fatal(err)
		}
		if s.Stuck != 1 || s.SessionLocksLost != 1 || s.LocksLost != 1 || s.Abandoned != 0 {
			t.Fatalf("summary %+v; want the stuck message's session lock counted lost and nothing abandoned", s)
		}
		if r := f.recv[0]; len(r.order) != 0 || !r.closed {
			t.Errorf("receiver settled %v, closed %v; want nothing settled under the lost lock", r.order, r.closed)
		}
	})
}

// Accepting fails other than for want of a session ⇒ the run fails with ErrReceive; no session available is
// not an error.
func TestSessionRunAcceptFailure(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFakeSessions(time.Minute)
		s, err := RunSessions(context.Background(), f, processor.Func(func(context.Context, *azservicebus.ReceivedMessage) processor.Outcome {
			return processor.Complete()
		}), sessionOpts(Options{}))
		if err != nil || s.Sessions != 0 {
			t.Fatalf("empty entity: %+v, %v; want no error", s, err)
		}
		f.acceptErr = &azservicebus.Error{Code: azservicebus.CodeUnauthorizedAccess}
		if _, err := RunSessions(context.Background(), f, processor.Func(func(context.Context, *azservicebus.ReceivedMessage) processor.Outcome {
			return processor.Complete()
		}), sessionOpts(Options{})); !errors.Is(err, ErrReceive) {
			t.Fatalf("accept failure: %v; want ErrReceive", err)
		}
		if !IsNoSession(&azservicebus.Error{Code: azservicebus.CodeTimeout}) || !IsNoSession(context.DeadlineExceeded) || IsNoSession(f.acceptErr) {
			t.Error("IsNoSession misclassifies")
		}
	})
}

// fakeSessionDue is a SessionDueSource over fixed sessions of sequence numbers.
type fakeSessionDue struct {
	sessions map[string][]int64

	mu       sync.Mutex
	released map[string]string    // guarded by mu: session → why
	settled  map[int64]Settlement // guarded by mu
}

func (d *fakeSessionDue) ClaimDueSessions(context.Context, int, time.Time) ([]DueSession, error) {
	var out []DueSession
	for sid, seqs := range d.sessions {
		out = append(out, DueSession{
			SessionID: sid,
			Take: func(ctx context.Context, r DueReceiver) ([]DueMessage, error) {
				msgs, err := r.ReceiveDeferredMessages(ctx, reversed(seqs), nil)
				var dm []DueMessage
				for _, m := range msgs {
					dm = append(dm, DueMessage{Message: m, Settled: func(_ context.Context, s Settlement) {
						d.mu.Lock()
						defer d.mu.Unlock()
						d.settled[*m.SequenceNumber] = s
					}})
				}
				return dm, err
			},
			Release: func(_ context.Context, why string) {
				d.mu.Lock()
				defer d.mu.Unlock()
				d.released[sid] = why
			},
		})
	}
	return out, nil
}

// TakeDue is not used by session runs.
func (d *fakeSessionDue) TakeDue(context.Context, DueReceiver, int, time.Time) ([]DueMessage, error) {
	return nil, errors.New("not a session source")
}

func reversed(s []int64) []int64 {
	out := slices.Clone(s)
	slices.Reverse(out)
	return out
}

// Due deferred messages of a session are taken through a receiver of that session and processed in sequence
// order; a session another receiver holds gives its claims back, saying why.
func TestSessionRunDueMessages(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFakeSessions(time.Minute)
		f.held["busy"] = true // locked by another receiver
		d := &fakeSessionDue{sessions: map[string][]int64{"s": {7, 9, 8}, "busy": {3}}, released: map[string]string{}, settled: map[int64]Settlement{}}
		var order []int64
		var mu sync.Mutex
		s, err := RunSessions(context.Background(), f, processor.Func(func(_ context.Context, m *azservicebus.ReceivedMessage) processor.Outcome {
			mu.Lock()
			order = append(order, *m.SequenceNumber)
			mu.Unlock()
			return processor.Complete()
		}), sessionOpts(Options{Due: d}))
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(order, []int64{7, 8, 9}) || s.Due != 3 || s.Completed != 3 {
			t.Fatalf("processed %v, summary %+v; want 7, 8, 9 in order", order, s)
		}
		if why := d.released["busy"]; !strings.Contains(why, "locked by another receiver") {
			t.Errorf("busy session released with %q", why)
		}
		for _, sn := range []int64{7, 8, 9} {
			if d.settled[sn] != SettledComplete {
				t.Errorf("due message %d reported %v", sn, d.settled[sn])
			}
		}
	})
}

// A processor that ignores its context at the budget's end is given up on after StuckGrace: its message is
// abandoned through the session's receiver, counted stuck, and the session released.
func TestSessionRunStuckProcessor(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFakeSessions(30 * time.Second)
		f.add("s", "1")
		unblock := make(chan struct{})
		p := processor.Func(func(context.Context, *azservicebus.ReceivedMessage) processor.Outcome {
			<-unblock // ignores its context
			return processor.Complete()
		})
		s, err := RunSessions(context.Background(), f, p, sessionOpts(Options{Budget: 20 * time.Second, StuckGrace: 2 * time.Second}))
		if err != nil {
			t.Fatal(err)
		}
		if s.Stuck != 1 || s.Abandoned != 1 || s.Completed != 0 {
			t.Fatalf("summary %+v; want the message abandoned and counted stuck", s)
		}
		if r := f.recv[0]; !slices.Equal(r.order, []string{"abandon:s/1"}) || !r.closed {
			t.Errorf("receiver settled %v, closed %v", r.order, r.closed)
		}
		close(unblock) // the processor returns late; its Complete is ignored
		synctest.Wait()
		if got := f.recv[0].order; len(got) != 1 {
			t.Errorf("late outcome settled the message: %v", got)
		}
	})
}

// MaxLockRenewal bounds each message of a session, as it bounds each message of a plain run, not the time the
// session is held: three messages of 6 s each in a session complete with a 10 s MaxLockRenewal, and a message
// that takes longer than that is cancelled with ErrMaxRenewal and abandoned (then completed on its next
// delivery). Red when the session's hold carries MaxLockRenewal: the session's second message is cut at 10 s.
func TestSessionRunMaxLockRenewalPerMessage(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFakeSessions(30 * time.Second)
		f.add("s", "1", "2", "3")
		f.add("t", "long")
		var mu sync.Mutex
		var causes []error
		p := processor.Func(func(ctx context.Context, m *azservicebus.ReceivedMessage) processor.Outcome {
			work := 6 * time.Second
			if string(m.Body) == "long" && m.DeliveryCount == 1 {
				work = 15 * time.Second
			}
			select {
			case <-time.After(work):
				return processor.Complete()
			case <-ctx.Done():
				mu.Lock()
				causes = append(causes, context.Cause(ctx))
				mu.Unlock()
				return processor.Abandon(context.Cause(ctx))
			}
		})
		s, err := RunSessions(context.Background(), f, p, sessionOpts(Options{MaxSessions: 1, Budget: time.Minute,
			MaxLockRenewal: 10 * time.Second}))
		if err != nil {
			t.Fatal(err)
		}
		if s.Completed != 4 || s.Abandoned != 1 || s.LocksLost != 0 {
			t.Fatalf("summary %+v; want the 6 s messages completed and only the 15 s one abandoned once", s)
		}
		if len(causes) != 1 || !errors.Is(causes[0], lockrenew.ErrMaxRenewal) {
			t.Errorf("causes %v; want one ErrMaxRenewal", causes)
		}
	})
}
