package amqp

import (
	"encoding/binary"
	"fmt"
)

// listWriter encodes the fields of a described list: absent fields are written as null and dropped
// again if nothing but nulls follows them.
type listWriter struct {
	c         compound
	lastEnd   int // len(dst) after the last non-null field
	lastCount int // number of fields up to and including the last non-null field
	depth     int
}

// beginDescribed writes the descriptor (as smallulong) and reserves a list32 header.
func beginDescribed(dst []byte, code uint64, depth int) ([]byte, listWriter) {
	dst = append(dst, codeDescribed, codeSmallUlong, byte(code))
	dst, c := beginCompound(dst, codeList32)
	return dst, listWriter{c: c, lastEnd: len(dst), depth: depth}
}

func (w *listWriter) null(dst []byte) []byte {
	w.c.count++
	return append(dst, codeNull)
}

// mark records that a non-null field has just been appended.
func (w *listWriter) mark(dst []byte) []byte {
	w.c.count++
	w.lastEnd, w.lastCount = len(dst), w.c.count
	return dst
}

func (w *listWriter) end(dst []byte) ([]byte, error) {
	dst = dst[:w.lastEnd]
	w.c.count = w.lastCount
	if w.c.count == 0 {
		dst = dst[:w.c.start]
		return append(dst, codeList0), nil
	}
	return w.c.finish(dst, codeList8, codeList32)
}

func (w *listWriter) uint32(dst []byte, v uint32) []byte { return w.mark(appendUint32(dst, v)) }

func (w *listWriter) optUint32(dst []byte, v *uint32) []byte {
	if v == nil {
		return w.null(dst)
	}
	return w.uint32(dst, *v)
}

func (w *listWriter) ubyte(dst []byte, v *uint8) []byte {
	if v == nil {
		return w.null(dst)
	}
	return w.mark(append(dst, codeUbyte, *v))
}

func (w *listWriter) ushort(dst []byte, v uint16) []byte {
	return w.mark(binary.BigEndian.AppendUint16(append(dst, codeUshort), v))
}

func (w *listWriter) boolean(dst []byte, v bool) []byte { return w.mark(appendBool(dst, v)) }

// flag writes a boolean whose default is false: false is written as null.
func (w *listWriter) flag(dst []byte, v bool) []byte {
	if !v {
		return w.null(dst)
	}
	return w.mark(append(dst, codeTrue))
}

// str writes a string; "" is written as null unless required.
func (w *listWriter) str(dst []byte, s string, required bool) []byte {
	if s == "" && !required {
		return w.null(dst)
	}
	return w.mark(appendString(dst, s))
}

func (w *listWriter) sym(dst []byte, s Symbol, required bool) []byte {
	if s == "" && !required {
		return w.null(dst)
	}
	return w.mark(appendSymbol(dst, s))
}

func (w *listWriter) binary(dst []byte, b []byte, required bool) []byte {
	if len(b) == 0 && !required {
		return w.null(dst)
	}
	return w.mark(appendBinary(dst, b))
}

// symbols writes a multiple symbol field as an array of sym; empty is null unless required.
func (w *listWriter) symbols(dst []byte, s []Symbol, required bool) []byte {
	if len(s) == 0 && !required {
		return w.null(dst)
	}
	return w.mark(appendSymbolArray(dst, s))
}

func (w *listWriter) symbolMap(dst []byte, m map[Symbol]any) ([]byte, error) {
	if len(m) == 0 {
		return w.null(dst), nil
	}
	dst, err := appendSymbolMap(dst, m, w.depth)
	return w.mark(dst), err
}

func (w *listWriter) anyMap(dst []byte, m map[any]any) ([]byte, error) {
	if len(m) == 0 {
		return w.null(dst), nil
	}
	dst, err := appendAnyMap(dst, m, w.depth)
	return w.mark(dst), err
}

// value writes any value; nil is null.
func (w *listWriter) value(dst []byte, v any) ([]byte, error) {
	if v == nil {
		return w.null(dst), nil
	}
	dst, err := appendValue(dst, v, w.depth)
	return w.mark(dst), err
}

func (w *listWriter) errorField(dst []byte, e *Error) ([]byte, error) {
	if e == nil {
		return w.null(dst), nil
	}
	dst, err := appendError(dst, e, w.depth)
	return w.mark(dst), err
}

func (w *listWriter) state(dst []byte, s DeliveryState) ([]byte, error) {
	if isNilState(s) {
		return w.null(dst), nil
	}
	dst, err := appendDeliveryState(dst, s, w.depth)
	return w.mark(dst), err
}

func isNilState(s DeliveryState) bool {
	switch s := s.(type) {
	case nil:
		return true
	case *Received:
		return s == nil
	case *Accepted:
		return s == nil
	case *Rejected:
		return s == nil
	case *Released:
		return s == nil
	case *Modified:
		return s == nil
	}
	return false
}

func appendError(dst []byte, e *Error, depth int) ([]byte, error) {
	start := len(dst)
	dst, w := beginDescribed(dst, DescError, depth+1)
	dst = w.sym(dst, e.Condition, true)
	dst = w.str(dst, e.Description, false)
	dst, err := w.symbolMap(dst, e.Info)
	if err != nil {
		return dst[:start], err
	}
	return w.end(dst)
}

// appendDeliveryState encodes a delivery state as a described list; a nil state is null.
func appendDeliveryState(dst []byte, s DeliveryState, depth int) ([]byte, error) {
	if isNilState(s) {
		return append(dst, codeNull), nil
	}
	start := len(dst)
	var err error
	switch s := s.(type) {
	case *Received:
		dst, w := beginDescribed(dst, DescReceived, depth+1)
		dst = w.uint32(dst, s.SectionNumber)
		dst = w.mark(appendUint64(dst, s.SectionOffset))
		return w.end(dst)
	case *Accepted:
		return append(dst, codeDescribed, codeSmallUlong, byte(DescAccepted), codeList0), nil
	case *Released:
		return append(dst, codeDescribed, codeSmallUlong, byte(DescReleased), codeList0), nil
	case *Rejected:
		dst, w := beginDescribed(dst, DescRejected, depth+1)
		if dst, err = w.errorField(dst, s.Error); err != nil {
			return dst[:start], err
		}
		return w.end(dst)
	case *Modified:
		dst, w := beginDescribed(dst, DescModified, depth+1)
		dst = w.flag(dst, s.DeliveryFailed)
		dst = w.flag(dst, s.UndeliverableHere)
		if dst, err = w.anyMap(dst, s.MessageAnnotations); err != nil {
			return dst[:start], err
		}
		return w.end(dst)
	}
	return dst, fmt.Errorf("amqp: encode: unsupported delivery state %T", s)
}

func appendSource(dst []byte, s *Source, depth int) ([]byte, error) {
	start := len(dst)
	dst, w := beginDescribed(dst, DescSource, depth+1)
	dst = w.address(dst, s.Address)
	dst = w.optZeroUint32(dst, s.Durable)
	dst = w.sym(dst, s.ExpiryPolicy, false)
	dst = w.optZeroUint32(dst, s.Timeout)
	dst = w.flag(dst, s.Dynamic)
	var err error
	if dst, err = w.symbolMap(dst, s.DynamicNodeProperties); err != nil {
		return dst[:start], err
	}
	dst = w.sym(dst, s.DistributionMode, false)
	if dst, err = w.symbolMap(dst, s.Filter); err != nil {
		return dst[:start], err
	}
	if dst, err = w.value(dst, s.DefaultOutcome); err != nil {
		return dst[:start], err
	}
	dst = w.symbols(dst, s.Outcomes, false)
	dst = w.symbols(dst, s.Capabilities, false)
	return w.end(dst)
}

func appendTarget(dst []byte, t *Target, depth int) ([]byte, error) {
	start := len(dst)
	dst, w := beginDescribed(dst, DescTarget, depth+1)
	dst = w.address(dst, t.Address)
	dst = w.optZeroUint32(dst, t.Durable)
	dst = w.sym(dst, t.ExpiryPolicy, false)
	dst = w.optZeroUint32(dst, t.Timeout)
	dst = w.flag(dst, t.Dynamic)
	dst, err := w.symbolMap(dst, t.DynamicNodeProperties)
	if err != nil {
		return dst[:start], err
	}
	dst = w.symbols(dst, t.Capabilities, false)
	return w.end(dst)
}

func (w *listWriter) address(dst []byte, a *string) []byte {
	if a == nil {
		return w.null(dst)
	}
	return w.mark(appendString(dst, *a))
}

// optZeroUint32 writes a uint whose default is 0: 0 is written as null.
func (w *listWriter) optZeroUint32(dst []byte, v uint32) []byte {
	if v == 0 {
		return w.null(dst)
	}
	return w.uint32(dst, v)
}

// appendPerformative encodes a performative or SASL body as a described list.
func appendPerformative(dst []byte, p Performative, depth int) ([]byte, error) {
	start := len(dst)
	out, err := appendPerformativeFields(dst, p, depth)
	if err != nil {
		return dst[:start], err
	}
	return out, nil
}

func appendPerformativeFields(dst []byte, p Performative, depth int) ([]byte, error) {
	var err error
	switch p := p.(type) {
	case *Transfer:
		if p == nil {
			break
		}
		return appendTransfer(dst, p, depth)
	case *Disposition:
		if p == nil {
			break
		}
		dst, w := beginDescribed(dst, DescDisposition, depth+1)
		dst = w.boolean(dst, bool(p.Role))
		dst = w.uint32(dst, p.First)
		dst = w.optUint32(dst, p.Last)
		dst = w.flag(dst, p.Settled)
		if dst, err = w.state(dst, p.State); err != nil {
			return dst, err
		}
		dst = w.flag(dst, p.Batchable)
		return w.end(dst)
	case *Flow:
		if p == nil {
			break
		}
		dst, w := beginDescribed(dst, DescFlow, depth+1)
		dst = w.optUint32(dst, p.NextIncomingID)
		dst = w.uint32(dst, p.IncomingWindow)
		dst = w.uint32(dst, p.NextOutgoingID)
		dst = w.uint32(dst, p.OutgoingWindow)
		dst = w.optUint32(dst, p.Handle)
		dst = w.optUint32(dst, p.DeliveryCount)
		dst = w.optUint32(dst, p.LinkCredit)
		dst = w.optUint32(dst, p.Available)
		dst = w.flag(dst, p.Drain)
		dst = w.flag(dst, p.Echo)
		if dst, err = w.symbolMap(dst, p.Properties); err != nil {
			return dst, err
		}
		return w.end(dst)
	case *Open:
		if p == nil {
			break
		}
		dst, w := beginDescribed(dst, DescOpen, depth+1)
		dst = w.str(dst, p.ContainerID, true)
		dst = w.str(dst, p.Hostname, false)
		dst = w.optZeroUint32(dst, p.MaxFrameSize)
		dst = w.ushort(dst, p.ChannelMax)
		dst = w.optZeroUint32(dst, p.IdleTimeout)
		dst = w.symbols(dst, p.OutgoingLocales, false)
		dst = w.symbols(dst, p.IncomingLocales, false)
		dst = w.symbols(dst, p.OfferedCapabilities, false)
		dst = w.symbols(dst, p.DesiredCapabilities, false)
		if dst, err = w.symbolMap(dst, p.Properties); err != nil {
			return dst, err
		}
		return w.end(dst)
	case *Begin:
		if p == nil {
			break
		}
		dst, w := beginDescribed(dst, DescBegin, depth+1)
		if p.RemoteChannel == nil {
			dst = w.null(dst)
		} else {
			dst = w.ushort(dst, *p.RemoteChannel)
		}
		dst = w.uint32(dst, p.NextOutgoingID)
		dst = w.uint32(dst, p.IncomingWindow)
		dst = w.uint32(dst, p.OutgoingWindow)
		dst = w.uint32(dst, p.HandleMax)
		dst = w.symbols(dst, p.OfferedCapabilities, false)
		dst = w.symbols(dst, p.DesiredCapabilities, false)
		if dst, err = w.symbolMap(dst, p.Properties); err != nil {
			return dst, err
		}
		return w.end(dst)
	case *Attach:
		if p == nil {
			break
		}
		return appendAttach(dst, p, depth)
	case *Detach:
		if p == nil {
			break
		}
		dst, w := beginDescribed(dst, DescDetach, depth+1)
		dst = w.uint32(dst, p.Handle)
		dst = w.flag(dst, p.Closed)
		if dst, err = w.errorField(dst, p.Error); err != nil {
			return dst, err
		}
		return w.end(dst)
	case *End:
		if p == nil {
			break
		}
		return appendErrorOnly(dst, DescEnd, p.Error, depth)
	case *Close:
		if p == nil {
			break
		}
		return appendErrorOnly(dst, DescClose, p.Error, depth)
	case *SASLMechanisms:
		if p == nil {
			break
		}
		dst, w := beginDescribed(dst, DescSASLMechanisms, depth+1)
		dst = w.symbols(dst, p.Mechanisms, true)
		return w.end(dst)
	case *SASLInit:
		if p == nil {
			break
		}
		dst, w := beginDescribed(dst, DescSASLInit, depth+1)
		dst = w.sym(dst, p.Mechanism, true)
		dst = w.binary(dst, p.InitialResponse, false)
		dst = w.str(dst, p.Hostname, false)
		return w.end(dst)
	case *SASLChallenge:
		if p == nil {
			break
		}
		dst, w := beginDescribed(dst, DescSASLChallenge, depth+1)
		dst = w.binary(dst, p.Challenge, true)
		return w.end(dst)
	case *SASLResponse:
		if p == nil {
			break
		}
		dst, w := beginDescribed(dst, DescSASLResponse, depth+1)
		dst = w.binary(dst, p.Response, true)
		return w.end(dst)
	case *SASLOutcome:
		if p == nil {
			break
		}
		dst, w := beginDescribed(dst, DescSASLOutcome, depth+1)
		dst = w.mark(append(dst, codeUbyte, p.Code))
		dst = w.binary(dst, p.AdditionalData, false)
		return w.end(dst)
	default:
		return dst, fmt.Errorf("amqp: encode: unsupported performative %T", p)
	}
	return dst, fmt.Errorf("amqp: encode: nil %T", p)
}

func appendErrorOnly(dst []byte, code uint64, e *Error, depth int) ([]byte, error) {
	dst, w := beginDescribed(dst, code, depth+1)
	dst, err := w.errorField(dst, e)
	if err != nil {
		return dst, err
	}
	return w.end(dst)
}

func appendTransfer(dst []byte, t *Transfer, depth int) ([]byte, error) {
	dst, w := beginDescribed(dst, DescTransfer, depth+1)
	dst = w.uint32(dst, t.Handle)
	dst = w.optUint32(dst, t.DeliveryID)
	if t.DeliveryTag == nil {
		dst = w.null(dst)
	} else {
		dst = w.mark(appendBinary(dst, t.DeliveryTag))
	}
	dst = w.optUint32(dst, t.MessageFormat)
	if t.Settled == nil {
		dst = w.null(dst)
	} else {
		dst = w.boolean(dst, *t.Settled)
	}
	dst = w.flag(dst, t.More)
	dst = w.ubyte(dst, t.RcvSettleMode)
	dst, err := w.state(dst, t.State)
	if err != nil {
		return dst, err
	}
	dst = w.flag(dst, t.Resume)
	dst = w.flag(dst, t.Aborted)
	dst = w.flag(dst, t.Batchable)
	return w.end(dst)
}

func appendAttach(dst []byte, a *Attach, depth int) ([]byte, error) {
	dst, w := beginDescribed(dst, DescAttach, depth+1)
	dst = w.str(dst, a.Name, true)
	dst = w.uint32(dst, a.Handle)
	dst = w.boolean(dst, bool(a.Role))
	dst = w.ubyte(dst, a.SndSettleMode)
	dst = w.ubyte(dst, a.RcvSettleMode)
	var err error
	if a.Source == nil {
		dst = w.null(dst)
	} else {
		if dst, err = appendSource(dst, a.Source, w.depth); err != nil {
			return dst, err
		}
		dst = w.mark(dst)
	}
	if a.Target == nil {
		dst = w.null(dst)
	} else {
		if dst, err = appendTarget(dst, a.Target, w.depth); err != nil {
			return dst, err
		}
		dst = w.mark(dst)
	}
	if dst, err = w.anyMap(dst, a.Unsettled); err != nil {
		return dst, err
	}
	dst = w.flag(dst, a.IncompleteUnsettled)
	dst = w.optUint32(dst, a.InitialDeliveryCount)
	if a.MaxMessageSize == nil {
		dst = w.null(dst)
	} else {
		dst = w.mark(appendUint64(dst, *a.MaxMessageSize))
	}
	dst = w.symbols(dst, a.OfferedCapabilities, false)
	dst = w.symbols(dst, a.DesiredCapabilities, false)
	if dst, err = w.symbolMap(dst, a.Properties); err != nil {
		return dst, err
	}
	return w.end(dst)
}
