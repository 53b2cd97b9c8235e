package e2e

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus"

	"github.com/holdfast-dev/holdfast/internal/testenv"
)

// exampleDir is the custom-processor example: a module of its own that builds a handler with holdfast.Main.
var exampleDir = filepath.Join("..", "examples", "custom-processor")

// TestCustomProcessorExample builds the example module (its own go.mod, holdfast.Main with its processor) and
// runs it end to end under the dev host with the emulator and Azurite, so the example cannot rot: a job is
// digested (its file written), an invalid one dead-lettered, and one not yet due deferred and then taken back
// by a later run.
func TestCustomProcessorExample(t *testing.T) {
	// The example ships the repository's function folders and host.json, so its handler serves every route.
	for _, f := range []string{"host.json", "functions/ProcessQueue/function.json", "functions/DrainDeferred/function.json",
		"functions/DrainDeadLetter/function.json", "functions/OperatorPage/function.json"} {
		want, err := os.ReadFile(filepath.Join("..", f))
		if err != nil {
			t.Fatal(err)
		}
		if got, err := os.ReadFile(filepath.Join(exampleDir, f)); err != nil || !bytes.Equal(got, want) {
			t.Errorf("examples/custom-processor/%s differs from the repository's %s (%v): copy it", f, f, err)
		}
	}

	bin := filepath.Join(t.TempDir(), "handler")
	cmd := exec.Command("go", "build", "-o", bin, ".")
	cmd.Dir = exampleDir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building the example: %v\n%s", err, out)
	}

	out := t.TempDir()
	st := startStackStaged(t, "e2e-example", shortLockQueue(), map[string]string{
		"DIGEST_OUTPUT_DIR":       out,
		"HOLDFAST_PROCESSOR":      "webhook", // ignored: the example brings its own processor
		"HOLDFAST_DEFERRAL_TABLE": testenv.TableName(t),
	}, func(t *testing.T, values map[string]string) string { return stageAppFrom(t, exampleDir, bin, values) })
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	sender, err := st.client.NewSender(st.queue, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer sender.Close(ctx)
	due := time.Now().Add(2 * time.Second)
	for _, body := range []string{
		`{"id":"one","text":"hello","rounds":1000000}`,
		`{"id":"bad id","text":"x","rounds":1}`,
		fmt.Sprintf(`{"id":"two","text":"bye","rounds":5,"after":%q}`, due.UTC().Format(time.RFC3339Nano)),
	} {
		if err := sender.SendMessage(ctx, &azservicebus.Message{Body: []byte(body)}, nil); err != nil {
			t.Fatal(err)
		}
	}

	_, sum := st.runTimer(ctx, t)
	if sum.Received != 3 || sum.Completed != 1 || sum.DeadLettered != 1 || sum.Deferred != 1 || sum.LocksLost != 0 {
		t.Fatalf("run 1: %+v", sum)
	}
	checkDigest(t, filepath.Join(out, "one.txt"), "hello", 1000000)

	time.Sleep(time.Until(due)) // waiting for the job's due time, not synchronising
	_, sum = st.runTimer(ctx, t)
	if sum.Due != 1 || sum.Completed != 1 {
		t.Fatalf("run 2: %+v", sum)
	}
	checkDigest(t, filepath.Join(out, "two.txt"), "bye", 5)
	if s := st.stats(t); s.Active != 0 || s.Deferred != 0 || s.DeadLettered != 1 || s.Locked != 0 {
		t.Fatalf("queue after run 2: %+v", s)
	}
}

// The README's "Write your own processor" shows the example's main.go as it is.
func TestReadmeShowsTheExample(t *testing.T) {
	readme, err := os.ReadFile(filepath.Join("..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	main, err := os.ReadFile(filepath.Join(exampleDir, "main.go"))
	if err != nil {
		t.Fatal(err)
	}
	_, sect, ok := strings.Cut(string(readme), "## Write your own processor")
	_, code, ok2 := strings.Cut(sect, "```go\n")
	code, _, ok3 := strings.Cut(code, "```")
	_, body, ok4 := strings.Cut(string(main), "\nfunc main()")
	if !ok || !ok2 || !ok3 || !ok4 || code != "func main()"+body {
		t.Fatal("README's \"Write your own processor\" code differs from examples/custom-processor/main.go from func main() on: copy it")
	}
}

func checkDigest(t *testing.T, path, text string, rounds int) {
	t.Helper()
	sum := sha256.Sum256([]byte(text))
	for range rounds - 1 {
		sum = sha256.Sum256(sum[:])
	}
	if got, err := os.ReadFile(path); err != nil || string(got) != hex.EncodeToString(sum[:])+"\n" {
		t.Fatalf("%s: %q, %v", path, got, err)
	}
}
