// Package holdfasttest runs your processor through holdfast in a Go test, with nothing to install but
// Azurite (`npm install azurite`): the in-process Service Bus emulator with one queue, Azurite for the
// deferral ledger, and the handler itself — holdfast.Run with your processor, as holdfast.Main runs it in
// Azure. A test sends messages, fires a timer run, and asserts where each message ended up:
//
//	func TestMyProcessor(t *testing.T) {
//		h := holdfasttest.Start(t, myProcessor{}, nil)
//		h.Send(t, &azservicebus.Message{Body: []byte(`{"id":"a"}`)})
//		sum := h.Run(t)
//		if sum.Completed != 1 { t.Fatalf("summary %+v", sum) }
//	}
//
// Everything a Handler starts is stopped at the test's cleanup. The emulator speaks AMQP to the unmodified
// azservicebus SDK (Handler.Client gives you one) with the Service Bus semantics holdfast relies on: locks
// and their renewal, delivery counts, dead-lettering, deferral. Azurite is found in node_modules/.bin of the
// working directory or a directory above it, or on PATH; setting HOLDFAST_TEST_TABLES to a Table Storage
// connection string uses that instead. A test that needs Azurite fails, never skips, when it is missing.
package holdfasttest

import (
	"context"
	"encoding/json"

	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus"

	"github.com/holdfast-dev/holdfast"
	"github.com/holdfast-dev/holdfast/emulator"
	"github.com/holdfast-dev/holdfast/emulator/broker"
	"github.com/holdfast-dev/holdfast/internal/testenv"
	"github.com/holdfast-dev/holdfast/processor"
)

// Options configure Start. A nil *Options, and every zero field, means the default.
type Options struct {
	// Queue is the queue's name. "" ⇒ "work".
	Queue string
	// LockDuration is the queue's lock duration; keep it shorter than your work to exercise renewal.
	// 0 ⇒ 5 s.
	LockDuration time.Duration
	// MaxDeliveryCount is the queue's: past it, Service Bus dead-letters a message. 0 ⇒ 10.
	MaxDeliveryCount int
	// RunBudget is HOLDFAST_RUN_BUDGET. 0 ⇒ 1 min.
	RunBudget time.Duration
	// NoLedger runs without deferral storage (no Azurite): defer outcomes are then abandoned.
	NoLedger bool
	// Settings are further app settings, which override the ones Start sets (for example
	// HOLDFAST_CONCURRENCY).
	Settings map[string]string
}

// Handler is a running holdfast handler with your processor, over an emulated queue.
type Handler struct {
	srv      *emulator.Server
	queue    string
	client   *azservicebus.Client
	url      string
	settings map[string]string
	logs     *testenv.Buffer
}

// Main runs the tests of m sharing one Azurite between them, and returns m's exit code:
// `func TestMain(m *testing.M) { os.Exit(holdfasttest.Main(m)) }`. Without it, each Start starts its own.
func Main(m *testing.M) int { return testenv.Main(m) }

// Start starts the emulator with the queue, Azurite (unless opts.NoLedger) and the handler running p, and
// registers their shutdown with t.Cleanup. It fails the test if any of them cannot start.
func Start(t testing.TB, p processor.Processor, opts *Options) *Handler {
	t.Helper()
	if p == nil {
		t.Fatal("holdfasttest: Start needs a processor")
	}
	var o Options
	if opts != nil {
		o = *opts
	}
	if o.Queue == "" {
		o.Queue = "work"
	}
	if o.LockDuration <= 0 {
		o.LockDuration = 5 * time.Second
	}
	if o.MaxDeliveryCount <= 0 {
		o.MaxDeliveryCount = 10
	}
	if o.RunBudget <= 0 {
		o.RunBudget = time.Minute
	}

	srv, err := emulator.Start(&emulator.Options{})
	if err != nil {
		t.Fatalf("holdfasttest: start the emulator: %v", err)
	}
	t.Cleanup(func() {
		if err := srv.Close(); err != nil {
			t.Errorf("holdfasttest: close the emulator: %v", err)
		}
	})
	props := broker.DefaultQueueProperties()
	props.LockDuration, props.MaxDeliveryCount = o.LockDuration, o.MaxDeliveryCount
	if err := srv.Broker().CreateQueue(o.Queue, props); err != nil {
		t.Fatalf("holdfasttest: create queue %s: %v", o.Queue, err)
	}
	h := &Handler{srv: srv, queue: o.Queue, logs: &testenv.Buffer{}, settings: map[string]string{
		"ServiceBusConnection":         srv.ConnectionString(),
		"HOLDFAST_ENTITY":              o.Queue,
		"HOLDFAST_RUN_BUDGET":          o.RunBudget.String(),
		"HOLDFAST_LOCK_DURATION":       o.LockDuration.String(),
		"FUNCTIONS_CUSTOMHANDLER_PORT": "0",
	}}
	if !o.NoLedger {
		h.settings["DeferralStorage"] = testenv.Azurite(t)
		h.settings["HOLDFAST_DEFERRAL_TABLE"] = testenv.TableName(t)
	}
	for k, v := range o.Settings {
		h.settings[k] = v
	}
	if h.client, err = azservicebus.NewClientFromConnectionString(srv.ConnectionString(), nil); err != nil {
		t.Fatalf("holdfasttest: client: %v", err)
	}
	t.Cleanup(func() { _ = h.client.Close(context.Background()) })
	h.serve(t, p)
	return h
}

// serve runs holdfast.Run with p until the test's cleanup, which stops it and checks it stopped cleanly.
func (h *Handler) serve(t testing.TB, p processor.Processor) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	addrc := make(chan string, 1)
	done := make(chan error, 1)
	go func() {
		done <- holdfast.Run(ctx, &holdfast.Options{Processor: p, Getenv: func(k string) string { return h.settings[k] },
			Dir: t.TempDir(), Stdout: h.logs, Stderr: h.logs, Ready: func(a string) { addrc <- a },
			NoMessageWait: 300 * time.Millisecond})
	}()
	select {
	case addr := <-addrc:
		h.url = "http://" + addr
	case err := <-done:
		cancel()
		t.Fatalf("holdfasttest: the handler did not start: %v\n%s", err, h.logs)
	}
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("holdfasttest: the handler stopped with %v\n%s", err, h.logs)
		}
	})
}

// Send sends msgs to the queue.
func (h *Handler) Send(t testing.TB, msgs ...*azservicebus.Message) {
	t.Helper()
	s, err := h.client.NewSender(h.queue, nil)
	if err != nil {
		t.Fatalf("holdfasttest: sender: %v", err)
	}
	defer s.Close(context.Background())
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, m := range msgs {
		if err := s.SendMessage(ctx, m, nil); err != nil {
			t.Fatalf("holdfasttest: send: %v", err)
		}
	}
}

// Run fires one ProcessQueue timer invocation, as the Functions host does, and returns the run's summary.
// It fails the test if the invocation does not answer 200 with a summary.
func (h *Handler) Run(t testing.TB) holdfast.Summary {
	t.Helper()
	resp, err := http.Post(h.url+"/ProcessQueue", "application/json",
		strings.NewReader(`{"Data":{"timer":{"Schedule":{"AdjustForDST":true},"ScheduleStatus":null,"IsPastDue":false}},"Metadata":{}}`))
	if err != nil {
		t.Fatalf("holdfasttest: ProcessQueue: %v", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var env struct {
		ReturnValue *holdfast.Summary
	}
	if resp.StatusCode != http.StatusOK || json.Unmarshal(body, &env) != nil || env.ReturnValue == nil {
		t.Fatalf("holdfasttest: ProcessQueue answered %d %s\n%s", resp.StatusCode, body, h.logs)
	}
	return *env.ReturnValue
}

// URL is the handler's base URL: the drain API is at URL()+"/api/deferred".
func (h *Handler) URL() string { return h.url }

// Client is an azservicebus client on the emulator (closed at cleanup), for your own checks.
func (h *Handler) Client() *azservicebus.Client { return h.client }

// Queue is the queue's name.
func (h *Handler) Queue() string { return h.queue }

// Settings are the app settings the handler runs with.
func (h *Handler) Settings() map[string]string {
	out := make(map[string]string, len(h.settings))
	for k, v := range h.settings {
		out[k] = v
	}
	return out
}

// Logs returns the handler's JSON log lines so far.
func (h *Handler) Logs() string { return h.logs.String() }

// Stats counts the queue's messages by state, as the emulator sees them now.
type Stats struct {
	Active, Deferred, Scheduled, Locked, DeadLettered int
}

// Stats returns the queue's counts.
func (h *Handler) Stats(t testing.TB) Stats {
	t.Helper()
	e, err := h.srv.Broker().Entity(h.queue)
	if err != nil {
		t.Fatalf("holdfasttest: %v", err)
	}
	s := e.Stats()
	return Stats{Active: s.Active, Deferred: s.Deferred, Scheduled: s.Scheduled, Locked: s.Locked, DeadLettered: s.DeadLettered}
}

// DeadLettered peeks at (up to 250 of) the dead-letter queue's messages; their DeadLetterReason and
// DeadLetterErrorDescription say why.
func (h *Handler) DeadLettered(t testing.TB) []*azservicebus.ReceivedMessage {
	t.Helper()
	r, err := h.client.NewReceiverForQueue(h.queue, &azservicebus.ReceiverOptions{SubQueue: azservicebus.SubQueueDeadLetter})
	if err != nil {
		t.Fatalf("holdfasttest: dead-letter receiver: %v", err)
	}
	defer r.Close(context.Background())
	msgs, err := r.PeekMessages(context.Background(), 250, nil)
	if err != nil {
		t.Fatalf("holdfasttest: peek the dead-letter queue: %v", err)
	}
	return msgs
}
