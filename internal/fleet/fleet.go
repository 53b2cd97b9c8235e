// Package fleet runs several handler processes at once — the real binary in `worker` (or `run-once`) mode —
// against one entity, and collects what each reports: the summary of every run it logged, its exit code and
// the CPU time it used. The multi-instance test and the scale benchmark (cmd/hfscale) use it.
package fleet

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/holdfast-dev/holdfast/internal/process"
)

// Options configure Start.
type Options struct {
	// Binary is the handler executable. Required.
	Binary string
	// Args are its arguments; nil ⇒ ["worker"].
	Args []string
	// Env is every process's whole environment (PATH, HOME and the app settings). Required.
	Env []string
	// N is the number of processes; 0 ⇒ 1.
	N int
	// Log, if set, receives every stdout and stderr line, prefixed with the instance number. It is written
	// from several goroutines at once and must be safe for that.
	Log func(instance int, line string)
}

// Fleet is a set of running handler processes. Its methods are safe for concurrent use.
type Fleet struct {
	procs []*Proc
}

// Proc is one handler process and what it reported so far.
type Proc struct {
	Index int
	cmd   *exec.Cmd
	done  chan struct{} // closed once the process has exited and its output is read
	wg    sync.WaitGroup

	mu        sync.Mutex
	summaries []process.Summary // guarded by mu: one per "run finished" or "run failed" log line
	failed    int               // guarded by mu: runs that ended with "run failed"
	tail      []string          // guarded by mu: the last lines of output, for diagnostics
	waitErr   error             // guarded by mu; set when done is closed
}

const tailLines = 40

// Start launches o.N processes. On error the processes already started are killed and waited for.
func Start(o Options) (*Fleet, error) {
	if o.Binary == "" || len(o.Env) == 0 {
		return nil, errors.New("fleet: Options.Binary and Options.Env are required")
	}
	if o.N <= 0 {
		o.N = 1
	}
	if o.Args == nil {
		o.Args = []string{"worker"}
	}
	f := &Fleet{}
	for i := range o.N {
		p, err := start(o, i)
		if err != nil {
			f.Kill()
			return nil, err
		}
		f.procs = append(f.procs, p)
	}
	return f, nil
}

func start(o Options, i int) (*Proc, error) {
	cmd := exec.Command(o.Binary, o.Args...)
	cmd.Env = o.Env
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("fleet: start %s: %w", o.Binary, err)
	}
	p := &Proc{Index: i, cmd: cmd, done: make(chan struct{})}
	p.wg.Add(2)
	go p.read(stdout, o.Log, true)
	go p.read(stderr, o.Log, false)
	go func() { // owned by p: ends once the process exited and both pipes are drained
		p.wg.Wait()
		err := cmd.Wait()
		p.mu.Lock()
		p.waitErr = err
		p.mu.Unlock()
		close(p.done)
	}()
	return p, nil
}

// logLine is the part of a slog JSON line the fleet reads.
type logLine struct {
	Msg     string           `json:"msg"`
	Summary *process.Summary `json:"summary"`
}

func (p *Proc) read(r io.Reader, log func(int, string), parse bool) {
	defer p.wg.Done()
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		line := sc.Text()
		if log != nil {
			log(p.Index, line)
		}
		var l logLine
		isRun := parse && strings.HasPrefix(line, "{") && json.Unmarshal([]byte(line), &l) == nil &&
			(l.Msg == "run finished" || l.Msg == "run failed") && l.Summary != nil
		p.mu.Lock()
		if isRun {
			p.summaries = append(p.summaries, *l.Summary)
			if l.Msg == "run failed" {
				p.failed++
			}
		}
		p.tail = append(p.tail, line)
		if len(p.tail) > tailLines {
			p.tail = p.tail[len(p.tail)-tailLines:]
		}
		p.mu.Unlock()
	}
	_, _ = io.Copy(io.Discard, r) // a line past the buffer: keep the pipe drained
}

// Procs returns the processes in start order.
func (f *Fleet) Procs() []*Proc { return f.procs }

// Total adds up the summaries of every run of every process.
func (f *Fleet) Total() process.Summary {
	var t process.Summary
	for _, p := range f.procs {
		t = add(t, p.Total())
	}
	return t
}

// Total adds up the summaries of the process's runs so far.
func (p *Proc) Total() process.Summary {
	p.mu.Lock()
	defer p.mu.Unlock()
	var t process.Summary
	for _, s := range p.summaries {
		t = add(t, s)
	}
	return t
}

// Runs is how many runs the process reported, and how many of them failed.
func (p *Proc) Runs() (runs, failed int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.summaries), p.failed
}

// Tail returns the process's last output lines.
func (p *Proc) Tail() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return strings.Join(p.tail, "\n")
}

// CPU is the user + system time the process used; valid once it has exited (after Stop).
func (p *Proc) CPU() time.Duration {
	select {
	case <-p.done:
	default:
		return 0
	}
	st := p.cmd.ProcessState
	if st == nil {
		return 0
	}
	return st.UserTime() + st.SystemTime()
}

// Stop sends SIGTERM to every process still running and waits up to timeout for all of them, killing those
// left. It returns an error naming each process that did not exit 0 (with its last output lines).
func (f *Fleet) Stop(timeout time.Duration) error {
	for _, p := range f.procs {
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
	}
	return f.Wait(timeout)
}

// Wait waits up to timeout for every process to exit by itself (run-once), killing those left, and reports
// the ones that did not exit 0.
func (f *Fleet) Wait(timeout time.Duration) error {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	var errs []error
	for _, p := range f.procs {
		select {
		case <-p.done:
		case <-deadline.C:
			f.Kill()
			<-p.done
			errs = append(errs, fmt.Errorf("instance %d did not exit within %v", p.Index, timeout))
			continue
		}
		p.mu.Lock()
		err := p.waitErr
		p.mu.Unlock()
		if err != nil {
			errs = append(errs, fmt.Errorf("instance %d: %w\n%s", p.Index, err, p.Tail()))
		}
	}
	return errors.Join(errs...)
}

// Kill kills every process and waits for them.
func (f *Fleet) Kill() {
	for _, p := range f.procs {
		_ = p.cmd.Process.Kill()
	}
	for _, p := range f.procs {
		<-p.done
	}
}

// ExitCode is the process's exit code once it has exited, else -1.
func (p *Proc) ExitCode() int {
	select {
	case <-p.done:
		return p.cmd.ProcessState.ExitCode()
	default:
		return -1
	}
}

func add(a, b process.Summary) process.Summary {
	a.Received += b.Received
	a.Completed += b.Completed
	a.Abandoned += b.Abandoned
	a.DeadLettered += b.DeadLettered
	a.Deferred += b.Deferred
	a.Renewals += b.Renewals
	a.LocksLost += b.LocksLost
	a.Stuck += b.Stuck
	a.Due += b.Due
	a.DurationMs += b.DurationMs
	return a
}
