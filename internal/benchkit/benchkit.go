// Package benchkit holds what the benchmark programs (cmd/hfbench, cmd/sbbench) share: the emulator started
// as a process of its own, CPU time of a process, batch sending, the machine's description and a statistic
// or two. Nothing here runs in `make test` except its own tests.
package benchkit

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus"

	"github.com/holdfast-dev/holdfast/emulator/admin"
)

// Emulator is cmd/sbemulator running as a child process.
type Emulator struct {
	// ConnectionString is the one the emulator printed.
	ConnectionString string
	// AdminURL is the base URL of its admin API (http://127.0.0.1:port).
	AdminURL string
	cmd      *exec.Cmd
	dir      string
}

// StartEmulator starts the sbemulator binary bin on a free loopback port, with its admin API on another, with
// the Config.json configJSON (the official emulator's schema), and waits for its connection string. Close
// stops it.
func StartEmulator(bin, configJSON string) (*Emulator, error) {
	if _, err := os.Stat(bin); err != nil {
		return nil, fmt.Errorf("emulator binary: %w (build it with: go build -o %s ./cmd/sbemulator)", err, bin)
	}
	dir, err := os.MkdirTemp("", "hfbench")
	if err != nil {
		return nil, err
	}
	cfg := filepath.Join(dir, "Config.json")
	if err := os.WriteFile(cfg, []byte(configJSON), 0o644); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	adminAddr, err := freeAddr()
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	cmd := exec.Command(bin, "-addr", "127.0.0.1:0", "-config", cfg, "-log-level", "error", "-admin-addr", adminAddr)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("start emulator: %w", err)
	}
	e := &Emulator{cmd: cmd, dir: dir, AdminURL: "http://" + adminAddr}
	e.ConnectionString, err = readConnectionString(stdout)
	if err != nil {
		e.Close()
		return nil, err
	}
	return e, nil
}

// QueueConfig returns a Config.json with the given queues, each with lock duration lock (at least 1 s) and
// maximum delivery count 10.
func QueueConfig(lock time.Duration, queues ...string) string {
	var qs []string
	for _, q := range queues {
		qs = append(qs, fmt.Sprintf(`{"Name":%q,"Properties":{"LockDuration":"PT%dS","MaxDeliveryCount":10}}`, q, int(lock.Seconds())))
	}
	return `{"UserConfig":{"Namespaces":[{"Name":"sbemulatorns","Queues":[` + strings.Join(qs, ",") +
		`]}],"Logging":{"Type":"Console"}}}`
}

// freeAddr returns a loopback address with a port that was free a moment ago.
func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// Stats returns the emulator's entity counts and counters (GET /stats of its admin API).
func (e *Emulator) Stats(ctx context.Context) (admin.Stats, error) {
	var st admin.Stats
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, e.AdminURL+"/stats", nil)
	if err != nil {
		return st, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return st, fmt.Errorf("emulator stats: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return st, fmt.Errorf("emulator stats: %s", resp.Status)
	}
	return st, json.NewDecoder(resp.Body).Decode(&st)
}

// Entity returns the stats of the entity at path from st (false if there is none).
func Entity(st admin.Stats, path string) (admin.EntityStats, bool) {
	for _, e := range st.Entities {
		if e.Path == path {
			return e, true
		}
	}
	return admin.EntityStats{}, false
}

// CPU returns the CPU time (user + system) the emulator process has used.
func (e *Emulator) CPU() (time.Duration, error) { return ProcessCPU(e.cmd.Process.Pid) }

// Close stops the emulator (SIGTERM) and waits for it.
func (e *Emulator) Close() error {
	_ = e.cmd.Process.Signal(syscall.SIGTERM)
	err := e.cmd.Wait()
	os.RemoveAll(e.dir)
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		return nil // stopped by the signal
	}
	return err
}

func readConnectionString(stdout interface{ Read([]byte) (int, error) }) (string, error) {
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		if line := strings.TrimSpace(sc.Text()); strings.HasPrefix(line, "Endpoint=") {
			go func() { // keep draining so the emulator never blocks on a full pipe; ends when it exits
				for sc.Scan() {
				}
			}()
			return line, nil
		}
	}
	return "", errors.New("emulator exited without printing its connection string")
}

// ProcessCPU returns user+system CPU time of pid from /proc (Linux).
func ProcessCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	fields := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
	utime, err1 := strconv.ParseInt(fields[11], 10, 64)
	stime, err2 := strconv.ParseInt(fields[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, fmt.Errorf("parse /proc/%d/stat: %w", pid, err)
	}
	const clockTicks = 100 // USER_HZ on Linux
	return time.Duration(utime+stime) * time.Second / clockTicks, nil
}

// SelfCPU returns the CPU time (user + system) this process has used.
func SelfCPU() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// Send sends n messages with bodies of size bytes to entity in batches, each with a distinct MessageID
// prefixed by idPrefix.
func Send(ctx context.Context, client *azservicebus.Client, entity string, n, size int, idPrefix string) error {
	s, err := client.NewSender(entity, nil)
	if err != nil {
		return err
	}
	defer s.Close(context.WithoutCancel(ctx))
	body := make([]byte, size)
	for i := range body {
		body[i] = 'x'
	}
	for sent := 0; sent < n; {
		batch, err := s.NewMessageBatch(ctx, nil)
		if err != nil {
			return err
		}
		for sent < n {
			id := idPrefix + strconv.Itoa(sent)
			err := batch.AddMessage(&azservicebus.Message{MessageID: &id, Body: body}, nil)
			if errors.Is(err, azservicebus.ErrMessageTooLarge) {
				break
			}
			if err != nil {
				return err
			}
			sent++
		}
		if err := s.SendMessageBatch(ctx, batch, nil); err != nil {
			return fmt.Errorf("send batch: %w", err)
		}
	}
	return nil
}

// Machine describes this machine in one line: CPU model and clock (from /proc/cpuinfo, with "virtual machine"
// when the CPU flags name a hypervisor), logical CPUs, memory, Go version.
func Machine() string {
	model := "unknown CPU"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		var name, mhz string
		virtual := false
		for line := range strings.Lines(string(b)) {
			k, v, ok := strings.Cut(line, ":")
			if !ok {
				continue
			}
			v = strings.Join(strings.Fields(v), " ")
			switch strings.TrimSpace(k) {
			case "model name":
				if name == "" {
					name = v
				}
			case "cpu MHz":
				if mhz == "" {
					mhz = v
				}
			case "flags":
				virtual = virtual || slices.Contains(strings.Fields(v), "hypervisor")
			}
		}
		if name != "" {
			model = name
			if f, err := strconv.ParseFloat(mhz, 64); err == nil {
				model += fmt.Sprintf(" at %.1f GHz", f/1000)
			}
			if virtual {
				model += " (virtual machine)"
			}
		}
	}
	mem := ""
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		for line := range strings.Lines(string(b)) {
			if f := strings.Fields(line); len(f) >= 2 && f[0] == "MemTotal:" {
				if kb, err := strconv.ParseInt(f[1], 10, 64); err == nil {
					mem = fmt.Sprintf(", %.1f GiB RAM", float64(kb)/(1<<20))
				}
			}
		}
	}
	return fmt.Sprintf("%s, %d logical CPUs%s, %s %s/%s", model, runtime.NumCPU(), mem, runtime.Version(), runtime.GOOS, runtime.GOARCH)
}

// LoadAverage returns the 1-, 5- and 15-minute load averages as /proc/loadavg prints them ("" if unknown).
func LoadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return ""
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return ""
	}
	return strings.Join(f[:3], " ")
}

// Median returns the median of xs (0 for none); xs is not modified.
func Median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// Spread returns the smallest and largest of xs.
func Spread(xs []float64) (lo, hi float64) {
	if len(xs) == 0 {
		return 0, 0
	}
	return slices.Min(xs), slices.Max(xs)
}
