// Command sbbench measures the emulator: it starts cmd/sbemulator as a separate process, pushes messages
// through send → PeekLock receive → complete with the unmodified azservicebus SDK, and prints messages/s and
// the CPU seconds each process spent, so the emulator's cost per message can be compared with the client's.
//
//	go build -o bin/sbemulator ./cmd/sbemulator && go run ./cmd/sbbench -emulator bin/sbemulator
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus"
)

const queue = "bench"

func main() {
	emulatorBin := flag.String("emulator", "bin/sbemulator", "path to the sbemulator binary")
	messages := flag.Int("messages", 20000, "messages to send, receive and complete")
	size := flag.Int("size", 1024, "body size in bytes")
	receivers := flag.Int("receivers", 4, "concurrent receivers")
	flag.Parse()
	if err := run(*emulatorBin, *messages, *size, *receivers); err != nil {
		fmt.Fprintln(os.Stderr, "sbbench:", err)
		os.Exit(1)
	}
}

func run(bin string, messages, size, receivers int) error {
	dir, err := os.MkdirTemp("", "sbbench")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	cfg := filepath.Join(dir, "Config.json")
	if err := os.WriteFile(cfg, []byte(`{"UserConfig":{"Namespaces":[{"Name":"sbemulatorns","Queues":[{"Name":"`+queue+
		`","Properties":{"LockDuration":"PT1M","MaxDeliveryCount":10}}]}],"Logging":{"Type":"Console"}}}`), 0o644); err != nil {
		return err
	}
	cmd := exec.Command(bin, "-addr", "127.0.0.1:0", "-config", cfg, "-log-level", "error")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start emulator: %w", err)
	}
	defer func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
	}()
	conn, err := readConnectionString(stdout)
	if err != nil {
		return err
	}

	client, err := azservicebus.NewClientFromConnectionString(conn, nil)
	if err != nil {
		return err
	}
	defer client.Close(context.Background())
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()

	emuStart, err := processCPU(cmd.Process.Pid)
	if err != nil {
		return err
	}
	selfStart := selfCPU()
	start := time.Now()

	if err := sendAll(ctx, client, messages, size); err != nil {
		return err
	}
	sent := time.Since(start)
	if err := receiveAll(ctx, client, messages, receivers); err != nil {
		return err
	}
	wall := time.Since(start)

	emuEnd, err := processCPU(cmd.Process.Pid)
	if err != nil {
		return err
	}
	emuCPU, clientCPU := emuEnd-emuStart, selfCPU()-selfStart
	perMsg := func(d time.Duration) string {
		return fmt.Sprintf("%.1f µs", float64(d.Microseconds())/float64(messages))
	}
	fmt.Printf("| measure | value |\n|---|---|\n")
	fmt.Printf("| messages (%d B bodies) | %d |\n", size, messages)
	fmt.Printf("| send phase | %.2f s (%.0f msg/s) |\n", sent.Seconds(), float64(messages)/sent.Seconds())
	fmt.Printf("| send + receive + complete, wall | %.2f s (%.0f msg/s) |\n", wall.Seconds(), float64(messages)/wall.Seconds())
	fmt.Printf("| emulator CPU | %.2f s (%s per message) |\n", emuCPU.Seconds(), perMsg(emuCPU))
	fmt.Printf("| client (SDK) CPU | %.2f s (%s per message) |\n", clientCPU.Seconds(), perMsg(clientCPU))
	fmt.Printf("| emulator CPU / client CPU | %.2f |\n", emuCPU.Seconds()/clientCPU.Seconds())
	return nil
}

func readConnectionString(stdout interface{ Read([]byte) (int, error) }) (string, error) {
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		if line := strings.TrimSpace(sc.Text()); strings.HasPrefix(line, "Endpoint=") {
			go func() { // keep draining so the emulator never blocks on a full pipe
				for sc.Scan() {
				}
			}()
			return line, nil
		}
	}
	return "", errors.New("emulator exited without printing its connection string")
}

func sendAll(ctx context.Context, client *azservicebus.Client, messages, size int) error {
	s, err := client.NewSender(queue, nil)
	if err != nil {
		return err
	}
	defer s.Close(ctx)
	body := make([]byte, size)
	for sent := 0; sent < messages; {
		batch, err := s.NewMessageBatch(ctx, nil)
		if err != nil {
			return err
		}
		for sent < messages {
			err := batch.AddMessage(&azservicebus.Message{Body: body}, nil)
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

func receiveAll(ctx context.Context, client *azservicebus.Client, messages, receivers int) error {
	var (
		mu        sync.Mutex
		remaining = messages
		wg        sync.WaitGroup
		errs      = make([]error, receivers)
	)
	take := func(n int) int {
		mu.Lock()
		defer mu.Unlock()
		if n > remaining {
			n = remaining
		}
		remaining -= n
		return n
	}
	for i := range receivers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r, err := client.NewReceiverForQueue(queue, nil)
			if err != nil {
				errs[i] = err
				return
			}
			defer r.Close(ctx)
			for {
				mu.Lock()
				left := remaining
				mu.Unlock()
				if left == 0 {
					return
				}
				// A bounded wait: the last messages may be in another receiver's hands.
				rctx, cancel := context.WithTimeout(ctx, time.Second)
				msgs, err := r.ReceiveMessages(rctx, 100, nil)
				cancel()
				if err != nil && !errors.Is(err, context.DeadlineExceeded) {
					errs[i] = err
					return
				}
				for _, m := range msgs {
					if err := r.CompleteMessage(ctx, m, nil); err != nil {
						errs[i] = err
						return
					}
				}
				take(len(msgs))
			}
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// processCPU returns user+system CPU time of pid from /proc (Linux).
func processCPU(pid int) (time.Duration, error) {
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

func selfCPU() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
