package amqp

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"io"
	"math"
	"strconv"
	"strings"
	"testing"
	"time"
)

func ptr[T any](v T) *T { return &v }

// rawFrame wraps body in a frame header with doff 2.
func rawFrame(typ uint8, channel uint16, body []byte) []byte {
	b := make([]byte, 8, 8+len(body))
	binary.BigEndian.PutUint32(b, uint32(8+len(body)))
	b[4], b[5] = 2, typ
	binary.BigEndian.PutUint16(b[6:], channel)
	return append(b, body...)
}

// roundTripFrames covers every performative and SASL body, fully populated and minimal.
func roundTripFrames() map[string]Frame {
	addr := "queue/Subscriptions/sub"
	empty := ""
	return map[string]Frame{
		"open full": {Body: &Open{
			ContainerID: "c1", Hostname: "localhost:5672", MaxFrameSize: 65536, ChannelMax: 65535,
			IdleTimeout: 30000, OutgoingLocales: []Symbol{"en-US"}, IncomingLocales: []Symbol{"en-US", "de"},
			OfferedCapabilities: []Symbol{"ANONYMOUS-RELAY"}, DesiredCapabilities: []Symbol{"x"},
			Properties: Fields{"product": "MSGolangClient", "n": int64(-5)},
		}},
		"open minimal": {Body: &Open{ContainerID: "", MaxFrameSize: math.MaxUint32, ChannelMax: 0}},
		"begin full": {Channel: 3, Body: &Begin{
			RemoteChannel: ptr[uint16](7), NextOutgoingID: 1, IncomingWindow: 5000, OutgoingWindow: 5000,
			HandleMax: 4294967294, OfferedCapabilities: []Symbol{"a"}, DesiredCapabilities: []Symbol{"b", "c"},
			Properties: Fields{"k": uint32(1)},
		}},
		"begin minimal": {Body: &Begin{HandleMax: math.MaxUint32}},
		"attach receiver": {Channel: 2, Body: &Attach{
			Name: "link-1", Handle: 0, Role: RoleReceiver, RcvSettleMode: ptr(RcvSecond),
			Source: &Source{Address: &addr, Durable: 2, ExpiryPolicy: "never", Timeout: 60, Dynamic: true,
				DynamicNodeProperties: Fields{"lifetime-policy": Described{Descriptor: uint64(0x2b), Value: []any{}}},
				DistributionMode:      "move",
				Filter: map[Symbol]any{"com.microsoft:session-filter": Described{
					Descriptor: uint64(0x137000000C), Value: nil}},
				DefaultOutcome: &Modified{DeliveryFailed: true},
				Outcomes:       []Symbol{"amqp:accepted:list", "amqp:rejected:list"},
				Capabilities:   []Symbol{"queue"}},
			Target:              &Target{Address: &empty, ExpiryPolicy: "session-end"},
			Unsettled:           map[any]any{"tag": &Accepted{}},
			IncompleteUnsettled: true, InitialDeliveryCount: ptr[uint32](0), MaxMessageSize: ptr[uint64](262144),
			OfferedCapabilities: []Symbol{"o"}, DesiredCapabilities: []Symbol{"d"},
			Properties: Fields{"com.microsoft:timeout": uint32(59888)},
		}},
		"attach sender": {Body: &Attach{
			Name: "s", Handle: 300, Role: RoleSender, SndSettleMode: ptr(SndMixed), RcvSettleMode: ptr(RcvFirst),
			Source: &Source{Address: &empty, ExpiryPolicy: "session-end"},
			Target: &Target{Address: &addr, Durable: 1, ExpiryPolicy: "link-detach", Timeout: 5, Dynamic: true,
				DynamicNodeProperties: Fields{"x": true}, Capabilities: []Symbol{"topic"}},
			InitialDeliveryCount: ptr[uint32](0),
		}},
		"attach minimal": {Body: &Attach{Name: "m"}},
		"flow full": {Body: &Flow{
			NextIncomingID: ptr[uint32](1), IncomingWindow: 5000, NextOutgoingID: 2, OutgoingWindow: 3,
			Handle: ptr[uint32](0), DeliveryCount: ptr[uint32](4), LinkCredit: ptr[uint32](1000),
			Available: ptr[uint32](9), Drain: true, Echo: true, Properties: Fields{"p": "v"},
		}},
		"flow session": {Body: &Flow{IncomingWindow: 1, NextOutgoingID: 2, OutgoingWindow: 3}},
		"transfer full": {Channel: 1, Body: &Transfer{
			Handle: 1, DeliveryID: ptr[uint32](70000), DeliveryTag: []byte{1, 2, 3}, MessageFormat: ptr[uint32](0x80013700),
			Settled: ptr(false), More: true, RcvSettleMode: ptr(RcvSecond),
			State: &Received{SectionNumber: 1, SectionOffset: 2}, Resume: true, Aborted: true, Batchable: true,
		}, Payload: []byte("payload")},
		"transfer minimal": {Body: &Transfer{Handle: 0}},
		"transfer settled true": {Body: &Transfer{Handle: 2, DeliveryID: ptr[uint32](0), DeliveryTag: []byte{9},
			Settled: ptr(true)}, Payload: []byte{0x00, 0x53, 0x75, 0xa0, 0x00}},
		"disposition accepted": {Body: &Disposition{Role: RoleReceiver, First: 0, Settled: true, State: &Accepted{}}},
		"disposition rejected": {Body: &Disposition{Role: RoleSender, First: 2, Last: ptr[uint32](5), State: &Rejected{
			Error: &Error{Condition: "com.microsoft:dead-letter", Description: "d",
				Info: Fields{"DeadLetterReason": "why", "DeadLetterErrorDescription": "desc"}}}, Batchable: true}},
		"disposition modified": {Body: &Disposition{Role: RoleReceiver, First: 1, State: &Modified{
			UndeliverableHere: true, MessageAnnotations: map[any]any{Symbol("abandoned"): true}}}},
		"disposition released": {Body: &Disposition{Role: RoleReceiver, First: 1, State: &Released{}}},
		"disposition received": {Body: &Disposition{Role: RoleReceiver, First: 1, State: &Received{}}},
		"detach error":         {Body: &Detach{Handle: 4, Closed: true, Error: &Error{Condition: "amqp:link:detach-forced"}}},
		"detach minimal":       {Body: &Detach{Handle: 0}},
		"end error":            {Body: &End{Error: &Error{Condition: "amqp:internal-error", Description: "boom"}}},
		"end":                  {Body: &End{}},
		"close error":          {Body: &Close{Error: &Error{Condition: "amqp:connection:forced", Info: Fields{"a": []any{}}}}},
		"close":                {Body: &Close{}},
		"keepalive":            {},
		"sasl mechanisms": {Type: FrameSASL, Body: &SASLMechanisms{
			Mechanisms: []Symbol{"MSSBCBS", "ANONYMOUS"}}},
		"sasl mechanisms empty": {Type: FrameSASL, Body: &SASLMechanisms{}},
		"sasl init": {Type: FrameSASL, Body: &SASLInit{Mechanism: "ANONYMOUS",
			InitialResponse: []byte("anonymous"), Hostname: "localhost"}},
		"sasl init minimal":    {Type: FrameSASL, Body: &SASLInit{Mechanism: "PLAIN"}},
		"sasl challenge":       {Type: FrameSASL, Body: &SASLChallenge{Challenge: []byte{1}}},
		"sasl challenge empty": {Type: FrameSASL, Body: &SASLChallenge{}},
		"sasl response":        {Type: FrameSASL, Body: &SASLResponse{Response: []byte("r")}},
		"sasl outcome":         {Type: FrameSASL, Body: &SASLOutcome{Code: 0}},
		"sasl outcome data":    {Type: FrameSASL, Body: &SASLOutcome{Code: 2, AdditionalData: []byte{1, 2}}},
	}
}

// dl builds a described list with a smallulong descriptor: 00 53 code c0 size count fields.
func dl(code byte, count int, fields string) []byte {
	f := h(fields)
	return append([]byte{0x00, 0x53, code, 0xc0, byte(len(f) + 1), byte(count)}, f...)
}

// dsl builds a described list with a symbolic descriptor.
func dsl(desc string, count int, fields string) []byte {
	f := h(fields)
	b := append([]byte{0x00, 0xa3, byte(len(desc))}, desc...)
	if count == 0 {
		return append(b, 0x45)
	}
	return append(append(b, 0xc0, byte(len(f)+1), byte(count)), f...)
}

func TestFrameRoundTrip(t *testing.T) {
	for name, f := range roundTripFrames() {
		t.Run(name, func(t *testing.T) {
			b, err := AppendFrame([]byte{0xaa}, f)
			if err != nil {
				t.Fatalf("AppendFrame: %v", err)
			}
			if b[0] != 0xaa {
				t.Fatal("AppendFrame overwrote dst")
			}
			got, err := ParseFrame(b[1:])
			if err != nil {
				t.Fatalf("ParseFrame(% x): %v", b[1:], err)
			}
			if !valueEqual(got, f) {
				t.Fatalf("round trip:\n got %#v\nwant %#v", got.Body, f.Body)
			}
			// The same body also round-trips as a plain value.
			if f.Body != nil {
				vb, err := AppendValue(nil, f.Body)
				if err != nil {
					t.Fatal(err)
				}
				v, n, err := DecodeValue(vb)
				if err != nil || n != len(vb) || !valueEqual(v, f.Body) {
					t.Fatalf("value round trip: %#v, n=%d/%d, err=%v", v, n, len(vb), err)
				}
			}
		})
	}
}

func TestAppendFrameBytes(t *testing.T) {
	tests := []struct {
		name string
		f    Frame
		want string
	}{
		{"keepalive", Frame{}, "00 00 00 08 02 00 00 00"},
		{"close", Frame{Body: &Close{}}, "00 00 00 0c 02 00 00 00 00 53 18 45"},
		{"end on channel 258", Frame{Channel: 258, Body: &End{}}, "00 00 00 0c 02 00 01 02 00 53 17 45"},
		{"disposition accepted", Frame{Body: &Disposition{Role: RoleSender, First: 2, Settled: true, State: &Accepted{}}},
			"00 00 00 17 02 00 00 00 00 53 15 c0 0a 05 42 52 02 40 41 00 53 24 45"},
		{"sasl outcome", Frame{Type: FrameSASL, Body: &SASLOutcome{}},
			"00 00 00 10 02 01 00 00 00 53 44 c0 03 01 50 00"},
		{"sasl mechanisms", Frame{Type: FrameSASL, Body: &SASLMechanisms{Mechanisms: []Symbol{"ANONYMOUS"}}},
			"00 00 00 1c 02 01 00 00 00 53 40 c0 0f 01 e0 0c 01 a3 09 414e4f4e594d4f5553"},
		{"detach drops trailing nulls", Frame{Body: &Detach{Handle: 1}}, "00 00 00 10 02 00 00 00 00 53 16 c0 03 01 52 01"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := AppendFrame(nil, tt.f)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, h(tt.want)) {
				t.Fatalf("AppendFrame = % x\n           want % x", got, h(tt.want))
			}
		})
	}
}

func TestAppendFrameErrors(t *testing.T) {
	tests := []struct {
		name string
		f    Frame
		want string
	}{
		{"unknown type", Frame{Type: 7}, "unknown frame type 0x07"},
		{"payload on open", Frame{Body: &Open{}, Payload: []byte{1}}, "only transfers carry one"},
		{"payload without body", Frame{Payload: []byte{1}}, "payload on an empty frame"},
		{"sasl in amqp frame", Frame{Body: &SASLInit{}}, "does not belong in a frame of type 0x00"},
		{"open in sasl frame", Frame{Type: FrameSASL, Body: &Open{}}, "does not belong in a frame of type 0x01"},
		{"bad property", Frame{Body: &Open{Properties: Fields{"x": struct{}{}}}}, "unsupported Go type"},
		{"nil transfer", Frame{Body: (*Transfer)(nil)}, "nil *amqp.Transfer"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := AppendFrame([]byte{9}, tt.f)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want %q", err, tt.want)
			}
			if !bytes.Equal(got, []byte{9}) {
				t.Fatalf("dst changed on error: % x", got)
			}
		})
	}
}

func TestParseFrameSpecDefaults(t *testing.T) {
	tests := []struct {
		name string
		body []byte
		want Performative
	}{
		{"open only container-id", dl(0x10, 1, "a1 00"),
			&Open{MaxFrameSize: math.MaxUint32, ChannelMax: math.MaxUint16}},
		{"open nulls are absent", dl(0x10, 5, "a1 01 63 40 40 40 40"),
			&Open{ContainerID: "c", MaxFrameSize: math.MaxUint32, ChannelMax: math.MaxUint16}},
		{"open by symbol", dsl("amqp:open:list", 1, "a1 00"),
			&Open{MaxFrameSize: math.MaxUint32, ChannelMax: math.MaxUint16}},
		{"begin defaults", dl(0x11, 4, "40 43 43 43"),
			&Begin{HandleMax: math.MaxUint32}},
		{"attach no settle modes", dl(0x12, 3, "a1 01 6e 43 41"),
			&Attach{Name: "n", Role: RoleReceiver}},
		{"attach single-symbol capabilities", dl(0x12, 12, "a1 01 6e 43 42 40 40 40 40 40 40 40 40 a3 01 78"),
			&Attach{Name: "n", OfferedCapabilities: []Symbol{"x"}}},
		{"attach source defaults", dl(0x12, 6, "a1 01 6e 43 42 40 40 00 53 28 45"),
			&Attach{Name: "n", Source: &Source{ExpiryPolicy: "session-end"}}},
		{"attach source by symbol", dl(0x12, 6, "a1 01 6e 43 42 40 40"+hex.EncodeToString(dsl("amqp:source:list", 1, "a1 00"))),
			&Attach{Name: "n", Source: &Source{Address: ptr(""), ExpiryPolicy: "session-end"}}},
		{"attach empty capability array", dl(0x12, 12, "a1 01 6e 43 42 40 40 40 40 40 40 40 40 e0 02 00 a3"),
			&Attach{Name: "n"}},
		{"disposition accepted by symbol", dl(0x15, 5, "41 43 40 40"+hex.EncodeToString(dsl("amqp:accepted:list", 0, ""))),
			&Disposition{Role: RoleReceiver, State: &Accepted{}}},
		{"transfer ulong-encoded handle", dl(0x14, 1, "44"), &Transfer{}},
		{"transfer empty tag", dl(0x14, 3, "43 40 a0 00"), &Transfer{}},
		{"sasl-init by symbol", dsl("amqp:sasl-init:list", 2, "a3 09 414e4f4e594d4f5553 a0 01 61"),
			&SASLInit{Mechanism: "ANONYMOUS", InitialResponse: []byte("a")}},
		{"sasl-response", dl(0x43, 1, "a0 01 72"), &SASLResponse{Response: []byte("r")}},
		{"flow extra unknown field skipped", dl(0x13, 12, "40 43 43 43 40 40 40 40 40 40 40 a1 01 7a"),
			&Flow{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			typ := FrameAMQP
			if isSASL(tt.want) {
				typ = FrameSASL
			}
			f, err := ParseFrame(rawFrame(typ, 0, tt.body))
			if err != nil {
				t.Fatalf("ParseFrame: %v", err)
			}
			if !valueEqual(f.Body, tt.want) {
				t.Fatalf("Body = %#v, want %#v", f.Body, tt.want)
			}
		})
	}
}

func TestParseFrameErrors(t *testing.T) {
	tests := []struct {
		name string
		in   []byte
		want string
	}{
		{"short", h("00 00 00 08 02 00"), "shorter than the 8-byte header"},
		{"size mismatch", h("00 00 00 09 02 00 00 00"), "size field says 9 bytes, got 8"},
		{"doff too small", h("00 00 00 08 01 00 00 00"), "data offset 1 is below the minimum of 2"},
		{"doff too large", h("00 00 00 08 03 00 00 00"), "data offset 3 (12 bytes) exceeds the frame size 8"},
		{"unknown type", h("00 00 00 08 02 05 00 00"), "unknown frame type 0x05"},
		{"body not described", rawFrame(0, 0, h("45")), "want described performative, got list"},
		{"body not performative", rawFrame(0, 0, h("00 53 24 45")), "want a performative, got *amqp.Accepted"},
		{"body unknown descriptor", rawFrame(0, 0, h("00 53 99 45")), "want a performative, got described value with descriptor 0x99"},
		{"sasl in amqp frame", rawFrame(0, 0, h("00 53 44 c0 03 01 50 00")), "*amqp.SASLOutcome in a frame of type 0x00"},
		{"open in sasl frame", rawFrame(1, 0, dl(0x10, 1, "a1 00")), "*amqp.Open in a frame of type 0x01"},
		{"trailing bytes", rawFrame(0, 0, h("00 53 18 45 00")), "1 bytes after a *amqp.Close body"},
		{"attach handle string", rawFrame(0, 0, dl(0x12, 3, "a1 01 6e a1 00")), "attach.handle: want uint, got string"},
		{"attach missing role", rawFrame(0, 0, dl(0x12, 2, "a1 01 6e 43")), "attach.role: required field is missing"},
		{"attach source wrong", rawFrame(0, 0, dl(0x12, 6, "a1 01 6e 43 42 40 40 41")), "attach.source: want source, got boolean"},
		{"attach target is source", rawFrame(0, 0, dl(0x12, 7, "a1 01 6e 43 42 40 40 40 00 53 28 45")), "attach.target: want target, got *amqp.Source"},
		{"attach properties key", rawFrame(0, 0, dl(0x12, 14, "a1 01 6e 43 42 40 40 40 40 40 40 40 40 40 40 c1 03 02 43 43")),
			"attach.properties: map key: want symbol, got uint"},
		{"attach capabilities of uint", rawFrame(0, 0, dl(0x12, 12, "a1 01 6e 43 42 40 40 40 40 40 40 40 40 e0 02 01 43")),
			"attach.offered-capabilities: want array of symbol, got array of uint"},
		{"open max-frame-size tiny", rawFrame(0, 0, dl(0x10, 3, "a1 01 63 40 52 10")), "open.max-frame-size: 16 is below the minimum of 512"},
		{"open channel-max too big", rawFrame(0, 0, dl(0x10, 4, "a1 01 63 40 40 70 00 01 00 00")), "open.channel-max: value 65536 out of range for ushort"},
		{"transfer state not a state", rawFrame(0, 0, dl(0x14, 8, "43 40 40 40 40 40 40 00 53 1d c0 03 01 a3 00")),
			"transfer.state: want delivery state, got *amqp.Error"},
		{"transfer unknown state", rawFrame(0, 0, dl(0x14, 8, "43 40 40 40 40 40 40 00 53 34 45")),
			"transfer.state: want delivery state, got described value with descriptor 0x34"},
		{"disposition bool garbage", rawFrame(0, 0, dl(0x15, 2, "56 07 43")), "disposition.role: boolean: want 0x00 or 0x01, got 0x07"},
		{"sasl-outcome code too big", rawFrame(1, 0, dl(0x44, 1, "70 00 00 01 00")), "sasl-outcome.code: value 256 out of range for ubyte"},
		{"sasl-init missing mechanism", rawFrame(1, 0, h("00 53 41 45")), "sasl-init.mechanism: required field is missing"},
		{"list field count lies", rawFrame(0, 0, h("00 53 18 c0 01 05")), "close: field count 5 exceeds the 0 bytes of its list"},
		{"field list leftover", rawFrame(0, 0, h("00 53 18 c0 02 00 40")), "close: 1 bytes left over after 0 fields"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseFrame(tt.in)
			if err == nil {
				t.Fatalf("ParseFrame(% x) succeeded, want error %q", tt.in, tt.want)
			}
			if !errors.Is(err, ErrDecode) {
				t.Fatalf("error %v does not wrap ErrDecode", err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %q does not contain %q", err, tt.want)
			}
		})
	}
}

func TestParseFrameExtendedHeader(t *testing.T) {
	b := h("00 00 00 10 03 00 00 05 ee ee ee ee 00 53 18 45")
	f, err := ParseFrame(b)
	if err != nil {
		t.Fatal(err)
	}
	if f.Channel != 5 || !valueEqual(f.Body, &Close{}) {
		t.Fatalf("frame = %#v", f)
	}
}

func TestParseFramePayloadIsCopy(t *testing.T) {
	b, err := AppendFrame(nil, Frame{Body: &Transfer{DeliveryTag: []byte{7}}, Payload: []byte{1, 2, 3}})
	if err != nil {
		t.Fatal(err)
	}
	f, err := ParseFrame(b)
	if err != nil {
		t.Fatal(err)
	}
	clear(b)
	tr := f.Body.(*Transfer)
	if !bytes.Equal(f.Payload, []byte{1, 2, 3}) || !bytes.Equal(tr.DeliveryTag, []byte{7}) {
		t.Fatalf("payload %v / tag %v changed with the input", f.Payload, tr.DeliveryTag)
	}
	// Appending to the tag must not overwrite the payload that shares its allocation.
	_ = append(tr.DeliveryTag, 0xff)
	if f.Payload[0] != 1 {
		t.Fatal("delivery tag and payload overlap")
	}
}

// pieces is an io.Reader returning its chunks one Read at a time, then err.
type pieces struct {
	chunks [][]byte
	err    error
}

func (p *pieces) Read(b []byte) (int, error) {
	for len(p.chunks) > 0 && len(p.chunks[0]) == 0 {
		p.chunks = p.chunks[1:]
	}
	if len(p.chunks) == 0 {
		return 0, p.err
	}
	n := copy(b, p.chunks[0])
	p.chunks[0] = p.chunks[0][n:]
	return n, nil
}

func TestFrameReaderStream(t *testing.T) {
	var stream []byte
	stream = append(stream, HeaderSASL[:]...)
	frames := []Frame{
		{Type: FrameSASL, Body: &SASLInit{Mechanism: "ANONYMOUS", InitialResponse: []byte("anonymous")}},
	}
	for _, f := range frames {
		stream, _ = AppendFrame(stream, f)
	}
	stream = append(stream, HeaderAMQP[:]...)
	big := bytes.Repeat([]byte{0x5a}, 10000)
	after := []Frame{
		{Body: &Open{ContainerID: "c", MaxFrameSize: 65536, ChannelMax: 65535}},
		{},
		{Channel: 1, Body: &Transfer{Handle: 0, DeliveryID: ptr[uint32](0), DeliveryTag: []byte{1}}, Payload: big},
		{Body: &Close{}},
	}
	for _, f := range after {
		stream, _ = AppendFrame(stream, f)
	}
	// Every split point, and a byte-at-a-time reader.
	readers := map[string]func() io.Reader{
		"whole":          func() io.Reader { return &pieces{chunks: [][]byte{bytes.Clone(stream)}, err: io.EOF} },
		"byte at a time": func() io.Reader { return io.LimitReader(&oneByte{b: bytes.Clone(stream)}, int64(len(stream))) },
	}
	for _, cut := range []int{1, 4, 8, 9, 12, 30, len(stream) - 3} {
		readers["split "+strconv.Itoa(cut)] = func() io.Reader {
			s := bytes.Clone(stream)
			return &pieces{chunks: [][]byte{s[:cut], s[cut:]}, err: io.EOF}
		}
	}
	for name, mk := range readers {
		t.Run(name, func(t *testing.T) {
			fr := NewFrameReader(mk())
			hdr, err := fr.ReadProtocolHeader()
			if err != nil || hdr != HeaderSASL {
				t.Fatalf("header = %v, %v", hdr, err)
			}
			for _, want := range frames {
				got, err := fr.ReadFrame()
				if err != nil || !valueEqual(got, want) {
					t.Fatalf("ReadFrame = %#v, %v", got, err)
				}
			}
			if hdr, err = fr.ReadProtocolHeader(); err != nil || hdr != HeaderAMQP {
				t.Fatalf("header = %v, %v", hdr, err)
			}
			for _, want := range after {
				got, err := fr.ReadFrame()
				if err != nil || !valueEqual(got, want) {
					t.Fatalf("ReadFrame = %#v, %v", got.Body, err)
				}
			}
			if _, err := fr.ReadFrame(); err != io.EOF {
				t.Fatalf("at end: err = %v, want io.EOF", err)
			}
		})
	}
}

type oneByte struct{ b []byte }

func (o *oneByte) Read(p []byte) (int, error) {
	if len(o.b) == 0 {
		return 0, io.EOF
	}
	if len(p) == 0 {
		return 0, nil
	}
	p[0] = o.b[0]
	o.b = o.b[1:]
	return 1, nil
}

func TestFrameReaderErrors(t *testing.T) {
	closeFrame, _ := AppendFrame(nil, Frame{Body: &Close{}})
	tests := []struct {
		name      string
		in        []byte
		max       uint32
		wantIs    error
		wantMsg   string
		notDecode bool
	}{
		{"eof before frame", nil, 0, io.EOF, "", true},
		{"eof in size", h("00 00"), 0, io.ErrUnexpectedEOF, "", true},
		{"eof in frame", closeFrame[:10], 0, io.ErrUnexpectedEOF, "", true},
		{"too large default", h("00 01 00 01 02 00 00 00"), 0, ErrFrameTooLarge, "size field 65537 exceeds the maximum of 65536", true},
		{"too large after set", append(h("00 00 02 01 02 00 00 00"), make([]byte, 505)...), 512, ErrFrameTooLarge, "513 exceeds the maximum of 512", true},
		{"set below minimum is raised", h("00 00 02 01 02 00 00 00"), 1, ErrFrameTooLarge, "maximum of 512", true},
		{"size below header", h("00 00 00 04"), 0, ErrDecode, "size field 4 is smaller than the 8-byte header", false},
		{"malformed frame", rawFrame(0, 0, h("ff")), 0, ErrDecode, "want described performative", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fr := NewFrameReader(bytes.NewReader(tt.in))
			if tt.max != 0 {
				fr.SetMaxFrameSize(tt.max)
			}
			_, err := fr.ReadFrame()
			if !errors.Is(err, tt.wantIs) {
				t.Fatalf("err = %v, want %v", err, tt.wantIs)
			}
			if tt.notDecode && errors.Is(err, ErrDecode) {
				t.Fatalf("err = %v wraps ErrDecode", err)
			}
			if !strings.Contains(err.Error(), tt.wantMsg) {
				t.Fatalf("err = %q, want %q", err, tt.wantMsg)
			}
		})
	}
}

func TestFrameReaderLargeFrameAfterSet(t *testing.T) {
	payload := bytes.Repeat([]byte{1}, 200000)
	b, err := AppendFrame(nil, Frame{Body: &Transfer{Handle: 1}, Payload: payload})
	if err != nil {
		t.Fatal(err)
	}
	fr := NewFrameReader(bytes.NewReader(b))
	fr.SetMaxFrameSize(1 << 20)
	f, err := fr.ReadFrame()
	if err != nil || !bytes.Equal(f.Payload, payload) {
		t.Fatalf("ReadFrame: %v (payload %d bytes)", err, len(f.Payload))
	}
}

func TestFrameReaderBadProtocolHeader(t *testing.T) {
	fr := NewFrameReader(strings.NewReader("HTTP/1.1"))
	hdr, err := fr.ReadProtocolHeader()
	if !errors.Is(err, ErrDecode) || string(hdr[:]) != "HTTP/1.1" {
		t.Fatalf("header %q, err %v", hdr, err)
	}
	fr = NewFrameReader(strings.NewReader("AMQ"))
	if _, err := fr.ReadProtocolHeader(); err != io.ErrUnexpectedEOF {
		t.Fatalf("short header: err = %v, want io.ErrUnexpectedEOF", err)
	}
}

type stuckReader struct{}

func (stuckReader) Read([]byte) (int, error) { return 0, nil }

func TestFrameReaderNoProgress(t *testing.T) {
	fr := NewFrameReader(stuckReader{})
	if _, err := fr.ReadFrame(); err != io.ErrNoProgress {
		t.Fatalf("err = %v, want io.ErrNoProgress", err)
	}
}

func TestDecodeTimestampUTC(t *testing.T) {
	v, _, err := DecodeValue(h("83 00 00 00 00 00 00 03 e8"))
	if err != nil {
		t.Fatal(err)
	}
	ts := v.(time.Time)
	if ts.Location() != time.UTC || ts.UnixMilli() != 1000 {
		t.Fatalf("timestamp = %v", ts)
	}
}
