package deadletter

import (
	"encoding/json"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/labstack/echo/v4"
)

// TestHTTPRefusesBadInputAndTouchesNothing: every refused request answers 4xx {"error":…} naming the
// problem, and the DLQ is unchanged; peek shows one message and 404s a missing one.
func TestHTTPRefusesBadInputAndTouchesNothing(t *testing.T) {
	ctx := testCtx(t, time.Minute)
	e := newEnv(t, 30*time.Second)
	seqs := e.seed(ctx, t, 2)
	var c counts
	srv := echo.New()
	NewHandler(e.service(t, nil, &c), nil).Register(srv)
	do := func(method, target, body string) (int, string) {
		rec := httptest.NewRecorder()
		srv.ServeHTTP(rec, httptest.NewRequest(method, target, strings.NewReader(body)))
		return rec.Code, rec.Body.String()
	}
	for _, tt := range []struct {
		method, target, body string
		status               int
		text                 string
	}{
		{"POST", "/api/deadletter/deadletter", `{"all":true}`, 404, "use resubmit or delete"},
		{"POST", "/api/deadletter/resubmit", `{"all":true,"dueOnly":true}`, 400, `unknown field "dueOnly"`},
		{"POST", "/api/deadletter/resubmit", `{"sequenceNumbers":[-3]}`, 400, "negative"},
		{"POST", "/api/deadletter/delete", `{"all":true,"continuation":"zzz"}`, 400, "not a token"},
		{"GET", "/api/deadletter/resubmit", ``, 405, "use POST"},
		{"POST", "/api/deadletter", `{"all":true}`, 400, "needs an action"},
		{"GET", "/api/deadletter?top=0", ``, 400, `"top"`},
		{"GET", "/api/deadletter?skip=1", ``, 400, "unknown query parameter"},
		{"GET", "/api/deadletter/peek", ``, 400, "sequenceNumber"},
		{"GET", "/api/deadletter/peek?sequenceNumber=x", ``, 400, "non-negative integer"},
		{"GET", "/api/deadletter/peek?sequenceNumber=999", ``, 404, "no message"},
	} {
		status, body := do(tt.method, tt.target, tt.body)
		var eb struct{ Error string }
		if status != tt.status || json.Unmarshal([]byte(body), &eb) != nil || !strings.Contains(eb.Error, tt.text) {
			t.Errorf("%s %s %s: %d %s; want %d mentioning %q", tt.method, tt.target, tt.body, status, body, tt.status, tt.text)
		}
	}
	if st := e.stats(t, true); st.Active != 2 || st.Counters.Completed+st.Counters.Abandoned+st.Counters.Received != 0 {
		t.Fatalf("refused requests changed the DLQ: %+v", st)
	}
	status, body := do("GET", "/api/deadletter/peek?sequenceNumber="+itoa(seqs[1])+"&code=key", "")
	if status != 200 || !strings.Contains(body, `"deadLetterReason":"reason-1"`) || !strings.Contains(body, `"text":"body-1"`) {
		t.Fatalf("peek: %d %s", status, body)
	}
}

func itoa(n int64) string { b, _ := json.Marshal(n); return string(b) }
