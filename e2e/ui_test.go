//go:build browser

// The operator page in a real browser: Debian's chromium, driven headless with chromedp, against the dev-host
// stack. `make test-ui` (part of `make test`) runs it; it needs /usr/bin/chromium or HOLDFAST_CHROMIUM.

package e2e

import (
	"bytes"
	"context"
	"fmt"
	"image/png"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"

	"github.com/holdfast-dev/holdfast/internal/browse"
	"github.com/holdfast-dev/holdfast/internal/deadletter"
	"github.com/holdfast-dev/holdfast/internal/drain"
	"github.com/holdfast-dev/holdfast/internal/ui"
)

// scriptBody is a message body a careless page would run; the demo processor dead-letters it (InvalidBody).
const scriptBody = `<script>document.title="pwned"</script><img src=x onerror="document.title='pwned'">`

// browser starts a headless chromium with the flags this machine needs (no network beyond loopback) and a
// fresh profile, and returns a tab context. Everything stops at test cleanup.
func browser(t *testing.T) context.Context {
	t.Helper()
	exe := os.Getenv("HOLDFAST_CHROMIUM")
	if exe == "" {
		exe = "/usr/bin/chromium"
	}
	if _, err := os.Stat(exe); err != nil {
		t.Fatalf("chromium not found at %s (install Debian's chromium, or set HOLDFAST_CHROMIUM): %v", exe, err)
	}
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(exe),
		chromedp.Flag("headless", true),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.Flag("disable-quic", true),
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1500, 1000),
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	t.Cleanup(cancelAlloc)
	ctx, cancel := chromedp.NewContext(actx, chromedp.WithLogf(t.Logf))
	t.Cleanup(cancel)
	return ctx
}

// consoleLog collects the page's console messages, uncaught exceptions and browser log entries (CSP
// violations arrive there) from a goroutine the test joins through stop.
type consoleLog struct {
	mu    sync.Mutex
	lines []string // guarded by mu
	done  chan struct{}
}

func listenConsole(ctx context.Context) (*consoleLog, context.CancelFunc) {
	ctx, cancel := context.WithCancel(ctx)
	c := &consoleLog{done: make(chan struct{})}
	msgs := chromedp.Console(ctx)
	go func() {
		defer close(c.done)
		for m, err := range msgs {
			if err != nil {
				return
			}
			c.mu.Lock()
			c.lines = append(c.lines, m.String())
			c.mu.Unlock()
		}
	}()
	return c, func() { cancel(); <-c.done }
}

func (c *consoleLog) all() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.lines...)
}

// sendBodies sends one message per body to the stack's queue.
func sendBodies(ctx context.Context, t *testing.T, st *stack, bodies ...string) {
	t.Helper()
	sender, err := st.client.NewSender(st.queue, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer sender.Close(ctx)
	for i, b := range bodies {
		id := fmt.Sprintf("dl-%d", i)
		if err := sender.SendMessage(ctx, &azservicebus.Message{MessageID: &id, Body: []byte(b)}, nil); err != nil {
			t.Fatal(err)
		}
	}
}

// rowSeqs returns the sequence numbers of the table's rows, as text.
func rowSeqs(ctx context.Context, t *testing.T) []string {
	t.Helper()
	seqs, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](`[...document.querySelectorAll("#rows tr")].map(r => r.dataset.seq)`))
	if err != nil {
		t.Fatal(err)
	}
	return seqs
}

// waitJS waits until the expression is truthy.
func waitJS(ctx context.Context, t *testing.T, what, expr string) {
	t.Helper()
	if _, err := chromedp.Run(ctx, chromedp.Poll[chromedp.Void](expr, chromedp.WithPollingInterval(50*time.Millisecond),
		chromedp.WithPollingTimeout(30*time.Second))); err != nil {
		t.Fatalf("waiting for %s (%s): %v", what, expr, err)
	}
}

// TestOperatorPageResubmitsAndShowsBodiesAsText: dead-lettered and deferred messages appear in their tabs;
// selecting two rows and pressing Resubmit sends them back to the queue (copies with the drain's MessageIDs)
// and removes them from the table; a body holding markup is shown as text and runs nothing; every API call
// carries the function key; the page never trips its own Content-Security-Policy. The last screen is saved
// as a PNG (HOLDFAST_SCREENSHOT names the file; `make ui-screenshot` writes docs/operator-page.png).
func TestOperatorPageResubmitsAndShowsBodiesAsText(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	st := startStackOn(t, "ops", dedupQueue(), deferralSettings(t))

	// Four dead-letters: three by the demo processor's outcome, one for an unparseable body.
	dl := `{"workSeconds":0,"outcome":"deadletter"}`
	sendBodies(ctx, t, st, dl, dl+" ", dl+"  ", scriptBody)
	if _, sum := st.runTimer(ctx, t); sum.DeadLettered != 4 {
		t.Fatalf("run %+v: want 4 dead-lettered", sum)
	}
	deferMessages(ctx, t, st, 3)

	resp, err := http.Get("http://" + st.host.Addr() + "/api/ui?code=test-key")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Security-Policy") != ui.CSP {
		t.Fatalf("page through the dev host: %d, CSP %q", resp.StatusCode, resp.Header.Get("Content-Security-Policy"))
	}

	bctx := browser(t)
	console, stopConsole := listenConsole(bctx)
	defer stopConsole()
	if err := chromedp.Do(bctx, chromedp.Navigate("http://"+st.host.Addr()+"/api/ui?code=test-key")); err != nil {
		t.Fatal(err)
	}

	// The deferred tab: three rows; resubmit the first and the third.
	waitJS(bctx, t, "three deferred rows", `document.querySelectorAll("#rows tr").length === 3`)
	deferred := rowSeqs(bctx, t)
	click(bctx, t, `#rows tr:nth-child(1) input[type=checkbox]`, `#rows tr:nth-child(3) input[type=checkbox]`, `#act-resubmit`)
	waitJS(bctx, t, "the deferred result", `document.getElementById("result-summary").textContent.includes("2 resubmitted")`)
	waitJS(bctx, t, "one deferred row left", `document.querySelectorAll("#rows tr").length === 1`)
	if left := rowSeqs(bctx, t); len(left) != 1 || left[0] != deferred[1] {
		t.Fatalf("deferred rows left %v, want [%s]", left, deferred[1])
	}
	peekQueue(ctx, t, st, 2)

	// The dead-letter tab: four rows, the markup body among them as text.
	click(bctx, t, `#tab-deadletter`)
	waitJS(bctx, t, "four dead-letter rows", `document.querySelectorAll("#rows tr").length === 4`)
	seqs := rowSeqs(bctx, t)
	cell := must(chromedp.Run(bctx, chromedp.Evaluate[string](`document.querySelector("#rows tr:nth-child(4) td:nth-child(10)").textContent`)))(t)
	if !strings.Contains(cell, "<script>") {
		t.Fatalf("body cell %q does not show the markup as text", cell)
	}

	// Select the first two and resubmit: they leave the table and arrive in the queue.
	click(bctx, t, `#rows tr:nth-child(1) input[type=checkbox]`, `#rows tr:nth-child(2) input[type=checkbox]`, `#act-resubmit`)
	waitJS(bctx, t, "the dead-letter result", `document.getElementById("result-summary").textContent.includes("2 resubmitted")`)
	waitJS(bctx, t, "two dead-letter rows left", `document.querySelectorAll("#rows tr").length === 2`)
	if left := rowSeqs(bctx, t); strings.Join(left, ",") != strings.Join(seqs[2:], ",") {
		t.Fatalf("rows left %v, want %v", left, seqs[2:])
	}
	dlqCopies := 0
	for _, c := range peekQueue(ctx, t, st, 4) {
		orig, _ := c.ApplicationProperties[drain.PropOriginalSequenceNumber].(int64)
		if c.MessageID == deadletter.MessageID(st.queue, orig) && (fmt.Sprint(orig) == seqs[0] || fmt.Sprint(orig) == seqs[1]) {
			dlqCopies++
		}
	}
	if dlqCopies != 2 {
		t.Fatalf("%d copies of %v in the queue, want 2", dlqCopies, seqs[:2])
	}

	// The markup message's detail: shown as text, and nothing ran.
	click(bctx, t, `#rows tr:nth-child(2) button`)
	waitJS(bctx, t, "the detail view", `!document.getElementById("detail").hidden && document.getElementById("detail-body").textContent !== ""`)
	detailBody := must(chromedp.Run(bctx, chromedp.Evaluate[string](`document.getElementById("detail-body").textContent`)))(t)
	title := must(chromedp.Run(bctx, chromedp.Title()))(t)
	scripts := must(chromedp.Run(bctx, chromedp.Evaluate[int](`document.querySelectorAll("script").length + document.querySelectorAll("main img").length`)))(t)
	if detailBody != scriptBody || title == "pwned" || scripts != 1 {
		t.Fatalf("markup body: detail %q, title %q, %d script/img elements (want the page's one script)", detailBody, title, scripts)
	}

	urls := must(chromedp.Run(bctx, chromedp.Evaluate[[]string](`performance.getEntriesByType("resource").map(e => e.name)`)))(t)
	apiCalls := 0
	for _, u := range urls {
		if strings.Contains(u, "/api/") {
			apiCalls++
			if !strings.Contains(u, "code=test-key") {
				t.Errorf("request without the function key: %s", u)
			}
		}
	}
	if apiCalls < 8 {
		t.Errorf("only %d requests seen: %v", apiCalls, urls)
	}
	shot := must(chromedp.Run(bctx, chromedp.FullScreenshot(100)))(t)
	stopConsole()
	for _, l := range console.all() {
		t.Logf("browser console: %s", l)
		if strings.Contains(l, "Content Security Policy") || strings.Contains(strings.ToLower(l), "error") || strings.Contains(strings.ToLower(l), "exception") {
			t.Errorf("browser reported: %s", l)
		}
	}
	if _, err := png.Decode(bytes.NewReader(shot)); err != nil {
		t.Fatalf("screenshot is not a PNG: %v", err)
	}
	out := os.Getenv("HOLDFAST_SCREENSHOT")
	if out == "" {
		out = filepath.Join(t.TempDir(), "operator-page.png")
	}
	if err := os.WriteFile(out, shot, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s (%d bytes)", out, len(shot))
}

// must returns a func that fails t on err and otherwise gives v.
func must[T any](v T, err error) func(*testing.T) T {
	return func(t *testing.T) T {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
}

// click clicks the elements matched by the CSS selectors, in order.
func click(ctx context.Context, t *testing.T, selectors ...string) {
	t.Helper()
	for _, s := range selectors {
		if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS(s))); err != nil {
			t.Fatalf("click %s: %v", s, err)
		}
	}
}

// peekQueue checks that the stack's queue holds n active messages and returns them (peeked page by page,
// nothing locked).
func peekQueue(ctx context.Context, t *testing.T, st *stack, n int) []*azservicebus.ReceivedMessage {
	t.Helper()
	if s := st.stats(t); s.Active != n {
		t.Fatalf("queue %+v: want %d active messages", s, n)
	}
	r, err := st.client.NewReceiverForQueue(st.queue, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close(ctx)
	var active []*azservicebus.ReceivedMessage
	for from := int64(0); ; {
		msgs, err := r.PeekMessages(ctx, 50, &azservicebus.PeekMessagesOptions{FromSequenceNumber: &from})
		if err != nil {
			t.Fatal(err)
		}
		if len(msgs) == 0 {
			return active
		}
		for _, m := range msgs {
			if m.State == azservicebus.MessageStateActive {
				active = append(active, m)
			}
		}
		from = *msgs[len(msgs)-1].SequenceNumber + 1
	}
}

// TestOperatorPageBulkActionsFiltersAndPages drives the rest of the page on one stack: dead-lettering
// selected deferred messages with the prompted reason (they leave the tab and the ledger and show up in the
// dead-letter tab with that reason), the "Reason contains" filter (which unselects the rows it hides), paging
// with the smallest page size, deleting selected dead-letters (a dismissed confirmation deletes nothing; an
// accepted one deletes exactly the selection) and resubmitting every message of the tab. Every check is made
// against the broker through the SDK or against the ledger through the API, not only against the table.
func TestOperatorPageBulkActionsFiltersAndPages(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	st := startStackOn(t, "ops-bulk", dedupQueue(), deferralSettings(t))

	// 30 dead-letters: 26 by the demo processor's outcome (reason "demo"), 4 unparseable (InvalidBody)
	// among them; then 28 deferred messages, enough for two pages in the deferred tab too.
	const nDead, nDeferred = 30, 28
	bodies := make([]string, nDead)
	for i := range bodies {
		bodies[i] = `{"workSeconds":0,"outcome":"deadletter"}`
		if i%7 == 3 {
			bodies[i] = fmt.Sprintf("not json %d", i)
		}
	}
	sendBodies(ctx, t, st, bodies...)
	if _, sum := st.runTimer(ctx, t); sum.DeadLettered != nDead {
		t.Fatalf("run %+v: want %d dead-lettered", sum, nDead)
	}
	deferMessages(ctx, t, st, nDeferred)

	bctx := browser(t)
	console, stopConsole := listenConsole(bctx)
	defer stopConsole()
	if err := chromedp.Do(bctx, chromedp.Navigate("http://"+st.host.Addr()+"/api/ui?code=test-key")); err != nil {
		t.Fatal(err)
	}

	// Deferred tab: dead-letter the second and the fourth row with a reason typed into the prompt.
	waitJS(bctx, t, "the deferred rows", fmt.Sprintf(`document.querySelectorAll("#rows tr").length === %d`, nDeferred))
	deferred := tableRows(bctx, t)
	const operatorReason = "checked by the operator"
	click(bctx, t, `#rows tr:nth-child(2) input[type=checkbox]`, `#rows tr:nth-child(4) input[type=checkbox]`)
	if d := clickDialog(bctx, t, `#act-deadletter`, true, operatorReason); d.Type != page.DialogTypePrompt || !strings.Contains(d.Message, "Dead-letter 2 message(s)") {
		t.Fatalf("dead-letter dialog %s %q: want a prompt for 2 messages", d.Type, d.Message)
	}
	waitJS(bctx, t, "the dead-letter result", `document.getElementById("result-summary").textContent.includes("2 dead-lettered")`)
	var stillDeferred []tableRow
	for i, r := range deferred {
		if i != 1 && i != 3 {
			stillDeferred = append(stillDeferred, r)
		}
	}
	waitJS(bctx, t, "the selected deferred rows gone", fmt.Sprintf(`document.querySelectorAll("#rows tr").length === %d`, len(stillDeferred)))
	if left := tableRows(bctx, t); seqsOf(left) != seqsOf(stillDeferred) {
		t.Fatalf("deferred rows left %s, want %s", seqsOf(left), seqsOf(stillDeferred))
	}
	items, _ := listDeferred(t, st, 50)
	ledgerSeqs := make([]int64, len(items))
	for i, it := range items {
		ledgerSeqs[i] = it.SequenceNumber
	}
	if slices.Sort(ledgerSeqs); strings.Trim(strings.ReplaceAll(fmt.Sprint(ledgerSeqs), " ", ","), "[]") != seqsOf(stillDeferred) {
		t.Fatalf("ledger rows %v: want only %s", ledgerSeqs, seqsOf(stillDeferred))
	}
	if s := st.stats(t); s.Deferred != len(stillDeferred) {
		t.Fatalf("queue %+v: want the %d unselected messages still deferred", s, len(stillDeferred))
	}
	dead := st.deadLettered(ctx, t)
	if len(dead) != nDead+2 {
		t.Fatalf("%d messages in the dead-letter queue, want %d", len(dead), nDead+2)
	}
	for _, m := range dead {
		if (m.MessageID == deferred[1].ID || m.MessageID == deferred[3].ID) != (m.DeadLetterReason != nil && *m.DeadLetterReason == operatorReason) {
			t.Fatalf("dead-lettered %s has reason %v; want %q exactly for %s and %s", m.MessageID, m.DeadLetterReason, operatorReason, deferred[1].ID, deferred[3].ID)
		}
	}

	// Dead-letter tab: every message, the two from the deferred tab with the operator's reason.
	click(bctx, t, `#tab-deadletter`)
	waitJS(bctx, t, "the dead-letter rows", fmt.Sprintf(`document.querySelectorAll("#rows tr").length === %d`, nDead+2))
	all := tableRows(bctx, t)
	for _, r := range all {
		if (r.ID == deferred[1].ID || r.ID == deferred[3].ID) != (r.Reason == operatorReason) {
			t.Fatalf("row %+v: want the reason %q exactly on %s and %s", r, operatorReason, deferred[1].ID, deferred[3].ID)
		}
	}

	// "Reason contains" narrows the rows to the messages whose DeadLetterReason contains the text. A
	// selected row the filter hides is no longer selected: an action never touches a message out of sight.
	click(bctx, t, `#rows tr:nth-child(1) input[type=checkbox]`)
	for i, f := range []string{"invalidbody", "demo", "OPERATOR"} {
		var want []string
		for _, m := range dead {
			if m.DeadLetterReason != nil && strings.Contains(strings.ToLower(*m.DeadLetterReason), strings.ToLower(f)) {
				want = append(want, fmt.Sprint(*m.SequenceNumber))
			}
		}
		typeInto(bctx, t, "#filter-reason", f)
		waitJS(bctx, t, "the filtered rows", fmt.Sprintf(`document.querySelectorAll("#rows tr").length === %d`, len(want)))
		if got := seqsOf(tableRows(bctx, t)); got != strings.Join(want, ",") {
			t.Fatalf("filter %q shows %s, want %s", f, got, strings.Join(want, ","))
		}
		if i == 0 && !document(bctx, t, `document.getElementById("selection-info").textContent === "0 selected" && document.getElementById("act-resubmit").disabled`) {
			t.Fatalf("the row %s the filter hid is still selected", all[0].Seq)
		}
	}
	typeInto(bctx, t, "#filter-reason", "")
	waitJS(bctx, t, "every row again", fmt.Sprintf(`document.querySelectorAll("#rows tr").length === %d`, nDead+2))

	// The state filter shows the messages in the chosen state (the broker's, as the SDK peeks it).
	for _, state := range []string{"deferred", "active", ""} {
		var want []string
		for _, m := range dead {
			if state == "" || browse.State(m.State) == state {
				want = append(want, fmt.Sprint(*m.SequenceNumber))
			}
		}
		chooseOption(bctx, t, "#filter-state", state)
		waitJS(bctx, t, "the rows in state "+state, fmt.Sprintf(`document.querySelectorAll("#rows tr").length === %d && document.getElementById("empty").hidden === %v`, len(want), len(want) > 0))
		if got := seqsOf(tableRows(bctx, t)); got != strings.Join(want, ",") {
			t.Fatalf("state %q shows %s, want %s", state, got, strings.Join(want, ","))
		}
	}

	// Paging by 25: the second page continues the first, Previous goes back.
	chooseOption(bctx, t, "#page-size", "25")
	waitJS(bctx, t, "a page of 25", `document.querySelectorAll("#rows tr").length === 25 && !document.getElementById("next").disabled`)
	first := tableRows(bctx, t)
	if seqsOf(first) != seqsOf(all[:25]) {
		t.Fatalf("first page %s, want %s", seqsOf(first), seqsOf(all[:25]))
	}
	click(bctx, t, "#next")
	waitJS(bctx, t, "the second page", fmt.Sprintf(`document.querySelectorAll("#rows tr").length === %d && document.getElementById("page-info").textContent.startsWith("page 2,")`, len(all)-25))
	if second := tableRows(bctx, t); seqsOf(second) != seqsOf(all[25:]) || !document(bctx, t, `document.getElementById("next").disabled`) {
		t.Fatalf("second page %s (Next enabled: %v), want %s and no further page", seqsOf(second), !document(bctx, t, `document.getElementById("next").disabled`), seqsOf(all[25:]))
	}
	click(bctx, t, "#prev")
	waitJS(bctx, t, "the first page again", `document.querySelectorAll("#rows tr").length === 25 && document.getElementById("page-info").textContent.startsWith("page 1,")`)
	if again := tableRows(bctx, t); seqsOf(again) != seqsOf(first) {
		t.Fatalf("back on the first page %s, want %s", seqsOf(again), seqsOf(first))
	}

	// Delete, dismissed: nothing is sent, nothing leaves the table or the queue.
	click(bctx, t, `#rows tr:nth-child(1) input[type=checkbox]`, `#rows tr:nth-child(2) input[type=checkbox]`)
	if d := clickDialog(bctx, t, `#act-delete`, false, ""); d.Type != page.DialogTypeConfirm || !strings.Contains(d.Message, "Delete 2 message(s)") {
		t.Fatalf("delete dialog %s %q: want a confirmation for 2 messages", d.Type, d.Message)
	}
	if !document(bctx, t, `document.getElementById("progress-box").hidden && document.getElementById("result").hidden && !document.getElementById("act-delete").disabled`) {
		t.Fatal("a dismissed delete started an action")
	}
	if got := seqsOf(tableRows(bctx, t)); got != seqsOf(first) {
		t.Fatalf("rows after a dismissed delete %s, want %s", got, seqsOf(first))
	}
	if n := len(st.deadLettered(ctx, t)); n != nDead+2 {
		t.Fatalf("%d dead-letters after a dismissed delete, want %d", n, nDead+2)
	}

	// Delete, accepted, of the second and the third row: exactly they leave the table and the queue.
	click(bctx, t, `#rows tr:nth-child(1) input[type=checkbox]`, `#rows tr:nth-child(3) input[type=checkbox]`)
	clickDialog(bctx, t, `#act-delete`, true, "")
	waitJS(bctx, t, "the delete result", `document.getElementById("result-summary").textContent.includes("2 deleted")`)
	gone := map[string]bool{first[1].Seq: true, first[2].Seq: true}
	var kept []tableRow
	for _, r := range all {
		if !gone[r.Seq] {
			kept = append(kept, r)
		}
	}
	waitJS(bctx, t, "the deleted rows gone", fmt.Sprintf(`!document.querySelector('#rows tr[data-seq="%s"], #rows tr[data-seq="%s"]')`, first[1].Seq, first[2].Seq))
	if got := seqsOf(tableRows(bctx, t)); got != seqsOf(kept[:25]) {
		t.Fatalf("rows after deleting %s and %s: %s, want %s", first[1].Seq, first[2].Seq, got, seqsOf(kept[:25]))
	}
	var left []string
	for _, m := range st.deadLettered(ctx, t) {
		left = append(left, fmt.Sprint(*m.SequenceNumber))
	}
	if strings.Join(left, ",") != seqsOf(kept) {
		t.Fatalf("dead-letter queue after the delete %v, want %s", left, seqsOf(kept))
	}

	// Resubmit every message of the tab, confirmed: the tab empties, every message is in the queue.
	click(bctx, t, "#apply-all")
	if d := clickDialog(bctx, t, `#act-resubmit`, true, ""); d.Type != page.DialogTypeConfirm || !strings.Contains(d.Message, "every message") {
		t.Fatalf("resubmit-all dialog %s %q: want a confirmation for every message", d.Type, d.Message)
	}
	waitJS(bctx, t, "the resubmit result", fmt.Sprintf(`document.getElementById("result-summary").textContent.includes("%d resubmitted")`, len(kept)))
	waitJS(bctx, t, "an empty tab", `document.querySelectorAll("#rows tr").length === 0 && !document.getElementById("empty").hidden`)
	// "Every message" is chosen anew for each action: it is cleared once the action is done.
	waitJS(bctx, t, "apply-all cleared after the action", `!document.getElementById("apply-all").checked && document.getElementById("act-delete").disabled`)
	if n := len(st.deadLettered(ctx, t)); n != 0 {
		t.Fatalf("%d messages left in the dead-letter queue, want none", n)
	}
	copies := map[string]bool{}
	for _, c := range peekQueue(ctx, t, st, len(kept)) {
		orig, _ := c.ApplicationProperties[drain.PropOriginalSequenceNumber].(int64)
		if c.MessageID == deadletter.MessageID(st.queue, orig) {
			copies[fmt.Sprint(orig)] = true
		}
	}
	for _, r := range kept {
		if !copies[r.Seq] {
			t.Errorf("no copy of dead-letter %s in the queue", r.Seq)
		}
	}

	// "Every message" chosen on one tab does not carry over to another.
	click(bctx, t, "#apply-all", "#tab-deferred")
	// The deferred tab pages by 25 too (the ledger's continuation): the second page holds the rest.
	waitJS(bctx, t, "a deferred page of 25", `document.querySelectorAll("#rows tr").length === 25 && !document.getElementById("next").disabled`)
	waitJS(bctx, t, "apply-all cleared by the tab switch", `!document.getElementById("apply-all").checked && document.getElementById("act-delete").disabled`)
	if got := seqsOf(tableRows(bctx, t)); got != seqsOf(stillDeferred[:25]) {
		t.Fatalf("first deferred page %s, want %s", got, seqsOf(stillDeferred[:25]))
	}
	click(bctx, t, "#next")
	waitJS(bctx, t, "the second deferred page", `document.getElementById("page-info").textContent.startsWith("page 2,")`)
	if got := seqsOf(tableRows(bctx, t)); got != seqsOf(stillDeferred[25:]) {
		t.Fatalf("second deferred page %s, want %s", got, seqsOf(stillDeferred[25:]))
	}

	stopConsole()
	for _, l := range console.all() {
		if strings.Contains(l, "Content Security Policy") || strings.Contains(strings.ToLower(l), "error") || strings.Contains(strings.ToLower(l), "exception") {
			t.Errorf("browser reported: %s", l)
		}
	}
}

// tableRow is one row of the page's table: sequence number, message id and reason, as shown.
type tableRow struct{ Seq, ID, Reason string }

// tableRows reads the table's rows.
func tableRows(ctx context.Context, t *testing.T) []tableRow {
	t.Helper()
	cells := must(chromedp.Run(ctx, chromedp.Evaluate[[][]string](
		`[...document.querySelectorAll("#rows tr")].map(r => [r.dataset.seq, r.cells[2].textContent, r.cells[3].textContent])`)))(t)
	rows := make([]tableRow, len(cells))
	for i, c := range cells {
		rows[i] = tableRow{c[0], c[1], c[2]}
	}
	return rows
}

// seqsOf joins the rows' sequence numbers with commas.
func seqsOf(rows []tableRow) string {
	s := make([]string, len(rows))
	for i, r := range rows {
		s[i] = r.Seq
	}
	return strings.Join(s, ",")
}

// document evaluates a boolean expression in the page.
func document(ctx context.Context, t *testing.T, expr string) bool {
	t.Helper()
	return must(chromedp.Run(ctx, chromedp.Evaluate[bool](expr)))(t)
}

// typeInto replaces the text of the input as a user does: it empties it, then types text key by key.
func typeInto(ctx context.Context, t *testing.T, sel, text string) {
	t.Helper()
	clear := fmt.Sprintf(`(() => { const e = document.querySelector(%q); e.value = ""; e.dispatchEvent(new Event("input")); return true })()`, sel)
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[bool](clear)); err != nil {
		t.Fatal(err)
	}
	if text != "" {
		if err := chromedp.Do(ctx, chromedp.SendKeys(chromedp.CSS(sel), text)); err != nil {
			t.Fatalf("typing into %s: %v", sel, err)
		}
	}
}

// chooseOption selects the option of a <select> and fires its change event, as picking it with the mouse does.
func chooseOption(ctx context.Context, t *testing.T, sel, value string) {
	t.Helper()
	js := fmt.Sprintf(`(() => { const e = document.querySelector(%q); e.value = %q; e.dispatchEvent(new Event("change")); return e.value })()`, sel, value)
	if got := must(chromedp.Run(ctx, chromedp.Evaluate[string](js)))(t); got != value {
		t.Fatalf("%s has no option %q", sel, value)
	}
}

// clickDialog clicks the element and answers the JavaScript dialog (confirm, prompt) the click opens:
// accept or dismiss, with promptText typed into a prompt. The click waits for the dialog, so the answer
// comes from a goroutine that this call stops and joins. It fails the test when no dialog opened, and
// returns the dialog.
func clickDialog(ctx context.Context, t *testing.T, sel string, accept bool, promptText string) page.EventJavascriptDialogOpening {
	t.Helper()
	ectx, stop := context.WithCancel(ctx)
	events := chromedp.Events(ectx, page.JavascriptDialogOpening)
	var (
		wg      sync.WaitGroup
		opened  []page.EventJavascriptDialogOpening // written by the goroutine, read after wg.Wait
		handled error
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for ev, err := range events {
			if err != nil {
				return
			}
			opened = append(opened, ev)
			if _, err := chromedp.Call(ctx, page.HandleJavaScriptDialog, page.HandleJavaScriptDialogParams{Accept: accept, PromptText: promptText}); err != nil && handled == nil {
				handled = err
			}
		}
	}()
	err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS(sel)))
	stop()
	wg.Wait()
	if err != nil || handled != nil {
		t.Fatalf("click %s: %v; answering its dialog: %v", sel, err, handled)
	}
	if len(opened) != 1 {
		t.Fatalf("click %s opened %d dialogs, want 1: %+v", sel, len(opened), opened)
	}
	return opened[0]
}
