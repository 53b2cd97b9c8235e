package processors

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus"

	"github.com/holdfast-dev/holdfast/processor"
)

// InvalidBodyReason is the dead-letter reason the demo processor gives a body it cannot parse.
const InvalidBodyReason = "InvalidBody"

// DemoDeferReason is the defer reason of the demo processor.
const DemoDeferReason = "demo"

// maxDemoSeconds bounds workSeconds and deferSeconds (one day).
const maxDemoSeconds = 86400

// DemoRequest is the demo processor's message body.
type DemoRequest struct {
	WorkSeconds  float64 `json:"workSeconds"`  // how long to "work" (fractions allowed)
	Outcome      string  `json:"outcome"`      // complete (default) | fail | deadletter | defer
	DeferSeconds float64 `json:"deferSeconds"` // defer: not-before = now + deferSeconds
}

// DemoOptions configures the demo processor. A nil *DemoOptions means defaults.
type DemoOptions struct {
	Now func() time.Time // nil: time.Now; the defer not-before time is computed from it
}

// Demo works workSeconds, honouring ctx, then returns the outcome the body asks for. It is safe for
// concurrent use.
type Demo struct {
	now func() time.Time // immutable after NewDemo
}

// NewDemo returns the demo processor.
func NewDemo(opts *DemoOptions) *Demo {
	if opts == nil {
		opts = &DemoOptions{}
	}
	d := &Demo{now: opts.Now}
	if d.now == nil {
		d.now = time.Now
	}
	return d
}

// ParseDemoRequest decodes and checks a demo body; the error names the problem.
func ParseDemoRequest(body []byte) (DemoRequest, error) {
	var r DemoRequest
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&r); err != nil {
		return r, fmt.Errorf("body is not a demo request JSON object: %w", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return r, errors.New("body has data after the JSON object")
	}
	if r.Outcome == "" {
		r.Outcome = "complete"
	}
	switch {
	case math.IsNaN(r.WorkSeconds) || r.WorkSeconds < 0 || r.WorkSeconds > maxDemoSeconds:
		return r, fmt.Errorf("workSeconds %v is out of range 0..%d", r.WorkSeconds, maxDemoSeconds)
	case math.IsNaN(r.DeferSeconds) || r.DeferSeconds < 0 || r.DeferSeconds > maxDemoSeconds:
		return r, fmt.Errorf("deferSeconds %v is out of range 0..%d", r.DeferSeconds, maxDemoSeconds)
	}
	switch r.Outcome {
	case "complete", "fail", "deadletter", "defer":
		return r, nil
	default:
		return r, fmt.Errorf("outcome %q is not complete, fail, deadletter or defer", r.Outcome)
	}
}

// Process implements processor.Processor.
func (d *Demo) Process(ctx context.Context, msg *azservicebus.ReceivedMessage) processor.Outcome {
	req, err := ParseDemoRequest(msg.Body)
	if err != nil {
		return processor.DeadLetter(InvalidBodyReason, err.Error())
	}
	if err := d.work(ctx, time.Duration(req.WorkSeconds*float64(time.Second))); err != nil {
		return processor.Abandon(err)
	}
	switch req.Outcome {
	case "fail":
		return processor.Abandon(errors.New("demo: outcome fail requested"))
	case "deadletter":
		return processor.DeadLetter("demo", "outcome deadletter requested")
	case "defer":
		return processor.Defer(d.now().Add(time.Duration(req.DeferSeconds*float64(time.Second))), DemoDeferReason)
	default:
		return processor.Complete()
	}
}

// work blocks for d or until ctx is done, returning ctx's cause in that case.
func (*Demo) work(ctx context.Context, dur time.Duration) error {
	if dur <= 0 {
		return context.Cause(ctx)
	}
	t := time.NewTimer(dur)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("demo: work interrupted: %w", context.Cause(ctx))
	}
}
