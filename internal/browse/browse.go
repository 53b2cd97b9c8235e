// Package browse shows peeked Service Bus messages to people: a body preview for list rows and a detail view
// of body and properties, all as size-limited text. Peeking ("message browsing") locks nothing and settles
// nothing: it returns messages in any state, deferred ones included, and a message can be looked at while
// another receiver holds it (Azure docs, message-browsing).
//
// Bodies and property values are untrusted: they are returned as plain strings in JSON, for the caller to
// show as text (the operator page sets textContent, never markup).
package browse

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus"
	"github.com/labstack/echo/v4"
)

// Size limits.
const (
	// PreviewBytes bounds the body preview of a list row.
	PreviewBytes = 200
	// DetailBytes bounds the body of a detail view.
	DetailBytes = 64 << 10
	// ValueBytes bounds each application property value of a detail view.
	ValueBytes = 4 << 10
)

// Body encodings.
const (
	EncodingText   = "text"   // the bytes are valid UTF-8 and shown as they are
	EncodingBase64 = "base64" // the bytes are not UTF-8 text; Text is their base64
	EncodingNone   = "none"   // the body is not a single data section (AMQP value or sequence); not shown
)

// Body is a message body as size-limited text.
type Body struct {
	Text      string `json:"text"`
	Encoding  string `json:"encoding"`
	Size      int    `json:"size"` // the whole body's length in bytes
	Truncated bool   `json:"truncated"`
}

// BodyIsBytes reports whether m's whole body is in m.Body: one AMQP data section, or none. The SDK fills Body
// only for exactly one data section (azservicebus v1.11.0, message.go), so for an AMQP value, a sequence or
// several data sections (other AMQP clients send those) Body is empty: code that forwards or copies Body would
// silently drop the payload.
func BodyIsBytes(m *azservicebus.ReceivedMessage) bool {
	r := m.RawAMQPMessage
	return r == nil || (len(r.Body.Data) <= 1 && r.Body.Value == nil && r.Body.Sequence == nil)
}

// BodyOf renders at most limit bytes of m's body: as text when they are UTF-8 (cut at a character
// boundary), else as base64. A body that is not bytes (BodyIsBytes) has EncodingNone.
func BodyOf(m *azservicebus.ReceivedMessage, limit int) Body {
	if !BodyIsBytes(m) {
		return Body{Encoding: EncodingNone}
	}
	b := Body{Size: len(m.Body), Encoding: EncodingText}
	data := m.Body
	if len(data) > limit {
		data, b.Truncated = data[:limit], true
		for i := 0; i < utf8.UTFMax-1 && len(data) > 0 && !utf8.Valid(data); i++ {
			data = data[:len(data)-1] // drop a character cut in two
		}
	}
	if utf8.Valid(data) {
		b.Text = string(data)
	} else {
		b.Encoding, b.Text = EncodingBase64, base64.StdEncoding.EncodeToString(data)
	}
	return b
}

// Property is one application property as text.
type Property struct {
	Name      string `json:"name"`
	Type      string `json:"type"`
	Value     string `json:"value"`
	Truncated bool   `json:"truncated,omitempty"`
}

// Message is the detail view of a peeked message. Unset fields are omitted.
type Message struct {
	SequenceNumber             int64      `json:"sequenceNumber"`
	MessageID                  string     `json:"messageId"`
	State                      string     `json:"state"`
	EnqueuedAt                 *time.Time `json:"enqueuedAt,omitempty"`
	ExpiresAt                  *time.Time `json:"expiresAt,omitempty"`
	ScheduledEnqueueTime       *time.Time `json:"scheduledEnqueueTime,omitempty"`
	DeliveryCount              uint32     `json:"deliveryCount"`
	TimeToLive                 string     `json:"timeToLive,omitempty"`
	ContentType                string     `json:"contentType,omitempty"`
	Subject                    string     `json:"subject,omitempty"`
	CorrelationID              string     `json:"correlationId,omitempty"`
	To                         string     `json:"to,omitempty"`
	ReplyTo                    string     `json:"replyTo,omitempty"`
	SessionID                  string     `json:"sessionId,omitempty"`
	PartitionKey               string     `json:"partitionKey,omitempty"`
	DeadLetterReason           string     `json:"deadLetterReason,omitempty"`
	DeadLetterErrorDescription string     `json:"deadLetterErrorDescription,omitempty"`
	DeadLetterSource           string     `json:"deadLetterSource,omitempty"`
	Properties                 []Property `json:"properties"`
	Body                       Body       `json:"body"`
}

// State names a message state as the APIs show it.
func State(s azservicebus.MessageState) string {
	switch s {
	case azservicebus.MessageStateDeferred:
		return "deferred"
	case azservicebus.MessageStateScheduled:
		return "scheduled"
	}
	return "active"
}

// maxTTL: a TimeToLive at least this long is "never expires" (Service Bus's default is TimeSpan.MaxValue).
const maxTTL = 100 * 365 * 24 * time.Hour

// MessageOf renders m with a body of at most bodyLimit bytes and properties sorted by name.
func MessageOf(m *azservicebus.ReceivedMessage, bodyLimit int) Message {
	v := Message{
		MessageID:                  m.MessageID,
		State:                      State(m.State),
		EnqueuedAt:                 utc(m.EnqueuedTime),
		ScheduledEnqueueTime:       utc(m.ScheduledEnqueueTime),
		DeliveryCount:              m.DeliveryCount,
		ContentType:                deref(m.ContentType),
		Subject:                    deref(m.Subject),
		CorrelationID:              deref(m.CorrelationID),
		To:                         deref(m.To),
		ReplyTo:                    deref(m.ReplyTo),
		SessionID:                  deref(m.SessionID),
		PartitionKey:               deref(m.PartitionKey),
		DeadLetterReason:           deref(m.DeadLetterReason),
		DeadLetterErrorDescription: deref(m.DeadLetterErrorDescription),
		DeadLetterSource:           deref(m.DeadLetterSource),
		Properties:                 Properties(m.ApplicationProperties),
		Body:                       BodyOf(m, bodyLimit),
	}
	if m.SequenceNumber != nil {
		v.SequenceNumber = *m.SequenceNumber
	}
	if ttl := m.TimeToLive; ttl != nil && *ttl > 0 && *ttl < maxTTL {
		v.TimeToLive = ttl.String()
		if m.EnqueuedTime != nil {
			exp := m.EnqueuedTime.Add(*ttl)
			v.ExpiresAt = utc(&exp)
		}
	}
	return v
}

// Properties renders application properties as text, sorted by name, each value cut at ValueBytes.
// The dead-letter reason and description, which Service Bus stores as application properties, are shown
// in their own fields and left out here.
func Properties(props map[string]any) []Property {
	out := make([]Property, 0, len(props))
	for k, v := range props {
		if k == "DeadLetterReason" || k == "DeadLetterErrorDescription" {
			continue
		}
		typ, text := valueText(v)
		p := Property{Name: k, Type: typ, Value: text}
		if len(p.Value) > ValueBytes {
			p.Value, p.Truncated = strings.ToValidUTF8(p.Value[:ValueBytes], ""), true
		}
		out = append(out, p)
	}
	slices.SortFunc(out, func(a, b Property) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// valueText names the AMQP-level type of an application property value and renders it.
func valueText(v any) (string, string) {
	switch x := v.(type) {
	case nil:
		return "null", ""
	case string:
		return "string", x
	case bool:
		return "bool", strconv.FormatBool(x)
	case int64, int32, int16, int8, int, uint64, uint32, uint16, uint8, uint:
		return fmt.Sprintf("%T", x), fmt.Sprint(x)
	case float64:
		return "float64", strconv.FormatFloat(x, 'g', -1, 64)
	case float32:
		return "float32", strconv.FormatFloat(float64(x), 'g', -1, 32)
	case time.Time:
		return "timestamp", x.UTC().Format(time.RFC3339Nano)
	case []byte:
		return "binary", base64.StdEncoding.EncodeToString(x)
	case time.Duration:
		return "duration", x.String()
	}
	return fmt.Sprintf("%T", v), fmt.Sprint(v)
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

func utc(t *time.Time) *time.Time {
	if t == nil || t.IsZero() {
		return nil
	}
	u := t.UTC()
	return &u
}

// Peeker browses an entity. *azservicebus.Receiver implements it. PeekMessages returns up to n messages
// with sequence numbers from *FromSequenceNumber on, in any state, without locking them; it blocks until
// the service answers or ctx ends (the SDK retries transient failures). Safe for concurrent use when
// FromSequenceNumber is given.
type Peeker interface {
	PeekMessages(ctx context.Context, n int, options *azservicebus.PeekMessagesOptions) ([]*azservicebus.ReceivedMessage, error)
}

var _ Peeker = (*azservicebus.Receiver)(nil)

// ErrNotFound: no message has the sequence number.
var ErrNotFound = errors.New("browse: no message with that sequence number")

// Peek returns the message with sequence number seq, or ErrNotFound. One peek operation.
func Peek(ctx context.Context, p Peeker, seq int64) (*azservicebus.ReceivedMessage, error) {
	got, err := p.PeekMessages(ctx, 1, &azservicebus.PeekMessagesOptions{FromSequenceNumber: &seq})
	if err != nil {
		return nil, fmt.Errorf("browse: peek %d: %w", seq, err)
	}
	if len(got) == 0 || got[0].SequenceNumber == nil || *got[0].SequenceNumber != seq {
		return nil, fmt.Errorf("%w: %d", ErrNotFound, seq)
	}
	return got[0], nil
}

// RequestError is a refused request: Status is the HTTP status, the message names the problem.
type RequestError struct {
	Status int
	Msg    string
}

func (e *RequestError) Error() string { return e.Msg }

// HTTPStatus returns the HTTP status to answer with.
func (e *RequestError) HTTPStatus() int { return e.Status }

// ParseSequenceNumber reads a sequence number from a query value: a non-negative decimal integer.
func ParseSequenceNumber(s string) (int64, error) {
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 || n == math.MaxInt64 {
		return 0, &RequestError{http.StatusBadRequest, fmt.Sprintf(`"sequenceNumber" must be a non-negative integer, got %.40q`, s)}
	}
	return n, nil
}

// Handler serves GET …?sequenceNumber=N: the detail view of the message peeked from p (body cut at
// DetailBytes). Refusals are returned as *RequestError (400, 404 when there is no such message, 405), which
// implement HTTPStatus() for the server's error handler; a failed peek is returned wrapped (500).
func Handler(p Peeker) echo.HandlerFunc {
	return func(c echo.Context) error {
		req := c.Request()
		if req.Method != http.MethodGet {
			c.Response().Header().Set("Allow", http.MethodGet)
			return &RequestError{http.StatusMethodNotAllowed, fmt.Sprintf("method %s is not allowed on %s; use GET", req.Method, req.URL.Path)}
		}
		q := req.URL.Query()
		for k := range q {
			if k != "sequenceNumber" && k != "code" { // code: the function key, when passed in the query
				return &RequestError{http.StatusBadRequest, fmt.Sprintf("unknown query parameter %q: use sequenceNumber", k)}
			}
		}
		if !q.Has("sequenceNumber") {
			return &RequestError{http.StatusBadRequest, `missing query parameter "sequenceNumber"`}
		}
		seq, err := ParseSequenceNumber(q.Get("sequenceNumber"))
		if err != nil {
			return err
		}
		m, err := Peek(req.Context(), p, seq)
		if errors.Is(err, ErrNotFound) {
			return &RequestError{http.StatusNotFound, fmt.Sprintf("no message with sequence number %d", seq)}
		}
		if err != nil {
			return err
		}
		return c.JSON(http.StatusOK, MessageOf(m, DetailBytes))
	}
}
