package amqp

import (
	"bytes"
	"errors"
	"io"
	"testing"
)

// fuzzSeeds are the captured go-amqp frames plus one encoding of every round-trip frame.
func fuzzSeeds(f *testing.F) [][]byte {
	f.Helper()
	vectors, err := loadCapture()
	if err != nil {
		f.Fatal(err)
	}
	var out [][]byte
	for _, v := range vectors {
		out = append(out, v.b)
	}
	for _, fr := range roundTripFrames() {
		b, err := AppendFrame(nil, fr)
		if err != nil {
			f.Fatal(err)
		}
		out = append(out, b)
	}
	return out
}

func FuzzDecodeValue(f *testing.F) {
	for _, s := range fuzzSeeds(f) {
		if len(s) > 8 {
			f.Add(s[8:])
		}
	}
	f.Add(h("d1 00 00 00 0b 00 00 00 02 a3 01 6b e0 03 02 50 01 02"))
	f.Fuzz(func(t *testing.T, data []byte) {
		v, n, err := DecodeValue(data)
		if err != nil {
			if !errors.Is(err, ErrDecode) {
				t.Fatalf("error %v does not wrap ErrDecode", err)
			}
			return
		}
		if n <= 0 || n > len(data) {
			t.Fatalf("consumed %d of %d bytes", n, len(data))
		}
		b, err := AppendValue(nil, v)
		if err != nil {
			t.Fatalf("re-encode %#v: %v", v, err)
		}
		v2, n2, err := DecodeValue(b)
		if err != nil || n2 != len(b) {
			t.Fatalf("re-decode % x: n=%d/%d err=%v", b, n2, len(b), err)
		}
		if !valueEqual(v, v2) {
			t.Fatalf("round trip differs:\n first %#v\nsecond %#v", v, v2)
		}
	})
}

func FuzzParseFrame(f *testing.F) {
	for _, s := range fuzzSeeds(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		fr, err := ParseFrame(data)
		if err != nil {
			if !errors.Is(err, ErrDecode) {
				t.Fatalf("error %v does not wrap ErrDecode", err)
			}
			return
		}
		b, err := AppendFrame(nil, fr)
		if err != nil {
			t.Fatalf("re-encode %#v: %v", fr.Body, err)
		}
		fr2, err := ParseFrame(b)
		if err != nil {
			t.Fatalf("re-parse % x: %v", b, err)
		}
		if !valueEqual(fr, fr2) {
			t.Fatalf("round trip differs:\n first %#v\nsecond %#v", fr.Body, fr2.Body)
		}
	})
}

// readEvent is one result of reading a stream with a FrameReader.
type readEvent struct {
	Header [8]byte
	Frame  Frame
	Err    string
}

// readAll reads protocol headers and frames until the stream fails. A size field that is too large
// is retried as a protocol header, so streams mixing headers and frames are read through.
func readAll(r io.Reader) []readEvent {
	fr := NewFrameReader(r)
	var out []readEvent
	for range 10000 {
		f, err := fr.ReadFrame()
		if errors.Is(err, ErrFrameTooLarge) {
			hdr, err := fr.ReadProtocolHeader()
			if err != nil {
				return append(out, readEvent{Header: hdr, Err: err.Error()})
			}
			out = append(out, readEvent{Header: hdr})
			continue
		}
		if err != nil && !errors.Is(err, ErrDecode) {
			return append(out, readEvent{Err: err.Error()})
		}
		ev := readEvent{Frame: f}
		if err != nil {
			ev.Err = err.Error()
		}
		out = append(out, ev)
	}
	return out
}

func FuzzFrameReader(f *testing.F) {
	vectors, err := loadCapture()
	if err != nil {
		f.Fatal(err)
	}
	// Short streams keep each execution, and the baseline, cheap: every two consecutive captured frames
	// split between them, and every round-trip frame in one stream split after a size field. The whole
	// captured session is in the seed corpus (testdata/fuzz/FuzzFrameReader/sdk-stream); single frames are
	// FuzzParseFrame's.
	for i := 0; i+1 < len(vectors); i++ {
		f.Add(append(bytes.Clone(vectors[i].b), vectors[i+1].b...), uint16(len(vectors[i].b)))
	}
	var frames []byte
	for _, fr := range roundTripFrames() {
		b, err := AppendFrame(nil, fr)
		if err != nil {
			f.Fatal(err)
		}
		frames = append(frames, b...)
	}
	f.Add(frames, uint16(2))
	f.Fuzz(func(t *testing.T, data []byte, split uint16) {
		cut := int(split) % (len(data) + 1)
		whole := readAll(&pieces{chunks: [][]byte{bytes.Clone(data)}, err: io.EOF})
		halves := readAll(&pieces{chunks: [][]byte{bytes.Clone(data[:cut]), bytes.Clone(data[cut:])}, err: io.EOF})
		if !valueEqual(whole, halves) {
			t.Fatalf("split at %d changes the result:\nwhole  %+v\nhalves %+v", cut, whole, halves)
		}
		for _, ev := range whole {
			if ev.Err != "" || ev.Frame.Body == nil {
				continue
			}
			b, err := AppendFrame(nil, ev.Frame)
			if err != nil {
				t.Fatalf("re-encode %#v: %v", ev.Frame.Body, err)
			}
			f2, err := ParseFrame(b)
			if err != nil || !valueEqual(ev.Frame, f2) {
				t.Fatalf("round trip differs: %#v, %v", f2.Body, err)
			}
		}
	})
}
