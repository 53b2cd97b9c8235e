package emulator

import (
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/Azure/go-amqp"

	"github.com/holdfast-dev/holdfast/emulator/admin"
	wire "github.com/holdfast-dev/holdfast/emulator/amqp"
	"github.com/holdfast-dev/holdfast/emulator/mgmt"
)

// condDetachForced is the condition the service detaches idle links with.
const condDetachForced wire.Symbol = "amqp:link:detach-forced"

// Faults injects failures a real namespace produces only by accident, so tests can prove how
// clients recover. Management-level faults (FailRenewLocks, DelayManagement) come from the
// embedded *mgmt.Faults; connection-level faults are below. Every method is safe for
// concurrent use, takes effect at once and never waits for connections to finish closing.
// Connection-level faults run on the wall clock, not Options.Clock.
//
//	srv.Faults().FailRenewLocks(3, 410)
//	srv.Faults().DetachIdleReceivers(time.Second, false)
type Faults struct {
	*mgmt.Faults
	s *Server

	idleDetaches atomic.Uint64 // receive links detached for idleness
	refused      atomic.Uint64 // connections refused

	mu          sync.Mutex // guards the fields below
	idle        time.Duration
	settleMgmt  bool
	refuseUntil time.Time
	changed     chan struct{} // capacity 1: wakes the idle watcher after a change
}

var _ admin.ConnectionFaults = (*Faults)(nil)

func newFaults(s *Server, mf *mgmt.Faults) *Faults {
	return &Faults{Faults: mf, s: s, changed: make(chan struct{}, 1)}
}

// DropConnections closes every client connection now with amqp:connection:forced and returns
// how many there were. Clients reconnect; messages they had locked stay locked until they
// are settled from the new connection or their lock expires.
func (f *Faults) DropConnections() int {
	conns := f.s.liveConns()
	for _, c := range conns {
		_ = c.writeFrame(wire.Frame{Type: wire.FrameAMQP, Body: &wire.Close{Error: &wire.Error{
			Condition:   "amqp:connection:forced",
			Description: "The connection was closed by the emulator (injected fault).",
		}}})
		c.shutdown()
	}
	f.s.log.Info("fault: dropped every connection", "count", len(conns))
	return len(conns)
}

// DetachIdleReceivers makes the server detach receive links that have seen no flow or
// transfer for idle, with amqp:link:detach-forced, as Service Bus does after 10 minutes
// (idle 0 turns it off). Renewing the locks of their messages keeps working. With
// settleOnManagement false, settling those messages afterwards (the SDK falls back to the
// $management link) answers 410 lock lost, the failure reported against the service; with
// true it is accepted.
func (f *Faults) DetachIdleReceivers(idle time.Duration, settleOnManagement bool) error {
	if idle < 0 {
		return fmt.Errorf("emulator: detach idle receivers: %s is negative", idle)
	}
	f.mu.Lock()
	f.idle, f.settleMgmt = idle, settleOnManagement
	f.mu.Unlock()
	f.poke()
	return nil
}

// RefuseConnections closes new TCP connections at once for d (0 stops refusing). Open
// connections are not affected.
func (f *Faults) RefuseConnections(d time.Duration) error {
	if d < 0 {
		return fmt.Errorf("emulator: refuse connections: %s is negative", d)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.refuseUntil = time.Time{}
	if d > 0 {
		f.refuseUntil = time.Now().Add(d)
	}
	return nil
}

// ConnectionFaultState reports the connection-level faults in force.
func (f *Faults) ConnectionFaultState() admin.ConnectionFaultState {
	f.mu.Lock()
	defer f.mu.Unlock()
	st := admin.ConnectionFaultState{DetachIdleAfter: f.idle, SettleOnManagement: f.settleMgmt}
	if time.Now().Before(f.refuseUntil) {
		st.RefuseUntil = f.refuseUntil
	}
	return st
}

// Reset clears every fault, management- and connection-level.
func (f *Faults) Reset() {
	f.Faults.Reset()
	f.mu.Lock()
	f.idle, f.settleMgmt, f.refuseUntil = 0, false, time.Time{}
	f.mu.Unlock()
	f.poke()
}

func (f *Faults) poke() {
	select {
	case f.changed <- struct{}{}:
	default:
	}
}

// refusing reports whether a connection accepted now must be refused, and counts it.
func (f *Faults) refusing(now time.Time) bool {
	f.mu.Lock()
	refuse := now.Before(f.refuseUntil)
	f.mu.Unlock()
	if refuse {
		f.refused.Add(1)
	}
	return refuse
}

func (f *Faults) idleSetting() (time.Duration, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.idle, f.settleMgmt
}

// watchIdle runs in its own goroutine, owned by Server.wg, until the server closes: while
// DetachIdleReceivers is on it checks every idle/4 (at least 10 ms) for idle receive links.
func (f *Faults) watchIdle() {
	defer f.s.wg.Done()
	for {
		idle, settle := f.idleSetting()
		var tick <-chan time.Time
		var t *time.Timer
		if idle > 0 {
			t = time.NewTimer(max(idle/4, 10*time.Millisecond))
			tick = t.C
		}
		select {
		case <-f.s.done:
			if t != nil {
				t.Stop()
			}
			return
		case <-f.changed:
			if t != nil {
				t.Stop()
			}
		case <-tick:
			for _, c := range f.s.liveConns() {
				f.idleDetaches.Add(uint64(c.detachIdleReceivers(idle, settle, f.Faults)))
			}
		}
	}
}

// IdleDetaches reports how many receive links DetachIdleReceivers has detached so far.
func (f *Faults) IdleDetaches() uint64 { return f.idleDetaches.Load() }

// RefusedConnections reports how many connections RefuseConnections has refused so far.
func (f *Faults) RefusedConnections() uint64 { return f.refused.Load() }

// detachIdleReceivers detaches this connection's entity receive links idle for at least idle
// and returns how many it detached.
func (c *conn) detachIdleReceivers(idle time.Duration, settleOnManagement bool, mf *mgmt.Faults) int {
	now := time.Now()
	n := 0
	var orphaned []amqp.UUID
	c.mu.Lock()
	for _, s := range c.sessions {
		for _, l := range s.links {
			if l.kind != kindEntity || l.clientSends || l.detached || now.Sub(l.active) < idle {
				continue
			}
			for _, p := range s.unsettled {
				if p.link == l {
					orphaned = append(orphaned, p.token)
				}
			}
			l.detachLocked()
			l.detachSent = true
			_ = s.sendLocked(&wire.Detach{Handle: l.handle, Closed: true, Error: &wire.Error{
				Condition: condDetachForced,
				Description: fmt.Sprintf("The link '%s' is force detached. Code: consumer. Details: AmqpMessageConsumer.IdleTimerExpired: Idle timeout: %s.",
					l.name, idle),
			}}, nil)
			c.log.Info("fault: detached idle receive link", "link", l.name, "path", l.path, "idle", now.Sub(l.active))
			n++
		}
	}
	c.mu.Unlock()
	if !settleOnManagement && len(orphaned) > 0 {
		mf.RejectManagementSettlement(orphaned...)
	}
	return n
}
