// Package amqp is holdfast's own AMQP 1.0 codec for the emulator: the type system, frames,
// performatives, delivery states and SASL frames, as a server needs them.
//
// Values decode to these Go types:
//
//	null        nil
//	boolean     bool
//	ubyte..ulong  uint8, uint16, uint32, uint64
//	byte..long  int8, int16, int32, int64
//	float/double float32, float64
//	char        Char
//	timestamp   time.Time (UTC, millisecond precision)
//	uuid        UUID
//	binary      []byte
//	string      string
//	symbol      Symbol
//	list        []any
//	map         map[any]any (binary keys decode as string)
//	array       []Symbol, []string, []int64, []uint64, []int32, []uint32, []UUID, []time.Time, []bool,
//	            [][]byte; arrays of other element types decode as []any
//	decimal32/64/128 Decimal32, Decimal64, Decimal128 (raw bytes)
//	described   Described (unless it is a known performative, delivery state, terminus, error or
//	            SASL body: those decode to *Open, *Accepted, *Source, *Error, *SASLInit, …)
//
// Encoding maps the same Go types back (int encodes as long, uint as ulong); map[Symbol]any,
// map[string]any and Fields encode as maps, and the struct pointers as described lists.
//
// Composite fields: absent and null fields decode to the zero value (nil pointer, "", false, 0) unless
// a spec default is noted on the field; Source/Target ExpiryPolicy absent ⇒ "session-end". Empty
// multiple-valued fields, maps and binaries decode to nil. On encode, zero values of optional fields
// are written as null and trailing nulls are dropped.
package amqp

import "time"

// Symbol is an AMQP symbol (ASCII).
type Symbol string

// UUID is an AMQP uuid in RFC 4122 byte order.
type UUID [16]byte

// Char is an AMQP char (a UTF-32 code point).
type Char rune

// Described is a described value whose descriptor is not one the codec knows.
// Descriptor is uint64 or Symbol.
type Described struct {
	Descriptor any
	Value      any
}

// Fields is an AMQP fields map: symbol keys, any values.
type Fields map[Symbol]any

// Role of a link endpoint: false is sender, true is receiver.
type Role bool

const (
	RoleSender   Role = false
	RoleReceiver Role = true
)

// Settle modes.
const (
	SndUnsettled uint8 = 0
	SndSettled   uint8 = 1
	SndMixed     uint8 = 2

	RcvFirst  uint8 = 0
	RcvSecond uint8 = 1
)

// Frame types.
const (
	FrameAMQP uint8 = 0x00
	FrameSASL uint8 = 0x01
)

// Descriptor codes.
const (
	DescOpen        uint64 = 0x10
	DescBegin       uint64 = 0x11
	DescAttach      uint64 = 0x12
	DescFlow        uint64 = 0x13
	DescTransfer    uint64 = 0x14
	DescDisposition uint64 = 0x15
	DescDetach      uint64 = 0x16
	DescEnd         uint64 = 0x17
	DescClose       uint64 = 0x18
	DescError       uint64 = 0x1d
	DescReceived    uint64 = 0x23
	DescAccepted    uint64 = 0x24
	DescRejected    uint64 = 0x25
	DescReleased    uint64 = 0x26
	DescModified    uint64 = 0x27
	DescSource      uint64 = 0x28
	DescTarget      uint64 = 0x29

	DescSASLMechanisms uint64 = 0x40
	DescSASLInit       uint64 = 0x41
	DescSASLChallenge  uint64 = 0x42
	DescSASLResponse   uint64 = 0x43
	DescSASLOutcome    uint64 = 0x44
)

// Protocol headers.
var (
	HeaderAMQP = [8]byte{'A', 'M', 'Q', 'P', 0, 1, 0, 0}
	HeaderSASL = [8]byte{'A', 'M', 'Q', 'P', 3, 1, 0, 0}
)

// Error is the AMQP error type (descriptor 0x1d).
type Error struct {
	Condition   Symbol
	Description string
	Info        Fields
}

func (e *Error) Error() string {
	if e.Description == "" {
		return string(e.Condition)
	}
	return string(e.Condition) + ": " + e.Description
}

// Performative is one of the nine AMQP performatives or a SASL frame body.
type Performative interface{ performative() }

// Open is performative 0x10.
type Open struct {
	ContainerID         string
	Hostname            string
	MaxFrameSize        uint32 // decode: absent ⇒ 4294967295, below 512 ⇒ error; encode: 0 ⇒ omitted (spec default)
	ChannelMax          uint16 // decode: absent ⇒ 65535; encode: always written as is
	IdleTimeout         uint32 // milliseconds, 0 = none
	OutgoingLocales     []Symbol
	IncomingLocales     []Symbol
	OfferedCapabilities []Symbol
	DesiredCapabilities []Symbol
	Properties          Fields
}

// Begin is performative 0x11.
type Begin struct {
	RemoteChannel       *uint16
	NextOutgoingID      uint32
	IncomingWindow      uint32
	OutgoingWindow      uint32
	HandleMax           uint32 // decode: absent ⇒ 4294967295; encode: always written as is
	OfferedCapabilities []Symbol
	DesiredCapabilities []Symbol
	Properties          Fields
}

// Attach is performative 0x12. Nil pointers are absent fields.
type Attach struct {
	Name                 string
	Handle               uint32
	Role                 Role
	SndSettleMode        *uint8
	RcvSettleMode        *uint8
	Source               *Source
	Target               *Target
	Unsettled            map[any]any
	IncompleteUnsettled  bool
	InitialDeliveryCount *uint32
	MaxMessageSize       *uint64
	OfferedCapabilities  []Symbol
	DesiredCapabilities  []Symbol
	Properties           Fields
}

// Source is the source terminus (0x28).
type Source struct {
	Address               *string
	Durable               uint32
	ExpiryPolicy          Symbol
	Timeout               uint32
	Dynamic               bool
	DynamicNodeProperties Fields
	DistributionMode      Symbol
	Filter                map[Symbol]any // values are usually Described
	DefaultOutcome        any
	Outcomes              []Symbol
	Capabilities          []Symbol
}

// Target is the target terminus (0x29).
type Target struct {
	Address               *string
	Durable               uint32
	ExpiryPolicy          Symbol
	Timeout               uint32
	Dynamic               bool
	DynamicNodeProperties Fields
	Capabilities          []Symbol
}

// Flow is performative 0x13.
type Flow struct {
	NextIncomingID *uint32
	IncomingWindow uint32
	NextOutgoingID uint32
	OutgoingWindow uint32
	Handle         *uint32
	DeliveryCount  *uint32
	LinkCredit     *uint32
	Available      *uint32
	Drain          bool
	Echo           bool
	Properties     Fields
}

// Transfer is performative 0x14. The payload travels in Frame.Payload.
type Transfer struct {
	Handle        uint32
	DeliveryID    *uint32
	DeliveryTag   []byte
	MessageFormat *uint32
	Settled       *bool
	More          bool
	RcvSettleMode *uint8
	State         DeliveryState
	Resume        bool
	Aborted       bool
	Batchable     bool
}

// Disposition is performative 0x15.
type Disposition struct {
	Role      Role
	First     uint32
	Last      *uint32
	Settled   bool
	State     DeliveryState
	Batchable bool
}

// Detach is performative 0x16.
type Detach struct {
	Handle uint32
	Closed bool
	Error  *Error
}

// End is performative 0x17.
type End struct{ Error *Error }

// Close is performative 0x18.
type Close struct{ Error *Error }

// SASLMechanisms is SASL frame 0x40.
type SASLMechanisms struct{ Mechanisms []Symbol }

// SASLInit is SASL frame 0x41.
type SASLInit struct {
	Mechanism       Symbol
	InitialResponse []byte
	Hostname        string
}

// SASLChallenge is SASL frame 0x42.
type SASLChallenge struct{ Challenge []byte }

// SASLResponse is SASL frame 0x43.
type SASLResponse struct{ Response []byte }

// SASLOutcome is SASL frame 0x44. Code 0 is ok.
type SASLOutcome struct {
	Code           uint8
	AdditionalData []byte
}

func (*Open) performative()           {}
func (*Begin) performative()          {}
func (*Attach) performative()         {}
func (*Flow) performative()           {}
func (*Transfer) performative()       {}
func (*Disposition) performative()    {}
func (*Detach) performative()         {}
func (*End) performative()            {}
func (*Close) performative()          {}
func (*SASLMechanisms) performative() {}
func (*SASLInit) performative()       {}
func (*SASLChallenge) performative()  {}
func (*SASLResponse) performative()   {}
func (*SASLOutcome) performative()    {}

// DeliveryState is one of Received, Accepted, Rejected, Released, Modified.
type DeliveryState interface{ deliveryState() }

// Received is delivery state 0x23.
type Received struct {
	SectionNumber uint32
	SectionOffset uint64
}

// Accepted is delivery state 0x24.
type Accepted struct{}

// Rejected is delivery state 0x25.
type Rejected struct{ Error *Error }

// Released is delivery state 0x26.
type Released struct{}

// Modified is delivery state 0x27.
type Modified struct {
	DeliveryFailed     bool
	UndeliverableHere  bool
	MessageAnnotations map[any]any // keys are Symbol (or uint64)
}

func (*Received) deliveryState() {}
func (*Accepted) deliveryState() {}
func (*Rejected) deliveryState() {}
func (*Released) deliveryState() {}
func (*Modified) deliveryState() {}

// Frame is one AMQP or SASL frame. Body is nil for an empty (keepalive) frame.
type Frame struct {
	Type    uint8
	Channel uint16
	Body    Performative
	Payload []byte // transfer payload (bytes after the performative); nil otherwise
}

// Timestamps are milliseconds since the Unix epoch.
var _ = time.Time{}
