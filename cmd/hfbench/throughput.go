package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime/pprof"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus"

	"github.com/holdfast-dev/holdfast/internal/benchkit"
	"github.com/holdfast-dev/holdfast/internal/config"
	"github.com/holdfast-dev/holdfast/internal/process"
	"github.com/holdfast-dev/holdfast/processor"
)

// throughputOptions configure P1.
type throughputOptions struct {
	emulator string // sbemulator binary
	messages int    // per path per round
	rounds   int
	size     int    // body bytes
	only     string // comma-separated path keys; empty: all
	profile  string // CPU profile file prefix; empty: none
}

// p1Summary is the headline of P1: the Service path's steady-state ratio to the raw loop, median and spread
// over the rounds (zero when the Service path was not measured).
type p1Summary struct {
	ratio, lo, hi float64
	rounds        int
	rawLo, rawHi  float64 // the raw loop's steady rate, smallest and largest over the rounds: the noise
	rawMedian     float64
}

// pathResult is one path's measurement in one round.
type pathResult struct {
	steady    float64       // messages/s between the 10th and the 90th percentile of the per-message timestamps
	whole     float64       // messages/s over the whole call, link set-up included, the idle tail excluded
	clientCPU time.Duration // this process, over the whole call
	emuCPU    time.Duration // the emulator process, over the whole call
}

// p1Path is one way of consuming the queue. It receives and settles n messages, calling mark once per
// message when it is handled (the raw loop: after its complete returns; a run: when the processor is called),
// and returns the time it spent idle at its end (a run's empty-queue wait), which the whole-call figure leaves
// out.
type p1Path struct {
	key, name string
	run       func(ctx context.Context, n int, mark func()) (idle time.Duration, err error)
}

// throughput (P1) compares, side by side in one process and in interleaved rounds, the production path (a
// Service run at the default batch size and concurrency) with the raw SDK receive→complete loop at the same
// batch size, against the emulator running as a process of its own. Each round sends the messages (not
// timed), then lets one path consume them; the ratio is taken per round, so a change in the machine's load
// affects both sides of a ratio alike.
func throughput(w io.Writer, o throughputOptions) (p1Summary, error) {
	var sum p1Summary
	const queue = "p1"
	emu, err := benchkit.StartEmulator(o.emulator, benchkit.QueueConfig(time.Minute, queue))
	if err != nil {
		return sum, err
	}
	defer emu.Close()
	client, err := azservicebus.NewClientFromConnectionString(emu.ConnectionString, nil)
	if err != nil {
		return sum, err
	}
	defer client.Close(context.Background())
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()

	cfg, err := config.Load(func(k string) string {
		return map[string]string{config.SettingServiceBus: emu.ConnectionString, config.SettingEntity: queue,
			config.SettingRunBudget: "4m"}[k]
	})
	if err != nil {
		return sum, err
	}
	var markFn atomic.Pointer[func()] // the current path's mark, read by the processors
	noop := processor.Func(func(context.Context, *azservicebus.ReceivedMessage) processor.Outcome {
		(*markFn.Load())()
		return processor.Complete()
	})
	const idleWait = time.Second
	svc, err := process.NewService(&process.ServiceOptions{Config: cfg, Processor: noop, NoMessageWait: idleWait})
	if err != nil {
		return sum, err
	}
	defer svc.Close(context.Background())

	paths := []p1Path{
		{"raw", "raw SDK loop (receive 20, complete each)", func(ctx context.Context, n int, mark func()) (time.Duration, error) {
			return 0, rawLoop(ctx, client, queue, n, cfg.BatchSize, mark)
		}},
		{"service", "holdfast Service run (defaults: batch 20, concurrency 8)", func(ctx context.Context, n int, mark func()) (time.Duration, error) {
			markFn.Store(&mark)
			s, err := svc.Run(ctx)
			if err == nil && s.Completed != int64(n) {
				err = fmt.Errorf("service run completed %d of %d: %s", s.Completed, n, s)
			}
			return idleWait, err
		}},
		{"run", "process.Run on one receiver (defaults)", func(ctx context.Context, n int, mark func()) (time.Duration, error) {
			markFn.Store(&mark)
			rcv, err := client.NewReceiverForQueue(queue, nil)
			if err != nil {
				return 0, err
			}
			defer rcv.Close(context.WithoutCancel(ctx))
			s, err := process.Run(ctx, rcv, noop, &process.Options{Budget: 5 * time.Minute, NoMessageWait: idleWait})
			if err == nil && s.Completed != int64(n) {
				err = fmt.Errorf("run completed %d of %d: %s", s.Completed, n, s)
			}
			return idleWait, err
		}},
	}

	if o.only != "" {
		keep := strings.Split(o.only, ",")
		paths = slices.DeleteFunc(paths, func(p p1Path) bool { return !slices.Contains(keep, p.key) })
	}
	results := make([][]pathResult, len(paths))
	stamps := make([]int64, o.messages)
	for round := range o.rounds {
		for k := range paths {
			i := k
			if round%2 == 1 {
				i = len(paths) - 1 - k // every other round in reverse order, so no path always comes first
			}
			p := paths[i]
			if err := benchkit.Send(ctx, client, queue, o.messages, o.size, fmt.Sprintf("r%dp%d-", round, i)); err != nil {
				return sum, err
			}
			var next atomic.Int64
			start := time.Now()
			mark := func() {
				if k := next.Add(1) - 1; k < int64(len(stamps)) {
					stamps[k] = int64(time.Since(start))
				}
			}
			emu0, err := emu.CPU()
			if err != nil {
				return sum, err
			}
			cpu0 := benchkit.SelfCPU()
			var stopProfile func()
			if o.profile != "" {
				if stopProfile, err = startCPUProfile(fmt.Sprintf("%s.%s.%d", o.profile, p.key, round)); err != nil {
					return sum, err
				}
			}
			idle, err := p.run(ctx, o.messages, mark)
			if stopProfile != nil {
				stopProfile()
			}
			if err != nil {
				return sum, fmt.Errorf("%s: %w", p.name, err)
			}
			wall := time.Since(start) - idle
			emu1, err := emu.CPU()
			if err != nil {
				return sum, err
			}
			if got := next.Load(); got != int64(o.messages) {
				return sum, fmt.Errorf("%s handled %d messages, want %d", p.name, got, o.messages)
			}
			results[i] = append(results[i], pathResult{
				steady:    steadyRate(stamps),
				whole:     float64(o.messages) / wall.Seconds(),
				clientCPU: benchkit.SelfCPU() - cpu0,
				emuCPU:    emu1 - emu0,
			})
		}
	}

	fmt.Fprintf(w, "%d rounds, the paths in turn (every other round in reverse order); each round sends %d messages of %d B per path (not timed), then the path receives and settles them. "+
		"Steady state: the rate between the 10th and the 90th percentile message. Whole call: from the call to the last "+
		"message settled, receiver set-up included, the run's empty-queue wait (%v) excluded. CPU per message over the whole call.\n\n",
		o.rounds, o.messages, o.size, idleWait)
	fmt.Fprintf(w, "| path | steady msg/s (median) | ratio to raw, steady: median (min–max over rounds) | whole-call msg/s | client CPU µs/msg | emulator CPU µs/msg |\n|---|---|---|---|---|---|\n")
	for i, p := range paths {
		var steady, whole, ratios, ccpu, ecpu []float64
		for r, res := range results[i] {
			steady = append(steady, res.steady)
			whole = append(whole, res.whole)
			ratios = append(ratios, res.steady/results[0][r].steady)
			ccpu = append(ccpu, float64(res.clientCPU.Microseconds())/float64(o.messages))
			ecpu = append(ecpu, float64(res.emuCPU.Microseconds())/float64(o.messages))
		}
		lo, hi := benchkit.Spread(ratios)
		switch p.key {
		case "service":
			sum.ratio, sum.lo, sum.hi, sum.rounds = benchkit.Median(ratios), lo, hi, o.rounds
		case "raw":
			sum.rawLo, sum.rawHi = benchkit.Spread(steady)
			sum.rawMedian = benchkit.Median(steady)
		}
		ratio := fmt.Sprintf("**%.2f×** (%.2f–%.2f)", benchkit.Median(ratios), lo, hi)
		if i == 0 {
			ratio = "1 (reference)"
		}
		fmt.Fprintf(w, "| %s | %.0f | %s | %.0f | %.1f | %.1f |\n", p.name, benchkit.Median(steady), ratio,
			benchkit.Median(whole), benchkit.Median(ccpu), benchkit.Median(ecpu))
	}
	if sum.rawMedian > 0 {
		fmt.Fprintf(w, "\nNoise in this run: the raw loop's steady rate ranged over %.0f–%.0f msg/s across the rounds (%+.0f %% / %+.0f %% of its median).\n",
			sum.rawLo, sum.rawHi, 100*(sum.rawLo/sum.rawMedian-1), 100*(sum.rawHi/sum.rawMedian-1))
	}
	return sum, nil
}

// steadyRate returns messages/s between the 10th and the 90th percentile of the timestamps (nanoseconds
// since the start of the call), which leaves out link set-up and the tail.
func steadyRate(stamps []int64) float64 {
	s := slices.Clone(stamps)
	slices.Sort(s)
	lo, hi := len(s)/10, len(s)*9/10
	if hi <= lo || s[hi] == s[lo] {
		return 0
	}
	return float64(hi-lo) / time.Duration(s[hi]-s[lo]).Seconds()
}

// rawLoop is the reference: what a user writes with the SDK alone — receive up to batch messages, complete
// each, repeat until n are done.
func rawLoop(ctx context.Context, client *azservicebus.Client, queue string, n, batch int, mark func()) error {
	rcv, err := client.NewReceiverForQueue(queue, nil)
	if err != nil {
		return err
	}
	defer rcv.Close(context.WithoutCancel(ctx))
	for done := 0; done < n; {
		rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		msgs, err := rcv.ReceiveMessages(rctx, batch, nil)
		cancel()
		if err != nil && !errors.Is(err, context.DeadlineExceeded) {
			return err
		}
		for _, m := range msgs {
			if err := rcv.CompleteMessage(ctx, m, nil); err != nil {
				return err
			}
			mark()
		}
		done += len(msgs)
	}
	return nil
}

// startCPUProfile writes a CPU profile of this process to path until the returned func is called.
func startCPUProfile(path string) (func(), error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, err
	}
	return func() { pprof.StopCPUProfile(); f.Close() }, nil
}
