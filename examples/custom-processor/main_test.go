package main

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus"

	"github.com/holdfast-dev/holdfast/holdfasttest"
)

// The processor's tests run it through holdfast itself: the in-process Service Bus emulator, Azurite for the
// deferral ledger, and the handler, started by holdfasttest.

func TestMain(m *testing.M) { os.Exit(holdfasttest.Main(m)) }

func send(t *testing.T, h *holdfasttest.Handler, body string) {
	t.Helper()
	h.Send(t, &azservicebus.Message{Body: []byte(body), ContentType: ptr("application/json")})
}

func ptr[T any](v T) *T { return &v }

func digest(text string, rounds int) string {
	sum := sha256.Sum256([]byte(text))
	for range rounds - 1 {
		sum = sha256.Sum256(sum[:])
	}
	return hex.EncodeToString(sum[:]) + "\n"
}

func TestJobsAreDigestedDeadLetteredOrDeferred(t *testing.T) {
	out := t.TempDir()
	h := holdfasttest.Start(t, digester{outDir: out}, &holdfasttest.Options{LockDuration: 2 * time.Second})
	const rounds = 2_000_000 // about a second of work on a fast machine; renewals keep its lock meanwhile
	send(t, h, fmt.Sprintf(`{"id":"long","text":"hello","rounds":%d}`, rounds))
	send(t, h, `{"id":"../etc/passwd","text":"x","rounds":1}`)
	after := time.Now().Add(time.Second).UTC().Format(time.RFC3339Nano)
	send(t, h, fmt.Sprintf(`{"id":"later","text":"bye","rounds":3,"after":%q}`, after))

	s := h.Run(t)
	if s.Received != 3 || s.Completed != 1 || s.DeadLettered != 1 || s.Deferred != 1 || s.LocksLost != 0 {
		t.Fatalf("run 1: %+v\n%s", s, h.Logs())
	}
	if b, err := os.ReadFile(filepath.Join(out, "long.txt")); err != nil || string(b) != digest("hello", rounds) {
		t.Fatalf("long.txt: %q, %v", b, err)
	}
	if dl := h.DeadLettered(t); len(dl) != 1 || *dl[0].DeadLetterReason != "InvalidJob" {
		t.Fatalf("dead-lettered: %v", dl)
	}

	// Once "later" is due, the next run takes it back by itself.
	for h.Stats(t).Deferred == 1 {
		if s := h.Run(t); s.Due == 1 {
			if s.Completed != 1 {
				t.Fatalf("run with the due job: %+v", s)
			}
			break
		}
		time.Sleep(200 * time.Millisecond) // waiting for the job's due time, not synchronising
	}
	if b, err := os.ReadFile(filepath.Join(out, "later.txt")); err != nil || string(b) != digest("bye", 3) {
		t.Fatalf("later.txt: %q, %v", b, err)
	}
}

// A job longer than the run budget is abandoned when the budget ends: the processor honours its context,
// so it is not stuck, and the message stays in the queue for the next run.
func TestJobOverTheBudgetIsAbandoned(t *testing.T) {
	h := holdfasttest.Start(t, digester{outDir: t.TempDir()}, &holdfasttest.Options{RunBudget: 5 * time.Second, NoLedger: true})
	send(t, h, fmt.Sprintf(`{"id":"huge","text":"x","rounds":%d}`, maxRounds))
	if s := h.Run(t); s.Received != 1 || s.Abandoned != 1 || s.Stuck != 0 || s.Completed != 0 {
		t.Fatalf("summary %+v", s)
	}
	if st := h.Stats(t); st.Active != 1 || st.Locked != 0 {
		t.Fatalf("stats %+v: want the message back in the queue", st)
	}
}
