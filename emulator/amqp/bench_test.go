package amqp

import (
	"bytes"
	"io"
	"testing"

	goamqp "github.com/Azure/go-amqp"
)

// benchTransfer is a PeekLock delivery as the broker sends it: 16-byte lock-token tag, 1 KB payload.
func benchTransfer() Frame {
	return Frame{Channel: 1, Body: &Transfer{
		Handle: 0, DeliveryID: ptr[uint32](12345), DeliveryTag: bytes.Repeat([]byte{0xab}, 16),
		MessageFormat: ptr[uint32](0), Settled: ptr(false),
	}, Payload: bytes.Repeat([]byte{'x'}, 1024)}
}

func BenchmarkAppendFrameTransfer1KB(b *testing.B) {
	f := benchTransfer()
	buf := make([]byte, 0, 2048)
	b.ReportAllocs()
	for b.Loop() {
		var err error
		if buf, err = AppendFrame(buf[:0], f); err != nil {
			b.Fatal(err)
		}
	}
	b.SetBytes(int64(len(buf)))
}

func BenchmarkParseFrameTransfer1KB(b *testing.B) {
	raw, err := AppendFrame(nil, benchTransfer())
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(raw)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseFrame(raw); err != nil {
			b.Fatal(err)
		}
	}
}

// loopReader replays the same bytes forever.
type loopReader struct {
	data []byte
	off  int
}

func (l *loopReader) Read(p []byte) (int, error) {
	n := copy(p, l.data[l.off:])
	l.off = (l.off + n) % len(l.data)
	return n, nil
}

func BenchmarkFrameReaderTransfer1KB(b *testing.B) {
	raw, err := AppendFrame(nil, benchTransfer())
	if err != nil {
		b.Fatal(err)
	}
	fr := NewFrameReader(&loopReader{data: bytes.Repeat(raw, 8)})
	b.SetBytes(int64(len(raw)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := fr.ReadFrame(); err != nil && err != io.EOF {
			b.Fatal(err)
		}
	}
}

func BenchmarkParseFrameDisposition(b *testing.B) {
	raw, err := AppendFrame(nil, Frame{Body: &Disposition{Role: RoleReceiver, First: 70000, Settled: false, State: &Accepted{}}})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseFrame(raw); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkAppendFrameFlow(b *testing.B) {
	f := Frame{Body: &Flow{NextIncomingID: ptr[uint32](1), IncomingWindow: 5000, NextOutgoingID: 1, OutgoingWindow: 5000,
		Handle: ptr[uint32](0), DeliveryCount: ptr[uint32](100), LinkCredit: ptr[uint32](10)}}
	buf := make([]byte, 0, 128)
	b.ReportAllocs()
	for b.Loop() {
		var err error
		if buf, err = AppendFrame(buf[:0], f); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkGoAMQPMessageUnmarshal1KB is the reference point: the work go-amqp does per received
// 1 KB message just to unmarshal its sections, to compare with this codec's per-frame cost.
func BenchmarkGoAMQPMessageUnmarshal1KB(b *testing.B) {
	raw, err := (&goamqp.Message{
		Data:       [][]byte{bytes.Repeat([]byte{'x'}, 1024)},
		Properties: &goamqp.MessageProperties{MessageID: "m"},
	}).MarshalBinary()
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		var m goamqp.Message
		if err := m.UnmarshalBinary(raw); err != nil {
			b.Fatal(err)
		}
	}
}
