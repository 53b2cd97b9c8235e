package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/holdfast-dev/holdfast/internal/benchkit"
)

// reportOptions configure `hfbench report`.
type reportOptions struct {
	out      string // BENCHMARKS.md
	goBin    string // the go command, for the Go benchmarks and the programs of other packages
	emulator string // sbemulator binary (P1, P5)
	handler  string // handler binary (P4, many instances)
	soakFile string // the last `make soak` summary
	quick    bool   // fewer rounds and messages: a smoke run of the report itself
}

// section is one part of the report: a heading, its body, and its line in the headline table.
type section struct {
	title, body string
	goal        string // headline: what is measured
	result      string // headline: the figures
	target      string // headline: the goal
	noise       string // a sentence for the report's noise paragraph, if the section measured its noise
	err         error
}

// report runs every measurement in turn and writes BENCHMARKS.md: a headline table of ratios and key figures,
// then one section per measurement with its table and the machine's load while it ran.
func report(o reportOptions) error {
	start := time.Now()
	startLoad := benchkit.LoadAverage()
	p1Rounds, p1Messages, p2Hold, drainFilter := 9, 5000, 60*time.Second, ""
	if o.quick {
		p1Rounds, p1Messages, p2Hold, drainFilter = 2, 1000, 20*time.Second, "/^n=1000$/"
	}
	steps := []func() section{
		func() section { return p1Section(o, p1Rounds, p1Messages) },
		func() section { return p2Section(p2Hold) },
		func() section { return p3Section(o, "^BenchmarkResubmit$"+drainFilter) },
		func() section { return deadLetterSection(o, "^BenchmarkResubmitDeadLetters$"+drainFilter) },
		func() section { return p4Section(o) },
		func() section { return p5Section(o) },
		func() section { return scaleSection(o) },
		func() section { return soakSection(o) },
		func() section { return microSection(o) },
	}
	var sections []section
	for _, step := range steps {
		before := benchkit.LoadAverage()
		t0 := time.Now()
		s := step()
		fmt.Fprintf(os.Stderr, "hfbench report: %s done in %v\n", s.title, time.Since(t0).Round(time.Second))
		if s.err != nil {
			fmt.Fprintf(os.Stderr, "hfbench report: %s: %v\n", s.title, s.err)
			s.body += fmt.Sprintf("\n**Failed:** %v\n", s.err)
			if s.result == "" {
				s.result = "failed (see below)"
			}
		}
		s.body += fmt.Sprintf("\n<sub>Load average (1/5/15 min) before: %s; after: %s; took %v.</sub>\n", before,
			benchkit.LoadAverage(), time.Since(t0).Round(time.Second))
		sections = append(sections, s)
	}

	var b strings.Builder
	fmt.Fprintf(&b, "# Benchmarks\n\n")
	fmt.Fprintf(&b, "Written by `make bench` (`go run ./cmd/hfbench report`) on %s UTC from commit %s, in %v. Do not edit by hand.\n\n",
		start.UTC().Format("2006-01-02 15:04"), commit(), time.Since(start).Round(time.Second))
	fmt.Fprintf(&b, "**Machine:** %s. The emulator runs on the same machine (in process, or as a process of its own where "+
		"CPU is compared), so these are figures of the code, not of Azure. Load average (1/5/15 min) at the start: %s; at the end: %s.\n\n",
		benchkit.Machine(), startLoad, benchkit.LoadAverage())
	fmt.Fprintf(&b, "**Noise.** The machine is shared: other work changes absolute figures between runs by ±30%% or more. "+
		"Comparisons are therefore measured side by side in one run (P1 alternates its paths round by round and reports the "+
		"median ratio and its spread; P2 runs its three policies at the same time); the load average is printed with every "+
		"section. Read absolute numbers as context.")
	for _, s := range sections {
		b.WriteString(s.noise)
	}
	b.WriteString("\n\n")
	fmt.Fprintf(&b, "## Headline\n\n| goal | result | target |\n|---|---|---|\n")
	for _, s := range sections {
		if s.goal != "" {
			fmt.Fprintf(&b, "| %s | %s | %s |\n", s.goal, s.result, s.target)
		}
	}
	for _, s := range sections {
		fmt.Fprintf(&b, "\n## %s\n\n%s", s.title, s.body)
	}
	if err := os.WriteFile(o.out, []byte(b.String()), 0o644); err != nil {
		return err
	}
	var errs []error
	for _, s := range sections {
		if s.err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", s.title, s.err))
		}
	}
	return errors.Join(errs...)
}

func p1Section(o reportOptions, rounds, messages int) section {
	s := section{title: "P1: throughput at default settings", goal: "P1: a Service run at the defaults (batch 20, concurrency 8), no-op processor, vs the raw SDK receive→complete loop, steady state",
		target: "≥ 0.9×"}
	var b strings.Builder
	sum, err := throughput(&b, throughputOptions{emulator: o.emulator, messages: messages, rounds: rounds, size: 1024})
	s.body, s.err = b.String(), err
	if err == nil {
		s.result = fmt.Sprintf("**%.2f×** (median of %d rounds; %.2f–%.2f)", sum.ratio, sum.rounds, sum.lo, sum.hi)
		if sum.rawMedian > 0 {
			s.noise = fmt.Sprintf(" In this run the raw loop's own rate ranged over %.0f–%.0f msg/s across P1's rounds (%+.0f %% / %+.0f %% of its median).",
				sum.rawLo, sum.rawHi, 100*(sum.rawLo/sum.rawMedian-1), 100*(sum.rawHi/sum.rawMedian-1))
		}
	}
	s.body += "\nHow: `hfbench throughput` (`-cpuprofile` writes a profile of each path's consumption). The emulator is " +
		"`cmd/sbemulator` in a process of its own; the client CPU is this process's. The run settles on the receive link " +
		"while it is open and hands a worker's slot back as soon as its processor returns (README, *How it works*).\n"
	return s
}

func p2Section(hold time.Duration) section {
	s := section{title: "P2: lock renewal with 300 ms injected latency", goal: "P2: renew requests per message per lock window and locks lost, 1,000 in flight on 15 s locks, 300 ms renew latency",
		target: "0 lost, fewest requests"}
	var b strings.Builder
	res, err := renewP2(&b, renewOptions{messages: 1000, lock: 15 * time.Second, hold: hold, latency: 300 * time.Millisecond})
	s.body, s.err = b.String(), err
	if err == nil {
		windows := 1000 * hold.Seconds() / 15
		var parts []string
		for i, r := range res {
			name := []string{"holdfast", "fixed 20 s ticker", "lockDuration/2 from receive"}[i]
			txt := fmt.Sprintf("%s %.2f, %d lost", name, float64(r.renewals)/windows, r.lost)
			if i == 0 {
				txt = "**" + txt + "**"
			}
			parts = append(parts, txt)
		}
		s.result = strings.Join(parts, "; ")
	}
	s.body += "\nHow: `hfbench renew`. holdfast is a Service run with HOLDFAST_CONCURRENCY=1000 and HOLDFAST_LOCK_DURATION=15s " +
		"(renewals by lock token, at most max(concurrency, 16) in flight); the comparison policies renew from one goroutine per " +
		"message, unbounded, as hand-written code does, and exist only in the benchmark. A lock window is one lock duration of " +
		"work. On a 15 s lock holdfast's lead (min(remaining/2, 10 s)) is half the lock, so it renews as often as the " +
		"lockDuration/2 ticker; on locks of 20 s and more it renews 10 s before expiry (1.2 requests per window on Azure's " +
		"default 60 s lock, against the ticker's 2). A 20 s ticker on a 15 s lock loses every lock.\n"
	return s
}

// drainSection runs one of the drains' Go benchmarks (P3) and sums it up from its 10,000-message case at the
// default page size (bigCase) against its 1,000-message one.
func drainSection(o reportOptions, s section, bench, pkg, bigCase, smallCase, extra, where string) section {
	s.target = "≤ 1.05 ops/msg, ≤ 30 s, memory bounded by the page"
	rows, raw, err := goBench(o, bench, "1x", pkg)
	s.body, s.err = benchTable(rows, []string{"sbops/msg", "drain-s", "msgs/s", "rss-growth-MiB", "heap-growth-MiB", extra}), err
	if err != nil {
		s.body += "\n```\n" + tail(raw, 30) + "```\n"
	}
	if r := findBench(rows, bigCase); r != nil {
		s.result = fmt.Sprintf("**%.3f** ops/msg; 10k in %.2f s; RSS growth %.1f MiB (1k: %.1f MiB)", r.metrics["sbops/msg"], r.metrics["drain-s"],
			r.metrics["rss-growth-MiB"], metric(findBench(rows, smallCase), "rss-growth-MiB"))
	}
	s.body += "\nHow: `go test -bench '" + bench + "' -benchtime 1x " + pkg + "` (" + where + ").\n"
	return s
}

func p3Section(o reportOptions, bench string) section {
	return drainSection(o, section{title: "P3: draining deferred messages",
		goal: "P3: deferred drain, Service Bus operations per resubmitted message; 10,000 messages"},
		bench, "./internal/drain/", "n=10000/page=100", "n=1000/page=100", "peak-rss-MiB", "in-process emulator and Azurite")
}

func deadLetterSection(o reportOptions, bench string) section {
	return drainSection(o, section{title: "P3: draining the dead-letter queue",
		goal: "P3: dead-letter drain, operations per message; 10,000 messages"},
		bench, "./internal/deadletter/", "n=10000/page=250", "n=1000/page=250", "heap-retained-MiB", "in-process emulator")
}

func p4Section(o reportOptions) section {
	s := section{title: "P4: start-up", goal: "P4: exec of the handler binary → accepting connections", target: "≤ 50 ms"}
	var b strings.Builder
	med, worst, err := startup(&b, o.handler, 20)
	s.body, s.err = b.String(), err
	if err == nil {
		s.result = fmt.Sprintf("median **%v**, max %v (20 launches)", med.Round(100*time.Microsecond), worst.Round(100*time.Microsecond))
	}
	s.body += "\nHow: `hfbench startup -handler bin/handler`.\n"
	return s
}

func p5Section(o reportOptions) section {
	s := section{title: "P5: emulator CPU against client CPU", goal: "P5: emulator CPU per message / SDK client CPU per message (send → receive → complete)",
		target: "≤ 1"}
	out, err := runCmd(o.goBin, "run", "./cmd/sbbench", "-emulator", o.emulator, "-messages", "20000")
	s.body, s.err = out, err
	if m := regexp.MustCompile(`emulator CPU / client CPU \| ([0-9.]+)`).FindStringSubmatch(out); m != nil {
		s.result = fmt.Sprintf("**%s×**", m[1])
	}
	s.body += "\nHow: `go run ./cmd/sbbench -emulator bin/sbemulator -messages 20000` (the emulator in a process of its own, CPU from /proc).\n"
	return s
}

func scaleSection(o reportOptions) section {
	s := section{title: "Many instances", goal: "Many instances: N `handler worker` processes on one queue", target: "every message completed once"}
	if _, err := os.Stat("cmd/hfscale"); err != nil {
		s.body = "*Not measured:* `cmd/hfscale` is not in this tree.\n"
		s.result = "not measured"
		return s
	}
	out, err := runCmd(o.goBin, "run", "./cmd/hfscale", "-handler", o.handler, "-format", "markdown")
	s.body, s.err = out, err
	var parts []string
	for _, r := range markdownRows(out) {
		parts = append(parts, fmt.Sprintf("N=%s: %s msg/s, completed %s, redelivered %s", r["instances"], r["msg/s total"],
			r["completed (instances / emulator)"], r["redelivered"]))
	}
	if len(parts) > 0 {
		s.result = strings.Join(parts, "; ")
	}
	s.body += "\nHow: `go run ./cmd/hfscale -handler bin/handler -format markdown`.\n"
	return s
}

func soakSection(o reportOptions) section {
	s := section{title: "Soak", goal: "Soak: 100,000 messages, mixed outcomes, repeated runs (`make soak`)", target: "0 lost; goroutines back to baseline; RSS bounded"}
	b, err := os.ReadFile(o.soakFile)
	if errors.Is(err, os.ErrNotExist) {
		s.body = fmt.Sprintf("*Not run yet:* `make soak` writes `%s`, which this report includes.\n", o.soakFile)
		s.result = "not run"
		return s
	}
	var r SoakResult
	if err == nil {
		err = json.Unmarshal(b, &r)
	}
	if err != nil {
		s.err = err
		return s
	}
	s.body = fmt.Sprintf("From the last `make soak`, run on **%s UTC** (not by this `make bench`), on %s; load average at its end: %s.\n\n%s",
		r.Date.Format("2006-01-02 15:04"), r.Machine, r.Load, soakTable(&r))
	s.result = fmt.Sprintf("**%d lost** of %d in %d runs; goroutines after every run %d–%d (baseline %d); handler RSS ≤ %.0f MiB (run of %s)",
		r.Lost, r.Messages, r.Runs, r.GoroutineMin, r.GoroutineMax, r.GoroutineBase, r.RSSMaxMiB, r.Date.Format("2006-01-02"))
	s.body += "\nHow: `make soak` (`go run ./cmd/hfbench soak -out " + o.soakFile + "`): the real handler (`holdfast.Run` as a " +
		"custom handler, with the soak's processor and a ledger in Azurite), ProcessQueue invocations over HTTP as the " +
		"Functions host sends them, the emulator (`cmd/sbemulator`) and Azurite as child processes, so the goroutines and " +
		"memory counted are the handler's; the soak fails when a message is lost or a run leaves " +
		"goroutines behind. Classes by message ID: fail-once and panic-once are abandoned on their first delivery, " +
		"defer-once comes back through the due phase, slow messages outlast their 5 s lock.\n"
	return s
}

func microSection(o reportOptions) section {
	s := section{title: "Micro-benchmarks"}
	rows, raw, err := goBench(o, ".", "", "./emulator/amqp/", "./emulator/broker/", "./lockrenew/")
	s.body, s.err = benchTable(rows, []string{"ns/op", "B/op", "allocs/op"}), err
	if err != nil {
		s.body += "\n```\n" + tail(raw, 30) + "```\n"
	}
	s.body += "\nHow: `go test -run '^$' -bench . -benchmem ./emulator/amqp/ ./emulator/broker/ ./lockrenew/`.\n"
	return s
}

// benchRow is one line of `go test -bench` output: its name (without the GOMAXPROCS suffix) and metrics by unit.
type benchRow struct {
	name    string
	metrics map[string]float64
	units   []string // in output order
}

var procSuffix = regexp.MustCompile(`-\d+$`)

// goBench runs `go test -run '^$' -bench pattern -benchmem [-benchtime t] pkgs…` and parses its result lines.
func goBench(o reportOptions, pattern, benchtime string, pkgs ...string) ([]benchRow, string, error) {
	args := []string{"test", "-run", "^$", "-bench", pattern, "-benchmem", "-timeout", "60m"}
	if benchtime != "" {
		args = append(args, "-benchtime", benchtime)
	}
	out, err := runCmd(o.goBin, append(args, pkgs...)...)
	return parseBench(out), out, err
}

// parseBench parses the result lines of `go test -bench` output ("BenchmarkX/sub-2  N  v unit  v unit …").
func parseBench(out string) []benchRow {
	var rows []benchRow
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 4 || !strings.HasPrefix(f[0], "Benchmark") {
			continue
		}
		r := benchRow{name: procSuffix.ReplaceAllString(f[0], ""), metrics: map[string]float64{}}
		for i := 2; i+1 < len(f); i += 2 {
			v, perr := strconv.ParseFloat(f[i], 64)
			if perr != nil {
				break
			}
			r.metrics[f[i+1]] = v
			r.units = append(r.units, f[i+1])
		}
		rows = append(rows, r)
	}
	return rows
}

func findBench(rows []benchRow, suffix string) *benchRow {
	for i := range rows {
		if strings.HasSuffix(rows[i].name, suffix) {
			return &rows[i]
		}
	}
	return nil
}

func metric(r *benchRow, unit string) float64 {
	if r == nil {
		return 0
	}
	return r.metrics[unit]
}

// benchTable renders rows as a Markdown table with the given metric columns (blank where a row lacks one).
func benchTable(rows []benchRow, units []string) string {
	if len(rows) == 0 {
		return "*No benchmark result.*\n"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "| benchmark | %s |\n|---|%s\n", strings.Join(units, " | "), strings.Repeat("---|", len(units)))
	for _, r := range rows {
		cells := make([]string, len(units))
		for i, u := range units {
			if v, ok := r.metrics[u]; ok {
				cells[i] = formatNumber(v)
			}
		}
		fmt.Fprintf(&b, "| %s | %s |\n", r.name, strings.Join(cells, " | "))
	}
	return b.String()
}

// formatNumber prints v with four significant digits, or as a whole number from 1,000 on.
func formatNumber(v float64) string {
	if v >= 1000 || v <= -1000 {
		return strconv.FormatFloat(v, 'f', 0, 64)
	}
	return strconv.FormatFloat(v, 'g', 4, 64)
}

// markdownRows parses the first Markdown table in text into one map per row, keyed by header.
func markdownRows(text string) []map[string]string {
	var head []string
	var rows []map[string]string
	for line := range strings.Lines(text) {
		line = strings.TrimSpace(line)
		if !strings.HasPrefix(line, "|") {
			if head != nil {
				break
			}
			continue
		}
		cells := strings.Split(strings.Trim(line, "|"), "|")
		for i := range cells {
			cells[i] = strings.TrimSpace(cells[i])
		}
		switch {
		case head == nil:
			head = cells
		case strings.HasPrefix(cells[0], "---"):
		default:
			r := map[string]string{}
			for i, c := range cells {
				if i < len(head) {
					r[head[i]] = c
				}
			}
			rows = append(rows, r)
		}
	}
	return rows
}

// runCmd runs name args… in the working directory and returns its standard output (stderr is passed through).
func runCmd(name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Hour)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	var out bytes.Buffer
	cmd.Stdout = io.MultiWriter(&out, os.Stderr)
	cmd.Stderr = os.Stderr
	err := cmd.Run()
	if err != nil {
		err = fmt.Errorf("%s %s: %w", filepath.Base(name), strings.Join(args, " "), err)
	}
	return out.String(), err
}

// tail returns the last n lines of s.
func tail(s string, n int) string {
	lines := strings.SplitAfter(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "")
}

// commit names the checked-out commit (with "+ local changes" when the tree differs), or "unknown".
func commit() string {
	out, err := exec.Command("git", "rev-parse", "--short", "HEAD").Output()
	if err != nil {
		return "unknown"
	}
	c := strings.TrimSpace(string(out))
	// The benchmark outputs themselves (this report, the soak's summary) do not count as local changes.
	st, err := exec.Command("git", "status", "--porcelain", "--untracked-files=no", "--", ".", ":!BENCHMARKS.md", ":!docs/soak.json").Output()
	if err == nil && len(bytes.TrimSpace(st)) > 0 {
		c += " + local changes"
	}
	return c
}
