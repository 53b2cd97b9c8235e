package due_test

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus"

	"github.com/holdfast-dev/holdfast/emulator/broker"
	"github.com/holdfast-dev/holdfast/internal/due"
	"github.com/holdfast-dev/holdfast/internal/ledger"
	"github.com/holdfast-dev/holdfast/internal/process"
	"github.com/holdfast-dev/holdfast/internal/testenv"
)

// The due pass on a session entity: due rows are claimed and grouped by session; a group is received through
// a receiver of its session; the group of a session held elsewhere is released with the reason, due again.
func TestClaimDueSessions(t *testing.T) {
	st := startStack(t)
	props := broker.DefaultQueueProperties()
	props.LockDuration, props.RequiresSession = 2*time.Second, true
	if err := st.srv.Broker().CreateQueue("s", props); err != nil {
		t.Fatal(err)
	}
	tc, err := ledger.NewClientFromConnectionString(testenv.Azurite(t), testenv.TableName(t)+"s", nil)
	if err != nil {
		t.Fatal(err)
	}
	l, err := ledger.New(tc, &ledger.Options{Entity: "s"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	sender, err := st.client.NewSender("s", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer sender.Close(ctx)
	// Defer two messages of session "a" and one of "b" through the ledger, due at once.
	for _, sid := range []string{"a", "a", "b"} {
		if err := sender.SendMessage(ctx, &azservicebus.Message{Body: []byte(sid), SessionID: &sid}, nil); err != nil {
			t.Fatal(err)
		}
	}
	for _, sid := range []string{"a", "b"} {
		sr, err := st.client.AcceptSessionForQueue(ctx, "s", sid, nil)
		if err != nil {
			t.Fatal(err)
		}
		msgs, err := sr.ReceiveMessages(ctx, 2, nil)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range msgs {
			if err := l.Defer(ctx, sr, m, time.Now().Add(-time.Second), "retry"); err != nil {
				t.Fatal(err)
			}
		}
		_ = sr.Close(ctx)
	}
	held, err := st.client.AcceptSessionForQueue(ctx, "s", "b", nil) // a run elsewhere holds session b
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close(ctx)

	src, err := due.New(l, nil)
	if err != nil {
		t.Fatal(err)
	}
	groups, err := src.ClaimDueSessions(ctx, 10, time.Now().Add(time.Minute))
	if err != nil || len(groups) != 2 {
		t.Fatalf("ClaimDueSessions: %d groups, %v; want sessions a and b", len(groups), err)
	}
	for _, g := range groups {
		switch g.SessionID {
		case "a":
			sr, err := process.AcceptSession(ctx, st.client, "s", "a")
			if err != nil {
				t.Fatal(err)
			}
			msgs, err := g.Take(ctx, sr)
			if err != nil || len(msgs) != 2 {
				t.Fatalf("Take of session a: %d, %v", len(msgs), err)
			}
			for _, m := range msgs {
				if err := sr.CompleteMessage(ctx, m.Message, nil); err != nil {
					t.Fatal(err)
				}
				m.Settled(ctx, process.SettledComplete)
			}
			_ = sr.Close(ctx)
		case "b":
			_, err := process.AcceptSession(ctx, st.client, "s", "b")
			if !process.IsSessionLocked(err) {
				t.Fatalf("accepting the held session: %v; want it locked", err)
			}
			g.Release(ctx, "session b is locked by another receiver")
		}
	}
	rows, _, err := l.List(ctx, 10, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 1 || *rows[0].SessionID != "b" || rows[0].State != ledger.StateDeferred || !strings.Contains(rows[0].LastError, "locked") {
		t.Fatalf("rows after the pass: %+v; want only session b's, released with the reason", rows)
	}
	again, err := l.Due(ctx, time.Now(), 10)
	if err != nil || !slices.ContainsFunc(again, func(r ledger.Row) bool { return r.SequenceNumber == rows[0].SequenceNumber }) {
		t.Fatalf("session b's row is not due again: %v, %v", again, err)
	}
}
