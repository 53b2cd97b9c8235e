package testenv

import (
	"errors"
	"net/http"
	"sync"
	"sync/atomic"
)

// ErrOutage is the transport error of a request an Outage refused.
var ErrOutage = errors.New("testenv: table storage unavailable (injected outage)")

// Outage is an HTTP transport for Table Storage clients (aztables.ClientOptions.Transport) that passes
// requests to http.DefaultClient until told to fail them, so a test can take Azurite "down" for one client
// at an exact point without stopping the shared process. Its methods are safe for concurrent use.
type Outage struct {
	refused atomic.Int64

	mu   sync.Mutex               // guards fail
	fail func(*http.Request) bool // nil: pass everything
}

// Do implements the azcore transport.
func (o *Outage) Do(req *http.Request) (*http.Response, error) {
	o.mu.Lock()
	fail := o.fail
	o.mu.Unlock()
	if fail != nil && fail(req) {
		o.refused.Add(1)
		return nil, ErrOutage
	}
	return http.DefaultClient.Do(req)
}

// Down fails every request from now on; Up passes them again.
func (o *Outage) Down() { o.FailWhen(func(*http.Request) bool { return true }) }

// Up ends the outage.
func (o *Outage) Up() { o.FailWhen(nil) }

// FailWhen fails the requests for which f returns true (nil: none). f is called on the requesting
// goroutine, one request at a time per goroutine; it must be safe for concurrent use.
func (o *Outage) FailWhen(f func(*http.Request) bool) {
	o.mu.Lock()
	o.fail = f
	o.mu.Unlock()
}

// Refused reports how many requests the outage has failed.
func (o *Outage) Refused() int64 { return o.refused.Load() }

// IsQuery reports whether req lists entities (a GET on the table with a $filter): the requests of a ledger
// List or scan.
func IsQuery(req *http.Request) bool {
	return req.Method == http.MethodGet && req.URL.Query().Has("$filter")
}
