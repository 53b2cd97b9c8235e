package process_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus"

	"github.com/holdfast-dev/holdfast/emulator/broker"
	"github.com/holdfast-dev/holdfast/internal/config"
	"github.com/holdfast-dev/holdfast/internal/process"
	"github.com/holdfast-dev/holdfast/lockrenew"
	"github.com/holdfast-dev/holdfast/processor"
)

// Session runs against the in-process emulator through the real SDK.

// sessionLock is the session queues' lock: the emulator's shortest, so work lasting several locks stays short.
const sessionLock = time.Second

// startSessionEnv starts an emulator with an empty session queue whose lock lasts lock.
func startSessionEnv(t testing.TB, lock time.Duration) *env {
	t.Helper()
	e := startEnv(t, 10)
	props := broker.DefaultQueueProperties()
	props.LockDuration, props.RequiresSession = lock, true
	e.queue = fmt.Sprintf("sessions%d", queueSeq.Add(1))
	if err := e.srv.Broker().CreateQueue(e.queue, props); err != nil {
		t.Fatal(err)
	}
	return e
}

// sendSession sends the bodies to session sid, in order.
func (e *env) sendSession(t testing.TB, sid string, bodies ...string) {
	t.Helper()
	s, err := e.client.NewSender(e.queue, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(context.Background())
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, b := range bodies {
		id := sid + "/" + b
		if err := s.SendMessage(ctx, &azservicebus.Message{MessageID: &id, Body: []byte(b), SessionID: &sid}, nil); err != nil {
			t.Fatal(err)
		}
	}
}

// sessionService returns a Service for e's session queue, with the entity's lock duration set so that the
// renewer judges expiry on the service's clock.
func (e *env) sessionService(t testing.TB, lock time.Duration, settings map[string]string, p processor.Processor) *process.Service {
	t.Helper()
	m := map[string]string{config.SettingServiceBus: e.srv.ConnectionString(), config.SettingEntity: e.queue,
		config.SettingRunBudget: "2m", config.SettingRequiresSession: "true", config.SettingLockDuration: lock.String()}
	for k, v := range settings {
		m[k] = v
	}
	cfg, err := config.Load(func(k string) string { return m[k] })
	if err != nil {
		t.Fatal(err)
	}
	svc, err := process.NewService(&process.ServiceOptions{Config: cfg, Processor: p, NoMessageWait: time.Second,
		SessionIdleWait: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { svc.Close(context.Background()) })
	return svc
}

// sessionRecorder records, per session, the bodies processed and completed in order, and checks that no two
// messages of one session are processed at once.
type sessionRecorder struct {
	mu        sync.Mutex
	active    map[string]bool     // guarded by mu: a message of the session is in its processor
	order     map[string][]string // guarded by mu: bodies in the order their processing started
	overlap   []string            // guarded by mu: sessions seen with two messages in processing at once
	maxActive int                 // guarded by mu: most sessions processing at once
}

func (r *sessionRecorder) start(m *azservicebus.ReceivedMessage) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.active == nil {
		r.active, r.order = map[string]bool{}, map[string][]string{}
	}
	sid := *m.SessionID
	if r.active[sid] {
		r.overlap = append(r.overlap, sid)
	}
	r.active[sid] = true
	r.order[sid] = append(r.order[sid], string(m.Body))
	n := 0
	for _, a := range r.active {
		if a {
			n++
		}
	}
	r.maxActive = max(r.maxActive, n)
}

func (r *sessionRecorder) end(m *azservicebus.ReceivedMessage) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.active[*m.SessionID] = false
}

// Three sessions of five messages each, every message's work lasting three session locks: each session's
// messages are processed one at a time and in order, sessions run side by side, the session locks are
// renewed throughout (session renewals counted; the messages have no lock of their own, so no message lock is
// renewed) and nothing is lost or redelivered.
func TestEmulatorSessionsInOrderAcrossSessions(t *testing.T) {
	e := startSessionEnv(t, sessionLock)
	bodies := []string{"1", "2", "3", "4", "5"}
	sessions := []string{"order-a", "order-b", "order-c"}
	for _, sid := range sessions {
		e.sendSession(t, sid, bodies...)
	}
	rec := &sessionRecorder{}
	work := 3 * sessionLock
	p := processor.Func(func(ctx context.Context, m *azservicebus.ReceivedMessage) processor.Outcome {
		rec.start(m)
		defer rec.end(m)
		if m.DeliveryCount != 1 {
			return processor.Abandon(fmt.Errorf("redelivered %s (delivery %d)", m.MessageID, m.DeliveryCount))
		}
		select {
		case <-time.After(work):
			return processor.Complete()
		case <-ctx.Done():
			return processor.Abandon(context.Cause(ctx))
		}
	})
	s, err := e.sessionService(t, sessionLock, map[string]string{config.SettingMaxSessions: "3"}, p).Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("summary %s", s)
	if s.Sessions != 3 || s.Received != 15 || s.Completed != 15 || s.Abandoned != 0 || s.LocksLost != 0 || s.SessionLocksLost != 0 {
		t.Fatalf("summary %+v; want 3 sessions, 15 messages completed, nothing abandoned or lost", s)
	}
	// Each session is held about 5 × work = 15 locks and renewed twice per lock (at half of a 1 s lock).
	if min := uint64(len(sessions)) * 5 * uint64(work/sessionLock); s.SessionRenewals < min || s.Renewals != s.SessionRenewals {
		t.Fatalf("summary %+v; want at least %d session renewals and no message lock renewal", s, min)
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	for _, sid := range sessions {
		if !slices.Equal(rec.order[sid], bodies) {
			t.Errorf("session %s processed %v; want %v in order", sid, rec.order[sid], bodies)
		}
	}
	if len(rec.overlap) > 0 || rec.maxActive != 3 {
		t.Errorf("sessions processing two messages at once: %v; most sessions at once %d, want 3", rec.overlap, rec.maxActive)
	}
	entity, err := e.srv.Broker().Entity(e.queue)
	if err != nil {
		t.Fatal(err)
	}
	if st := entity.Stats(); st.Active != 0 || st.Locked != 0 || st.Counters.Completed != 15 {
		t.Errorf("after the run: %+v; want 15 completed, nothing left", st)
	}
}

// A session lock lost in the middle of a session (the emulator ends it on demand): the message in progress is
// cancelled with ErrSessionLockLost and not settled — its processor's Complete is ignored — and the session's
// messages come back in order (the lost one first, its delivery count raised) to the next accept, which this
// same run makes; then all five are completed in order.
func TestEmulatorSessionLockLossRedeliversInOrder(t *testing.T) {
	e := startSessionEnv(t, 2*time.Second)
	bodies := []string{"1", "2", "3", "4", "5"}
	e.sendSession(t, "order-x", bodies...)
	started := make(chan struct{})
	var (
		mu        sync.Mutex
		seen      []string // body/delivery count, in processing order
		completed []string // bodies whose processor returned Complete on a live context
		cause     error    // the context cause of the first delivery
	)
	var first atomic.Bool
	p := processor.Func(func(ctx context.Context, m *azservicebus.ReceivedMessage) processor.Outcome {
		mu.Lock()
		seen = append(seen, string(m.Body)+"/"+strconv.Itoa(int(m.DeliveryCount)))
		mu.Unlock()
		if string(m.Body) == "1" && first.CompareAndSwap(false, true) {
			close(started)
			<-ctx.Done()
			mu.Lock()
			cause = context.Cause(ctx)
			mu.Unlock()
			return processor.Complete() // too late: the run must not complete it
		}
		mu.Lock()
		completed = append(completed, string(m.Body))
		mu.Unlock()
		return processor.Complete()
	})
	svc := e.sessionService(t, 2*time.Second, map[string]string{config.SettingMaxSessions: "1"}, p)
	done := make(chan struct{})
	var s process.Summary
	var runErr error
	go func() {
		defer close(done)
		s, runErr = svc.Run(context.Background())
	}()
	<-started
	if err := e.srv.Faults().ExpireSessionLock(e.queue, "order-x"); err != nil {
		t.Fatal(err)
	}
	<-done
	if runErr != nil {
		t.Fatal(runErr)
	}
	mu.Lock()
	defer mu.Unlock()
	if !errors.Is(cause, process.ErrSessionLockLost) || !errors.Is(cause, lockrenew.ErrLockLost) {
		t.Errorf("first delivery's context cause %v; want ErrSessionLockLost (wrapping ErrLockLost)", cause)
	}
	if want := []string{"1/1", "1/2", "2/1", "3/1", "4/1", "5/1"}; !slices.Equal(seen, want) {
		t.Errorf("processed %v; want %v (the lost message redelivered first, then the rest in order)", seen, want)
	}
	if !slices.Equal(completed, bodies) {
		t.Errorf("completed %v; want %v", completed, bodies)
	}
	if s.Sessions != 2 || s.SessionLocksLost != 1 || s.LocksLost != 1 || s.Completed != 5 || s.Received != 6 || s.Abandoned != 0 {
		t.Errorf("summary %+v; want 2 sessions, 1 session lock lost with its 1 message, 5 completed of 6 received", s)
	}
	entity, err := e.srv.Broker().Entity(e.queue)
	if err != nil {
		t.Fatal(err)
	}
	if st := entity.Stats(); st.Active != 0 || st.Locked != 0 || st.Counters.Completed != 5 {
		t.Errorf("after the run: %+v; want the 5 messages completed once each", st)
	}
}

// An empty session entity: the run ends after NoMessageWait with nothing accepted, and its summary says so.
func TestEmulatorSessionsEmptyEntity(t *testing.T) {
	e := startSessionEnv(t, sessionLock)
	s, err := e.sessionService(t, sessionLock, nil, processor.Func(func(context.Context, *azservicebus.ReceivedMessage) processor.Outcome {
		return processor.Complete()
	})).Run(context.Background())
	if err != nil || s.Sessions != 0 || s.Received != 0 {
		t.Fatalf("summary %+v, %v; want an empty run", s, err)
	}
	if !strings.Contains(s.String(), "received=0") {
		t.Errorf("summary line %q", s.String())
	}
}

// A connection dropped between two runs of one Service (as an idle connection the service closes): the SDK
// does not retry an accept, and the first one on the dead connection fails (CodeConnectionLost) after
// recovering the connection. The next run must still serve the session, not fail.
func TestEmulatorSessionRunAfterDroppedConnection(t *testing.T) {
	e := startSessionEnv(t, sessionLock)
	var completed atomic.Int64
	svc := e.sessionService(t, sessionLock, map[string]string{config.SettingMaxSessions: "1"}, processor.Func(func(context.Context, *azservicebus.ReceivedMessage) processor.Outcome {
		completed.Add(1)
		return processor.Complete()
	}))
	e.sendSession(t, "order-a", "1")
	if s, err := svc.Run(context.Background()); err != nil || s.Completed != 1 {
		t.Fatalf("first run: %+v, %v; want its message completed", s, err)
	}
	if n := e.srv.Faults().DropConnections(); n == 0 {
		t.Fatal("no connection to drop")
	}
	e.sendSession(t, "order-b", "1")
	s, err := svc.Run(context.Background())
	if err != nil || s.Sessions != 1 || s.Completed != 1 {
		t.Fatalf("run after the dropped connection: %+v, %v; want session order-b accepted and its message completed", s, err)
	}
	if completed.Load() != 2 {
		t.Errorf("processor completed %d messages, want 2", completed.Load())
	}
}
