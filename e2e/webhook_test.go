package e2e

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus"

	"github.com/holdfast-dev/holdfast/emulator/broker"
	"github.com/holdfast-dev/holdfast/internal/devhost"
	"github.com/holdfast-dev/holdfast/internal/testenv"
)

// workService is the user's HTTP service behind the webhook processor, answering by message body:
//
//	slow  — works 7 s (3.5 lock durations), then 200
//	busy  — 429 with Retry-After: 1 the first time, then 200
//	bad   — 400 with a reason in the body
//	flaky — 500 every time
type workService struct {
	mu    sync.Mutex
	calls map[string][]http.Header // guarded by mu; body → request headers of each call
}

func (s *workService) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	body := string(b)
	s.mu.Lock()
	s.calls[body] = append(s.calls[body], r.Header.Clone())
	n := len(s.calls[body])
	s.mu.Unlock()
	switch body {
	case "slow":
		select {
		case <-time.After(7 * time.Second):
		case <-r.Context().Done():
			return
		}
	case "busy":
		if n == 1 {
			w.Header().Set("Retry-After", "1")
			w.WriteHeader(http.StatusTooManyRequests)
			return
		}
	case "bad":
		http.Error(w, "field customerId is required", http.StatusBadRequest)
		return
	case "flaky":
		w.WriteHeader(http.StatusInternalServerError)
		return
	}
	w.WriteHeader(http.StatusOK)
}

func (s *workService) callsOf(body string) []http.Header {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls[body]
}

// TestWebhookEndToEnd runs the real handler with HOLDFAST_PROCESSOR=webhook under the dev host against the
// emulator, Azurite and an HTTP service: long work is kept locked and completed, a 429 is deferred in the ledger
// and comes back by itself at the next run once Retry-After has passed, a 400 is dead-lettered with the status
// and the body, and a 500 is abandoned until MaxDeliveryCount dead-letters it.
func TestWebhookEndToEnd(t *testing.T) {
	svc := &workService{calls: map[string][]http.Header{}}
	web := httptest.NewServer(svc)
	defer web.Close()

	props := broker.DefaultQueueProperties()
	props.LockDuration, props.MaxDeliveryCount = 2*time.Second, 3
	st := startStackOn(t, "e2e-webhook", props, map[string]string{
		"HOLDFAST_PROCESSOR":       "webhook",
		"HOLDFAST_WEBHOOK_URL":     web.URL + "/work",
		"HOLDFAST_WEBHOOK_TIMEOUT": "30s",
		"HOLDFAST_WEBHOOK_HEADERS": `{"X-Api-Key":"k-1"}`,
		"HOLDFAST_DEFERRAL_TABLE":  testenv.TableName(t),
	})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	sender, err := st.client.NewSender(st.queue, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer sender.Close(ctx)
	for _, body := range []string{"slow", "busy", "bad", "flaky"} {
		id := "id-" + body
		if err := sender.SendMessage(ctx, &azservicebus.Message{MessageID: &id, Body: []byte(body),
			ApplicationProperties: map[string]any{"tenant": "acme"}}, nil); err != nil {
			t.Fatal(err)
		}
	}

	_, sum := st.runTimer(ctx, t)
	// flaky: three deliveries, abandoned each time, then dead-lettered by the broker.
	if sum.Received != 6 || sum.Completed != 1 || sum.Deferred != 1 || sum.DeadLettered != 1 || sum.Abandoned != 3 ||
		sum.LocksLost != 0 || sum.Renewals < 2 {
		t.Fatalf("run 1: %+v", sum)
	}
	h := svc.callsOf("slow")
	if len(h) != 1 || h[0].Get("X-Holdfast-Message-Id") != "id-slow" || h[0].Get("X-Holdfast-Prop-Tenant") != "acme" ||
		h[0].Get("X-Api-Key") != "k-1" || h[0].Get("X-Holdfast-Sequence-Number") == "" {
		t.Fatalf("requests for slow: %v", h)
	}
	items, _ := listDeferred(t, st, 10)
	if len(items) != 1 || items[0].MessageID != "id-busy" || items[0].Reason != "http-429" || items[0].NotBefore == nil {
		t.Fatalf("ledger after run 1: %+v", items)
	}

	// Wait until the Retry-After has passed; then the next run takes the message back by itself.
	time.Sleep(time.Until(*items[0].NotBefore) + 10*time.Millisecond) // waiting for a due time, not synchronising
	_, sum = st.runTimer(ctx, t)
	if sum.Due != 1 || sum.Received != 1 || sum.Completed != 1 {
		t.Fatalf("run 2: %+v", sum)
	}
	if n := len(svc.callsOf("busy")); n != 2 {
		t.Fatalf("busy was called %d times, want 2", n)
	}
	if items, _ := listDeferred(t, st, 10); len(items) != 0 {
		t.Fatalf("ledger after run 2: %+v", items)
	}
	if s := st.stats(t); s.Active != 0 || s.Deferred != 0 || s.Locked != 0 || s.DeadLettered != 2 {
		t.Fatalf("queue after run 2: %+v", s)
	}

	got := map[string]string{}
	for _, m := range st.deadLettered(ctx, t) {
		got[m.MessageID] = deref(m.DeadLetterReason) + "|" + deref(m.DeadLetterErrorDescription)
	}
	if got["id-bad"] != "http-400|field customerId is required" || !strings.HasPrefix(got["id-flaky"], "MaxDeliveryCountExceeded|") {
		t.Fatalf("dead-letter queue: %v", got)
	}
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// Bad webhook settings stop the handler at start with a message naming the setting.
func TestWebhookBadSettingsNameTheSetting(t *testing.T) {
	tests := []struct{ setting, value string }{
		{"HOLDFAST_WEBHOOK_URL", "/work"},
		{"HOLDFAST_WEBHOOK_URL", "ftp://work.example.com/x"},
		{"HOLDFAST_WEBHOOK_TIMEOUT", "1h"},
		{"HOLDFAST_WEBHOOK_HEADERS", `{"Content-Type":"text/plain"}`},
	}
	for _, tc := range tests {
		t.Run(tc.setting+"="+tc.value, func(t *testing.T) {
			values := map[string]string{
				"ServiceBusConnection": "Endpoint=sb://localhost:1;SharedAccessKeyName=k;SharedAccessKey=v;UseDevelopmentEmulator=true",
				"HOLDFAST_ENTITY":      "q",
				"HOLDFAST_PROCESSOR":   "webhook",
				"HOLDFAST_WEBHOOK_URL": "https://work.example.com/x",
			}
			values[tc.setting] = tc.value
			h, err := devhost.New(&devhost.Options{ScriptRoot: stageApp(t, values), Addr: "127.0.0.1:0", Environ: hermeticEnv(),
				Logger: slog.New(slog.NewJSONHandler(io.Discard, nil))})
			if err != nil {
				t.Fatal(err)
			}
			defer h.Close()
			err = h.Start(context.Background())
			if !errors.Is(err, devhost.ErrHandlerExited) || !strings.Contains(err.Error(), tc.setting) {
				t.Fatalf("Start = %v; want the handler to exit naming %s", err, tc.setting)
			}
		})
	}
}
