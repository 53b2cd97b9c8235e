package infratest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// runSyntaxCheck runs infra/check/syntax.mjs on the given paths and returns its exit code and output. The
// checker needs node and the npm packages (npm ci); without them the test cannot run and says so.
func runSyntaxCheck(t *testing.T, paths ...string) (int, string) {
	t.Helper()
	node, err := exec.LookPath("node")
	if err != nil {
		t.Skip("node is not on PATH: the Bicep syntax check runs in make infra-check / CI")
	}
	if _, err := os.Stat(filepath.Join(repoRoot, "node_modules", "tree-sitter-bicep")); err != nil {
		t.Skip("node_modules/tree-sitter-bicep is missing: run npm ci")
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, append([]string{filepath.Join(repoRoot, "infra", "check", "syntax.mjs")}, paths...)...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err = cmd.Run()
	var exit *exec.ExitError
	switch {
	case err == nil:
		return 0, out.String()
	case errors.As(err, &exit):
		return exit.ExitCode(), out.String()
	default:
		t.Fatalf("run syntax check: %v\n%s", err, out.String())
		return 0, ""
	}
}

func TestSyntaxCheckPassesOnTemplates(t *testing.T) {
	code, out := runSyntaxCheck(t, filepath.Join(repoRoot, "infra"))
	if code != 0 {
		t.Fatalf("exit %d:\n%s", code, out)
	}
	modules, err := filepath.Glob(filepath.Join(repoRoot, "infra", "modules", "*.bicep"))
	if err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf("%d file(s) OK", len(modules)+2) // + main.bicep and main.bicepparam
	if !strings.Contains(out, want) {
		t.Errorf("output %q, want %q", out, want)
	}
}

// A deliberately broken template must fail the check, naming the file and the line.
func TestSyntaxCheckCatchesErrors(t *testing.T) {
	tests := []struct {
		name, file, src string
		line            string // a line the report must point at
	}{
		{"unclosed object", "a.bicep", "param p int = 1\nresource r 'A/b@2024-01-01' = {\n  name: 'x'\n", "2"},
		{"stray token", "b.bicep", "var ok = 1\nvar bad = 1 2 )\n", "2"},
		{"parameters file", "c.bicepparam", "using './main.bicep'\nparam a = 'x'\nparam b = [\n", "3|4"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, tt.file)
			if err := os.WriteFile(path, []byte(tt.src), 0o600); err != nil {
				t.Fatal(err)
			}
			code, out := runSyntaxCheck(t, dir)
			if code != 1 {
				t.Fatalf("exit %d, want 1:\n%s", code, out)
			}
			re := regexp.MustCompile(regexp.QuoteMeta(path) + `:(` + tt.line + `):\d+: (unexpected|missing) `)
			if !re.MatchString(out) {
				t.Errorf("output does not name %s line %s:\n%s", tt.file, tt.line, out)
			}
		})
	}
}
