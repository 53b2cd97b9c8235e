package infratest

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/holdfast-dev/holdfast"
)

// No Docker engine is needed (or available) to check the image recipe: the builder's Go is the version go.mod
// asks for, the handler is built static (CGO off) from ./handler, the final stage runs it as a non-root user
// with a mode the handler accepts, and .dockerignore keeps every package ./handler needs in the build context
// (`az acr build` uploads only what it does not exclude).
func TestDockerfile(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(repoRoot, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	df := string(b)
	gomod, err := os.ReadFile(filepath.Join(repoRoot, "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	goVersion := regexp.MustCompile(`(?m)^go (\d+\.\d+)`).FindStringSubmatch(string(gomod))
	if goVersion == nil {
		t.Fatal("go.mod has no go directive")
	}
	froms := regexp.MustCompile(`(?m)^FROM (\S+)`).FindAllStringSubmatch(df, -1)
	if len(froms) != 2 || froms[0][1] != "golang:"+goVersion[1] {
		t.Errorf("FROM lines %v: want the builder golang:%s and one runtime stage", froms, goVersion[1])
	}
	for _, want := range []string{
		"RUN CGO_ENABLED=0 GOOS=linux go build -trimpath -ldflags='-s -w' -o /out/handler ./handler",
		"COPY --from=build /out/handler /handler", "USER nonroot:nonroot", `ENTRYPOINT ["/handler"]`,
	} {
		if !strings.Contains(df, want+"\n") {
			t.Errorf("Dockerfile has no line %q", want)
		}
	}
	cmd := regexp.MustCompile(`(?m)^CMD (\[.*\])$`).FindStringSubmatch(df)
	var args []string
	if cmd == nil || json.Unmarshal([]byte(cmd[1]), &args) != nil {
		t.Fatalf("Dockerfile CMD %v is not an exec-form list", cmd)
	}
	if mode, err := holdfast.ParseArgs(args); err != nil || !mode.Standalone() {
		t.Errorf("CMD %v: %v (%q): want a standalone mode (a container has no Functions host)", args, err, mode)
	}

	ignore, err := os.ReadFile(filepath.Join(repoRoot, ".dockerignore"))
	if err != nil {
		t.Fatal(err)
	}
	var patterns []string
	for _, l := range strings.Split(string(ignore), "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
			patterns = append(patterns, strings.TrimPrefix(l, "**/"))
		}
	}
	list := exec.Command("go", "list", "-deps", "-f", "{{if .Module}}{{if .Module.Main}}{{.Dir}}{{end}}{{end}}", "./handler")
	list.Dir = repoRoot
	out, err := list.Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	root, err := filepath.Abs(repoRoot)
	if err != nil {
		t.Fatal(err)
	}
	needed := []string{"go.mod", "go.sum"}
	for _, dir := range strings.Fields(string(out)) {
		rel, err := filepath.Rel(root, dir)
		if err != nil {
			t.Fatal(err)
		}
		needed = append(needed, filepath.ToSlash(rel))
	}
	if len(needed) < 10 {
		t.Fatalf("go list found only %v", needed)
	}
	for _, path := range needed {
		for _, elem := range strings.Split(path, "/") {
			for _, p := range patterns {
				if ok, _ := filepath.Match(p, elem); ok || p == path {
					t.Errorf(".dockerignore pattern %q excludes %s, which ./handler needs", p, path)
				}
			}
		}
	}
}
