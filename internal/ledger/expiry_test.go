package ledger

import (
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus"
)

// TestExpiresAt: a message sent without a TTL reaches the SDK with a zero TimeToLive and an ExpiresAt equal to
// its enqueued time (azservicebus newReceivedMessage), though the service expires it after the entity's
// default; a longer TTL is capped at the entity's default. Mutation: taking the SDK's ExpiresAt flags every
// such row as expiring at once ("no ttl, default known" goes red).
func TestExpiresAt(t *testing.T) {
	enq := time.Date(2026, 12, 6, 4, 0, 0, 0, time.UTC)
	d := func(v time.Duration) *time.Duration { return &v }
	tests := []struct {
		name       string
		ttl        *time.Duration
		enqueued   *time.Time
		defaultTTL time.Duration
		want       time.Time
	}{
		{"no ttl, default known", d(0), &enq, 14 * 24 * time.Hour, enq.Add(14 * 24 * time.Hour)},
		{"nil ttl, default known", nil, &enq, time.Hour, enq.Add(time.Hour)},
		{"no ttl, default unknown", d(0), &enq, 0, time.Time{}},
		{"own ttl", d(time.Hour), &enq, 0, enq.Add(time.Hour)},
		{"own ttl under the default", d(time.Hour), &enq, 2 * time.Hour, enq.Add(time.Hour)},
		{"own ttl capped at the default", d(3 * time.Hour), &enq, 2 * time.Hour, enq.Add(2 * time.Hour)},
		{"entity never expires", d(0), &enq, time.Duration(1<<63 - 1), time.Time{}},
		{"no enqueued time", d(time.Hour), nil, time.Hour, time.Time{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := &Ledger{defaultTTL: tt.defaultTTL}
			sdkExpires := enq // what the SDK reports for a zero TTL
			msg := &azservicebus.ReceivedMessage{TimeToLive: tt.ttl, EnqueuedTime: tt.enqueued, ExpiresAt: &sdkExpires}
			if got := l.expiresAt(msg); !got.Equal(tt.want) {
				t.Errorf("expiresAt = %v, want %v", got, tt.want)
			}
		})
	}
}
