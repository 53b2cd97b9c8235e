package drain

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus"

	"github.com/holdfast-dev/holdfast/internal/ledger"
	"github.com/holdfast-dev/holdfast/internal/testenv"
)

// hangUpSender cancels the caller's context as soon as a batch of copies is accepted: the caller hanging up
// (or the platform cutting the call) right after the sends.
type hangUpSender struct {
	Sender
	hangUp context.CancelFunc
}

func (s hangUpSender) SendMessageBatch(ctx context.Context, b *azservicebus.MessageBatch, o *azservicebus.SendMessageBatchOptions) error {
	err := s.Sender.SendMessageBatch(ctx, b, o)
	if err == nil {
		s.hangUp()
	}
	return err
}

// TestCallerHangingUpAfterSendStillCompletes: the originals are completed and the rows deleted even when the
// caller's context ends right after the copies were sent. Duplicate detection is off, so nothing but the
// drain itself prevents a second copy: a rerun after the leases ran out sends none.
func TestCallerHangingUpAfterSendStillCompletes(t *testing.T) {
	ctx := testCtx(t, time.Minute)
	e := newEnv(t, envOptions{})
	originals := e.seed(ctx, t, 3, nil)

	call, hangUp := context.WithCancel(ctx)
	defer hangUp()
	_, send, err := NewClients(e.client, e.queue)
	if err != nil {
		t.Fatal(err)
	}
	defer send.Close(ctx)
	res, err := e.service(t, &Options{Sender: hangUpSender{send, hangUp}}).Run(call, Request{Action: ActionResubmit, All: true})
	if err != nil || res.Resubmitted != 3 || len(res.Failed) != 0 {
		t.Fatalf("drain whose caller hung up after sending: %+v, %v; want 3 resubmitted", res, err)
	}
	if call.Err() == nil {
		t.Fatal("the caller's context was not cancelled: the test proves nothing")
	}
	if st := e.stats(t); st.Deferred != 0 {
		t.Fatalf("after the drain: %+v; want the originals completed", st)
	}
	if rows := e.allRows(ctx, t); len(rows) != 0 {
		t.Fatalf("%d rows left (%+v); want them deleted", len(rows), rows)
	}
	e.clock.Advance(2*DefaultBudget + time.Second) // any lease left behind would have run out
	res, err = e.service(t, nil).Run(ctx, Request{Action: ActionResubmit, All: true})
	if err != nil || res.Processed != 0 || res.Resubmitted != 0 {
		t.Fatalf("rerun: %+v, %v; want nothing left to do", res, err)
	}
	checkCopies(t, e.queue, originals, e.drainQueue(ctx, t, 3))
}

// TestCraftedContinuationIs400: a continuation that is well-formed and bound to the request but carries a
// ledger token the ledger never issued is refused with 400, and nothing is touched.
func TestCraftedContinuationIs400(t *testing.T) {
	ctx := testCtx(t, time.Minute)
	e := newEnv(t, envOptions{})
	e.seed(ctx, t, 2, nil)
	url := api(t, e.service(t, nil))
	tok := Request{Action: ActionResubmit, All: true}.encodeCursor(cursor{Ledger: "bm90LWEtbGVkZ2VyLXRva2Vu"})
	body, _ := json.Marshal(map[string]any{"all": true, "continuation": tok})
	var got struct{ Error string }
	if status := call(ctx, t, http.MethodPost, url+"/api/deferred/resubmit", body, &got); status != http.StatusBadRequest ||
		!strings.Contains(got.Error, "continuation") {
		t.Fatalf("crafted continuation: %d %q; want 400 naming the continuation", status, got.Error)
	}
	for _, r := range e.allRows(ctx, t) {
		if r.State != ledger.StateDeferred || r.LastError != "" {
			t.Fatalf("row touched: %+v", r)
		}
	}
	if st := e.stats(t); st.Deferred != 2 || st.Locked != 0 {
		t.Fatalf("messages touched: %+v", st)
	}
}

// TestFailureAfterProgressAnswersThePartialResult: Table Storage goes down after the first page; the answer
// is 503 with what the first page did and a continuation, and repeating the call with it finishes the work.
func TestFailureAfterProgressAnswersThePartialResult(t *testing.T) {
	ctx := testCtx(t, time.Minute)
	e := newEnv(t, envOptions{})
	originals := e.seed(ctx, t, 4, nil)
	out := &testenv.Outage{}
	var queries atomic.Int32
	out.FailWhen(func(r *http.Request) bool { return testenv.IsQuery(r) && queries.Add(1) > 1 }) // the second page's listing
	url := api(t, e.service(t, &Options{Ledger: e.ledgerVia(t, out), PageSize: 2}))

	var res Result
	status := call(ctx, t, http.MethodPost, url+"/api/deferred/resubmit", []byte(`{"all":true}`), &res)
	if status != PartialStatus || !res.Partial || !strings.Contains(res.Error, "ledger") || res.Processed != 2 ||
		res.Resubmitted != 2 || res.Continuation == "" {
		t.Fatalf("call with the ledger failing on page 2: %d %+v; want %d with the first page's counts and a continuation", status, res, PartialStatus)
	}
	out.Up()
	body, _ := json.Marshal(map[string]any{"all": true, "continuation": res.Continuation})
	res = Result{}
	if status := call(ctx, t, http.MethodPost, url+"/api/deferred/resubmit", body, &res); status != http.StatusOK ||
		res.Resubmitted != 2 || res.Continuation != "" {
		t.Fatalf("resumed call: %d %+v; want the other 2 resubmitted", status, res)
	}
	checkCopies(t, e.queue, originals, e.drainQueue(ctx, t, 4))
}

// TestReconcileFailureAnswersThePartialResult: reconcile with Table Storage down answers 503 with its report
// and the continuation to repeat it from, not a bare 500.
func TestReconcileFailureAnswersThePartialResult(t *testing.T) {
	ctx := testCtx(t, time.Minute)
	e := newEnv(t, envOptions{})
	e.seed(ctx, t, 2, nil)
	out := &testenv.Outage{}
	out.FailWhen(testenv.IsQuery)
	url := api(t, e.service(t, &Options{Ledger: e.ledgerVia(t, out)}))
	var res ReconcileResult
	if status := call(ctx, t, http.MethodPost, url+"/api/deferred/reconcile", []byte(`{"continuation":"2"}`), &res); status != PartialStatus ||
		!res.Partial || !strings.Contains(res.Error, "ledger") || res.Continuation != "2" {
		t.Fatalf("reconcile with the ledger down: %d %+v; want %d naming the ledger, continuation kept", status, res, PartialStatus)
	}
	out.Up()
	res = ReconcileResult{}
	if status := call(ctx, t, http.MethodPost, url+"/api/deferred/reconcile", nil, &res); status != http.StatusOK || !res.Done ||
		res.Added+res.Removed != 0 {
		t.Fatalf("reconcile after the outage: %d %+v; want done with nothing to change", status, res)
	}
}
