// Package jstest runs the JavaScript SDK conformance subset (the *.test.mjs files beside this
// file, node's built-in test runner, @azure/service-bus pinned in package.json) against an
// emulator started in this test's process, so no emulator process can outlive the run.
//
// The node process gets the emulator's connection string (SB_CONNECTION_STRING, with
// UseDevelopmentEmulator=true) and the admin API's base URL (SB_ADMIN_URL), and runs with the
// repository root as working directory so that node_modules resolves. The entities the tests
// use are created from conformanceConfig below.
package jstest

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/holdfast-dev/holdfast/emulator"
	"github.com/holdfast-dev/holdfast/emulator/broker"
)

// conformanceConfig holds one entity per test case, so that the cases cannot see each other's
// messages. Lock durations are short only where a case waits for a lock to run out.
const conformanceConfig = `{"UserConfig": {"Namespaces": [{"Name": "sbemulatorns",
  "Queues": [
    {"Name": "send-receive"},
    {"Name": "header-roundtrip"},
    {"Name": "abandon"},
    {"Name": "renew", "Properties": {"LockDuration": "PT5S"}},
    {"Name": "lock-expiry", "Properties": {"LockDuration": "PT2S"}},
    {"Name": "defer"},
    {"Name": "dead-letter"},
    {"Name": "max-delivery", "Properties": {"MaxDeliveryCount": 2}},
    {"Name": "schedule"},
    {"Name": "batch"},
    {"Name": "receive-and-delete"},
    {"Name": "peek"}],
  "Topics": [{"Name": "events", "Subscriptions": [
    {"Name": "all"},
    {"Name": "red", "Rules": [{"Name": "red-only", "Properties": {"FilterType": "Correlation",
      "CorrelationFilter": {"Label": "red"}}}]}]}]}],
  "Logging": {"Type": "Console"}}}`

// nodeTimeout bounds the whole node run.
const nodeTimeout = 5 * time.Minute

func TestJavaScriptSDKConformance(t *testing.T) {
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	node, err := exec.LookPath("node")
	if err != nil {
		t.Fatalf("node is not on PATH: the JavaScript conformance tests need Node.js (and `npm ci`): %v", err)
	}
	if _, err := os.Stat(filepath.Join(root, "node_modules", "@azure", "service-bus", "package.json")); err != nil {
		t.Fatalf("@azure/service-bus is not installed: run `npm ci` in %s (%v)", root, err)
	}
	files, err := filepath.Glob(filepath.Join(root, "jstest", "*.test.mjs"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no jstest/*.test.mjs files (%v)", err)
	}

	cfg, err := broker.ParseConfig([]byte(conformanceConfig))
	if err != nil {
		t.Fatal(err)
	}
	srv, err := emulator.Start(&emulator.Options{Addr: "127.0.0.1:0", AdminAddr: "127.0.0.1:0", Config: cfg})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := srv.Close(); err != nil {
			t.Errorf("emulator Close: %v", err)
		}
	})

	ctx, cancel := context.WithTimeout(context.Background(), nodeTimeout)
	defer cancel()
	args := append([]string{"--test", "--test-reporter=spec"}, files...)
	cmd := exec.CommandContext(ctx, node, args...)
	cmd.Dir = root
	cmd.Env = append(os.Environ(),
		// 127.0.0.1 rather than localhost: node may resolve localhost to ::1 first.
		"SB_CONNECTION_STRING="+strings.Replace(srv.ConnectionString(), "sb://localhost:", "sb://127.0.0.1:", 1),
		"SB_ADMIN_URL=http://"+srv.AdminAddr(),
	)
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	if err := cmd.Run(); err != nil {
		if ctx.Err() != nil {
			t.Fatalf("node --test did not finish within %s", nodeTimeout)
		}
		t.Fatalf("node --test: %v (the failing cases are listed above)", err)
	}
}
