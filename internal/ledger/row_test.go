package ledger

import (
	"testing"
	"time"
)

func TestRowLeasable(t *testing.T) {
	now := time.Date(2026, 11, 22, 4, 0, 0, 0, time.UTC)
	tests := []struct {
		name string
		row  Row
		want bool
	}{
		{"deferred", Row{State: StateDeferred}, true},
		{"pending", Row{State: StatePending}, false},
		{"live lease", Row{State: StateResubmitting, LeaseUntil: now.Add(time.Second)}, false},
		{"lease ends now", Row{State: StateResubmitting, LeaseUntil: now}, true},
		{"expired lease", Row{State: StateResubmitting, LeaseUntil: now.Add(-time.Second)}, true},
		{"live run claim", Row{State: StateProcessing, LeaseUntil: now.Add(time.Second)}, false},
		{"lapsed run claim", Row{State: StateProcessing, LeaseUntil: now.Add(-time.Second)}, true},
		{"unknown state", Row{State: "lost"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.row.Leasable(now); got != tt.want {
				t.Fatalf("Leasable = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestRowMarshalRoundTrip(t *testing.T) {
	clock := newTestClock()
	r := sampleRow(123, clock)
	r.Entity = "orders/Subscriptions/audit"
	r.LeaseUntil = clock.Now().Add(time.Minute)
	b, err := marshalRow(r)
	if err != nil {
		t.Fatal(err)
	}
	got, err := unmarshalRow(b, "W/\"etag\"")
	if err != nil {
		t.Fatal(err)
	}
	r.ETag = "W/\"etag\""
	if got != r {
		t.Fatalf("round trip = %+v\nwant       %+v", got, r)
	}
	if _, err := unmarshalRow([]byte(`{"PartitionKey":"orders","RowKey":"12"}`), ""); err == nil {
		t.Fatal("unmarshalRow accepted a RowKey that is not 19 digits")
	}
}
