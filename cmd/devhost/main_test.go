package main

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestRunExitCodes(t *testing.T) {
	noHandler := t.TempDir()
	writeFile(t, filepath.Join(noHandler, "host.json"), `{"customHandler":{"description":{"defaultExecutablePath":"missing-handler"}}}`)
	writeFile(t, filepath.Join(noHandler, "T", "function.json"), `{"bindings":[{"name":"timer","type":"timerTrigger","direction":"in","schedule":"0 0 * * * *"}]}`)
	tests := []struct {
		name    string
		args    []string
		code    int
		wantErr string
	}{
		{"bad flag", []string{"-nope"}, 2, "flag provided but not defined"},
		{"bad log level", []string{"-log-level", "loud"}, 2, "-log-level"},
		{"no app", []string{"-script-root", t.TempDir()}, 1, "host.json"},
		{"handler missing", []string{"-script-root", noHandler, "-addr", "127.0.0.1:0"}, 1, "missing-handler"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := run(context.Background(), tc.args, &stdout, &stderr)
			if code != tc.code || !strings.Contains(stderr.String(), tc.wantErr) {
				t.Errorf("run = %d, stderr %q; want %d mentioning %q", code, stderr.String(), tc.code, tc.wantErr)
			}
		})
	}
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// Readable lines on a terminal (or with -log-format text), JSON lines otherwise.
func TestNewLogger(t *testing.T) {
	devNull, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer devNull.Close()
	file, err := os.Create(filepath.Join(t.TempDir(), "log"))
	if err != nil {
		t.Fatal(err)
	}
	defer file.Close()
	if isTerminal(&bytes.Buffer{}) || isTerminal(file) || !isTerminal(devNull) {
		t.Errorf("isTerminal: buffer %v, file %v, character device %v", isTerminal(&bytes.Buffer{}), isTerminal(file), isTerminal(devNull))
	}
	for _, tc := range []struct {
		format string
		json   bool
	}{{"json", true}, {"auto", true}, {"text", false}} {
		var buf bytes.Buffer
		log, err := newLogger(tc.format, &buf, slog.LevelInfo)
		if err != nil {
			t.Fatal(err)
		}
		log.Info("listening", "addr", "127.0.0.1:7071")
		line := strings.TrimSpace(buf.String())
		if got := json.Valid([]byte(line)); got != tc.json {
			t.Errorf("-log-format %s: %q, JSON %v, want %v", tc.format, line, got, tc.json)
		}
		if !tc.json && !strings.HasSuffix(line, "INFO  listening addr=127.0.0.1:7071") {
			t.Errorf("-log-format text: %q", line)
		}
	}
	if _, err := newLogger("xml", &bytes.Buffer{}, slog.LevelInfo); err == nil {
		t.Error("-log-format xml accepted")
	}
	var stdout, stderr bytes.Buffer
	if code := run(context.Background(), []string{"-log-format", "xml"}, &stdout, &stderr); code != 2 || !strings.Contains(stderr.String(), "-log-format") {
		t.Errorf("run -log-format xml = %d, %q", code, stderr.String())
	}
}
