package holdfast

import (
	"context"
	"errors"
	"sync"
)

// errDrainClosed answers drain requests that arrive during shutdown.
var errDrainClosed = errors.New("holdfast: shutting down")

// lazy builds a value on its first use and closes what building it opened at shutdown. The drain and
// dead-letter routes hold their Service Bus client and links in one, so start-up does no network or
// credential work. Safe for concurrent use; the zero value with open set is ready.
type lazy[T any] struct {
	// open builds the value and returns what closes everything it opened; on error it has closed it already.
	open func() (T, func(context.Context) error, error)

	mu      sync.Mutex
	v       T                           // guarded by mu; set once opened
	closeFn func(context.Context) error // guarded by mu; nil until opened
	closed  bool                        // guarded by mu
}

// get returns the value, building it on the first call, or errDrainClosed after Close.
func (l *lazy[T]) get() (T, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	var zero T
	if l.closed {
		return zero, errDrainClosed
	}
	if l.closeFn != nil {
		return l.v, nil
	}
	v, closeFn, err := l.open()
	if err != nil {
		return zero, err
	}
	l.v, l.closeFn = v, closeFn
	return v, nil
}

// Close closes what was opened, if anything. Later calls of get fail with errDrainClosed.
func (l *lazy[T]) Close(ctx context.Context) error {
	l.mu.Lock()
	closeFn := l.closeFn
	var zero T
	l.v, l.closeFn, l.closed = zero, nil, true
	l.mu.Unlock()
	if closeFn == nil {
		return nil
	}
	return closeFn(ctx)
}
