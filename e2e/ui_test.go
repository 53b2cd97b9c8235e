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
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus"
	"github.com/chromedp/chromedp"

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

// peekQueue waits until the stack's queue holds n active messages and returns them (peeked, nothing locked).
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
	from := int64(0)
	msgs, err := r.PeekMessages(ctx, 50, &azservicebus.PeekMessagesOptions{FromSequenceNumber: &from})
	if err != nil {
		t.Fatal(err)
	}
	var active []*azservicebus.ReceivedMessage
	for _, m := range msgs {
		if m.State == azservicebus.MessageStateActive {
			active = append(active, m)
		}
	}
	return active
}
