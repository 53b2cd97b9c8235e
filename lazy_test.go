package holdfast

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
)

// TestLazyOpensOnceClosesOnce: concurrent first uses open the value once; a failed open is not kept (the
// next use tries again); Close closes what was opened exactly once and later uses get errDrainClosed.
func TestLazyOpensOnceClosesOnce(t *testing.T) {
	var opens, closes atomic.Int32
	failNext := true
	l := &lazy[int]{open: func() (int, func(context.Context) error, error) {
		if failNext {
			failNext = false
			return 0, nil, errors.New("namespace unreachable")
		}
		n := opens.Add(1)
		return int(n), func(context.Context) error { closes.Add(1); return nil }, nil
	}}
	if _, err := l.get(); err == nil {
		t.Fatal("first open: want its error")
	}
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			if v, err := l.get(); err != nil || v != 1 {
				t.Errorf("get: %d, %v; want 1", v, err)
			}
		})
	}
	wg.Wait()
	if err := l.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := l.get(); !errors.Is(err, errDrainClosed) {
		t.Fatalf("get after Close: %v, want errDrainClosed", err)
	}
	if opens.Load() != 1 || closes.Load() != 1 {
		t.Fatalf("%d opens, %d closes; want 1 and 1", opens.Load(), closes.Load())
	}
}
