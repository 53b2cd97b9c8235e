// Command demosend sends demo messages for the built-in demo processor and then fires the
// ProcessQueue timer through the host's admin endpoint, so the host log shows lock renewals and
// settlement. It is what `make demo` runs against `make start`.
//
//	go run ./cmd/demosend -count 3 -work 35 -outcome mix
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus"
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
	timeout      time.Duration
}

func main() {
	log := slog.New(slog.NewJSONHandler(os.Stdout, nil))
	cfg, err := parseFlags(os.Args[1:])
	if err != nil {
		fmt.Fprintln(os.Stderr, "demosend:", err)
		os.Exit(2)
	}
	ctx, cancel := context.WithTimeout(context.Background(), cfg.timeout)
	defer cancel()
	if err := run(ctx, cfg, log); err != nil {
		log.Error("demosend failed", "err", err)
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
	fs.DurationVar(&c.timeout, "timeout", 60*time.Second, "overall time limit for sending and firing")
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

func run(ctx context.Context, c config, log *slog.Logger) error {
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
		log.Info("sent", "queue", c.queue, "messageId", *m.MessageID, "body", json.RawMessage(m.Body))
	}
	if !c.fire {
		return nil
	}
	return fire(ctx, c.host, c.function, log)
}

// fire runs the timer function now through the host's admin endpoint (202 Accepted).
func fire(ctx context.Context, host, function string, log *slog.Logger) error {
	url := strings.TrimRight(host, "/") + "/admin/functions/" + function
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, strings.NewReader(`{"input":""}`))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("firing %s (is `make start` running?): %w", function, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode != http.StatusAccepted && resp.StatusCode != http.StatusOK {
		return fmt.Errorf("POST %s: %s: %s", url, resp.Status, body)
	}
	log.Info("timer fired; watch the host log for renewals and settlement", "function", function, "status", resp.StatusCode)
	return nil
}
