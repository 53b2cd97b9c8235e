package ledger

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/data/aztables"
)

// ErrSessionBusy is what a SessionOpener's error wraps when another receiver holds the session (a run is
// processing it): ReconcileSessions skips it and names it in the report.
var ErrSessionBusy = errors.New("ledger: session is held by another receiver")

// SessionOpener gives a Peeker within one session of a session-enabled entity — a receiver that holds the
// session, since Service Bus peeks a session's messages only through one — and the function that releases
// it. A session another receiver holds gives an error wrapping ErrSessionBusy.
type SessionOpener func(ctx context.Context, sessionID string) (p Peeker, release func(), err error)

// maxSkippedSessions bounds ReconcileReport.SessionsSkipped.
const maxSkippedSessions = 100

// SessionIDs returns the distinct session IDs of the ledger's rows, sorted: the sessions that hold (or held)
// deferred messages. It reads the SessionId column of every row of the entity (one request per page of up to
// 1000 rows; ctx bounds it).
func (l *Ledger) SessionIDs(ctx context.Context) ([]string, error) {
	filter := fmt.Sprintf("PartitionKey eq '%s'", l.pk)
	sel := colSessionID
	pager := l.client.NewListEntitiesPager(&aztables.ListEntitiesOptions{Filter: &filter, Select: &sel, Top: ptr(int32(maxTop))})
	seen := map[string]bool{}
	for pager.More() {
		page, err := pager.NextPage(ctx)
		if err != nil {
			err = translate(err)
			if errors.Is(err, errTableNotFound) {
				return nil, nil
			}
			return nil, fmt.Errorf("ledger: session ids: %w", err)
		}
		for _, b := range page.Entities {
			var e struct {
				SessionID *string `json:"SessionId"`
			}
			if err := json.Unmarshal(b, &e); err != nil {
				return nil, fmt.Errorf("ledger: decode session id: %w", err)
			}
			if e.SessionID != nil {
				seen[*e.SessionID] = true
			}
		}
	}
	ids := make([]string, 0, len(seen))
	for id := range seen {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids, nil
}

// ReconcileSessions is Reconcile for a session-enabled entity, where messages can only be peeked session by
// session. It walks, in sorted order, the union of listed — the sessions Service Bus lists (ListSessions:
// those with an active message or a session state) — and the sessions of the ledger's rows (SessionIDs),
// since a session that holds only deferred messages is not listed. For each it opens a peeker with open
// and runs Reconcile's steps over that session's messages and rows, with the same rules and bounds
// (Options.MaxPages counts steps across sessions, Budget the whole call). A session another receiver holds is
// skipped and named in SessionsSkipped: its rows are left as they are for a later call. A deferred message of
// a session that neither list names cannot be found (a deferred message holdfast wrote always has a row).
// The report's Cursor resumes at the session where the call stopped, from that session's start.
func (l *Ledger) ReconcileSessions(ctx context.Context, open SessionOpener, listed []string, opts *ReconcileOptions) (ReconcileReport, error) {
	o := reconcileDefaults(opts)
	var rep ReconcileReport
	after, resumeFrom, err := parseSessionCursor(o.Cursor)
	if err != nil {
		return rep, err
	}
	rep.Cursor = o.Cursor
	if open == nil {
		return rep, invalid("nil session opener")
	}
	if err := l.EnsureTable(ctx); err != nil {
		return rep, err
	}
	ids, err := l.SessionIDs(ctx)
	if err != nil {
		return rep, err
	}
	ids = append(ids, listed...)
	slices.Sort(ids)
	ids = slices.Compact(ids)
	start := l.now()
	overBudget := func() bool { return o.Budget > 0 && l.now().Sub(start) >= o.Budget }
	steps := 0
	for _, sid := range ids {
		if after != nil && sid < *after {
			continue
		}
		var from int64
		if after != nil && sid == *after {
			from = resumeFrom
		}
		if steps >= o.MaxPages || overBudget() {
			rep.Cursor = sessionCursor(sid, from)
			return rep, nil
		}
		p, release, err := open(ctx, sid)
		if errors.Is(err, ErrSessionBusy) {
			if len(rep.SessionsSkipped) < maxSkippedSessions {
				rep.SessionsSkipped = append(rep.SessionsSkipped, sid)
			}
			continue
		}
		if err != nil {
			rep.Cursor = sessionCursor(sid, from)
			return rep, fmt.Errorf("ledger: reconcile session %q: %w", sid, err)
		}
		next, done, err := l.reconcileSession(ctx, p, sid, from, &rep, o, &steps, overBudget)
		release()
		if err != nil || !done {
			rep.Cursor = sessionCursor(sid, next)
			return rep, err
		}
		rep.Sessions++
	}
	rep.Cursor, rep.Done = "", true
	return rep, nil
}

// reconcileSession walks one session from sequence number from to its end (done), or until the steps or
// the budget run out; next is where to resume it.
func (l *Ledger) reconcileSession(ctx context.Context, p Peeker, sid string, from int64, rep *ReconcileReport, o ReconcileOptions,
	steps *int, overBudget func() bool) (next int64, done bool, err error) {
	for *steps < o.MaxPages && !overBudget() {
		*steps++
		end, err := l.reconcileStep(ctx, p, &sid, rep, o, from, overBudget)
		if err != nil {
			return from, false, fmt.Errorf("ledger: reconcile session %q: %w", sid, err)
		}
		if end == math.MaxInt64 {
			return 0, true, nil
		}
		if end >= from {
			from = end + 1
		}
	}
	return from, false, nil
}

// sessionCursorPrefix marks a ReconcileSessions cursor: "s:" + the session ID (base64url) + ":" + the
// sequence number to resume that session from.
const sessionCursorPrefix = "s:"

func sessionCursor(sid string, from int64) string {
	return sessionCursorPrefix + base64.RawURLEncoding.EncodeToString([]byte(sid)) + ":" + strconv.FormatInt(from, 10)
}

func parseSessionCursor(c string) (*string, int64, error) {
	if c == "" {
		return nil, 0, nil
	}
	bad := invalid("reconcile cursor %.40q is not one this ledger issued", c)
	rest, ok := strings.CutPrefix(c, sessionCursorPrefix)
	enc, num, ok2 := strings.Cut(rest, ":")
	b, err := base64.RawURLEncoding.DecodeString(enc)
	from, err2 := strconv.ParseInt(num, 10, 64)
	if !ok || !ok2 || err != nil || err2 != nil || from < 0 {
		return nil, 0, bad
	}
	sid := string(b)
	return &sid, from, nil
}
