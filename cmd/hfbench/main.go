// Command hfbench measures holdfast against the in-process emulator and prints a table per measurement:
//
//	hfbench renew    P2: renew operations per message per lock window, and locks lost, with 1,000 messages held
//	                 on 15 s locks for several windows
//	hfbench startup  P4: time from exec of the handler binary to accepting connections
//
// `make bench` runs both (plus the Go benchmarks). Nothing here runs in `make test`.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"slices"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus"
	"github.com/holdfast-dev/holdfast/emulator"
	"github.com/holdfast-dev/holdfast/emulator/broker"
	"github.com/holdfast-dev/holdfast/lockrenew"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: hfbench renew|startup [flags]")
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "renew":
		fs := flag.NewFlagSet("renew", flag.ExitOnError)
		n := fs.Int("messages", 1000, "messages held at once")
		lock := fs.Duration("lock", 15*time.Second, "queue lock duration")
		hold := fs.Duration("hold", 60*time.Second, "how long every message is held")
		_ = fs.Parse(os.Args[2:])
		err = renew(*n, *lock, *hold)
	case "startup":
		fs := flag.NewFlagSet("startup", flag.ExitOnError)
		bin := fs.String("handler", "bin/handler", "handler binary")
		runs := fs.Int("runs", 20, "launches")
		_ = fs.Parse(os.Args[2:])
		err = startup(*bin, *runs)
	default:
		err = fmt.Errorf("unknown measurement %q (want renew or startup)", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "hfbench:", err)
		os.Exit(1)
	}
}

// countingRenewer records, per message, how many renew calls were made for each lock (identified by the
// LockedUntil it replaced). One call per lock is the policy's promise; more means a lock was renewed twice.
type countingRenewer struct {
	inner lockrenew.LockRenewer
	mu    sync.Mutex
	calls map[[16]byte]map[time.Time]int // guarded by mu
}

func (c *countingRenewer) RenewMessageLock(ctx context.Context, m *azservicebus.ReceivedMessage, o *azservicebus.RenewMessageLockOptions) error {
	prev := *m.LockedUntil
	c.mu.Lock()
	if c.calls[m.LockToken] == nil {
		c.calls[m.LockToken] = map[time.Time]int{}
	}
	c.calls[m.LockToken][prev]++
	c.mu.Unlock()
	return c.inner.RenewMessageLock(ctx, m, o)
}

func renew(n int, lock, hold time.Duration) error {
	srv, err := emulator.Start(&emulator.Options{})
	if err != nil {
		return err
	}
	defer srv.Close()
	props := broker.DefaultQueueProperties()
	props.LockDuration = lock
	if err := srv.Broker().CreateQueue("renew", props); err != nil {
		return err
	}
	client, err := azservicebus.NewClientFromConnectionString(srv.ConnectionString(), nil)
	if err != nil {
		return err
	}
	defer client.Close(context.Background())
	ctx := context.Background()
	sender, err := client.NewSender("renew", nil)
	if err != nil {
		return err
	}
	for sent := 0; sent < n; {
		batch, err := sender.NewMessageBatch(ctx, nil)
		if err != nil {
			return err
		}
		for sent < n {
			if err := batch.AddMessage(&azservicebus.Message{Body: []byte("x")}, nil); errors.Is(err, azservicebus.ErrMessageTooLarge) {
				break
			} else if err != nil {
				return err
			}
			sent++
		}
		if err := sender.SendMessageBatch(ctx, batch, nil); err != nil {
			return err
		}
	}
	rcv, err := client.NewReceiverForQueue("renew", nil)
	if err != nil {
		return err
	}
	counter := &countingRenewer{inner: rcv, calls: map[[16]byte]map[time.Time]int{}}
	r := lockrenew.New(counter, &lockrenew.Options{MaxRenewalDuration: -1})
	defer r.Close()

	var releases []func()
	for len(releases) < n {
		msgs, err := rcv.ReceiveMessages(ctx, n-len(releases), nil)
		if err != nil {
			return err
		}
		for _, m := range msgs {
			_, release := r.Hold(ctx, m)
			releases = append(releases, release)
		}
	}
	<-time.After(hold)
	for _, release := range releases {
		release()
	}
	st := r.Stats()

	locks, calls := 0, 0
	for _, perLock := range counter.calls {
		for _, c := range perLock {
			locks++
			calls += c
		}
	}
	fmt.Printf("| P2: %d messages held %v on %v locks | value |\n|---|---|\n", n, hold, lock)
	fmt.Printf("| renew operations | %d |\n", calls)
	fmt.Printf("| lock windows renewed | %d |\n", locks)
	fmt.Printf("| renew operations per message per lock window | %.3f (goal 1.0) |\n", float64(calls)/float64(locks))
	fmt.Printf("| locks lost | %d (goal 0) |\n", st.LocksLost)
	fmt.Printf("| renewal failures | %d |\n", st.Failures)
	fmt.Printf("| renewal latency mean / max | %v / %v |\n", st.Mean().Round(time.Microsecond), st.LatencyMax.Round(time.Microsecond))
	return nil
}

func startup(bin string, runs int) error {
	if _, err := os.Stat(bin); err != nil {
		return fmt.Errorf("handler binary: %w (build it with: go build -o %s ./handler)", err, bin)
	}
	var times []time.Duration
	for range runs {
		d, err := launchOnce(bin)
		if err != nil {
			return err
		}
		times = append(times, d)
	}
	slices.Sort(times)
	fmt.Printf("| P4: exec → accepting connections (%d launches) | value |\n|---|---|\n", runs)
	fmt.Printf("| median | %v |\n", times[len(times)/2].Round(10*time.Microsecond))
	fmt.Printf("| max | %v (goal ≤ 50 ms) |\n", times[len(times)-1].Round(10*time.Microsecond))
	return nil
}

func launchOnce(bin string) (time.Duration, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	addr := l.Addr().String()
	_, port, _ := net.SplitHostPort(addr)
	l.Close()
	cmd := exec.Command(bin)
	cmd.Env = append(os.Environ(),
		"FUNCTIONS_CUSTOMHANDLER_PORT="+port,
		// A valid configuration; the Service Bus client is created lazily, so nothing needs to listen there.
		"ServiceBusConnection=Endpoint=sb://localhost:1;SharedAccessKeyName=k;SharedAccessKey=v;UseDevelopmentEmulator=true",
		"HOLDFAST_ENTITY=bench",
	)
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return 0, err
	}
	defer func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	}()
	for time.Since(start) < 10*time.Second {
		if c, err := net.DialTimeout("tcp", addr, 100*time.Millisecond); err == nil {
			c.Close()
			return time.Since(start), nil
		}
		time.Sleep(200 * time.Microsecond) // polling a port: there is no event to wait on
	}
	return 0, fmt.Errorf("handler did not accept connections on %s within 10 s", addr)
}
