package invoke

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
)

const hostTimer = `{
  "Data": {
    "myTimer": {
      "Schedule": { "AdjustForDST": true },
      "ScheduleStatus": {
        "Last": "2026-09-24T13:08:00.0096035+00:00",
        "Next": "2026-09-24T13:09:00+00:00",
        "LastUpdated": "2026-09-24T13:08:00.0096035+00:00"
      },
      "IsPastDue": false
    }
  },
  "Metadata": {
    "sys": { "MethodName": "ProcessQueue", "UtcNow": "2026-09-24T13:09:00.0123456Z", "RandGuid": "0f8fad5b-d9cb-469f-a165-70867728950e" }
  }
}`

func TestDecodeTimer(t *testing.T) {
	tr, err := DecodeTimer([]byte(hostTimer), "")
	if err != nil {
		t.Fatal(err)
	}
	next := time.Date(2026, 9, 24, 13, 9, 0, 0, time.UTC)
	if tr.Binding != "myTimer" || !tr.Timer.Schedule.AdjustForDST || tr.Timer.IsPastDue ||
		tr.Timer.ScheduleStatus == nil || !tr.Timer.ScheduleStatus.Next.Equal(next) ||
		tr.Sys.MethodName != "ProcessQueue" || tr.Sys.UtcNow.IsZero() {
		t.Fatalf("decoded %+v", tr)
	}
	if _, err := DecodeTimer([]byte(hostTimer), "myTimer"); err != nil {
		t.Fatal(err)
	}
}

func TestDecodeTimerNullStatusNoMetadata(t *testing.T) {
	tr, err := DecodeTimer([]byte(`{"Data":{"t":{"Schedule":{},"ScheduleStatus":null,"IsPastDue":true}}}`), "")
	if err != nil {
		t.Fatal(err)
	}
	if tr.Timer.ScheduleStatus != nil || !tr.Timer.IsPastDue {
		t.Fatalf("decoded %+v", tr)
	}
}

func TestDecodeTimerMalformed(t *testing.T) {
	tests := []struct{ body, binding, want string }{
		{``, "", "EOF"},
		{`[]`, "", "cannot unmarshal"},
		{`{"Data":`, "", "unexpected EOF"},
		{`{}`, "", `missing "Data"`},
		{`{"Data":null}`, "", `missing "Data"`},
		{`{"Data":{}}`, "", "0 entries"},
		{`{"Data":{"a":{},"b":{}}}`, "", "2 entries"},
		{`{"Data":{"a":{}}}`, "myTimer", `no "myTimer"`},
		{`{"Data":{"t":"x"}}`, "", "not a JSON object"},
		{`{"Data":{"t":{"ScheduleStatus":{"Last":"yesterday"}}}}`, "", "timer binding"},
		{`{"Data":{"t":{}},"Metadata":{"sys":{"UtcNow":5}}}`, "", "Metadata.sys"},
		{`{"Data":{"t":{}}} {}`, "", "after the JSON object"},
	}
	for _, tt := range tests {
		_, err := DecodeTimer([]byte(tt.body), tt.binding)
		if !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: error %v, want ErrMalformed mentioning %q", tt.body, err, tt.want)
		}
	}
}

func TestNewResponseJSON(t *testing.T) {
	b, err := json.Marshal(NewResponse(nil, nil))
	if err != nil {
		t.Fatal(err)
	}
	if string(b) != `{"Outputs":{},"Logs":[],"ReturnValue":null}` {
		t.Fatalf("got %s", b)
	}
	b, _ = json.Marshal(NewResponse([]string{"a"}, map[string]int{"received": 1}))
	if string(b) != `{"Outputs":{},"Logs":["a"],"ReturnValue":{"received":1}}` {
		t.Fatalf("got %s", b)
	}
}
