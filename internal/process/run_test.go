package process

import (
	"context"
	"errors"
	"maps"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus"

	"github.com/holdfast-dev/holdfast/lockrenew"
	"github.com/holdfast-dev/holdfast/processor"
)

// scripted is a processor driven by the message body:
//
//	complete | abandon | deadletter | defer | panic
//	zero | errcomplete | errdeadletter | errdefer | kind42 — invalid or error-carrying outcomes
//	block    — wait for ctx, then (wrongly) report success
//	work:<d> — work d (honouring ctx), then complete
type scripted struct {
	mu     sync.Mutex
	causes map[string]error // guarded by mu; message ID → context cause seen by "block"
}

func (s *scripted) Process(ctx context.Context, msg *azservicebus.ReceivedMessage) processor.Outcome {
	body := string(msg.Body)
	switch {
	case body == "complete":
		return processor.Complete()
	case body == "abandon":
		return processor.Abandon(errors.New("transient"))
	case body == "deadletter":
		return processor.DeadLetter("Bad", "bad body")
	case body == "defer":
		return processor.Defer(time.Now().Add(time.Hour), "later")
	case body == "panic":
		panic("boom")
	case body == "zero":
		return processor.Outcome{}
	case body == "errcomplete":
		return processor.Outcome{Kind: processor.KindComplete, Err: errors.New("failed, but said complete")}
	case body == "errdeadletter":
		return processor.Outcome{Kind: processor.KindDeadLetter, Reason: "r", Err: errors.New("failed")}
	case body == "errdefer":
		return processor.Outcome{Kind: processor.KindDefer, NotBefore: time.Now().Add(time.Hour), Err: errors.New("failed")}
	case body == "zeroerr":
		return processor.Outcome{Err: errors.New("failed")}
	case body == "kind42":
		return processor.Outcome{Kind: 42}
	case body == "block":
		<-ctx.Done()
		s.mu.Lock()
		if s.causes == nil {
			s.causes = map[string]error{}
		}
		s.causes[msg.MessageID] = context.Cause(ctx)
		s.mu.Unlock()
		return processor.Complete()
	case strings.HasPrefix(body, "work:"):
		d, _ := time.ParseDuration(strings.TrimPrefix(body, "work:"))
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-t.C:
			return processor.Complete()
		case <-ctx.Done():
			return processor.Abandon(context.Cause(ctx))
		}
	}
	return processor.Abandon(errors.New("unknown script " + body))
}

func (s *scripted) cause(id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.causes[id]
}

// fast are options that make empty-queue runs end quickly.
func fast(o *Options) *Options {
	if o.NoMessageWait == 0 {
		o.NoMessageWait = 50 * time.Millisecond
	}
	return o
}

func TestOutcomeToSettlement(t *testing.T) {
	tests := []struct {
		name     string
		body     string
		deferrer *fakeDeferrer
		want     string // settlement, "" for none
		summary  Summary
	}{
		{"complete", "complete", nil, "complete", Summary{Received: 1, Completed: 1}},
		{"abandon", "abandon", nil, "abandon", Summary{Received: 1, Abandoned: 1}},
		{"deadletter", "deadletter", nil, "deadletter", Summary{Received: 1, DeadLettered: 1}},
		{"defer", "defer", &fakeDeferrer{}, "defer", Summary{Received: 1, Deferred: 1}},
		{"defer ledger fails", "defer", &fakeDeferrer{err: errors.New("table down")}, "abandon", Summary{Received: 1, Abandoned: 1}},
		{"defer without ledger", "defer", nil, "abandon", Summary{Received: 1, Abandoned: 1}},
		{"panic", "panic", nil, "abandon", Summary{Received: 1, Abandoned: 1}},
		// Invariant 1: a zero, unknown or error-carrying outcome never completes (nor dead-letters or defers).
		{"zero outcome", "zero", nil, "abandon", Summary{Received: 1, Abandoned: 1}},
		{"zero outcome with Err", "zeroerr", nil, "abandon", Summary{Received: 1, Abandoned: 1}},
		{"complete with Err", "errcomplete", nil, "abandon", Summary{Received: 1, Abandoned: 1}},
		{"deadletter with Err", "errdeadletter", nil, "abandon", Summary{Received: 1, Abandoned: 1}},
		{"defer with Err", "errdefer", &fakeDeferrer{}, "abandon", Summary{Received: 1, Abandoned: 1}},
		{"unknown kind", "kind42", nil, "abandon", Summary{Received: 1, Abandoned: 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFake(time.Minute, tt.body)
			o := fast(&Options{})
			if tt.deferrer != nil {
				o.Deferrer = tt.deferrer
			}
			s, err := Run(context.Background(), f, &scripted{}, o)
			if err != nil {
				t.Fatal(err)
			}
			if got := f.settledCopy()["m0"]; got != tt.want {
				t.Fatalf("settled %q, want %q", got, tt.want)
			}
			s.DurationMs = 0
			if s != tt.summary {
				t.Fatalf("summary %+v, want %+v", s, tt.summary)
			}
			if tt.want == "deadletter" && f.dlReason["m0"] != "Bad|bad body" {
				t.Errorf("dead-letter reason %q", f.dlReason["m0"])
			}
			if tt.want == "defer" && tt.deferrer.reasons["m0"] != "later" {
				t.Errorf("defer reason %q", tt.deferrer.reasons["m0"])
			}
		})
	}
}

func TestMixedBatch(t *testing.T) {
	bodies := []string{"complete", "abandon", "deadletter", "defer", "complete", "work:30ms"}
	f := newFake(time.Minute, bodies...)
	s, err := Run(context.Background(), f, &scripted{}, fast(&Options{Deferrer: &fakeDeferrer{}, Concurrency: 3, BatchSize: 2}))
	if err != nil {
		t.Fatal(err)
	}
	want := Summary{Received: 6, Completed: 3, Abandoned: 1, DeadLettered: 1, Deferred: 1, DurationMs: s.DurationMs}
	if s != want {
		t.Fatalf("summary %+v, want %+v", s, want)
	}
	if len(f.settledCopy()) != 6 {
		t.Fatalf("settled %v", f.settledCopy())
	}
}

func TestEmptyQueueEndsAfterNoMessageWait(t *testing.T) {
	f := newFake(time.Minute)
	start := time.Now()
	s, err := Run(context.Background(), f, &scripted{}, &Options{NoMessageWait: 100 * time.Millisecond, Budget: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	if el := time.Since(start); el < 100*time.Millisecond || el > 5*time.Second {
		t.Fatalf("empty run took %v", el)
	}
	if s.Received != 0 {
		t.Fatalf("summary %+v", s)
	}
}

func TestReceivesOnlyForFreeWorkers(t *testing.T) {
	bodies := make([]string, 20)
	for i := range bodies {
		bodies[i] = "work:20ms"
	}
	f := newFake(time.Minute, bodies...)
	var cur, peak atomic.Int64
	p := processor.Func(func(ctx context.Context, m *azservicebus.ReceivedMessage) processor.Outcome {
		n := cur.Add(1)
		defer cur.Add(-1)
		for {
			old := peak.Load()
			if n <= old || peak.CompareAndSwap(old, n) {
				break
			}
		}
		return (&scripted{}).Process(ctx, m)
	})
	s, err := Run(context.Background(), f, p, fast(&Options{Concurrency: 3, BatchSize: 10}))
	if err != nil {
		t.Fatal(err)
	}
	if s.Completed != 20 {
		t.Fatalf("summary %+v", s)
	}
	if peak.Load() > 3 {
		t.Errorf("peak concurrency %d > 3", peak.Load())
	}
	for _, n := range f.asked {
		if n < 1 || n > 3 {
			t.Errorf("asked for %d messages with 3 workers: %v", n, f.asked)
		}
	}
}

// With short work, the receive loop lingers for the other workers to free up and asks for them together,
// instead of one message per receive round trip.
func TestLingerGathersFreeWorkers(t *testing.T) {
	bodies := make([]string, 40)
	for i := range bodies {
		bodies[i] = "complete"
	}
	f := newFake(time.Minute, bodies...)
	s, err := Run(context.Background(), f, &scripted{}, fast(&Options{Concurrency: 4, BatchSize: 10, ReceiveLinger: time.Second}))
	if err != nil || s.Completed != 40 {
		t.Fatalf("summary %+v, error %v", s, err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	// Every receive that found messages asked for all 4 workers (the final, empty one may ask for fewer).
	for i, n := range f.asked[:10] {
		if n != 4 {
			t.Fatalf("receive %d asked for %d messages, want 4: %v", i, n, f.asked)
		}
	}
}

func TestBudgetAbandonsUnfinished(t *testing.T) {
	f := newFake(time.Minute, "block", "block", "complete")
	sp := &scripted{}
	start := time.Now()
	// MaxLockRenewal defaults to the budget; make it longer so that only the budget can cancel.
	s, err := Run(context.Background(), f, sp, &Options{Budget: 400 * time.Millisecond, ReceiveMargin: 100 * time.Millisecond,
		NoMessageWait: time.Minute, MaxLockRenewal: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	if el := time.Since(start); el < 400*time.Millisecond || el > 5*time.Second {
		t.Fatalf("run took %v, want about the 400ms budget", el)
	}
	got := f.settledCopy()
	if got["m0"] != "abandon" || got["m1"] != "abandon" || got["m2"] != "complete" {
		t.Fatalf("settled %v", got)
	}
	if !errors.Is(sp.cause("m0"), ErrBudgetExhausted) {
		t.Errorf("processor saw cause %v", sp.cause("m0"))
	}
	if s.Abandoned != 2 || s.Completed != 1 || s.Received != 3 {
		t.Fatalf("summary %+v", s)
	}
}

func TestLockLostIsNeverSettled(t *testing.T) {
	f := newFake(time.Second, "block", "work:2500ms")
	f.loseLock("m0")
	sp := &scripted{}
	s, err := Run(context.Background(), f, sp, fast(&Options{Budget: time.Minute}))
	if err != nil {
		t.Fatal(err)
	}
	got := f.settledCopy()
	// Not even attempted: the fake refuses to settle a lost message anyway, so only the attempt count proves
	// that the run held back.
	f.mu.Lock()
	attempts := f.attempts["m0"]
	f.mu.Unlock()
	if _, ok := got["m0"]; ok || attempts != 0 {
		t.Fatalf("lost message settled (%v) or settlement attempted (%d calls)", got, attempts)
	}
	if got["m1"] != "complete" {
		t.Fatalf("m1 settled %q, want complete", got["m1"])
	}
	if !errors.Is(sp.cause("m0"), lockrenew.ErrLockLost) {
		t.Errorf("processor saw cause %v", sp.cause("m0"))
	}
	if s.LocksLost != 1 || s.Completed != 1 || s.Renewals < 1 {
		t.Fatalf("summary %+v", s)
	}
}

func TestSettlementFailures(t *testing.T) {
	tests := []struct {
		name    string
		failOp  map[string]error
		lost    bool
		want    string
		summary Summary
	}{
		{"complete lock lost", nil, true, "", Summary{Received: 1, LocksLost: 1}},
		{"complete fails", map[string]error{"complete": errors.New("io")}, false, "abandon", Summary{Received: 1, Abandoned: 1}},
		{"complete and abandon fail", map[string]error{"complete": errors.New("io"), "abandon": errors.New("io")}, false, "", Summary{Received: 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFake(time.Minute, "complete")
			f.failOp = tt.failOp
			// Lose the lock only at settlement: the renewer never runs within the one-minute lock.
			p := processor.Func(func(context.Context, *azservicebus.ReceivedMessage) processor.Outcome {
				if tt.lost {
					f.loseLock("m0")
				}
				return processor.Complete()
			})
			s, err := Run(context.Background(), f, p, fast(&Options{}))
			if err != nil {
				t.Fatal(err)
			}
			if got := f.settledCopy()["m0"]; got != tt.want {
				t.Fatalf("settled %q, want %q", got, tt.want)
			}
			s.DurationMs = 0
			if s != tt.summary {
				t.Fatalf("summary %+v, want %+v", s, tt.summary)
			}
		})
	}
}

func TestReceiveDoneBeforeWorkersFinish(t *testing.T) {
	f := newFake(time.Minute, "block")
	var calls atomic.Int32
	var settledAtReceiveDone atomic.Int32
	s, err := Run(context.Background(), f, &scripted{}, &Options{Budget: 500 * time.Millisecond, ReceiveMargin: 200 * time.Millisecond,
		NoMessageWait: time.Minute, ReceiveDone: func() {
			calls.Add(1)
			settledAtReceiveDone.Store(int32(len(f.settledCopy())))
		}})
	if err != nil {
		t.Fatal(err)
	}
	if calls.Load() != 1 || settledAtReceiveDone.Load() != 0 || s.Abandoned != 1 {
		t.Fatalf("ReceiveDone calls %d, settled before it %d, summary %+v", calls.Load(), settledAtReceiveDone.Load(), s)
	}
}

func TestHungSettlementIsBounded(t *testing.T) {
	f := newFake(time.Minute, "complete", "block")
	f.hang = true
	start := time.Now()
	s, err := Run(context.Background(), f, &scripted{}, &Options{Budget: 500 * time.Millisecond, ReceiveMargin: 100 * time.Millisecond,
		NoMessageWait: time.Minute, SettleTimeout: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	// The completion times out (300ms) and its abandon too; the budget-cancelled message's abandon is cut at
	// deadline + SettleTimeout = 800ms.
	if el := time.Since(start); el < 500*time.Millisecond || el > 800*time.Millisecond+time.Second {
		t.Fatalf("run took %v, want ≤ budget + settle timeout", el)
	}
	if s.Completed != 0 || s.Abandoned != 0 || s.Received != 2 {
		t.Fatalf("summary %+v", s)
	}
}

func TestReceiveErrorFailsRun(t *testing.T) {
	f := newFake(time.Minute, "complete")
	f.receiveErr = &azservicebus.Error{Code: azservicebus.CodeUnauthorizedAccess}
	s, err := Run(context.Background(), f, &scripted{}, fast(&Options{}))
	if !errors.Is(err, ErrReceive) {
		t.Fatalf("error %v, want ErrReceive", err)
	}
	if s.Completed != 1 {
		t.Fatalf("message received before the error not completed: %+v", s)
	}
}

func TestCallerCancelAbandonsOnDetachedContext(t *testing.T) {
	f := newFake(time.Minute, "block")
	ctx, cancel := context.WithCancel(context.Background())
	p := processor.Func(func(pctx context.Context, m *azservicebus.ReceivedMessage) processor.Outcome {
		cancel()
		<-pctx.Done()
		return processor.Complete()
	})
	s, err := Run(ctx, f, p, fast(&Options{}))
	if err != nil {
		t.Fatal(err)
	}
	if got := f.settledCopy()["m0"]; got != "abandon" || s.Abandoned != 1 {
		t.Fatalf("settled %q, summary %+v", got, s)
	}
	if !f.settleCtxOK {
		t.Fatal("settlement got the caller's cancelled context")
	}
}

func TestLongWorkIsRenewed(t *testing.T) {
	f := newFake(time.Second, "work:2500ms")
	s, err := Run(context.Background(), f, &scripted{}, fast(&Options{}))
	if err != nil {
		t.Fatal(err)
	}
	if s.Completed != 1 || s.Renewals < 2 || s.LocksLost != 0 {
		t.Fatalf("summary %+v", s)
	}
}

func TestMaxLockRenewalAbandons(t *testing.T) {
	f := newFake(600*time.Millisecond, "block") // renewed at 300ms and 600ms (the renewer's floor is 250ms)
	sp := &scripted{}
	s, err := Run(context.Background(), f, sp, fast(&Options{MaxLockRenewal: 700 * time.Millisecond}))
	if err != nil {
		t.Fatal(err)
	}
	if !errors.Is(sp.cause("m0"), lockrenew.ErrMaxRenewal) || f.settledCopy()["m0"] != "abandon" || s.Abandoned != 1 {
		t.Fatalf("cause %v, settled %v, summary %+v", sp.cause("m0"), f.settledCopy(), s)
	}
}

// lingering wraps a processor: it counts the calls in flight, and a call whose context ended keeps running
// for linger before it returns (well within the stuck grace), as a processor winding down does.
type lingering struct {
	p        processor.Processor
	linger   time.Duration
	inflight atomic.Int64
}

func (l *lingering) Process(ctx context.Context, m *azservicebus.ReceivedMessage) processor.Outcome {
	l.inflight.Add(1)
	defer l.inflight.Add(-1)
	out := l.p.Process(ctx, m)
	if ctx.Err() != nil {
		time.Sleep(l.linger) // winding down after cancellation; not synchronisation
	}
	return out
}

// TestNoGoroutineOutlivesRun: when Run returns, no processor call is still running and no goroutine of the
// run or the renewer is left. The processors take 300ms to wind down after cancellation, so a Run that did
// not wait for its workers would return while they run.
func TestNoGoroutineOutlivesRun(t *testing.T) {
	f := newFake(time.Second, "work:300ms", "block", "complete", "work:10ms")
	p := &lingering{p: &scripted{}, linger: 300 * time.Millisecond}
	if _, err := Run(context.Background(), f, p, &Options{Budget: 500 * time.Millisecond,
		ReceiveMargin: 100 * time.Millisecond, NoMessageWait: 50 * time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	if n := p.inflight.Load(); n != 0 {
		t.Fatalf("Run returned with %d processor calls still running", n)
	}
	// Exited goroutines may take a moment to disappear from the stacks; far less than the 300ms a worker
	// still winding down would show up for.
	deadline := time.Now().Add(100 * time.Millisecond)
	for gs := runGoroutines(); len(gs) > 0; gs = runGoroutines() {
		if time.Now().After(deadline) {
			t.Fatalf("%d goroutines of the run outlive it:\n%s", len(gs), strings.Join(gs, "\n\n"))
		}
		time.Sleep(5 * time.Millisecond) // polling a condition, not synchronising
	}
}

// runGoroutines returns the stacks of the goroutines that run code of this package or of the renewer,
// test functions aside.
func runGoroutines() []string {
	buf := make([]byte, 1<<20)
	var out []string
	for _, g := range strings.Split(string(buf[:runtime.Stack(buf, true)]), "\n\n") {
		if strings.Contains(g, "testing.tRunner") {
			continue // a test's own goroutine
		}
		if strings.Contains(g, "holdfast/internal/process.") || strings.Contains(g, "holdfast/lockrenew.") {
			out = append(out, g)
		}
	}
	return out
}

// waitRunGoroutines polls until at most n goroutines run code of the run or the renewer (see runGoroutines)
// and returns them; it fails the test after 5 s.
func waitRunGoroutines(t *testing.T, n int) []string {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		gs := runGoroutines()
		if len(gs) <= n {
			return gs
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d goroutines of the run remain, want %d:\n%s", len(gs), n, strings.Join(gs, "\n\n"))
		}
		time.Sleep(5 * time.Millisecond) // polling a condition, not synchronising
	}
}

// A processor that ignores its context: the run stops waiting StuckGrace after the deadline, abandons the
// message, counts it as stuck and returns; the processor's goroutine is the only one left, its later Complete
// is never settled, and the next run is normal.
func TestStuckProcessorIsAbandonedAndIgnored(t *testing.T) {
	f := newFake(time.Minute, "hang", "complete")
	release, returned := make(chan struct{}), make(chan struct{})
	p := processor.Func(func(ctx context.Context, m *azservicebus.ReceivedMessage) processor.Outcome {
		if string(m.Body) == "hang" {
			defer close(returned)
			<-release // ignores ctx
		}
		return processor.Complete()
	})
	const budget, grace = 400 * time.Millisecond, 300 * time.Millisecond
	start := time.Now()
	s, err := Run(context.Background(), f, p, &Options{Budget: budget, ReceiveMargin: 100 * time.Millisecond,
		NoMessageWait: time.Minute, StuckGrace: grace, MaxLockRenewal: time.Minute})
	el := time.Since(start)
	if err != nil {
		t.Fatal(err)
	}
	if el < budget+grace || el > budget+grace+2*time.Second {
		t.Fatalf("run took %v, want about budget + grace = %v", el, budget+grace)
	}
	s.DurationMs = 0
	if want := (Summary{Received: 2, Completed: 1, Abandoned: 1, Stuck: 1}); s != want {
		t.Fatalf("summary %+v, want %+v", s, want)
	}
	if got := f.settledCopy(); got["m0"] != "abandon" || got["m1"] != "complete" {
		t.Fatalf("settled %v", got)
	}
	// The stuck processor's goroutine is the only one left of the run.
	if gs := waitRunGoroutines(t, 1); len(gs) != 1 || !strings.Contains(gs[0], "TestStuckProcessorIsAbandonedAndIgnored") {
		t.Fatalf("goroutines of the run after it returned, want only the stuck processor:\n%s", strings.Join(gs, "\n\n"))
	}

	close(release)
	<-returned
	waitRunGoroutines(t, 0)
	f.mu.Lock()
	attempts := f.attempts["m0"]
	f.mu.Unlock()
	if attempts != 1 || f.settledCopy()["m0"] != "abandon" {
		t.Fatalf("late outcome reached settlement: %d settlement calls, settled %q", attempts, f.settledCopy()["m0"])
	}

	f.add("complete")
	s, err = Run(context.Background(), f, p, fast(&Options{StuckGrace: grace}))
	if err != nil || s.Received != 1 || s.Completed != 1 || s.Stuck != 0 {
		t.Fatalf("next run: %+v, %v", s, err)
	}
}

// Due deferred messages are taken first, as many as workers are free, up to DueMax, processed like received
// ones, and their source learns how each was settled.
func TestDueMessagesComeFirstAndReportTheirSettlement(t *testing.T) {
	f := newFake(time.Minute, "complete")
	var mu sync.Mutex
	var events []string
	record := func(e string) {
		mu.Lock()
		events = append(events, e)
		mu.Unlock()
	}
	d := newFakeDue(f, "complete", "abandon", "defer", "deadletter", "zero", "lost", "complete")
	d.events = record
	p := processor.Func(func(ctx context.Context, m *azservicebus.ReceivedMessage) processor.Outcome {
		record("process " + m.MessageID)
		if string(m.Body) == "lost" {
			f.loseLock(m.MessageID)
			return processor.Complete()
		}
		return (&scripted{}).Process(ctx, m)
	})
	s, err := Run(context.Background(), f, p, fast(&Options{Concurrency: 4, DueMax: 6, Due: d, Deferrer: &fakeDeferrer{}}))
	if err != nil {
		t.Fatal(err)
	}
	s.DurationMs = 0
	want := Summary{Received: 7, Completed: 2, Abandoned: 2, Deferred: 1, DeadLettered: 1, LocksLost: 1, Due: 6}
	if s != want {
		t.Fatalf("summary %+v, want %+v", s, want)
	}
	wantSettled := map[string]Settlement{"d0": SettledComplete, "d1": SettledAbandon, "d2": SettledDefer,
		"d3": SettledDeadLetter, "d4": SettledAbandon, "d5": SettledNone}
	if got := d.settledCopy(); !maps.Equal(got, wantSettled) {
		t.Fatalf("settlements reported %v, want %v", got, wantSettled)
	}
	// Four free workers first, then as workers free up, never past DueMax.
	total := 0
	for _, n := range d.asked {
		total += n
	}
	if d.asked[0] != 4 || total != 6 {
		t.Fatalf("takes asked for %v, want 4 first and 6 in all", d.asked)
	}
	if len(d.ready) != 1 {
		t.Fatalf("%d due messages left, want 1 (DueMax 6 of 7)", len(d.ready))
	}
	// The claim outlasts the run's settlement window.
	if lim := time.Now().Add(DefaultSettleTimeout); d.claims[0].Before(lim) {
		t.Errorf("claimUntil %v is before the end of settlement", d.claims[0])
	}
	mu.Lock()
	defer mu.Unlock()
	if events[0] != "take" || !slices.Contains(events, "process m0") {
		t.Fatalf("events %v: want the take first and the received message processed", events)
	}
}

// A source that returns more due messages than the run asked for (free workers) does not get extra workers:
// the extra message is abandoned at once, its source learns it, and the summary counts it as received (and
// due) and abandoned, so the counts still add up. Mutation: not counting it as received makes this fail.
func TestDueSourceReturningTooManyIsAbandoned(t *testing.T) {
	f := newFake(time.Minute)
	d := newFakeDue(f, "complete", "complete", "complete")
	d.extra = 1
	s, err := Run(context.Background(), f, &scripted{}, fast(&Options{Concurrency: 2, Due: d}))
	if err != nil {
		t.Fatal(err)
	}
	s.DurationMs = 0
	if want := (Summary{Received: 3, Completed: 2, Abandoned: 1, Due: 3}); s != want {
		t.Fatalf("summary %+v, want %+v", s, want)
	}
	if got := d.settledCopy(); got["d2"] != SettledAbandon || got["d0"] != SettledComplete || got["d1"] != SettledComplete {
		t.Fatalf("settlements reported %v", got)
	}
}

// A failing source is logged and the run goes on with new messages.
func TestDueSourceFailureDoesNotFailTheRun(t *testing.T) {
	f := newFake(time.Minute, "complete")
	d := newFakeDue(f, "complete")
	d.err = errors.New("table unavailable")
	s, err := Run(context.Background(), f, &scripted{}, fast(&Options{Due: d}))
	if err != nil || s.Completed != 2 || s.Due != 1 {
		t.Fatalf("summary %+v, error %v", s, err)
	}
}

func TestSummaryString(t *testing.T) {
	s := Summary{Received: 2, Completed: 1, Abandoned: 1, Renewals: 3, DurationMs: 5}
	if got := s.String(); !strings.Contains(got, "received=2") || !strings.Contains(got, "renewals=3") {
		t.Fatalf("got %q", got)
	}
}

func TestRunNeedsReceiverAndProcessor(t *testing.T) {
	if _, err := Run(context.Background(), nil, &scripted{}, nil); err == nil {
		t.Fatal("nil receiver accepted")
	}
}

// gatedReceiver holds every CompleteMessage until gate is closed, counting the calls waiting.
type gatedReceiver struct {
	*fakeReceiver
	gate    chan struct{}
	waiting atomic.Int32
}

func (g *gatedReceiver) CompleteMessage(ctx context.Context, m *azservicebus.ReceivedMessage, o *azservicebus.CompleteMessageOptions) error {
	g.waiting.Add(1)
	<-g.gate
	g.waiting.Add(-1)
	return g.fakeReceiver.CompleteMessage(ctx, m, o)
}

// A worker hands its slot back as soon as its processor returns, so the run receives the next messages while
// the previous ones are being settled — but no more than Concurrency are settled at once, so at most
// 2×Concurrency messages are held.
func TestReceivesWhileSettling(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		bodies := make([]string, 10)
		for i := range bodies {
			bodies[i] = "complete"
		}
		g := &gatedReceiver{fakeReceiver: newFake(time.Minute, bodies...), gate: make(chan struct{})}
		var processed atomic.Int32
		p := processor.Func(func(ctx context.Context, m *azservicebus.ReceivedMessage) processor.Outcome {
			processed.Add(1)
			return processor.Complete()
		})
		done := make(chan Summary)
		go func() {
			s, err := Run(context.Background(), g, p, fast(&Options{Concurrency: 2, BatchSize: 10}))
			if err != nil {
				t.Error(err)
			}
			done <- s
		}()
		synctest.Wait() // every goroutine of the run is blocked: on the gate, on a settlement slot, on a free slot
		g.mu.Lock()
		asked := slices.Clone(g.asked)
		g.mu.Unlock()
		// Two received and being completed (their slots given back), two more received and processed, waiting
		// for a settlement slot; the receive loop waits for a free one.
		if !slices.Equal(asked, []int{2, 2}) || g.waiting.Load() != 2 || processed.Load() != 4 {
			t.Fatalf("receives %v, completions waiting %d, processed %d; want [2 2], 2, 4", asked, g.waiting.Load(), processed.Load())
		}
		close(g.gate)
		if s := <-done; s.Completed != 10 || s.Received != 10 {
			t.Fatalf("summary %+v", s)
		}
	})
}

// slowStopReceiver takes a second (of the bubble's clock) to return from a receive cut short by cancellation,
// as a receive link does while it detaches.
type slowStopReceiver struct{ *fakeReceiver }

func (s slowStopReceiver) ReceiveMessages(ctx context.Context, n int, o *azservicebus.ReceiveMessagesOptions) ([]*azservicebus.ReceivedMessage, error) {
	msgs, err := s.fakeReceiver.ReceiveMessages(ctx, n, o)
	if ctx.Err() != nil {
		time.Sleep(time.Second)
	}
	return msgs, err
}

// When the caller cancels, the messages in progress are abandoned only after ReceiveDone (where the Service
// closes its receive link), however long receiving takes to stop.
func TestCancelledMessagesAbandonedAfterReceiveDone(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFake(time.Minute, "block")
		ctx, cancel := context.WithCancel(context.Background())
		var settledAtReceiveDone atomic.Int32
		done := make(chan Summary)
		go func() {
			s, _ := Run(ctx, slowStopReceiver{f}, &scripted{}, &Options{Budget: time.Minute, NoMessageWait: time.Minute,
				ReceiveDone: func() { settledAtReceiveDone.Store(int32(len(f.settledCopy()))) }})
			done <- s
		}()
		synctest.Wait() // the message is being processed; the receive loop waits for more
		cancel()
		s := <-done
		if settledAtReceiveDone.Load() != 0 || s.Abandoned != 1 || f.settledCopy()["m0"] != "abandon" {
			t.Fatalf("settled before ReceiveDone: %d; summary %+v; want the abandon after it", settledAtReceiveDone.Load(), s)
		}
	})
}

// The processor's context carries the hold, so lockrenew.LockedUntil(ctx) — what the processor contract points
// to instead of reading msg.LockedUntil — answers inside Process. Mutation: handing the processor a context
// that does not derive from the renewer's Hold makes this fail.
func TestProcessorReadsTheLockExpiryFromItsContext(t *testing.T) {
	f := newFake(time.Minute, "complete")
	var ok atomic.Bool
	var until atomic.Int64
	p := processor.Func(func(ctx context.Context, m *azservicebus.ReceivedMessage) processor.Outcome {
		u, found := lockrenew.LockedUntil(ctx)
		ok.Store(found)
		until.Store(u.UnixNano())
		return processor.Complete()
	})
	if s, err := Run(context.Background(), f, p, fast(&Options{})); err != nil || s.Completed != 1 {
		t.Fatalf("summary %+v, %v", s, err)
	}
	if !ok.Load() || time.Unix(0, until.Load()).Before(time.Now()) {
		t.Fatalf("lockrenew.LockedUntil in Process: ok %v, %v; want the message's future lock expiry", ok.Load(), time.Unix(0, until.Load()))
	}
}
