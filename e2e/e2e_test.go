// Package e2e runs the whole local stack in one test process: the Service Bus emulator, Azurite,
// the dev host and the real handler binary built from ./handler, driven through the unmodified
// azservicebus SDK and the host's HTTP endpoints.
package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus"

	"github.com/holdfast-dev/holdfast/internal/devhost"
	"github.com/holdfast-dev/holdfast/internal/testenv"
)

// handlerBin is the handler built once by TestMain.
var handlerBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "holdfast-e2e-")
	if err != nil {
		panic(err)
	}
	handlerBin = filepath.Join(dir, "handler")
	cmd := exec.Command("go", "build", "-o", handlerBin, "./handler")
	cmd.Dir = ".."
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		os.Stderr.Write(out)
		os.RemoveAll(dir)
		panic("building ./handler: " + err.Error())
	}
	code := testenv.Main(m)
	os.RemoveAll(dir)
	os.Exit(code)
}

// demoCase is one demo message and where it must end up after one timer run.
type demoCase struct {
	body     string
	deferred bool   // in the queue, deferred
	dlq      string // in the dead-letter queue with this DeadLetterReason
	// completed when neither is set
}

func TestProcessQueueOutcomes(t *testing.T) {
	cases := []demoCase{
		{body: `{"workSeconds":3,"outcome":"complete"}`},                              // longer than the 2 s lock: needs renewals
		{body: `{"workSeconds":0,"outcome":"fail"}`, dlq: "MaxDeliveryCountExceeded"}, // abandoned twice (MaxDeliveryCount 2)
		{body: `{"workSeconds":0,"outcome":"deadletter"}`, dlq: "demo"},
		{body: `{"workSeconds":0,"outcome":"defer","deferSeconds":600}`, deferred: true},
	}
	st := startStack(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	sender, err := st.client.NewSender(queue, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer sender.Close(ctx)
	var want summary
	for _, c := range cases {
		if err := sender.SendMessage(ctx, &azservicebus.Message{Body: []byte(c.body)}, nil); err != nil {
			t.Fatal(err)
		}
		switch {
		case c.deferred:
			want.Deferred++
		case c.dlq == "MaxDeliveryCountExceeded":
			want.Abandoned += 2
		case c.dlq != "":
			want.DeadLettered++
		default:
			want.Completed++
		}
	}
	want.Received = want.Completed + want.Abandoned + want.DeadLettered + want.Deferred

	res, sum := st.runTimer(ctx, t)
	if sum.Received != want.Received || sum.Completed != want.Completed || sum.Abandoned != want.Abandoned ||
		sum.DeadLettered != want.DeadLettered || sum.Deferred != want.Deferred || sum.LocksLost != 0 {
		t.Errorf("summary %+v, want %+v", sum, want)
	}
	if sum.Renewals < 1 {
		t.Errorf("summary %+v: a 3 s job under a 2 s lock needs renewals", sum)
	}
	if len(res.Logs) == 0 {
		t.Errorf("no Logs in the invocation response")
	}

	ent, err := st.srv.Broker().Entity(queue)
	if err != nil {
		t.Fatal(err)
	}
	wantDLQ := map[string]string{}
	for _, c := range cases {
		if c.dlq != "" {
			wantDLQ[c.body] = c.dlq
		}
	}
	stats := ent.Stats()
	if stats.Active != 0 || stats.Deferred != want.Deferred || stats.DeadLettered != len(wantDLQ) || stats.Locked != 0 {
		t.Errorf("queue stats %+v: want 0 active, %d deferred, %d dead-lettered, none locked", stats, want.Deferred, len(wantDLQ))
	}
	got := map[string]string{}
	for _, m := range st.deadLettered(ctx, t) {
		if m.DeadLetterReason != nil {
			got[string(m.Body)] = *m.DeadLetterReason
		}
	}
	if !maps.Equal(got, wantDLQ) {
		t.Errorf("dead-letter reasons %v, want %v", got, wantDLQ)
	}
}

func TestMalformedTimerEnvelope(t *testing.T) {
	st := startStack(t, nil)
	tests := []struct{ name, body string }{
		{"not JSON", `{"Data":`},
		{"timer not an object", `{"Data":{"timer":42},"Metadata":{}}`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := http.Post(st.host.HandlerURL()+"/ProcessQueue", "application/json", strings.NewReader(tc.body))
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			var e map[string]any
			if resp.StatusCode != http.StatusBadRequest || json.Unmarshal(b, &e) != nil || e["error"] == nil {
				t.Errorf("status %d body %s: want 400 with a JSON error", resp.StatusCode, b)
			}
		})
	}
	// The drain route is forwarded by the host to the handler and answers JSON.
	resp, err := http.Get("http://" + st.host.Addr() + "/api/deferred")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode == http.StatusNotFound || !json.Valid(b) {
		t.Errorf("GET /api/deferred: %d %s", resp.StatusCode, b)
	}
}

func TestWrongConfigNamesSetting(t *testing.T) {
	tests := []struct{ setting, value string }{
		{"HOLDFAST_BATCH_SIZE", "lots"},
		{"HOLDFAST_ENTITY", ""},
	}
	for _, tc := range tests {
		t.Run(tc.setting, func(t *testing.T) {
			root := stageApp(t, map[string]string{
				"ServiceBusConnection": "Endpoint=sb://localhost:1;SharedAccessKeyName=k;SharedAccessKey=v;UseDevelopmentEmulator=true",
				"HOLDFAST_ENTITY":      "q",
				"DeferralStorage":      testenv.ClosedPortTables(),
				tc.setting:             tc.value,
			})
			h, err := devhost.New(&devhost.Options{ScriptRoot: root, Addr: "127.0.0.1:0", Environ: hermeticEnv(),
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
