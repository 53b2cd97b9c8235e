// Command sbbench measures the emulator: it starts cmd/sbemulator as a separate process, pushes messages
// through send → PeekLock receive → complete with the unmodified azservicebus SDK, and prints messages/s and
// the CPU seconds each process spent, so the emulator's cost per message can be compared with the client's.
//
//	go build -o bin/sbemulator ./cmd/sbemulator && go run ./cmd/sbbench -emulator bin/sbemulator
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus"

	"github.com/holdfast-dev/holdfast/internal/benchkit"
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
	emu, err := benchkit.StartEmulator(bin, benchkit.QueueConfig(time.Minute, queue))
	if err != nil {
		return err
	}
	defer emu.Close()
	client, err := azservicebus.NewClientFromConnectionString(emu.ConnectionString, nil)
	if err != nil {
		return err
	}
	defer client.Close(context.Background())
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()

	emuStart, err := emu.CPU()
	if err != nil {
		return err
	}
	selfStart := benchkit.SelfCPU()
	start := time.Now()

	if err := benchkit.Send(ctx, client, queue, messages, size, "m"); err != nil {
		return err
	}
	sent := time.Since(start)
	if err := receiveAll(ctx, client, messages, receivers); err != nil {
		return err
	}
	wall := time.Since(start)

	emuEnd, err := emu.CPU()
	if err != nil {
		return err
	}
	emuCPU, clientCPU := emuEnd-emuStart, benchkit.SelfCPU()-selfStart
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
