package drain

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/data/aztables"
	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus"

	"github.com/holdfast-dev/holdfast/internal/ledger"
)

func manyNumbers(n int) string {
	var b strings.Builder
	b.WriteString(`{"sequenceNumbers":[`)
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprint(&b, i)
	}
	b.WriteString("]}")
	return b.String()
}

func TestDecodeRequest(t *testing.T) {
	tests := []struct {
		name    string
		action  Action
		body    string
		want    Request
		status  int    // 0: no error
		errText string // part of the error message
	}{
		{"numbers", ActionResubmit, `{"sequenceNumbers":[3,1,3,2]}`, Request{Action: ActionResubmit, SequenceNumbers: []int64{3, 1, 2}}, 0, ""},
		{"all due dry", ActionResubmit, `{"all":true,"dueOnly":true,"dryRun":true}`, Request{Action: ActionResubmit, All: true, DueOnly: true, DryRun: true}, 0, ""},
		{"exponent integer", ActionDelete, `{"sequenceNumbers":[1e3, 5.0]}`, Request{Action: ActionDelete, SequenceNumbers: []int64{1000, 5}}, 0, ""},
		{"deadletter", ActionDeadLetter, `{"all":true,"reason":"poison","description":"d"}`, Request{Action: ActionDeadLetter, All: true, Reason: "poison", Description: "d"}, 0, ""},
		{"max count", ActionResubmit, `{"all":true,"maxCount":7}`, Request{Action: ActionResubmit, All: true, MaxCount: 7}, 0, ""},
		{"limit exactly", ActionResubmit, manyNumbers(MaxSequenceNumbers), Request{}, -1, ""},
		{"malformed", ActionResubmit, `{"all":tru`, Request{}, 400, "malformed JSON"},
		{"not an object", ActionResubmit, `[1,2]`, Request{}, 400, "JSON object"},
		{"unknown field", ActionResubmit, `{"all":true,"everything":true}`, Request{}, 400, `unknown field "everything"`},
		{"trailing data", ActionResubmit, `{"all":true} {}`, Request{}, 400, "after the object"},
		{"empty body", ActionResubmit, ``, Request{}, 400, "empty body"},
		{"nothing selected", ActionResubmit, `{"dryRun":true}`, Request{}, 400, "nothing selected"},
		{"all false", ActionResubmit, `{"all":false}`, Request{}, 400, "nothing selected"},
		{"both", ActionResubmit, `{"all":true,"sequenceNumbers":[1]}`, Request{}, 400, "not both"},
		{"empty list", ActionResubmit, `{"sequenceNumbers":[]}`, Request{}, 400, "is empty"},
		{"too many", ActionResubmit, manyNumbers(MaxSequenceNumbers + 1), Request{}, 400, "more than the 10000"},
		{"negative", ActionResubmit, `{"sequenceNumbers":[1,-4]}`, Request{}, 400, `[1]: -4 is negative`},
		{"fraction", ActionResubmit, `{"sequenceNumbers":[1.5]}`, Request{}, 400, "1.5 is not an integer"},
		{"quoted", ActionResubmit, `{"sequenceNumbers":["5"]}`, Request{}, 400, `"5" is not a number`},
		{"null element", ActionResubmit, `{"sequenceNumbers":[null]}`, Request{}, 400, "null is not a number"},
		{"huge", ActionResubmit, `{"sequenceNumbers":[1e30]}`, Request{}, 400, "out of range"},
		{"list not array", ActionResubmit, `{"sequenceNumbers":5}`, Request{}, 400, `"sequenceNumbers" must be an array`},
		{"all not bool", ActionResubmit, `{"all":"yes"}`, Request{}, 400, `"all" must be a boolean`},
		{"bad max count", ActionResubmit, `{"all":true,"maxCount":0}`, Request{}, 400, `"maxCount"`},
		{"deadletter without reason", ActionDeadLetter, `{"all":true}`, Request{}, 400, `non-empty "reason"`},
		{"blank reason", ActionDeadLetter, `{"all":true,"reason":"  "}`, Request{}, 400, `non-empty "reason"`},
		{"reason on resubmit", ActionResubmit, `{"all":true,"reason":"x"}`, Request{}, 400, "deadletter only"},
		{"unknown action", Action("purge"), `{"all":true}`, Request{}, 404, `unknown action "purge"`},
		{"oversized", ActionResubmit, `{"all":true,"reason":"` + strings.Repeat("x", MaxBodyBytes) + `"}`, Request{}, 413, "exceeds"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := DecodeRequest(tt.action, []byte(tt.body))
			switch {
			case tt.status == -1:
				if err != nil || len(got.SequenceNumbers) != MaxSequenceNumbers {
					t.Fatalf("got %d numbers, %v", len(got.SequenceNumbers), err)
				}
			case tt.status == 0:
				if err != nil {
					t.Fatal(err)
				}
				if got.Action != tt.want.Action || !slices.Equal(got.SequenceNumbers, tt.want.SequenceNumbers) || got.All != tt.want.All ||
					got.DueOnly != tt.want.DueOnly || got.DryRun != tt.want.DryRun || got.Reason != tt.want.Reason ||
					got.Description != tt.want.Description || got.MaxCount != tt.want.MaxCount {
					t.Fatalf("got %+v, want %+v", got, tt.want)
				}
			default:
				var re *RequestError
				if !errors.As(err, &re) || re.Status != tt.status || !strings.Contains(re.Msg, tt.errText) || !errors.Is(err, ErrBadRequest) {
					t.Fatalf("error %v; want status %d mentioning %q", err, tt.status, tt.errText)
				}
			}
		})
	}
}

// TestDecodeSelection: the selection-only decoder accepts the shared fields and refuses the deferred drain's
// own ("dueOnly", "reason") as unknown, with the same checks on numbers.
func TestDecodeSelection(t *testing.T) {
	got, err := DecodeSelection([]byte(`{"sequenceNumbers":[4,2,4],"dryRun":true,"maxCount":3,"continuation":"c"}`))
	if err != nil || !slices.Equal(got.SequenceNumbers, []int64{4, 2}) || !got.DryRun || got.MaxCount != 3 || got.Continuation != "c" || got.All {
		t.Fatalf("got %+v, %v", got, err)
	}
	for body, want := range map[string]string{
		`{"all":true,"dueOnly":true}`:        `unknown field "dueOnly"`,
		`{"all":true,"reason":"x"}`:          `unknown field "reason"`,
		`{"sequenceNumbers":[-1]}`:           "negative",
		`{"all":true,"sequenceNumbers":[1]}`: "not both",
		` `:                                  "empty body",
		`{"sequenceNumbers":"1"}`:            `"sequenceNumbers" must be an array`,
	} {
		_, err := DecodeSelection([]byte(body))
		var re *RequestError
		if !errors.As(err, &re) || re.Status != http.StatusBadRequest || !strings.Contains(re.Msg, want) {
			t.Errorf("%s: error %v, want 400 mentioning %q", body, err, want)
		}
	}
}

func TestContinuationIsBoundToTheSelection(t *testing.T) {
	req := Request{Action: ActionResubmit, SequenceNumbers: []int64{1, 2, 3}}
	tok := req.encodeCursor(cursor{Index: 2})
	req.Continuation = tok
	if c, err := req.decodeCursor(); err != nil || c.Index != 2 {
		t.Fatalf("own token: %+v, %v", c, err)
	}
	tests := []struct {
		name string
		req  Request
	}{
		{"other numbers", Request{Action: ActionResubmit, SequenceNumbers: []int64{1, 2, 4}, Continuation: tok}},
		{"other action", Request{Action: ActionDelete, SequenceNumbers: []int64{1, 2, 3}, Continuation: tok}},
		{"all", Request{Action: ActionResubmit, All: true, Continuation: tok}},
		{"garbage", Request{Action: ActionResubmit, SequenceNumbers: []int64{1, 2, 3}, Continuation: "!!"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := tt.req.decodeCursor(); !errors.Is(err, ErrBadRequest) || !strings.Contains(err.Error(), "continuation") {
				t.Fatalf("error %v; want a bad request about the continuation", err)
			}
		})
	}
}

// TestMessageIDIsPureAndShort checks the MessageID the copy path actually gives a copy (invariant 5): the same
// for the same (entity, sequence number) whatever else the original carries and whichever Service instance
// builds it, different across entities and sequence numbers, at most 128 characters, and what MessageID
// documents.
func TestMessageIDIsPureAndShort(t *testing.T) {
	tc, err := aztables.NewClientWithNoCredential("http://127.0.0.1:1/devstoreaccount1/unused", nil)
	if err != nil {
		t.Fatal(err)
	}
	copyID := func(entity string, seq int64, origID, body string, resubmits int64) string {
		t.Helper()
		l, err := ledger.New(tc, &ledger.Options{Entity: entity})
		if err != nil {
			t.Fatal(err)
		}
		svc, err := New(&Options{Ledger: l, Receiver: (*azservicebus.Receiver)(nil), Sender: (*azservicebus.Sender)(nil)})
		if err != nil {
			t.Fatal(err)
		}
		m := &azservicebus.ReceivedMessage{MessageID: origID, SequenceNumber: &seq, Body: []byte(body),
			ApplicationProperties: map[string]any{PropResubmitCount: resubmits}}
		c, err := svc.copyOf(m, ledger.Row{SequenceNumber: seq, ResubmitCount: resubmits, Reason: "r"})
		if err != nil || c.MessageID == nil {
			t.Fatalf("copyOf: %v, %v", c, err)
		}
		return *c.MessageID
	}
	long := strings.Repeat("q", 260) + "/Subscriptions/" + strings.Repeat("s", 50)
	tests := []struct {
		entity string
		seq    int64
	}{{"orders", 1}, {"orders", 2}, {"orders", 1<<63 - 1}, {"invoices", 1}, {long, 42}}
	seen := map[string]bool{}
	for _, tt := range tests {
		id := copyID(tt.entity, tt.seq, "original", "body", 0)
		if again := copyID(tt.entity, tt.seq, "another-id", "another body", 3); again != id {
			t.Errorf("copies of (%.20q, %d) got MessageIDs %q and %q; want one that depends on nothing else", tt.entity, tt.seq, id, again)
		}
		if want := MessageID(tt.entity, tt.seq); id != want {
			t.Errorf("copy of (%.20q, %d) has MessageID %q; MessageID says %q", tt.entity, tt.seq, id, want)
		}
		if len(id) > 128 || !strings.HasPrefix(id, "hf-") || !strings.HasSuffix(id, fmt.Sprint("-", tt.seq)) {
			t.Errorf("copy of (%.20q, %d): MessageID %q", tt.entity, tt.seq, id)
		}
		if seen[id] {
			t.Errorf("MessageID %q repeated across entities or sequence numbers", id)
		}
		seen[id] = true
	}
}

func TestSendTarget(t *testing.T) {
	tests := []struct{ entity, want string }{
		{"orders", "orders"},
		{"events/Subscriptions/audit", "events"},
		{"events/subscriptions/audit", "events"},
	}
	for _, tt := range tests {
		if got := SendTarget(tt.entity); got != tt.want {
			t.Errorf("SendTarget(%q) = %q, want %q", tt.entity, got, tt.want)
		}
	}
}

func TestNewValidatesOptions(t *testing.T) {
	if _, err := New(nil); err == nil {
		t.Fatal("New(nil) succeeded")
	}
	if _, err := New(&Options{}); err == nil {
		t.Fatal("New without ledger succeeded")
	}
}

// TestBadInputOverHTTP: every refused request answers 4xx {"error":…} naming the problem, and touches neither
// the ledger nor the messages.
func TestBadInputOverHTTP(t *testing.T) {
	ctx := testCtx(t, time.Minute)
	e := newEnv(t, envOptions{})
	e.seed(ctx, t, 2, nil)
	rows0, st0 := e.allRows(ctx, t), e.stats(t)
	url := api(t, e.service(t, nil))
	tests := []struct {
		name, method, path, body string
		status                   int
		errText                  string
	}{
		{"malformed JSON", "POST", "/api/deferred/resubmit", `{"all":`, 400, "malformed JSON"},
		{"unknown field", "POST", "/api/deferred/resubmit", `{"all":true,"force":1}`, 400, `unknown field "force"`},
		{"empty list", "POST", "/api/deferred/delete", `{"sequenceNumbers":[]}`, 400, "empty"},
		{"too many numbers", "POST", "/api/deferred/resubmit", manyNumbers(MaxSequenceNumbers + 1), 400, "more than the 10000"},
		{"negative number", "POST", "/api/deferred/resubmit", `{"sequenceNumbers":[-1]}`, 400, "negative"},
		{"non-integer", "POST", "/api/deferred/resubmit", `{"sequenceNumbers":[2.5]}`, 400, "not an integer"},
		{"string number", "POST", "/api/deferred/resubmit", `{"sequenceNumbers":["2"]}`, 400, "not a number"},
		{"unknown action", "POST", "/api/deferred/purge", `{"all":true}`, 404, `unknown action "purge"`},
		{"POST without action", "POST", "/api/deferred", `{"all":true}`, 400, "needs an action"},
		{"GET on an action", "GET", "/api/deferred/resubmit", "", 405, "use POST"},
		{"DELETE on the list", "DELETE", "/api/deferred", "", 405, "use GET"},
		{"oversized body", "POST", "/api/deferred/resubmit", `{"sequenceNumbers":[` + strings.Repeat(" ", MaxBodyBytes) + `1]}`, 413, "exceeds 1048576 bytes"},
		{"deadletter without reason", "POST", "/api/deferred/deadletter", `{"all":true}`, 400, "reason"},
		{"bad continuation", "POST", "/api/deferred/resubmit", `{"all":true,"continuation":"xyz"}`, 400, "continuation"},
		{"reconcile unknown field", "POST", "/api/deferred/reconcile", `{"cursor":"1"}`, 400, `unknown field "cursor"`},
		{"reconcile bad continuation", "POST", "/api/deferred/reconcile", `{"continuation":"abc"}`, 400, "continuation"},
		{"bad top", "GET", "/api/deferred?top=0", "", 400, `"top"`},
		{"top too large", "GET", "/api/deferred?top=5000", "", 400, `"top"`},
		{"unknown query", "GET", "/api/deferred?limit=3", "", 400, `unknown query parameter "limit"`},
		{"bad list continuation", "GET", "/api/deferred?continuation=abc", "", 400, "continuation"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got struct{ Error string }
			st := call(ctx, t, tt.method, url+tt.path, []byte(tt.body), &got)
			if st != tt.status || !strings.Contains(got.Error, tt.errText) {
				t.Fatalf("%s %s: %d %q; want %d mentioning %q", tt.method, tt.path, st, got.Error, tt.status, tt.errText)
			}
		})
	}
	rows1, st1 := e.allRows(ctx, t), e.stats(t)
	if !slices.EqualFunc(rows0, rows1, func(a, b ledger.Row) bool { return a.ETag == b.ETag }) {
		t.Fatalf("rows changed by refused requests: %+v → %+v", rows0, rows1)
	}
	if st0.Deferred != st1.Deferred || st0.Counters != st1.Counters {
		t.Fatalf("emulator changed by refused requests: %+v → %+v", st0, st1)
	}
	if http.StatusOK != call(ctx, t, "GET", url+"/api/deferred", nil, &Page{}) {
		t.Fatal("list after refused requests failed")
	}
}

// FuzzDecodeRequest: the decoder never panics, and whatever it accepts is a valid selection.
func FuzzDecodeRequest(f *testing.F) {
	seeds := []string{
		`{"sequenceNumbers":[1,2,3]}`, `{"all":true}`, `{"all":true,"dueOnly":true,"dryRun":true}`,
		`{"all":true,"reason":"r","description":"d"}`, `{"sequenceNumbers":[1e3]}`, `{"sequenceNumbers":[-1]}`,
		`{"sequenceNumbers":[1.5]}`, `{"all":true,"continuation":"eyJ2IjoxfQ"}`, `{"all":`, `[]`, ``, `null`,
		`{"sequenceNumbers":[9223372036854775807]}`, `{"sequenceNumbers":[9223372036854775808]}`,
	}
	for _, s := range seeds {
		for _, a := range []Action{ActionResubmit, ActionDeadLetter} {
			f.Add(string(a), s)
			f.Add(string(a), s[:len(s)/2]) // the input split in two
		}
	}
	f.Fuzz(func(t *testing.T, action, body string) {
		r, err := DecodeRequest(Action(action), []byte(body))
		if err != nil {
			var re *RequestError
			if !errors.As(err, &re) || re.Status < 400 || re.Status > 499 || re.Msg == "" {
				t.Fatalf("error %v is not a 4xx RequestError", err)
			}
			return
		}
		if r.All == (len(r.SequenceNumbers) > 0) || len(r.SequenceNumbers) > MaxSequenceNumbers {
			t.Fatalf("accepted an invalid selection: %+v", r)
		}
		for _, n := range r.SequenceNumbers {
			if n < 0 {
				t.Fatalf("accepted negative %d", n)
			}
		}
		if (r.Action == ActionDeadLetter) != (r.Reason != "") {
			t.Fatalf("reason %q on %s", r.Reason, r.Action)
		}
		if _, err := json.Marshal(r); err != nil {
			t.Fatal(err)
		}
	})
}

func TestNewClientsForASubscription(t *testing.T) {
	client, err := azservicebus.NewClientFromConnectionString("Endpoint=sb://localhost:1;SharedAccessKeyName=k;SharedAccessKey=a2V5;UseDevelopmentEmulator=true", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close(context.Background())
	for _, entity := range []string{"orders", "events/Subscriptions/audit"} {
		recv, send, err := NewClients(client, entity)
		if err != nil || recv == nil || send == nil {
			t.Fatalf("NewClients(%q): %v", entity, err)
		}
		_ = recv.Close(context.Background())
		_ = send.Close(context.Background())
	}
}
