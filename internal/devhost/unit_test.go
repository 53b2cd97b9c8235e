package devhost

import (
	"errors"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestRouteMatch(t *testing.T) {
	tests := []struct {
		tmpl, path string
		ok         bool
		params     map[string]string
	}{
		{"api/deferred/{action?}", "/api/deferred", true, map[string]string{}},
		{"api/deferred/{action?}", "/api/deferred/", true, map[string]string{}},
		{"api/deferred/{action?}", "/api/deferred/resubmit", true, map[string]string{"action": "resubmit"}},
		{"api/deferred/{action?}", "/API/DEFERRED/Resubmit", true, map[string]string{"action": "Resubmit"}},
		{"api/deferred/{action?}", "/api/deferred/a/b", false, nil},
		{"api/deferred/{action?}", "/api/deferredx", false, nil},
		{"api/deferred/{action?}", "/api", false, nil},
		{"api/items/{id}", "/api/items", false, nil},
		{"api/items/{id:int}", "/api/items/42", true, map[string]string{"id": "42"}},
		{"api/items/{id}", "/api/items/a%20b", true, map[string]string{"id": "a b"}},
		{"api/files/{*rest}", "/api/files/a/b/c", true, map[string]string{"rest": "a/b/c"}},
		{"api/files/{*rest}", "/api/files", true, map[string]string{}},
		{"api/ProcessQueue", "/api/processqueue", true, map[string]string{}},
		{"", "/", true, map[string]string{}},
		{"", "/x", false, nil},
	}
	for _, tc := range tests {
		r, err := parseRoute(tc.tmpl)
		if err != nil {
			t.Fatalf("parseRoute(%q): %v", tc.tmpl, err)
		}
		params, ok := r.match(tc.path)
		if ok != tc.ok || (ok && !maps.Equal(params, tc.params)) {
			t.Errorf("%q match %q = %v %v, want %v %v", tc.tmpl, tc.path, params, ok, tc.params, tc.ok)
		}
	}
}

func TestParseRouteErrors(t *testing.T) {
	for _, tmpl := range []string{"a/{b?}/c", "a/{*b}/c", "a/x{b}", "a/{b", "a//b", "a/{}"} {
		if _, err := parseRoute(tmpl); err == nil {
			t.Errorf("parseRoute(%q) accepted a bad template", tmpl)
		}
	}
}

func TestParseSchedule(t *testing.T) {
	base := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	tests := []struct {
		spec    string
		want    time.Time // next after base
		wantErr string
	}{
		{spec: "0 */5 * * * *", want: base.Add(5 * time.Minute)},
		{spec: "*/10 * * * * *", want: base.Add(10 * time.Second)},
		{spec: "30 0 12 * * *", want: base.Add(2*time.Hour + 30*time.Second)},
		{spec: "*/5 * * * *", want: base.Add(5 * time.Minute)},                     // five fields: no seconds
		{spec: "0 0 0 * * 0", want: time.Date(2026, 11, 29, 0, 0, 0, 0, time.UTC)}, // Sundays
		{spec: "00:00:30", want: base.Add(30 * time.Second)},
		{spec: "1.02:00:00", want: base.Add(26 * time.Hour)},
		{spec: "", wantErr: "empty"},
		{spec: "* * *", wantErr: "6 fields"},
		{spec: "0 0 * * * * *", wantErr: "6 fields"},
		{spec: "@hourly", wantErr: "not an NCRONTAB"},
		{spec: "61 * * * * *", wantErr: "above maximum"},
		{spec: "25:00:00", wantErr: "time span"},
		{spec: "00:00:NaN", wantErr: "time span"}, // read as the handler reads it (config.ParseTimeSpan)
		{spec: "00:00:00", wantErr: "positive"},
		{spec: "-00:00:30", wantErr: "positive"},
	}
	for _, tc := range tests {
		s, err := parseSchedule(tc.spec)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("parseSchedule(%q) err = %v, want %q", tc.spec, err, tc.wantErr)
			}
			continue
		}
		if err != nil {
			t.Errorf("parseSchedule(%q): %v", tc.spec, err)
			continue
		}
		if got := s.Next(base); !got.Equal(tc.want) {
			t.Errorf("%q Next(%v) = %v, want %v", tc.spec, base, got, tc.want)
		}
	}
}

func TestMonitorRule(t *testing.T) {
	now := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	for spec, want := range map[string]bool{"* * * * * *": true, "*/30 * * * * *": true, "0 * * * * *": false, "0 */5 * * * *": false, "00:00:10": true} {
		s, err := parseSchedule(spec)
		if err != nil {
			t.Fatal(err)
		}
		if got := firesMoreThanOncePerMinute(s, now); got != want {
			t.Errorf("%q: %v, want %v", spec, got, want)
		}
	}
}

func TestExpandSettings(t *testing.T) {
	lookup := envLookup([]string{"A=1", "Sched=0 */5 * * * *", "EMPTY="})
	tests := []struct{ in, want, wantErr string }{
		{in: "%Sched%", want: "0 */5 * * * *"},
		{in: "x%A%y%A%", want: "x1y1"},
		{in: "%EMPTY%", want: ""},
		{in: "plain", want: "plain"},
		{in: "%Missing%", wantErr: `"Missing"`},
		{in: "%A", wantErr: "unterminated"},
	}
	for _, tc := range tests {
		got, err := expandSettings(tc.in, lookup)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("expand(%q) err = %v, want %q", tc.in, err, tc.wantErr)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("expand(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
}

func TestLoadAppErrors(t *testing.T) {
	okHost := `{"version":"2.0","customHandler":{"description":{"defaultExecutablePath":"handler"},"enableForwardingHttpRequest":true}}`
	tests := []struct {
		name      string
		host      string
		functions map[string]string
		values    string
		wantErr   string
	}{
		{"no customHandler", `{"version":"2.0"}`, map[string]string{"T": timerFn("0 * * * * *", false)}, "", "customHandler section is missing"},
		{"bad host.json", `{`, nil, "", "host.json"},
		{"bad timeout", `{"functionTimeout":"ten minutes","customHandler":{"description":{"defaultExecutablePath":"h"}}}`, map[string]string{"T": timerFn("0 * * * * *", false)}, "", "functionTimeout"},
		{"missing setting", okHost, map[string]string{"ProcessQueue": timerFn("%ProcessQueueSchedule%", false)}, "", `app setting "ProcessQueueSchedule"`},
		{"bad schedule", okHost, map[string]string{"T": timerFn("every minute", false)}, "", `schedule "every minute"`},
		{"unsupported binding", okHost, map[string]string{"Q": `{"bindings":[{"name":"m","type":"serviceBusTrigger","direction":"in"}]}`}, "", "serviceBusTrigger"},
		{"no functions", okHost, nil, "", "no functions found"},
		{"bad settings", okHost, map[string]string{"T": timerFn("0 * * * * *", false)}, `{"Values":`, "local.settings.json"},
		{"encrypted settings", okHost, map[string]string{"T": timerFn("0 * * * * *", false)}, `{"IsEncrypted":true,"Values":{}}`, "IsEncrypted"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			writeFile(t, filepath.Join(root, "host.json"), tc.host)
			for n, fj := range tc.functions {
				writeFile(t, filepath.Join(root, n, "function.json"), fj)
			}
			if tc.values != "" {
				writeFile(t, filepath.Join(root, "local.settings.json"), tc.values)
			}
			_, err := New(&Options{ScriptRoot: root, Environ: []string{}})
			if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("New = %v, want ErrConfig mentioning %q", err, tc.wantErr)
			}
		})
	}
}

func TestLoadAppResolves(t *testing.T) {
	root := t.TempDir()
	writeFile(t, filepath.Join(root, "host.json"), `{"functionTimeout":"00:10:00","extensions":{"http":{"routePrefix":""}},
		"customHandler":{"description":{"defaultExecutablePath":"handler","workingDirectory":"work","arguments":["--queue","%Q%"]},"enableForwardingHttpRequest":true}}`)
	writeFile(t, filepath.Join(root, "ProcessQueue", "function.json"), timerFn("%S%", true))
	writeFile(t, filepath.Join(root, "DrainDeferred", "function.json"), httpJSON)
	writeFile(t, filepath.Join(root, "Notes", "readme.txt"), "not a function")
	writeFile(t, filepath.Join(root, "local.settings.json"), `{"Values":{"Q":"orders","S":"0 */5 * * * *","AzureFunctionsJobHost__functionTimeout":"00:02:00"}}`)
	a, err := loadApp(root, filepath.Join(root, "local.settings.json"), []string{"S=0 0 * * * *"})
	if err != nil {
		t.Fatal(err)
	}
	if a.executable != filepath.Join(root, "work", "handler") || a.workingDir != filepath.Join(root, "work") {
		t.Errorf("executable %q dir %q", a.executable, a.workingDir)
	}
	if strings.Join(a.args, " ") != "--queue orders" {
		t.Errorf("args %q", a.args)
	}
	if a.functionTimeout != 2*time.Minute {
		t.Errorf("functionTimeout %v (the app setting override must win)", a.functionTimeout)
	}
	if len(a.timers) != 1 || a.timers[0].scheduleText != "0 0 * * * *" || !a.timers[0].runOnStartup || !a.timers[0].monitor {
		t.Errorf("timer %+v: the process environment must win over Values", a.timers[0])
	}
	if len(a.https) != 1 || a.https[0].route.template != "deferred/{action?}" || !a.https[0].forward ||
		!a.https[0].methods["GET"] || !a.https[0].methods["POST"] || a.https[0].methods["DELETE"] {
		t.Errorf("http %+v", a.https[0])
	}
	if len(a.settingsSkipped) != 1 || a.settingsSkipped[0] != "S" {
		t.Errorf("skipped %v", a.settingsSkipped)
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
