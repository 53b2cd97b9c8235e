package main

import (
	"bytes"
	"context"
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
