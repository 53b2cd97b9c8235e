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
//
// Faults returns one-line fault injection for tests (failing renewals, delayed management
// replies, dropped connections, idle receive links detached, refused connections); with
// Options.AdminAddr the same controls, entity management and stats are served over HTTP
// (package admin). README.md documents configuration, behaviour and the admin API.
package emulator

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/holdfast-dev/holdfast/emulator/admin"
	"github.com/holdfast-dev/holdfast/emulator/atom"
	"github.com/holdfast-dev/holdfast/emulator/broker"
	"github.com/holdfast-dev/holdfast/emulator/mgmt"
)

// Defaults applied by Start to zero-valued Options fields.
const (
	DefaultAddr           = "localhost:0"
	DefaultKeepAlive      = 15 * time.Second
	DefaultMaxFrameSize   = 65536
	DefaultMaxMessageSize = 262144
	DefaultKeyName        = "RootManageSharedAccessKey"
	DefaultKey            = "emulator"

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
	// Clock drives lock expiry, scheduled delivery, TTL expiry and duplicate-detection windows in
	// the broker, and SAS token expiry in strict mode. Nil means the real clock.
	Clock broker.Clock
	// KeepAlive is the interval between empty frames sent on every connection. Default 15s.
	KeepAlive time.Duration
	// MaxFrameSize is the largest frame the server accepts and advertises in open. Default 65536.
	MaxFrameSize uint32
	// MaxMessageSize is the largest message (or batch) a client may send, advertised on sender attach.
	// Default 262144 (Standard tier).
	MaxMessageSize uint64
	// KeyName and Key are the shared access policy ConnectionString signs with. Defaults
	// "RootManageSharedAccessKey" and "emulator".
	KeyName, Key string
	// StrictAuth makes put-token validate SAS tokens against KeyName/Key and Policies
	// (HMAC-SHA256 as the SDKs sign) and answer 401 (CodeUnauthorizedAccess in the SDK)
	// otherwise, and enforces each policy's rights and each token's expiry on links and
	// operations. By default any token is accepted, as the official emulator does.
	StrictAuth bool
	// Policies are shared access policies besides KeyName/Key (which has every right), added
	// to those of Config's SharedAccessPolicies. Used in StrictAuth mode only.
	Policies []mgmt.SASKey
	// LinkIdleTimeout detaches a link (sender, receiver, $management or $cbs) that has had no
	// transfer, flow or disposition for this long with amqp:link:detach-forced, as the service
	// does after 10 minutes. Zero means DefaultLinkIdleTimeout; negative turns it off.
	LinkIdleTimeout time.Duration
	// ConnectionIdleTimeout closes a connection (amqp:connection:forced) this long after its
	// last link closed unless a new link is attached meanwhile: 5 minutes on the service. Zero
	// means DefaultConnectionIdleTimeout; negative turns it off.
	ConnectionIdleTimeout time.Duration
	// ConnectionOpenTimeout closes a connection that attached no link this long after it
	// opened: 1 minute on the service. Zero means DefaultConnectionOpenTimeout; negative turns
	// it off.
	ConnectionOpenTimeout time.Duration
	// AdminAddr, when set, serves the admin HTTP API (package admin: entities, stats,
	// faults) on this address, e.g. "localhost:5300". Only loopback clients are served.
	AdminAddr string
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
	for _, d := range []struct {
		v   *time.Duration
		def time.Duration
	}{{&r.LinkIdleTimeout, DefaultLinkIdleTimeout}, {&r.ConnectionIdleTimeout, DefaultConnectionIdleTimeout}, {&r.ConnectionOpenTimeout, DefaultConnectionOpenTimeout}} {
		switch {
		case *d.v == 0:
			*d.v = d.def
		case *d.v < 0:
			*d.v = 0 // off
		}
	}
	if r.KeyName == "" {
		r.KeyName = DefaultKeyName
	}
	if r.Key == "" {
		r.Key = DefaultKey
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
	faults *Faults
	admin  *http.Server // nil without Options.AdminAddr
	adminL net.Listener // nil without Options.AdminAddr

	// wg counts the accept goroutine, housekeeping, the admin server and one
	// goroutine per connection; Close waits for it.
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
	mo := &mgmt.Options{Logger: o.Logger, Clock: o.Clock}
	if o.StrictAuth {
		if mo.StrictAuth, err = policies(&o); err != nil {
			_ = ln.Close()
			b.Close()
			return nil, err
		}
	}
	s := &Server{
		opts:   o,
		log:    o.Logger,
		ln:     ln,
		broker: b,
		mgmt:   mgmt.New(b, mo),
		conns:  make(map[*conn]struct{}),
		done:   make(chan struct{}),
	}
	s.faults = newFaults(s, s.mgmt.Faults())
	if o.AdminAddr != "" {
		if s.adminL, err = net.Listen("tcp", o.AdminAddr); err != nil {
			_ = ln.Close()
			b.Close()
			return nil, fmt.Errorf("emulator: admin API: listen on %q: %w", o.AdminAddr, err)
		}
		s.admin = &http.Server{
			Handler:           s.AdminHandler(),
			ReadHeaderTimeout: 10 * time.Second,
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			if err := s.admin.Serve(s.adminL); err != nil && !errors.Is(err, http.ErrServerClosed) {
				s.log.Error("admin API stopped", "err", err)
			}
		}()
		s.log.Info("admin API listening", "addr", s.adminL.Addr().String())
	}
	s.wg.Add(2)
	go s.acceptLoop()
	go s.housekeep()
	s.log.Info("emulator listening", "addr", s.Addr(), "strictAuth", o.StrictAuth)
	return s, nil
}

// policies returns the shared access policies of strict auth mode: the server's own key with
// every right, Options.Policies and the Config's SharedAccessPolicies. Key names must be unique.
func policies(o *Options) ([]mgmt.SASKey, error) {
	keys := []mgmt.SASKey{{KeyName: o.KeyName, Key: o.Key, Rights: mgmt.AllRights}}
	keys = append(keys, o.Policies...)
	if o.Config != nil {
		for i, ns := range o.Config.UserConfig.Namespaces {
			for j, pc := range ns.SharedAccessPolicies {
				r, err := mgmt.ParseRights(pc.Rights)
				if err != nil {
					return nil, fmt.Errorf("emulator: UserConfig.Namespaces[%d].SharedAccessPolicies[%d].Rights: %w", i, j, err)
				}
				keys = append(keys, mgmt.SASKey{KeyName: pc.Name, Key: pc.Key, Rights: r})
			}
		}
	}
	seen := map[string]bool{}
	for _, k := range keys {
		if k.KeyName == "" || k.Key == "" {
			return nil, fmt.Errorf("emulator: shared access policy %q: key name and key must not be empty", k.KeyName)
		}
		if seen[k.KeyName] {
			return nil, fmt.Errorf("emulator: shared access policy %q is defined twice", k.KeyName)
		}
		seen[k.KeyName] = true
	}
	return keys, nil
}

// Faults returns the server's fault injection controls (also served by the admin API).
func (s *Server) Faults() *Faults { return s.faults }

// AdminAddr returns the admin API's address ("127.0.0.1:<port>"), or "" without
// Options.AdminAddr.
func (s *Server) AdminAddr() string {
	if s.adminL == nil {
		return ""
	}
	return s.adminL.Addr().String()
}

// AdminHandler returns the admin API as an http.Handler (served on AdminAddr when set).
func (s *Server) AdminHandler() http.Handler {
	opts := &admin.Options{Logger: s.log}
	if s.opts.StrictAuth {
		// The ATOM API checks Authorization with put-token's keys and clock.
		opts.ATOM = &atom.Options{Tokens: s.mgmt}
	}
	return admin.New(s.broker, s.faults, opts)
}

// Connections reports how many client connections are open.
func (s *Server) Connections() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.conns)
}

// liveConns returns the open connections.
func (s *Server) liveConns() []*conn {
	s.mu.Lock()
	defer s.mu.Unlock()
	conns := make([]*conn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	return conns
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

// ConnectionString returns a Service Bus connection string for the unmodified SDK, signed with
// the server's own key (every right).
func (s *Server) ConnectionString() string {
	return s.ConnectionStringFor(s.opts.KeyName, s.opts.Key)
}

// ConnectionStringFor returns a connection string signing with another shared access policy
// (see Options.Policies), e.g. a send-only one. The endpoint is Addr, an IP address, so that
// clients dial without a name lookup (under load a lookup of "localhost" can time out).
func (s *Server) ConnectionStringFor(keyName, key string) string {
	return "Endpoint=sb://" + s.Addr() +
		";SharedAccessKeyName=" + keyName + ";SharedAccessKey=" + key + ";UseDevelopmentEmulator=true"
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
		s.mgmt.Close() // requests held by a management delay fault are answered now
		if s.admin != nil {
			_ = s.admin.Close()
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
		if s.faults.refusing(time.Now()) {
			s.log.Info("fault: connection refused", "remote", nc.RemoteAddr().String())
			_ = nc.Close()
			continue
		}
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
