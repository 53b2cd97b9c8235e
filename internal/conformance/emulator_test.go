package conformance_test

import (
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/holdfast-dev/holdfast/emulator"
	"github.com/holdfast-dev/holdfast/emulator/broker"
	"github.com/holdfast-dev/holdfast/internal/conformance"
)

// TestEmulator runs the conformance suite against the in-process emulator. It runs in every `make test`.
func TestEmulator(t *testing.T) {
	srv, err := emulator.Start(&emulator.Options{})
	if err != nil {
		t.Fatalf("emulator.Start: %v", err)
	}
	t.Cleanup(func() {
		if err := srv.Close(); err != nil {
			t.Errorf("emulator Close: %v", err)
		}
	})
	var n atomic.Int64
	conformance.Run(t, conformance.Target{
		ConnectionString: srv.ConnectionString(),
		Features:         conformance.Features{MinLockDuration: time.Second},
		NewQueue: func(t *testing.T, spec conformance.QueueSpec) string {
			name := fmt.Sprintf("conformance-%d", n.Add(1))
			props := broker.DefaultQueueProperties()
			if spec.LockDuration > 0 {
				props.LockDuration = spec.LockDuration
			}
			if spec.MaxDeliveryCount > 0 {
				props.MaxDeliveryCount = int(spec.MaxDeliveryCount)
			}
			props.RequiresSession = spec.RequiresSession
			if err := srv.Broker().CreateQueue(name, props); err != nil {
				t.Fatalf("CreateQueue: %v", err)
			}
			t.Cleanup(func() { _ = srv.Broker().DeleteQueue(name) })
			return name
		},
	})
}
