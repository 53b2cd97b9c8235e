package lockrenew

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus"
)

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func TestRenewAt(t *testing.T) {
	tests := []struct {
		remaining time.Duration
		want      time.Duration // offset from now
	}{
		{remaining: 300 * time.Second, want: 290 * time.Second},
		{remaining: 60 * time.Second, want: 50 * time.Second},
		{remaining: 30 * time.Second, want: 20 * time.Second},
		{remaining: 20 * time.Second, want: 10 * time.Second},
		{remaining: 10 * time.Second, want: 5 * time.Second},
		{remaining: 5 * time.Second, want: 2500 * time.Millisecond},
		{remaining: 400 * time.Millisecond, want: 200 * time.Millisecond},
		{remaining: 399 * time.Millisecond, want: 0},
		{remaining: 0, want: 0},
		{remaining: -time.Second, want: 0},
	}
	for _, tt := range tests {
		t.Run(tt.remaining.String(), func(t *testing.T) {
			got := renewAt(t0.Add(tt.remaining), t0)
			if want := t0.Add(tt.want); !got.Equal(want) {
				t.Errorf("renewAt(now+%v, now) = now+%v; want now+%v", tt.remaining, got.Sub(t0), tt.want)
			}
		})
	}
}

func TestNextRetryDelay(t *testing.T) {
	want := []time.Duration{250 * time.Millisecond, 500 * time.Millisecond, time.Second, 2 * time.Second, 2 * time.Second}
	var d time.Duration
	for i, w := range want {
		d = nextRetryDelay(d)
		if d != w {
			t.Fatalf("retry %d: delay %v; want %v", i+1, d, w)
		}
	}
}

func TestIsPermanent(t *testing.T) {
	tests := []struct {
		err  error
		want bool
	}{
		{&azservicebus.Error{Code: azservicebus.CodeLockLost}, true},
		{&azservicebus.Error{Code: azservicebus.CodeNotFound}, true},
		{&azservicebus.Error{Code: azservicebus.CodeUnauthorizedAccess}, true},
		{&azservicebus.Error{Code: azservicebus.CodeClosed}, true},
		{fmt.Errorf("wrapped: %w", &azservicebus.Error{Code: azservicebus.CodeLockLost}), true},
		{&azservicebus.Error{Code: azservicebus.CodeConnectionLost}, false},
		{&azservicebus.Error{Code: azservicebus.CodeTimeout}, false},
		{&azservicebus.Error{Code: "some-future-code"}, false},
		{errors.New("read tcp: connection reset by peer"), false},
		{context.DeadlineExceeded, false},
		{errNotExtended, false},
	}
	for _, tt := range tests {
		t.Run(tt.err.Error(), func(t *testing.T) {
			if got := isPermanent(tt.err); got != tt.want {
				t.Errorf("isPermanent(%v) = %v; want %v", tt.err, got, tt.want)
			}
		})
	}
}

func TestSchedule(t *testing.T) {
	sec := func(n float64) time.Time { return t0.Add(time.Duration(n * float64(time.Second))) }
	tests := []struct {
		name        string
		lockedUntil time.Time
		retryDelay  time.Duration
		maxDeadline time.Time
		notBefore   time.Time
		wantAt      time.Time
		wantEvent   event
	}{
		{name: "renew before expiry", lockedUntil: sec(30), wantAt: sec(20), wantEvent: evRenew},
		{name: "renew now under 400ms", lockedUntil: sec(0.3), wantAt: t0, wantEvent: evRenew},
		{name: "already expired", lockedUntil: sec(-1), wantAt: sec(-1), wantEvent: evExpired},
		{name: "expires exactly now", lockedUntil: t0, wantAt: t0, wantEvent: evExpired},
		{name: "retry after backoff", lockedUntil: sec(5), retryDelay: 250 * time.Millisecond, wantAt: sec(0.25), wantEvent: evRenew},
		{name: "retry would start after expiry", lockedUntil: sec(1), retryDelay: 2 * time.Second, wantAt: sec(1), wantEvent: evExpired},
		{name: "retry would start at expiry", lockedUntil: sec(2), retryDelay: 2 * time.Second, wantAt: sec(2), wantEvent: evExpired},
		{name: "max deadline before renewal", lockedUntil: sec(30), maxDeadline: sec(15), wantAt: sec(15), wantEvent: evMaxRenewal},
		{name: "max deadline at renewal", lockedUntil: sec(30), maxDeadline: sec(20), wantAt: sec(20), wantEvent: evMaxRenewal},
		{name: "max deadline after renewal", lockedUntil: sec(30), maxDeadline: sec(21), wantAt: sec(20), wantEvent: evRenew},
		{name: "max deadline before retry", lockedUntil: sec(10), retryDelay: 2 * time.Second, maxDeadline: sec(1), wantAt: sec(1), wantEvent: evMaxRenewal},
		{name: "expiry before max deadline and retry", lockedUntil: sec(1), retryDelay: 2 * time.Second, maxDeadline: sec(1.5), wantAt: sec(1), wantEvent: evExpired},
		{name: "expiry at max deadline", lockedUntil: sec(1), retryDelay: 2 * time.Second, maxDeadline: sec(1), wantAt: sec(1), wantEvent: evExpired},
		{name: "floor delays an immediate renewal", lockedUntil: sec(0.3), notBefore: sec(0.25), wantAt: sec(0.25), wantEvent: evRenew},
		{name: "floor past expiry loses the lock", lockedUntil: sec(0.2), notBefore: sec(0.25), wantAt: sec(0.2), wantEvent: evExpired},
		{name: "floor already passed", lockedUntil: sec(30), notBefore: sec(-1), wantAt: sec(20), wantEvent: evRenew},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			at, ev := schedule(tt.lockedUntil, t0, tt.retryDelay, tt.maxDeadline, tt.notBefore)
			if !at.Equal(tt.wantAt) || ev != tt.wantEvent {
				t.Errorf("schedule = (now+%v, %v); want (now+%v, %v)", at.Sub(t0), ev, tt.wantAt.Sub(t0), tt.wantEvent)
			}
		})
	}
}

func TestOptionsValidate(t *testing.T) {
	tests := []struct {
		name    string
		opts    *Options
		wantErr bool
	}{
		{name: "nil", opts: nil},
		{name: "zero", opts: &Options{}},
		{name: "no limit", opts: &Options{MaxRenewalDuration: -1, MaxConcurrentRenewals: 1}},
		{name: "negative concurrency", opts: &Options{MaxConcurrentRenewals: -1}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.opts.Validate()
			if (err != nil) != tt.wantErr {
				t.Fatalf("Validate() = %v; want error: %v", err, tt.wantErr)
			}
		})
	}
}

func TestNewPanicsOnBadInput(t *testing.T) {
	tests := []struct {
		name   string
		client LockRenewer
		opts   *Options
		want   string
	}{
		{name: "negative concurrency", client: &fakeRenewer{}, opts: &Options{MaxConcurrentRenewals: -3},
			want: "lockrenew: Options.MaxConcurrentRenewals is -3; want 0 (default 16) or a positive number"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			defer func() {
				if got := recover(); got != tt.want {
					t.Errorf("New panicked with %v; want %q", got, tt.want)
				}
			}()
			New(tt.client, tt.opts)
		})
	}
}

func TestStatsMean(t *testing.T) {
	tests := []struct {
		s    Stats
		want time.Duration
	}{
		{Stats{}, 0},
		{Stats{Renewals: 3, Failures: 1, LatencyTotal: 400 * time.Millisecond}, 100 * time.Millisecond},
		{Stats{Failures: 2, LatencyTotal: time.Second}, 500 * time.Millisecond},
	}
	for _, tt := range tests {
		if got := tt.s.Mean(); got != tt.want {
			t.Errorf("%+v.Mean() = %v; want %v", tt.s, got, tt.want)
		}
	}
}
