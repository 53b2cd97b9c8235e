package drain

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus"

	"github.com/holdfast-dev/holdfast/emulator"
	"github.com/holdfast-dev/holdfast/emulator/broker"
	"github.com/holdfast-dev/holdfast/internal/ledger"
	"github.com/holdfast-dev/holdfast/internal/testenv"
)

// checkCopies asserts that copies holds exactly one copy of every original, with its body and properties
// and the lineage properties.
func checkCopies(t *testing.T, queue string, originals map[int64]original, copies []*azservicebus.ReceivedMessage) {
	t.Helper()
	if len(copies) != len(originals) {
		t.Fatalf("received %d copies, want %d", len(copies), len(originals))
	}
	seen := map[int64]bool{}
	for _, c := range copies {
		origSeq, ok := c.ApplicationProperties[PropOriginalSequenceNumber].(int64)
		o, known := originals[origSeq]
		if !ok || !known {
			t.Fatalf("copy %s: %s = %v is not a seeded sequence number", c.MessageID, PropOriginalSequenceNumber, c.ApplicationProperties[PropOriginalSequenceNumber])
		}
		if seen[origSeq] {
			t.Fatalf("two copies of sequence number %d", origSeq)
		}
		seen[origSeq] = true
		if c.MessageID != MessageID(queue, origSeq) {
			t.Errorf("copy of %d: MessageID %q, want %q", origSeq, c.MessageID, MessageID(queue, origSeq))
		}
		if string(c.Body) != o.body || c.ContentType == nil || *c.ContentType != "text/plain" ||
			c.CorrelationID == nil || *c.CorrelationID != fmt.Sprint("corr-", o.index) || c.Subject == nil || *c.Subject != "subject" {
			t.Errorf("copy of %d: body %q content type %v correlation %v subject %v do not match the original", origSeq, c.Body, c.ContentType, c.CorrelationID, c.Subject)
		}
		p := c.ApplicationProperties
		if p["index"] != int64(o.index) || p["tenant"] != "contoso" || p[PropOriginalMessageID] != o.id ||
			p[PropResubmitCount] != int64(1) || p[PropDeferReason] != "seeded" {
			t.Errorf("copy of %d: application properties %v", origSeq, p)
		}
		if _, ok := p[ledger.PropNotBefore]; ok {
			t.Errorf("copy of %d still carries %s", origSeq, ledger.PropNotBefore)
		}
		if c.ScheduledEnqueueTime != nil {
			t.Errorf("copy of %d: scheduled enqueue time %v, want none", origSeq, c.ScheduledEnqueueTime)
		}
	}
}

// TestResubmitThousandWithContinuations: 1,000 deferred messages resubmitted over HTTP with a page size and
// count limit that force several calls; every copy arrives once, the originals and the rows are gone.
func TestResubmitThousandWithContinuations(t *testing.T) {
	ctx := testCtx(t, 3*time.Minute)
	e := newEnv(t, envOptions{})
	originals := e.seed(ctx, t, 1000, nil)
	url := api(t, e.service(t, &Options{PageSize: 100, MaxCount: 300}))

	var calls, resubmitted int
	cont := ""
	for {
		body, _ := json.Marshal(Request{All: true, Continuation: cont})
		var res Result
		if st := call(ctx, t, "POST", url+"/api/deferred/resubmit", body, &res); st != 200 {
			t.Fatalf("resubmit: status %d: %+v", st, res)
		}
		calls++
		if len(res.Failed) > 0 || len(res.NotFound) > 0 || res.SkippedCount > 0 {
			t.Fatalf("call %d: failed %v notFound %v skipped %v", calls, res.Failed, res.NotFound, res.Skipped)
		}
		resubmitted += res.Resubmitted
		if cont = res.Continuation; cont == "" {
			break
		}
		if calls > 10 {
			t.Fatal("no end of continuations")
		}
	}
	if calls < 4 || resubmitted != 1000 {
		t.Fatalf("%d calls resubmitted %d; want ≥ 4 calls and 1000", calls, resubmitted)
	}
	if st := e.stats(t); st.Deferred != 0 || st.Locked != 0 {
		t.Fatalf("after the drain: %+v; want no deferred or locked message", st)
	}
	checkCopies(t, e.queue, originals, e.drainQueue(ctx, t, 1000))
	if rows := e.allRows(ctx, t); len(rows) != 0 {
		t.Fatalf("%d ledger rows left, want 0", len(rows))
	}
}

// TestCrashPointsLeaveNoDuplicate: the drain dies at each point of a page; once its leases and the message
// locks have run out, a second drain finishes the job: one copy per original (duplicate detection drops a
// resent copy), no deferred message and no row left.
func TestCrashPointsLeaveNoDuplicate(t *testing.T) {
	tests := []struct {
		point                   crashPoint
		wantResubmitted         int
		wantNotFound, wantDupes int
	}{
		{crashAfterReceive, 5, 0, 0},
		{crashAfterSend, 5, 0, 5},   // the rerun sends the same copies again; Service Bus drops them
		{crashAfterSettle, 0, 5, 0}, // originals already completed: the rerun finds them gone
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.point), func(t *testing.T) {
			ctx := testCtx(t, 2*time.Minute)
			e := newEnv(t, envOptions{lock: 2 * time.Second, dedup: true})
			originals := e.seed(ctx, t, 5, nil)

			dying := e.service(t, nil)
			dying.crash = func(p crashPoint) error {
				if p == tt.point {
					return errCrashed
				}
				return nil
			}
			if _, err := dying.Run(ctx, Request{Action: ActionResubmit, All: true}); !errors.Is(err, errCrashed) {
				t.Fatalf("first drain: %v, want the simulated crash", err)
			}
			// Before the lease runs out a second drain leaves the rows alone.
			again := e.service(t, nil)
			res, err := again.Run(ctx, Request{Action: ActionResubmit, All: true})
			if err != nil || res.SkippedCount != 5 || res.Resubmitted != 0 {
				t.Fatalf("drain during the lease: %+v, %v; want 5 skipped", res, err)
			}

			e.awaitUnlocked(ctx, t) // the dead drain's message locks run out
			e.clock.Advance(2*DefaultBudget + time.Second)
			res, err = again.Run(ctx, Request{Action: ActionResubmit, All: true})
			if err != nil {
				t.Fatal(err)
			}
			if res.Resubmitted != tt.wantResubmitted || len(res.NotFound) != tt.wantNotFound || len(res.Failed) != 0 {
				t.Fatalf("rerun: %+v; want %d resubmitted, %d not found", res, tt.wantResubmitted, tt.wantNotFound)
			}
			st := e.stats(t)
			if st.Deferred != 0 || st.Counters.Duplicates != uint64(tt.wantDupes) {
				t.Fatalf("after the rerun: %+v; want no deferred message and %d duplicates dropped", st, tt.wantDupes)
			}
			checkCopies(t, e.queue, originals, e.drainQueue(ctx, t, 5))
			if rows := e.allRows(ctx, t); len(rows) != 0 {
				t.Fatalf("%d ledger rows left, want 0", len(rows))
			}
		})
	}
}

func (p crashPoint) String() string {
	switch p {
	case crashAfterReceive:
		return "after receive"
	case crashAfterSend:
		return "after send"
	case crashAfterSettle:
		return "after complete"
	}
	return "unknown"
}

// TestConcurrentDrainsNeverSendTwice: two drains of the same rows at once, without duplicate detection: the
// leases alone make every message resubmitted exactly once.
func TestConcurrentDrainsNeverSendTwice(t *testing.T) {
	ctx := testCtx(t, 2*time.Minute)
	e := newEnv(t, envOptions{})
	originals := e.seed(ctx, t, 200, nil)
	drains := []*Service{e.service(t, &Options{PageSize: 20}), e.service(t, &Options{PageSize: 20})}

	results := make([]Result, len(drains))
	errs := make([]error, len(drains))
	var wg sync.WaitGroup
	for i, d := range drains {
		wg.Go(func() { results[i], errs[i] = d.Run(ctx, Request{Action: ActionResubmit, All: true}) })
	}
	wg.Wait()
	total := 0
	for i, r := range results {
		if errs[i] != nil || len(r.Failed) > 0 {
			t.Fatalf("drain %d: %+v, %v", i, r, errs[i])
		}
		total += r.Resubmitted
	}
	if total != 200 {
		t.Fatalf("the drains resubmitted %d + %d, want 200 in total", results[0].Resubmitted, results[1].Resubmitted)
	}
	checkCopies(t, e.queue, originals, e.drainQueue(ctx, t, 200))
	if rows := e.allRows(ctx, t); len(rows) != 0 {
		t.Fatalf("%d ledger rows left", len(rows))
	}
}

// sortedSeqs returns the sequence numbers of originals in order.
func sortedSeqs(originals map[int64]original) []int64 {
	var s []int64
	for k := range originals {
		s = append(s, k)
	}
	slices.Sort(s)
	return s
}

// TestDeleteAndDeadLetter: delete completes the originals without a copy; deadletter moves them to the
// dead-letter queue with the caller's reason; the other rows stay.
func TestDeleteAndDeadLetter(t *testing.T) {
	ctx := testCtx(t, time.Minute)
	e := newEnv(t, envOptions{})
	seqs := sortedSeqs(e.seed(ctx, t, 6, nil))
	url := api(t, e.service(t, nil))

	var res Result
	body, _ := json.Marshal(map[string]any{"sequenceNumbers": seqs[:2]})
	if st := call(ctx, t, "POST", url+"/api/deferred/delete", body, &res); st != 200 || res.Completed != 2 || res.Processed != 2 {
		t.Fatalf("delete: %d %+v", st, res)
	}
	body, _ = json.Marshal(map[string]any{"sequenceNumbers": seqs[2:4], "reason": "poison", "description": "bad schema"})
	if st := call(ctx, t, "POST", url+"/api/deferred/deadletter", body, &res); st != 200 || res.DeadLettered != 2 {
		t.Fatalf("deadletter: %d %+v", st, res)
	}
	if st := e.stats(t); st.Deferred != 2 || st.DeadLettered != 2 || st.Active != 0 {
		t.Fatalf("after delete and deadletter: %+v; want 2 deferred, 2 dead-lettered, none active", st)
	}
	dlq, err := e.client.NewReceiverForQueue(e.queue, &azservicebus.ReceiverOptions{SubQueue: azservicebus.SubQueueDeadLetter})
	if err != nil {
		t.Fatal(err)
	}
	defer dlq.Close(ctx)
	got, err := dlq.ReceiveMessages(ctx, 2, nil)
	if err != nil || len(got) == 0 {
		t.Fatalf("dead-letter queue: %v, %v", got, err)
	}
	for _, m := range got {
		if m.DeadLetterReason == nil || *m.DeadLetterReason != "poison" || m.DeadLetterErrorDescription == nil || *m.DeadLetterErrorDescription != "bad schema" {
			t.Errorf("dead-lettered %d: reason %v description %v", *m.SequenceNumber, m.DeadLetterReason, m.DeadLetterErrorDescription)
		}
	}
	rows := e.allRows(ctx, t)
	if len(rows) != 2 || rows[0].SequenceNumber != seqs[4] || rows[1].SequenceNumber != seqs[5] {
		t.Fatalf("rows left: %+v; want %v", rows, seqs[4:])
	}
}

// TestDueOnly: only rows whose not-before passed are resubmitted; the others are skipped and kept.
func TestDueOnly(t *testing.T) {
	ctx := testCtx(t, time.Minute)
	e := newEnv(t, envOptions{})
	now := e.clock.Now()
	originals := e.seed(ctx, t, 4, func(i int) time.Time {
		if i%2 == 0 {
			return now.Add(-time.Minute)
		}
		return now.Add(time.Hour)
	})
	url := api(t, e.service(t, nil))
	var res Result
	if st := call(ctx, t, "POST", url+"/api/deferred/resubmit", []byte(`{"all":true,"dueOnly":true}`), &res); st != 200 {
		t.Fatalf("status %d: %+v", st, res)
	}
	if res.Resubmitted != 2 || res.SkippedCount != 2 || res.Processed != 4 {
		t.Fatalf("dueOnly: %+v; want 2 resubmitted, 2 skipped", res)
	}
	due := map[int64]original{}
	for k, o := range originals {
		if o.index%2 == 0 {
			due[k] = o
		}
	}
	checkCopies(t, e.queue, due, e.drainQueue(ctx, t, 2))
	for _, r := range e.allRows(ctx, t) {
		if originals[r.SequenceNumber].index%2 == 0 {
			t.Errorf("row %d of a due message left", r.SequenceNumber)
		}
	}
}

// TestDryRunChangesNothing: a dry run reports the eligible rows; messages and rows are untouched.
func TestDryRunChangesNothing(t *testing.T) {
	ctx := testCtx(t, time.Minute)
	e := newEnv(t, envOptions{})
	seqs := sortedSeqs(e.seed(ctx, t, 3, nil))
	before, st0 := e.allRows(ctx, t), e.stats(t)
	url := api(t, e.service(t, nil))
	for _, action := range []string{"resubmit", "delete", "deadletter"} {
		body := `{"all":true,"dryRun":true}`
		if action == "deadletter" {
			body = `{"all":true,"dryRun":true,"reason":"x"}`
		}
		var res Result
		if st := call(ctx, t, "POST", url+"/api/deferred/"+action, []byte(body), &res); st != 200 || !res.DryRun || !slices.Equal(res.Eligible, seqs) {
			t.Fatalf("%s dry run: %d %+v; want eligible %v", action, st, res, seqs)
		}
		if res.Resubmitted+res.Completed+res.DeadLettered != 0 {
			t.Fatalf("%s dry run acted: %+v", action, res)
		}
	}
	after, st1 := e.allRows(ctx, t), e.stats(t)
	if !slices.EqualFunc(before, after, func(a, b ledger.Row) bool { return a.ETag == b.ETag && a.State == b.State }) {
		t.Fatalf("rows changed: before %+v after %+v", before, after)
	}
	if st0.Deferred != st1.Deferred || st1.Active != 0 || st1.Counters.Sent != st0.Counters.Sent || st1.Counters.Received != st0.Counters.Received {
		t.Fatalf("emulator changed: before %+v after %+v", st0, st1)
	}
}

// TestUnknownAndVanishedNumbers: a number without a row and a row whose message is gone are reported not
// found (the row removed); the other numbers are resubmitted.
func TestUnknownAndVanishedNumbers(t *testing.T) {
	ctx := testCtx(t, time.Minute)
	e := newEnv(t, envOptions{})
	originals := e.seed(ctx, t, 2, nil)
	seqs := sortedSeqs(originals)
	const ghost, unknown = 424242, 999999
	if _, err := e.ledger.Put(ctx, ledger.Row{SequenceNumber: ghost, State: ledger.StateDeferred, MessageID: "ghost"}); err != nil {
		t.Fatal(err)
	}
	url := api(t, e.service(t, nil))
	body, _ := json.Marshal(map[string]any{"sequenceNumbers": []int64{seqs[0], ghost, unknown, seqs[1]}})
	var res Result
	if st := call(ctx, t, "POST", url+"/api/deferred/resubmit", body, &res); st != 200 {
		t.Fatalf("status %d %+v", st, res)
	}
	slices.Sort(res.NotFound)
	if res.Resubmitted != 2 || !slices.Equal(res.NotFound, []int64{ghost, unknown}) || res.Processed != 4 || len(res.Failed) != 0 {
		t.Fatalf("result %+v; want 2 resubmitted, not found [%d %d]", res, ghost, unknown)
	}
	checkCopies(t, e.queue, originals, e.drainQueue(ctx, t, 2))
	if rows := e.allRows(ctx, t); len(rows) != 0 {
		t.Fatalf("rows left: %+v", rows)
	}
}

// TestLockedMessageIsNotForgotten: a row whose message is locked by another receiver is released and
// reported failed, never deleted.
func TestLockedMessageIsNotForgotten(t *testing.T) {
	ctx := testCtx(t, time.Minute)
	e := newEnv(t, envOptions{})
	seqs := sortedSeqs(e.seed(ctx, t, 1, nil))
	other := e.receiver(t)
	if _, err := other.ReceiveDeferredMessages(ctx, seqs, nil); err != nil {
		t.Fatal(err)
	}
	res, err := e.service(t, nil).Run(ctx, Request{Action: ActionResubmit, SequenceNumbers: seqs})
	if err != nil || len(res.Failed) != 1 || res.Resubmitted != 0 || len(res.NotFound) != 0 {
		t.Fatalf("result %+v, %v; want one failure", res, err)
	}
	row, err := e.ledger.Get(ctx, seqs[0])
	if err != nil || row.State != ledger.StateDeferred || row.LastError == "" {
		t.Fatalf("row %+v, %v; want it released with its last error", row, err)
	}
}

// TestListPages: GET /api/deferred pages through the rows with top and continuation.
func TestListPages(t *testing.T) {
	ctx := testCtx(t, time.Minute)
	e := newEnv(t, envOptions{})
	seqs := sortedSeqs(e.seed(ctx, t, 5, func(int) time.Time { return time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC) }))
	url := api(t, e.service(t, nil))
	var got []int64
	cont := ""
	for pages := 0; ; pages++ {
		var p Page
		u := url + "/api/deferred?top=2"
		if cont != "" {
			u += "&continuation=" + cont
		}
		if st := call(ctx, t, "GET", u, nil, &p); st != 200 || len(p.Items) > 2 || p.Entity != e.queue {
			t.Fatalf("list: %d %+v", st, p)
		}
		for _, it := range p.Items {
			if it.State != "deferred" || it.Reason != "seeded" || it.MessageID == "" || it.DeferredAt == nil ||
				it.NotBefore == nil || !it.NotBefore.Equal(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)) || it.ExpiresAt == nil {
				t.Errorf("item %+v", it)
			}
			got = append(got, it.SequenceNumber)
		}
		if cont = p.Continuation; cont == "" {
			break
		}
		if pages > 5 {
			t.Fatal("no end of pages")
		}
	}
	if !slices.Equal(got, seqs) {
		t.Fatalf("listed %v, want %v", got, seqs)
	}
	// The host's route deferred/{action?} also matches a trailing slash: the list.
	var p Page
	if st := call(ctx, t, "GET", url+"/api/deferred/", nil, &p); st != 200 || len(p.Items) != 5 {
		t.Fatalf("GET /api/deferred/: %d %+v", st, p)
	}
}

// TestReconcileRoute: POST /api/deferred/reconcile adds the row of a deferred message the ledger missed.
func TestReconcileRoute(t *testing.T) {
	ctx := testCtx(t, time.Minute)
	e := newEnv(t, envOptions{})
	if err := e.sender.SendMessage(ctx, &azservicebus.Message{Body: []byte("orphan")}, nil); err != nil {
		t.Fatal(err)
	}
	r := e.receiver(t)
	msgs, err := r.ReceiveMessages(ctx, 1, nil)
	if err != nil || len(msgs) != 1 {
		t.Fatal(msgs, err)
	}
	if err := r.DeferMessage(ctx, msgs[0], nil); err != nil {
		t.Fatal(err)
	}
	url := api(t, e.service(t, nil))
	var res ReconcileResult
	if st := call(ctx, t, "POST", url+"/api/deferred/reconcile", nil, &res); st != 200 || res.Added != 1 || !res.Done || res.Continuation != "" {
		t.Fatalf("reconcile: %d %+v", st, res)
	}
	if _, err := e.ledger.Get(ctx, *msgs[0].SequenceNumber); err != nil {
		t.Fatalf("row of the orphan: %v", err)
	}
}

// TestBudgetStopsBetweenPages: once the budget is spent no page starts; the continuation resumes where the
// call stopped and every call makes progress.
func TestBudgetStopsBetweenPages(t *testing.T) {
	ctx := testCtx(t, time.Minute)
	e := newEnv(t, envOptions{})
	originals := e.seed(ctx, t, 5, nil)
	svc := e.service(t, &Options{PageSize: 2, Budget: time.Nanosecond, Now: time.Now})
	req := Request{Action: ActionResubmit, SequenceNumbers: sortedSeqs(originals)}
	var perCall []int
	for {
		res, err := svc.Run(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		perCall = append(perCall, res.Resubmitted)
		if req.Continuation = res.Continuation; req.Continuation == "" {
			break
		}
		if len(perCall) > 5 {
			t.Fatalf("no end of continuations: %v", perCall)
		}
	}
	if !slices.Equal(perCall, []int{2, 2, 1}) {
		t.Fatalf("resubmitted per call %v, want [2 2 1]", perCall)
	}
	checkCopies(t, e.queue, originals, e.drainQueue(ctx, t, 5))
}

// failingReceiver and failingSender fail one kind of operation with errRefused.
var errRefused = errors.New("refused by the test")

type failingReceiver struct {
	Receiver
	receive, complete bool
}

func (f *failingReceiver) ReceiveDeferredMessages(ctx context.Context, seqs []int64, o *azservicebus.ReceiveDeferredMessagesOptions) ([]*azservicebus.ReceivedMessage, error) {
	if f.receive {
		return nil, errRefused
	}
	return f.Receiver.ReceiveDeferredMessages(ctx, seqs, o)
}

func (f *failingReceiver) CompleteMessage(ctx context.Context, m *azservicebus.ReceivedMessage, o *azservicebus.CompleteMessageOptions) error {
	if f.complete {
		return errRefused
	}
	return f.Receiver.CompleteMessage(ctx, m, o)
}

type failingSender struct{ Sender }

func (failingSender) SendMessageBatch(context.Context, *azservicebus.MessageBatch, *azservicebus.SendMessageBatchOptions) error {
	return errRefused
}

// TestFailuresReleaseRows: when a receive, a send or a complete fails, the rows are released with the cause
// and reported failed, and the originals stay deferred; a later drain resubmits each exactly once.
func TestFailuresReleaseRows(t *testing.T) {
	tests := []struct {
		name     string
		recv     failingReceiver
		send     bool
		wantSent uint64 // copies stored by the failed drain
		errText  string
	}{
		{"receive fails", failingReceiver{receive: true}, false, 0, "receive deferred message"},
		{"send fails", failingReceiver{}, true, 0, "send copy"},
		{"complete fails", failingReceiver{complete: true}, false, 3, "completing the original failed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := testCtx(t, time.Minute)
			e := newEnv(t, envOptions{lock: 2 * time.Second, dedup: true})
			originals := e.seed(ctx, t, 3, nil)
			sent0 := e.stats(t).Counters.Sent
			recv := tt.recv
			recv.Receiver = e.receiver(t)
			opts := &Options{Receiver: &recv}
			if tt.send {
				s, err := e.client.NewSender(e.queue, nil)
				if err != nil {
					t.Fatal(err)
				}
				defer s.Close(ctx)
				opts.Sender = failingSender{s}
			}
			res, err := e.service(t, opts).Run(ctx, Request{Action: ActionResubmit, All: true})
			if err != nil || len(res.Failed) != 3 || res.Resubmitted != 0 || !strings.Contains(res.Failed[0].Error, tt.errText) {
				t.Fatalf("failed drain: %+v, %v; want 3 failures mentioning %q", res, err, tt.errText)
			}
			if st := e.stats(t); st.Deferred != 3 || st.Counters.Sent-sent0 != tt.wantSent {
				t.Fatalf("after the failed drain: %+v; want 3 deferred and %d copies", st, tt.wantSent)
			}
			for _, r := range e.allRows(ctx, t) {
				if r.State != ledger.StateDeferred || !strings.Contains(r.LastError, tt.errText) {
					t.Fatalf("row %+v; want it released with the cause", r)
				}
			}
			e.awaitUnlocked(ctx, t)
			res, err = e.service(t, nil).Run(ctx, Request{Action: ActionResubmit, All: true})
			if err != nil || res.Resubmitted != 3 {
				t.Fatalf("second drain: %+v, %v", res, err)
			}
			checkCopies(t, e.queue, originals, e.drainQueue(ctx, t, 3))
			if st := e.stats(t); st.Counters.Duplicates != tt.wantSent {
				t.Fatalf("duplicates dropped %d, want %d", st.Counters.Duplicates, tt.wantSent)
			}
		})
	}
}

// TestServiceBusFailureStopsTheCall: when the page-wide receive fails, the call stops after that page with a
// continuation instead of failing every page in turn.
func TestServiceBusFailureStopsTheCall(t *testing.T) {
	ctx := testCtx(t, time.Minute)
	e := newEnv(t, envOptions{})
	e.seed(ctx, t, 4, nil)
	recv := &failingReceiver{receive: true}
	recv.Receiver = e.receiver(t)
	res, err := e.service(t, &Options{PageSize: 2, Receiver: recv}).Run(ctx, Request{Action: ActionResubmit, All: true})
	if err != nil || len(res.Failed) != 2 || res.Processed != 2 || res.Continuation == "" {
		t.Fatalf("result %+v, %v; want one page of 2 failures and a continuation", res, err)
	}
}

// TestResubmitFromSubscriptionGoesToTheTopic: a message deferred on a subscription is resubmitted to its
// topic, so every subscription receives the copy (documented behaviour), and the original is gone.
func TestResubmitFromSubscriptionGoesToTheTopic(t *testing.T) {
	ctx := testCtx(t, time.Minute)
	srv, err := emulator.Start(&emulator.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	if err := srv.Broker().CreateTopic("events", broker.DefaultTopicProperties()); err != nil {
		t.Fatal(err)
	}
	for _, sub := range []string{"audit", "billing"} {
		if err := srv.Broker().CreateSubscription("events", sub, broker.DefaultSubscriptionProperties(), nil); err != nil {
			t.Fatal(err)
		}
	}
	client, err := azservicebus.NewClientFromConnectionString(srv.ConnectionString(), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = client.Close(context.Background()) })
	const entity = "events/Subscriptions/audit"
	tc, err := ledger.NewClientFromConnectionString(testenv.Azurite(t), testenv.TableName(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = tc.Delete(context.Background(), nil) })
	l, err := ledger.New(tc, &ledger.Options{Entity: entity})
	if err != nil {
		t.Fatal(err)
	}

	sender, err := client.NewSender("events", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer sender.Close(ctx)
	if err := sender.SendMessage(ctx, &azservicebus.Message{MessageID: ptr("orig"), Body: []byte("payload")}, nil); err != nil {
		t.Fatal(err)
	}
	// receive takes the next message of sub and defers it through the ledger, or completes it.
	receive := func(sub string, deferIt bool) *azservicebus.ReceivedMessage {
		t.Helper()
		r, err := client.NewReceiverForSubscription("events", sub, nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = r.Close(context.Background()) })
		msgs, err := r.ReceiveMessages(ctx, 1, nil)
		if err != nil || len(msgs) != 1 {
			t.Fatalf("%s: %v, %v", sub, msgs, err)
		}
		if deferIt {
			if err := l.Defer(ctx, r, msgs[0], time.Time{}, "audit later"); err != nil {
				t.Fatal(err)
			}
		} else if err := r.CompleteMessage(ctx, msgs[0], nil); err != nil {
			t.Fatal(err)
		}
		return msgs[0]
	}
	orig := receive("audit", true)
	receive("billing", false) // billing handled the original

	recv, send, err := NewClients(client, entity)
	if err != nil {
		t.Fatal(err)
	}
	defer recv.Close(ctx)
	defer send.Close(ctx)
	svc, err := New(&Options{Ledger: l, Receiver: recv, Sender: send})
	if err != nil {
		t.Fatal(err)
	}
	res, err := svc.Run(ctx, Request{Action: ActionResubmit, All: true})
	if err != nil || res.Resubmitted != 1 {
		t.Fatalf("resubmit: %+v, %v", res, err)
	}
	for _, sub := range []string{"audit", "billing"} {
		c := receive(sub, false)
		if c.MessageID != MessageID(entity, *orig.SequenceNumber) || string(c.Body) != "payload" {
			t.Fatalf("%s received %s %q; want the copy of %d", sub, c.MessageID, c.Body, *orig.SequenceNumber)
		}
	}
	if rows, _, err := l.List(ctx, 10, ""); err != nil || len(rows) != 0 {
		t.Fatalf("rows left: %+v, %v", rows, err)
	}
}
