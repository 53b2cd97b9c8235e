package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus"

	"github.com/holdfast-dev/holdfast/emulator/broker"
	"github.com/holdfast-dev/holdfast/internal/drain"
	"github.com/holdfast-dev/holdfast/internal/processors"
	"github.com/holdfast-dev/holdfast/internal/testenv"
)

// deferBody makes the demo processor defer a message, due at once.
const deferBody = `{"workSeconds":0,"outcome":"defer","deferSeconds":0}`

// dedupQueue is the queue of the deferral tests: duplicate detection on, as the drain requires so
// that a repeated resubmission is dropped by Service Bus (invariant 5), and a short lock.
func dedupQueue() broker.QueueProperties {
	p := broker.DefaultQueueProperties()
	p.LockDuration = 5 * time.Second
	p.RequiresDuplicateDetection = true
	p.DuplicateDetectionHistoryTimeWindow = 10 * time.Minute
	return p
}

// deferralSettings gives the test its own ledger table in the shared Azurite and a batch large
// enough to take the test's messages in a few receives.
func deferralSettings(t *testing.T) map[string]string {
	return map[string]string{
		"HOLDFAST_DEFERRAL_TABLE": testenv.TableName(t),
		"HOLDFAST_BATCH_SIZE":     "50",
		"HOLDFAST_CONCURRENCY":    "16",
	}
}

// deferMessages sends n demo messages that ask to be deferred, runs ProcessQueue once through the
// dev host and checks that the run deferred every one of them. It returns the bodies by MessageID;
// insignificant trailing whitespace makes every body distinct.
func deferMessages(ctx context.Context, t *testing.T, st *stack, n int) map[string]string {
	t.Helper()
	sender, err := st.client.NewSender(st.queue, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer sender.Close(ctx)
	batch, err := sender.NewMessageBatch(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	sent := make(map[string]string, n)
	for i := range n {
		id, body := fmt.Sprintf("m-%03d", i), deferBody+strings.Repeat(" ", i)
		if err := batch.AddMessage(&azservicebus.Message{MessageID: &id, Body: []byte(body)}, nil); err != nil {
			t.Fatalf("adding message %d to the batch: %v", i, err)
		}
		sent[id] = body
	}
	if err := sender.SendMessageBatch(ctx, batch, nil); err != nil {
		t.Fatal(err)
	}

	_, sum := st.runTimer(ctx, t)
	if sum.Received != n || sum.Deferred != n || sum.LocksLost != 0 {
		t.Fatalf("summary %+v: want %d received and deferred, no lock lost", sum, n)
	}
	if s := st.stats(t); s.Active != 0 || s.Deferred != n || s.Locked != 0 {
		t.Fatalf("queue stats %+v: want %d deferred, nothing active or locked", s, n)
	}
	return sent
}

func (st *stack) stats(t *testing.T) broker.EntityStats {
	t.Helper()
	ent, err := st.srv.Broker().Entity(st.queue)
	if err != nil {
		t.Fatal(err)
	}
	return ent.Stats()
}

// listDeferred reads GET /api/deferred through the dev host, top rows a page, following the
// continuation until it is empty. It returns the rows and the number of pages.
func listDeferred(t *testing.T, st *stack, top int) ([]drain.Item, int) {
	t.Helper()
	var items []drain.Item
	cont := ""
	for pages := 1; ; pages++ {
		if pages > 1000 {
			t.Fatalf("GET /api/deferred: still a continuation after %d pages", pages)
		}
		q := url.Values{"top": {strconv.Itoa(top)}}
		if cont != "" {
			q.Set("continuation", cont)
		}
		status, body := st.call(t, http.MethodGet, "/api/deferred?"+q.Encode(), "")
		var page drain.Page
		if status != http.StatusOK || json.Unmarshal(body, &page) != nil {
			t.Fatalf("GET /api/deferred page %d: %d %s", pages, status, body)
		}
		if page.Entity != st.queue || len(page.Items) > top {
			t.Fatalf("page %d: entity %q with %d items; want %q and at most %d", pages, page.Entity, len(page.Items), st.queue, top)
		}
		items = append(items, page.Items...)
		if page.Continuation == "" {
			return items, pages
		}
		cont = page.Continuation
	}
}

// checkLedger checks that items index exactly the messages sent, deferred by the demo processor,
// each once, and returns their sequence numbers by MessageID.
func checkLedger(t *testing.T, items []drain.Item, sent map[string]string) map[string]int64 {
	t.Helper()
	seqs := make(map[string]int64, len(items))
	seen := map[int64]bool{}
	for _, it := range items {
		if _, ok := sent[it.MessageID]; !ok || seen[it.SequenceNumber] {
			t.Errorf("ledger row %+v: unknown MessageID or repeated sequence number", it)
		}
		if _, dup := seqs[it.MessageID]; dup {
			t.Errorf("ledger lists MessageID %s twice", it.MessageID)
		}
		if it.State != "deferred" || it.Reason != processors.DemoDeferReason {
			t.Errorf("ledger row %+v: want state deferred, reason %q", it, processors.DemoDeferReason)
		}
		seen[it.SequenceNumber] = true
		seqs[it.MessageID] = it.SequenceNumber
	}
	if len(items) != len(sent) || len(seqs) != len(sent) {
		t.Fatalf("ledger lists %d rows for %d messages; want one row per deferred message", len(items), len(sent))
	}
	return seqs
}

// TestDeferralsSurviveRestart defers 100 messages in one run, replaces the dev host and the handler
// process, and finds every deferral in the ledger and every message receivable by its sequence
// number (issue 4).
func TestDeferralsSurviveRestart(t *testing.T) {
	const n = 100
	st := startStackOn(t, "e2e-restart", dedupQueue(), deferralSettings(t))
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	sent := deferMessages(ctx, t, st, n)

	firstPID := st.host.HandlerPID()
	st.stopHost(t)
	st.startHost(t)
	if pid := st.host.HandlerPID(); pid == firstPID || pid == 0 {
		t.Fatalf("handler pid %d after the restart, %d before: want a new process", pid, firstPID)
	}

	items, pages := listDeferred(t, st, 30)
	if pages < 2 {
		t.Errorf("%d rows listed in %d page(s) of 30: want continuations", len(items), pages)
	}
	seqByID := checkLedger(t, items, sent)

	rcv, err := st.client.NewReceiverForQueue(st.queue, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer rcv.Close(ctx)
	seqs := make([]int64, 0, n)
	for _, s := range seqByID {
		seqs = append(seqs, s)
	}
	msgs, err := rcv.ReceiveDeferredMessages(ctx, seqs, nil)
	if err != nil {
		t.Fatalf("ReceiveDeferredMessages(%d listed sequence numbers): %v", len(seqs), err)
	}
	if len(msgs) != n {
		t.Fatalf("received %d deferred messages, want %d", len(msgs), n)
	}
	for _, m := range msgs {
		if seqByID[m.MessageID] != *m.SequenceNumber || string(m.Body) != sent[m.MessageID] {
			t.Errorf("message %s (seq %d, body %q): the ledger lists seq %d, sent body %q",
				m.MessageID, *m.SequenceNumber, m.Body, seqByID[m.MessageID], sent[m.MessageID])
		}
	}
}

// TestDrainResubmitThroughDevHost drives the drain over HTTP through the dev host (issue 5): bad
// requests are refused and change nothing; a resubmit paged with a small maxCount sends every
// deferred message back to the queue exactly once, with its lineage, and removes the originals and
// their ledger rows.
func TestDrainResubmitThroughDevHost(t *testing.T) {
	const n, maxCount = 50, 7
	st := startStackOn(t, "e2e-drain", dedupQueue(), deferralSettings(t))
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	sent := deferMessages(ctx, t, st, n)
	items, _ := listDeferred(t, st, 20)
	seqByID := checkLedger(t, items, sent)

	t.Run("bad input", func(t *testing.T) {
		tests := []struct {
			name, path, body string
			status           int
			mention          string // the error must name the problem
		}{
			{"negative sequence number", "/api/deferred/resubmit", `{"sequenceNumbers":[-1]}`, 400, "negative"},
			{"unknown field", "/api/deferred/resubmit", `{"all":true,"everything":true}`, 400, "everything"},
			{"maxCount zero", "/api/deferred/resubmit", `{"all":true,"maxCount":0}`, 400, "maxCount"},
			{"no selection", "/api/deferred/resubmit", `{}`, 400, "nothing selected"},
			{"foreign continuation", "/api/deferred/resubmit", `{"all":true,"continuation":"bm90LW91cnM"}`, 400, "continuation"},
			{"unknown action", "/api/deferred/purge", `{"all":true}`, 404, "purge"},
			{"bad top", "/api/deferred?top=0", "", 400, "top"},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				method := http.MethodPost
				if tc.body == "" {
					method = http.MethodGet
				}
				status, body := st.call(t, method, tc.path, tc.body)
				var e struct {
					Error string `json:"error"`
				}
				if status != tc.status || json.Unmarshal(body, &e) != nil || !strings.Contains(e.Error, tc.mention) {
					t.Errorf("%s %s %s: %d %s; want %d with a JSON error naming %q", method, tc.path, tc.body, status, body, tc.status, tc.mention)
				}
			})
		}
		after, _ := listDeferred(t, st, 100)
		if s := st.stats(t); len(after) != n || s.Deferred != n || s.Active != 0 {
			t.Errorf("after the refused requests: %d ledger rows, queue stats %+v; want %d rows and deferred messages, nothing active", len(after), s, n)
		}
	})

	var total drain.Result
	cont := ""
	calls := 0
	for {
		calls++
		if calls > 2*n {
			t.Fatalf("resubmit: still a continuation after %d calls", calls)
		}
		req, _ := json.Marshal(drain.Request{All: true, MaxCount: maxCount, Continuation: cont})
		status, body := st.call(t, http.MethodPost, "/api/deferred/resubmit", string(req))
		var res drain.Result
		if status != http.StatusOK || json.Unmarshal(body, &res) != nil {
			t.Fatalf("resubmit call %d: %d %s", calls, status, body)
		}
		if res.Processed > maxCount || len(res.Failed) != 0 || len(res.NotFound) != 0 || res.SkippedCount != 0 {
			t.Fatalf("resubmit call %d: %s; want at most %d processed, none failed, missing or skipped", calls, body, maxCount)
		}
		total.Processed += res.Processed
		total.Resubmitted += res.Resubmitted
		if cont = res.Continuation; cont == "" {
			break
		}
	}
	if total.Processed != n || total.Resubmitted != n || calls < (n+maxCount-1)/maxCount {
		t.Fatalf("%d resubmit calls processed %d and resubmitted %d; want %d each over at least %d calls",
			calls, total.Processed, total.Resubmitted, n, (n+maxCount-1)/maxCount)
	}
	t.Logf("resubmitted %d messages in %d calls of maxCount %d", n, calls, maxCount)

	checkCopies(ctx, t, st, sent, seqByID)

	rcv, err := st.client.NewReceiverForQueue(st.queue, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer rcv.Close(ctx)
	for id, seq := range seqByID {
		_, err := rcv.ReceiveDeferredMessages(ctx, []int64{seq}, nil)
		var sbErr *azservicebus.Error
		if !errors.As(err, &sbErr) || sbErr.Code != azservicebus.CodeNotFound {
			t.Errorf("original %s (seq %d) after the resubmit: ReceiveDeferredMessages = %v; want CodeNotFound", id, seq, err)
		}
	}
	if left, _ := listDeferred(t, st, 100); len(left) != 0 {
		t.Errorf("ledger after the resubmit lists %d rows, want none: %+v", len(left), left)
	}
}

// checkCopies receives the resubmitted copies and checks each one: the original body, the
// deterministic MessageID and the lineage properties, one copy per original and nothing else in the
// queue.
func checkCopies(ctx context.Context, t *testing.T, st *stack, sent map[string]string, seqByID map[string]int64) {
	t.Helper()
	n := len(sent)
	rcv, err := st.client.NewReceiverForQueue(st.queue, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer rcv.Close(ctx)
	var copies []*azservicebus.ReceivedMessage
	for len(copies) < n {
		msgs, err := rcv.ReceiveMessages(ctx, n-len(copies), nil)
		if err != nil {
			t.Fatalf("receiving the copies (%d of %d so far): %v", len(copies), n, err)
		}
		copies = append(copies, msgs...)
	}
	origIDs := make([]string, 0, n)
	for _, m := range copies {
		p := m.ApplicationProperties
		origID, _ := p[drain.PropOriginalMessageID].(string)
		origIDs = append(origIDs, origID)
		seq, ok := seqByID[origID]
		switch {
		case !ok:
			t.Errorf("copy %s: %s %q is not a message of the test", m.MessageID, drain.PropOriginalMessageID, origID)
		case p[drain.PropOriginalSequenceNumber] != seq || m.MessageID != drain.MessageID(st.queue, seq):
			t.Errorf("copy %s of %s: %s = %v (%T); want %d and MessageID %s", m.MessageID, origID,
				drain.PropOriginalSequenceNumber, p[drain.PropOriginalSequenceNumber], p[drain.PropOriginalSequenceNumber], seq, drain.MessageID(st.queue, seq))
		case string(m.Body) != sent[origID]:
			t.Errorf("copy of %s: body %q, want the original %q", origID, m.Body, sent[origID])
		case p[drain.PropResubmitCount] != int64(1) || p[drain.PropDeferReason] != processors.DemoDeferReason:
			t.Errorf("copy of %s: %s = %v (%T), %s = %v; want 1 and %q", origID, drain.PropResubmitCount, p[drain.PropResubmitCount],
				p[drain.PropResubmitCount], drain.PropDeferReason, p[drain.PropDeferReason], processors.DemoDeferReason)
		}
	}
	slices.Sort(origIDs)
	if distinct := len(slices.Compact(origIDs)); distinct != n {
		t.Errorf("the %d copies come from %d distinct originals; want one copy each", n, distinct)
	}
	// Everything now in the queue is a copy this receiver holds: nothing was sent twice.
	s := st.stats(t)
	if s.Active != n || s.Locked != n || s.Deferred != 0 || s.DeadLettered != 0 || s.Counters.Sent != uint64(2*n) || s.Counters.Duplicates != 0 {
		t.Errorf("queue stats %+v; want %d active copies, all locked, nothing deferred or dead-lettered, %d sends in all, no duplicate", s, n, 2*n)
	}
}
