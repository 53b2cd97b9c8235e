package conformance_test

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus/admin"
	"github.com/holdfast-dev/holdfast/internal/conformance"
)

// TestLiveNamespace runs the conformance suite against a real Service Bus namespace. It needs a connection
// string with Manage rights in SERVICEBUS_CONNECTION_STRING; it creates and deletes its own queues.
func TestLiveNamespace(t *testing.T) {
	conn := os.Getenv("SERVICEBUS_CONNECTION_STRING")
	if conn == "" {
		t.Skip("SERVICEBUS_CONNECTION_STRING is not set: the suite runs against the emulator only (TestEmulator)")
	}
	adm, err := admin.NewClientFromConnectionString(conn, nil)
	if err != nil {
		t.Fatalf("admin client: %v", err)
	}
	prefix := fmt.Sprintf("holdfast-conf-%d", time.Now().Unix())
	n := 0
	conformance.Run(t, conformance.Target{
		ConnectionString: conn,
		Features:         conformance.Features{MinLockDuration: 5 * time.Second},
		NewQueue: func(t *testing.T, spec conformance.QueueSpec) string {
			n++
			name := fmt.Sprintf("%s-%d", prefix, n)
			props := &admin.QueueProperties{}
			if spec.LockDuration > 0 {
				props.LockDuration = ptr(fmt.Sprintf("PT%dS", int(spec.LockDuration.Seconds())))
			}
			if spec.MaxDeliveryCount > 0 {
				props.MaxDeliveryCount = ptr(spec.MaxDeliveryCount)
			}
			if spec.RequiresSession {
				props.RequiresSession = ptr(true)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			if _, err := adm.CreateQueue(ctx, name, &admin.CreateQueueOptions{Properties: props}); err != nil {
				t.Fatalf("CreateQueue %s: %v", name, err)
			}
			t.Cleanup(func() {
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				defer cancel()
				_, _ = adm.DeleteQueue(ctx, name, nil)
			})
			return name
		},
	})
}

func ptr[T any](v T) *T { return &v }
