package emulator_test

import (
	"context"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus"

	"github.com/holdfast-dev/holdfast/emulator"
	"github.com/holdfast-dev/holdfast/emulator/broker"
)

// testTimeout bounds every SDK call of a test.
const testTimeout = 30 * time.Second

var queueSeq atomic.Int64

// startServer starts an emulator that is closed when the test ends.
func startServer(t testing.TB, opts *emulator.Options) *emulator.Server {
	t.Helper()
	srv, err := emulator.Start(opts)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() {
		if err := srv.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return srv
}

// newQueue creates a queue with a unique name and the given properties (nil: defaults).
func newQueue(t testing.TB, srv *emulator.Server, p *broker.QueueProperties) string {
	t.Helper()
	props := broker.DefaultQueueProperties()
	if p != nil {
		props = *p
	}
	name := "q-" + strings.Map(entityRune, strings.ToLower(t.Name())) + "-" + strconv.FormatInt(queueSeq.Add(1), 10)
	if err := srv.Broker().CreateQueue(name, props); err != nil {
		t.Fatalf("CreateQueue(%q): %v", name, err)
	}
	return name
}

func entityRune(r rune) rune {
	if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
		return r
	}
	return '-'
}

// newClient returns an SDK client for srv, closed when the test ends. Retries are short so that a
// failure shows up quickly.
func newClient(t testing.TB, srv *emulator.Server) *azservicebus.Client {
	t.Helper()
	c, err := azservicebus.NewClientFromConnectionString(srv.ConnectionString(), &azservicebus.ClientOptions{
		RetryOptions: azservicebus.RetryOptions{MaxRetries: 2, RetryDelay: 50 * time.Millisecond, MaxRetryDelay: 200 * time.Millisecond},
	})
	if err != nil {
		t.Fatalf("NewClientFromConnectionString: %v", err)
	}
	t.Cleanup(func() { _ = c.Close(context.Background()) })
	return c
}

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	t.Cleanup(cancel)
	return ctx
}

// receiveN receives exactly n messages or fails the test.
func receiveN(t testing.TB, r *azservicebus.Receiver, n int) []*azservicebus.ReceivedMessage {
	t.Helper()
	ctx := ctxT(t)
	var got []*azservicebus.ReceivedMessage
	for len(got) < n {
		ms, err := r.ReceiveMessages(ctx, n-len(got), nil)
		if err != nil {
			t.Fatalf("ReceiveMessages after %d of %d: %v", len(got), n, err)
		}
		got = append(got, ms...)
	}
	if len(got) != n {
		t.Fatalf("received %d messages, want %d", len(got), n)
	}
	return got
}

func send(t testing.TB, s *azservicebus.Sender, msgs ...*azservicebus.Message) {
	t.Helper()
	for _, m := range msgs {
		if err := s.SendMessage(ctxT(t), m, nil); err != nil {
			t.Fatalf("SendMessage: %v", err)
		}
	}
}

// waitGoroutines waits until the number of goroutines is back to at most baseline.
func waitGoroutines(t testing.TB, baseline int) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		n := runtime.NumGoroutine()
		if n <= baseline {
			return
		}
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			buf = buf[:runtime.Stack(buf, true)]
			t.Fatalf("%d goroutines still running, baseline %d:\n%s", n, baseline, buf)
		}
		runtime.Gosched()
		time.Sleep(10 * time.Millisecond) // polling interval, not synchronization
	}
}
