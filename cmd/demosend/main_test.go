package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/holdfast-dev/holdfast/internal/devhost"
	"github.com/holdfast-dev/holdfast/internal/drain"
	"github.com/holdfast-dev/holdfast/internal/process"
)

func TestParseFlags(t *testing.T) {
	tests := []struct {
		args    []string
		wantErr string
	}{
		{args: nil},
		{args: []string{"-count", "4", "-outcome", "mix", "-work", "0.5"}},
		{args: []string{"-count", "0"}, wantErr: "-count"},
		{args: []string{"-work", "-1"}, wantErr: "-work"},
		{args: []string{"-outcome", "explode"}, wantErr: `-outcome "explode"`},
		{args: []string{"-queue", ""}, wantErr: "-queue"},
	}
	for _, tc := range tests {
		_, err := parseFlags(tc.args)
		if tc.wantErr == "" && err != nil || tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)) {
			t.Errorf("parseFlags(%q) = %v, want %q", tc.args, err, tc.wantErr)
		}
	}
}

func TestMessagesMix(t *testing.T) {
	c, err := parseFlags([]string{"-count", "5", "-outcome", "mix", "-work", "2", "-defer-seconds", "9"})
	if err != nil {
		t.Fatal(err)
	}
	msgs := messages(c)
	want := []string{"complete", "fail", "deadletter", "defer", "complete"}
	if len(msgs) != len(want) {
		t.Fatalf("%d messages", len(msgs))
	}
	ids := map[string]bool{}
	for i, m := range msgs {
		var b demoBody
		if err := json.Unmarshal(m.Body, &b); err != nil {
			t.Fatal(err)
		}
		if b.Outcome != want[i] || b.WorkSeconds != 2 || (b.Outcome == "defer") != (b.DeferSeconds == 9) {
			t.Errorf("message %d body %s", i, m.Body)
		}
		if ids[*m.MessageID] {
			t.Errorf("duplicate MessageID %s", *m.MessageID)
		}
		ids[*m.MessageID] = true
	}
}

// fakeHost answers like the dev host: the admin endpoint with ?wait=true, then two pages of deferred messages.
func fakeHost(t *testing.T, admin func(w http.ResponseWriter, r *http.Request)) *httptest.Server {
	t.Helper()
	mux := http.NewServeMux()
	mux.HandleFunc("POST /admin/functions/ProcessQueue", admin)
	mux.HandleFunc("GET /api/deferred", func(w http.ResponseWriter, r *http.Request) {
		nb := time.Date(2026, 12, 6, 2, 40, 0, 0, time.UTC)
		page := drain.Page{Entity: "holdfast-demo", Items: []drain.Item{{SequenceNumber: 4, MessageID: "demo-4", State: "deferred", NotBefore: &nb, Reason: "demo"}}, Continuation: "next"}
		if r.URL.Query().Get("continuation") == "next" {
			page = drain.Page{Entity: "holdfast-demo", Items: []drain.Item{{SequenceNumber: 8, MessageID: "demo-8", State: "deferred", Reason: "later"}}}
		}
		json.NewEncoder(w).Encode(page)
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

func TestReportWaitsAndPrintsTheRun(t *testing.T) {
	srv := fakeHost(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("wait") != "true" {
			w.WriteHeader(http.StatusAccepted)
			return
		}
		sum := process.Summary{Received: 4, Completed: 1, Abandoned: 1, DeadLettered: 1, Deferred: 1, Renewals: 12, LocksLost: 0, DurationMs: 41500}
		rv, _ := json.Marshal(sum)
		json.NewEncoder(w).Encode(devhost.AdminResult{Function: "ProcessQueue", InvocationID: "inv-1", Status: 200, DurationMs: 41500, ReturnValue: rv})
	})
	var out bytes.Buffer
	if err := fireAndReport(context.Background(), srv.URL, "ProcessQueue", true, &out); err != nil {
		t.Fatal(err)
	}
	for _, want := range []*regexp.Regexp{
		regexp.MustCompile(`run inv-1 finished\n`),
		regexp.MustCompile(`received +4\n`), regexp.MustCompile(`completed +1\n`), regexp.MustCompile(`abandoned +1\n`),
		regexp.MustCompile(`dead-lettered +1\n`), regexp.MustCompile(`deferred +1\n`), regexp.MustCompile(`renewals +12\n`),
		regexp.MustCompile(`locks lost +0\n`), regexp.MustCompile(`duration +41.5s\n`),
		regexp.MustCompile(`deferred messages in holdfast-demo: 2\n`),
		regexp.MustCompile(`4 +demo-4 +deferred +2026-12-06T02:40:00Z +demo\n`),
		regexp.MustCompile(`8 +demo-8 +deferred +- +later\n`),
	} {
		if !want.MatchString(out.String()) {
			t.Errorf("output does not match %s:\n%s", want, out.String())
		}
	}
}

func TestReportWithoutWaiting(t *testing.T) {
	srv := fakeHost(t, func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusAccepted) })
	var out bytes.Buffer
	if err := fireAndReport(context.Background(), srv.URL, "ProcessQueue", true, &out); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "202") || strings.Contains(out.String(), "deferred messages") {
		t.Errorf("func start's 202 should be explained, with no stale report:\n%s", out.String())
	}
}

func TestReportFailedRun(t *testing.T) {
	srv := fakeHost(t, func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusBadGateway)
		json.NewEncoder(w).Encode(devhost.AdminResult{InvocationID: "inv-2", Status: 500, ReturnValue: json.RawMessage("null"), Error: "handler answered 500: run failed"})
	})
	var out bytes.Buffer
	err := fireAndReport(context.Background(), srv.URL, "ProcessQueue", true, &out)
	if err == nil || !strings.Contains(err.Error(), "run failed") || !strings.Contains(err.Error(), "inv-2") {
		t.Fatalf("error %v, want the failed run named", err)
	}
}
