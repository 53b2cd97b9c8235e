// Command demosend sends demo messages for the built-in demo processor, fires the ProcessQueue timer
// through the host's admin endpoint, waits for the run and prints its summary (received, completed,
// abandoned, dead-lettered, deferred, renewals, locks lost, duration) and the deferred messages. It is
// what `make demo` runs against `make start`.
//
// Waiting needs the dev host, whose admin endpoint takes ?wait=true; `func start` answers 202 at once
// and reports the run only in its own log, which demosend then says.
//
//	go run ./cmd/demosend -count 3 -work 35 -outcome mix
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus"

	"github.com/holdfast-dev/holdfast/internal/devhost"
	"github.com/holdfast-dev/holdfast/internal/drain"
	"github.com/holdfast-dev/holdfast/internal/process"
)

// emulatorConnection is the connection string of `make start`'s Service Bus emulator.
const emulatorConnection = "Endpoint=sb://localhost:5672;SharedAccessKeyName=RootManageSharedAccessKey;SharedAccessKey=SAS_KEY_VALUE;UseDevelopmentEmulator=true;"

// outcomes are the demo processor's outcomes; "mix" cycles through them.
var outcomes = []string{"complete", "fail", "deadletter", "defer"}

type config struct {
	connection   string
	queue        string
	count        int
	work         float64
	outcome      string
	deferSeconds float64
	host         string
	function     string
	fire         bool
	wait         bool
	timeout      time.Duration
}

func main() {
	cfg, err := parseFlags(os.Args[1:])
	if err != nil {
		fmt.Fprintln(os.Stderr, "demosend:", err)
		os.Exit(2)
	}
	ctx, cancel := context.WithTimeout(context.Background(), cfg.timeout)
	defer cancel()
	if err := run(ctx, cfg, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "demosend:", err)
		os.Exit(1)
	}
}

func parseFlags(args []string) (config, error) {
	var c config
	fs := flag.NewFlagSet("demosend", flag.ContinueOnError)
	fs.StringVar(&c.connection, "connection", envOr("ServiceBusConnection", emulatorConnection), "Service Bus connection string (default: $ServiceBusConnection, else the local emulator)")
	fs.StringVar(&c.queue, "queue", envOr("HOLDFAST_ENTITY", "holdfast-demo"), "queue to send to")
	fs.IntVar(&c.count, "count", 3, "number of messages")
	fs.Float64Var(&c.work, "work", 35, "seconds each message keeps its worker busy (several times the 10 s demo lock)")
	fs.StringVar(&c.outcome, "outcome", "complete", "complete | fail | deadletter | defer | mix (cycles through all four)")
	fs.Float64Var(&c.deferSeconds, "defer-seconds", 60, "defer outcome: not-before = now + this")
	fs.StringVar(&c.host, "host", "http://127.0.0.1:7071", "Functions host base URL for the admin endpoint")
	fs.StringVar(&c.function, "function", "ProcessQueue", "timer function to fire after sending")
	fs.BoolVar(&c.fire, "fire", true, "fire the timer via POST /admin/functions/<function> after sending")
	fs.BoolVar(&c.wait, "wait", true, "wait for the run (dev host) and print its summary and the deferred messages")
	fs.DurationVar(&c.timeout, "timeout", 15*time.Minute, "overall time limit: sending, the run and the report")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	switch {
	case c.count < 1:
		return c, fmt.Errorf("-count must be at least 1, got %d", c.count)
	case c.work < 0:
		return c, fmt.Errorf("-work must not be negative, got %v", c.work)
	case c.outcome != "mix" && !isOutcome(c.outcome):
		return c, fmt.Errorf("-outcome %q: want one of %s or mix", c.outcome, strings.Join(outcomes, ", "))
	case c.queue == "":
		return c, errors.New("-queue must not be empty")
	}
	return c, nil
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

func isOutcome(s string) bool {
	for _, o := range outcomes {
		if o == s {
			return true
		}
	}
	return false
}

// demoBody is the demo processor's message body.
type demoBody struct {
	WorkSeconds  float64 `json:"workSeconds"`
	Outcome      string  `json:"outcome"`
	DeferSeconds float64 `json:"deferSeconds,omitempty"`
}

// messages builds the demo messages; with outcome "mix" message i gets outcomes[i%4].
func messages(c config) []*azservicebus.Message {
	stamp := time.Now().UTC().Format("20060102T150405")
	out := make([]*azservicebus.Message, 0, c.count)
	for i := range c.count {
		b := demoBody{WorkSeconds: c.work, Outcome: c.outcome}
		if c.outcome == "mix" {
			b.Outcome = outcomes[i%len(outcomes)]
		}
		if b.Outcome == "defer" {
			b.DeferSeconds = c.deferSeconds
		}
		body, _ := json.Marshal(b) // plain struct: cannot fail
		id := fmt.Sprintf("demo-%s-%d", stamp, i+1)
		ct := "application/json"
		subject := "holdfast-demo"
		out = append(out, &azservicebus.Message{Body: body, MessageID: &id, ContentType: &ct, Subject: &subject})
	}
	return out
}

func run(ctx context.Context, c config, out io.Writer) error {
	client, err := azservicebus.NewClientFromConnectionString(c.connection, nil)
	if err != nil {
		return fmt.Errorf("-connection: %w", err)
	}
	defer client.Close(context.Background())
	sender, err := client.NewSender(c.queue, nil)
	if err != nil {
		return fmt.Errorf("sender for %q: %w", c.queue, err)
	}
	defer sender.Close(context.Background())
	for _, m := range messages(c) {
		if err := sender.SendMessage(ctx, m, nil); err != nil {
			return fmt.Errorf("sending to %q: %w", c.queue, err)
		}
		fmt.Fprintf(out, "sent %s to %s: %s\n", *m.MessageID, c.queue, m.Body)
	}
	if !c.fire {
		return nil
	}
	return fireAndReport(ctx, c.host, c.function, c.wait, out)
}

// fireAndReport runs the timer function through the host's admin endpoint. With wait, and a host that supports
// it (the dev host), it prints the run's summary and then the deferred messages.
func fireAndReport(ctx context.Context, host, function string, wait bool, out io.Writer) error {
	base := strings.TrimRight(host, "/")
	u := base + "/admin/functions/" + url.PathEscape(function)
	if wait {
		u += "?wait=true"
		fmt.Fprintf(out, "fired %s; waiting for the run (the host's terminal shows renewals and settlement)\n", function)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, strings.NewReader(`{"input":""}`))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("firing %s (is `make start` running?): %w", function, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return fmt.Errorf("reading the answer to POST %s: %w", u, err)
	}
	switch {
	case resp.StatusCode == http.StatusAccepted:
		if wait {
			fmt.Fprintln(out, "the host started the run and answered 202 at once: it cannot wait for it (func start). "+
				"Its summary is in the host's log; `USE_DEVHOST=1 make start` runs the dev host, which reports it here.")
		} else {
			fmt.Fprintf(out, "fired %s; the host's log shows the run\n", function)
		}
		return nil
	case resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusBadGateway:
		return fmt.Errorf("POST %s: %s: %s", u, resp.Status, bytes.TrimSpace(body))
	}
	var res devhost.AdminResult
	if err := json.Unmarshal(body, &res); err != nil {
		return fmt.Errorf("POST %s: answer is not a run result: %w", u, err)
	}
	if res.Error != "" {
		return fmt.Errorf("the run failed (invocation %s, handler status %d): %s", res.InvocationID, res.Status, res.Error)
	}
	var sum process.Summary
	if err := json.Unmarshal(res.ReturnValue, &sum); err != nil {
		return fmt.Errorf("the run's return value %s is not a run summary: %w", res.ReturnValue, err)
	}
	printSummary(out, res.InvocationID, sum)
	return listDeferred(ctx, base, out)
}

func printSummary(out io.Writer, invocationID string, s process.Summary) {
	fmt.Fprintf(out, "\nrun %s finished\n", invocationID)
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	for _, row := range []struct {
		name string
		n    any
	}{
		{"received", s.Received}, {"completed", s.Completed}, {"abandoned", s.Abandoned},
		{"dead-lettered", s.DeadLettered}, {"deferred", s.Deferred}, {"renewals", s.Renewals},
		{"locks lost", s.LocksLost}, {"stuck", s.Stuck}, {"due deferred taken", s.Due},
	} {
		fmt.Fprintf(tw, "  %s\t%v\n", row.name, row.n)
	}
	fmt.Fprintf(tw, "  duration\t%s\n", (time.Duration(s.DurationMs) * time.Millisecond).String())
	tw.Flush()
}

// listDeferred prints every deferred message the ledger holds (GET /api/deferred, following continuations).
func listDeferred(ctx context.Context, base string, out io.Writer) error {
	var items []drain.Item
	entity, cont := "", ""
	for {
		u := base + "/api/deferred"
		if cont != "" {
			u += "?continuation=" + url.QueryEscape(cont)
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
		if err != nil {
			return err
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return fmt.Errorf("listing deferred messages: %w", err)
		}
		body, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
		resp.Body.Close()
		if err != nil {
			return fmt.Errorf("listing deferred messages: %w", err)
		}
		if resp.StatusCode == http.StatusNotImplemented {
			fmt.Fprintln(out, "\nno deferral ledger configured (DeferralStorage): defer outcomes were abandoned")
			return nil
		}
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("GET %s: %s: %s", u, resp.Status, bytes.TrimSpace(body))
		}
		var page drain.Page
		if err := json.Unmarshal(body, &page); err != nil {
			return fmt.Errorf("GET %s: %w", u, err)
		}
		entity = page.Entity
		items = append(items, page.Items...)
		if cont = page.Continuation; cont == "" {
			break
		}
	}
	fmt.Fprintf(out, "\ndeferred messages in %s: %d\n", entity, len(items))
	if len(items) == 0 {
		return nil
	}
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "  sequence\tmessage id\tstate\tnot before\treason")
	for _, it := range items {
		nb := "-"
		if it.NotBefore != nil {
			nb = it.NotBefore.UTC().Format(time.RFC3339)
		}
		fmt.Fprintf(tw, "  %d\t%s\t%s\t%s\t%s\n", it.SequenceNumber, it.MessageID, it.State, nb, it.Reason)
	}
	tw.Flush()
	fmt.Fprintf(out, "resubmit them: curl -s -XPOST %s/api/deferred/resubmit -d '{\"all\":true}'\n", base)
	return nil
}
