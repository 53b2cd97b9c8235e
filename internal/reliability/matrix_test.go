package reliability

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/holdfast-dev/holdfast/emulator/broker"
	"github.com/holdfast-dev/holdfast/internal/process"
	"github.com/holdfast-dev/holdfast/internal/testenv"
)

var (
	full        = flag.Bool("reliability.full", false, "run the whole matrix (make reliability), not the CI-sized selection")
	verboseLogs = flag.Bool("reliability.logs", false, "with -v, show the components' warnings in the test log")
)

func TestMain(m *testing.M) { os.Exit(testenv.Main(m)) }

// fault is what the emulator (or Table Storage) does wrong during the first run.
type fault string

const (
	fNone           fault = "none"
	fRenewTransient fault = "renew fails 3× (503)"
	fRenewLost      fault = "renew lock-lost (410)"
	fConnDrop       fault = "connection dropped"
	fMgmtSlow       fault = "mgmt slower than lead"
	fIdleDetach     fault = "idle link detached"
	fTablesDown     fault = "tables down in defer"
	// fSessionExpired (session cells): the lock of session s1 expires mid-run, as when its renewals stop
	// reaching the service.
	fSessionExpired fault = "session lock expired"
	// fTwoDrops is the short-lock scenario: connections dropped twice 6 s apart, 1 s of refused connections
	// at the first drop, and three transient renewal failures.
	fTwoDrops fault = "2 drops 6s apart"
)

// crashPoint is where the process dies: a step of the defer (in the first run) or of the resubmission (in
// the drain that follows it).
type crashPoint string

const (
	crashNone         crashPoint = "none"
	crashAfterRecord  crashPoint = "defer: row written"
	crashAfterDefer   crashPoint = "defer: deferred"
	crashAfterReceive crashPoint = "resubmit: received"
	crashAfterSend    crashPoint = "resubmit: sent"
	crashAfterSettle  crashPoint = "resubmit: completed"
)

var (
	allBehaviours = []behaviour{bFast, b3x, b10x, bHang, bPanic, bError}
	allFaults     = []fault{fNone, fRenewTransient, fRenewLost, fConnDrop, fMgmtSlow, fIdleDetach, fTablesDown}
	allCrashes    = []crashPoint{crashNone, crashAfterRecord, crashAfterDefer, crashAfterReceive, crashAfterSend, crashAfterSettle}
	// allSessionFaults: the session cells' faults. The renewal faults hit renew-session-lock (a session's
	// messages have no lock of their own).
	allSessionFaults = append(append([]fault(nil), allFaults...), fSessionExpired)
)

// ciCells is the selection make test runs: every behaviour, fault and crash point at least once.
var ciCells = []cell{
	{b: bFast, f: fRenewTransient, c: crashAfterSend},
	{b: b3x, f: fRenewLost, c: crashAfterRecord},
	{b: b3x, f: fConnDrop, c: crashAfterSettle},
	{b: bError, f: fMgmtSlow, c: crashAfterReceive},
	{b: bPanic, f: fIdleDetach, c: crashAfterDefer},
	{b: bHang, f: fTablesDown, c: crashNone},
	{b: b10x, f: fNone, c: crashNone},
	// Session cells: the session lock expiring mid-work, a dropped connection.
	{sess: true, b: b3x, f: fSessionExpired, c: crashAfterReceive},
	{sess: true, b: bFast, f: fConnDrop, c: crashAfterSend},
}

// cell is one combination of the matrix.
type cell struct {
	// sess: the queue is session-enabled and the runs are session runs (HOLDFAST_REQUIRES_SESSION); the
	// messages are in two sessions (sessionOf).
	sess bool
	b    behaviour
	f    fault
	c    crashPoint
	lock time.Duration
	n    int           // messages with behaviour b (besides "d"); 0 means 3
	work time.Duration // bCustom's work
	// noLoss: the first run must lose no lock and complete every message (the short-lock connection-drop
	// scenario, which needs retries sized for the lock duration).
	noLoss bool
}

// twoDrops is 16 (CI: 8) messages of 7 s work on 5 s locks, the connections dropped twice 6 s apart.
func twoDrops(n int) cell {
	return cell{b: bCustom, f: fTwoDrops, c: crashNone, lock: 5 * time.Second, n: n, work: 7 * time.Second, noLoss: true}
}

func (c cell) name() string {
	if c.sess {
		return fmt.Sprintf("sessions/%s/%s/%s", c.b, c.f, c.c)
	}
	return fmt.Sprintf("%s/%s/%s", c.b, c.f, c.c)
}

func (c cell) messages() int { return cmp.Or(c.n, 3) }

// concurrency: every message at once, except the short-lock scenario, which works in two waves so that the
// run is still holding messages at the second connection drop.
func (c cell) concurrency() int {
	if c.f == fTwoDrops {
		return c.messages() / 2
	}
	return c.messages() + 1
}

// budget is the run budget: long enough for the work (10× the lock, renewed; in a session cell, one message
// of a session after the other, and once more after a lost session lock), short for the processor that hangs
// (the run gives up on it at the deadline plus the stuck grace).
func (c cell) budget() time.Duration {
	serial := time.Duration(1)
	if c.sess {
		serial = time.Duration((c.messages()+1)/2 + 1)
	}
	switch c.b {
	case b10x:
		return serial*10*c.lock + 10*time.Second
	case bHang:
		return 4 * time.Second
	case bCustom:
		return 2*c.work + 30*time.Second
	}
	return serial*3*c.lock + 8*time.Second
}

// outcome is what a cell observed.
type outcome struct {
	cell
	fired       bool
	run1, final process.Summary
	crashed     bool // the first run died at its crash point (its summary is not checked)
	states      map[string]endState
	problems    []string
	elapsed     time.Duration
	unseen      int64  // deliveries in flight to a closing receive link, locked until their lock expired
	runErr      string // run 1 failed to receive after a connection fault (tolerated, shown)
	expired     bool   // session cells: the session lock fault fired
	cutShort    int    // session cells: processor calls whose context ended with their session's lock lost
	races       int    // session cells: calls started within expiryRace of a call cut short by the lock's expiry
}

// expected returns the end states a logical message may have in c.
func (c cell) expected(id string, o *outcome) []endState {
	if id == "d" {
		if c.c == crashAfterRecord {
			// The row was written, the message never deferred: reconciliation removes the stale row and the
			// last run defers the message again.
			return []endState{stDeferred}
		}
		if c.sess && c.b == bHang {
			// Its copy is in s2 behind m2, which hangs in every run: a session is processed in order.
			return []endState{stCompleted, stAvailable}
		}
		return []endState{stCompleted}
	}
	var want []endState
	switch c.b {
	case bFast, b3x, b10x, bCustom:
		want = []endState{stCompleted}
		if o.final.LocksLost > 0 {
			want = append(want, stAvailable) // lost in the last run too: redelivered later
		}
		if c.f == fMgmtSlow {
			// No renewal can succeed: every delivery longer than a lock ends with its lock lost, and a run
			// that still receives takes the message again, until MaxDeliveryCount dead-letters it.
			want = append(want, stDeadLettered, stAvailable)
		}
	case bHang:
		want = []endState{stAvailable}
	case bPanic:
		// Abandoned and received again at once until MaxDeliveryCount moves it to the dead-letter queue; a
		// slow cell may end before the tenth delivery.
		want = []endState{stDeadLettered, stAvailable}
	case bError:
		want = []endState{stDeadLettered} // abandoned once, dead-lettered by the processor on redelivery
	}
	return want
}

// runCell runs one cell: send, a run with the fault (and a defer crash point), a drain (with a resubmit crash
// point), recovery (reconcile, resubmit), a last run without faults, then the end state of every message.
func runCell(t *testing.T, c cell) *outcome {
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	w := newWorld(t, c)
	o := &outcome{cell: c}
	msgs := map[string]behaviour{"d": bDefer}
	for i := range c.messages() {
		msgs[fmt.Sprintf("m%d", i+1)] = c.b
	}
	w.proc.work = c.work
	w.send(ctx, msgs)

	deferCrash, resubmitCrash := crashNone, crashNone
	switch c.c {
	case crashAfterRecord, crashAfterDefer:
		deferCrash = c.c
	case crashAfterReceive, crashAfterSend, crashAfterSettle:
		resubmitCrash = c.c
	}

	// Run 1, with the fault.
	r1 := w.runner(deferCrash, c.f == fTablesDown)
	before := w.counters()
	stop := w.inject(c)
	s1, err := r1.run(ctx)
	stop()
	o.run1, o.crashed = s1, deferCrash != crashNone && r1.fired.Load()
	o.fired = r1.fired.Load()
	switch {
	case err == nil || o.crashed:
	case errors.Is(err, process.ErrReceive) && (c.f == fConnDrop || c.f == fTwoDrops):
		// After a dropped connection the SDK can give up on receiving (seen: the emulator refusing an End for
		// a session of the old connection); the run stops receiving, settles what it holds and fails. The
		// cell still checks that nothing is lost.
		o.runErr = err.Error()
	default:
		t.Errorf("run 1: %v", err)
	}
	w.awaitUnlocked(ctx)
	if !o.crashed {
		o.check("run 1", s1, before, w.counters(), c.f)
	}
	if c.noLoss && (s1.LocksLost != 0 || (o.runErr == "" && s1.Completed != int64(c.messages()))) {
		o.problems = append(o.problems, fmt.Sprintf("run 1 lost %d locks and completed %d of %d messages; want none lost, all completed",
			s1.LocksLost, s1.Completed, c.messages()))
	}

	// The drain, with a resubmit crash point; then recovery as an operator would do it.
	d := w.drainer(resubmitCrash)
	d.resubmitAll(ctx)
	if resubmitCrash != crashNone {
		o.fired = d.fired.Load()
	}
	w.awaitLeases(ctx)
	w.awaitUnlocked(ctx)
	rec := w.drainer(crashNone)
	rec.reconcileAll(ctx)
	if res := rec.resubmitAll(ctx); len(res.Failed) > 0 {
		o.problems = append(o.problems, fmt.Sprintf("recovery resubmit failed: %+v", res.Failed))
	}

	// The last run, without faults.
	w.awaitUnlocked(ctx)
	rf := w.runner(crashNone, false)
	before = w.counters()
	sf, err := rf.run(ctx)
	if err != nil {
		t.Errorf("last run: %v", err)
	}
	o.final = sf
	w.awaitUnlocked(ctx)
	o.check("last run", sf, before, w.counters(), fNone)

	states, problems := w.inspect(ctx, sortedKeys(msgs))
	o.states = states
	for _, p := range problems {
		o.problems = append(o.problems, p.Error())
	}
	if c.sess {
		problems, races := w.proc.sessionProblems(states)
		o.problems, o.races = append(o.problems, problems...), races
		o.expired, o.cutShort = w.expired.Load(), w.proc.sessionLost()
		switch {
		case c.f != fSessionExpired || o.crashed:
		case !o.expired:
			o.problems = append(o.problems, "the lock of session s1 was never expired: the run did not hold it after the fault's time")
		case (c.b == b3x || c.b == b10x) && o.cutShort == 0:
			// The lock expired while m1's work (several locks long) was in progress: its processor must be told.
			o.problems = append(o.problems, "the lock of session s1 expired during m1's work, but no processor call ended with ErrSessionLockLost as its cause")
		}
	}
	for _, id := range sortedKeys(msgs) {
		want := c.expected(id, o)
		if !containsState(want, states[id]) {
			o.problems = append(o.problems, fmt.Sprintf("%s (%s) ended %q, want %v", id, msgs[id], states[id], want))
		}
	}
	o.elapsed = time.Since(start)
	return o
}

func containsState(want []endState, s endState) bool {
	for _, w := range want {
		if w == s {
			return true
		}
	}
	return false
}

// check compares a run's summary with the emulator's counters over the run (and until its locks expired).
// Renewals may exceed the summary's when replies are lost or late (the service renewed, the run gave up).
// The emulator counts explicit dead-letters only, as the run does; MaxDeliveryCount moves are not in either.
func (o *outcome) check(what string, s process.Summary, before, after broker.Counters, f fault) {
	d := func(a, b uint64) int64 { return int64(a - b) }
	var bad []string
	if got := d(after.Completed, before.Completed); got != s.Completed {
		bad = append(bad, fmt.Sprintf("completed %d ≠ summary %d", got, s.Completed))
	}
	if got := d(after.Abandoned, before.Abandoned); got != s.Abandoned {
		bad = append(bad, fmt.Sprintf("abandoned %d ≠ summary %d", got, s.Abandoned))
	}
	if got := d(after.DeadLettered, before.DeadLettered); got != s.DeadLettered {
		bad = append(bad, fmt.Sprintf("dead-lettered %d ≠ summary %d", got, s.DeadLettered))
	}
	if got := d(after.Deferred, before.Deferred); got != s.Deferred {
		bad = append(bad, fmt.Sprintf("deferred %d ≠ summary %d", got, s.Deferred))
	}
	// Deliveries the run never saw: released by the SDK (credit left on the receive link), or in flight to the
	// link when the run closed it, which stay locked until their lock expires (the race the split receiver
	// keeps small by closing the link as soon as receiving ends). Every lock that expired is one the run
	// reported lost, or one of those.
	//
	// In a session cell, the locks of a session's messages end with the session's: by expiry, or when the run
	// closes the session's receiver (after a renewal answered session-lock-lost, the run lets go of a lock the
	// service may still hold, and the messages are available again at once).
	unseen := d(after.Received, before.Received) - d(after.Released, before.Released) - s.Received
	ended := d(after.LockExpired, before.LockExpired) + d(after.SessionReleased, before.SessionReleased)
	if unseen < 0 || ended != s.LocksLost+unseen {
		bad = append(bad, fmt.Sprintf("locks expired or released with their session %d ≠ summary locks lost %d + %d deliveries the run never saw", ended, s.LocksLost, unseen))
	}
	if unseen > 0 {
		o.unseen += unseen
	}
	// A session's hold may end (the session released when idle) while its renewal is in flight: the service
	// renewed, the run stopped waiting. At most one such renewal per session.
	renewed := d(after.LockRenewed, before.LockRenewed)
	lossy := f == fConnDrop || f == fMgmtSlow || f == fTwoDrops
	if renewed < int64(s.Renewals) || (!lossy && renewed > int64(s.Renewals)+s.Sessions) {
		bad = append(bad, fmt.Sprintf("locks renewed %d vs summary %d (%d sessions)", renewed, s.Renewals, s.Sessions))
	}
	if len(bad) > 0 {
		o.problems = append(o.problems, what+" summary vs emulator: "+strings.Join(bad, "; "))
	}
}

// inject starts c's fault for the first run and returns the function that ends it (and joins its goroutine).
func (w *world) inject(c cell) (stop func()) {
	fs := w.srv.Faults()
	lead := min(c.lock/2, 10*time.Second)
	done := make(chan struct{})
	var wg sync.WaitGroup
	switch c.f {
	case fRenewTransient:
		must(w.t, fs.FailRenewLocks(3, 503))
	case fRenewLost:
		must(w.t, fs.FailRenewLocks(1, 410))
	case fMgmtSlow:
		must(w.t, fs.DelayManagement(lead+c.lock/10))
	case fIdleDetach:
		must(w.t, fs.DetachIdleReceivers(lead, true))
	case fTwoDrops:
		must(w.t, fs.FailRenewLocks(3, 503))
		wg.Go(func() {
			for i, at := range []time.Duration{2 * time.Second, 8 * time.Second} {
				t := time.NewTimer(at - time.Duration(i)*2*time.Second)
				select {
				case <-t.C:
				case <-done:
					t.Stop()
					return
				}
				if i == 0 {
					must(w.t, fs.RefuseConnections(time.Second))
				}
				fs.DropConnections()
			}
		})
	case fSessionExpired:
		// While s1 works on its first message (or, for work that ends at once, while it waits for more):
		// expire its lock once, as soon as it is locked from then on.
		at := 6 * c.lock / 5
		if c.b == bFast || c.b == bPanic || c.b == bError {
			at = 300 * time.Millisecond
		}
		wg.Go(func() {
			t := time.NewTimer(at)
			defer t.Stop()
			select {
			case <-t.C:
			case <-done:
				return
			}
			tick := time.NewTicker(20 * time.Millisecond)
			defer tick.Stop()
			for {
				if err := fs.ExpireSessionLock(queue, sessionIDs[0]); err == nil {
					w.expired.Store(true)
					return
				} else if !errors.Is(err, broker.ErrSessionLockLost) {
					w.t.Errorf("expire the lock of session %s: %v", sessionIDs[0], err)
					return
				}
				select {
				case <-tick.C:
				case <-done:
					return
				}
			}
		})
	case fConnDrop:
		at := 6 * c.lock / 5
		if c.b == bFast {
			at = 300 * time.Millisecond // the run only waits for more messages by then
		}
		wg.Go(func() {
			t := time.NewTimer(at)
			defer t.Stop()
			select {
			case <-t.C:
				fs.DropConnections()
			case <-done:
			}
		})
	}
	return func() {
		close(done)
		wg.Wait()
		fs.Reset()
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// awaitLeases waits until no ledger row is under a live drain lease.
func (w *world) awaitLeases(ctx context.Context) {
	w.t.Helper()
	rows, _, err := w.ledger(&testenv.Outage{}).List(ctx, 1000, "")
	if err != nil {
		w.t.Fatal(err)
	}
	var until time.Time
	for _, r := range rows {
		if r.LeaseUntil.After(until) {
			until = r.LeaseUntil
		}
	}
	if d := time.Until(until); d > 0 {
		time.Sleep(d + 10*time.Millisecond) // a lease is a time: waiting for it to pass
	}
}

// TestReliability runs the matrix: the CI-sized selection, or every cell with -reliability.full, and prints it.
func TestReliability(t *testing.T) {
	cells := append(ciCells, twoDrops(8))
	if *full {
		cells = nil
		for _, b := range allBehaviours {
			for _, f := range allFaults {
				for _, c := range allCrashes {
					cells = append(cells, cell{b: b, f: f, c: c})
				}
			}
		}
		cells = append(cells, twoDrops(16))
		for _, b := range allBehaviours {
			for _, f := range allSessionFaults {
				for _, c := range allCrashes {
					cells = append(cells, cell{sess: true, b: b, f: f, c: c})
				}
			}
		}
	}
	var mu sync.Mutex
	var results []*outcome
	t.Run("cells", func(t *testing.T) {
		for _, c := range cells {
			c.lock = cmp.Or(c.lock, 2*time.Second)
			t.Run(c.name(), func(t *testing.T) {
				t.Parallel() // as many cells at once as go test's -parallel allows
				o := runCell(t, c)
				mu.Lock()
				results = append(results, o)
				mu.Unlock()
				for _, p := range o.problems {
					t.Error(p)
				}
			})
		}
	})
	printMatrix(t, results)
}

func printMatrix(t *testing.T, results []*outcome) {
	// order as the axes are listed
	idx := func(o *outcome) int {
		if o.f == fTwoDrops {
			return 1 << 20
		}
		i := 0
		if o.sess {
			i = 1 << 21
		}
		for bi, b := range allBehaviours {
			if b == o.b {
				i = bi
			}
		}
		for fi, f := range allSessionFaults {
			if f == o.f {
				i = i*len(allSessionFaults) + fi
			}
		}
		for ci, c := range allCrashes {
			if c == o.c {
				i = i*len(allCrashes) + ci
			}
		}
		return i
	}
	sortOutcomes(results, idx)
	var b strings.Builder
	fmt.Fprintf(&b, "\nreliability matrix: %d cells; 2s locks (the 2-drop cell: 5s), 3 messages per cell (2-drop: 8 or 16) and \"d\", deferred then resubmitted;\n", len(results))
	fmt.Fprintf(&b, "session cells: a session queue, d, m2 in session s2 and m1, m3 in s1\n")
	fmt.Fprintf(&b, "%-8s %-9s %-22s %-20s %-5s | %-30s | %-30s | %-24s | %s\n", "entity", "processor", "fault", "crash point", "fired",
		"run 1 rcv/cmp/abd/dl/dfr/lost/stk", "last run rcv/cmp/abd/dl/dfr/lost/stk", "end state: m…, d", "result")
	bad := 0
	for _, o := range results {
		res := "ok"
		if len(o.problems) > 0 {
			res, bad = fmt.Sprintf("FAIL (%d)", len(o.problems)), bad+1
		}
		run1 := sum(o.run1)
		if o.crashed {
			run1 = "crashed"
		}
		if o.unseen > 0 {
			res += fmt.Sprintf(" (%d unseen)", o.unseen)
		}
		if o.runErr != "" {
			res += " (run 1 receive failed)"
		}
		entity := "queue"
		if o.sess {
			entity = "sessions"
			if n := o.run1.SessionLocksLost + o.final.SessionLocksLost; n > 0 || o.cutShort > 0 {
				res += fmt.Sprintf(" (%d session locks lost, %d calls cut short)", n, o.cutShort)
			}
			if o.races > 0 {
				res += fmt.Sprintf(" (%d redeliveries started as the expired call was told)", o.races)
			}
		}
		fmt.Fprintf(&b, "%-8s %-9s %-22s %-20s %-5t | %-30s | %-30s | %-24s | %s %s\n", entity, o.b, o.f, o.c, o.fired, run1, sum(o.final),
			ends(o.states), res, o.elapsed.Round(time.Second))
	}
	fmt.Fprintf(&b, "%d of %d cells lose or strand nothing and match the emulator's counters\n", len(results)-bad, len(results))
	fmt.Fprintf(&b, "columns: received/completed/abandoned/dead-lettered/deferred/locks lost/stuck; end state: done = completed once\n")
	fmt.Fprintf(&b, "by the processor, avail = available again, dfr+row = deferred and indexed, dlq = dead-lettered with a reason;\n")
	fmt.Fprintf(&b, "unseen = deliveries in flight to a receive link as the run closed it (locked until their lock expired)\n")
	fmt.Print(b.String())
}

func sum(s process.Summary) string {
	return fmt.Sprintf("%d/%d/%d/%d/%d/%d/%d", s.Received, s.Completed, s.Abandoned, s.DeadLettered, s.Deferred, s.LocksLost, s.Stuck)
}

// ends shows the end states: how many of the m messages ended in each state, then d's.
func ends(states map[string]endState) string {
	n := map[string]int{}
	for id, st := range states {
		if id != "d" {
			n[short(st)]++
		}
	}
	var parts []string
	for _, k := range sortedKeys(n) {
		parts = append(parts, fmt.Sprintf("%d %s", n[k], k))
	}
	return strings.Join(parts, ",") + "; d " + short(states["d"])
}

func short(s endState) string {
	switch s {
	case stCompleted:
		return "done"
	case stAvailable:
		return "avail"
	case stDeferred:
		return "dfr+row"
	case stDeadLettered:
		return "dlq"
	}
	return "?"
}

func sortOutcomes(os []*outcome, key func(*outcome) int) {
	for i := 1; i < len(os); i++ {
		for j := i; j > 0 && key(os[j]) < key(os[j-1]); j-- {
			os[j], os[j-1] = os[j-1], os[j]
		}
	}
}
