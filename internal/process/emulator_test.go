package process_test

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus"

	"github.com/holdfast-dev/holdfast/emulator"
	"github.com/holdfast-dev/holdfast/emulator/broker"
	"github.com/holdfast-dev/holdfast/internal/config"
	"github.com/holdfast-dev/holdfast/internal/process"
	"github.com/holdfast-dev/holdfast/lockrenew"
	"github.com/holdfast-dev/holdfast/processor"
)

// Integration tests: the run against the in-process emulator with the real azservicebus SDK.

const lockDuration = 2 * time.Second

type env struct {
	srv    *emulator.Server
	client *azservicebus.Client
	queue  string
}

var queueSeq atomic.Int64

func startEnv(t testing.TB, maxDelivery int) *env {
	t.Helper()
	srv, err := emulator.Start(&emulator.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := srv.Close(); err != nil {
			t.Errorf("emulator Close: %v", err)
		}
	})
	props := broker.DefaultQueueProperties()
	props.LockDuration, props.MaxDeliveryCount = lockDuration, maxDelivery
	q := fmt.Sprintf("work%d", queueSeq.Add(1))
	if err := srv.Broker().CreateQueue(q, props); err != nil {
		t.Fatal(err)
	}
	// The retries the handler's clients use (config HOLDFAST_LOCK_DURATION): with the SDK's defaults one slow
	// renewal on a loaded machine waits about 4 s to retry, longer than a 2 s lock.
	client, err := azservicebus.NewClientFromConnectionString(srv.ConnectionString(),
		&azservicebus.ClientOptions{RetryOptions: lockrenew.RetryOptions(lockDuration)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close(context.Background()) })
	return &env{srv: srv, client: client, queue: q}
}

func (e *env) send(t testing.TB, bodies ...string) {
	t.Helper()
	s, err := e.client.NewSender(e.queue, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(context.Background())
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	batch, err := s.NewMessageBatch(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i, b := range bodies {
		id := fmt.Sprintf("m%d", i)
		if err := batch.AddMessage(&azservicebus.Message{MessageID: &id, Body: []byte(b)}, nil); err != nil {
			if err := s.SendMessageBatch(ctx, batch, nil); err != nil {
				t.Fatal(err)
			}
			if batch, err = s.NewMessageBatch(ctx, nil); err != nil {
				t.Fatal(err)
			}
			if err := batch.AddMessage(&azservicebus.Message{MessageID: &id, Body: []byte(b)}, nil); err != nil {
				t.Fatal(err)
			}
		}
	}
	if batch.NumMessages() > 0 {
		if err := s.SendMessageBatch(ctx, batch, nil); err != nil {
			t.Fatal(err)
		}
	}
}

func (e *env) receiver(t testing.TB) *azservicebus.Receiver {
	t.Helper()
	r, err := e.client.NewReceiverForQueue(e.queue, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close(context.Background()) })
	return r
}

// drain receives (and completes) what becomes available within wait.
func (e *env) drain(t *testing.T, wait time.Duration) []*azservicebus.ReceivedMessage {
	t.Helper()
	r := e.receiver(t)
	var out []*azservicebus.ReceivedMessage
	deadline := time.Now().Add(wait)
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithDeadline(context.Background(), deadline)
		msgs, err := r.ReceiveMessages(ctx, 100, nil)
		cancel()
		if err != nil && !errors.Is(err, context.DeadlineExceeded) {
			t.Fatal(err)
		}
		for _, m := range msgs {
			if err := r.CompleteMessage(context.Background(), m, nil); err != nil {
				t.Fatal(err)
			}
		}
		out = append(out, msgs...)
	}
	return out
}

// working sleeps d honouring ctx, records delivery counts and reports success.
type working struct {
	d          time.Duration
	mu         sync.Mutex
	deliveries map[string]uint32 // guarded by mu
}

func (w *working) Process(ctx context.Context, m *azservicebus.ReceivedMessage) processor.Outcome {
	w.mu.Lock()
	if w.deliveries == nil {
		w.deliveries = map[string]uint32{}
	}
	if _, dup := w.deliveries[m.MessageID]; dup {
		w.mu.Unlock()
		return processor.Abandon(errors.New("delivered twice in one run"))
	}
	w.deliveries[m.MessageID] = m.DeliveryCount
	w.mu.Unlock()
	t := time.NewTimer(w.d)
	defer t.Stop()
	select {
	case <-t.C:
		return processor.Complete()
	case <-ctx.Done():
		return processor.Abandon(context.Cause(ctx))
	}
}

func TestEmulatorWorkSixLockDurationsCompletes(t *testing.T) {
	e := startEnv(t, 10)
	e.send(t, "x")
	w := &working{d: 6 * lockDuration}
	s, err := process.Run(context.Background(), e.receiver(t), w, &process.Options{Budget: time.Minute, NoMessageWait: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if s.Received != 1 || s.Completed != 1 || s.LocksLost != 0 || s.Renewals < 5 {
		t.Fatalf("summary %+v", s)
	}
	if dc := w.deliveries["m0"]; dc != 1 {
		t.Fatalf("delivery count %d, want 1", dc)
	}
	if again := e.drain(t, lockDuration+time.Second); len(again) != 0 {
		t.Fatalf("completed message redelivered: %d messages", len(again))
	}
}

func TestEmulatorManyLongMessagesNoLockLost(t *testing.T) {
	e := startEnv(t, 10)
	bodies := make([]string, 200)
	for i := range bodies {
		bodies[i] = "x"
	}
	e.send(t, bodies...)
	w := &working{d: 6 * lockDuration}
	s, err := process.Run(context.Background(), e.receiver(t), w, &process.Options{Budget: 3 * time.Minute, Concurrency: 50,
		NoMessageWait: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if s.Received != 200 || s.Completed != 200 || s.LocksLost != 0 || s.Abandoned != 0 {
		t.Fatalf("summary %+v", s)
	}
	for id, dc := range w.deliveries {
		if dc != 1 {
			t.Errorf("%s delivery count %d", id, dc)
		}
	}
	if again := e.drain(t, lockDuration+time.Second); len(again) != 0 {
		t.Fatalf("%d messages redelivered", len(again))
	}
}

// lossyReceiver makes lock renewal fail with CodeLockLost for chosen message IDs.
type lossyReceiver struct {
	*azservicebus.Receiver
	lose map[string]bool // read-only after construction
}

func (l *lossyReceiver) RenewMessageLock(ctx context.Context, m *azservicebus.ReceivedMessage, o *azservicebus.RenewMessageLockOptions) error {
	if l.lose[m.MessageID] {
		return &azservicebus.Error{Code: azservicebus.CodeLockLost}
	}
	return l.Receiver.RenewMessageLock(ctx, m, o)
}

// stubborn ignores nothing: it waits for ctx, records the cause and then claims success, which the run must
// not believe.
type stubborn struct {
	mu    sync.Mutex
	cause error // guarded by mu
}

func (s *stubborn) Process(ctx context.Context, _ *azservicebus.ReceivedMessage) processor.Outcome {
	<-ctx.Done()
	s.mu.Lock()
	s.cause = context.Cause(ctx)
	s.mu.Unlock()
	return processor.Complete()
}

func TestEmulatorLockLostIsNotCompletedAndIsRedelivered(t *testing.T) {
	e := startEnv(t, 10)
	e.send(t, "x")
	rcv := &lossyReceiver{Receiver: e.receiver(t), lose: map[string]bool{"m0": true}}
	p := &stubborn{}
	s, err := process.Run(context.Background(), rcv, p, &process.Options{Budget: time.Minute, NoMessageWait: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if !errors.Is(p.cause, lockrenew.ErrLockLost) {
		t.Fatalf("processor saw cause %v", p.cause)
	}
	if s.Completed != 0 || s.Abandoned != 0 || s.LocksLost != 1 {
		t.Fatalf("summary %+v", s)
	}
	again := e.drain(t, 2*lockDuration+time.Second)
	if len(again) != 1 || again[0].DeliveryCount != 2 {
		t.Fatalf("redelivered %d messages (want 1 with delivery count 2)", len(again))
	}
}

func TestEmulatorLockStolenByOtherReceiver(t *testing.T) {
	e := startEnv(t, 10)
	e.send(t, "x")
	other := e.receiver(t)
	p := processor.Func(func(ctx context.Context, m *azservicebus.ReceivedMessage) processor.Outcome {
		// Settle the message elsewhere with its lock token: the next renewal finds the lock gone.
		if err := other.CompleteMessage(ctx, &azservicebus.ReceivedMessage{LockToken: m.LockToken}, nil); err != nil {
			return processor.Abandon(err)
		}
		<-ctx.Done()
		return processor.Complete()
	})
	s, err := process.Run(context.Background(), e.receiver(t), p, &process.Options{Budget: time.Minute, NoMessageWait: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if s.Completed != 0 || s.LocksLost != 1 {
		t.Fatalf("summary %+v", s)
	}
}

func TestEmulatorBudgetAbandonsBeforeReturning(t *testing.T) {
	e := startEnv(t, 10)
	e.send(t, "a", "b", "c")
	w := &working{d: time.Minute}
	start := time.Now()
	s, err := process.Run(context.Background(), e.receiver(t), w, &process.Options{Budget: 3 * time.Second,
		ReceiveMargin: time.Second, NoMessageWait: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if el := time.Since(start); el < 3*time.Second || el > 10*time.Second {
		t.Fatalf("run took %v for a 3s budget", el)
	}
	if s.Received != 3 || s.Abandoned != 3 || s.Completed != 0 {
		t.Fatalf("summary %+v", s)
	}
	// Abandoned, not left locked: available again at once, well before a lock could expire.
	again := e.drain(t, lockDuration/2)
	if len(again) != 3 {
		t.Fatalf("received %d messages right after the run, want 3", len(again))
	}
	for _, m := range again {
		if m.DeliveryCount != 2 {
			t.Errorf("%s delivery count %d, want 2", m.MessageID, m.DeliveryCount)
		}
	}
}

func TestEmulatorServiceRunLeavesNoGoroutines(t *testing.T) {
	e := startEnv(t, 10)
	e.send(t, `{"workSeconds":0.1}`, `{"outcome":"deadletter"}`, `{"outcome":"fail"}`)
	base := runtime.NumGoroutine()

	cfg, err := config.Load(func(k string) string {
		return map[string]string{config.SettingServiceBus: e.srv.ConnectionString(), config.SettingEntity: e.queue,
			config.SettingRunBudget: "30s", config.SettingConcurrency: "4"}[k]
	})
	if err != nil {
		t.Fatal(err)
	}
	// The work outlasts the receive loop (it stops a second after the last message): a Run that did not wait
	// for its workers would return while they run.
	var inflight atomic.Int64
	w := &working{d: 1500 * time.Millisecond}
	p := processor.Func(func(ctx context.Context, m *azservicebus.ReceivedMessage) processor.Outcome {
		inflight.Add(1)
		defer inflight.Add(-1)
		out := w.Process(ctx, m)
		if ctx.Err() != nil {
			time.Sleep(300 * time.Millisecond) // winding down after cancellation; not synchronisation
		}
		return out
	})
	svc, err := process.NewService(&process.ServiceOptions{Config: cfg, Processor: p, NoMessageWait: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	s, err := svc.Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if n := inflight.Load(); n != 0 {
		t.Fatalf("Run returned with %d processor calls still running", n)
	}
	if s.Received != 3 || s.Completed != 3 {
		t.Fatalf("summary %+v", s)
	}
	if err := svc.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Run(context.Background()); !errors.Is(err, process.ErrClosed) {
		t.Fatalf("Run after Close: %v", err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > base {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Fatalf("goroutines %d > baseline %d\n%s", runtime.NumGoroutine(), base, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(10 * time.Millisecond) // polling a condition
	}
}

// newService returns a Service for e's queue with the given budget and processor.
func (e *env) newService(t testing.TB, budget string, p processor.Processor) *process.Service {
	t.Helper()
	cfg, err := config.Load(func(k string) string {
		return map[string]string{config.SettingServiceBus: e.srv.ConnectionString(), config.SettingEntity: e.queue,
			config.SettingRunBudget: budget}[k]
	})
	if err != nil {
		t.Fatal(err)
	}
	svc, err := process.NewService(&process.ServiceOptions{Config: cfg, Processor: p, NoMessageWait: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { svc.Close(context.Background()) })
	return svc
}

func TestEmulatorServiceRenewsAndSettlesByToken(t *testing.T) {
	e := startEnv(t, 10)
	e.send(t, "a", "b")
	w := &working{d: 3 * lockDuration}
	s, err := e.newService(t, "1m", w).Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if s.Completed != 2 || s.LocksLost != 0 || s.Renewals < 4 {
		t.Fatalf("summary %+v", s)
	}
	if again := e.drain(t, lockDuration+time.Second); len(again) != 0 {
		t.Fatalf("%d messages redelivered", len(again))
	}
}

// While the receive link is open the Service settles on it (a disposition), not by lock token over the
// management link: a request per message would cost the service and the client several times as much.
func TestEmulatorServiceSettlesOnTheReceiveLink(t *testing.T) {
	e := startEnv(t, 10)
	bodies := make([]string, 50)
	for i := range bodies {
		bodies[i] = "x"
	}
	e.send(t, bodies...)
	svc := e.newService(t, "1m", processor.Func(func(context.Context, *azservicebus.ReceivedMessage) processor.Outcome {
		return processor.Complete()
	}))
	before := e.srv.Broker().Stats().ManagementCalls
	s, err := svc.Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	calls := e.srv.Broker().Stats().ManagementCalls - before
	if s.Completed != 50 || calls >= 50 {
		t.Fatalf("summary %+v; %d management requests for 50 completions, want fewer than 50 (token requests only)", s, calls)
	}
	if again := e.drain(t, lockDuration+time.Second); len(again) != 0 {
		t.Fatalf("%d messages redelivered", len(again))
	}
}

func TestEmulatorServiceBudgetLeavesNothingLocked(t *testing.T) {
	e := startEnv(t, 10)
	e.send(t, "a", "b", "c")
	entity, err := e.srv.Broker().Entity(e.queue)
	if err != nil {
		t.Fatal(err)
	}
	s, err := e.newService(t, "3s", &working{d: time.Minute}).Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if s.Received != 3 || s.Abandoned != 3 {
		t.Fatalf("summary %+v", s)
	}
	// The run's receivers are closed; nothing may stay locked, nor bounce between the queue and a link.
	if st := entity.Stats(); st.Locked != 0 || st.Active != 3 || st.Counters.Released != 0 {
		t.Fatalf("after the run: %+v", st)
	}
}

func TestEmulatorServiceTopicSubscription(t *testing.T) {
	e := startEnv(t, 10)
	if err := e.srv.Broker().CreateTopic("events", broker.DefaultTopicProperties()); err != nil {
		t.Fatal(err)
	}
	sp := broker.DefaultSubscriptionProperties()
	sp.LockDuration = lockDuration
	if err := e.srv.Broker().CreateSubscription("events", "billing", sp, nil); err != nil {
		t.Fatal(err)
	}
	e.queue = "events" // the sender's entity
	e.send(t, "a", "b")
	cfg, err := config.Load(func(k string) string {
		return map[string]string{config.SettingServiceBus: e.srv.ConnectionString(),
			config.SettingEntity: "events/Subscriptions/billing", config.SettingRunBudget: "1m"}[k]
	})
	if err != nil {
		t.Fatal(err)
	}
	svc, err := process.NewService(&process.ServiceOptions{Config: cfg, Processor: &working{d: 2 * lockDuration}, NoMessageWait: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer svc.Close(context.Background())
	s, err := svc.Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if s.Received != 2 || s.Completed != 2 || s.LocksLost != 0 || s.Renewals < 2 {
		t.Fatalf("summary %+v", s)
	}
}
