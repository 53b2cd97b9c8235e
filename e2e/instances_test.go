package e2e

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/data/aztables"
	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus"

	"github.com/holdfast-dev/holdfast/emulator"
	"github.com/holdfast-dev/holdfast/emulator/broker"
	"github.com/holdfast-dev/holdfast/internal/fleet"
	"github.com/holdfast-dev/holdfast/internal/testenv"
)

// fleetService is the webhook the workers call: it records every call and its answer per message id. A
// message whose body is "defer" is answered 429 with Retry-After: 1 the first time (the run defers it through
// the ledger, and a later run — of any instance — takes it back once due), 200 afterwards; "slow" works for
// longer than the lock lasts, so its instance must keep renewing while the others receive; every other
// message gets 200 after a short piece of work, so that messages spread over the instances.
type fleetService struct {
	work, slow time.Duration

	mu        sync.Mutex
	calls     map[string]int // guarded by mu: calls per message id
	completed map[string]int // guarded by mu: 2xx answers per message id
}

func (w *fleetService) ServeHTTP(rw http.ResponseWriter, r *http.Request) {
	id := r.Header.Get("X-Holdfast-Message-Id")
	var body [16]byte
	n, _ := r.Body.Read(body[:])
	w.mu.Lock()
	w.calls[id]++
	first := w.calls[id] == 1
	w.mu.Unlock()
	if string(body[:n]) == "defer" && first {
		rw.Header().Set("Retry-After", "1")
		rw.WriteHeader(http.StatusTooManyRequests)
		return
	}
	work := w.work
	if string(body[:n]) == "slow" {
		work = w.slow
	}
	select {
	case <-time.After(work):
	case <-r.Context().Done(): // the run gave up on it (lock lost, budget): no 2xx is recorded
		return
	}
	w.mu.Lock()
	w.completed[id]++
	w.mu.Unlock()
	rw.WriteHeader(http.StatusOK)
}

func (w *fleetService) snapshot() (calls, completed map[string]int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	calls, completed = map[string]int{}, map[string]int{}
	for k, v := range w.calls {
		calls[k] = v
	}
	for k, v := range w.completed {
		completed[k] = v
	}
	return calls, completed
}

// instancesN is how many worker processes the test runs: small on CI's two cores; HOLDFAST_TEST_INSTANCES
// raises it.
func instancesN(t *testing.T) int {
	n := 3
	if v := os.Getenv("HOLDFAST_TEST_INSTANCES"); v != "" {
		if _, err := fmt.Sscan(v, &n); err != nil || n < 1 {
			t.Fatalf("HOLDFAST_TEST_INSTANCES=%q", v)
		}
	}
	return n
}

// Several `handler worker` processes — the real binary — on one emulator queue with one ledger table: every
// message is completed by exactly one instance (a second 2xx for a message would need a lost lock, which the
// summaries would count), the instances' summaries add up to the broker's own counts, each deferred message
// is taken back once by whichever instance's run comes first, and no ledger row, deferred message or
// dead-letter is left. Then SIGTERM stops every worker with exit 0.
func TestManyWorkersOneQueue(t *testing.T) {
	const (
		plain    = 90
		deferred = 15
		slow     = 3
		total    = plain + deferred + slow
		lock     = 3 * time.Second
	)
	n := instancesN(t)
	srv, err := emulator.Start(&emulator.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	props := broker.DefaultQueueProperties()
	props.LockDuration, props.MaxDeliveryCount = lock, 10
	if err := srv.Broker().CreateQueue("fleet", props); err != nil {
		t.Fatal(err)
	}
	svc := &fleetService{work: 30 * time.Millisecond, slow: lock + time.Second, calls: map[string]int{}, completed: map[string]int{}}
	hook := httptest.NewServer(svc)
	t.Cleanup(hook.Close)
	tables, table := testenv.Azurite(t), testenv.TableName(t)

	client, err := azservicebus.NewClientFromConnectionString(srv.ConnectionString(), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close(context.Background()) })
	sender, err := client.NewSender("fleet", nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for i := range total {
		body := "work"
		switch {
		case i < slow:
			body = "slow"
		case i < slow+deferred:
			body = "defer"
		}
		if err := sender.SendMessage(ctx, &azservicebus.Message{Body: []byte(body), MessageID: toPtr(fmt.Sprintf("m%03d", i))}, nil); err != nil {
			t.Fatal(err)
		}
	}
	sender.Close(ctx)

	env := append(hermeticEnv(),
		"ServiceBusConnection="+srv.ConnectionString(), "HOLDFAST_ENTITY=fleet",
		"DeferralStorage="+tables, "HOLDFAST_DEFERRAL_TABLE="+table,
		"HOLDFAST_PROCESSOR=webhook", "HOLDFAST_WEBHOOK_URL="+hook.URL,
		"HOLDFAST_BATCH_SIZE=4", "HOLDFAST_CONCURRENCY=4", "HOLDFAST_RUN_BUDGET=60s", "HOLDFAST_LOCK_DURATION="+lock.String())
	f, err := fleet.Start(fleet.Options{Binary: handlerBin, Env: env, N: n,
		Log: func(i int, line string) { t.Logf("worker %d: %s", i, line) }})
	if err != nil {
		t.Fatal(err)
	}
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			f.Kill()
		}
	})

	entity, err := srv.Broker().Entity("fleet")
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(2 * time.Minute)
	for {
		_, completed := svc.snapshot()
		st := entity.Stats()
		if len(completed) == total && st.Active == 0 && st.Deferred == 0 && st.Counters.Completed == total {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not done: %d of %d messages answered 2xx, queue %+v", len(completed), total, st)
		}
		time.Sleep(50 * time.Millisecond)
	}
	// The due rows are deleted right after the completes that end them; wait for the ledger to empty.
	for rows := ledgerRows(t, tables, table); rows != 0; rows = ledgerRows(t, tables, table) {
		if time.Now().After(deadline) {
			t.Fatalf("%d ledger rows left after every message was completed", rows)
		}
		time.Sleep(50 * time.Millisecond)
	}
	stopped = true
	if err := f.Stop(time.Minute); err != nil {
		t.Fatalf("SIGTERM: %v", err)
	}

	sum := f.Total()
	calls, completed := svc.snapshot()
	twice := 0
	for id, c := range completed {
		if c > 1 {
			twice += c - 1
			t.Logf("message %s answered 2xx %d times", id, c)
		}
	}
	if int64(twice) > sum.LocksLost {
		t.Errorf("%d second completions, but the instances lost only %d locks: a message was completed twice without a lost lock", twice, sum.LocksLost)
	}
	st := entity.Stats()
	if sum.Completed != total || st.Counters.Completed != total {
		t.Errorf("completed: instances %d, broker %d, want %d", sum.Completed, st.Counters.Completed, total)
	}
	if sum.Deferred != deferred || sum.Due != deferred || st.Counters.Deferred != deferred || st.Counters.ReceivedBySequence != deferred {
		t.Errorf("deferred %d and taken back %d by the instances, broker deferred %d and received by sequence %d; want %d each",
			sum.Deferred, sum.Due, st.Counters.Deferred, st.Counters.ReceivedBySequence, deferred)
	}
	if st.DeadLettered != 0 || st.Active != 0 || st.Deferred != 0 || st.Locked != 0 {
		t.Errorf("queue after the workers: %+v", st)
	}
	for id, c := range calls {
		if completed[id] == 0 {
			t.Errorf("message %s called %d times, never completed", id, c)
		}
	}
	busy := 0
	for _, p := range f.Procs() {
		runs, failed := p.Runs()
		pt := p.Total()
		t.Logf("worker %d: %d runs (%d failed), received %d, completed %d, deferred %d, due %d, locks lost %d, exit %d",
			p.Index, runs, failed, pt.Received, pt.Completed, pt.Deferred, pt.Due, pt.LocksLost, p.ExitCode())
		if failed != 0 {
			t.Errorf("worker %d: %d failed runs\n%s", p.Index, failed, p.Tail())
		}
		if pt.Completed > 0 {
			busy++
		}
	}
	if n > 1 && busy < 2 {
		t.Errorf("only %d of %d workers completed anything: the test did not run instances side by side", busy, n)
	}
}

// ledgerRows counts the rows of a ledger table.
func ledgerRows(t *testing.T, conn, table string) int {
	t.Helper()
	svc, err := aztables.NewServiceClientFromConnectionString(conn, nil)
	if err != nil {
		t.Fatal(err)
	}
	pager := svc.NewClient(table).NewListEntitiesPager(nil)
	rows := 0
	for pager.More() {
		page, err := pager.NextPage(context.Background())
		if err != nil {
			if strings.Contains(err.Error(), "TableNotFound") {
				return 0
			}
			t.Fatal(err)
		}
		rows += len(page.Entities)
	}
	return rows
}

func toPtr[T any](v T) *T { return &v }

// The real binary's command line: run-once exits with the code of how its run ended and prints the result as
// its last stdout line; an unknown mode exits 2 with the usage on stderr, before reading any setting.
func TestRunOnceBinary(t *testing.T) {
	srv, err := emulator.Start(&emulator.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	props := broker.DefaultQueueProperties()
	props.LockDuration = 2 * time.Second
	if err := srv.Broker().CreateQueue("once", props); err != nil {
		t.Fatal(err)
	}
	client, err := azservicebus.NewClientFromConnectionString(srv.ConnectionString(), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close(context.Background()) })
	sender, err := client.NewSender("once", nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range []string{`{}`, `{"outcome":"fail"}`} {
		if err := sender.SendMessage(context.Background(), &azservicebus.Message{Body: []byte(b)}, nil); err != nil {
			t.Fatal(err)
		}
	}
	sender.Close(context.Background())

	var mu sync.Mutex
	var last string
	env := append(hermeticEnv(), "ServiceBusConnection="+srv.ConnectionString(), "HOLDFAST_ENTITY=once", "HOLDFAST_RUN_BUDGET=15s")
	f, err := fleet.Start(fleet.Options{Binary: handlerBin, Args: []string{"run-once"}, Env: env, Log: func(_ int, line string) {
		mu.Lock()
		last = line
		mu.Unlock()
	}})
	if err != nil {
		t.Fatal(err)
	}
	_ = f.Wait(time.Minute) // exit 4 is the expected outcome, checked below
	p := f.Procs()[0]
	mu.Lock()
	defer mu.Unlock()
	if code := p.ExitCode(); code != 4 || !strings.Contains(last, `"result":"abandoned"`) || !strings.Contains(last, `"completed":1`) {
		t.Fatalf("run-once: exit %d, last line %s\n%s", code, last, p.Tail())
	}

	f, err = fleet.Start(fleet.Options{Binary: handlerBin, Args: []string{"run-twice"}, Env: hermeticEnv()})
	if err != nil {
		t.Fatal(err)
	}
	_ = f.Wait(time.Minute)
	if p := f.Procs()[0]; p.ExitCode() != 2 || !strings.Contains(p.Tail(), "usage: handler [run-once | worker | serve]") {
		t.Fatalf("unknown mode: exit %d\n%s", p.ExitCode(), p.Tail())
	}
}
