package main

import (
	"encoding/json"
	"strings"
	"testing"
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
