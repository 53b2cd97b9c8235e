package holdfast

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus"

	"github.com/holdfast-dev/holdfast/emulator/broker"
	"github.com/holdfast-dev/holdfast/internal/drain"
	"github.com/holdfast-dev/holdfast/internal/testenv"
)

// TestDrainRoutesAgainstEmulator: a message deferred by a ProcessQueue run is listed by GET /api/deferred and
// resubmitted by POST /api/deferred/resubmit; bad input gets a 4xx naming the problem.
func TestDrainRoutesAgainstEmulator(t *testing.T) {
	ctx, cancelTest := context.WithTimeout(context.Background(), time.Minute)
	defer cancelTest()
	tables := testenv.Azurite(t)
	srv, client := startOrdersQueue(t, func(p *broker.QueueProperties) {
		p.LockDuration = 5 * time.Second
	})
	sender, err := client.NewSender("orders", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer sender.Close(context.Background())
	if err := sender.SendMessage(ctx, &azservicebus.Message{Body: []byte(`{"outcome":"defer","deferSeconds":60}`)}, nil); err != nil {
		t.Fatal(err)
	}

	vars := map[string]string{"ServiceBusConnection": srv.ConnectionString(), "HOLDFAST_ENTITY": "orders",
		"DeferralStorage": tables, "HOLDFAST_DEFERRAL_TABLE": testenv.TableName(t), "HOLDFAST_RUN_BUDGET": "20s",
		"FUNCTIONS_CUSTOMHANDLER_PORT": "0"}
	o, out, _ := testOptions(vars, t.TempDir())
	addr := serveHandler(t, o, out)
	base := "http://" + addr

	post := func(path, body string, out any) int {
		t.Helper()
		return postJSON(t, base+path, body, out)
	}
	var sum map[string]any
	if st := post("/ProcessQueue", `{"Data":{"timer":{"IsPastDue":false}},"Metadata":{}}`, &sum); st != 200 {
		t.Fatalf("ProcessQueue: %d %v\n%s", st, sum, out)
	}

	resp, err := http.Get(base + "/api/deferred?top=10")
	if err != nil {
		t.Fatal(err)
	}
	var page drain.Page
	err = json.NewDecoder(resp.Body).Decode(&page)
	resp.Body.Close()
	if err != nil || resp.StatusCode != 200 || len(page.Items) != 1 || page.Items[0].State != "deferred" || page.Items[0].NotBefore == nil {
		t.Fatalf("list: %d %+v %v\n%s", resp.StatusCode, page, err, out)
	}
	seq := page.Items[0].SequenceNumber

	var bad struct{ Error string }
	if st := post("/api/deferred/resubmit", `{"sequenceNumbers":[-1]}`, &bad); st != 400 || !strings.Contains(bad.Error, "negative") {
		t.Fatalf("bad input: %d %q", st, bad.Error)
	}
	var res drain.Result
	if st := post("/api/deferred/resubmit", `{"all":true}`, &res); st != 200 || res.Resubmitted != 1 || res.Continuation != "" {
		t.Fatalf("resubmit: %d %+v\n%s", st, res, out)
	}

	r, err := client.NewReceiverForQueue("orders", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close(context.Background())
	msgs, err := r.ReceiveMessages(ctx, 1, nil)
	if err != nil || len(msgs) != 1 || msgs[0].MessageID != drain.MessageID("orders", seq) {
		t.Fatalf("copy: %v, %v", msgs, err)
	}
	if got := msgs[0].ApplicationProperties[drain.PropOriginalSequenceNumber]; got != seq {
		t.Fatalf("copy lineage %v, want original sequence number %d", got, seq)
	}
}

// TestLazyDrainAfterClose: closing an unused drain opens nothing, and later requests are refused.
func TestLazyDrainAfterClose(t *testing.T) {
	d := &lazyDrain{}
	if err := d.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := d.get(); err != errDrainClosed {
		t.Fatalf("get after Close: %v, want errDrainClosed", err)
	}
	var nilDrain *lazyDrain
	if err := nilDrain.Close(context.Background()); err != nil {
		t.Fatalf("Close of a nil drain: %v", err)
	}
}
