package deadletter

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus"

	"github.com/holdfast-dev/holdfast/internal/drain"
)

// checkCopies asserts one copy per seeded index in idx, with body, properties, lineage and the DLQ MessageID,
// and none of Service Bus's dead-letter properties.
func checkCopies(t *testing.T, e *env, seqs []int64, idx []int, copies []*azservicebus.ReceivedMessage) {
	t.Helper()
	if len(copies) != len(idx) {
		t.Fatalf("%d copies, want %d", len(copies), len(idx))
	}
	want := map[int64]int{}
	for _, i := range idx {
		want[seqs[i]] = i
	}
	for _, c := range copies {
		p := c.ApplicationProperties
		seq, _ := p[drain.PropOriginalSequenceNumber].(int64)
		i, ok := want[seq]
		if !ok {
			t.Fatalf("copy %s of unexpected or repeated sequence number %v", c.MessageID, p[drain.PropOriginalSequenceNumber])
		}
		delete(want, seq)
		if c.MessageID != MessageID(e.queue, seq) || c.MessageID == drain.MessageID(e.queue, seq) {
			t.Errorf("copy of %d: MessageID %q, want %q (not the deferred drain's)", seq, c.MessageID, MessageID(e.queue, seq))
		}
		if string(c.Body) != fmt.Sprint("body-", i) || *c.ContentType != "text/plain" || *c.CorrelationID != fmt.Sprint("corr-", i) || *c.Subject != "subject" {
			t.Errorf("copy of %d: body %q and properties do not match the original", seq, c.Body)
		}
		if p["index"] != int64(i) || p["tenant"] != "contoso" || p[drain.PropOriginalMessageID] != fmt.Sprint("orig-", i) ||
			p[drain.PropResubmitCount] != int64(1) || p[PropDeadLetterReason] != fmt.Sprint("reason-", i) ||
			p[PropDeadLetterDescription] != fmt.Sprint("description-", i) {
			t.Errorf("copy of %d: application properties %v", seq, p)
		}
		if _, ok := p["DeadLetterReason"]; ok || c.DeadLetterReason != nil {
			t.Errorf("copy of %d still carries the dead-letter reason property", seq)
		}
	}
}

// TestResubmitAllDrainsTheDeadLetterQueue: every dead-lettered message comes back to the queue once, as a
// copy with lineage, and the DLQ ends empty; nothing is abandoned, and the operations are one receive and
// one send per page plus one complete per message (and a peek per page).
func TestResubmitAllDrainsTheDeadLetterQueue(t *testing.T) {
	ctx := testCtx(t, time.Minute)
	e := newEnv(t, 30*time.Second)
	seqs := e.seed(ctx, t, 30)
	var c counts
	svc := e.service(t, &Options{PageSize: 7}, &c)
	res, err := svc.Run(ctx, drain.ActionResubmit, drain.Selection{All: true})
	if err != nil {
		t.Fatal(err)
	}
	if res.Resubmitted != 30 || res.Processed != 30 || len(res.Failed) != 0 || res.Released != 0 || res.Continuation != "" {
		t.Fatalf("result %+v", res)
	}
	if st := e.stats(t, true); st.Active+st.Locked != 0 {
		t.Fatalf("DLQ after the drain: %+v", st)
	}
	idx := make([]int, 30)
	for i := range idx {
		idx[i] = i
	}
	checkCopies(t, e, seqs, idx, e.drainQueue(ctx, t, 30))
	if c.completes.Load() != 30 || c.abandons.Load() != 0 || c.receives.Load() != 5 || c.sends.Load() != 5 {
		t.Errorf("operations: %d receives, %d sends, %d completes, %d abandons, %d peeks", c.receives.Load(), c.sends.Load(),
			c.completes.Load(), c.abandons.Load(), c.peeks.Load())
	}
}

// TestResubmitSelectedHoldsTheOthersAndAbandonsThem: selecting two numbers deep in the DLQ resubmits exactly
// those; the messages received ahead of them are held until the end and then abandoned (still in the DLQ, their
// delivery count unchanged: Service Bus does not count an abandon inside a DLQ, Microsoft's
// TestMessageSettlementUsingReceiver); an unknown number is reported not found. Mutation: abandoning unselected messages at
// once (in page) makes the scan receive them again and never reach the selection.
func TestResubmitSelectedHoldsTheOthersAndAbandonsThem(t *testing.T) {
	ctx := testCtx(t, time.Minute)
	e := newEnv(t, 30*time.Second)
	seqs := e.seed(ctx, t, 12)
	before := map[int64]uint32{}
	peekedBefore, err := e.receiver(t, true).PeekMessages(ctx, 20, &azservicebus.PeekMessagesOptions{FromSequenceNumber: ptr(int64(0))})
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range peekedBefore {
		before[*m.SequenceNumber] = m.DeliveryCount
	}
	var c counts
	svc := e.service(t, &Options{PageSize: 3}, &c)
	res, err := svc.Run(ctx, drain.ActionResubmit, drain.Selection{SequenceNumbers: []int64{seqs[7], 999, seqs[4]}})
	if err != nil {
		t.Fatal(err)
	}
	if res.Resubmitted != 2 || res.Processed != 3 || !slices.Equal(res.NotFound, []int64{999}) || len(res.Failed) != 0 || res.Continuation != "" {
		t.Fatalf("result %+v", res)
	}
	if res.Released < 6 { // seqs[0..3], [5], [6] at least; the page holding [7] may bring [8]
		t.Fatalf("released %d, want the 6 messages ahead of the selection at least", res.Released)
	}
	if st := e.stats(t, true); st.Active != 10 || st.Locked != 0 {
		t.Fatalf("DLQ after the call: %+v, want 10 active, none locked", st)
	}
	checkCopies(t, e, seqs, []int{4, 7}, e.drainQueue(ctx, t, 2))
	peeked, err := e.receiver(t, true).PeekMessages(ctx, 20, &azservicebus.PeekMessagesOptions{FromSequenceNumber: ptr(int64(0))})
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range peeked {
		if want, ok := before[*m.SequenceNumber]; !ok || m.DeliveryCount != want {
			t.Errorf("message %d ahead of the selection: delivery count %d, want %d as before the call", *m.SequenceNumber, m.DeliveryCount, want)
		}
	}
}

// TestRepeatedSendIsDeduplicated: a call that died after sending its copies and before completing the
// originals is repeated; duplicate detection drops the second copies, so the queue holds each once.
// Mutation: a MessageID that is not a pure function of (entity, sequence number) gives two copies each.
func TestRepeatedSendIsDeduplicated(t *testing.T) {
	ctx := testCtx(t, time.Minute)
	e := newEnv(t, 30*time.Second)
	seqs := e.seed(ctx, t, 5)
	var c counts
	svc := e.service(t, nil, &c)
	// The first call's sends, as it would have made them.
	r := e.receiver(t, true)
	msgs, err := r.ReceiveMessages(ctx, 5, nil)
	if err != nil || len(msgs) != 5 {
		t.Fatalf("received %d: %v", len(msgs), err)
	}
	for _, m := range msgs {
		cp, err := svc.copyOf(m)
		if err != nil {
			t.Fatal(err)
		}
		if err := e.sender.SendMessage(ctx, cp, nil); err != nil {
			t.Fatal(err)
		}
		if err := r.AbandonMessage(ctx, m, nil); err != nil { // the lock would have run out
			t.Fatal(err)
		}
	}
	res, err := svc.Run(ctx, drain.ActionResubmit, drain.Selection{All: true})
	if err != nil || res.Resubmitted != 5 {
		t.Fatalf("repeat: %+v, %v", res, err)
	}
	if st := e.stats(t, false); st.Active != 5 {
		t.Fatalf("queue %+v: want exactly 5 copies", st)
	}
	checkCopies(t, e, seqs, []int{0, 1, 2, 3, 4}, e.drainQueue(ctx, t, 5))
}

// TestMaxCountContinuesWhereItStopped: maxCount bounds a call; following the continuation resubmits the rest
// and each message exactly once; a continuation sent with another selection is refused.
func TestMaxCountContinuesWhereItStopped(t *testing.T) {
	ctx := testCtx(t, time.Minute)
	e := newEnv(t, 30*time.Second)
	e.seed(ctx, t, 10)
	var c counts
	svc := e.service(t, nil, &c)
	sel := drain.Selection{All: true, MaxCount: 4}
	var calls, total int
	for {
		res, err := svc.Run(ctx, drain.ActionDelete, sel)
		if err != nil {
			t.Fatal(err)
		}
		calls++
		total += res.Completed
		if res.Processed > 4 {
			t.Fatalf("call %d processed %d, over maxCount", calls, res.Processed)
		}
		if sel.Continuation = res.Continuation; sel.Continuation == "" {
			break
		}
		if calls == 1 {
			_, err := svc.Run(ctx, drain.ActionResubmit, sel)
			if err == nil || !strings.Contains(err.Error(), "different request") {
				t.Fatalf("continuation of a delete accepted for a resubmit: %v", err)
			}
		}
	}
	if total != 10 || calls != 3 {
		t.Fatalf("deleted %d in %d calls, want 10 in 3", total, calls)
	}
	if st := e.stats(t, true); st.Active != 0 {
		t.Fatalf("DLQ %+v", st)
	}
	if st := e.stats(t, false); st.Active != 0 {
		t.Fatalf("delete sent copies: %+v", st)
	}
}

// TestDryRunLocksNothing: a dry run reports the selection from a peek; nothing is received or changed.
func TestDryRunLocksNothing(t *testing.T) {
	ctx := testCtx(t, time.Minute)
	e := newEnv(t, 30*time.Second)
	seqs := e.seed(ctx, t, 6)
	var c counts
	svc := e.service(t, nil, &c)
	res, err := svc.Run(ctx, drain.ActionResubmit, drain.Selection{SequenceNumbers: []int64{seqs[5], seqs[1], 777}, DryRun: true})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(res.Eligible, []int64{seqs[1], seqs[5]}) || !slices.Equal(res.NotFound, []int64{777}) || res.Processed != 3 || res.Resubmitted != 0 {
		t.Fatalf("dry run %+v", res)
	}
	if c.receives.Load()+c.completes.Load()+c.abandons.Load()+c.sends.Load() != 0 {
		t.Fatalf("a dry run received, settled or sent")
	}
	if st := e.stats(t, true); st.Active != 6 || st.Counters.Abandoned != 0 {
		t.Fatalf("DLQ %+v", st)
	}
}

// TestScanWindowBoundsTheHeldMessages: with room for three held messages, a number further down is reported
// failed with the reason, and the held messages are given back. Mutation: dropping the MaxHeld check in
// full() holds all eleven and resubmits the message.
func TestScanWindowBoundsTheHeldMessages(t *testing.T) {
	ctx := testCtx(t, time.Minute)
	e := newEnv(t, 30*time.Second)
	seqs := e.seed(ctx, t, 12)
	var c counts
	svc := e.service(t, &Options{PageSize: 2, MaxHeld: 3}, &c)
	res, err := svc.Run(ctx, drain.ActionResubmit, drain.Selection{SequenceNumbers: []int64{seqs[11]}})
	if err != nil {
		t.Fatal(err)
	}
	if res.Resubmitted != 0 || len(res.Failed) != 1 || !strings.Contains(res.Failed[0].Error, "not reached") || res.Released < 3 {
		t.Fatalf("result %+v", res)
	}
	if st := e.stats(t, true); st.Active != 12 || st.Locked != 0 {
		t.Fatalf("DLQ %+v", st)
	}
}

// TestLockedElsewhereIsFailedNotLost: a selected message another receiver holds is reported failed (not
// not-found) and left alone.
func TestLockedElsewhereIsFailedNotLost(t *testing.T) {
	ctx := testCtx(t, time.Minute)
	e := newEnv(t, 30*time.Second)
	seqs := e.seed(ctx, t, 1)
	other := e.receiver(t, true)
	if got, err := other.ReceiveMessages(ctx, 1, nil); err != nil || len(got) != 1 {
		t.Fatalf("other receiver: %d, %v", len(got), err)
	}
	var c counts
	svc := e.service(t, &Options{ReceiveWait: 300 * time.Millisecond}, &c)
	res, err := svc.Run(ctx, drain.ActionDelete, drain.Selection{SequenceNumbers: []int64{seqs[0]}})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Failed) != 1 || !strings.Contains(res.Failed[0].Error, "another receiver") || len(res.NotFound) != 0 || res.Completed != 0 {
		t.Fatalf("result %+v", res)
	}
	if st := e.stats(t, true); st.Locked != 1 {
		t.Fatalf("DLQ %+v", st)
	}
}

// TestListPagesThroughPeeks: the list shows reason, description and a body preview, and pages with its
// continuation; nothing is locked.
func TestListPagesThroughPeeks(t *testing.T) {
	ctx := testCtx(t, time.Minute)
	e := newEnv(t, 30*time.Second)
	seqs := e.seed(ctx, t, 5)
	var c counts
	svc := e.service(t, nil, &c)
	var got []Item
	cont := ""
	for pages := 0; ; pages++ {
		p, err := svc.List(ctx, 2, cont)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, p.Items...)
		if cont = p.Continuation; cont == "" || pages > 5 {
			break
		}
	}
	if len(got) != 5 {
		t.Fatalf("listed %d items, want 5", len(got))
	}
	for i, it := range got {
		if it.SequenceNumber != seqs[i] || it.DeadLetterReason != fmt.Sprint("reason-", i) || it.DeadLetterErrorDescription != fmt.Sprint("description-", i) ||
			it.Body.Text != fmt.Sprint("body-", i) || it.MessageID != fmt.Sprint("orig-", i) || it.State != "active" || it.EnqueuedAt == nil {
			t.Errorf("item %d: %+v", i, it)
		}
	}
	if st := e.stats(t, true); st.Locked != 0 || st.Active != 5 {
		t.Fatalf("DLQ %+v", st)
	}
	if _, err := svc.List(ctx, 2, "x"); err == nil {
		t.Fatal("a bad continuation was accepted")
	}
}

// TestRunWithAClosedContextAbandonsWhatItHolds: a call whose context ends mid-scan still gives back every
// message it held (on a detached context), so nothing stays locked.
func TestRunWithAClosedContextAbandonsWhatItHolds(t *testing.T) {
	ctx := testCtx(t, time.Minute)
	e := newEnv(t, 30*time.Second)
	seqs := e.seed(ctx, t, 6)
	var c counts
	svc := e.service(t, &Options{PageSize: 2}, &c)
	cctx, cancel := context.WithCancel(ctx)
	o := svc.o
	o.Now = func() time.Time {
		if c.receives.Load() >= 2 {
			cancel() // the client went away after two pages
		}
		return time.Now()
	}
	svc.o, svc.now = o, o.Now
	_, err := svc.Run(cctx, drain.ActionDelete, drain.Selection{SequenceNumbers: []int64{seqs[5]}})
	if err == nil {
		t.Fatal("a cancelled call reported success")
	}
	if st := e.stats(t, true); st.Locked != 0 || st.Active != 6 {
		t.Fatalf("DLQ %+v: the held messages were not given back", st)
	}
}

// failingSender refuses every batch, as a Service Bus that cannot take the copies (quota, throttling) would.
type failingSender struct{ drain.Sender }

func (failingSender) SendMessageBatch(context.Context, *azservicebus.MessageBatch, *azservicebus.SendMessageBatchOptions) error {
	return &azservicebus.Error{Code: azservicebus.CodeNotFound}
}

// TestSendFailureCompletesNothing: send-then-complete, delete on success only. When the copies cannot be sent,
// no original is completed: each selected message is reported failed, given back and still in the DLQ, and
// nothing reaches the queue; the call stops with a continuation. Mutation: completing every acted-on message
// whatever its send gave (page ignoring sendCopies' result) loses the messages and makes this fail.
func TestSendFailureCompletesNothing(t *testing.T) {
	ctx := testCtx(t, time.Minute)
	e := newEnv(t, 30*time.Second)
	seqs := e.seed(ctx, t, 4)
	var c counts
	svc := e.service(t, nil, &c)
	svc.o.Sender = failingSender{svc.o.Sender}
	for _, sel := range []drain.Selection{{SequenceNumbers: []int64{seqs[1], seqs[2]}}, {All: true}} {
		res, err := svc.Run(ctx, drain.ActionResubmit, sel)
		if err != nil {
			t.Fatal(err)
		}
		want := len(sel.SequenceNumbers)
		if sel.All {
			want = 4
		}
		if res.Resubmitted != 0 || res.Completed != 0 || len(res.Failed) != want || res.Continuation == "" {
			t.Fatalf("%+v: result %+v, want %d failed, nothing resubmitted, a continuation", sel, res, want)
		}
		if st := e.stats(t, true); st.Active != 4 || st.Locked != 0 {
			t.Fatalf("%+v: DLQ after the call %+v, want the 4 messages back and unlocked", sel, st)
		}
		if st := e.stats(t, false); st.Active != 0 {
			t.Fatalf("%+v: queue %+v, want no copy", sel, st)
		}
	}
	if n := c.completes.Load(); n != 0 {
		t.Fatalf("%d completes after failed sends", n)
	}
}

// TestSelectionBeyondAPageOfDeferredIsReached: a selected message behind more than a page of messages deferred
// in the DLQ (which a receive never returns) is resubmitted, and the deferred ones are reported as such.
// Mutation: window peeking one page only (no look past deferred pages) counts no active message there and
// stops the call, reporting the selected message as held by another receiver.
func TestSelectionBeyondAPageOfDeferredIsReached(t *testing.T) {
	ctx := testCtx(t, time.Minute)
	e := newEnv(t, 30*time.Second)
	seqs := e.seed(ctx, t, 6)
	dlq := e.receiver(t, true)
	msgs, err := dlq.ReceiveMessages(ctx, 3, nil)
	if err != nil || len(msgs) != 3 {
		t.Fatalf("received %d DLQ messages to defer: %v", len(msgs), err)
	}
	for _, m := range msgs {
		if err := dlq.DeferMessage(ctx, m, nil); err != nil {
			t.Fatal(err)
		}
	}
	var c counts
	svc := e.service(t, &Options{PageSize: 2}, &c)
	res, err := svc.Run(ctx, drain.ActionResubmit, drain.Selection{SequenceNumbers: []int64{seqs[1], seqs[4]}})
	if err != nil {
		t.Fatal(err)
	}
	if res.Resubmitted != 1 || res.Processed != 2 || len(res.NotFound) != 0 || len(res.Failed) != 1 ||
		res.Failed[0].SequenceNumber != seqs[1] || !strings.Contains(res.Failed[0].Error, "deferred") || res.Continuation != "" {
		t.Fatalf("result %+v, want seqs[4]=%d resubmitted and seqs[1]=%d failed as deferred", res, seqs[4], seqs[1])
	}
	checkCopies(t, e, seqs, []int{4}, e.drainQueue(ctx, t, 1))
}
