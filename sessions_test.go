package holdfast

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus"

	"github.com/holdfast-dev/holdfast/emulator/broker"
	"github.com/holdfast-dev/holdfast/internal/drain"
	"github.com/holdfast-dev/holdfast/internal/ledger"
	"github.com/holdfast-dev/holdfast/internal/testenv"
	"github.com/holdfast-dev/holdfast/processor"
)

// sessionProcessor: "due" is deferred for a second the first time and completed once it comes back due;
// "drain" is deferred for the drain; "poison" is dead-lettered; anything else is completed.
var sessionProcessor = processor.Func(func(ctx context.Context, m *azservicebus.ReceivedMessage) processor.Outcome {
	switch string(m.Body) {
	case "due":
		if m.State == azservicebus.MessageStateDeferred {
			return processor.Complete()
		}
		return processor.Defer(time.Now().Add(time.Second), "not yet")
	case "drain":
		return processor.Defer(time.Time{}, "operator")
	case "poison":
		return processor.DeadLetter("poison", "cannot be processed")
	}
	return processor.Complete()
})

// TestSessionsDeferDueDrainAndDeadLetter runs the handler on a session queue against the emulator and
// Azurite: deferring inside a session records the session in the ledger row; the next run takes the due
// message back through a receiver of its session; the drain resubmits a deferred message as a copy in the
// same session (and keeps the row, saying why, while a run holds the session); reconciliation walks the
// sessions; the dead-letter drain, on the entity's dead-letter queue (which has no sessions), resubmits into
// the original session too.
func TestSessionsDeferDueDrainAndDeadLetter(t *testing.T) {
	ctx, cancelTest := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancelTest()
	tables := testenv.Azurite(t)
	table := testenv.TableName(t)
	srv, client := startOrdersQueue(t, func(p *broker.QueueProperties) {
		p.LockDuration, p.RequiresSession = 2*time.Second, true
	})
	sender, err := client.NewSender("orders", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer sender.Close(context.Background())
	send := func(sid string, bodies ...string) {
		t.Helper()
		for _, b := range bodies {
			if err := sender.SendMessage(ctx, &azservicebus.Message{Body: []byte(b), SessionID: &sid}, nil); err != nil {
				t.Fatal(err)
			}
		}
	}
	send("cust-1", "due", "drain", "plain")
	send("cust-2", "plain", "poison")

	vars := map[string]string{"ServiceBusConnection": srv.ConnectionString(), "HOLDFAST_ENTITY": "orders",
		"DeferralStorage": tables, "HOLDFAST_DEFERRAL_TABLE": table, "HOLDFAST_RUN_BUDGET": "30s",
		"HOLDFAST_REQUIRES_SESSION": "true", "HOLDFAST_LOCK_DURATION": "2s", "FUNCTIONS_CUSTOMHANDLER_PORT": "0"}
	o, out, _ := testOptions(vars, t.TempDir())
	o.Processor, o.NoMessageWait = sessionProcessor, time.Second
	addr := serveHandler(t, o, out)
	base := "http://" + addr

	got := fireTimer(t, addr, out).ReturnValue
	if got["sessions"] != 2 || got["deferred"] != 2 || got["completed"] != 2 || got["deadLettered"] != 1 || got["locksLost"] != 0 {
		t.Fatalf("first run %v\n%s", got, out)
	}

	// The rows record the session; the list shows it.
	tc, err := ledger.NewClientFromConnectionString(tables, table, nil)
	if err != nil {
		t.Fatal(err)
	}
	l, err := ledger.New(tc, &ledger.Options{Entity: "orders"})
	if err != nil {
		t.Fatal(err)
	}
	var page drain.Page
	getJSON(t, base+"/api/deferred?top=10", &page)
	if len(page.Items) != 2 {
		t.Fatalf("list: %+v", page)
	}
	var dueSeq, drainSeq int64
	for _, it := range page.Items {
		if it.SessionID == nil || *it.SessionID != "cust-1" {
			t.Fatalf("row %d has session %v; want cust-1", it.SequenceNumber, it.SessionID)
		}
		if it.Reason == "operator" {
			drainSeq = it.SequenceNumber
		} else {
			dueSeq = it.SequenceNumber
		}
	}
	var peeked struct {
		SequenceNumber int64 `json:"sequenceNumber"`
	}
	if st := getJSON(t, base+"/api/deferred/peek?sequenceNumber="+itoa(drainSeq), &peeked); st != 200 || peeked.SequenceNumber != drainSeq {
		t.Fatalf("peek of a deferred session message: %d %+v\n%s", st, peeked, out)
	}

	// Once due, the next run takes the message back through its session and completes it; its row goes.
	row, err := l.Get(ctx, dueSeq)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Until(row.NotBefore)) // the message becomes due at a wall-clock time
	got = fireTimer(t, addr, out).ReturnValue
	if got["due"] != 1 || got["completed"] != 1 || got["sessions"] != 1 {
		t.Fatalf("second run %v\n%s", got, out)
	}
	if _, err := l.Get(ctx, dueSeq); err == nil {
		t.Fatalf("row %d of the completed due message is still there", dueSeq)
	}

	// While another receiver holds the session, the drain keeps the row and says why.
	held, err := client.AcceptSessionForQueue(ctx, "orders", "cust-1", nil)
	if err != nil {
		t.Fatal(err)
	}
	var res drain.Result
	if st := postJSON(t, base+"/api/deferred/resubmit", `{"all":true}`, &res); st != 200 || res.Resubmitted != 0 || len(res.Failed) != 1 ||
		!strings.Contains(res.Failed[0].Error, "locked by another receiver") {
		t.Fatalf("resubmit while the session is held: %d %+v", st, res)
	}
	if r, err := l.Get(ctx, drainSeq); err != nil || r.State != ledger.StateDeferred {
		t.Fatalf("row %d after the refused resubmit: %+v, %v; want it kept, deferred", drainSeq, r, err)
	}
	if err := held.Close(ctx); err != nil {
		t.Fatal(err)
	}
	res = drain.Result{}
	if st := postJSON(t, base+"/api/deferred/resubmit", `{"all":true}`, &res); st != 200 || res.Resubmitted != 1 {
		t.Fatalf("resubmit: %d %+v\n%s", st, res, out)
	}
	var rec drain.ReconcileResult
	if st := postJSON(t, base+"/api/deferred/reconcile", `{}`, &rec); st != 200 || !rec.Done || rec.Added != 0 || rec.Removed != 0 {
		t.Fatalf("reconcile: %d %+v", st, rec)
	}

	// The copy is in the same session, with the deterministic MessageID.
	sr, err := client.AcceptSessionForQueue(ctx, "orders", "cust-1", nil)
	if err != nil {
		t.Fatal(err)
	}
	msgs, err := sr.ReceiveMessages(ctx, 1, nil)
	if err != nil || len(msgs) != 1 || msgs[0].MessageID != drain.MessageID("orders", drainSeq) || msgs[0].SessionID == nil || *msgs[0].SessionID != "cust-1" {
		t.Fatalf("copy: %v, %v", msgs, err)
	}
	if err := sr.CompleteMessage(ctx, msgs[0], nil); err != nil {
		t.Fatal(err)
	}
	_ = sr.Close(ctx)

	// The dead-letter queue of a session entity is received without sessions; its copy keeps the session.
	var dl struct {
		Resubmitted int `json:"resubmitted"`
	}
	if st := postJSON(t, base+"/api/deadletter/resubmit", `{"all":true}`, &dl); st != 200 || dl.Resubmitted != 1 {
		t.Fatalf("dead-letter resubmit: %d %+v\n%s", st, dl, out)
	}
	sr, err = client.AcceptSessionForQueue(ctx, "orders", "cust-2", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer sr.Close(context.Background())
	msgs, err = sr.ReceiveMessages(ctx, 1, nil)
	if err != nil || len(msgs) != 1 || string(msgs[0].Body) != "poison" {
		t.Fatalf("dead-letter copy in session cust-2: %v, %v", msgs, err)
	}
}

func getJSON(t *testing.T, url string, out any) int {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(b, out); err != nil {
		t.Fatalf("GET %s: %q is not JSON", url, b)
	}
	return resp.StatusCode
}

func postJSON(t *testing.T, url, body string, out any) int {
	t.Helper()
	resp, err := http.Post(url, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(b, out); err != nil {
		t.Fatalf("POST %s: %q is not JSON", url, b)
	}
	return resp.StatusCode
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
