package amqp

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
)

// ErrFrameTooLarge is returned by FrameReader.ReadFrame when a frame's size field exceeds the maximum
// set with SetMaxFrameSize. It does not wrap ErrDecode: the peer broke a negotiated limit (the
// connection should close with amqp:connection:framing-error), the bytes were not malformed.
var ErrFrameTooLarge = errors.New("amqp: frame too large")

// frameHeaderSize is the fixed part of a frame header: size, doff, type, channel.
const frameHeaderSize = 8

// DefaultMaxFrameSize is the largest frame a FrameReader accepts until SetMaxFrameSize is called.
const DefaultMaxFrameSize = 65536

// MinMaxFrameSize is the smallest max-frame-size AMQP allows (spec part 2.7.1).
const MinMaxFrameSize = 512

// AppendFrame appends the encoding of f to dst: the 8-byte header (size, doff=2, type, channel), the
// performative and, for transfers, f.Payload. A nil Body yields an empty (keepalive) frame. Payload on a
// frame that is not a transfer, a SASL body in an AMQP frame (or the reverse) and values the encoder
// does not support return an error and dst unchanged. Safe for concurrent use.
func AppendFrame(dst []byte, f Frame) ([]byte, error) {
	start := len(dst)
	if err := checkFrame(f); err != nil {
		return dst, err
	}
	dst = append(dst, 0, 0, 0, 0, 2, f.Type, byte(f.Channel>>8), byte(f.Channel))
	if f.Body != nil {
		var err error
		if dst, err = appendPerformative(dst, f.Body, 0); err != nil {
			return dst[:start], err
		}
		dst = append(dst, f.Payload...)
	}
	size := len(dst) - start
	if uint64(size) > math.MaxUint32 {
		return dst[:start], fmt.Errorf("amqp: encode: frame of %d bytes exceeds the 32-bit size field", size)
	}
	binary.BigEndian.PutUint32(dst[start:], uint32(size))
	return dst, nil
}

func checkFrame(f Frame) error {
	if f.Type != FrameAMQP && f.Type != FrameSASL {
		return fmt.Errorf("amqp: encode: unknown frame type 0x%02x", f.Type)
	}
	if f.Body == nil {
		if len(f.Payload) > 0 {
			return errors.New("amqp: encode: payload on an empty frame")
		}
		return nil
	}
	if _, ok := f.Body.(*Transfer); !ok && len(f.Payload) > 0 {
		return fmt.Errorf("amqp: encode: payload on a %T frame; only transfers carry one", f.Body)
	}
	if isSASL(f.Body) != (f.Type == FrameSASL) {
		return fmt.Errorf("amqp: encode: %T does not belong in a frame of type 0x%02x", f.Body, f.Type)
	}
	return nil
}

func isSASL(p Performative) bool {
	switch p.(type) {
	case *SASLMechanisms, *SASLInit, *SASLChallenge, *SASLResponse, *SASLOutcome:
		return true
	}
	return false
}

// ParseFrame decodes b, which must hold exactly one whole frame including its header. Extended header
// bytes (doff > 2) are skipped. A frame without a body decodes with a nil Body. For transfers the bytes
// after the performative are returned in Payload as a fresh copy (nil when empty); other frames must
// not carry any. Nothing in the result aliases b. Errors wrap ErrDecode. Safe for concurrent use.
func ParseFrame(b []byte) (Frame, error) {
	d := decoder{b: b}
	if len(b) < frameHeaderSize {
		return Frame{}, d.errf(0, "frame: %d bytes is shorter than the 8-byte header", len(b))
	}
	size := binary.BigEndian.Uint32(b)
	if uint64(size) != uint64(len(b)) {
		return Frame{}, d.errf(0, "frame: size field says %d bytes, got %d", size, len(b))
	}
	doff := int(b[4])
	f := Frame{Type: b[5], Channel: binary.BigEndian.Uint16(b[6:])}
	if doff < 2 {
		return Frame{}, d.errf(4, "frame: data offset %d is below the minimum of 2", doff)
	}
	if doff*4 > len(b) {
		return Frame{}, d.errf(4, "frame: data offset %d (%d bytes) exceeds the frame size %d", doff, doff*4, len(b))
	}
	if f.Type != FrameAMQP && f.Type != FrameSASL {
		return Frame{}, d.errf(5, "frame: unknown frame type 0x%02x", f.Type)
	}
	pos := doff * 4
	if pos == len(b) {
		return f, nil
	}
	if b[pos] != codeDescribed {
		return Frame{}, d.errf(pos, "frame: body: want described performative, got %s", typeName(b[pos]))
	}
	v, next, err := d.value(pos, len(b), 0)
	if err != nil {
		return Frame{}, err
	}
	body, ok := v.(Performative)
	if !ok {
		return Frame{}, d.errf(pos, "frame: body: want a performative, got %s", goTypeName(v))
	}
	if isSASL(body) != (f.Type == FrameSASL) {
		return Frame{}, d.errf(pos, "frame: %s in a frame of type 0x%02x", goTypeName(body), f.Type)
	}
	f.Body = body
	if next < len(b) {
		if _, ok := body.(*Transfer); !ok {
			return Frame{}, d.errf(next, "frame: %d bytes after a %s body; only transfers carry a payload", len(b)-next, goTypeName(body))
		}
		f.Payload = clone(b[next:])
	}
	return f, nil
}

// FrameReader reads the protocol header and frames from a byte stream. It buffers reads and reuses its
// buffer between frames; the buffer grows only as far as a frame needs (at most twice the maximum
// frame size), so a peer cannot make it allocate more by announcing a large size.
// A FrameReader is owned by one goroutine (the connection's reader); it is not safe for concurrent use.
type FrameReader struct {
	r        io.Reader
	buf      []byte // buf[start:end] holds bytes read but not yet consumed
	start    int
	end      int
	maxFrame uint32
	err      error // sticky read error, returned once buffered bytes are used up
}

// NewFrameReader returns a FrameReader reading from r, accepting frames up to DefaultMaxFrameSize.
func NewFrameReader(r io.Reader) *FrameReader {
	return &FrameReader{r: r, buf: make([]byte, 4096), maxFrame: DefaultMaxFrameSize}
}

// SetMaxFrameSize sets the largest frame ReadFrame accepts (the max-frame-size this side announced in
// its open). Values below MinMaxFrameSize are raised to it.
func (fr *FrameReader) SetMaxFrameSize(n uint32) {
	fr.maxFrame = max(n, MinMaxFrameSize)
}

// ReadProtocolHeader reads the 8-byte protocol header ("AMQP", protocol id, major, minor, revision).
// It blocks until 8 bytes arrive or the reader fails. The header is returned even when it does not
// start with "AMQP", together with an error wrapping ErrDecode, so the caller can answer with its own
// header before closing. A stream that ends before the header returns io.EOF or io.ErrUnexpectedEOF.
func (fr *FrameReader) ReadProtocolHeader() ([8]byte, error) {
	var h [8]byte
	if err := fr.fill(8); err != nil {
		return h, err
	}
	copy(h[:], fr.buf[fr.start:fr.start+8])
	fr.start += 8
	if string(h[:4]) != "AMQP" {
		return h, &DecodeError{Offset: 0, Msg: fmt.Sprintf("protocol header: want \"AMQP\", got %q", h[:4])}
	}
	return h, nil
}

// ReadFrame reads and decodes the next frame. It blocks until a whole frame has arrived or the reader
// fails. A stream ending between frames returns io.EOF, one ending inside a frame io.ErrUnexpectedEOF;
// a size field above the maximum returns an error wrapping ErrFrameTooLarge without reading the frame,
// and a malformed frame an error wrapping ErrDecode after consuming it. The returned Frame does not
// alias the reader's buffer.
func (fr *FrameReader) ReadFrame() (Frame, error) {
	if err := fr.fill(4); err != nil {
		return Frame{}, err
	}
	size := binary.BigEndian.Uint32(fr.buf[fr.start:])
	if size > fr.maxFrame {
		return Frame{}, fmt.Errorf("%w: size field %d exceeds the maximum of %d", ErrFrameTooLarge, size, fr.maxFrame)
	}
	if size < frameHeaderSize {
		fr.start += 4
		return Frame{}, &DecodeError{Offset: 0, Msg: fmt.Sprintf("frame: size field %d is smaller than the 8-byte header", size)}
	}
	if err := fr.fill(int(size)); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return Frame{}, err
	}
	b := fr.buf[fr.start : fr.start+int(size)]
	fr.start += int(size)
	return ParseFrame(b)
}

// fill makes at least n unread bytes available in buf, reading from r as needed. It returns io.EOF
// when the stream ends before any of them arrive and io.ErrUnexpectedEOF when it ends part way.
func (fr *FrameReader) fill(n int) error {
	if fr.end-fr.start >= n {
		return nil
	}
	if fr.start == fr.end {
		fr.start, fr.end = 0, 0
	}
	if len(fr.buf)-fr.start < n {
		if n > len(fr.buf) {
			grown := make([]byte, max(n, 2*len(fr.buf)))
			fr.end = copy(grown, fr.buf[fr.start:fr.end])
			fr.buf = grown
		} else {
			fr.end = copy(fr.buf, fr.buf[fr.start:fr.end])
		}
		fr.start = 0
	}
	for empty := 0; fr.end-fr.start < n; {
		if empty >= 100 {
			return io.ErrNoProgress
		}
		if fr.err != nil {
			if fr.err == io.EOF && fr.end > fr.start {
				return io.ErrUnexpectedEOF
			}
			return fr.err
		}
		m, err := fr.r.Read(fr.buf[fr.end:])
		fr.end += m
		if err != nil {
			fr.err = err
		}
		if m == 0 && err == nil {
			empty++
		} else {
			empty = 0
		}
	}
	return nil
}
