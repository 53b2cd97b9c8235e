package lockrenew

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus"
)

// instantRenewer extends every lock by an hour at once and reports each call to done.
type instantRenewer struct {
	done *sync.WaitGroup
}

func (f instantRenewer) RenewMessageLock(_ context.Context, msg *azservicebus.ReceivedMessage, _ *azservicebus.RenewMessageLockOptions) error {
	until := time.Now().Add(time.Hour)
	msg.LockedUntil = &until
	f.done.Done()
	return nil
}

// BenchmarkHold1000 measures one cycle of 1,000 holds: Hold each message (its lock has 390 ms left, so
// it is renewed at once through 16 slots), wait until each is renewed (or lost, on a machine too busy to
// start its goroutine in time), release all.
func BenchmarkHold1000(b *testing.B) {
	const holds = 1000
	var renewed sync.WaitGroup
	r := New(instantRenewer{done: &renewed}, &Options{
		MaxRenewalDuration: -1,
		OnLockLost:         func(*azservicebus.ReceivedMessage, error) { renewed.Done() },
	})
	defer r.Close()
	msgs := make([]*azservicebus.ReceivedMessage, holds)
	releases := make([]func(), holds)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		renewed.Add(holds)
		for i := range msgs {
			until := time.Now().Add(390 * time.Millisecond)
			msgs[i] = &azservicebus.ReceivedMessage{LockedUntil: &until}
			_, releases[i] = r.Hold(ctx, msgs[i])
		}
		renewed.Wait()
		for _, release := range releases {
			release()
		}
	}
	b.StopTimer()
	st := r.Stats()
	if st.Held != 0 || st.Renewals+st.LocksLost != uint64(b.N)*holds {
		b.Fatalf("stats = %+v; want %d renewals or lost locks, nothing held", st, b.N*holds)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*holds), "ns/hold")
	b.ReportMetric(float64(st.LocksLost)/float64(b.N), "lost/op")
}

// BenchmarkHoldRelease measures holding and releasing one message without a renewal.
func BenchmarkHoldRelease(b *testing.B) {
	r := New(instantRenewer{done: &sync.WaitGroup{}}, nil)
	defer r.Close()
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		until := time.Now().Add(time.Hour)
		_, release := r.Hold(ctx, &azservicebus.ReceivedMessage{LockedUntil: &until})
		release()
	}
	if st := r.Stats(); st.Renewals != 0 || st.Held != 0 {
		b.Fatalf("stats = %+v; want no renewal, nothing held", st)
	}
}
