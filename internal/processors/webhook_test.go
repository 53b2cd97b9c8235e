package processors

import (
	"context"
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus"

	"github.com/holdfast-dev/holdfast/processor"
)

// The tests run the webhook processor against real HTTP servers on loopback (httptest), each answering as a
// case requires.

var webhookNow = time.Date(2026, 11, 22, 4, 0, 0, 0, time.UTC)

func newTestWebhook(t *testing.T, url string, tweak func(*WebhookOptions)) *Webhook {
	t.Helper()
	o := &WebhookOptions{URL: url, Timeout: 5 * time.Second, Now: func() time.Time { return webhookNow }}
	if tweak != nil {
		tweak(o)
	}
	w, err := NewWebhook(o)
	if err != nil {
		t.Fatal(err)
	}
	return w
}

func webhookMsg(deliveryCount uint32) *azservicebus.ReceivedMessage {
	seq := int64(42)
	return &azservicebus.ReceivedMessage{MessageID: "m-1", SequenceNumber: &seq, DeliveryCount: deliveryCount, Body: []byte(`{"a":1}`)}
}

// serve starts a server whose every request is answered by h.
func serve(t *testing.T, h http.HandlerFunc) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv
}

type staticToken struct{ scopes atomic.Value }

func (s *staticToken) GetToken(_ context.Context, o policy.TokenRequestOptions) (azcore.AccessToken, error) {
	s.scopes.Store(strings.Join(o.Scopes, " "))
	return azcore.AccessToken{Token: "tok-123", ExpiresOn: time.Now().Add(time.Hour)}, nil
}

func TestWebhookRequestShape(t *testing.T) {
	type seen struct {
		method string
		header http.Header
		body   []byte
	}
	got := make(chan seen, 1)
	srv := serve(t, func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got <- seen{r.Method, r.Header.Clone(), b}
		w.WriteHeader(http.StatusNoContent)
	})
	cred := &staticToken{}
	w := newTestWebhook(t, srv.URL+"/work?x=1", func(o *WebhookOptions) {
		o.Headers = http.Header{"X-Api-Key": {"k1"}}
		o.Credential, o.Scope = cred, "api://work/.default"
	})
	ct, corr := "application/json", "order 7/ü"
	enq := time.Date(2026, 11, 22, 3, 59, 58, 500_000_000, time.UTC)
	msg := webhookMsg(3)
	msg.ContentType, msg.CorrelationID, msg.EnqueuedTime = &ct, &corr, &enq
	msg.ApplicationProperties = map[string]any{"tenant": "acme", "order id": "a b\r\nX-Evil: 1", "attempt": int64(2), "flag": true}

	if out := w.Process(context.Background(), msg); out.Kind != processor.KindComplete || out.Err != nil {
		t.Fatalf("outcome %+v", out)
	}
	r := <-got
	if r.method != http.MethodPost || string(r.body) != `{"a":1}` {
		t.Fatalf("%s with body %q", r.method, r.body)
	}
	want := map[string]string{
		"Content-Type":               "application/json",
		"X-Holdfast-Message-Id":      "m-1",
		"X-Holdfast-Sequence-Number": "42",
		"X-Holdfast-Delivery-Count":  "3",
		"X-Holdfast-Enqueued-Time":   "2026-11-22T03:59:58.5Z",
		"X-Holdfast-Correlation-Id":  "order%207%2F%C3%BC",
		"X-Holdfast-Prop-Tenant":     "acme",
		"X-Holdfast-Prop-Order%20id": "a%20b%0D%0AX-Evil%3A%201", // no header injection: CR LF arrive encoded
		"X-Holdfast-Prop-Attempt":    "2",
		"X-Holdfast-Prop-Flag":       "true",
		"X-Api-Key":                  "k1",
		"Authorization":              "Bearer tok-123",
	}
	for k, v := range want {
		if g := r.header.Get(k); g != v {
			t.Errorf("%s = %q, want %q", k, g, v)
		}
	}
	if r.header.Get("X-Evil") != "" {
		t.Error("a property value injected a header")
	}
	if s, _ := cred.scopes.Load().(string); s != "api://work/.default" {
		t.Errorf("token scope %q", s)
	}

	// Without a content type the body goes as octet-stream.
	if out := w.Process(context.Background(), webhookMsg(1)); out.Kind != processor.KindComplete {
		t.Fatalf("outcome %+v", out)
	}
	if r := <-got; r.header.Get("Content-Type") != "application/octet-stream" {
		t.Errorf("default content type %q", r.header.Get("Content-Type"))
	}
}

// Each row of the response mapping table.
func TestWebhookStatusMapping(t *testing.T) {
	longBody := strings.Repeat("x", 3000)
	date := webhookNow.Add(90 * time.Second)
	tests := []struct {
		name       string
		status     int
		retryAfter string
		body       string
		kind       processor.Kind
		reason     string
		notBefore  time.Time
		desc       string // dead-letter description
	}{
		{"200", 200, "", "ok", processor.KindComplete, "", time.Time{}, ""},
		{"201", 201, "", "", processor.KindComplete, "", time.Time{}, ""},
		{"204", 204, "", "", processor.KindComplete, "", time.Time{}, ""},
		{"429 seconds", 429, "120", "", processor.KindDefer, "http-429", webhookNow.Add(120 * time.Second), ""},
		{"503 seconds", 503, "7", "", processor.KindDefer, "http-503", webhookNow.Add(7 * time.Second), ""},
		{"429 HTTP date", 429, date.Format(http.TimeFormat), "", processor.KindDefer, "http-429", date, ""},
		{"503 HTTP date", 503, date.Format(http.TimeFormat), "", processor.KindDefer, "http-503", date, ""},
		{"429 date in the past", 429, webhookNow.Add(-time.Hour).Format(http.TimeFormat), "", processor.KindDefer, "http-429", webhookNow, ""},
		{"429 capped", 429, "999999", "", processor.KindDefer, "http-429", webhookNow.Add(DefaultWebhookMaxDefer), ""},
		{"429 without Retry-After", 429, "", "", processor.KindDefer, "http-429", webhookNow.Add(2 * DefaultWebhookRetryBase), ""},
		{"503 bad Retry-After", 503, "soon", "", processor.KindDefer, "http-503", webhookNow.Add(2 * DefaultWebhookRetryBase), ""},
		{"408", 408, "", "slow", processor.KindAbandon, "", time.Time{}, ""},
		{"500", 500, "", "boom", processor.KindAbandon, "", time.Time{}, ""},
		{"502", 502, "", "", processor.KindAbandon, "", time.Time{}, ""},
		{"504", 504, "", "", processor.KindAbandon, "", time.Time{}, ""},
		{"400", 400, "", `{"error":"field x is required"}`, processor.KindDeadLetter, "http-400", time.Time{}, `{"error":"field x is required"}`},
		{"404 empty body", 404, "", "", processor.KindDeadLetter, "http-404", time.Time{}, "404 Not Found"},
		{"409", 409, "", "dup", processor.KindDeadLetter, "http-409", time.Time{}, "dup"},
		{"422 long body", 422, "", longBody, processor.KindDeadLetter, "http-422", time.Time{}, longBody[:WebhookDescriptionBytes]},
		{"301 not followed", 301, "", "", processor.KindAbandon, "", time.Time{}, ""},
		{"501", 501, "", "", processor.KindAbandon, "", time.Time{}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := serve(t, func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path == "/elsewhere" { // where the 301 points: a client that follows it would complete
					w.WriteHeader(http.StatusOK)
					return
				}
				if tt.retryAfter != "" {
					w.Header().Set("Retry-After", tt.retryAfter)
				}
				if tt.status == 301 {
					w.Header().Set("Location", "/elsewhere")
				}
				w.WriteHeader(tt.status)
				_, _ = io.WriteString(w, tt.body)
			})
			out := newTestWebhook(t, srv.URL, nil).Process(context.Background(), webhookMsg(2))
			if out.Kind != tt.kind || out.Reason != tt.reason || !out.NotBefore.Equal(tt.notBefore) {
				t.Fatalf("outcome %+v, want kind %v reason %q not-before %v", out, tt.kind, tt.reason, tt.notBefore)
			}
			if tt.kind == processor.KindDeadLetter && out.Description != tt.desc {
				t.Fatalf("description %q, want %q", out.Description, tt.desc)
			}
			if tt.kind == processor.KindAbandon && out.Err == nil {
				t.Fatal("abandon without an error to log")
			}
			if tt.kind != processor.KindAbandon && out.Validate() != nil {
				t.Fatalf("outcome %+v does not validate: %v", out, out.Validate())
			}
		})
	}
}

// Connection refused, a DNS failure and a TLS failure defer with the exponential not-before.
func TestWebhookUnreachableDefersWithBackoff(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := "http://" + ln.Addr().String() + "/work"
	ln.Close() // nothing listens there now: connection refused

	tlsSrv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	tlsSrv.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshakes are expected
	tlsSrv.StartTLS()
	t.Cleanup(tlsSrv.Close)

	// A resolver that cannot reach any DNS server gives a real *net.DNSError without depending on the
	// machine's DNS.
	noDNS := &http.Client{Transport: &http.Transport{DialContext: (&net.Dialer{Resolver: &net.Resolver{PreferGo: true,
		Dial: func(context.Context, string, string) (net.Conn, error) { return nil, errors.New("no DNS server") }}}).DialContext}}

	tests := []struct {
		name   string
		url    string
		client *http.Client
	}{
		{"connection refused", closed, nil},
		{"DNS", "http://work.holdfast.invalid/x", noDNS},
		{"TLS: certificate of an unknown authority", tlsSrv.URL, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newTestWebhook(t, tt.url, func(o *WebhookOptions) { o.Client = tt.client })
			for dc, want := range map[uint32]time.Duration{1: 30 * time.Second, 2: time.Minute, 4: 4 * time.Minute, 9: time.Hour, 200: time.Hour} {
				out := w.Process(context.Background(), webhookMsg(dc))
				if out.Kind != processor.KindDefer || out.Reason != WebhookUnreachableReason || !out.NotBefore.Equal(webhookNow.Add(want)) {
					t.Fatalf("delivery %d: %+v, want defer %q until now + %v", dc, out, WebhookUnreachableReason, want)
				}
			}
		})
	}
}

// A server that sleeps past the request timeout, or drops the connection, gets the message abandoned; a
// message context that ends (lock lost, budget) aborts the request at once.
func TestWebhookTimeoutsAndDroppedConnections(t *testing.T) {
	release := make(chan struct{})
	var aborted atomic.Int32
	slow := serve(t, func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.ReadAll(r.Body) // the server notices a closed connection once the body is read
		select {
		case <-release:
		case <-r.Context().Done():
			aborted.Add(1)
		}
	})
	defer close(release)
	drop := serve(t, func(w http.ResponseWriter, r *http.Request) {
		c, _, err := w.(http.Hijacker).Hijack()
		if err == nil {
			c.Close()
		}
	})
	half := serve(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "100")
		w.WriteHeader(200)
		_, _ = io.WriteString(w, "only part")
		c, _, err := w.(http.Hijacker).Hijack()
		if err == nil {
			c.Close()
		}
	})

	// The URL's query may hold a key (a function key, a SAS): the outcome's error, which the run logs, names the
	// endpoint without it. Mutation: keeping the client's error as it is shows "code=s3cret".
	const key = "?code=s3cret"
	t.Run("timeout", func(t *testing.T) {
		start := time.Now()
		out := newTestWebhook(t, slow.URL+key, func(o *WebhookOptions) { o.Timeout = 300 * time.Millisecond }).Process(context.Background(), webhookMsg(1))
		if out.Kind != processor.KindAbandon || out.Err == nil || time.Since(start) > 5*time.Second {
			t.Fatalf("outcome %+v after %v", out, time.Since(start))
		}
		if e := out.Err.Error(); strings.Contains(e, "s3cret") || !strings.Contains(e, slow.URL) {
			t.Fatalf("error %q: want the endpoint named without its query", e)
		}
	})
	t.Run("dropped connection", func(t *testing.T) {
		out := newTestWebhook(t, drop.URL+key, nil).Process(context.Background(), webhookMsg(1))
		if out.Kind != processor.KindAbandon || out.Err == nil || strings.Contains(out.Err.Error(), "s3cret") {
			t.Fatalf("outcome %+v", out)
		}
	})
	t.Run("2xx with a truncated body still completes", func(t *testing.T) {
		// The status line decides; the work was done.
		if out := newTestWebhook(t, half.URL, nil).Process(context.Background(), webhookMsg(1)); out.Kind != processor.KindComplete {
			t.Fatalf("outcome %+v", out)
		}
	})
	t.Run("message context ends", func(t *testing.T) {
		lost := errors.New("lock lost")
		ctx, cancel := context.WithCancelCause(context.Background())
		time.AfterFunc(200*time.Millisecond, func() { cancel(lost) })
		start := time.Now()
		out := newTestWebhook(t, slow.URL, func(o *WebhookOptions) { o.Timeout = time.Minute }).Process(ctx, webhookMsg(1))
		if out.Kind != processor.KindAbandon || !errors.Is(out.Err, lost) || time.Since(start) > 5*time.Second {
			t.Fatalf("outcome %+v after %v, want abandon with the context's cause at once", out, time.Since(start))
		}
		deadline := time.Now().Add(5 * time.Second)
		for aborted.Load() == 0 && time.Now().Before(deadline) {
			time.Sleep(5 * time.Millisecond) // polling a condition
		}
		if aborted.Load() == 0 {
			t.Fatal("the server never saw the request aborted")
		}
	})
}

// A large response body is not read past the limit.
func TestWebhookReadsResponseWithALimit(t *testing.T) {
	var written atomic.Int64
	var wg sync.WaitGroup
	wg.Add(1)
	srv := serve(t, func(w http.ResponseWriter, r *http.Request) {
		defer wg.Done()
		w.WriteHeader(200)
		chunk := make([]byte, 32<<10)
		for range 1024 { // 32 MiB if the client read it all
			n, err := w.Write(chunk)
			written.Add(int64(n))
			if err != nil {
				return
			}
		}
	})
	if out := newTestWebhook(t, srv.URL, nil).Process(context.Background(), webhookMsg(1)); out.Kind != processor.KindComplete {
		t.Fatalf("outcome %+v", out)
	}
	wg.Wait() // the handler ends when the client closed the connection
	if n := written.Load(); n >= 32<<20 {
		t.Fatalf("the server wrote the whole %d-byte body: the client read it all", n)
	}
}

func TestRetryAfter(t *testing.T) {
	now := webhookNow
	for v, want := range map[string]time.Time{
		"0":  now,
		"30": now.Add(30 * time.Second),
		now.Add(time.Hour).Format(http.TimeFormat): now.Add(time.Hour),
		"Sun, 06 Nov 1994 08:49:37 GMT":            now, // in the past: due now
	} {
		if got, ok := retryAfter(v, now); !ok || !got.Equal(want) {
			t.Errorf("Retry-After %q: %v %v, want %v", v, got, ok, want)
		}
	}
	for _, v := range []string{"", "-5", "1.5", "soon", "30s"} {
		if _, ok := retryAfter(v, now); ok {
			t.Errorf("Retry-After %q accepted", v)
		}
	}
}

func TestNewWebhookChecksOptions(t *testing.T) {
	for _, o := range []*WebhookOptions{nil, {URL: "/rel", Timeout: time.Second}, {URL: "ftp://x/y", Timeout: time.Second},
		{URL: "http://x/y"}, {URL: "http://x/y", Timeout: time.Second, Scope: "api://x/.default"}} {
		if _, err := NewWebhook(o); err == nil {
			t.Errorf("%+v accepted", o)
		}
	}
}

// Close drops the kept-alive connections, so a stopped handler leaves no connection (nor its goroutines) open.
func TestWebhookCloseDropsIdleConnections(t *testing.T) {
	closed := make(chan struct{}, 1)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateClosed {
			closed <- struct{}{}
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	w := newTestWebhook(t, srv.URL, nil)
	if out := w.Process(context.Background(), webhookMsg(1)); out.Kind != processor.KindComplete {
		t.Fatalf("outcome %+v", out)
	}
	select {
	case <-closed:
		t.Fatal("the connection closed before Close: it was not kept alive")
	default:
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-closed:
	case <-time.After(5 * time.Second):
		t.Fatal("the idle connection is still open after Close")
	}
}

// A message whose body is not bytes (an AMQP value here) is dead-lettered without a request: POSTing Body would
// send an empty body and, on a 2xx, complete a message whose payload the endpoint never saw. Mutation: without
// the check the endpoint is called with an empty body and the message completes.
func TestWebhookRefusesABodyThatIsNotBytes(t *testing.T) {
	var calls atomic.Int32
	srv := serve(t, func(w http.ResponseWriter, r *http.Request) { calls.Add(1) })
	msg := webhookMsg(1)
	msg.Body = nil // the SDK leaves Body empty for an AMQP value body
	msg.RawAMQPMessage = &azservicebus.AMQPAnnotatedMessage{Body: azservicebus.AMQPAnnotatedMessageBody{Value: "the payload"}}
	out := newTestWebhook(t, srv.URL, nil).Process(context.Background(), msg)
	if out.Kind != processor.KindDeadLetter || out.Reason != WebhookUnsupportedBodyReason || calls.Load() != 0 {
		t.Fatalf("outcome %+v after %d requests, want a dead-letter %q and none", out, calls.Load(), WebhookUnsupportedBodyReason)
	}
}
