package drain

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/holdfast-dev/holdfast/internal/ledger"
)

// MaxListTop is the largest page GET /api/deferred returns.
const MaxListTop = 1000

// Item is one ledger row as the list API shows it. Unset times are omitted.
type Item struct {
	SequenceNumber int64      `json:"sequenceNumber"`
	MessageID      string     `json:"messageId"`
	Reason         string     `json:"reason"`
	State          string     `json:"state"`
	DeferredAt     *time.Time `json:"deferredAt,omitempty"`
	NotBefore      *time.Time `json:"notBefore,omitempty"`
	ExpiresAt      *time.Time `json:"expiresAt,omitempty"`
	LeaseUntil     *time.Time `json:"leaseUntil,omitempty"`
	ResubmitCount  int64      `json:"resubmitCount"`
	DeliveryCount  int64      `json:"deliveryCount"`
	ExpiringSoon   bool       `json:"expiringSoon"`
	LastError      string     `json:"lastError,omitempty"`
	// SessionID is the message's session on a session-enabled entity.
	SessionID *string `json:"sessionId,omitempty"`
}

// Page is the answer of a list call. Continuation is "" after the last page.
type Page struct {
	Entity       string `json:"entity"`
	Items        []Item `json:"items"`
	Continuation string `json:"continuation"`
}

// List returns up to top ledger rows (≤ 0 means the ledger's default, at most MaxListTop) after continuation.
// A token the ledger did not issue gives a *RequestError. One Table request.
func (s *Service) List(ctx context.Context, top int, continuation string) (Page, error) {
	if top > MaxListTop {
		return Page{}, badRequest(http.StatusBadRequest, `"top" must be from 1 to %d, got %d`, MaxListTop, top)
	}
	rows, next, err := s.ledger.List(ctx, top, continuation)
	if err != nil {
		if isInvalid(err) {
			return Page{}, badRequest(http.StatusBadRequest, `"continuation" %.40q is not a token this API issued`, continuation)
		}
		return Page{}, fmt.Errorf("drain: list: %w", err)
	}
	p := Page{Entity: s.entity, Items: make([]Item, len(rows)), Continuation: next}
	for i, r := range rows {
		p.Items[i] = itemOf(r)
	}
	return p, nil
}

// reconcileSessions reconciles a session-enabled entity session by session (ledger.ReconcileSessions): the
// sessions Service Bus lists and those of the ledger's rows.
func (s *Service) reconcileSessions(ctx context.Context, o *ledger.ReconcileOptions) (ledger.ReconcileReport, error) {
	listed, err := s.o.ListSessions(ctx)
	if err != nil {
		return ledger.ReconcileReport{Cursor: o.Cursor}, fmt.Errorf("list sessions: %w", err)
	}
	open := func(ctx context.Context, sid string) (ledger.Peeker, func(), error) {
		cctx, cancel := s.call(ctx)
		defer cancel()
		r, release, err := s.o.Sessions(cctx, sid)
		if err != nil {
			return nil, nil, err
		}
		return r, release, nil
	}
	return s.ledger.ReconcileSessions(ctx, open, listed, o)
}

func itemOf(r ledger.Row) Item {
	return Item{
		SequenceNumber: r.SequenceNumber,
		MessageID:      r.MessageID,
		Reason:         r.Reason,
		State:          string(r.State),
		DeferredAt:     timePtr(r.DeferredAt),
		NotBefore:      timePtr(r.NotBefore),
		ExpiresAt:      timePtr(r.ExpiresAt),
		LeaseUntil:     timePtr(r.LeaseUntil),
		ResubmitCount:  r.ResubmitCount,
		DeliveryCount:  r.DeliveryCount,
		ExpiringSoon:   r.ExpiringSoon,
		LastError:      r.LastError,
		SessionID:      r.SessionID,
	}
}

func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	t = t.UTC()
	return &t
}

// ReconcileResult is the answer of a reconcile call: the ledger's report, with Continuation resuming it.
type ReconcileResult struct {
	ledger.ReconcileReport
	Continuation string `json:"continuation"`
	// Partial and Error are set on the answer of a call that failed after it started (HTTP 503).
	Partial bool   `json:"partial,omitempty"`
	Error   string `json:"error,omitempty"`
}

// Reconcile runs one bounded reconciliation pass (Options.ReconcilePages peek pages, at most the budget) from
// continuation ("" = the first message). A token the ledger did not issue gives a *RequestError.
func (s *Service) Reconcile(ctx context.Context, continuation string) (ReconcileResult, error) {
	o := &ledger.ReconcileOptions{
		Cursor:       continuation,
		LockDuration: s.o.ReconcileLockDuration,
		MaxPages:     s.o.ReconcilePages,
		Budget:       s.o.Budget,
	}
	var (
		rep ledger.ReconcileReport
		err error
	)
	if s.o.Sessions != nil {
		rep, err = s.reconcileSessions(ctx, o)
	} else {
		rep, err = s.ledger.Reconcile(ctx, s.recv, o)
	}
	res := ReconcileResult{ReconcileReport: rep, Continuation: rep.Cursor}
	if err != nil {
		if isInvalid(err) {
			return res, badRequest(http.StatusBadRequest, `"continuation" %.40q is not a token this API issued`, continuation)
		}
		return res, fmt.Errorf("drain: reconcile: %w", err)
	}
	return res, nil
}
