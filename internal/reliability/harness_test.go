package reliability

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/data/aztables"
	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus"

	"github.com/holdfast-dev/holdfast/emulator"
	"github.com/holdfast-dev/holdfast/emulator/broker"
	"github.com/holdfast-dev/holdfast/internal/config"
	"github.com/holdfast-dev/holdfast/internal/drain"
	"github.com/holdfast-dev/holdfast/internal/ledger"
	"github.com/holdfast-dev/holdfast/internal/process"
	"github.com/holdfast-dev/holdfast/internal/testenv"
	"github.com/holdfast-dev/holdfast/processor"
)

// errCrashed is what a crash hook returns: the process died at that point.
var errCrashed = errors.New("reliability: simulated process death")

const queue = "work"

// world is one cell's emulator, queue, ledger table and the clients the test inspects them with.
type world struct {
	t      *testing.T
	c      cell
	srv    *emulator.Server
	ent    *broker.Entity
	tables string // Table Storage connection string
	table  string
	cfg    *config.Config
	client *azservicebus.Client // the test's own client: sends and peeks
	proc   *behaviours
	// expired: the session lock fault fired (fSessionExpired).
	expired atomic.Bool
}

func newWorld(t *testing.T, c cell) *world {
	t.Helper()
	srv, err := emulator.Start(&emulator.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	props := broker.DefaultQueueProperties()
	props.LockDuration, props.MaxDeliveryCount = c.lock, 10
	props.RequiresDuplicateDetection = true // the template's default: resubmission relies on it after a crash
	props.RequiresSession = c.sess
	if err := srv.Broker().CreateQueue(queue, props); err != nil {
		t.Fatal(err)
	}
	ent, err := srv.Broker().Entity(queue)
	if err != nil {
		t.Fatal(err)
	}
	settings := map[string]string{
		config.SettingServiceBus:     srv.ConnectionString(),
		config.SettingEntity:         queue,
		config.SettingRunBudget:      c.budget().String(),
		config.SettingConcurrency:    fmt.Sprint(c.concurrency()),
		config.SettingBatchSize:      fmt.Sprint(c.concurrency()),
		config.SettingLockDuration:   c.lock.String(),
		config.SettingMaxLockRenewal: (10 * time.Minute).String(),
	}
	if c.sess {
		settings[config.SettingRequiresSession] = "true"
		settings[config.SettingMaxSessions] = fmt.Sprint(len(sessionIDs))
	}
	cfg, err := config.LoadWith(func(k string) string { return settings[k] },
		&config.LoadOptions{FunctionTimeout: 30 * time.Minute, CustomProcessor: true})
	if err != nil {
		t.Fatal(err)
	}
	client, err := azservicebus.NewClientFromConnectionString(srv.ConnectionString(), process.ClientOptions(cfg))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = client.Close(context.Background()) })
	w := &world{t: t, c: c, srv: srv, ent: ent, tables: testenv.Azurite(t), table: testenv.TableName(t), cfg: cfg, client: client,
		proc: newBehaviours(c.lock)}
	t.Cleanup(w.proc.releaseHung)
	return w
}

// ledger returns a ledger on the cell's table whose requests go through out.
func (w *world) ledger(out *testenv.Outage) *ledger.Ledger {
	w.t.Helper()
	tc, err := ledger.NewClientFromConnectionString(w.tables, w.table, &aztables.ClientOptions{
		ClientOptions: policy.ClientOptions{Transport: out, Retry: policy.RetryOptions{MaxRetries: 1, RetryDelay: 50 * time.Millisecond}}})
	if err != nil {
		w.t.Fatal(err)
	}
	l, err := ledger.New(tc, &ledger.Options{Entity: queue})
	if err != nil {
		w.t.Fatal(err)
	}
	if err := l.EnsureTable(context.Background()); err != nil {
		w.t.Fatal(err)
	}
	return l
}

// sessionIDs are the sessions of a session cell's messages (sessionOf).
var sessionIDs = []string{"s1", "s2"}

// sessionOf is the session of logical message id in a session cell: m1, m3, … in s1; d, m2, m4, … in s2
// (d first: the session's later messages go on while it is deferred).
func sessionOf(id string) string {
	var n int
	if _, err := fmt.Sscanf(id, "m%d", &n); err == nil && n%2 == 1 {
		return sessionIDs[0]
	}
	return sessionIDs[1]
}

// send sends one message per behaviour name, with MessageID = the logical message's name; in a session cell
// one at a time in name order (so d, m1, m2, … in sequence-number order), each with its session.
func (w *world) send(ctx context.Context, msgs map[string]behaviour) {
	w.t.Helper()
	s, err := w.client.NewSender(queue, nil)
	if err != nil {
		w.t.Fatal(err)
	}
	defer s.Close(ctx)
	if w.c.sess {
		for _, id := range sortedKeys(msgs) {
			body, _ := json.Marshal(map[string]string{"b": string(msgs[id])})
			sid := sessionOf(id)
			if err := s.SendMessage(ctx, &azservicebus.Message{MessageID: &id, SessionID: &sid, Body: body}, nil); err != nil {
				w.t.Fatal(err)
			}
		}
		return
	}
	batch, err := s.NewMessageBatch(ctx, nil)
	if err != nil {
		w.t.Fatal(err)
	}
	for id, b := range msgs {
		body, _ := json.Marshal(map[string]string{"b": string(b)})
		if err := batch.AddMessage(&azservicebus.Message{MessageID: &id, Body: body}, nil); err != nil {
			w.t.Fatal(err)
		}
	}
	if err := s.SendMessageBatch(ctx, batch, nil); err != nil {
		w.t.Fatal(err)
	}
}

// counters is the queue's emulator counters now.
func (w *world) counters() broker.Counters { return w.ent.Stats().Counters }

// awaitUnlocked waits until no message of the queue is locked (their locks expire at most a lock from now,
// plus the renewals of a run that was cut off).
func (w *world) awaitUnlocked(ctx context.Context) {
	w.t.Helper()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for w.ent.Stats().Locked > 0 {
		select {
		case <-ctx.Done():
			w.t.Fatalf("messages still locked: %+v", w.ent.Stats())
		case <-tick.C:
		}
	}
}

// ---------------------------------------------------------------------------------------------------------
// The processor.

// behaviour is what the processor does with a message; the body names it.
type behaviour string

const (
	bFast   behaviour = "fast"
	b3x     behaviour = "3x lock"
	b10x    behaviour = "10x lock"
	bHang   behaviour = "hangs"
	bPanic  behaviour = "panics"
	bError  behaviour = "errors"
	bDefer  behaviour = "defers" // the message that exercises the ledger and the drain in every cell
	bCustom behaviour = "work"   // the short-lock cell: work for cell.work
)

// behaviours is the processor of every cell: it does what the body says and records every call.
// A resubmitted copy (it carries the lineage properties) is completed at once.
type behaviours struct {
	lock time.Duration
	work time.Duration // for bCustom
	hung chan struct{} // closed at cleanup: releases the processors that hang
	once sync.Once

	mu        sync.Mutex
	calls     map[string]int                // logical message → processor calls; guarded by mu
	completed map[string]map[int64]struct{} // logical message → sequence numbers it returned Complete for; guarded by mu
	// Session cells: every call of each session in the order they started, the calls of each session in
	// progress (a processor that hangs not counted: the run gives up on it), and the calls that started while
	// another of their session was in progress. Guarded by mu.
	sessCalls map[string][]*sessCall
	inFlight  map[string][]*sessCall
	overlaps  []overlap
}

// overlap is a call that started (at) while another call of its session was in progress.
type overlap struct {
	sid         string
	call, other *sessCall
	at          time.Time
}

// expiryRace bounds the overlap allowed at a session lock's expiry: the service hands the session to the
// next receiver when the lock expires, and the run tells the processor of the message in progress when its
// own timer for the same expiry fires.
const expiryRace = 100 * time.Millisecond

// sessCall is one processor call on a message of a session.
type sessCall struct {
	id       string // logical message
	seq      int64
	delivery uint32
	ended    time.Time
	returned bool // the processor returned (it did not panic or hang)
	complete bool // … with Complete
	lost     bool // … with its context ended by the session lock's loss
}

func newBehaviours(lock time.Duration) *behaviours {
	return &behaviours{lock: lock, hung: make(chan struct{}), calls: map[string]int{}, completed: map[string]map[int64]struct{}{},
		sessCalls: map[string][]*sessCall{}, inFlight: map[string][]*sessCall{}}
}

func (p *behaviours) releaseHung() { p.once.Do(func() { close(p.hung) }) }

// logical returns the logical message m belongs to: its own MessageID, or its original's for a copy.
func logical(m *azservicebus.ReceivedMessage) (id string, copy bool) {
	if orig, ok := m.ApplicationProperties[drain.PropOriginalMessageID].(string); ok {
		return orig, true
	}
	return m.MessageID, false
}

// Process records the call and, when it returns Complete, the sequence number it completed; for a message of a
// session, the call in its session's log.
func (p *behaviours) Process(ctx context.Context, m *azservicebus.ReceivedMessage) processor.Outcome {
	if m.SessionID != nil && m.SequenceNumber != nil {
		call := p.startSession(*m.SessionID, m)
		var out processor.Outcome
		returned := false
		defer func() { p.endSession(ctx, *m.SessionID, call, returned, out) }()
		out = p.process(ctx, m)
		returned = true
		p.recordCompletion(m, out)
		return out
	}
	out := p.process(ctx, m)
	p.recordCompletion(m, out)
	return out
}

// startSession logs a call on m of session sid and notes an overlap with another call of the session.
func (p *behaviours) startSession(sid string, m *azservicebus.ReceivedMessage) *sessCall {
	id, _ := logical(m)
	call := &sessCall{id: id, seq: *m.SequenceNumber, delivery: m.DeliveryCount}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.sessCalls[sid] = append(p.sessCalls[sid], call)
	if !hangs(m) {
		for _, other := range p.inFlight[sid] {
			p.overlaps = append(p.overlaps, overlap{sid: sid, call: call, other: other, at: time.Now()})
		}
		p.inFlight[sid] = append(p.inFlight[sid], call)
	}
	return call
}

func (p *behaviours) endSession(ctx context.Context, sid string, call *sessCall, returned bool, out processor.Outcome) {
	p.mu.Lock()
	defer p.mu.Unlock()
	call.ended, call.returned, call.complete = time.Now(), returned, returned && out.Kind == processor.KindComplete
	call.lost = errors.Is(context.Cause(ctx), process.ErrSessionLockLost)
	p.inFlight[sid] = slices.DeleteFunc(p.inFlight[sid], func(c *sessCall) bool { return c == call })
}

// hangs reports whether m's behaviour is to hang.
func hangs(m *azservicebus.ReceivedMessage) bool {
	var body struct{ B behaviour }
	_ = json.Unmarshal(m.Body, &body)
	_, copy := logical(m)
	return !copy && body.B == bHang
}

// recordCompletion notes the sequence number of m when the processor returned Complete for it.
func (p *behaviours) recordCompletion(m *azservicebus.ReceivedMessage, out processor.Outcome) {
	if out.Kind == processor.KindComplete && m.SequenceNumber != nil {
		id, _ := logical(m)
		p.mu.Lock()
		if p.completed[id] == nil {
			p.completed[id] = map[int64]struct{}{}
		}
		p.completed[id][*m.SequenceNumber] = struct{}{}
		p.mu.Unlock()
	}
}

// sessionProblems checks the session invariants over every call of the cell: the messages of a session are
// processed one at a time, completed in sequence-number order, and after a call cut short by the loss of
// its session's lock no later message of the session is completed before that message is delivered again
// (unless it ended dead-lettered: its last delivery lost its lock at MaxDeliveryCount).
//
// A call may start at most expiryRace before the one in progress in its session returns, when that one was
// cut short by its session lock's expiry (races counts those).
func (p *behaviours) sessionProblems(states map[string]endState) (problems []string, races int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, o := range p.overlaps {
		if o.other.lost && !o.other.ended.IsZero() && o.other.ended.Sub(o.at) <= expiryRace {
			races++
			continue
		}
		problems = append(problems, fmt.Sprintf("session %s: %s (sequence number %d, delivery %d) processed while %s (%d, delivery %d) was in progress",
			o.sid, o.call.id, o.call.seq, o.call.delivery, o.other.id, o.other.seq, o.other.delivery))
	}
	for _, sid := range sortedKeys(p.sessCalls) {
		calls := p.sessCalls[sid]
		var last *sessCall
		for _, c := range calls {
			if !c.complete {
				continue
			}
			if last != nil && c.seq < last.seq {
				problems = append(problems, fmt.Sprintf("session %s: %s (sequence number %d) completed after %s (%d): out of order", sid, c.id, c.seq, last.id, last.seq))
			}
			last = c
		}
		for i, c := range calls {
			if !c.lost || states[c.id] == stDeadLettered {
				continue
			}
			for _, next := range calls[i+1:] {
				if next.seq == c.seq {
					break // delivered again
				}
				if next.complete && next.seq > c.seq {
					problems = append(problems, fmt.Sprintf("session %s: %s (sequence number %d) completed after the session lock was lost on %s (%d, delivery %d) and before %s was delivered again",
						sid, next.id, next.seq, c.id, c.seq, c.delivery, c.id))
					break
				}
			}
		}
	}
	return problems, races
}

// sessionLost counts the calls cut short by the loss of their session's lock.
func (p *behaviours) sessionLost() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, calls := range p.sessCalls {
		for _, c := range calls {
			if c.lost {
				n++
			}
		}
	}
	return n
}

// completions returns the sequence numbers of id's messages the processor completed.
func (p *behaviours) completions(id string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.completed[id])
}

func (p *behaviours) process(ctx context.Context, m *azservicebus.ReceivedMessage) processor.Outcome {
	id, copy := logical(m)
	p.mu.Lock()
	p.calls[id]++
	p.mu.Unlock()
	if copy {
		return processor.Complete()
	}
	var body struct{ B behaviour }
	_ = json.Unmarshal(m.Body, &body)
	work := func(d time.Duration) processor.Outcome {
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-t.C:
			return processor.Complete()
		case <-ctx.Done():
			return processor.Abandon(context.Cause(ctx))
		}
	}
	switch body.B {
	case bFast:
		return processor.Complete()
	case b3x:
		return work(3 * p.lock)
	case b10x:
		return work(10 * p.lock)
	case bCustom:
		return work(p.work)
	case bHang:
		<-p.hung // ignores its context
		return processor.Complete()
	case bPanic:
		panic("reliability: processor panics")
	case bError:
		if m.DeliveryCount <= 1 {
			return processor.Abandon(errors.New("transient failure"))
		}
		return processor.DeadLetter("ProcessingError", "failed again on redelivery")
	case bDefer:
		return processor.Defer(time.Now().Add(time.Hour), "reliability")
	}
	return processor.Abandon(fmt.Errorf("unknown behaviour %q", body.B))
}

// ---------------------------------------------------------------------------------------------------------
// A run, with the defer crash points and the Table Storage outage.

// runner performs runs with the cell's configuration; its deferrer applies the cell's defer crash point and
// outage. A crash closes the run's Service Bus client: nothing it holds can be settled any more, as if the
// process had died.
type runner struct {
	w      *world
	out    *testenv.Outage
	led    *ledger.Ledger
	crash  crashPoint  // a defer crash point, or none
	outage bool        // Table Storage goes down for the first defer
	fired  atomic.Bool // the crash point or the outage happened
	svc    atomic.Pointer[process.Service]
}

func (w *world) runner(crash crashPoint, outage bool) *runner {
	r := &runner{w: w, out: &testenv.Outage{}, crash: crash, outage: outage}
	r.led = w.ledger(r.out)
	return r
}

// run performs one run with a fresh Service (a new client), as one timer invocation of a fresh process.
func (r *runner) run(ctx context.Context) (process.Summary, error) {
	// SettleTimeout stays at its default (15 s): settlement ignores the client's retry options (see
	// lockrenew.RetryOptions) and waits about 4 s before retrying after a dropped connection.
	// NoMessageWait: a run ends 3 s after the last message; on a loaded machine 1 s was once too short for a
	// new client's first receive.
	svc, err := process.NewService(&process.ServiceOptions{Config: r.w.cfg, Processor: r.w.proc, Deferrer: r,
		NoMessageWait: 3 * time.Second, Logger: testLogger(r.w.t)})
	if err != nil {
		r.w.t.Fatal(err)
	}
	r.svc.Store(svc)
	defer svc.Close(context.Background())
	return svc.Run(ctx)
}

// die closes the run's client: the process is gone.
func (r *runner) die() {
	r.fired.Store(true)
	_ = r.svc.Load().Close(context.Background())
}

// Defer is the run's Deferrer: the real ledger's Defer, through a settler that applies the crash point.
func (r *runner) Defer(ctx context.Context, s process.DeferSettler, msg *azservicebus.ReceivedMessage, notBefore time.Time, reason string) error {
	if r.outage && r.fired.CompareAndSwap(false, true) {
		r.out.Down()
		defer r.out.Up()
	}
	return r.led.Defer(ctx, crashingSettler{s, r}, msg, notBefore, reason)
}

// crashingSettler is what ledger.Defer calls between writing the row and marking it: the crash points.
type crashingSettler struct {
	s process.DeferSettler
	r *runner
}

func (c crashingSettler) DeferMessage(ctx context.Context, m *azservicebus.ReceivedMessage, o *azservicebus.DeferMessageOptions) error {
	if c.r.crash == crashAfterRecord {
		c.r.die()
		return errCrashed
	}
	if err := c.s.DeferMessage(ctx, m, o); err != nil {
		return err
	}
	if c.r.crash == crashAfterDefer {
		c.r.die()
		return errCrashed
	}
	return nil
}

// ---------------------------------------------------------------------------------------------------------
// A drain, with the resubmit crash points. A crash closes the drain's client and takes its Table Storage
// away: nothing more happens, the rows stay leased until their lease runs out.

type drainer struct {
	w      *world
	out    *testenv.Outage
	client *azservicebus.Client
	svc    *drain.Service
	crash  crashPoint
	fired  atomic.Bool
}

const leaseDuration = 2 * time.Second

func (w *world) drainer(crash crashPoint) *drainer {
	w.t.Helper()
	d := &drainer{w: w, out: &testenv.Outage{}, crash: crash}
	client, err := azservicebus.NewClientFromConnectionString(w.srv.ConnectionString(), process.ClientOptions(w.cfg))
	if err != nil {
		w.t.Fatal(err)
	}
	d.client = client
	w.t.Cleanup(func() { _ = client.Close(context.Background()) })
	recv, send, err := drain.NewClients(client, queue)
	if err != nil {
		w.t.Fatal(err)
	}
	o := &drain.Options{Ledger: w.ledger(d.out), Receiver: crashingReceiver{recv, d}, Sender: crashingSender{send, d},
		LeaseDuration: leaseDuration, ReconcileLockDuration: w.c.lock, Logger: testLogger(w.t)}
	if w.c.sess {
		// As the handler wires the drain of a session entity: a receiver per session, through the crash points.
		open, list := drain.SessionFuncs(client, queue, config.CloseTimeout)
		o.Receiver, o.ListSessions = nil, list
		o.Sessions = func(ctx context.Context, sid string) (drain.Receiver, func(), error) {
			r, release, err := open(ctx, sid)
			if err != nil {
				return nil, nil, err
			}
			return crashingReceiver{r, d}, release, nil
		}
	}
	d.svc, err = drain.New(o)
	if err != nil {
		w.t.Fatal(err)
	}
	return d
}

func (d *drainer) die() {
	d.fired.Store(true)
	d.out.Down()
	_ = d.client.Close(context.Background())
}

type crashingReceiver struct {
	drain.Receiver
	d *drainer
}

func (c crashingReceiver) ReceiveDeferredMessages(ctx context.Context, seqs []int64, o *azservicebus.ReceiveDeferredMessagesOptions) ([]*azservicebus.ReceivedMessage, error) {
	msgs, err := c.Receiver.ReceiveDeferredMessages(ctx, seqs, o)
	if err == nil && len(msgs) > 0 && c.d.crash == crashAfterReceive {
		c.d.die()
	}
	return msgs, err
}

func (c crashingReceiver) CompleteMessage(ctx context.Context, m *azservicebus.ReceivedMessage, o *azservicebus.CompleteMessageOptions) error {
	err := c.Receiver.CompleteMessage(ctx, m, o)
	if err == nil && c.d.crash == crashAfterSettle {
		c.d.die()
	}
	return err
}

type crashingSender struct {
	drain.Sender
	d *drainer
}

func (c crashingSender) SendMessageBatch(ctx context.Context, b *azservicebus.MessageBatch, o *azservicebus.SendMessageBatchOptions) error {
	err := c.Sender.SendMessageBatch(ctx, b, o)
	if err == nil && c.d.crash == crashAfterSend {
		c.d.die()
	}
	return err
}

// reconcileAll runs reconciliation to the end.
func (d *drainer) reconcileAll(ctx context.Context) {
	d.w.t.Helper()
	cont := ""
	for range 100 {
		res, err := d.svc.Reconcile(ctx, cont)
		if err != nil {
			d.w.t.Fatalf("reconcile: %v", err)
		}
		if res.Done {
			return
		}
		cont = res.Continuation
	}
	d.w.t.Fatal("reconcile not done after 100 calls")
}

// resubmitAll resubmits every ledger row, following continuations.
func (d *drainer) resubmitAll(ctx context.Context) drain.Result {
	d.w.t.Helper()
	var total drain.Result
	cont := ""
	for range 100 {
		res, err := d.svc.Run(ctx, drain.Request{Action: drain.ActionResubmit, All: true, Continuation: cont})
		if err != nil && !d.fired.Load() {
			d.w.t.Fatalf("resubmit: %v", err)
		}
		total.Resubmitted += res.Resubmitted
		total.Failed = append(total.Failed, res.Failed...)
		if err != nil || res.Continuation == "" {
			return total
		}
		cont = res.Continuation
	}
	d.w.t.Fatal("resubmit not done after 100 calls")
	return total
}

// ---------------------------------------------------------------------------------------------------------
// End states.

// endState is where a logical message (an original and its resubmitted copies) ends.
type endState string

const (
	stCompleted    endState = "completed once"
	stAvailable    endState = "available"
	stDeferred     endState = "deferred+indexed"
	stDeadLettered endState = "dead-lettered"
)

// inspect peeks the queue, its dead-letter queue and the ledger, and returns the end state of every logical
// message in ids, or an error naming what is wrong with it: gone without the processor having completed it
// (lost), completed as two different messages (an original and a copy, or two copies: duplicated), more
// than one message left, deferred without a row, a row without a deferred message, dead-lettered without a
// reason, still locked.
func (w *world) inspect(ctx context.Context, ids []string) (map[string]endState, []error) {
	w.t.Helper()
	type peeker interface {
		PeekMessages(context.Context, int, *azservicebus.PeekMessagesOptions) ([]*azservicebus.ReceivedMessage, error)
		Close(context.Context) error
	}
	peek := func(r peeker) []*azservicebus.ReceivedMessage {
		defer r.Close(ctx)
		var out []*azservicebus.ReceivedMessage
		var from int64
		for {
			page, err := r.PeekMessages(ctx, 250, &azservicebus.PeekMessagesOptions{FromSequenceNumber: &from})
			if err != nil {
				w.t.Fatal(err)
			}
			if len(page) == 0 {
				return out
			}
			out = append(out, page...)
			from = *page[len(page)-1].SequenceNumber + 1
		}
	}
	peekAll := func(o *azservicebus.ReceiverOptions) []*azservicebus.ReceivedMessage {
		r, err := w.client.NewReceiverForQueue(queue, o)
		if err != nil {
			w.t.Fatal(err)
		}
		return peek(r)
	}
	var live []*azservicebus.ReceivedMessage
	if w.c.sess {
		// A session's messages are peeked through a receiver that holds it; the dead-letter queue has no sessions.
		// The SDK does not retry an accept: the first one after a dropped connection fails, and recovers the
		// connection (azservicebus internal/namespace.go, startNegotiateClaimRenewer).
		for _, sid := range sessionIDs {
			r, err := w.client.AcceptSessionForQueue(ctx, queue, sid, nil)
			if err != nil {
				r, err = w.client.AcceptSessionForQueue(ctx, queue, sid, nil)
			}
			if err != nil {
				w.t.Fatalf("accept session %s to peek it: %v", sid, err)
			}
			live = append(live, peek(r)...)
		}
	} else {
		live = peekAll(nil)
	}
	dead := peekAll(&azservicebus.ReceiverOptions{SubQueue: azservicebus.SubQueueDeadLetter})
	rows, _, err := w.ledger(&testenv.Outage{}).List(ctx, 1000, "")
	if err != nil {
		w.t.Fatal(err)
	}
	rowOf := map[int64]ledger.Row{}
	for _, r := range rows {
		rowOf[r.SequenceNumber] = r
	}

	var problems []error
	states := map[string]endState{}
	type where struct {
		live, deferred, dead []*azservicebus.ReceivedMessage
	}
	at := map[string]*where{}
	for _, id := range ids {
		at[id] = &where{}
	}
	for _, m := range live {
		id, _ := logical(m)
		wh := at[id]
		if wh == nil {
			problems = append(problems, fmt.Errorf("unknown message %q in the queue", m.MessageID))
			continue
		}
		if m.LockedUntil != nil && m.LockedUntil.After(time.Now()) && m.State != azservicebus.MessageStateDeferred {
			problems = append(problems, fmt.Errorf("%s: still locked until %v", id, m.LockedUntil))
		}
		if m.State == azservicebus.MessageStateDeferred {
			wh.deferred = append(wh.deferred, m)
			if _, ok := rowOf[*m.SequenceNumber]; !ok {
				problems = append(problems, fmt.Errorf("%s: deferred message %d has no ledger row (stranded)", id, *m.SequenceNumber))
			}
			delete(rowOf, *m.SequenceNumber)
		} else {
			wh.live = append(wh.live, m)
		}
	}
	for seq, r := range rowOf {
		problems = append(problems, fmt.Errorf("ledger row %d (%s, %s) has no deferred message", seq, r.MessageID, r.State))
	}
	for _, m := range dead {
		id, _ := logical(m)
		if wh := at[id]; wh != nil {
			wh.dead = append(wh.dead, m)
		}
		if m.DeadLetterReason == nil || *m.DeadLetterReason == "" {
			problems = append(problems, fmt.Errorf("%s: dead-lettered without a reason", id))
		}
	}
	for _, id := range ids {
		wh := at[id]
		n := len(wh.live) + len(wh.deferred) + len(wh.dead)
		switch {
		case n > 1:
			problems = append(problems, fmt.Errorf("%s: %d messages left (%d active, %d deferred, %d dead-lettered): duplicated", id, n, len(wh.live), len(wh.deferred), len(wh.dead)))
		case len(wh.live) == 1:
			states[id] = stAvailable
		case len(wh.deferred) == 1:
			states[id] = stDeferred
		case len(wh.dead) == 1:
			states[id] = stDeadLettered
		default:
			switch n := w.proc.completions(id); {
			case n == 0:
				problems = append(problems, fmt.Errorf("%s: gone, but the processor never completed it: lost", id))
			case n > 1:
				problems = append(problems, fmt.Errorf("%s: the processor completed %d different messages of it: duplicated", id, n))
			default:
				states[id] = stCompleted
			}
		}
	}
	return states, problems
}

// ---------------------------------------------------------------------------------------------------------
// Small helpers.

// testLogger sends the components' logs to the test log at warning level and above (verbose runs only).
func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	if testing.Verbose() && *verboseLogs {
		w.t.Log(strings.TrimRight(string(p), "\n"))
	}
	return len(p), nil
}

var _ io.Writer = testWriter{}

func sortedKeys[M ~map[string]V, V any](m M) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
