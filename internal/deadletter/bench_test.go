package deadletter

import (
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/holdfast-dev/holdfast/internal/drain"
	"github.com/holdfast-dev/holdfast/internal/testenv"
)

// BenchmarkResubmitDeadLetters drains n dead-lettered messages back to their queue through the in-process
// emulator with {"all":true}, following continuations: wall time per drain, Service Bus operations per
// resubmitted message as the client made them (receives + batch sends + completes + abandons + peeks), and
// the peak heap and RSS growth while draining, 1k against 10k. heap-retained is what is still in use after the
// drain and a GC — mostly the in-process emulator's copy of every resubmitted message — so the drain's own
// working set is heap-growth minus heap-retained. Seeding (send, receive, dead-letter) is not
// timed. Run with -benchtime=1x.
func BenchmarkResubmitDeadLetters(b *testing.B) {
	for _, n := range []int{1000, 10000} {
		b.Run(fmt.Sprintf("n=%d/page=%d", n, DefaultPageSize), func(b *testing.B) { benchDrain(b, n) })
	}
}

func benchDrain(b *testing.B, n int) {
	ctx := testCtx(b, 15*time.Minute)
	var wall time.Duration
	var ops, receives, sends, completes, abandons, peeks int64
	var heapGrowth, rssGrowth, retained int64
	for range b.N {
		b.StopTimer()
		e := newEnv(b, time.Minute)
		e.seed(ctx, b, n)
		var c counts
		svc := e.service(b, nil, &c)
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		baseHeap, baseRSS := ms.HeapInuse, testenv.RSS()
		sampler := testenv.StartPeakSampler()
		b.StartTimer()

		start := time.Now()
		sel := drain.Selection{All: true}
		total := 0
		for {
			res, err := svc.Run(ctx, drain.ActionResubmit, sel)
			if err != nil || len(res.Failed) > 0 {
				b.Fatalf("drain: %v, failed %v", err, res.Failed)
			}
			total += res.Resubmitted
			if sel.Continuation = res.Continuation; sel.Continuation == "" {
				break
			}
		}
		wall += time.Since(start)

		b.StopTimer()
		sampler.Stop()
		runtime.GC()
		runtime.ReadMemStats(&ms)
		retained = max(retained, int64(ms.HeapInuse)-int64(baseHeap)) // mostly the emulator's copies of the messages
		if total != n {
			b.Fatalf("resubmitted %d of %d", total, n)
		}
		if st := e.stats(b, false); st.Active != n {
			b.Fatalf("queue after the drain: %+v", st)
		}
		ops += c.ops()
		receives, sends, completes = receives+c.receives.Load(), sends+c.sends.Load(), completes+c.completes.Load()
		abandons, peeks = abandons+c.abandons.Load(), peeks+c.peeks.Load()
		heapGrowth = max(heapGrowth, int64(sampler.Heap)-int64(baseHeap))
		rssGrowth = max(rssGrowth, int64(sampler.RSS)-int64(baseRSS))
		b.StartTimer()
	}
	msgs := float64(n * b.N)
	runs := float64(b.N)
	b.ReportMetric(float64(ops)/msgs, "sbops/msg")
	b.ReportMetric(float64(receives)/runs, "receive-calls")
	b.ReportMetric(float64(sends)/runs, "send-calls")
	b.ReportMetric(float64(completes)/runs, "complete-calls")
	b.ReportMetric(float64(abandons)/runs, "abandon-calls")
	b.ReportMetric(float64(peeks)/runs, "peek-calls")
	b.ReportMetric(wall.Seconds()/runs, "drain-s")
	b.ReportMetric(msgs/wall.Seconds(), "msgs/s")
	b.ReportMetric(float64(heapGrowth)/(1<<20), "heap-growth-MiB")
	b.ReportMetric(float64(rssGrowth)/(1<<20), "rss-growth-MiB")
	b.ReportMetric(float64(retained)/(1<<20), "heap-retained-MiB")
}
