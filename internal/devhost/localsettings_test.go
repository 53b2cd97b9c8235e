package devhost

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/holdfast-dev/holdfast/internal/config"
)

// Well-known local development secrets, the only ones the committed local.settings.json may hold: Azurite's
// account key for devstoreaccount1 (published in the Azurite and Azure SDK documentation) and the Service Bus
// emulator's placeholder key.
var wellKnownSecrets = map[string]bool{
	"Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==": true,
	"SAS_KEY_VALUE": true,
}

var secretField = regexp.MustCompile(`(?i)(AccountKey|SharedAccessKey|SharedAccessSignature|Password|Secret)=([^;]*)`)

// The repository's local.settings.json is what `make start` runs with: func start --script-root dist and the
// dev host both load it with the staged app, the handler's configuration loader accepts it, and it holds no
// secret beyond the well-known development keys and no Azure endpoint.
func TestRepositoryLocalSettings(t *testing.T) {
	const repo = "../.."
	raw, err := os.ReadFile(filepath.Join(repo, "local.settings.json"))
	if err != nil {
		t.Fatal(err)
	}
	var sf settingsFile
	if err := json.Unmarshal(raw, &sf); err != nil {
		t.Fatal(err)
	}
	if sf.IsEncrypted || len(sf.Values) == 0 {
		t.Fatalf("IsEncrypted %v, %d values", sf.IsEncrypted, len(sf.Values))
	}
	for k, v := range sf.Values {
		for _, m := range secretField.FindAllStringSubmatch(v, -1) {
			if !wellKnownSecrets[m[2]] {
				t.Errorf("%s carries a %s that is not a well-known development key", k, m[1])
			}
		}
		if strings.Contains(v, ".windows.net") || strings.Contains(v, ".azure.com") {
			t.Errorf("%s points at Azure (%s): in Azure the app uses identity settings from the template", k, v)
		}
	}
	if got := sf.Values["FUNCTIONS_WORKER_RUNTIME"]; got != "custom" {
		t.Errorf("FUNCTIONS_WORKER_RUNTIME = %q, want custom (func start)", got)
	}

	// Staged like `make dist`: host.json, the function folders and local.settings.json in the script root.
	root := t.TempDir()
	copyTree(t, filepath.Join(repo, "host.json"), filepath.Join(root, "host.json"))
	fns, err := filepath.Glob(filepath.Join(repo, "functions", "*", "function.json"))
	if err != nil || len(fns) == 0 {
		t.Fatalf("functions: %v %v", fns, err)
	}
	for _, fn := range fns {
		copyTree(t, fn, filepath.Join(root, filepath.Base(filepath.Dir(fn)), "function.json"))
	}
	copyTree(t, filepath.Join(repo, "local.settings.json"), filepath.Join(root, "local.settings.json"))
	a, err := loadApp(root, filepath.Join(root, "local.settings.json"), []string{})
	if err != nil {
		t.Fatalf("the dev host cannot load the app with the repository's settings: %v", err)
	}
	if len(a.timers) == 0 || a.workerRuntime != "custom" {
		t.Errorf("timers %d, worker runtime %q", len(a.timers), a.workerRuntime)
	}
	cfg, err := config.LoadApp(func(k string) string { return sf.Values[k] }, root, nil)
	if err != nil {
		t.Fatalf("the handler refuses the repository's local.settings.json: %v", err)
	}
	if cfg.ServiceBus.ConnectionString == "" || cfg.Storage.ConnectionString == "" {
		t.Errorf("local settings should use the emulator's and Azurite's connection strings: %+v", cfg)
	}
}

func copyTree(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, to, string(b))
}
