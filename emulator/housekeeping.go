package emulator

import (
	"fmt"
	"time"

	"github.com/Azure/go-amqp"

	wire "github.com/holdfast-dev/holdfast/emulator/amqp"
	"github.com/holdfast-dev/holdfast/emulator/mgmt"
)

// Service Bus's idle rules, from "AMQP errors in Azure Service Bus"
// (https://learn.microsoft.com/azure/service-bus-messaging/service-bus-amqp-troubleshoot): a link
// on which nothing is sent or received for 10 minutes is detached (amqp:link:detach-forced); a
// connection whose links have all closed is closed when no new link comes within 5 minutes, and
// a new connection that attaches no link within 1 minute is closed (amqp:connection:forced).
const (
	DefaultLinkIdleTimeout       = 10 * time.Minute
	DefaultConnectionIdleTimeout = 5 * time.Minute
	DefaultConnectionOpenTimeout = time.Minute
)

// condDetachForced and condConnectionForced are the conditions the service detaches idle links
// and closes idle connections with.
const (
	condDetachForced     wire.Symbol = "amqp:link:detach-forced"
	condConnectionForced wire.Symbol = "amqp:connection:forced"
)

// idleRules are the limits housekeeping applies; zero durations are off.
type idleRules struct {
	link, conn, open time.Duration // Options.LinkIdleTimeout, ConnectionIdleTimeout, ConnectionOpenTimeout
	receiver         time.Duration // the DetachIdleReceivers fault
	settleMgmt       bool          // its settleOnManagement
}

// period is how often housekeeping looks: a quarter of the shortest limit, between 10 ms and 1 s
// (strict auth's token expiry is checked at that pace too).
func (r idleRules) period() time.Duration {
	p := time.Second
	for _, d := range []time.Duration{r.link, r.conn, r.open, r.receiver} {
		if d > 0 && d/4 < p {
			p = d / 4
		}
	}
	return max(p, 10*time.Millisecond)
}

func (s *Server) idleRules() idleRules {
	r := idleRules{link: s.opts.LinkIdleTimeout, conn: s.opts.ConnectionIdleTimeout, open: s.opts.ConnectionOpenTimeout}
	s.faults.mu.Lock()
	r.receiver, r.settleMgmt = s.faults.idle, s.faults.settleMgmt
	s.faults.mu.Unlock()
	return r
}

// housekeep runs in its own goroutine, owned by Server.wg, until the server closes: it applies
// the idle rules and strict auth's token expiry to every connection, on the wall clock.
func (s *Server) housekeep() {
	defer s.wg.Done()
	for {
		rules := s.idleRules()
		t := time.NewTimer(rules.period())
		select {
		case <-s.done:
			t.Stop()
			return
		case <-s.faults.changed:
			t.Stop()
		case <-t.C:
			now := time.Now()
			for _, c := range s.liveConns() {
				c.housekeep(now, rules)
			}
		}
	}
}

// housekeep detaches this connection's idle links and links whose token expired, and closes
// the connection when it has been without links too long.
func (c *conn) housekeep(now time.Time, r idleRules) {
	var orphaned []amqp.UUID
	c.mu.Lock()
	for _, s := range c.sessions {
		for _, l := range s.links {
			if l.detached || l.pending != nil { // an accept-next wait ends by its own timeout
				continue
			}
			if e := c.linkAuthLocked(l); e != nil {
				c.log.Info("link detached: its token expired", "link", l.name, "path", l.path)
				l.forceDetachLocked(e)
				continue
			}
			limit, fault := r.link, false
			// The fault shortens the idle detach of plain receive links only: the harness of
			// Microsoft's live tests stands in for an entity update with it, and
			// TestSessionReceiver_Detach shows a session receiver still attached after an update
			// (it receives on it at once, without a retry).
			if l.kind == kindEntity && !l.clientSends && l.sess == nil && r.receiver > 0 && (limit <= 0 || r.receiver < limit) {
				limit, fault = r.receiver, true
			}
			if limit <= 0 || now.Sub(l.active) < limit {
				continue
			}
			if fault && !r.settleMgmt {
				for _, p := range s.unsettled {
					if p.link == l {
						orphaned = append(orphaned, p.token)
					}
				}
			}
			c.log.Info("idle link detached", "link", l.name, "path", l.path, "idle", now.Sub(l.active).Round(time.Millisecond))
			l.forceDetachLocked(idleDetachError(l, limit))
			c.srv.faults.idleDetaches.Add(1)
		}
	}
	closeErr := c.idleCloseLocked(now, r)
	c.mu.Unlock()
	if len(orphaned) > 0 {
		c.srv.faults.RejectManagementSettlement(orphaned...)
	}
	if closeErr != nil {
		c.log.Info("idle connection closed", "description", closeErr.Description)
		_ = c.writeFrame(wire.Frame{Type: wire.FrameAMQP, Body: &wire.Close{Error: closeErr}})
		c.shutdown()
	}
}

// idleCloseLocked returns the error to close the connection with when it has had no link for
// too long (nil otherwise). Caller holds c.mu.
func (c *conn) idleCloseLocked(now time.Time, r idleRules) *wire.Error {
	if c.liveLinks > 0 || c.noLinksSince.IsZero() {
		return nil
	}
	limit := r.conn
	if !c.everLinked {
		limit = r.open
	}
	if limit <= 0 || now.Sub(c.noLinksSince) < limit {
		return nil
	}
	return &wire.Error{Condition: condConnectionForced, Description: fmt.Sprintf(
		"The connection was closed by container 'holdfast-emulator-%s' because it did not have any active links in the past %d milliseconds.",
		c.id, limit.Milliseconds())}
}

// linkAuthLocked returns the error to detach l with when, in strict auth mode, its connection no
// longer holds an unexpired claim for it (nil otherwise). Caller holds c.mu.
func (c *conn) linkAuthLocked(l *link) *wire.Error {
	switch {
	case l.kind == kindCBS:
		return nil
	case l.kind == kindMgmt:
		return c.authorizeLocked(l.path, 0)
	case l.clientSends:
		return c.authorizeLocked(l.path, mgmt.RightSend)
	default:
		return c.authorizeLocked(l.path, mgmt.RightListen)
	}
}

// idleDetachError is the service's detach error for an idle link.
func idleDetachError(l *link, limit time.Duration) *wire.Error {
	origin := "AmqpMessageConsumer.IdleTimerExpired"
	if l.clientSends {
		origin = "AmqpMessagePublisher.IdleTimerExpired"
	}
	return &wire.Error{Condition: condDetachForced, Description: fmt.Sprintf(
		"The link '%s' is force detached. Code: %s. Details: %s: Idle timeout: %s.", l.name, map[bool]string{true: "publisher", false: "consumer"}[l.clientSends], origin, timeSpan(limit))}
}

// timeSpan formats d as .NET prints a TimeSpan: [d.]hh:mm:ss[.fffffff].
func timeSpan(d time.Duration) string {
	days := d / (24 * time.Hour)
	d -= days * 24 * time.Hour
	h, m, sec := d/time.Hour, (d%time.Hour)/time.Minute, (d%time.Minute)/time.Second
	out := fmt.Sprintf("%02d:%02d:%02d", h, m, sec)
	if frac := d % time.Second; frac != 0 {
		out += fmt.Sprintf(".%07d", frac/100)
	}
	if days > 0 {
		out = fmt.Sprintf("%d.%s", days, out)
	}
	return out
}

// forceDetachLocked detaches l from the server side with e. The link stays in its session until
// the client answers with its own detach. Caller holds c.mu.
func (l *link) forceDetachLocked(e *wire.Error) {
	if l.detached {
		return
	}
	l.detachLocked()
	l.detachSent = true
	_ = l.s.sendLocked(&wire.Detach{Handle: l.handle, Closed: true, Error: e}, nil)
}
