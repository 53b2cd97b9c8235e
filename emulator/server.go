// Package emulator is a local Azure Service Bus emulator: an AMQP 1.0 server that speaks the Service Bus
// extensions (SASL ANONYMOUS/MSSBCBS, CBS put-token, $management, lock tokens, dispositions) well enough
// for the unmodified azservicebus SDK. Entities and messages live in an in-memory broker.Broker.
//
// Start a server in a test, point the SDK at ConnectionString, create queues through Broker, and Close it:
//
//	srv, err := emulator.Start(&emulator.Options{})
//	...
//	defer srv.Close()
//	_ = srv.Broker().CreateQueue("orders", broker.DefaultQueueProperties())
//	client, err := azservicebus.NewClientFromConnectionString(srv.ConnectionString(), nil)
package emulator

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/holdfast-dev/holdfast/emulator/broker"
	"github.com/holdfast-dev/holdfast/emulator/mgmt"
)

// Defaults applied by Start to zero-valued Options fields.
const (
	DefaultAddr           = "localhost:0"
	DefaultKeepAlive      = 15 * time.Second
	DefaultMaxFrameSize   = 65536
	DefaultMaxMessageSize = 262144

	// minMaxFrameSize is the smallest max-frame-size AMQP 1.0 allows (§2.7.1).
	minMaxFrameSize = 512
)

// Options configures Start. A nil *Options and zero fields mean defaults.
type Options struct {
	// Addr is the TCP address to listen on. Default "localhost:0" (a free port).
	Addr string
	// Config holds the entities created at start. Nil means an empty namespace.
	Config *broker.Config
	// Logger receives connection-level events. Nil discards them.
	Logger *slog.Logger
	// Clock drives lock expiry in the broker. Nil means the real clock.
	Clock broker.Clock
	// KeepAlive is the interval between empty frames sent on every connection. Default 15s.
	KeepAlive time.Duration
	// MaxFrameSize is the largest frame the server accepts and advertises in open. Default 65536.
	MaxFrameSize uint32
	// MaxMessageSize is the largest message (or batch) a client may send, advertised on sender attach.
	// Default 262144 (Standard tier).
	MaxMessageSize uint64
}

// withDefaults returns a copy of o (which may be nil) with defaults filled in.
func (o *Options) withDefaults() (Options, error) {
	var r Options
	if o != nil {
		r = *o
	}
	if r.Addr == "" {
		r.Addr = DefaultAddr
	}
	if r.Logger == nil {
		r.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if r.Clock == nil {
		r.Clock = broker.RealClock()
	}
	if r.KeepAlive == 0 {
		r.KeepAlive = DefaultKeepAlive
	}
	if r.KeepAlive < 0 {
		return r, fmt.Errorf("emulator: KeepAlive %v is negative", r.KeepAlive)
	}
	if r.MaxFrameSize == 0 {
		r.MaxFrameSize = DefaultMaxFrameSize
	}
	if r.MaxFrameSize < minMaxFrameSize {
		return r, fmt.Errorf("emulator: MaxFrameSize %d is below the AMQP minimum %d", r.MaxFrameSize, minMaxFrameSize)
	}
	if r.MaxMessageSize == 0 {
		r.MaxMessageSize = DefaultMaxMessageSize
	}
	return r, nil
}

// Server is a running emulator: a TCP listener, the connections it accepted and the broker behind them.
// Its methods are safe for concurrent use.
type Server struct {
	opts   Options // immutable after Start
	log    *slog.Logger
	ln     net.Listener
	broker *broker.Broker
	mgmt   *mgmt.Handler

	// wg counts the accept goroutine and one goroutine per connection; Close waits for it.
	wg sync.WaitGroup

	mu     sync.Mutex         // guards the fields below
	conns  map[*conn]struct{} // live connections, removed by their own goroutine on exit
	closed bool               // set by Close; no connection is registered afterwards
	done   chan struct{}      // closed by Close

	closeOnce sync.Once
	closeErr  error
}

// Start creates the broker from opts.Config, listens on opts.Addr and serves connections until Close.
func Start(opts *Options) (*Server, error) {
	o, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	b, err := broker.New(o.Config, &broker.Options{Clock: o.Clock, Logger: o.Logger})
	if err != nil {
		return nil, fmt.Errorf("emulator: create broker: %w", err)
	}
	ln, err := net.Listen("tcp", o.Addr)
	if err != nil {
		b.Close()
		return nil, fmt.Errorf("emulator: listen on %q: %w", o.Addr, err)
	}
	s := &Server{
		opts:   o,
		log:    o.Logger,
		ln:     ln,
		broker: b,
		mgmt:   mgmt.New(b, &mgmt.Options{Logger: o.Logger}),
		conns:  make(map[*conn]struct{}),
		done:   make(chan struct{}),
	}
	s.wg.Add(1)
	go s.acceptLoop()
	s.log.Info("emulator listening", "addr", s.Addr())
	return s, nil
}

// Addr returns the address clients dial: "127.0.0.1:<port>" when listening on localhost or on every
// interface, otherwise the listener's own address.
func (s *Server) Addr() string {
	if a, ok := s.ln.Addr().(*net.TCPAddr); ok && !a.IP.IsLoopback() && !a.IP.IsUnspecified() {
		return a.String()
	}
	return net.JoinHostPort("127.0.0.1", s.port())
}

func (s *Server) port() string {
	_, port, err := net.SplitHostPort(s.ln.Addr().String())
	if err != nil {
		return "0"
	}
	return port
}

// ConnectionString returns a Service Bus connection string for the unmodified SDK.
func (s *Server) ConnectionString() string {
	return "Endpoint=sb://localhost:" + s.port() +
		";SharedAccessKeyName=RootManageSharedAccessKey;SharedAccessKey=emulator;UseDevelopmentEmulator=true"
}

// Broker returns the broker behind the server, to create entities and inspect state from Go.
func (s *Server) Broker() *broker.Broker { return s.broker }

// Close stops accepting, closes every connection, waits for every goroutine the server started and
// closes the broker. It is safe to call more than once; later calls return the first result.
func (s *Server) Close() error {
	s.closeOnce.Do(func() {
		s.mu.Lock()
		s.closed = true
		close(s.done)
		conns := make([]*conn, 0, len(s.conns))
		for c := range s.conns {
			conns = append(conns, c)
		}
		s.mu.Unlock()

		if err := s.ln.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
			s.closeErr = fmt.Errorf("emulator: close listener: %w", err)
		}
		for _, c := range conns {
			c.shutdown()
		}
		s.wg.Wait()
		s.broker.Close()
		s.log.Info("emulator stopped")
	})
	return s.closeErr
}

// acceptLoop runs in its own goroutine (owned by s.wg) until the listener is closed.
func (s *Server) acceptLoop() {
	defer s.wg.Done()
	backoff := 5 * time.Millisecond
	for {
		nc, err := s.ln.Accept()
		if err != nil {
			if s.isClosed() || errors.Is(err, net.ErrClosed) {
				return
			}
			// Transient failures (e.g. out of file descriptors): back off, but stop at once on Close.
			s.log.Warn("accept failed", "err", err)
			t := time.NewTimer(backoff)
			select {
			case <-t.C:
			case <-s.done:
				t.Stop()
				return
			}
			backoff = min(2*backoff, time.Second)
			continue
		}
		backoff = 5 * time.Millisecond
		c := newConn(s, nc)
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			_ = nc.Close()
			return
		}
		s.conns[c] = struct{}{}
		s.wg.Add(1)
		s.mu.Unlock()
		go func() {
			defer s.wg.Done()
			c.serve()
			s.mu.Lock()
			delete(s.conns, c)
			s.mu.Unlock()
		}()
	}
}

func (s *Server) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}
