package broker

import (
	"errors"
	"fmt"
)

// EntityStatus is the status the management API sets on a queue, topic or subscription
// (Azure's EntityStatus). Documented behaviour, which the broker and the connection engine
// follow (https://learn.microsoft.com/azure/service-bus-messaging/entity-suspend and the
// EntityStatus reference of Microsoft.ServiceBus.Messaging):
//   - Disabled is SendDisabled and ReceiveDisabled together;
//   - SendDisabled: sending to the queue or topic fails ("Sending to {queue|topic} is
//     disabled"), receiving goes on;
//   - ReceiveDisabled: receiving from the queue or subscription fails, sending goes on;
//   - a disabled topic's subscriptions cannot be received from, but an active topic still
//     copies messages into a disabled subscription.
//
// The AMQP condition of these failures is com.microsoft:entity-disabled (the Go SDK's
// internal/errors.go treats it as fatal: "entity is disabled in the portal").
type EntityStatus string

const (
	StatusActive          EntityStatus = "Active"
	StatusDisabled        EntityStatus = "Disabled"
	StatusSendDisabled    EntityStatus = "SendDisabled"
	StatusReceiveDisabled EntityStatus = "ReceiveDisabled"
)

// ParseEntityStatus reads one of Azure's settable statuses (case-sensitive, as the service).
func ParseEntityStatus(s string) (EntityStatus, error) {
	switch st := EntityStatus(s); st {
	case StatusActive, StatusDisabled, StatusSendDisabled, StatusReceiveDisabled:
		return st, nil
	}
	return "", fmt.Errorf("%q is not Active, Disabled, SendDisabled or ReceiveDisabled", s)
}

func (s EntityStatus) orActive() EntityStatus {
	if s == "" {
		return StatusActive
	}
	return s
}

func (s EntityStatus) sendDisabled() bool {
	return s == StatusDisabled || s == StatusSendDisabled
}

func (s EntityStatus) receiveDisabled() bool {
	return s == StatusDisabled || s == StatusReceiveDisabled
}

// ErrEntityDisabled is wrapped by the error of an operation the entity's status forbids
// (*DisabledError).
var ErrEntityDisabled = errors.New("messaging entity disabled")

// DisabledError is a send to a SendDisabled (or Disabled) queue or topic, or a receive from a
// ReceiveDisabled (or Disabled) queue or subscription. Its text follows the service's
// MessagingEntityDisabledException ("Messaging entity '…' is currently disabled for Send
// operations.", azure-sdk-for-net#10535; "… is currently disabled.", azure-service-bus#677).
type DisabledError struct {
	Path string
	Send bool // a send was refused; else a receive
}

func (e *DisabledError) Error() string {
	if e.Send {
		return fmt.Sprintf("Messaging entity '%s' is currently disabled for Send operations.", e.Path)
	}
	return fmt.Sprintf("Messaging entity '%s' is currently disabled.", e.Path)
}

func (e *DisabledError) Unwrap() error { return ErrEntityDisabled }

// SetStatus sets the status of a queue, topic or subscription ("<topic>/Subscriptions/<sub>").
// It takes effect at once: sends are refused from the next one, and receive links of the
// entity are woken (StatusChanged) to find it out. Dead-letter subqueues have no status of
// their own and are not affected (the service documents nothing for them).
func (b *Broker) SetStatus(path string, s EntityStatus) error {
	if _, err := ParseEntityStatus(string(s)); err != nil {
		return fmt.Errorf("broker: status of %q: %w", path, err)
	}
	if t, err := b.topic(path); err == nil {
		t.mu.Lock()
		defer t.mu.Unlock()
		if t.gone != nil {
			return fmt.Errorf("broker: status of %q: %w", path, t.gone)
		}
		t.status = s
		for _, sub := range t.subs {
			sub.e.update(func() { sub.e.topicDisabled = s == StatusDisabled })
		}
		return nil
	} else if errors.Is(err, ErrClosed) {
		return err
	}
	e, err := b.Entity(path)
	if err != nil {
		return fmt.Errorf("broker: status of %q: %w", path, err)
	}
	if e.kind == KindDeadLetterQueue {
		return fmt.Errorf("broker: status of %q (a dead-letter queue has none): %w", path, ErrSendToSubqueue)
	}
	e.update(func() { e.status = s })
	return nil
}

// Status returns the status of a queue, topic or subscription.
func (b *Broker) Status(path string) (EntityStatus, error) {
	if t, err := b.topic(path); err == nil {
		t.mu.Lock()
		defer t.mu.Unlock()
		return t.status.orActive(), nil
	} else if errors.Is(err, ErrClosed) {
		return "", err
	}
	e, err := b.Entity(path)
	if err != nil {
		return "", err
	}
	return e.Status(), nil
}

// sendRefusal returns the DisabledError of a send to an entity at path with status s, or nil.
func (s EntityStatus) sendRefusal(path string) error {
	if s.sendDisabled() {
		return &DisabledError{Path: path, Send: true}
	}
	return nil
}

// sendRefusal returns the DisabledError of a send to topic t, or nil.
func (t *topic) sendRefusal() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.status.sendRefusal(t.name)
}

// Status returns the entity's own status (Active for a dead-letter subqueue).
func (e *Entity) Status() EntityStatus {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.statusLocked()
}

func (e *Entity) statusLocked() EntityStatus { return e.status.orActive() }

// ReceiveError returns a *DisabledError while receiving from the entity is disabled: its own
// status is Disabled or ReceiveDisabled, or it is a subscription of a Disabled topic. Nil
// otherwise (always for a dead-letter subqueue).
func (e *Entity) ReceiveError() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.status.receiveDisabled() || e.topicDisabled {
		return &DisabledError{Path: e.path}
	}
	return nil
}

// StatusChanged returns a channel closed at the entity's next status change (its own, or its
// topic's for a subscription). Take it before checking ReceiveError so no change is missed.
func (e *Entity) StatusChanged() <-chan struct{} {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.statusCh == nil {
		e.statusCh = make(chan struct{})
	}
	return e.statusCh
}

// update applies set (which changes status or topicDisabled) under e.mu and wakes the
// StatusChanged waiters when anything changed.
func (e *Entity) update(set func()) {
	e.mu.Lock()
	defer e.mu.Unlock()
	before, topicBefore := e.status.orActive(), e.topicDisabled
	set()
	if e.status.orActive() == before && e.topicDisabled == topicBefore {
		return
	}
	if e.statusCh != nil {
		close(e.statusCh)
		e.statusCh = nil
	}
}

// sendRefusal returns the DisabledError of a send to queue e, or nil.
func (e *Entity) sendRefusal() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.status.sendRefusal(e.path)
}
