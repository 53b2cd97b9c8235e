package process_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus"

	"github.com/holdfast-dev/holdfast/internal/process"
	"github.com/holdfast-dev/holdfast/processor"
)

// benchMessages is the number of messages each benchmark iteration sends and then consumes.
const benchMessages = 500

// BenchmarkRunVsRawLoop (P1) compares messages/s of a run with a no-op processor against a hand-written SDK
// receive→complete loop, on the same emulator in the same process. Sending is excluded from the timing.
func BenchmarkRunVsRawLoop(b *testing.B) {
	e := startEnv(b, 10)
	bodies := make([]string, benchMessages)
	for i := range bodies {
		bodies[i] = "x"
	}
	noop := processor.Func(func(context.Context, *azservicebus.ReceivedMessage) processor.Outcome { return processor.Complete() })

	// The run ends only after NoMessageWait without a message; that idle tail is reported separately.
	const idle = 100 * time.Millisecond
	for _, conc := range []int{process.DefaultConcurrency, 32} {
		b.Run(fmt.Sprintf("run/concurrency=%d", conc), func(b *testing.B) {
			rcv := e.receiver(b)
			var consumed int64
			var busy time.Duration
			b.ResetTimer()
			for b.Loop() {
				b.StopTimer()
				e.send(b, bodies...)
				b.StartTimer()
				start := time.Now()
				s, err := process.Run(context.Background(), rcv, noop, &process.Options{Budget: time.Minute,
					Concurrency: conc, NoMessageWait: idle})
				if err != nil || s.Completed != benchMessages {
					b.Fatalf("summary %+v, error %v", s, err)
				}
				busy += time.Since(start) - idle
				consumed += s.Completed
			}
			b.ReportMetric(float64(consumed)/b.Elapsed().Seconds(), "msgs/s")
			b.ReportMetric(float64(consumed)/busy.Seconds(), "msgs/s-excl-idle")
		})
	}

	// The Service settles and renews by lock token over the management link (see splitReceiver).
	b.Run("service", func(b *testing.B) {
		svc := e.newService(b, "1m", noop)
		var consumed int64
		var busy time.Duration
		b.ResetTimer()
		for b.Loop() {
			b.StopTimer()
			e.send(b, bodies...)
			b.StartTimer()
			start := time.Now()
			s, err := svc.Run(context.Background())
			if err != nil || s.Completed != benchMessages {
				b.Fatalf("summary %+v, error %v", s, err)
			}
			busy += time.Since(start) - time.Second // the Service's NoMessageWait
			consumed += s.Completed
		}
		b.ReportMetric(float64(consumed)/b.Elapsed().Seconds(), "msgs/s")
		b.ReportMetric(float64(consumed)/busy.Seconds(), "msgs/s-excl-idle")
	})

	b.Run("raw", func(b *testing.B) {
		rcv := e.receiver(b)
		var consumed int64
		b.ResetTimer()
		for b.Loop() {
			b.StopTimer()
			e.send(b, bodies...)
			b.StartTimer()
			for n := 0; n < benchMessages; {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				msgs, err := rcv.ReceiveMessages(ctx, process.DefaultBatchSize, nil)
				cancel()
				if err != nil && !errors.Is(err, context.DeadlineExceeded) {
					b.Fatal(err)
				}
				for _, m := range msgs {
					if err := rcv.CompleteMessage(context.Background(), m, nil); err != nil {
						b.Fatal(err)
					}
				}
				n += len(msgs)
			}
			consumed += benchMessages
		}
		b.ReportMetric(float64(consumed)/b.Elapsed().Seconds(), "msgs/s")
	})
}
