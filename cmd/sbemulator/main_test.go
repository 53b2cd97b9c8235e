package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestRunRejectsBadFlags(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"log level", []string{"-log-level", "loud"}, "-log-level"},
		{"missing config", []string{"-config", filepath.Join(t.TempDir(), "absent.json")}, "-config"},
		{"unknown flag", []string{"-nope"}, "nope"},
		{"bad address", []string{"-addr", "256.0.0.1:bad"}, "listen"},
		{"bad admin address", []string{"-addr", "127.0.0.1:0", "-admin-addr", "256.0.0.1:bad"}, "admin API"},
		{"negative idle timeout", []string{"-link-idle-timeout", "-1s"}, "-link-idle-timeout"},
		{"bad policy", []string{"-addr", "127.0.0.1:0", "-strict-auth", "-config", writeConfig(t,
			`{"UserConfig":{"Namespaces":[{"Name":"ns","SharedAccessPolicies":[{"Name":"RootManageSharedAccessKey","Key":"k","Rights":["Send"]}]}]}}`)}, "defined twice"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := run(tt.args)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("run(%q) = %v, want an error mentioning %q", tt.args, err, tt.want)
			}
		})
	}
}

func writeConfig(t *testing.T, json string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "Config.json")
	if err := os.WriteFile(p, []byte(json), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}
