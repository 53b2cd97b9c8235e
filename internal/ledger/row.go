package ledger

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/data/aztables"
)

// State is where a ledger row is in the defer → drain life cycle.
type State string

const (
	// StatePending: the row was written and the message is being deferred (or the process died trying).
	StatePending State = "pending"
	// StateDeferred: the message is deferred and this row indexes it.
	StateDeferred State = "deferred"
	// StateResubmitting: a drain leased the row (until LeaseUntil) and is resubmitting the message.
	StateResubmitting State = "resubmitting"
	// StateProcessing: a timer run claimed the row (until LeaseUntil) because the message is due, and is
	// processing the message.
	StateProcessing State = "processing"
)

func (s State) valid() bool {
	return s == StatePending || s == StateDeferred || s == StateResubmitting || s == StateProcessing
}

// leased reports whether s is held by a drain or a run until the row's LeaseUntil.
func (s State) leased() bool { return s == StateResubmitting || s == StateProcessing }

// Row is one deferred message in the ledger. Zero times mean "not set".
type Row struct {
	Entity         string // entity path (queue, or topic/Subscriptions/sub), decoded from the PartitionKey
	SequenceNumber int64  // the message's sequence number, the RowKey
	State          State
	MessageID      string
	CorrelationID  string
	Subject        string
	Reason         string
	DeferredAt     time.Time // when the row was (last) written for a defer
	NotBefore      time.Time // earliest resubmit
	ExpiresAt      time.Time // enqueued time + TTL; after it the message dead-letters (or vanishes) when received
	DeliveryCount  int64
	ResubmitCount  int64 // how many times the message's lineage was resubmitted before this deferral
	LeaseUntil     time.Time
	LastError      string
	// SessionID is the session of a message of a session-enabled entity (nil otherwise; "" is a session too).
	// Its deferred message can be received, settled and peeked only through a receiver of that session.
	SessionID *string

	// ExpiringSoon is computed on read: ExpiresAt falls within the ledger's expiry warning window.
	ExpiringSoon bool `json:"-"`
	// ETag is the row version that conditional updates and deletes match against.
	ETag azcore.ETag `json:"-"`
}

// SessionRows are the rows of one session, as GroupBySession returns them.
type SessionRows struct {
	SessionID string // "" also for rows without a session
	Rows      []Row
}

// GroupBySession groups rows by session, sessions in the order they first appear, rows in their order.
func GroupBySession(rows []Row) []SessionRows {
	var out []SessionRows
	at := map[string]int{}
	for _, r := range rows {
		sid := ""
		if r.SessionID != nil {
			sid = *r.SessionID
		}
		i, ok := at[sid]
		if !ok {
			i = len(out)
			at[sid] = i
			out = append(out, SessionRows{SessionID: sid})
		}
		out[i].Rows = append(out[i].Rows, r)
	}
	return out
}

// Leasable reports whether a drain or a run may lease r at now: it is deferred, or a previous drain's or
// run's lease ran out. Pending rows are not leasable: their message may not be deferred (Reconcile settles
// which).
func (r Row) Leasable(now time.Time) bool {
	switch {
	case r.State == StateDeferred:
		return true
	case r.State.leased():
		return !now.Before(r.LeaseUntil)
	}
	return false
}

// Column names. Numbers are Edm.Int64, times Edm.DateTime.
const (
	colEntity        = "Entity"
	colSeq           = "SequenceNumber"
	colState         = "State"
	colMessageID     = "MessageId"
	colCorrelationID = "CorrelationId"
	colSubject       = "Subject"
	colReason        = "Reason"
	colDeferredAt    = "DeferredAt"
	colNotBefore     = "NotBefore"
	colExpiresAt     = "ExpiresAt"
	colDeliveryCount = "DeliveryCount"
	colResubmitCount = "ResubmitCount"
	colLeaseUntil    = "LeaseUntil"
	colLastError     = "LastError"
	colSessionID     = "SessionId"
)

// marshalRow renders r as a complete entity (every column, so UpdateModeReplace writes the whole row).
func marshalRow(r Row) ([]byte, error) {
	pk, err := EncodeKey(r.Entity)
	if err != nil {
		return nil, err
	}
	if r.SequenceNumber < 0 {
		return nil, invalid("negative sequence number %d", r.SequenceNumber)
	}
	if !r.State.valid() {
		return nil, invalid("row %d: unknown state %q", r.SequenceNumber, r.State)
	}
	props := map[string]any{
		colEntity:        r.Entity,
		colSeq:           aztables.EDMInt64(r.SequenceNumber),
		colState:         string(r.State),
		colMessageID:     r.MessageID,
		colCorrelationID: r.CorrelationID,
		colSubject:       r.Subject,
		colReason:        r.Reason,
		colDeliveryCount: aztables.EDMInt64(r.DeliveryCount),
		colResubmitCount: aztables.EDMInt64(r.ResubmitCount),
		colLastError:     r.LastError,
	}
	if r.SessionID != nil {
		props[colSessionID] = *r.SessionID
	}
	putTime(props, colDeferredAt, r.DeferredAt)
	putTime(props, colNotBefore, r.NotBefore)
	putTime(props, colExpiresAt, r.ExpiresAt)
	putTime(props, colLeaseUntil, r.LeaseUntil)
	b, err := json.Marshal(aztables.EDMEntity{
		Entity:     aztables.Entity{PartitionKey: pk, RowKey: RowKey(r.SequenceNumber)},
		Properties: props,
	})
	if err != nil {
		return nil, fmt.Errorf("ledger: encode row %d: %w", r.SequenceNumber, err)
	}
	return b, nil
}

// putTime stores t as Edm.DateTime in UTC (the SDK writes a literal Z). A zero t, or one past what the table
// can store (year 9999), leaves the column out: "not set" / "never".
func putTime(props map[string]any, col string, t time.Time) {
	if !t.IsZero() && t.UTC().Year() <= 9999 {
		props[col] = aztables.EDMDateTime(t.UTC())
	}
}

// unmarshalRow parses an entity as returned by Get or List. etag overrides the odata.etag in the body when set.
func unmarshalRow(b []byte, etag azcore.ETag) (Row, error) {
	var e aztables.EDMEntity
	if err := json.Unmarshal(b, &e); err != nil {
		return Row{}, fmt.Errorf("ledger: decode row: %w", err)
	}
	entity, err := DecodeKey(e.PartitionKey)
	if err != nil {
		return Row{}, err
	}
	seq, err := ParseRowKey(e.RowKey)
	if err != nil {
		return Row{}, err
	}
	r := Row{
		Entity:         entity,
		SequenceNumber: seq,
		State:          State(getString(e.Properties, colState)),
		MessageID:      getString(e.Properties, colMessageID),
		CorrelationID:  getString(e.Properties, colCorrelationID),
		Subject:        getString(e.Properties, colSubject),
		Reason:         getString(e.Properties, colReason),
		DeferredAt:     getTime(e.Properties, colDeferredAt),
		NotBefore:      getTime(e.Properties, colNotBefore),
		ExpiresAt:      getTime(e.Properties, colExpiresAt),
		DeliveryCount:  getInt(e.Properties, colDeliveryCount),
		ResubmitCount:  getInt(e.Properties, colResubmitCount),
		LeaseUntil:     getTime(e.Properties, colLeaseUntil),
		LastError:      getString(e.Properties, colLastError),
		ETag:           azcore.ETag(e.ETag),
	}
	if sid, ok := e.Properties[colSessionID].(string); ok {
		r.SessionID = &sid
	}
	if etag != "" {
		r.ETag = etag
	}
	return r, nil
}

func getString(p map[string]any, col string) string {
	s, _ := p[col].(string)
	return s
}

func getTime(p map[string]any, col string) time.Time {
	if t, ok := p[col].(aztables.EDMDateTime); ok {
		return time.Time(t).UTC()
	}
	return time.Time{}
}

// getInt accepts Edm.Int64 and, for rows written by hand, a plain Int32.
func getInt(p map[string]any, col string) int64 {
	switch v := p[col].(type) {
	case aztables.EDMInt64:
		return int64(v)
	case int32:
		return int64(v)
	case float64:
		return int64(v)
	}
	return 0
}
