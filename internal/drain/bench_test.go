package drain

import (
	"context"
	"fmt"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus"

	"github.com/holdfast-dev/holdfast/internal/testenv"
)

// countingReceiver counts the Service Bus operations the drain makes through it.
type countingReceiver struct {
	Receiver
	receives, completes, deadLetters, peeks atomic.Int64
}

func (c *countingReceiver) ReceiveDeferredMessages(ctx context.Context, seqs []int64, o *azservicebus.ReceiveDeferredMessagesOptions) ([]*azservicebus.ReceivedMessage, error) {
	c.receives.Add(1)
	return c.Receiver.ReceiveDeferredMessages(ctx, seqs, o)
}

func (c *countingReceiver) CompleteMessage(ctx context.Context, m *azservicebus.ReceivedMessage, o *azservicebus.CompleteMessageOptions) error {
	c.completes.Add(1)
	return c.Receiver.CompleteMessage(ctx, m, o)
}

func (c *countingReceiver) DeadLetterMessage(ctx context.Context, m *azservicebus.ReceivedMessage, o *azservicebus.DeadLetterOptions) error {
	c.deadLetters.Add(1)
	return c.Receiver.DeadLetterMessage(ctx, m, o)
}

func (c *countingReceiver) PeekMessages(ctx context.Context, n int, o *azservicebus.PeekMessagesOptions) ([]*azservicebus.ReceivedMessage, error) {
	c.peeks.Add(1)
	return c.Receiver.PeekMessages(ctx, n, o)
}

// countingSender counts batch sends (NewMessageBatch makes no request once the link is open).
type countingSender struct {
	Sender
	sends atomic.Int64
}

func (c *countingSender) SendMessageBatch(ctx context.Context, b *azservicebus.MessageBatch, o *azservicebus.SendMessageBatchOptions) error {
	c.sends.Add(1)
	return c.Sender.SendMessageBatch(ctx, b, o)
}

func (c *countingReceiver) ops() int64 {
	return c.receives.Load() + c.completes.Load() + c.deadLetters.Load() + c.peeks.Load()
}

// BenchmarkResubmit (P3) drains n deferred messages through the emulator and Azurite: wall time per drain,
// Service Bus operations per resubmitted message (receive-by-sequence-number calls + batch sends + completes
// + peeks, counted at the client as sbops/msg, and as the emulator answered them as emu-ops/msg: its
// management requests, which include CBS token renewals, plus the batch sends), and the peak heap and RSS while draining. Seeding is not timed. Run with
// -benchtime=1x; the 10,000-message cases take a minute or more to seed.
func BenchmarkResubmit(b *testing.B) {
	cases := []struct{ n, page int }{{1000, DefaultPageSize}, {10000, DefaultPageSize}, {10000, MaxPageSize}}
	for _, c := range cases {
		b.Run(fmt.Sprintf("n=%d/page=%d", c.n, c.page), func(b *testing.B) {
			benchResubmit(b, c.n, c.page)
		})
	}
}

func benchResubmit(b *testing.B, n, page int) {
	ctx := testCtx(b, 15*time.Minute)
	var wall time.Duration
	var ops, sends, receives, completes int64
	var emuOps int64 // as the emulator saw them: management requests answered + batch sends
	var heap, rssPeak uint64
	var heapGrowth, rssGrowth int64 // peak during the drain minus the level just before it
	for range b.N {
		b.StopTimer()
		e := newEnv(b, envOptions{lock: time.Minute, dedup: true})
		e.seed(ctx, b, n, nil)
		recv := &countingReceiver{Receiver: e.receiver(b)}
		snd, err := e.client.NewSender(e.queue, nil)
		if err != nil {
			b.Fatal(err)
		}
		send := &countingSender{Sender: snd}
		svc := e.service(b, &Options{PageSize: page, Receiver: recv, Sender: send})
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		baseHeap, baseRSS := ms.HeapInuse, testenv.RSS()
		mgmt0 := e.srv.Broker().Stats().ManagementCalls
		sampler := testenv.StartPeakSampler()
		b.StartTimer()

		start := time.Now()
		req := Request{Action: ActionResubmit, All: true}
		total := 0
		for {
			res, err := svc.Run(ctx, req)
			if err != nil || len(res.Failed) > 0 {
				b.Fatalf("drain: %v, failed %v", err, res.Failed)
			}
			total += res.Resubmitted
			if req.Continuation = res.Continuation; req.Continuation == "" {
				break
			}
		}
		wall += time.Since(start)

		b.StopTimer()
		sampler.Stop()
		_ = snd.Close(ctx)
		if total != n {
			b.Fatalf("resubmitted %d of %d", total, n)
		}
		if st := e.stats(b); st.Active != n || st.Deferred != 0 {
			b.Fatalf("after the drain: %+v", st)
		}
		ops += recv.ops() + send.sends.Load()
		emuOps += int64(e.srv.Broker().Stats().ManagementCalls-mgmt0) + send.sends.Load()
		sends += send.sends.Load()
		receives += recv.receives.Load()
		completes += recv.completes.Load()
		heap, rssPeak = max(heap, sampler.Heap), max(rssPeak, sampler.RSS)
		heapGrowth = max(heapGrowth, int64(sampler.Heap)-int64(baseHeap))
		rssGrowth = max(rssGrowth, int64(sampler.RSS)-int64(baseRSS))
		b.StartTimer()
	}
	msgs := float64(n * b.N)
	b.ReportMetric(float64(ops)/msgs, "sbops/msg")
	b.ReportMetric(float64(emuOps)/msgs, "emu-ops/msg")
	b.ReportMetric(float64(receives)/float64(b.N), "receive-calls")
	b.ReportMetric(float64(sends)/float64(b.N), "send-calls")
	b.ReportMetric(float64(completes)/float64(b.N), "complete-calls")
	b.ReportMetric(wall.Seconds()/float64(b.N), "drain-s")
	b.ReportMetric(msgs/wall.Seconds(), "msgs/s")
	b.ReportMetric(float64(heap)/(1<<20), "peak-heap-MiB")
	b.ReportMetric(float64(rssPeak)/(1<<20), "peak-rss-MiB")
	b.ReportMetric(float64(heapGrowth)/(1<<20), "heap-growth-MiB")
	b.ReportMetric(float64(rssGrowth)/(1<<20), "rss-growth-MiB")
}
