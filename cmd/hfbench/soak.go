package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"net/http"
	"os"
	"runtime"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus"

	holdfast "github.com/holdfast-dev/holdfast"
	"github.com/holdfast-dev/holdfast/emulator/admin"
	"github.com/holdfast-dev/holdfast/internal/benchkit"
	"github.com/holdfast-dev/holdfast/internal/ledger"
	"github.com/holdfast-dev/holdfast/internal/testenv"
	"github.com/holdfast-dev/holdfast/processor"
)

// soakOptions configure the soak.
type soakOptions struct {
	emulator string // sbemulator binary
	messages int
	budget   time.Duration // HOLDFAST_RUN_BUDGET of each run
	lock     time.Duration // the queue's lock duration (and HOLDFAST_LOCK_DURATION)
	out      string        // JSON summary file; "" ⇒ none
}

// Soak outcome classes, chosen by a hash of the message ID (per mille).
const (
	classComplete   = "complete"       // completed at once
	classFailOnce   = "fail-once"      // abandoned on its first delivery, completed on the next
	classPanicOnce  = "panic-once"     // the processor panics on its first delivery, completes on the next
	classDeadLetter = "dead-letter"    // dead-lettered
	classDeferOnce  = "defer-once"     // deferred for 2 s, completed when a later run takes it back
	classSlow       = "slow"           // worked on for 1.2 locks (renewed), then completed
	soakDeferFor    = 2 * time.Second  // not-before of defer-once
	soakWorkLocks   = 1.2              // slow work, in lock durations
	soakGoroutineTo = 10 * time.Second // how long a run's goroutines get to wind down before the count is taken
	soakMaxRuns     = 400              // safety stop
	soakRunTimeout  = 15 * time.Minute // per ProcessQueue call
	soakSettleWait  = 200 * time.Millisecond
)

// soakClass returns the outcome class of the message with this ID: 94.4 % complete, 2 % fail-once, 0.5 %
// panic-once, 2 % dead-letter, 1 % defer-once, 0.1 % slow.
func soakClass(id string) string {
	h := fnv.New32a()
	h.Write([]byte(id))
	switch v := h.Sum32() % 1000; {
	case v < 20:
		return classFailOnce
	case v < 25:
		return classPanicOnce
	case v < 45:
		return classDeadLetter
	case v < 55:
		return classDeferOnce
	case v < 56:
		return classSlow
	default:
		return classComplete
	}
}

// soakProcessor acts on each message by its class. It keeps no state, so the process's memory is the handler's.
type soakProcessor struct {
	work time.Duration // how long a slow message is worked on
}

func (p *soakProcessor) Process(ctx context.Context, m *azservicebus.ReceivedMessage) processor.Outcome {
	switch soakClass(m.MessageID) {
	case classFailOnce:
		if m.DeliveryCount <= 1 {
			return processor.Abandon(errors.New("soak: transient failure"))
		}
	case classPanicOnce:
		if m.DeliveryCount <= 1 {
			panic("soak: processor panic")
		}
	case classDeadLetter:
		return processor.DeadLetter("Soak", "dead-lettered by the soak")
	case classDeferOnce:
		if m.State != azservicebus.MessageStateDeferred {
			return processor.Defer(time.Now().Add(soakDeferFor), "soak")
		}
	case classSlow:
		t := time.NewTimer(p.work)
		defer t.Stop()
		select {
		case <-t.C:
		case <-ctx.Done():
			return processor.Abandon(context.Cause(ctx))
		}
	}
	return processor.Complete()
}

// SoakResult is the soak's summary, written as JSON for the benchmark report.
type SoakResult struct {
	Date          time.Time      `json:"date"`
	Machine       string         `json:"machine"`
	Messages      int            `json:"messages"`
	Expected      map[string]int `json:"expected"` // messages per outcome class
	Runs          int            `json:"runs"`
	Seconds       float64        `json:"seconds"` // from the first run to the last`
	Received      int64          `json:"received"`
	Completed     int64          `json:"completed"`
	Abandoned     int64          `json:"abandoned"`
	DeadLettered  int64          `json:"deadLettered"`
	Deferred      int64          `json:"deferred"`
	Due           int64          `json:"due"`
	Renewals      uint64         `json:"renewals"`
	LocksLost     int64          `json:"locksLost"`
	Stuck         int64          `json:"stuck"`
	Lost          int            `json:"lost"`          // sent, but neither completed nor dead-lettered at the end
	Duplicates    int64          `json:"duplicates"`    // completions beyond one per message (the emulator's count)
	GoroutineBase int            `json:"goroutineBase"` // after the first run (see goroutines: pooled HTTP connections left out)
	GoroutineMin  int            `json:"goroutineMin"`  // the smallest count after any run, once wound down
	GoroutineMax  int            `json:"goroutineMax"`  // the largest count after any run, once wound down
	RSSFirstMiB   float64        `json:"rssFirstMiB"`   // after the first run
	RSSMaxMiB     float64        `json:"rssMaxMiB"`     // the largest after any run
	RSSLastMiB    float64        `json:"rssLastMiB"`
	HeapFirstMiB  float64        `json:"heapFirstMiB"` // in use after a GC, after the first run
	HeapLastMiB   float64        `json:"heapLastMiB"`
	LedgerLeft    int            `json:"ledgerLeft"` // ledger rows left at the end (want 0)
	Load          string         `json:"load"`       // load average at the end
}

// soak sends o.messages with mixed outcomes to one queue, then fires ProcessQueue timer runs of the real
// handler (holdfast.Run as a custom handler, with a ledger in Azurite) until every message is settled, checking
// after each run that the process's goroutines are back to their count after the first run, and sampling its
// memory. The handler and the driver run in this process; the emulator (cmd/sbemulator) and Azurite are child
// processes, so the goroutines and memory measured are the handler's.
func soak(w io.Writer, o soakOptions) (*SoakResult, error) {
	start := time.Now()
	tables, stopAzurite, err := testenv.StartAzurite()
	if err != nil {
		return nil, err
	}
	defer stopAzurite()
	const queue = "soak"
	emu, err := benchkit.StartEmulator(o.emulator, benchkit.QueueConfig(o.lock, queue))
	if err != nil {
		return nil, err
	}
	defer emu.Close()
	stats := func() (admin.EntityStats, error) {
		st, err := emu.Stats(context.Background())
		if err != nil {
			return admin.EntityStats{}, err
		}
		e, ok := benchkit.Entity(st, queue)
		if !ok {
			return e, fmt.Errorf("the emulator has no queue %q", queue)
		}
		return e, nil
	}

	proc := &soakProcessor{work: time.Duration(soakWorkLocks * float64(o.lock))}
	settings := map[string]string{
		"FUNCTIONS_CUSTOMHANDLER_PORT": "0", "ServiceBusConnection": emu.ConnectionString, "HOLDFAST_ENTITY": queue,
		"DeferralStorage": tables, "HOLDFAST_DEFERRAL_TABLE": fmt.Sprintf("soak%d", time.Now().Unix()),
		"HOLDFAST_RUN_BUDGET": o.budget.String(), "HOLDFAST_LOCK_DURATION": o.lock.String(),
		"AzureFunctionsJobHost__functionTimeout": "00:10:00",
	}
	logs, err := os.CreateTemp("", "soak-*.log")
	if err != nil {
		return nil, err
	}
	defer os.Remove(logs.Name())
	defer logs.Close()
	addrc := make(chan string, 1)
	ctx, cancel := context.WithCancel(context.Background())
	handlerDone := make(chan error, 1)
	go func() {
		handlerDone <- holdfast.Run(ctx, &holdfast.Options{Processor: proc, Getenv: func(k string) string { return settings[k] },
			Dir: os.TempDir(), Stdout: logs, Stderr: logs, NoMessageWait: time.Second, Ready: func(a string) { addrc <- a }})
	}()
	defer func() {
		cancel()
		<-handlerDone
	}()
	var addr string
	select {
	case addr = <-addrc:
	case err := <-handlerDone:
		return nil, fmt.Errorf("handler stopped at start: %v", err)
	}

	client, err := azservicebus.NewClientFromConnectionString(emu.ConnectionString, nil)
	if err != nil {
		return nil, err
	}
	defer client.Close(context.Background())
	expected := map[string]int{}
	for i := range o.messages {
		expected[soakClass(fmt.Sprintf("soak-%d", i))]++
	}
	if err := benchkit.Send(context.Background(), client, queue, o.messages, 256, "soak-"); err != nil {
		return nil, err
	}

	res := &SoakResult{Date: start.UTC(), Machine: benchkit.Machine(), Messages: o.messages, Expected: expected}
	sampler := testenv.StartPeakSampler()
	runsStart := time.Now()
	for res.Runs < soakMaxRuns {
		s, err := fireRun(addr)
		if err != nil {
			sampler.Stop()
			return nil, fmt.Errorf("run %d: %w", res.Runs+1, err)
		}
		res.Runs++
		res.Received += s.Received
		res.Completed += s.Completed
		res.Abandoned += s.Abandoned
		res.DeadLettered += s.DeadLettered
		res.Deferred += s.Deferred
		res.Due += s.Due
		res.Renewals += s.Renewals
		res.LocksLost += s.LocksLost
		res.Stuck += s.Stuck

		g := settledGoroutines(res.GoroutineBase, res.Runs == 1)
		var ms runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&ms)
		rss := float64(testenv.RSS()) / (1 << 20)
		heap := float64(ms.HeapInuse) / (1 << 20)
		if res.Runs == 1 {
			res.GoroutineBase, res.RSSFirstMiB, res.HeapFirstMiB = g, rss, heap
			res.GoroutineMin, res.GoroutineMax = g, g
		} else {
			res.GoroutineMin, res.GoroutineMax = min(res.GoroutineMin, g), max(res.GoroutineMax, g)
		}
		res.RSSMaxMiB = max(res.RSSMaxMiB, rss)
		res.RSSLastMiB, res.HeapLastMiB = rss, heap
		fmt.Fprintf(os.Stderr, "soak: run %d: %s; goroutines %d; RSS %.1f MiB\n", res.Runs, s, g, rss)

		st, err := stats()
		if err != nil {
			sampler.Stop()
			return nil, err
		}
		if st.Active == 0 && st.Deferred == 0 && st.Locked == 0 && st.Scheduled == 0 {
			break
		}
		if s.Received == 0 && st.Deferred > 0 {
			time.Sleep(soakSettleWait) // deferred messages not yet due: wait for the clock, there is no event
		}
	}
	sampler.Stop()
	res.RSSMaxMiB = max(res.RSSMaxMiB, float64(sampler.RSS)/(1<<20))
	res.Seconds = time.Since(runsStart).Seconds()

	st, err := stats()
	if err != nil {
		return nil, err
	}
	dead := st.DeadLettered
	completedByEmulator := int(st.Counters.Completes)
	res.Lost = o.messages - min(o.messages, completedByEmulator+dead) + st.Active + st.Deferred + st.Locked
	res.Duplicates = int64(max(0, completedByEmulator+dead-o.messages))
	if res.LedgerLeft, err = ledgerRows(tables, settings["HOLDFAST_DEFERRAL_TABLE"]); err != nil {
		return nil, err
	}
	res.Load = benchkit.LoadAverage()
	if st.Active+st.Deferred+st.Locked != 0 {
		return res, fmt.Errorf("the queue is not empty after %d runs: %+v", res.Runs, st)
	}
	return res, nil
}

// fireRun fires one ProcessQueue timer invocation, as the Functions host does, and returns its summary.
func fireRun(addr string) (holdfast.Summary, error) {
	ctx, cancel := context.WithTimeout(context.Background(), soakRunTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+addr+"/ProcessQueue",
		strings.NewReader(`{"Data":{"timer":{"Schedule":{"AdjustForDST":true},"ScheduleStatus":null,"IsPastDue":false}},"Metadata":{}}`))
	if err != nil {
		return holdfast.Summary{}, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return holdfast.Summary{}, err
	}
	defer resp.Body.Close()
	var inv struct{ ReturnValue holdfast.Summary }
	if err := json.NewDecoder(resp.Body).Decode(&inv); err != nil || resp.StatusCode != http.StatusOK {
		return holdfast.Summary{}, fmt.Errorf("ProcessQueue answered %d (%v)", resp.StatusCode, err)
	}
	return inv.ReturnValue, nil
}

// settledGoroutines returns the goroutine count once the run's goroutines have wound down. After the first
// run (first), that is when the count has not changed for a second; after a later run, when it is at most base.
// Either way it gives up after soakGoroutineTo and returns the count then.
func settledGoroutines(base int, first bool) int {
	deadline := time.Now().Add(soakGoroutineTo)
	last, since := goroutines(), time.Now()
	for {
		n := goroutines()
		if n != last {
			last, since = n, time.Now()
		}
		switch {
		case time.Now().After(deadline):
			return n
		case first && time.Since(since) >= time.Second:
			return n
		case !first && n <= base:
			return n
		}
		time.Sleep(20 * time.Millisecond) // polling a count; there is no event for it
	}
}

// goroutines counts this process's goroutines, leaving out those of pooled HTTP keep-alive connections (the
// Table Storage client's and the driver's to the handler, and the handler's server side of the latter): their
// number follows how many requests happened to overlap, and net/http closes them when they idle out.
func goroutines() int {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	count := 0
	for g := range strings.SplitSeq(string(buf), "\n\n") {
		if strings.TrimSpace(g) == "" || strings.Contains(g, "net/http.(*persistConn)") || strings.Contains(g, "net/http.(*conn).serve") {
			continue
		}
		count++
	}
	return count
}

// ledgerRows counts the rows left in the ledger table.
func ledgerRows(conn, table string) (int, error) {
	c, err := ledger.NewClientFromConnectionString(conn, table, nil)
	if err != nil {
		return 0, err
	}
	n := 0
	pager := c.NewListEntitiesPager(nil)
	for pager.More() {
		page, err := pager.NextPage(context.Background())
		if err != nil {
			return 0, fmt.Errorf("list ledger rows: %w", err)
		}
		n += len(page.Entities)
	}
	return n, nil
}

// writeSoak prints the soak's table to w and, when path is set, writes r there as JSON.
func writeSoak(w io.Writer, r *SoakResult, path string) error {
	fmt.Fprint(w, soakTable(r))
	if path == "" {
		return nil
	}
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

// soakTable renders r as a Markdown table.
func soakTable(r *SoakResult) string {
	var b strings.Builder
	fmt.Fprintf(&b, "| measure | value |\n|---|---|\n")
	fmt.Fprintf(&b, "| messages (outcome classes) | %d (%s) |\n", r.Messages, classList(r.Expected))
	fmt.Fprintf(&b, "| runs, wall time | %d runs, %.0f s (%.0f msg/s overall) |\n", r.Runs, r.Seconds, float64(r.Messages)/r.Seconds)
	fmt.Fprintf(&b, "| **lost** (neither completed nor dead-lettered) | **%d** |\n", r.Lost)
	fmt.Fprintf(&b, "| completed beyond once per message | %d |\n", r.Duplicates)
	fmt.Fprintf(&b, "| summaries: received / completed / abandoned / dead-lettered / deferred / due | %d / %d / %d / %d / %d / %d |\n",
		r.Received, r.Completed, r.Abandoned, r.DeadLettered, r.Deferred, r.Due)
	fmt.Fprintf(&b, "| renewals, locks lost, stuck | %d, %d, %d |\n", r.Renewals, r.LocksLost, r.Stuck)
	fmt.Fprintf(&b, "| goroutines after each run, wound down (pooled HTTP connections left out) | %d after run 1 (the baseline: the Service Bus connection, the HTTP server, the sampler); %d–%d after runs 1–%d |\n",
		r.GoroutineBase, r.GoroutineMin, r.GoroutineMax, r.Runs)
	fmt.Fprintf(&b, "| RSS after run 1 / largest / last | %.1f / %.1f / %.1f MiB |\n", r.RSSFirstMiB, r.RSSMaxMiB, r.RSSLastMiB)
	fmt.Fprintf(&b, "| heap in use after GC, run 1 / last | %.1f / %.1f MiB |\n", r.HeapFirstMiB, r.HeapLastMiB)
	fmt.Fprintf(&b, "| ledger rows left | %d |\n", r.LedgerLeft)
	return b.String()
}

func classList(m map[string]int) string {
	var parts []string
	for _, c := range []string{classComplete, classFailOnce, classPanicOnce, classDeadLetter, classDeferOnce, classSlow} {
		parts = append(parts, fmt.Sprintf("%s %d", c, m[c]))
	}
	return strings.Join(parts, ", ")
}
