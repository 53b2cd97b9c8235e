// Command hfscale measures holdfast on many instances at once: for each instance count it fills one emulator
// queue, starts that many `handler worker` processes (the real binary, default settings, demo processor with a
// no-op body) and times them until the emulator has completed every message. It prints one table row per
// instance count: total and per-instance throughput, CPU per message of the handlers and of the emulator, and
// the correctness figures (completions reported by the instances against the emulator's own count,
// redeliveries, locks lost).
//
//	go build -o bin/handler ./handler && go run ./cmd/hfscale -handler bin/handler
//	go run ./cmd/hfscale -handler bin/handler -instances 1,2,4 -messages 20000 -format json
//
// The emulator runs inside this process and every instance on the same machine, so on a machine with few
// cores the total cannot grow with the instance count: read it as the cost of coordination, and the
// per-instance figures as what each instance gets. Nothing here runs in `make test`.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus"

	"github.com/holdfast-dev/holdfast/emulator"
	"github.com/holdfast-dev/holdfast/emulator/broker"
	"github.com/holdfast-dev/holdfast/internal/benchkit"
	"github.com/holdfast-dev/holdfast/internal/fleet"
)

const queue = "scale"

// pollInterval is how often the emulator's completion count is read. Stats walks the whole queue under its
// lock, so polling faster costs the emulator CPU that would show in the figures; the end time is late by at
// most this much.
const pollInterval = 20 * time.Millisecond

func main() {
	bin := flag.String("handler", "bin/handler", "the handler binary")
	messages := flag.Int("messages", 10000, "messages per measurement")
	counts := flag.String("instances", "1,2,4", "instance counts to measure, comma-separated")
	format := flag.String("format", "text", "text (aligned table), markdown or json")
	flag.Parse()
	ns, err := parseCounts(*counts)
	if err == nil && *messages < 1 {
		err = errors.New("-messages must be at least 1")
	}
	if err == nil && *format != "text" && *format != "markdown" && *format != "json" {
		err = fmt.Errorf("-format %q: use text, markdown or json", *format)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "hfscale:", err)
		os.Exit(2)
	}
	var rows []Row
	for _, n := range ns {
		fmt.Fprintf(os.Stderr, "hfscale: %d instance(s), %d messages\n", n, *messages)
		r, err := measure(*bin, n, *messages)
		if err != nil {
			fmt.Fprintln(os.Stderr, "hfscale:", err)
			os.Exit(1)
		}
		rows = append(rows, r)
	}
	if err := write(os.Stdout, *format, rows); err != nil {
		fmt.Fprintln(os.Stderr, "hfscale:", err)
		os.Exit(1)
	}
}

func parseCounts(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 || n > 64 {
			return nil, fmt.Errorf("-instances %q: want counts from 1 to 64, e.g. 1,2,4", s)
		}
		out = append(out, n)
	}
	return out, nil
}

// Row is one measurement.
type Row struct {
	Instances int     `json:"instances"`
	Messages  int     `json:"messages"`
	Seconds   float64 `json:"seconds"`
	// MsgPerSec is messages completed per second by all instances together; PerInstance is that divided by
	// the instance count, and MinShare/MaxShare the smallest and largest share of the messages one instance
	// completed.
	MsgPerSec   float64 `json:"msgPerSec"`
	PerInstance float64 `json:"msgPerSecPerInstance"`
	MinShare    float64 `json:"minShare"`
	MaxShare    float64 `json:"maxShare"`
	// HandlerCPUus and EmulatorCPUus are CPU microseconds per message: all handler processes together, and
	// this process (the emulator, plus the little the measurement itself costs).
	HandlerCPUus  float64 `json:"handlerCpuUsPerMessage"`
	EmulatorCPUus float64 `json:"emulatorCpuUsPerMessage"`
	// Completed is what the instances reported completing, BrokerCompleted what the emulator counted;
	// Redelivered is deliveries beyond one per message; LocksLost what the instances reported.
	Completed       int64  `json:"completed"`
	BrokerCompleted uint64 `json:"brokerCompleted"`
	Redelivered     uint64 `json:"redelivered"`
	LocksLost       int64  `json:"locksLost"`
	CPUs            int    `json:"cpus"`
}

func measure(bin string, n, messages int) (Row, error) {
	srv, err := emulator.Start(&emulator.Options{})
	if err != nil {
		return Row{}, err
	}
	defer srv.Close()
	if err := srv.Broker().CreateQueue(queue, broker.DefaultQueueProperties()); err != nil {
		return Row{}, err
	}
	if err := fill(srv, messages); err != nil {
		return Row{}, err
	}
	entity, err := srv.Broker().Entity(queue)
	if err != nil {
		return Row{}, err
	}
	env := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME"),
		"ServiceBusConnection=" + srv.ConnectionString(), "HOLDFAST_ENTITY=" + queue, "HOLDFAST_PROCESSOR=demo"}

	cpu0 := benchkit.SelfCPU()
	start := time.Now()
	f, err := fleet.Start(fleet.Options{Binary: bin, Env: env, N: n})
	if err != nil {
		return Row{}, err
	}
	deadline := start.Add(10 * time.Minute)
	for entity.Stats().Counters.Completed < uint64(messages) {
		if time.Now().After(deadline) {
			f.Kill()
			return Row{}, fmt.Errorf("%d instances: %+v after 10 minutes", n, entity.Stats())
		}
		time.Sleep(pollInterval)
	}
	elapsed := time.Since(start)
	emuCPU := benchkit.SelfCPU() - cpu0
	if err := f.Stop(time.Minute); err != nil {
		return Row{}, fmt.Errorf("stopping the instances: %w", err)
	}

	st := entity.Stats()
	total := f.Total()
	r := Row{Instances: n, Messages: messages, Seconds: elapsed.Seconds(), CPUs: runtime.NumCPU(),
		Completed: total.Completed, BrokerCompleted: st.Counters.Completed, LocksLost: total.LocksLost, MinShare: 1}
	if st.Counters.Received > uint64(messages) {
		r.Redelivered = st.Counters.Received - uint64(messages)
	}
	r.MsgPerSec = float64(messages) / elapsed.Seconds()
	r.PerInstance = r.MsgPerSec / float64(n)
	var handlerCPU time.Duration
	for _, p := range f.Procs() {
		handlerCPU += p.CPU()
		share := float64(p.Total().Completed) / float64(messages)
		r.MinShare, r.MaxShare = min(r.MinShare, share), max(r.MaxShare, share)
	}
	r.HandlerCPUus = float64(handlerCPU.Microseconds()) / float64(messages)
	r.EmulatorCPUus = float64(emuCPU.Microseconds()) / float64(messages)
	if r.Completed != int64(messages) || r.BrokerCompleted != uint64(messages) {
		return r, fmt.Errorf("%d instances: completed %d by their count, %d by the emulator's, want %d", n, r.Completed, r.BrokerCompleted, messages)
	}
	return r, nil
}

// fill sends messages no-op demo bodies in batches.
func fill(srv *emulator.Server, messages int) error {
	ctx := context.Background()
	client, err := azservicebus.NewClientFromConnectionString(srv.ConnectionString(), nil)
	if err != nil {
		return err
	}
	defer client.Close(ctx)
	sender, err := client.NewSender(queue, nil)
	if err != nil {
		return err
	}
	defer sender.Close(ctx)
	for sent := 0; sent < messages; {
		batch, err := sender.NewMessageBatch(ctx, nil)
		if err != nil {
			return err
		}
		for ; sent < messages; sent++ {
			if err := batch.AddMessage(&azservicebus.Message{Body: []byte(`{}`)}, nil); errors.Is(err, azservicebus.ErrMessageTooLarge) {
				break
			} else if err != nil {
				return err
			}
		}
		if err := sender.SendMessageBatch(ctx, batch, nil); err != nil {
			return err
		}
	}
	return nil
}

func write(w io.Writer, format string, rows []Row) error {
	if format == "json" {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(rows)
	}
	head := []string{"instances", "messages", "seconds", "msg/s total", "msg/s per instance", "share per instance",
		"handler CPU µs/msg", "emulator CPU µs/msg", "completed (instances / emulator)", "redelivered", "locks lost"}
	lines := [][]string{head}
	for _, r := range rows {
		lines = append(lines, []string{
			strconv.Itoa(r.Instances), strconv.Itoa(r.Messages), fmt.Sprintf("%.2f", r.Seconds),
			fmt.Sprintf("%.0f", r.MsgPerSec), fmt.Sprintf("%.0f", r.PerInstance),
			fmt.Sprintf("%.0f–%.0f%%", 100*r.MinShare, 100*r.MaxShare),
			fmt.Sprintf("%.1f", r.HandlerCPUus), fmt.Sprintf("%.1f", r.EmulatorCPUus),
			fmt.Sprintf("%d / %d", r.Completed, r.BrokerCompleted), strconv.FormatUint(r.Redelivered, 10), strconv.FormatInt(r.LocksLost, 10),
		})
	}
	if format == "markdown" {
		for i, l := range lines {
			fmt.Fprintf(w, "| %s |\n", strings.Join(l, " | "))
			if i == 0 {
				fmt.Fprintf(w, "|%s\n", strings.Repeat("---|", len(l)))
			}
		}
	} else {
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		for _, l := range lines {
			fmt.Fprintln(tw, strings.Join(l, "\t"))
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	if len(rows) > 0 {
		fmt.Fprintf(w, "\n%d CPUs; emulator in this process, every instance on the same machine; default batch size and concurrency, no-op processor.\n", rows[0].CPUs)
	}
	return nil
}
