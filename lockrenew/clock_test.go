package lockrenew

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus"
)

// skewedService is a LockRenewer that keeps its own clock, ahead of the local one by -skew (skew > 0: the
// local clock is ahead of the service's). It grants locks of lockDuration on its clock, answers a renewal
// that comes after the lock expired (on its clock) with CodeLockLost, and counts renewals and late ones.
type skewedService struct {
	skew, lockDuration time.Duration

	mu       sync.Mutex
	renewals map[string][]time.Time // message ID → local times of successful renewals; guarded by mu
	late     int                    // renewals that came after the lock expired; guarded by mu
}

func (s *skewedService) now() time.Time { return time.Now().Add(-s.skew) }

// receive returns a message locked now on the service's clock.
func (s *skewedService) receive(id int) *azservicebus.ReceivedMessage {
	until := s.now().Add(s.lockDuration)
	seq := int64(id)
	return &azservicebus.ReceivedMessage{MessageID: fmt.Sprintf("msg-%d", id), SequenceNumber: &seq, LockedUntil: &until}
}

func (s *skewedService) RenewMessageLock(_ context.Context, msg *azservicebus.ReceivedMessage, _ *azservicebus.RenewMessageLockOptions) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.now().Before(*msg.LockedUntil) {
		s.late++
		return &azservicebus.Error{Code: azservicebus.CodeLockLost}
	}
	if s.renewals == nil {
		s.renewals = map[string][]time.Time{}
	}
	s.renewals[msg.MessageID] = append(s.renewals[msg.MessageID], time.Now())
	until := s.now().Add(s.lockDuration)
	msg.LockedUntil = &until
	return nil
}

// TestServiceClockSkew: with the local clock 30 s behind or ahead of the service's (or 90 s ahead, more than a
// lock) on 60 s locks, a renewer that knows the lock duration renews each lock once per lock window, 10 s
// before it ends on the service's clock, and loses none. The first message is held before any renewal has
// taught the renewer the clock offset, the second after.
func TestServiceClockSkew(t *testing.T) {
	const lock = 60 * time.Second
	period := lock - 10*time.Second // renewal to renewal, once the schedule is on the service's clock
	for _, skew := range []time.Duration{-30 * time.Second, 0, 30 * time.Second, 90 * time.Second} {
		t.Run(fmt.Sprintf("local%+v", skew), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				svc := &skewedService{skew: skew, lockDuration: lock}
				r := New(svc, &Options{MaxRenewalDuration: -1, LockDuration: lock})
				defer r.Close()
				start := time.Now()
				ctx1, release1 := r.Hold(context.Background(), svc.receive(1))
				defer release1()
				sleepUntil(start.Add(55 * time.Second)) // the first renewal of message 1 has taught the offset
				ctx2, release2 := r.Hold(context.Background(), svc.receive(2))
				defer release2()
				end := start.Add(12 * period)
				sleepUntil(end)

				checkUndone(t, ctx1, "message 1")
				checkUndone(t, ctx2, "message 2")
				svc.mu.Lock()
				defer svc.mu.Unlock()
				if st := r.Stats(); st.LocksLost != 0 || svc.late != 0 {
					t.Fatalf("stats %+v, %d late renewals; want no lock lost", st, svc.late)
				}
				for id, held := range map[string]time.Time{"msg-1": start, "msg-2": start.Add(55 * time.Second)} {
					rs := svc.renewals[id]
					if len(rs) == 0 || rs[0].Sub(held) > period {
						t.Fatalf("%s: renewals %v after hold at +%v; want the first within %v", id, rs, held.Sub(start), period)
					}
					for i := 1; i < len(rs); i++ {
						if gap := rs[i].Sub(rs[i-1]); gap != period {
							t.Fatalf("%s: renewal %d came %v after the previous one; want %v (one per lock window)", id, i, gap, period)
						}
					}
					if want := int(end.Sub(rs[0])/period) + 1; len(rs) != want {
						t.Fatalf("%s: %d renewals; want %d", id, len(rs), want)
					}
				}
			})
		})
	}
}

// TestRenewalFloor: a lock shorter than 400 ms is not renewed again and again without pause: renewals of one
// lock are at least minRenewInterval apart, so a 200 ms lock gets one renewal and is then lost.
func TestRenewalFloor(t *testing.T) {
	for _, lockDuration := range []time.Duration{0, 200 * time.Millisecond} {
		t.Run(fmt.Sprintf("LockDuration=%v", lockDuration), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				fake := &fakeRenewer{lockDuration: 200 * time.Millisecond, latency: time.Millisecond}
				r := New(fake, &Options{LockDuration: lockDuration})
				defer r.Close()
				start := time.Now()
				ctx, release := r.Hold(context.Background(), lockedMessage(1, 200*time.Millisecond))
				defer release()
				sleepUntil(start.Add(300 * time.Millisecond))
				calls := fake.snapshot()
				for i := 1; i < len(calls); i++ {
					if gap := calls[i].at.Sub(calls[i-1].at); gap < minRenewInterval {
						t.Fatalf("renewals %d and %d of one lock %v apart; want at least %v (%d renewals in 300ms)", i-1, i, gap, minRenewInterval, len(calls))
					}
				}
				if len(calls) != 1 {
					t.Fatalf("%d renewals of a 200ms lock in 300ms; want 1", len(calls))
				}
				checkCause(t, ctx, ErrLockLost)
			})
		})
	}
}
