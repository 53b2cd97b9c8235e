package devhost

import (
	"bytes"
	"encoding/json"
	"errors"
	"log/slog"
	"regexp"
	"strings"
	"testing"
	"time"
)

func TestConsoleHandler(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(NewConsoleHandler(&buf, nil)).With("function", "ProcessQueue")
	log.Info("executing", "reason", TriggerAdmin, "took", 1500*time.Millisecond)
	// A handler stdout line (its own JSON record, with a nested object) and a plain stderr line.
	ll := &lineLogger{log: log}
	ll.Write([]byte(`{"time":"2026-12-06T02:00:00Z","level":"WARN","msg":"run finished","summary":{"received":3,"locksLost":0},"entity":"holdfast demo"}` + "\n"))
	ll2 := &lineLogger{log: log, stderr: true}
	ll2.Write([]byte("panic: something broke\n"))
	log.Info("succeeded", "returnValue", json.RawMessage(`{"received":3,"completed":2,"ids":[1,2]}`), "err", errors.New("x y"))
	log.Debug("hidden")
	log.WithGroup("g").Info("grouped", "k", "v")

	lines := strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n")
	stamp := regexp.MustCompile(`^\d\d:\d\d:\d\d\.\d{3} `)
	want := []string{
		`INFO  executing function=ProcessQueue reason=admin took=1.5s`,
		`WARN  handler: run finished summary.received=3 summary.locksLost=0 entity="holdfast demo" function=ProcessQueue`,
		`ERROR handler: panic: something broke function=ProcessQueue`,
		`INFO  succeeded function=ProcessQueue returnValue.received=3 returnValue.completed=2 returnValue.ids=[1,2] err="x y"`,
		`INFO  grouped function=ProcessQueue g.k=v`,
	}
	if len(lines) != len(want) {
		t.Fatalf("%d lines, want %d:\n%s", len(lines), len(want), buf.String())
	}
	for i, l := range lines {
		if !stamp.MatchString(l) {
			t.Errorf("line %d %q has no time stamp", i, l)
			continue
		}
		if got := stamp.ReplaceAllString(l, ""); got != want[i] {
			t.Errorf("line %d\n got %s\nwant %s", i, got, want[i])
		}
	}
}
