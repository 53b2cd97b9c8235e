package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The app setting overrides host.json, as it does for the host: the template's 30-minute Flex setting with the
// packaged host.json (10 min) gives a 30-minute timeout and the 29m30s budget the template writes.
func TestFunctionTimeoutSettingOverridesHostJSON(t *testing.T) {
	over := map[string]string{SettingFunctionTimeout: "00:30:00", SettingRunBudget: "29m30s", SettingMaxLockRenewal: "29m30s"}
	c, err := LoadWith(env(base(over)), &LoadOptions{FunctionTimeout: 10 * time.Minute})
	if err != nil {
		t.Fatalf("the template's 30-minute settings are refused: %v", err)
	}
	if c.FunctionTimeout != 30*time.Minute || c.FunctionTimeoutSource != SettingFunctionTimeout || c.RunBudget != 29*time.Minute+30*time.Second {
		t.Fatalf("timeout %v from %q, budget %v", c.FunctionTimeout, c.FunctionTimeoutSource, c.RunBudget)
	}

	// Without a budget setting the default follows the override, not host.json.
	c, err = LoadWith(env(base(map[string]string{SettingFunctionTimeout: "01:00:00"})), &LoadOptions{FunctionTimeout: 10 * time.Minute})
	if err != nil || c.RunBudget != time.Hour-BudgetMargin {
		t.Fatalf("budget %v, %v", c.RunBudget, err)
	}
	// Without the setting, host.json applies; without both, the default.
	c, err = LoadWith(env(base(nil)), &LoadOptions{FunctionTimeout: 10 * time.Minute})
	if err != nil || c.FunctionTimeout != 10*time.Minute || c.FunctionTimeoutSource != HostJSONTimeout {
		t.Fatalf("host.json: %v from %q, %v", c.FunctionTimeout, c.FunctionTimeoutSource, err)
	}
	c, err = Load(env(base(nil)))
	if err != nil || c.FunctionTimeout != DefaultFunctionTimeout || c.FunctionTimeoutSource != "" {
		t.Fatalf("default: %v from %q, %v", c.FunctionTimeout, c.FunctionTimeoutSource, err)
	}
	// "-1" is unbounded for the host; the handler assumes UnboundedFunctionTimeout.
	c, err = Load(env(base(map[string]string{SettingFunctionTimeout: "-1"})))
	if err != nil || c.FunctionTimeout != UnboundedFunctionTimeout {
		t.Fatalf("-1: %v, %v", c.FunctionTimeout, err)
	}
}

func TestFunctionTimeoutSettingInvalid(t *testing.T) {
	for _, v := range []string{"30m", "00:00:00", "00:60:00", "soon"} {
		_, err := Load(env(base(map[string]string{SettingFunctionTimeout: v})))
		var se *SettingError
		if !errors.As(err, &se) || se.Setting != SettingFunctionTimeout || !errors.Is(err, ErrInvalid) {
			t.Errorf("%q: error %v, want a SettingError for %s", v, err, SettingFunctionTimeout)
		}
	}
}

// A run may spend SettleTimeout + CloseTimeout after its budget, so a budget merely shorter than the timeout is
// not enough: the budget plus both must fit, and the message names the budget setting and the timeout's origin.
func TestBudgetLeavesRoomToSettleAndClose(t *testing.T) {
	const timeout = 10 * time.Minute
	fits := timeout - SettleTimeout - CloseTimeout
	tests := []struct {
		name       string
		over       map[string]string
		hostJSON   time.Duration
		ok         bool
		timeoutRef string // the name of the timeout setting the error must carry
		setting    string // the SettingError's setting; "" means SettingRunBudget
	}{
		{"exactly fits", map[string]string{SettingRunBudget: fits.String()}, timeout, true, "", ""},
		{"one second over, host.json", map[string]string{SettingRunBudget: (fits + time.Second).String()}, timeout, false, HostJSONTimeout, ""},
		{"one second over, setting", map[string]string{SettingRunBudget: (fits + time.Second).String(), SettingFunctionTimeout: "00:10:00"}, 0, false, SettingFunctionTimeout, ""},
		{"shorter than the timeout but no room", map[string]string{SettingRunBudget: "9m50s"}, timeout, false, HostJSONTimeout, ""},
		{"default timeout", map[string]string{SettingRunBudget: "4m40s"}, 0, false, "default functionTimeout", ""},
		{"timeout too short for any budget", map[string]string{SettingFunctionTimeout: "00:00:20"}, 0, false, SettingFunctionTimeout, SettingFunctionTimeout},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := LoadWith(env(base(tt.over)), &LoadOptions{FunctionTimeout: tt.hostJSON})
			if tt.ok {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			setting := tt.setting
			if setting == "" {
				setting = SettingRunBudget
			}
			var se *SettingError
			if !errors.As(err, &se) || se.Setting != setting {
				t.Fatalf("error %v, want a SettingError for %s", err, setting)
			}
			for _, want := range []string{setting, tt.timeoutRef, SettingFunctionTimeout, "settle"} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not mention %q", err, want)
				}
			}
		})
	}
}

// LoadApp reads host.json from the script root, and the app setting still wins over it.
func TestLoadApp(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, HostJSONFile), []byte(`{"functionTimeout":"00:10:00"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := LoadApp(env(base(nil)), dir, nil)
	if err != nil || c.FunctionTimeout != 10*time.Minute || c.FunctionTimeoutSource != HostJSONTimeout {
		t.Fatalf("host.json: %+v, %v", c, err)
	}
	c, err = LoadApp(env(base(map[string]string{SettingFunctionTimeout: "00:30:00"})), dir, &LoadOptions{FunctionTimeout: time.Minute})
	if err != nil || c.FunctionTimeout != 30*time.Minute {
		t.Fatalf("setting: %+v, %v", c, err)
	}
	if err := os.WriteFile(filepath.Join(dir, HostJSONFile), []byte(`{`), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadApp(env(base(nil)), dir, nil); !errors.Is(err, ErrInvalid) {
		t.Fatalf("malformed host.json: %v", err)
	}
}

// Standalone there is no host: host.json and AzureFunctionsJobHost__functionTimeout are ignored, and the budget
// must fit HOLDFAST_PROCESS_TIMEOUT (a Container Apps job's replicaTimeout) when it is set, with the same 25 s
// of settle and close time; without it only the budget's minimum applies.
func TestStandaloneBudget(t *testing.T) {
	standalone := &LoadOptions{Standalone: true, FunctionTimeout: time.Minute}
	c, err := LoadWith(env(base(map[string]string{SettingFunctionTimeout: "00:01:00"})), standalone)
	if err != nil || !c.Standalone || c.FunctionTimeout != 0 || c.RunBudget != DefaultStandaloneBudget || c.MaxLockRenewal != DefaultStandaloneBudget {
		t.Fatalf("defaults: %+v, %v", c, err)
	}
	// No limit known: a budget of hours is fine.
	if c, err = LoadWith(env(base(map[string]string{SettingRunBudget: "6h"})), standalone); err != nil || c.RunBudget != 6*time.Hour {
		t.Fatalf("6h budget without a process timeout: %v", err)
	}
	// The job template's values: replicaTimeout 1800 s, budget 29m30s.
	c, err = LoadWith(env(base(map[string]string{SettingProcessTimeout: "1800s"})), standalone)
	if err != nil || c.FunctionTimeout != 30*time.Minute || c.FunctionTimeoutSource != SettingProcessTimeout || c.RunBudget != 29*time.Minute+30*time.Second {
		t.Fatalf("process timeout 30m: %v from %q, budget %v, %v", c.FunctionTimeout, c.FunctionTimeoutSource, c.RunBudget, err)
	}
	for _, tt := range []struct {
		vars    map[string]string
		setting string
	}{
		{map[string]string{SettingProcessTimeout: "30m", SettingRunBudget: "29m36s"}, SettingRunBudget}, // 25 s do not fit
		{map[string]string{SettingProcessTimeout: "20s"}, SettingProcessTimeout},                        // no room for a run
		{map[string]string{SettingProcessTimeout: "soon"}, SettingProcessTimeout},
		{map[string]string{SettingProcessTimeout: "-5m"}, SettingProcessTimeout},
		{map[string]string{SettingRunBudget: "500ms"}, SettingRunBudget},
	} {
		_, err := LoadWith(env(base(tt.vars)), standalone)
		var se *SettingError
		if !errors.As(err, &se) || se.Setting != tt.setting || !errors.Is(err, ErrInvalid) {
			t.Errorf("%v: error %v, want one naming %s", tt.vars, err, tt.setting)
		}
	}
	// Under the host the process timeout means nothing and the host's limit applies.
	if _, err := LoadWith(env(base(map[string]string{SettingProcessTimeout: "1h", SettingRunBudget: "20m"})), &LoadOptions{FunctionTimeout: 10 * time.Minute}); err == nil {
		t.Error("under the host, a 20m budget in a 10m functionTimeout was accepted because of HOLDFAST_PROCESS_TIMEOUT")
	}
}
