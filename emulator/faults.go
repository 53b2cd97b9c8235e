package emulator

import (
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/holdfast-dev/holdfast/emulator/admin"
	wire "github.com/holdfast-dev/holdfast/emulator/amqp"
	"github.com/holdfast-dev/holdfast/emulator/mgmt"
)

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
			Condition:   condConnectionForced,
			Description: "The connection was closed by the emulator (injected fault).",
		}}})
		c.shutdown()
	}
	f.s.log.Info("fault: dropped every connection", "count", len(conns))
	return len(conns)
}

// DetachIdleReceivers makes the server detach entity receive links that have seen no flow,
// transfer or disposition for idle, with amqp:link:detach-forced: the service's idle detach
// (Options.LinkIdleTimeout, 10 minutes) made short for receivers (idle 0 turns the fault off).
// Session receivers are left alone (see housekeeping.go); shorten LinkIdleTimeout for them.
// Renewing the locks of their messages keeps working. With settleOnManagement true settling
// those messages afterwards (the SDK falls back to the $management link) is accepted, as on
// the service (Microsoft's TestMessageSettlementUsingOnlyBackupSettlement settles through
// $management after the receiving link or connection is gone). false is a what-if beyond
// the service: that settlement answers 410 lock lost.
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

// ExpireSessionLock ends the lock on session sessionID of the session queue or subscription
// at entityPath now, as if it had expired: the receive link holding it is detached with
// com.microsoft:session-lock-lost, its unsettled messages are available again with their
// delivery count raised, and settling them with their old lock tokens answers 410
// (com.microsoft:session-lock-lost; the SDK reports CodeLockLost). The session is free for
// any receiver afterwards — the SDK's own session receiver re-accepts it when it retries.
// Not locked ⇒ an error wrapping broker.ErrSessionLockLost.
func (f *Faults) ExpireSessionLock(entityPath, sessionID string) error {
	e, err := f.s.broker.Entity(entityPath)
	if err != nil {
		return fmt.Errorf("emulator: expire session lock: %w", err)
	}
	if err := e.ExpireSessionLock(sessionID); err != nil {
		return fmt.Errorf("emulator: expire session lock: %w", err)
	}
	f.s.log.Info("fault: session lock expired on demand", "entity", entityPath, "session", sessionID)
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

// IdleDetaches reports how many links the server has detached for idleness so far (the
// DetachIdleReceivers fault and Options.LinkIdleTimeout).
func (f *Faults) IdleDetaches() uint64 { return f.idleDetaches.Load() }

// RefusedConnections reports how many connections RefuseConnections has refused so far.
func (f *Faults) RefusedConnections() uint64 { return f.refused.Load() }
