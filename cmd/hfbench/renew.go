package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus"

	"github.com/holdfast-dev/holdfast/emulator"
	"github.com/holdfast-dev/holdfast/emulator/broker"
	"github.com/holdfast-dev/holdfast/internal/benchkit"
	"github.com/holdfast-dev/holdfast/internal/config"
	"github.com/holdfast-dev/holdfast/internal/process"
	"github.com/holdfast-dev/holdfast/processor"
)

// renewOptions configure P2.
type renewOptions struct {
	messages int           // held at once, per policy
	lock     time.Duration // the queues' lock duration
	hold     time.Duration // how long each message is worked on
	latency  time.Duration // injected before every $management reply (renewals)
}

// policyResult is what one renewal policy did.
type policyResult struct {
	name      string
	renewals  int64 // renew requests sent (successful or not)
	lost      int64 // messages whose lock was lost (renewal refused, or the final complete failed)
	completed int64
}

// renewP2 (P2) holds messages on short locks with an injected management latency and counts renew requests and
// lost locks for holdfast's run and for two policies users write by hand, side by side on three queues of one
// emulator: a fixed 20 s ticker, and a renewal every lockDuration/2 counted from receive.
func renewP2(w io.Writer, o renewOptions) ([]policyResult, error) {
	srv, err := emulator.Start(&emulator.Options{})
	if err != nil {
		return nil, err
	}
	defer srv.Close()
	props := broker.DefaultQueueProperties()
	props.LockDuration = o.lock
	queues := []string{"p2-holdfast", "p2-ticker", "p2-half"}
	ctx := context.Background()
	for _, q := range queues {
		if err := srv.Broker().CreateQueue(q, props); err != nil {
			return nil, err
		}
	}
	sendClient, err := azservicebus.NewClientFromConnectionString(srv.ConnectionString(), nil)
	if err != nil {
		return nil, err
	}
	defer sendClient.Close(ctx)
	for _, q := range queues {
		if err := benchkit.Send(ctx, sendClient, q, o.messages, 64, q+"-"); err != nil {
			return nil, err
		}
	}
	if err := srv.Faults().DelayManagement(o.latency); err != nil {
		return nil, err
	}

	results := make([]policyResult, 3)
	errs := make([]error, 3)
	var wg sync.WaitGroup
	wg.Go(func() { results[0], errs[0] = holdfastPolicy(srv.ConnectionString(), queues[0], o) })
	wg.Go(func() {
		results[1], errs[1] = tickerPolicy(srv.ConnectionString(), queues[1], o, "fixed 20 s ticker", 20*time.Second)
	})
	wg.Go(func() {
		results[2], errs[2] = tickerPolicy(srv.ConnectionString(), queues[2], o, "every lockDuration/2 from receive", o.lock/2)
	})
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	delayed := srv.Faults().State().DelayedRequests

	windows := float64(o.messages) * o.hold.Seconds() / o.lock.Seconds()
	fmt.Fprintf(w, "%d messages per policy, each worked on for %v on %v locks (%.0f lock windows per policy), %v added to every "+
		"$management reply (renewals; %d requests delayed), the three policies side by side on three queues of one in-process emulator.\n\n",
		o.messages, o.hold, o.lock, windows, o.latency, delayed)
	fmt.Fprintf(w, "| policy | renew requests | per message per lock window | locks lost | completed |\n|---|---|---|---|---|\n")
	for _, r := range results {
		fmt.Fprintf(w, "| %s | %d | %.2f | %d | %d |\n", r.name, r.renewals, float64(r.renewals)/windows, r.lost, r.completed)
	}
	return results, nil
}

// holdfastPolicy runs the production path: a Service run with HOLDFAST_CONCURRENCY = messages and
// HOLDFAST_LOCK_DURATION = the lock, whose processor works for o.hold on each message.
func holdfastPolicy(conn, queue string, o renewOptions) (policyResult, error) {
	res := policyResult{name: "holdfast run (lockrenew: LockedUntil − min(remaining/2, 10 s))"}
	cfg, err := config.Load(func(k string) string {
		return map[string]string{config.SettingServiceBus: conn, config.SettingEntity: queue,
			config.SettingConcurrency: fmt.Sprint(o.messages), config.SettingLockDuration: o.lock.String(),
			config.SettingRunBudget: (o.hold + time.Minute).String()}[k]
	})
	if err != nil {
		return res, err
	}
	work := processor.Func(func(ctx context.Context, _ *azservicebus.ReceivedMessage) processor.Outcome {
		t := time.NewTimer(o.hold)
		defer t.Stop()
		select {
		case <-t.C:
			return processor.Complete()
		case <-ctx.Done():
			return processor.Abandon(context.Cause(ctx))
		}
	})
	svc, err := process.NewService(&process.ServiceOptions{Config: cfg, Processor: work, NoMessageWait: time.Second})
	if err != nil {
		return res, err
	}
	defer svc.Close(context.Background())
	s, err := svc.Run(context.Background())
	if err != nil {
		return res, err
	}
	res.renewals = int64(s.Renewals)
	res.lost = s.LocksLost + s.Abandoned // an abandon here means a renewal or a settlement failed
	res.completed = s.Completed
	return res, nil
}

// tickerPolicy receives every message, then renews each one every period from its receipt until o.hold has
// passed, and completes it: what a hand-written loop around RenewMessageLock does. A refused renewal or a
// failed complete counts as a lost lock.
func tickerPolicy(conn, queue string, o renewOptions, name string, period time.Duration) (policyResult, error) {
	res := policyResult{name: name}
	client, err := azservicebus.NewClientFromConnectionString(conn, nil)
	if err != nil {
		return res, err
	}
	defer client.Close(context.Background())
	rcv, err := client.NewReceiverForQueue(queue, nil)
	if err != nil {
		return res, err
	}
	defer rcv.Close(context.Background())
	ctx := context.Background()
	var renewals, lost, completed atomic.Int64
	var wg sync.WaitGroup
	for got := 0; got < o.messages; {
		msgs, err := rcv.ReceiveMessages(ctx, o.messages-got, nil)
		if err != nil {
			return res, err
		}
		got += len(msgs)
		for _, m := range msgs {
			wg.Go(func() {
				end := time.Now().Add(o.hold)
				tick := time.NewTicker(period)
				defer tick.Stop()
				done := time.NewTimer(o.hold)
				defer done.Stop()
				for {
					select {
					case <-tick.C:
						if !time.Now().Before(end) {
							continue
						}
						renewals.Add(1)
						if err := rcv.RenewMessageLock(ctx, m, nil); err != nil {
							lost.Add(1)
							return
						}
					case <-done.C:
						if err := rcv.CompleteMessage(ctx, m, nil); err != nil {
							lost.Add(1)
							return
						}
						completed.Add(1)
						return
					}
				}
			})
		}
	}
	wg.Wait()
	res.renewals, res.lost, res.completed = renewals.Load(), lost.Load(), completed.Load()
	return res, nil
}
