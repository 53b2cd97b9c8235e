package emulator

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	wire "github.com/holdfast-dev/holdfast/emulator/amqp"
	"github.com/holdfast-dev/holdfast/emulator/mgmt"
)

const (
	// handshakeTimeout bounds the protocol headers, SASL and open exchange.
	handshakeTimeout = 30 * time.Second
	// writeTimeout bounds one frame write; a peer that stops reading for that long is dropped.
	writeTimeout = 30 * time.Second
	// idleTimeout is advertised in open: the client sends a frame at least every idleTimeout/2, and the
	// server drops a connection that stays silent for twice idleTimeout.
	idleTimeout = 60 * time.Second
	// closeLinger bounds how long a connection closed by the server waits for the client to hang up.
	closeLinger = time.Second
	// channelMax is advertised in open.
	channelMax = math.MaxUint16
)

// AMQP error conditions the server sends.
const (
	condDecodeError      wire.Symbol = "amqp:decode-error"
	condFramingError     wire.Symbol = "amqp:connection:framing-error"
	condNotAllowed       wire.Symbol = "amqp:not-allowed"
	condNotFound         wire.Symbol = "amqp:not-found"
	condNotImplemented   wire.Symbol = "amqp:not-implemented"
	condInternalError    wire.Symbol = "amqp:internal-error"
	condMessageSize      wire.Symbol = "amqp:link:message-size-exceeded"
	condLockLost         wire.Symbol = "com.microsoft:message-lock-lost"
	condUnattachedHandle wire.Symbol = "amqp:session:unattached-handle"
	condHandleInUse      wire.Symbol = "amqp:session:handle-in-use"
	condInvalidField     wire.Symbol = "amqp:invalid-field"
	condUnauthorized     wire.Symbol = "amqp:unauthorized-access"
	condEntityDisabled   wire.Symbol = "com.microsoft:entity-disabled"
)

var connIDs atomic.Uint64

// conn is one client connection.
//
// Goroutines: the connection goroutine (serve) reads every frame and handles it; it alone creates and
// removes sessions and links. keepAlive and one run goroutine per entity receiver link write frames too.
// All of them are counted in wg and joined by teardown before serve returns.
//
// Locks: mu guards the protocol state (sessions, links, their counters, replyLinks) and is held while a
// frame that depends on that state is written, so frames leave in state order. wmu serializes socket
// writes. Lock order: mu, then wmu. No broker or management call is made while holding mu.
type conn struct {
	srv *Server
	nc  net.Conn
	log *slog.Logger
	id  string

	fr *wire.FrameReader // owned by the connection goroutine

	wmu  sync.Mutex // guards wbuf and writes to nc
	wbuf []byte

	wg   sync.WaitGroup // keepAlive and link goroutines
	done chan struct{}  // closed by teardown: every goroutine of the connection returns

	mu sync.Mutex // guards the fields below
	// peerMaxFrame is the largest frame the client accepts; set once before any link exists.
	peerMaxFrame uint32
	// sessions by channel. The server answers on the same channel number the client began on.
	// Written only by the connection goroutine (holding mu).
	sessions map[uint16]*session
	// replyLinks maps reply addresses ($cbs and $management receivers' target addresses and link names)
	// to the link the replies go out on. Written only by the connection goroutine (holding mu).
	replyLinks map[string]*link
	// liveLinks counts attached links not yet detached; noLinksSince is when it last fell to
	// zero (or when the connection opened), everLinked whether any link was ever attached.
	// They drive the idle connection rules (housekeeping.go).
	liveLinks    int
	noLinksSince time.Time
	everLinked   bool
	// grants are the claims put-token gave this connection, one per audience path (a later
	// put-token for the same path replaces it). Enforced only in strict auth mode.
	grants []mgmt.Grant
}

func newConn(s *Server, nc net.Conn) *conn {
	id := "c" + strconv.FormatUint(connIDs.Add(1), 10)
	c := &conn{
		srv:        s,
		nc:         nc,
		id:         id,
		log:        s.log.With("conn", id, "remote", nc.RemoteAddr().String()),
		done:       make(chan struct{}),
		sessions:   make(map[uint16]*session),
		replyLinks: make(map[string]*link),
	}
	c.fr = wire.NewFrameReader(nc)
	c.fr.SetMaxFrameSize(s.opts.MaxFrameSize)
	return c
}

// shutdown makes the connection goroutine stop; it may be called from any goroutine, more than once.
func (c *conn) shutdown() { _ = c.nc.Close() }

// serve runs the connection on the connection goroutine and returns after every goroutine of the
// connection has exited.
func (c *conn) serve() {
	defer c.teardown()
	c.log.Debug("connection accepted")
	_ = c.nc.SetReadDeadline(time.Now().Add(handshakeTimeout))
	if err := c.handshake(); err != nil {
		c.log.Debug("handshake failed", "err", err)
		return
	}
	if err := c.open(); err != nil {
		c.log.Debug("open failed", "err", err)
		if errors.Is(err, wire.ErrDecode) {
			c.closeWithError(&wire.Error{Condition: condDecodeError, Description: err.Error()})
		}
		return
	}
	c.wg.Add(1)
	go c.keepAlive()
	c.readLoop()
}

// open reads the client's open and answers it.
func (c *conn) open() error {
	f, err := c.fr.ReadFrame()
	if err != nil {
		return fmt.Errorf("read open: %w", err)
	}
	o, ok := f.Body.(*wire.Open)
	if !ok || f.Type != wire.FrameAMQP {
		return fmt.Errorf("%w: expected open, got %T", wire.ErrDecode, f.Body)
	}
	c.mu.Lock()
	c.peerMaxFrame = o.MaxFrameSize
	if c.peerMaxFrame == 0 {
		c.peerMaxFrame = math.MaxUint32
	}
	c.noLinksSince = time.Now()
	c.mu.Unlock()
	c.log.Debug("open", "container", o.ContainerID, "hostname", o.Hostname, "max-frame-size", o.MaxFrameSize)
	return c.writeFrame(wire.Frame{Type: wire.FrameAMQP, Body: &wire.Open{
		ContainerID:  "holdfast-emulator-" + c.id,
		Hostname:     o.Hostname,
		MaxFrameSize: c.srv.opts.MaxFrameSize,
		ChannelMax:   channelMax,
		IdleTimeout:  uint32(idleTimeout / time.Millisecond),
	}})
}

// readLoop reads and handles frames until the connection ends.
func (c *conn) readLoop() {
	for {
		_ = c.nc.SetReadDeadline(time.Now().Add(2 * idleTimeout))
		f, err := c.fr.ReadFrame()
		if err != nil {
			switch {
			case errors.Is(err, wire.ErrFrameTooLarge):
				c.log.Info("frame too large", "err", err)
				c.closeWithError(&wire.Error{Condition: condFramingError, Description: err.Error()})
			case errors.Is(err, wire.ErrDecode):
				c.log.Info("malformed frame", "err", err)
				c.closeWithError(&wire.Error{Condition: condDecodeError, Description: err.Error()})
			default:
				c.log.Debug("connection ended", "err", err)
			}
			return
		}
		if done, cerr := c.handle(f); cerr != nil {
			c.log.Info("protocol error", "condition", cerr.Condition, "description", cerr.Description)
			c.closeWithError(cerr)
			return
		} else if done {
			return
		}
	}
}

// handle dispatches one frame. It returns done when the client closed the connection, or an error that
// closes it.
func (c *conn) handle(f wire.Frame) (done bool, _ *wire.Error) {
	if f.Body == nil {
		return false, nil // keepalive
	}
	if f.Type != wire.FrameAMQP {
		return false, &wire.Error{Condition: condDecodeError, Description: fmt.Sprintf("unexpected frame type %d", f.Type)}
	}
	switch b := f.Body.(type) {
	case *wire.Close:
		if b.Error != nil {
			c.log.Info("client closed the connection with an error", "condition", b.Error.Condition, "description", b.Error.Description)
		}
		_ = c.writeFrame(wire.Frame{Type: wire.FrameAMQP, Body: &wire.Close{}})
		return true, nil
	case *wire.Begin:
		return false, c.handleBegin(f.Channel, b)
	case *wire.Open:
		return false, &wire.Error{Condition: condNotAllowed, Description: "open received twice"}
	}
	s := c.sessions[f.Channel] // only this goroutine writes the map
	if _, isEnd := f.Body.(*wire.End); isEnd && s == nil {
		// A client that gave up waiting for a session to begin ends it later, whether or not its begin was
		// ever sent (go-amqp's Conn.NewSession: a failed begin is "abandoned", and the next NewSession sends
		// end on its channel). Nothing is open on the channel, so there is nothing to end or to answer.
		c.log.Info("end on a channel with no session, ignored", "channel", f.Channel)
		return false, nil
	}
	if s == nil {
		return false, &wire.Error{Condition: condNotAllowed, Description: fmt.Sprintf("%T on channel %d, which has no session", f.Body, f.Channel)}
	}
	switch b := f.Body.(type) {
	case *wire.Attach:
		return false, c.handleAttach(s, b)
	case *wire.Flow:
		return false, c.handleFlow(s, b)
	case *wire.Transfer:
		return false, c.handleTransfer(s, b, f.Payload)
	case *wire.Disposition:
		c.handleDisposition(s, b)
		return false, nil
	case *wire.Detach:
		c.handleDetach(s, b)
		return false, nil
	case *wire.End:
		c.handleEnd(s, b)
		return false, nil
	default:
		return false, &wire.Error{Condition: condNotAllowed, Description: fmt.Sprintf("unexpected %T", f.Body)}
	}
}

// closeWithError sends close with e, then discards what the client still sends for up to
// closeLinger, so that closing the socket does not reset the connection before the client has read
// the close. The connection goroutine tears the connection down afterwards.
func (c *conn) closeWithError(e *wire.Error) {
	if err := c.writeFrame(wire.Frame{Type: wire.FrameAMQP, Body: &wire.Close{Error: e}}); err != nil {
		return
	}
	_ = c.nc.SetReadDeadline(time.Now().Add(closeLinger))
	_, _ = io.Copy(io.Discard, c.nc)
}

// teardown runs on the connection goroutine when serve returns: it stops every link, closes the socket
// and joins the connection's goroutines. Messages locked by this connection stay locked until they are
// settled from another connection or their lock expires, as in Service Bus.
func (c *conn) teardown() {
	c.mu.Lock()
	close(c.done)
	for _, s := range c.sessions {
		s.endLocked()
	}
	clear(c.sessions)
	c.mu.Unlock()
	_ = c.nc.Close()
	c.wg.Wait()
	c.log.Debug("connection closed")
}

// keepAlive sends an empty frame every KeepAlive so that the client's idle timer never fires. It runs in
// its own goroutine, owned by c.wg.
func (c *conn) keepAlive() {
	defer c.wg.Done()
	t := time.NewTicker(c.srv.opts.KeepAlive)
	defer t.Stop()
	for {
		select {
		case <-c.done:
			return
		case <-t.C:
			if err := c.writeFrame(wire.Frame{Type: wire.FrameAMQP}); err != nil {
				return
			}
		}
	}
}

// writeRaw writes bytes (protocol headers). Safe for concurrent use.
func (c *conn) writeRaw(b []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	_ = c.nc.SetWriteDeadline(time.Now().Add(writeTimeout))
	if _, err := c.nc.Write(b); err != nil {
		_ = c.nc.Close() // the connection goroutine notices and tears down
		return fmt.Errorf("write: %w", err)
	}
	return nil
}

// writeFrame encodes and writes one frame. Safe for concurrent use; callers that need frames ordered
// with protocol state hold mu. A write failure closes the socket.
func (c *conn) writeFrame(f wire.Frame) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	buf, err := wire.AppendFrame(c.wbuf[:0], f)
	if err != nil {
		c.log.Error("encode frame", "body", fmt.Sprintf("%T", f.Body), "err", err)
		return fmt.Errorf("encode %T: %w", f.Body, err)
	}
	if cap(buf) <= 1<<20 {
		c.wbuf = buf
	}
	_ = c.nc.SetWriteDeadline(time.Now().Add(writeTimeout))
	if _, err := c.nc.Write(buf); err != nil {
		_ = c.nc.Close()
		return fmt.Errorf("write %T: %w", f.Body, err)
	}
	return nil
}
