package mgmt

import (
	"fmt"
	"sync"
	"time"

	"github.com/Azure/go-amqp"
)

// Faults injects failures into management replies. Its methods are safe for concurrent use
// and take effect for the next request; the zero value injects nothing.
type Faults struct {
	mu          sync.Mutex // guards the fields below
	renewFails  int        // renew-lock requests still to fail
	renewStatus int32      // 410 or 503
	delay       time.Duration
	delayed     uint64 // requests delayed so far
	// rejected lock tokens: update-disposition answers 410 for them (renew-lock still works).
	rejected map[amqp.UUID]struct{}
}

// maxRejected bounds the rejected-token set; the oldest entries are not tracked in order, so
// the whole set is cleared when it would grow beyond this.
const maxRejected = 100000

// FaultState is a snapshot of Faults.
type FaultState struct {
	RenewLockFailures int           // renew-lock requests that will still fail
	RenewLockStatus   int           // their status: 410 (lock lost) or 503 (server busy)
	ManagementDelay   time.Duration // added before every $management reply
	DelayedRequests   uint64        // requests delayed so far (Reset keeps the count)
}

// FailRenewLocks makes the next n renew-lock or renew-session-lock requests fail with status 410
// (com.microsoft:message-lock-lost, or com.microsoft:session-lock-lost for a session: the SDK
// reports CodeLockLost; the lock itself stays valid in the broker) or 503 (server busy: the SDK
// retries). n = 0 clears the fault.
func (f *Faults) FailRenewLocks(n int, status int) error {
	if n < 0 {
		return fmt.Errorf("mgmt: fail renew-lock: count %d is negative", n)
	}
	if status != 410 && status != 503 {
		return fmt.Errorf("mgmt: fail renew-lock: status %d: must be 410 or 503", status)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.renewFails, f.renewStatus = n, int32(status)
	return nil
}

// DelayManagement delays every $management reply by d (0 clears it). The request is handled
// after the delay, so its effect is delayed too.
func (f *Faults) DelayManagement(d time.Duration) error {
	if d < 0 {
		return fmt.Errorf("mgmt: delay management: %s is negative", d)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.delay = d
	return nil
}

// Reset clears every fault.
func (f *Faults) Reset() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.renewFails, f.renewStatus, f.delay = 0, 0, 0
	f.rejected = nil
}

// RejectManagementSettlement makes update-disposition answer 410 (lock lost) for these lock
// tokens from now on, while renew-lock keeps working: what the service does to messages of a
// receive link it detached for idleness.
func (f *Faults) RejectManagementSettlement(tokens ...amqp.UUID) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.rejected == nil || len(f.rejected)+len(tokens) > maxRejected {
		f.rejected = make(map[amqp.UUID]struct{}, len(tokens))
	}
	for _, t := range tokens {
		f.rejected[t] = struct{}{}
	}
}

func (f *Faults) settlementRejected(token amqp.UUID) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	_, ok := f.rejected[token]
	return ok
}

// State returns the current faults.
func (f *Faults) State() FaultState {
	f.mu.Lock()
	defer f.mu.Unlock()
	return FaultState{RenewLockFailures: f.renewFails, RenewLockStatus: int(f.renewStatus), ManagementDelay: f.delay, DelayedRequests: f.delayed}
}

// takeRenewFailure consumes one renew-lock failure, returning its status (0: none).
func (f *Faults) takeRenewFailure() int32 {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.renewFails == 0 {
		return 0
	}
	f.renewFails--
	return f.renewStatus
}

// takeDelay returns the delay for a request arriving now, counting the request when it is
// delayed.
func (f *Faults) takeDelay() time.Duration {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.delay > 0 {
		f.delayed++
	}
	return f.delay
}
