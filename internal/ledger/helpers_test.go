package ledger

import (
	"context"
	"errors"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/data/aztables"
	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus"

	"github.com/holdfast-dev/holdfast/internal/testenv"
)

func TestMain(m *testing.M) { os.Exit(testenv.Main(m)) }

// errCrashed is what crash hooks return to simulate the process dying at a crash point.
var errCrashed = errors.New("simulated process death")

// testClock is an injectable clock; tests advance it to age rows without sleeping.
type testClock struct {
	mu sync.Mutex
	t  time.Time // guarded by mu
}

func newTestClock() *testClock {
	return &testClock{t: time.Date(2026, 11, 22, 4, 0, 0, 0, time.UTC)}
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

// newTable returns a client on a fresh table of the shared Azurite; the table is deleted at cleanup.
func newTable(t *testing.T) *aztables.Client {
	t.Helper()
	return newTableWith(t, nil)
}

// newTableWith is newTable with client options.
func newTableWith(t *testing.T, opts *aztables.ClientOptions) *aztables.Client {
	t.Helper()
	client, err := NewClientFromConnectionString(testenv.Azurite(t), testenv.TableName(t), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = client.Delete(context.Background(), nil) })
	return client
}

// newTestLedger returns a ledger of entity on client with an injected clock.
func newTestLedger(t *testing.T, client *aztables.Client, entity string, clock *testClock) *Ledger {
	t.Helper()
	l, err := New(client, &Options{Entity: entity, Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// unavailableClient returns a client for a closed port that fails fast (no pipeline retries).
func unavailableClient(t *testing.T) *aztables.Client {
	t.Helper()
	client, err := NewClientFromConnectionString(testenv.ClosedPortTables(), "deferred",
		&aztables.ClientOptions{ClientOptions: policy.ClientOptions{Retry: policy.RetryOptions{MaxRetries: -1}}})
	if err != nil {
		t.Fatal(err)
	}
	return client
}

// requestCounter counts the requests a client sends: "batch" for transactions, else by HTTP method.
type requestCounter struct {
	mu sync.Mutex
	n  map[string]int // guarded by mu
}

func (c *requestCounter) Do(req *policy.Request) (*http.Response, error) {
	key := req.Raw().Method
	if strings.HasSuffix(req.Raw().URL.Path, "$batch") {
		key = "batch"
	}
	c.mu.Lock()
	if c.n == nil {
		c.n = map[string]int{}
	}
	c.n[key]++
	c.mu.Unlock()
	return req.Next()
}

func (c *requestCounter) count(key string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n[key]
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// sampleRow is a fully populated row; times have millisecond precision, which the table keeps exactly.
func sampleRow(seq int64, clock *testClock) Row {
	now := clock.Now()
	return Row{
		SequenceNumber: seq,
		State:          StateDeferred,
		MessageID:      "msg-" + RowKey(seq)[15:],
		CorrelationID:  "corr",
		Subject:        "subject",
		Reason:         "waiting for stock",
		DeferredAt:     now,
		NotBefore:      now.Add(time.Hour),
		ExpiresAt:      now.Add(14 * 24 * time.Hour),
		DeliveryCount:  3,
		ResubmitCount:  1,
		LastError:      "",
	}
}

func seqPtr(n int64) *int64 { return &n }

// fakeMessage is a received or peeked message as the SDK would hand it over.
func fakeMessage(seq int64, state azservicebus.MessageState, expires time.Time) *azservicebus.ReceivedMessage {
	m := &azservicebus.ReceivedMessage{
		MessageID:      "msg-" + RowKey(seq)[15:],
		SequenceNumber: seqPtr(seq),
		State:          state,
		DeliveryCount:  1,
	}
	if !expires.IsZero() { // as the SDK computes it: EnqueuedTime + the header's TTL
		ttl := time.Hour
		enqueued := expires.Add(-ttl)
		m.EnqueuedTime, m.TimeToLive, m.ExpiresAt = &enqueued, &ttl, &expires
	}
	return m
}

// noTTLMessage is a message sent without a TTL as the SDK hands it over: the header has none, so TimeToLive is
// 0 and ExpiresAt equals EnqueuedTime.
func noTTLMessage(seq int64, state azservicebus.MessageState, enqueued time.Time) *azservicebus.ReceivedMessage {
	m := fakeMessage(seq, state, time.Time{})
	var ttl time.Duration
	m.EnqueuedTime, m.TimeToLive, m.ExpiresAt = &enqueued, &ttl, &enqueued
	return m
}
