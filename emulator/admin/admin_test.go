package admin

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/holdfast-dev/holdfast/emulator/broker"
	"github.com/holdfast-dev/holdfast/emulator/mgmt"
)

// connFaults records connection-fault calls.
type connFaults struct {
	*mgmt.Faults
	dropped int
	idle    time.Duration
	settle  bool
	refuse  time.Duration
}

func (c *connFaults) DropConnections() int { c.dropped++; return 2 }
func (c *connFaults) DetachIdleReceivers(idle time.Duration, settle bool) error {
	c.idle, c.settle = idle, settle
	return nil
}
func (c *connFaults) RefuseConnections(d time.Duration) error { c.refuse = d; return nil }
func (c *connFaults) ConnectionFaultState() ConnectionFaultState {
	return ConnectionFaultState{DetachIdleAfter: c.idle, SettleOnManagement: c.settle}
}

func newTestAPI(t *testing.T, faults Faults) (http.Handler, *broker.Broker) {
	t.Helper()
	b, err := broker.New(nil, &broker.Options{Clock: broker.NewManualClock(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	return New(b, faults, nil), b
}

func do(t *testing.T, h http.Handler, method, path, body string) (int, map[string]any) {
	t.Helper()
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	req.RemoteAddr = "127.0.0.1:40000"
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	var out map[string]any
	if rec.Body.Len() > 0 {
		if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil {
			t.Fatalf("%s %s: reply is not a JSON object: %q", method, path, rec.Body.String())
		}
	}
	return rec.Code, out
}

func TestEntityRoutes(t *testing.T) {
	h, b := newTestAPI(t, &mgmt.Faults{})
	steps := []struct {
		method, path, body string
		want               int
		wantText           string
	}{
		{"PUT", "/queues/orders", `{"LockDuration":"PT5S","MaxDeliveryCount":3}`, 201, ""},
		{"PUT", "/queues/orders", ``, 409, "exists"},
		{"PUT", "/queues/bad", `{"LockDuration":"PT10M"}`, 400, "Properties.LockDuration"},
		{"PUT", "/queues/bad", `{"Nope":1}`, 400, "unknown field"},
		{"PUT", "/queues/bad", `[`, 400, "invalid JSON"},
		{"PUT", "/topics/events", `{"Subscriptions":[{"Name":"all"},{"Name":"red","Rules":[{"Name":"r","Properties":{"FilterType":"Correlation","CorrelationFilter":{"Label":"red"}}}]}]}`, 201, ""},
		{"PUT", "/topics/sqltopic", `{"Subscriptions":[{"Name":"s","Rules":[{"Name":"r","Properties":{"FilterType":"Sql","SqlFilter":{"SqlExpression":"a > 1"}}}]}]}`, 400, "SQL filters are not supported"},
		{"PUT", "/topics/events/subscriptions/blue", `{"Properties":{"MaxDeliveryCount":2}}`, 201, ""},
		{"PUT", "/topics/events/subscriptions/other", `{"Name":"different"}`, 400, "does not match"},
		{"PUT", "/topics/missing/subscriptions/s", ``, 404, "not found"},
		{"GET", "/entities", ``, 200, ""},
		{"DELETE", "/topics/events/subscriptions/blue", ``, 204, ""},
		{"DELETE", "/topics/events/subscriptions/blue", ``, 404, "not found"},
		{"DELETE", "/queues/orders", ``, 204, ""},
		{"DELETE", "/queues/orders", ``, 404, "not found"},
	}
	for _, st := range steps {
		code, out := do(t, h, st.method, st.path, st.body)
		if code != st.want {
			t.Fatalf("%s %s: %d %v, want %d", st.method, st.path, code, out, st.want)
		}
		if st.wantText != "" && !strings.Contains(out["error"].(string), st.wantText) {
			t.Errorf("%s %s: error %q, want it to mention %q", st.method, st.path, out["error"], st.wantText)
		}
		if code >= 400 && out["code"] == "" {
			t.Errorf("%s %s: error without code", st.method, st.path)
		}
	}
	subs, err := b.Subscriptions("events")
	if err != nil || len(subs) != 2 || subs[0] != "all" || subs[1] != "red" {
		t.Errorf("subscriptions %v, %v", subs, err)
	}
	if len(b.Queues()) != 0 {
		t.Errorf("queues left: %v", b.Queues())
	}
}

func TestStatsRoute(t *testing.T) {
	h, b := newTestAPI(t, nil)
	if err := b.CreateQueue("orders", broker.DefaultQueueProperties()); err != nil {
		t.Fatal(err)
	}
	b.NoteManagementCall()
	req := httptest.NewRequest("GET", "/stats", nil)
	req.RemoteAddr = "[::1]:5000"
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	var st Stats
	if err := json.Unmarshal(rec.Body.Bytes(), &st); err != nil || rec.Code != 200 {
		t.Fatalf("GET /stats: %d %q %v", rec.Code, rec.Body.String(), err)
	}
	if st.ManagementCalls != 1 || len(st.Entities) != 2 || st.Entities[0].Path != "orders" || st.Entities[0].Kind != "queue" ||
		st.Entities[1].Kind != "deadLetterQueue" {
		t.Errorf("stats %+v", st)
	}
	if code, out := do(t, h, "POST", "/faults/renew-lock", `{"count":1}`); code != 501 || out["code"] != CodeNotSupported {
		t.Errorf("faults without a Faults value: %d %v", code, out)
	}
}

func TestFaultRoutes(t *testing.T) {
	mf := &mgmt.Faults{}
	cf := &connFaults{Faults: mf}
	h, _ := newTestAPI(t, cf)
	steps := []struct {
		method, path, body string
		want               int
	}{
		{"POST", "/faults/renew-lock", `{"count":3,"status":503}`, 200},
		{"POST", "/faults/renew-lock", `{"count":3,"status":404}`, 400},
		{"POST", "/faults/renew-lock", `{"count":"3"}`, 400},
		{"POST", "/faults/management-delay", `{"delay":"PT2S"}`, 200},
		{"POST", "/faults/management-delay", `{"delay":"-1s"}`, 400},
		{"POST", "/faults/management-delay", `{"delay":5}`, 400},
		{"POST", "/faults/detach-idle-receivers", `{"idle":"1s","settleOnManagement":false}`, 200},
		{"POST", "/faults/detach-idle-receivers", `{"idle":"1.5s"}`, 200}, // settleOnManagement defaults to true
		{"POST", "/faults/refuse-connections", `{"duration":"4s"}`, 200},
		{"POST", "/faults/drop-connections", ``, 200},
		{"POST", "/faults/drop-connections", `{"x":1}`, 400},
	}
	for _, st := range steps {
		if code, out := do(t, h, st.method, st.path, st.body); code != st.want {
			t.Fatalf("%s %s %s: %d %v, want %d", st.method, st.path, st.body, code, out, st.want)
		}
	}
	state := mf.State()
	if state.RenewLockFailures != 3 || state.RenewLockStatus != 503 || state.ManagementDelay != 2*time.Second {
		t.Errorf("mgmt faults %+v", state)
	}
	if cf.idle != 1500*time.Millisecond || !cf.settle || cf.refuse != 4*time.Second || cf.dropped != 1 {
		t.Errorf("connection faults %+v", cf)
	}
	code, out := do(t, h, "GET", "/faults", "")
	if code != 200 || out["managementDelay"] != "2s" || out["detachIdleAfter"] != "1.5s" || out["renewLockFailures"] != float64(3) {
		t.Errorf("GET /faults: %d %v", code, out)
	}
	if code, _ := do(t, h, "DELETE", "/faults", ""); code != 204 || mf.State() != (mgmt.FaultState{}) {
		t.Errorf("DELETE /faults: %d, state %+v", code, mf.State())
	}
}

func TestLoopbackOnly(t *testing.T) {
	tests := []struct {
		remote      string
		allowRemote bool
		want        int
	}{
		{"127.0.0.1:1", false, 200},
		{"[::1]:1", false, 200},
		{"10.0.0.5:1", false, 403},
		{"10.0.0.5:1", true, 200},
	}
	for _, tt := range tests {
		b, err := broker.New(nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		h := New(b, nil, &Options{AllowRemote: tt.allowRemote})
		req := httptest.NewRequest("GET", "/entities", nil)
		req.RemoteAddr = tt.remote
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		b.Close()
		if rec.Code != tt.want {
			t.Errorf("%s allowRemote=%v: %d, want %d", tt.remote, tt.allowRemote, rec.Code, tt.want)
		}
	}
}

// FuzzAdminJSON feeds arbitrary bodies to every route that decodes JSON: each must answer
// 2xx or a JSON error with a stable code, never panic or 500.
func FuzzAdminJSON(f *testing.F) {
	seeds := []string{
		``, `{}`, `null`, `[]`, `{"count":1,"status":410}`, `{"delay":"PT1S"}`, `{"idle":"1s","settleOnManagement":true}`,
		`{"LockDuration":"PT5S","MaxDeliveryCount":3,"DefaultMessageTimeToLive":"P10675199D"}`,
		`{"Properties":{"DefaultMessageTimeToLive":"PT1H"},"Subscriptions":[{"Name":"s","Rules":[{"Name":"r","Properties":{"FilterType":"Correlation","CorrelationFilter":{"Properties":{"n":1.5,"b":true}}}}]}]}`,
		`{"Rules":[{"Name":"r","Properties":{"FilterType":"Sql","SqlFilter":{"SqlExpression":"1=1"}}}]}`,
		`{"duration":"1h"}{"x":1}`, `{"count":-1}`, `{"LockDuration":"P1Y2M"}`, "\x00\xff",
	}
	for _, s := range seeds {
		f.Add(s)
		if len(s) > 1 {
			f.Add(s[:len(s)/2]) // input cut in two
		}
	}
	routes := []struct{ method, path string }{
		{"PUT", "/queues/q"}, {"PUT", "/topics/t"}, {"PUT", "/topics/t0/subscriptions/s"},
		{"POST", "/faults/renew-lock"}, {"POST", "/faults/management-delay"},
		{"POST", "/faults/detach-idle-receivers"}, {"POST", "/faults/refuse-connections"}, {"POST", "/faults/drop-connections"},
	}
	f.Fuzz(func(t *testing.T, body string) {
		b, err := broker.New(nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer b.Close()
		if err := b.CreateTopic("t0", broker.DefaultTopicProperties()); err != nil {
			t.Fatal(err)
		}
		h := New(b, &connFaults{Faults: &mgmt.Faults{}}, nil)
		for _, r := range routes {
			req := httptest.NewRequest(r.method, r.path, strings.NewReader(body))
			req.RemoteAddr = "127.0.0.1:1"
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code >= 300 {
				var e map[string]string
				if err := json.Unmarshal(rec.Body.Bytes(), &e); err != nil || e["code"] == "" || e["error"] == "" || rec.Code >= 500 {
					t.Fatalf("%s %s %q: %d %q", r.method, r.path, body, rec.Code, rec.Body.String())
				}
			}
		}
	})
}

// TestATOMDispatch: a request with an api-version query parameter (every request of the SDKs'
// administration clients) goes to the ATOM API; the JSON routes stay as they are.
func TestATOMDispatch(t *testing.T) {
	h, b := newTestAPI(t, nil)
	if err := b.CreateQueue("orders", broker.DefaultQueueProperties()); err != nil {
		t.Fatal(err)
	}
	req := httptest.NewRequest("GET", "/$Resources/Queues?api-version=2021-05", nil)
	req.RemoteAddr = "127.0.0.1:1"
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != 200 || !strings.HasPrefix(rec.Body.String(), "<feed") || !strings.Contains(rec.Body.String(), "<title type=\"text\">orders</title>") {
		t.Errorf("ATOM queue feed: %d %s", rec.Code, rec.Body.String())
	}
	req = httptest.NewRequest("GET", "/$Resources/Queues?api-version=2021-05", nil)
	req.RemoteAddr = "10.0.0.5:1"
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != 403 {
		t.Errorf("ATOM from a remote client: %d, want 403", rec.Code)
	}
	if code, out := do(t, h, "GET", "/entities", ""); code != 200 || out["queues"] == nil {
		t.Errorf("JSON /entities: %d %v", code, out)
	}
}
