package processors

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unicode/utf8"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus"

	"github.com/holdfast-dev/holdfast/internal/browse"
	"github.com/holdfast-dev/holdfast/processor"
)

// Request headers the webhook processor sets from the message. Every value taken from the message (ids,
// property names and values) is percent-encoded UTF-8: bytes other than A–Z a–z 0–9 - . _ ~ become %XX, so a
// GUID or a plain word arrives unchanged and anything else decodes with any URL decoder.
const (
	HeaderMessageID      = "X-Holdfast-Message-Id"
	HeaderSequenceNumber = "X-Holdfast-Sequence-Number"
	HeaderDeliveryCount  = "X-Holdfast-Delivery-Count"
	HeaderEnqueuedTime   = "X-Holdfast-Enqueued-Time" // RFC 3339, UTC
	HeaderCorrelationID  = "X-Holdfast-Correlation-Id"
	// HeaderPropPrefix + the encoded property name carries each application property (its case is kept on the
	// wire, but HTTP header names compare case-insensitively).
	HeaderPropPrefix = "X-Holdfast-Prop-"
)

// Webhook defaults and limits.
const (
	// WebhookMaxResponseBody bounds the response bytes read; the rest is discarded with the connection.
	WebhookMaxResponseBody = 64 << 10
	// WebhookDescriptionBytes is how much of a 4xx response body becomes the dead-letter description.
	WebhookDescriptionBytes = 1024
	// DefaultWebhookRetryBase and DefaultWebhookRetryMax shape the exponential not-before of a message whose
	// endpoint could not be reached: base × 2^(delivery count − 1), at most max.
	DefaultWebhookRetryBase = 30 * time.Second
	DefaultWebhookRetryMax  = time.Hour
	// DefaultWebhookMaxDefer caps a Retry-After.
	DefaultWebhookMaxDefer = 24 * time.Hour
)

// Dead-letter and defer reasons of the webhook processor.
const (
	// WebhookUnreachableReason defers a message whose endpoint refused the connection, failed DNS or TLS.
	WebhookUnreachableReason = "webhook-unreachable"
	// WebhookStatusReasonPrefix + the status code is the reason of a 4xx dead-letter and of a 429/503 defer.
	WebhookStatusReasonPrefix = "http-"
	// WebhookUnsupportedBodyReason dead-letters a message whose body is not bytes (an AMQP value, a sequence or
	// several data sections): the webhook POSTs bytes, and would otherwise send an empty body.
	WebhookUnsupportedBodyReason = "webhook-unsupported-body"
)

// WebhookOptions configure NewWebhook. URL and Timeout are required; zero values of the others mean defaults.
type WebhookOptions struct {
	URL     string        // absolute http(s) URL
	Timeout time.Duration // bounds one request, response included
	// Headers are sent with every request (the configuration checked them: no reserved names).
	Headers http.Header
	// Credential and Scope, both set, add "Authorization: Bearer <token>" (a Microsoft Entra token for Scope).
	Credential azcore.TokenCredential
	Scope      string
	// Client sends the requests; nil ⇒ a client on a clone of http.DefaultTransport that keeps up to 64 idle
	// connections to the endpoint and does not follow redirects.
	Client *http.Client
	// Now is the clock for not-before times; nil ⇒ time.Now.
	Now func() time.Time
	// RetryBase, RetryMax: the exponential not-before of an unreachable endpoint. 0 ⇒ 30 s, 1 h.
	RetryBase, RetryMax time.Duration
	// MaxDefer caps a Retry-After. 0 ⇒ 24 h.
	MaxDefer time.Duration
}

// Webhook is the processor that hands each message to an HTTP endpoint: it POSTs the body with the message's
// metadata as headers and maps the response to an outcome (see Process). Safe for concurrent use.
type Webhook struct {
	url      string
	shown    string // url without its query and user information, for errors and logs
	timeout  time.Duration
	headers  http.Header
	cred     azcore.TokenCredential
	scope    string
	client   *http.Client
	now      func() time.Time
	base     time.Duration
	maxRetry time.Duration
	maxDefer time.Duration
}

// NewWebhook checks opts and returns the processor. It does no I/O.
func NewWebhook(opts *WebhookOptions) (*Webhook, error) {
	if opts == nil {
		return nil, errors.New("processors: webhook options are required")
	}
	u, err := url.Parse(opts.URL)
	if err != nil || !u.IsAbs() || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return nil, errors.New("processors: the webhook URL is not an absolute http(s) URL") // it may carry a key
	}
	if opts.Timeout <= 0 {
		return nil, errors.New("processors: webhook timeout must be positive")
	}
	if (opts.Credential == nil) != (opts.Scope == "") {
		return nil, errors.New("processors: webhook credential and scope go together")
	}
	w := &Webhook{url: opts.URL, shown: redactedURL(u), timeout: opts.Timeout, headers: opts.Headers.Clone(), cred: opts.Credential, scope: opts.Scope,
		client: opts.Client, now: opts.Now, base: opts.RetryBase, maxRetry: opts.RetryMax, maxDefer: opts.MaxDefer}
	if w.client == nil {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.MaxIdleConnsPerHost = 64
		w.client = &http.Client{Transport: tr, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	}
	if w.now == nil {
		w.now = time.Now
	}
	if w.base <= 0 {
		w.base = DefaultWebhookRetryBase
	}
	if w.maxRetry <= 0 {
		w.maxRetry = DefaultWebhookRetryMax
	}
	if w.maxDefer <= 0 {
		w.maxDefer = DefaultWebhookMaxDefer
	}
	return w, nil
}

// Process POSTs msg to the endpoint within the timeout and the message's context (a lost lock or the end of
// the run budget aborts the request), then maps the result:
//
//	2xx                                        → complete
//	429, 503 with Retry-After (seconds or date) → defer until then (capped by MaxDefer), reason http-<status>
//	429, 503 without a usable Retry-After       → defer with the exponential not-before, reason http-<status>
//	connection refused, DNS or TLS failure     → defer with the exponential not-before, reason webhook-unreachable
//	408, 500, 502, 504, timeout, dropped conn. → abandon (Service Bus redelivers; MaxDeliveryCount bounds it)
//	other 4xx                                  → dead-letter, reason http-<status>, description the body's first 1 KiB
//	anything else (3xx, other 5xx)             → abandon
//
// A message whose body is not bytes (browse.BodyIsBytes) is dead-lettered with WebhookUnsupportedBodyReason
// without a request.
func (w *Webhook) Process(ctx context.Context, msg *azservicebus.ReceivedMessage) processor.Outcome {
	if !browse.BodyIsBytes(msg) {
		return processor.DeadLetter(WebhookUnsupportedBodyReason,
			"the body is an AMQP value, a sequence or several data sections, not bytes the webhook can POST")
	}
	rctx, cancel := context.WithTimeout(ctx, w.timeout)
	defer cancel()
	req, err := w.request(rctx, msg)
	if err != nil {
		return processor.Abandon(err)
	}
	resp, err := w.client.Do(req)
	if err != nil {
		// The client's error quotes the URL, whose query may hold a key (an Azure Functions ?code=, a SAS): the
		// outcome's error is logged, so it names the endpoint without it.
		var ue *url.Error
		if errors.As(err, &ue) {
			ue.URL = w.shown
		}
		return w.failed(ctx, rctx, msg, err)
	}
	defer resp.Body.Close()
	return w.answer(ctx, msg, resp)
}

// Close closes the idle connections to the endpoint. The handler calls it at shutdown; a Process call after
// it opens new ones.
func (w *Webhook) Close() error {
	w.client.CloseIdleConnections()
	return nil
}

// request builds the POST for msg.
func (w *Webhook) request(ctx context.Context, msg *azservicebus.ReceivedMessage) (*http.Request, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.url, bytes.NewReader(msg.Body))
	if err != nil {
		return nil, fmt.Errorf("webhook: build request: %w", err)
	}
	for k, v := range w.headers {
		req.Header[k] = v
	}
	ct := "application/octet-stream"
	if msg.ContentType != nil && *msg.ContentType != "" {
		ct = *msg.ContentType
	}
	req.Header.Set("Content-Type", ct)
	req.Header.Set(HeaderMessageID, encodeHeaderText(msg.MessageID))
	if msg.SequenceNumber != nil {
		req.Header.Set(HeaderSequenceNumber, strconv.FormatInt(*msg.SequenceNumber, 10))
	}
	req.Header.Set(HeaderDeliveryCount, strconv.FormatUint(uint64(msg.DeliveryCount), 10))
	if msg.EnqueuedTime != nil {
		req.Header.Set(HeaderEnqueuedTime, msg.EnqueuedTime.UTC().Format(time.RFC3339Nano))
	}
	if msg.CorrelationID != nil {
		req.Header.Set(HeaderCorrelationID, encodeHeaderText(*msg.CorrelationID))
	}
	for name, v := range msg.ApplicationProperties {
		// Set as given, not canonicalised, so the name's case reaches the endpoint.
		req.Header[HeaderPropPrefix+encodeHeaderText(name)] = []string{encodeHeaderText(propertyText(v))}
	}
	if w.cred != nil {
		tok, err := w.cred.GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{w.scope}})
		if err != nil {
			return nil, fmt.Errorf("webhook: get a token for %s: %w", w.scope, err)
		}
		req.Header.Set("Authorization", "Bearer "+tok.Token)
	}
	return req, nil
}

// failed maps a request that got no response. ctx is the message's context, rctx the request's.
func (w *Webhook) failed(ctx, rctx context.Context, msg *azservicebus.ReceivedMessage, err error) processor.Outcome {
	switch {
	case ctx.Err() != nil:
		return processor.Abandon(fmt.Errorf("webhook: request aborted: %w", context.Cause(ctx)))
	case rctx.Err() != nil:
		return processor.Abandon(fmt.Errorf("webhook: no answer within %v: %w", w.timeout, err))
	case unreachable(err):
		return processor.Defer(w.backoff(msg), WebhookUnreachableReason)
	default: // the connection dropped, or another transient failure after connecting
		return processor.Abandon(fmt.Errorf("webhook: %w", err))
	}
}

// redactedURL is u without its user information and query: what errors and logs may show of the endpoint.
func redactedURL(u *url.URL) string {
	v := *u
	v.User = nil
	if v.RawQuery != "" || v.ForceQuery {
		v.RawQuery, v.ForceQuery = "…", false
	}
	v.Fragment, v.RawFragment = "", ""
	return v.String()
}

// unreachable reports a failure to reach the endpoint at all: DNS, connecting (refused, no route), TLS.
func unreachable(err error) bool {
	var dnsErr *net.DNSError
	var opErr *net.OpError
	var certErr *tls.CertificateVerificationError
	var unknownCA x509.UnknownAuthorityError
	var hostErr x509.HostnameError
	var invalidCert x509.CertificateInvalidError
	var recordErr tls.RecordHeaderError
	var alert tls.AlertError
	return errors.As(err, &dnsErr) || errors.Is(err, syscall.ECONNREFUSED) ||
		(errors.As(err, &opErr) && opErr.Op == "dial") ||
		errors.As(err, &certErr) || errors.As(err, &unknownCA) || errors.As(err, &hostErr) ||
		errors.As(err, &invalidCert) || errors.As(err, &recordErr) || errors.As(err, &alert)
}

// answer maps a response.
func (w *Webhook) answer(ctx context.Context, msg *azservicebus.ReceivedMessage, resp *http.Response) processor.Outcome {
	code := resp.StatusCode
	reason := WebhookStatusReasonPrefix + strconv.Itoa(code)
	switch {
	case code >= 200 && code < 300:
		// Read (a bounded part of) the body so the connection can be reused; the status decides.
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, WebhookMaxResponseBody))
		return processor.Complete()
	case code == http.StatusTooManyRequests || code == http.StatusServiceUnavailable:
		if at, ok := retryAfter(resp.Header.Get("Retry-After"), w.now()); ok {
			return processor.Defer(min2(at, w.now().Add(w.maxDefer)), reason)
		}
		return processor.Defer(w.backoff(msg), reason)
	case code == http.StatusRequestTimeout || code == http.StatusInternalServerError ||
		code == http.StatusBadGateway || code == http.StatusGatewayTimeout:
		if body := w.bodyPrefix(resp); body != "" {
			return processor.Abandon(fmt.Errorf("webhook: %s: %s", resp.Status, body))
		}
		return processor.Abandon(fmt.Errorf("webhook: %s", resp.Status))
	case code >= 400 && code < 500:
		desc := w.bodyPrefix(resp)
		if desc == "" {
			desc = resp.Status
		}
		return processor.DeadLetter(reason, desc)
	default:
		return processor.Abandon(fmt.Errorf("webhook: unexpected %s", resp.Status))
	}
}

// bodyPrefix reads the first WebhookDescriptionBytes of the body as valid UTF-8.
func (w *Webhook) bodyPrefix(resp *http.Response) string {
	b, _ := io.ReadAll(io.LimitReader(resp.Body, WebhookDescriptionBytes))
	for len(b) > 0 && !utf8.Valid(b) { // a rune cut at the limit
		b = b[:len(b)-1]
	}
	return strings.ToValidUTF8(strings.TrimSpace(string(b)), "\uFFFD")
}

// backoff is the exponential not-before of msg: RetryBase × 2^(delivery count − 1), at most RetryMax.
func (w *Webhook) backoff(msg *azservicebus.ReceivedMessage) time.Time {
	n := max(int(msg.DeliveryCount), 1) - 1
	d := w.maxRetry
	if n < 62 {
		if f := float64(w.base) * math.Pow(2, float64(n)); f < float64(w.maxRetry) {
			d = time.Duration(f)
		}
	}
	return w.now().Add(d)
}

// retryAfter parses a Retry-After value: delay-seconds or an HTTP-date (RFC 9110 §10.2.3).
func retryAfter(v string, now time.Time) (time.Time, bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return time.Time{}, false
	}
	if n, err := strconv.ParseUint(v, 10, 32); err == nil {
		return now.Add(time.Duration(n) * time.Second), true
	}
	if t, err := http.ParseTime(v); err == nil {
		if t.Before(now) {
			t = now
		}
		return t, true
	}
	return time.Time{}, false
}

func min2(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

// propertyText renders an application property value.
func propertyText(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case []byte:
		return string(x)
	case time.Time:
		return x.UTC().Format(time.RFC3339Nano)
	case nil:
		return ""
	default:
		return fmt.Sprint(x)
	}
}

// encodeHeaderText percent-encodes every byte of s other than A–Z a–z 0–9 - . _ ~.
func encodeHeaderText(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '.' || c == '_' || c == '~' {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteString(strings.ToUpper(hex.EncodeToString([]byte{c})))
	}
	return b.String()
}
