package emulator

import (
	"errors"
	"fmt"

	wire "github.com/holdfast-dev/holdfast/emulator/amqp"
)

// saslMechanisms are the mechanisms offered, in order. The Go SDK picks ANONYMOUS (the first one it
// knows); the .NET SDK requires MSSBCBS to be offered.
var saslMechanisms = []wire.Symbol{"MSSBCBS", "ANONYMOUS"}

// acceptedMechanisms are the mechanisms a client may choose. No credentials are checked: authorization
// happens (and always succeeds for known entities) through CBS put-token.
var acceptedMechanisms = map[wire.Symbol]bool{"MSSBCBS": true, "ANONYMOUS": true, "PLAIN": true}

// errProtocolHeader reports a protocol header the server does not speak.
var errProtocolHeader = errors.New("unsupported protocol header")

// handshake runs on the connection goroutine before any other goroutine of the connection exists. It
// negotiates the protocol headers (and SASL when the client asks for it) and leaves the connection ready
// for the AMQP open frame.
func (c *conn) handshake() error {
	h, err := c.fr.ReadProtocolHeader()
	if errors.Is(err, wire.ErrDecode) {
		// Not AMQP at all: tell the client what we speak (AMQP §2.2), then give up.
		_ = c.writeRaw(wire.HeaderSASL[:])
		return fmt.Errorf("read protocol header: %w", err)
	}
	if err != nil {
		return fmt.Errorf("read protocol header: %w", err)
	}
	switch h {
	case wire.HeaderAMQP:
		// A client that skips SASL is served without it.
		return c.writeRaw(wire.HeaderAMQP[:])
	case wire.HeaderSASL:
	default:
		// Tell the client what we speak (AMQP §2.2), then give up.
		_ = c.writeRaw(wire.HeaderSASL[:])
		return fmt.Errorf("%w %q", errProtocolHeader, h[:])
	}
	if err := c.writeRaw(wire.HeaderSASL[:]); err != nil {
		return err
	}
	if err := c.writeFrame(wire.Frame{Type: wire.FrameSASL, Body: &wire.SASLMechanisms{Mechanisms: saslMechanisms}}); err != nil {
		return err
	}
	f, err := c.fr.ReadFrame()
	if err != nil {
		return fmt.Errorf("read sasl-init: %w", err)
	}
	init, ok := f.Body.(*wire.SASLInit)
	if !ok || f.Type != wire.FrameSASL {
		return fmt.Errorf("%w: expected sasl-init, got %T", wire.ErrDecode, f.Body)
	}
	code := uint8(0) // ok
	if !acceptedMechanisms[init.Mechanism] {
		code = 1 // auth: the mechanism is not offered
	}
	if err := c.writeFrame(wire.Frame{Type: wire.FrameSASL, Body: &wire.SASLOutcome{Code: code}}); err != nil {
		return err
	}
	if code != 0 {
		return fmt.Errorf("sasl: unsupported mechanism %q", init.Mechanism)
	}
	h, err = c.fr.ReadProtocolHeader()
	if err != nil {
		return fmt.Errorf("read AMQP header after SASL: %w", err)
	}
	if h != wire.HeaderAMQP {
		_ = c.writeRaw(wire.HeaderAMQP[:])
		return fmt.Errorf("%w %q after SASL", errProtocolHeader, h[:])
	}
	return c.writeRaw(wire.HeaderAMQP[:])
}
