package drain

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/data/aztables"
	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus"
	"github.com/labstack/echo/v4"

	"github.com/holdfast-dev/holdfast/emulator"
	"github.com/holdfast-dev/holdfast/emulator/broker"
	"github.com/holdfast-dev/holdfast/internal/ledger"
	"github.com/holdfast-dev/holdfast/internal/testenv"
)

func TestMain(m *testing.M) { os.Exit(testenv.Main(m)) }

// errCrashed is what crash hooks return to simulate the process dying.
var errCrashed = errors.New("simulated process death")

// testClock is the drain's injectable clock; tests advance it to run out leases without sleeping.
type testClock struct {
	mu sync.Mutex
	t  time.Time // guarded by mu
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *testClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// envOptions tunes newEnv.
type envOptions struct {
	lock  time.Duration // queue lock duration; 0 = 30 s
	dedup bool          // duplicate detection on the queue
}

// env is an in-process emulator with one queue, a ledger on a fresh Azurite table, and SDK clients.
type env struct {
	srv    *emulator.Server
	queue  string
	client *azservicebus.Client
	sender *azservicebus.Sender // the test's own sender (seeding)
	ledger *ledger.Ledger
	clock  *testClock
	tables string // the Table Storage connection string
	table  string // the ledger's table
}

func newEnv(t testing.TB, o envOptions) *env {
	t.Helper()
	props := broker.DefaultQueueProperties()
	props.LockDuration, props.MaxDeliveryCount = 30*time.Second, 10
	if o.lock > 0 {
		props.LockDuration = o.lock
	}
	props.RequiresDuplicateDetection = o.dedup
	const queue = "orders"
	srv, client := testenv.Emulator(t, queue, props, nil)
	sender, err := client.NewSender(queue, nil)
	if err != nil {
		t.Fatal(err)
	}
	tables, table := testenv.Azurite(t), testenv.TableName(t)
	tc, err := ledger.NewClientFromConnectionString(tables, table, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = tc.Delete(context.Background(), nil) })
	l, err := ledger.New(tc, &ledger.Options{Entity: queue})
	if err != nil {
		t.Fatal(err)
	}
	if err := l.EnsureTable(context.Background()); err != nil {
		t.Fatal(err)
	}
	return &env{srv: srv, queue: queue, client: client, sender: sender, ledger: l, clock: &testClock{t: time.Now()},
		tables: tables, table: table}
}

// ledgerVia returns a second ledger on the env's table whose requests go through out (no retries), so a test
// can take Table Storage down for it alone.
func (e *env) ledgerVia(t testing.TB, out *testenv.Outage) *ledger.Ledger {
	t.Helper()
	tc, err := ledger.NewClientFromConnectionString(e.tables, e.table, &aztables.ClientOptions{
		ClientOptions: policy.ClientOptions{Transport: out, Retry: policy.RetryOptions{MaxRetries: -1}}})
	if err != nil {
		t.Fatal(err)
	}
	l, err := ledger.New(tc, &ledger.Options{Entity: e.queue})
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// receiver opens a peek-lock receiver on the queue, closed at cleanup.
func (e *env) receiver(t testing.TB) *azservicebus.Receiver {
	t.Helper()
	r, err := e.client.NewReceiverForQueue(e.queue, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.Close(context.Background()) })
	return r
}

// service returns a Service on the env with its own receiver and sender; opts may set tuning fields.
func (e *env) service(t testing.TB, opts *Options) *Service {
	t.Helper()
	var o Options
	if opts != nil {
		o = *opts
	}
	if o.Ledger == nil {
		o.Ledger = e.ledger
	}
	recv, send, err := NewClients(e.client, e.queue)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = recv.Close(context.Background())
		_ = send.Close(context.Background())
	})
	if o.Receiver == nil {
		o.Receiver = recv
	}
	if o.Sender == nil {
		o.Sender = send
	}
	if o.Now == nil {
		o.Now = e.clock.Now
	}
	svc, err := New(&o)
	if err != nil {
		t.Fatal(err)
	}
	return svc
}

// stats returns the queue's emulator snapshot.
func (e *env) stats(t testing.TB) broker.EntityStats {
	t.Helper()
	ent, err := e.srv.Broker().Entity(e.queue)
	if err != nil {
		t.Fatal(err)
	}
	return ent.Stats()
}

// original describes a seeded message so tests can check its copy.
type original struct {
	seq   int64
	id    string
	body  string
	index int
}

// seed sends n messages with body, content type, correlation id, subject and properties, receives them and
// defers each through the ledger (notBefore(i), reason "seeded"). It returns them by sequence number.
func (e *env) seed(ctx context.Context, t testing.TB, n int, notBefore func(i int) time.Time) map[int64]original {
	t.Helper()
	for start := 0; start < n; start += 500 {
		batch, err := e.sender.NewMessageBatch(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		for i := start; i < min(start+500, n); i++ {
			err := batch.AddMessage(&azservicebus.Message{
				MessageID:             ptr(fmt.Sprintf("orig-%d", i)),
				Body:                  []byte(fmt.Sprintf("body-%d", i)),
				ContentType:           ptr("text/plain"),
				CorrelationID:         ptr("corr-" + fmt.Sprint(i)),
				Subject:               ptr("subject"),
				ApplicationProperties: map[string]any{"index": int64(i), "tenant": "contoso"},
				TimeToLive:            ptr(14 * 24 * time.Hour), // so that the ledger knows when it expires
			}, nil)
			if err != nil {
				t.Fatal(err)
			}
		}
		if err := e.sender.SendMessageBatch(ctx, batch, nil); err != nil {
			t.Fatal(err)
		}
	}
	r := e.receiver(t)
	out := make(map[int64]original, n)
	var mu sync.Mutex
	for len(out) < n {
		msgs, err := r.ReceiveMessages(ctx, min(250, n-len(out)), nil)
		if err != nil {
			t.Fatal(err)
		}
		errs := make(chan error, len(msgs))
		sem := make(chan struct{}, 16)
		var wg sync.WaitGroup
		for _, m := range msgs {
			i, _ := m.ApplicationProperties["index"].(int64)
			nb := time.Time{}
			if notBefore != nil {
				nb = notBefore(int(i))
			}
			sem <- struct{}{}
			wg.Go(func() {
				defer func() { <-sem }()
				if err := e.ledger.Defer(ctx, r, m, nb, "seeded"); err != nil {
					errs <- err
					return
				}
				mu.Lock()
				out[*m.SequenceNumber] = original{seq: *m.SequenceNumber, id: m.MessageID, body: string(m.Body), index: int(i)}
				mu.Unlock()
			})
		}
		wg.Wait()
		close(errs)
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if st := e.stats(t); st.Deferred != n {
		t.Fatalf("seeded: %d deferred messages, want %d", st.Deferred, n)
	}
	return out
}

// drainQueue receives and completes every active message, and fails if more than max arrive. It returns
// once the emulator reports no active message left.
func (e *env) drainQueue(ctx context.Context, t testing.TB, max int) []*azservicebus.ReceivedMessage {
	t.Helper()
	r := e.receiver(t)
	var got []*azservicebus.ReceivedMessage
	for e.stats(t).Active > 0 {
		msgs, err := r.ReceiveMessages(ctx, 250, nil)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range msgs {
			if err := r.CompleteMessage(ctx, m, nil); err != nil {
				t.Fatal(err)
			}
		}
		got = append(got, msgs...)
		if len(got) > max {
			t.Fatalf("received %d messages, more than the %d expected", len(got), max)
		}
	}
	return got
}

// allRows lists the whole ledger.
func (e *env) allRows(ctx context.Context, t testing.TB) []ledger.Row {
	t.Helper()
	var rows []ledger.Row
	cont := ""
	for {
		page, next, err := e.ledger.List(ctx, 1000, cont)
		if err != nil {
			t.Fatal(err)
		}
		rows = append(rows, page...)
		if next == "" {
			return rows
		}
		cont = next
	}
}

// api serves svc's handler on a test HTTP server.
func api(t testing.TB, svc *Service) string {
	t.Helper()
	e := echo.New()
	NewHandler(svc, nil).Register(e)
	srv := httptest.NewServer(e)
	t.Cleanup(srv.Close)
	return srv.URL
}

// call sends method path body and decodes the JSON answer into out (when non-nil); it returns the status.
func call(ctx context.Context, t testing.TB, method, url string, body []byte, out any) int {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, method, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("%s %s: answer %q is not JSON: %v", method, url, b, err)
		}
	}
	return resp.StatusCode
}

func testCtx(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func ptr[T any](v T) *T { return &v }

// awaitUnlocked waits (polling the emulator, bounded by ctx) until no message of the queue is locked.
func (e *env) awaitUnlocked(ctx context.Context, t testing.TB) {
	t.Helper()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for e.stats(t).Locked > 0 {
		select {
		case <-ctx.Done():
			t.Fatalf("messages still locked: %+v", e.stats(t))
		case <-tick.C:
		}
	}
}
