// Command hfbench measures holdfast and writes the benchmark report:
//
//	hfbench report      every measurement below plus the Go benchmarks, sbbench and hfscale, written to
//	                    BENCHMARKS.md with a headline table (make bench)
//	hfbench throughput  P1: a Service run at the default settings against the raw SDK receive→complete loop,
//	                    side by side in alternating rounds, the emulator in a process of its own
//	hfbench renew       P2: renew requests per lock window and locks lost, 1,000 messages on 15 s locks with
//	                    300 ms injected renew latency, holdfast against two hand-written policies
//	hfbench startup     P4: time from exec of the handler binary to accepting connections
//	hfbench soak        100,000 messages with mixed outcomes through repeated runs of the real handler (make soak)
//
// Each prints Markdown tables. Nothing here runs in `make test`.
package main

import (
	"flag"
	"fmt"
	"os"
	"time"
)

const usage = "usage: hfbench report|throughput|renew|startup|soak [flags] (hfbench <command> -h for the flags)"

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, usage)
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "report":
		fs := flag.NewFlagSet("report", flag.ExitOnError)
		var o reportOptions
		fs.StringVar(&o.out, "out", "BENCHMARKS.md", "the report to write")
		fs.StringVar(&o.goBin, "go", "go", "the go command (Go benchmarks, sbbench, hfscale)")
		fs.StringVar(&o.emulator, "emulator", "bin/sbemulator", "sbemulator binary")
		fs.StringVar(&o.handler, "handler", "bin/handler", "handler binary")
		fs.StringVar(&o.soakFile, "soak", "docs/soak.json", "summary of the last make soak")
		fs.BoolVar(&o.quick, "quick", false, "fewer rounds and messages (a smoke run of the report itself)")
		_ = fs.Parse(os.Args[2:])
		err = report(o)
	case "renew":
		fs := flag.NewFlagSet("renew", flag.ExitOnError)
		n := fs.Int("messages", 1000, "messages held at once, per policy")
		lock := fs.Duration("lock", 15*time.Second, "queue lock duration")
		hold := fs.Duration("hold", 60*time.Second, "how long every message is worked on")
		latency := fs.Duration("latency", 300*time.Millisecond, "delay injected before every $management reply")
		_ = fs.Parse(os.Args[2:])
		_, err = renewP2(os.Stdout, renewOptions{messages: *n, lock: *lock, hold: *hold, latency: *latency})
	case "throughput":
		fs := flag.NewFlagSet("throughput", flag.ExitOnError)
		emu := fs.String("emulator", "bin/sbemulator", "sbemulator binary")
		n := fs.Int("messages", 5000, "messages per path per round")
		rounds := fs.Int("rounds", 7, "rounds (each path once per round)")
		size := fs.Int("size", 1024, "body bytes")
		only := fs.String("only", "", "measure only the paths whose key (raw, service, run) is in this comma-separated list; empty: all")
		prof := fs.String("cpuprofile", "", "write CPU profiles of this process while each path consumes (not while sending) to files with this prefix")
		_ = fs.Parse(os.Args[2:])
		_, err = throughput(os.Stdout, throughputOptions{emulator: *emu, messages: *n, rounds: *rounds, size: *size, only: *only, profile: *prof})
	case "soak":
		fs := flag.NewFlagSet("soak", flag.ExitOnError)
		n := fs.Int("messages", 100000, "messages sent, with mixed outcomes")
		budget := fs.Duration("budget", 10*time.Second, "HOLDFAST_RUN_BUDGET of each run")
		lock := fs.Duration("lock", 5*time.Second, "the queue's lock duration")
		out := fs.String("out", "", "write the summary as JSON to this file (make soak: docs/soak.json)")
		emu := fs.String("emulator", "bin/sbemulator", "sbemulator binary")
		_ = fs.Parse(os.Args[2:])
		var r *SoakResult
		r, err = soak(os.Stdout, soakOptions{emulator: *emu, messages: *n, budget: *budget, lock: *lock, out: *out})
		if r != nil {
			if werr := writeSoak(os.Stdout, r, *out); err == nil {
				err = werr
			}
		}
		if err == nil && (r.Lost != 0 || r.GoroutineMax > r.GoroutineBase) {
			err = fmt.Errorf("soak failed: %d lost, goroutines %d after a run against a baseline of %d", r.Lost, r.GoroutineMax, r.GoroutineBase)
		}
	case "startup":
		fs := flag.NewFlagSet("startup", flag.ExitOnError)
		bin := fs.String("handler", "bin/handler", "handler binary")
		runs := fs.Int("runs", 20, "launches")
		_ = fs.Parse(os.Args[2:])
		_, _, err = startup(os.Stdout, *bin, *runs)
	default:
		fmt.Fprintf(os.Stderr, "hfbench: unknown command %q\n%s\n", os.Args[1], usage)
		os.Exit(2)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "hfbench:", err)
		os.Exit(1)
	}
}
