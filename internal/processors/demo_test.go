package processors

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus"

	"github.com/holdfast-dev/holdfast/internal/config"
	"github.com/holdfast-dev/holdfast/processor"
)

func msg(body string) *azservicebus.ReceivedMessage {
	return &azservicebus.ReceivedMessage{Body: []byte(body)}
}

func TestDemoOutcomes(t *testing.T) {
	now := time.Date(2026, 11, 22, 4, 0, 0, 0, time.UTC)
	d := NewDemo(&DemoOptions{Now: func() time.Time { return now }})
	tests := []struct {
		body     string
		kind     processor.Kind
		reason   string
		contains string // in Description (dead-letter) or Err (abandon)
		notAfter time.Time
	}{
		{`{}`, processor.KindComplete, "", "", time.Time{}},
		{`{"workSeconds":0.01,"outcome":"complete"}`, processor.KindComplete, "", "", time.Time{}},
		{`{"outcome":"fail"}`, processor.KindAbandon, "", "fail", time.Time{}},
		{`{"outcome":"deadletter"}`, processor.KindDeadLetter, "demo", "deadletter", time.Time{}},
		{`{"outcome":"defer","deferSeconds":90}`, processor.KindDefer, DemoDeferReason, "", now.Add(90 * time.Second)},
		{`{"outcome":"defer","deferSeconds":0.5}`, processor.KindDefer, DemoDeferReason, "", now.Add(500 * time.Millisecond)},
		{`not json`, processor.KindDeadLetter, InvalidBodyReason, "not a demo request", time.Time{}},
		{``, processor.KindDeadLetter, InvalidBodyReason, "not a demo request", time.Time{}},
		{`{"workSeconds":"5"}`, processor.KindDeadLetter, InvalidBodyReason, "workSeconds", time.Time{}},
		{`{"workSeconds":-1}`, processor.KindDeadLetter, InvalidBodyReason, "workSeconds -1 is out of range", time.Time{}},
		{`{"workSeconds":1e9}`, processor.KindDeadLetter, InvalidBodyReason, "workSeconds", time.Time{}},
		{`{"deferSeconds":-3}`, processor.KindDeadLetter, InvalidBodyReason, "deferSeconds", time.Time{}},
		{`{"outcome":"explode"}`, processor.KindDeadLetter, InvalidBodyReason, `outcome "explode"`, time.Time{}},
		{`{"workSecond":1}`, processor.KindDeadLetter, InvalidBodyReason, "workSecond", time.Time{}},
		{`{} {}`, processor.KindDeadLetter, InvalidBodyReason, "after the JSON object", time.Time{}},
	}
	for _, tt := range tests {
		t.Run(tt.body, func(t *testing.T) {
			o := d.Process(context.Background(), msg(tt.body))
			if o.Kind != tt.kind || o.Reason != tt.reason {
				t.Fatalf("got %v/%q (%+v), want %v/%q", o.Kind, o.Reason, o, tt.kind, tt.reason)
			}
			text := o.Description
			if o.Err != nil {
				text = o.Err.Error()
			}
			if !strings.Contains(text, tt.contains) {
				t.Errorf("%q does not mention %q", text, tt.contains)
			}
			if !o.NotBefore.Equal(tt.notAfter) {
				t.Errorf("NotBefore %v, want %v", o.NotBefore, tt.notAfter)
			}
		})
	}
}

func TestDemoWorksForWorkSeconds(t *testing.T) {
	start := time.Now()
	o := NewDemo(nil).Process(context.Background(), msg(`{"workSeconds":0.2}`))
	if el := time.Since(start); el < 200*time.Millisecond {
		t.Fatalf("worked %v, want ≥ 200ms", el)
	}
	if o.Kind != processor.KindComplete {
		t.Fatalf("got %+v", o)
	}
}

func TestDemoHonoursContext(t *testing.T) {
	lost := errors.New("lock lost")
	ctx, cancel := context.WithCancelCause(context.Background())
	done := make(chan processor.Outcome)
	go func() { done <- NewDemo(nil).Process(ctx, msg(`{"workSeconds":3600}`)) }()
	cancel(lost)
	select {
	case o := <-done:
		if o.Kind != processor.KindAbandon || !errors.Is(o.Err, lost) {
			t.Fatalf("got %+v, want abandon wrapping the cause", o)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Process ignored ctx")
	}
}

func TestNew(t *testing.T) {
	if p, err := New("demo", nil); err != nil || p == nil {
		t.Fatalf("demo: %v", err)
	}
	for _, name := range []string{"nope", ""} {
		if _, err := New(name, nil); !errors.Is(err, ErrUnknown) || !strings.Contains(err.Error(), "HOLDFAST_PROCESSOR") {
			t.Errorf("%q: %v", name, err)
		}
	}
	cfg := &config.Config{Webhook: config.Webhook{URL: "https://work.example.com/x", Timeout: time.Minute, Headers: `{"X-Api-Key":"k"}`}}
	if p, err := New("webhook", cfg); err != nil || p == nil {
		t.Fatalf("webhook: %v", err)
	}
	cfg.Webhook.Headers = `{"Host":"x"}`
	if _, err := New("webhook", cfg); err == nil || !strings.Contains(err.Error(), config.SettingWebhookHeaders) {
		t.Fatalf("webhook with a reserved header: %v", err)
	}
}
