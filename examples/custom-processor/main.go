// Command custom-processor is a holdfast custom handler with its own processor: each message is a job whose
// digest takes real CPU time, longer than a message lock lasts. holdfast keeps the lock renewed while the
// work runs, settles the message by the outcome, defers jobs that are not due yet and brings them back when
// they are, and serves the deferred-message drain.
package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus"

	"github.com/holdfast-dev/holdfast"
	"github.com/holdfast-dev/holdfast/processor"
)

func main() {
	holdfast.Main(digester{outDir: os.Getenv("DIGEST_OUTPUT_DIR")})
}

// job is a message body: hash Text Rounds times, not before After.
type job struct {
	ID     string    `json:"id"`
	Text   string    `json:"text"`
	Rounds int       `json:"rounds"`
	After  time.Time `json:"after"`
}

const maxRounds = 1 << 30

var validID = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

// digester writes the iterated SHA-256 of each job's text to <outDir>/<id>.txt.
type digester struct{ outDir string }

func (d digester) Process(ctx context.Context, msg *azservicebus.ReceivedMessage) processor.Outcome {
	var j job
	if err := json.Unmarshal(msg.Body, &j); err != nil || !validID.MatchString(j.ID) || j.Rounds < 1 || j.Rounds > maxRounds {
		return processor.DeadLetter("InvalidJob", fmt.Sprintf(`want {"id":"[A-Za-z0-9_-]+","text":"…","rounds":1..%d} (%v)`, maxRounds, err))
	}
	if time.Now().Before(j.After) {
		return processor.Defer(j.After, "not yet") // a later run takes it back once due
	}
	sum := sha256.Sum256([]byte(j.Text))
	for i := 1; i < j.Rounds; i++ {
		if i%4096 == 0 && ctx.Err() != nil {
			return processor.Abandon(context.Cause(ctx)) // lock lost or run budget spent: it comes back
		}
		sum = sha256.Sum256(sum[:])
	}
	out := filepath.Join(d.outDir, j.ID+".txt")
	if err := os.WriteFile(out, []byte(hex.EncodeToString(sum[:])+"\n"), 0o644); err != nil {
		return processor.Abandon(err) // transient: redelivered
	}
	return processor.Complete()
}
