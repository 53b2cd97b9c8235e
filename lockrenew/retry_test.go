package lockrenew

import (
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus"
)

// sdkDelay is the longest wait the SDK makes before retry i (1-based) with o: (2^i − 1) × RetryDelay × 1.3,
// capped at MaxRetryDelay (azservicebus internal/utils/retrier.go calcDelay, v1.11.0).
func sdkDelay(o azservicebus.RetryOptions, i int) time.Duration {
	d := time.Duration(float64(time.Duration(1<<i-1)*o.RetryDelay) * 1.3)
	return min(d, o.MaxRetryDelay)
}

func TestRetryOptionsFitTheRenewalLead(t *testing.T) {
	for _, lock := range []time.Duration{time.Second, 2 * time.Second, 5 * time.Second, 10 * time.Second, 30 * time.Second,
		time.Minute, 5 * time.Minute} {
		t.Run(lock.String(), func(t *testing.T) {
			o := RetryOptions(lock)
			lead := min(lock/2, maxRenewBuffer)
			// Three attempts after the one that met the dropped connection, even with the worst jitter,
			// start before the lock would be renewed too late.
			var waited time.Duration
			for i := 1; i <= 3; i++ {
				waited += sdkDelay(o, i)
			}
			if waited > lead {
				t.Errorf("%+v: three retries take up to %v, more than the %v renewal lead", o, waited, lead)
			}
			// Retries go on for about one lock duration.
			var total time.Duration
			for i := 1; i <= int(o.MaxRetries); i++ {
				total += min(time.Duration(1<<min(i, 30)-1)*o.RetryDelay, o.MaxRetryDelay)
			}
			if o.MaxRetries < 3 || total < min(lock, 2*time.Minute) {
				t.Errorf("%+v: %d retries over %v, want at least 3 over the %v lock (at most 2m)", o, o.MaxRetries, total, lock)
			}
		})
	}
	// The SDK's defaults (4 s first retry) do not fit a 5 s lock: the reason this function exists.
	def := azservicebus.RetryOptions{RetryDelay: 4 * time.Second, MaxRetryDelay: 120 * time.Second}
	if sdkDelay(def, 1)*8/13 < min(5*time.Second/2, maxRenewBuffer) {
		t.Fatal("the SDK default first retry fits a 5s lock's lead; the derivation is no longer needed")
	}
}

func TestRetryOptionsValues(t *testing.T) {
	tests := []struct {
		lock time.Duration
		want azservicebus.RetryOptions
	}{
		{5 * time.Second, azservicebus.RetryOptions{MaxRetries: 9, RetryDelay: 250 * time.Millisecond, MaxRetryDelay: 625 * time.Millisecond}},
		{time.Minute, azservicebus.RetryOptions{MaxRetries: 25, RetryDelay: time.Second, MaxRetryDelay: 2500 * time.Millisecond}},
		{0, azservicebus.RetryOptions{MaxRetries: 25, RetryDelay: time.Second, MaxRetryDelay: 2500 * time.Millisecond}},
	}
	for _, tt := range tests {
		if got := RetryOptions(tt.lock); got != tt.want {
			t.Errorf("RetryOptions(%v) = %+v, want %+v", tt.lock, got, tt.want)
		}
	}
}
