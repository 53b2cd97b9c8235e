package amqp

import (
	"bytes"
	"encoding/hex"
	"errors"
	"math"
	"strings"
	"testing"
	"time"
)

// h decodes space-separated hex; it panics on bad test input.
func h(s string) []byte {
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		panic(err)
	}
	return b
}

func TestAppendValuePrimitives(t *testing.T) {
	ts := time.UnixMilli(1700000000123).UTC()
	tests := []struct {
		name string
		v    any
		want string
	}{
		{"null", nil, "40"},
		{"true", true, "41"},
		{"false", false, "42"},
		{"ubyte", uint8(7), "50 07"},
		{"ushort", uint16(0x1234), "60 12 34"},
		{"uint0", uint32(0), "43"},
		{"smalluint", uint32(255), "52 ff"},
		{"uint", uint32(256), "70 00 00 01 00"},
		{"ulong0", uint64(0), "44"},
		{"smallulong", uint64(0x10), "53 10"},
		{"ulong", uint64(1 << 40), "80 00 00 01 00 00 00 00 00"},
		{"uint as ulong", uint(3), "53 03"},
		{"byte", int8(-2), "51 fe"},
		{"short", int16(-2), "61 ff fe"},
		{"smallint", int32(-128), "54 80"},
		{"int", int32(128), "71 00 00 00 80"},
		{"smalllong", int64(127), "55 7f"},
		{"long", int64(-129), "81 ff ff ff ff ff ff ff 7f"},
		{"int as long", int(5), "55 05"},
		{"float", float32(1.5), "72 3f c0 00 00"},
		{"double", float64(-2), "82 c0 00 00 00 00 00 00 00"},
		{"decimal32", Decimal32{1, 2, 3, 4}, "74 01 02 03 04"},
		{"decimal64", Decimal64{1, 2, 3, 4, 5, 6, 7, 8}, "84 01 02 03 04 05 06 07 08"},
		{"decimal128", Decimal128{15: 9}, "94 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 09"},
		{"char", Char('€'), "73 00 00 20 ac"},
		{"timestamp", ts, "83 00 00 01 8b cf e5 68 7b"},
		{"uuid", UUID{0: 0xde, 15: 0xad}, "98 de 00 00 00 00 00 00 00 00 00 00 00 00 00 00 ad"},
		{"vbin8", []byte{1, 2}, "a0 02 01 02"},
		{"vbin8 empty", []byte{}, "a0 00"},
		{"str8", "hi", "a1 02 68 69"},
		{"sym8", Symbol("ab"), "a3 02 61 62"},
		{"list0", []any{}, "45"},
		{"list8", []any{uint32(1), "a"}, "c0 06 02 52 01 a1 01 61"},
		{"map8", map[any]any{Symbol("k"): int64(1)}, "c1 06 02 a3 01 6b 55 01"},
		{"fields map8", Fields{"k": true}, "c1 05 02 a3 01 6b 41"},
		{"string map8", map[string]any{"k": nil}, "c1 05 02 a1 01 6b 40"},
		{"empty map", map[any]any{}, "c1 01 00"},
		{"described", Described{Descriptor: uint64(0x77), Value: "x"}, "00 53 77 a1 01 78"},
		{"described symbol", Described{Descriptor: Symbol("d"), Value: nil}, "00 a3 01 64 40"},
		{"array sym8", []Symbol{"a", "bc"}, "e0 07 02 a3 01 61 02 62 63"},
		{"array str8", []string{"a"}, "e0 04 01 a1 01 61"},
		{"array smalllong", []int64{1, -1}, "e0 04 02 55 01 ff"},
		{"array long", []int64{1000}, "e0 0a 01 81 00 00 00 00 00 00 03 e8"},
		{"array smallint", []int32{-3}, "e0 03 01 54 fd"},
		{"array int", []int32{300}, "e0 06 01 71 00 00 01 2c"},
		{"array smallulong", []uint64{1, 2}, "e0 04 02 53 01 02"},
		{"array ulong", []uint64{256}, "e0 0a 01 80 00 00 00 00 00 00 01 00"},
		{"array smalluint", []uint32{9}, "e0 03 01 52 09"},
		{"array uint", []uint32{1 << 20}, "e0 06 01 70 00 10 00 00"},
		{"array uuid", []UUID{{}}, "e0 12 01 98 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00"},
		{"array timestamp", []time.Time{ts}, "e0 0a 01 83 00 00 01 8b cf e5 68 7b"},
		{"array bool", []bool{true, false}, "e0 04 02 56 01 00"},
		{"array vbin8", [][]byte{{7}}, "e0 04 01 a0 01 07"},
		{"array empty sym", []Symbol{}, "e0 02 00 a3"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := AppendValue([]byte{0xee}, tt.v)
			if err != nil {
				t.Fatalf("AppendValue: %v", err)
			}
			if want := append([]byte{0xee}, h(tt.want)...); !bytes.Equal(got, want) {
				t.Fatalf("AppendValue(%#v) = % x, want % x", tt.v, got, want)
			}
			v, n, err := DecodeValue(got[1:])
			if err != nil {
				t.Fatalf("DecodeValue: %v", err)
			}
			if n != len(got)-1 {
				t.Fatalf("DecodeValue consumed %d bytes, want %d", n, len(got)-1)
			}
			if !valueEqual(v, normalize(tt.v)) {
				t.Fatalf("DecodeValue = %#v, want %#v", v, normalize(tt.v))
			}
		})
	}
}

// normalize maps an encodable Go value to the type DecodeValue returns for it.
func normalize(v any) any {
	switch v := v.(type) {
	case int:
		return int64(v)
	case uint:
		return uint64(v)
	case Fields:
		m := map[any]any{}
		for k, e := range v {
			m[k] = normalize(e)
		}
		return m
	case map[string]any:
		m := map[any]any{}
		for k, e := range v {
			m[k] = normalize(e)
		}
		return m
	}
	return v
}

func TestAppendValueLongForms(t *testing.T) {
	long := strings.Repeat("x", 300)
	tests := []struct {
		name   string
		v      any
		prefix string
	}{
		{"str32", long, "b1 00 00 01 2c"},
		{"sym32", Symbol(long), "b3 00 00 01 2c"},
		{"vbin32", []byte(long), "b0 00 00 01 2c"},
		{"list32", []any{long}, "d0 00 00 01 35 00 00 00 01 b1"},
		{"map32", map[any]any{"k": long}, "d1 00 00 01 38 00 00 00 02 a1 01 6b b1"},
		{"array32 of str32", []string{long}, "f0 00 00 01 35 00 00 00 01 b1 00 00 01 2c"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := AppendValue(nil, tt.v)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.HasPrefix(got, h(tt.prefix)) {
				t.Fatalf("encoding starts % x, want prefix %s", got[:min(len(got), 16)], tt.prefix)
			}
			v, n, err := DecodeValue(got)
			if err != nil || n != len(got) {
				t.Fatalf("DecodeValue: n=%d err=%v", n, err)
			}
			if !valueEqual(v, tt.v) {
				t.Fatalf("round trip = %#v", v)
			}
		})
	}
}

// Forms this encoder never emits, as other implementations may send them.
func TestDecodeForeignForms(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want any
	}{
		{"bool false", "56 00", false},
		{"bool true", "56 01", true},
		{"uint long form", "70 00 00 00 01", uint32(1)},
		{"ulong long form", "80 00 00 00 00 00 00 00 00", uint64(0)},
		{"int long form", "71 ff ff ff ff", int32(-1)},
		{"long long form", "81 00 00 00 00 00 00 00 01", int64(1)},
		{"str32 short", "b1 00 00 00 01 61", "a"},
		{"sym32", "b3 00 00 00 02 61 62", Symbol("ab")},
		{"vbin32", "b0 00 00 00 00", []byte{}},
		{"list32 empty", "d0 00 00 00 04 00 00 00 00", []any{}},
		{"list8 empty", "c0 01 00", []any{}},
		{"list32", "d0 00 00 00 06 00 00 00 02 41 40", []any{true, nil}},
		{"map32", "d1 00 00 00 08 00 00 00 02 a1 01 61 43", map[any]any{"a": uint32(0)}},
		{"binary map key", "c1 05 02 a0 01 61 41", map[any]any{"a": true}},
		{"array32 sym32", "f0 00 00 00 0d 00 00 00 02 b3 00 00 00 00 00 00 00 00", []Symbol{"", ""}},
		{"array8 of sym32", "e0 07 01 b3 00 00 00 01 61", []Symbol{"a"}},
		{"array of true", "e0 02 02 41", []bool{true, true}},
		{"array of uint0", "e0 02 03 43", []uint32{0, 0, 0}},
		{"array of ulong0", "e0 02 01 44", []uint64{0}},
		{"array of ubyte", "e0 04 02 50 01 02", []any{uint8(1), uint8(2)}},
		{"array of list8", "e0 07 02 c0 01 00 02 01 41", []any{[]any{}, []any{true}}},
		{"array of arrays", "e0 07 01 e0 04 01 a3 01 61", []any{[]Symbol{"a"}}},
		{"array described", "e0 07 02 00 53 77 56 01 00", []any{
			Described{Descriptor: uint64(0x77), Value: true}, Described{Descriptor: uint64(0x77), Value: false}}},
		{"array of accepted", "e0 05 02 00 53 24 45", []any{&Accepted{}, &Accepted{}}},
		{"accepted by symbol", "00 a3 12 616d71703a61636365707465643a6c697374 45", &Accepted{}},
		{"timestamp negative", "83 ff ff ff ff ff ff ff ff", time.UnixMilli(-1).UTC()},
		{"float NaN", "72 7f c0 00 00", float32(math.NaN())},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := h(tt.in)
			v, n, err := DecodeValue(in)
			if err != nil {
				t.Fatalf("DecodeValue(% x): %v", in, err)
			}
			if n != len(in) {
				t.Fatalf("consumed %d of %d bytes", n, len(in))
			}
			if !valueEqual(v, tt.want) {
				t.Fatalf("DecodeValue = %#v, want %#v", v, tt.want)
			}
		})
	}
}

func TestDecodeValueNested(t *testing.T) {
	v := map[any]any{
		Symbol("list"):  []any{uint32(1), []any{"deep", map[any]any{int64(-1): []Symbol{"x"}}}},
		"described":     Described{Descriptor: Symbol("com.example:d"), Value: []any{nil}},
		uint64(7):       [][]byte{{1}, {}},
		UUID{1}:         []UUID{{2}},
		Char('a'):       []bool{},
		int32(1):        &Rejected{Error: &Error{Condition: "amqp:internal-error", Info: Fields{"a": int64(1)}}},
		Symbol("state"): &Modified{DeliveryFailed: true, MessageAnnotations: map[any]any{Symbol("x-opt"): "v"}},
		Symbol("recv"):  &Received{SectionNumber: 3, SectionOffset: 1 << 40},
	}
	b, err := AppendValue(nil, v)
	if err != nil {
		t.Fatal(err)
	}
	got, n, err := DecodeValue(b)
	if err != nil || n != len(b) {
		t.Fatalf("DecodeValue: n=%d/%d err=%v", n, len(b), err)
	}
	if !valueEqual(got, v) {
		t.Fatalf("round trip:\n got %#v\nwant %#v", got, v)
	}
}

func TestAppendValueUnsupported(t *testing.T) {
	tests := []struct {
		name string
		v    any
		want string
	}{
		{"struct", struct{}{}, "unsupported Go type struct {}"},
		{"nested", []any{1, complex(1, 2)}, "unsupported Go type complex128"},
		{"map value", map[any]any{"k": make(chan int)}, "unsupported Go type chan int"},
		{"float slice", []float64{1}, "unsupported Go type []float64"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dst := []byte{1, 2}
			got, err := AppendValue(dst, tt.v)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want it to contain %q", err, tt.want)
			}
			if !bytes.Equal(got, []byte{1, 2}) {
				t.Fatalf("dst changed on error: % x", got)
			}
		})
	}
}

func TestAppendValueNilPointers(t *testing.T) {
	for _, v := range []any{(*Received)(nil), (*Rejected)(nil), (*Error)(nil), (*Source)(nil), (*Target)(nil), (*Described)(nil)} {
		got, err := AppendValue(nil, v)
		if err != nil || !bytes.Equal(got, []byte{codeNull}) {
			t.Errorf("AppendValue(%T(nil)) = % x, %v; want null", v, got, err)
		}
	}
	if _, err := AppendValue(nil, (*Open)(nil)); err == nil {
		t.Error("AppendValue((*Open)(nil)) succeeded, want an error")
	}
}

func TestAppendValueCycle(t *testing.T) {
	l := []any{nil}
	l[0] = l
	if _, err := AppendValue(nil, l); err == nil || !strings.Contains(err.Error(), "nested deeper") {
		t.Fatalf("err = %v, want a depth error", err)
	}
}

func TestDecodeValueErrors(t *testing.T) {
	deep := bytes.Repeat([]byte{0xc0, 0x00, 0x01}, 0) // built below
	for range MaxDepth + 2 {
		deep = append(deep, 0x00, 0x53, 0x77)
	}
	deep = append(deep, 0x40)
	tests := []struct {
		name string
		in   []byte
		want string
	}{
		{"empty", nil, "want a format code, got end of input"},
		{"unknown code", h("ff"), "unknown format code 0xff"},
		{"reserved code", h("57"), "unknown format code 0x57"},
		{"truncated uint", h("70 00 00"), "uint: need 4 bytes, 2 remain"},
		{"truncated uuid", h("98 00"), "uuid: need 16 bytes"},
		{"bad bool", h("56 02"), "boolean: want 0x00 or 0x01, got 0x02"},
		{"str8 too long", h("a1 05 61"), "string: need 5 bytes, 1 remain"},
		{"str32 huge length", h("b1 ff ff ff ff 61"), "string: length 4294967295 exceeds the 1 bytes that remain"},
		{"list32 huge size", h("d0 7f ff ff ff 00 00 00 01"), "list: size 2147483647 exceeds"},
		{"list32 huge count", h("d0 00 00 00 04 7f ff ff ff"), "list: count 2147483647 exceeds the 0 bytes"},
		{"list8 size zero", h("c0 00 00"), "size 0 is smaller than its count field"},
		{"list8 leftover", h("c0 03 01 41 41"), "list: 1 bytes left over after 1 elements"},
		{"list8 element overruns", h("c0 02 01 a1 05 61 62 63 64 65"), "string length: need 1 bytes, 0 remain"},
		{"map odd count", h("c1 02 01 41"), "map: odd element count 1"},
		{"map list key", h("c1 03 02 45 41"), "map key: []interface {} is not supported as a key"},
		{"map NaN key", h("c1 0b 02 82 7f f8 00 00 00 00 00 01 41"), "map key: NaN is not usable as a key"},
		{"array huge count", h("f0 00 00 00 05 7f ff ff ff a3"), "array: count 2147483647 exceeds the 0 bytes"},
		{"array zero-width huge count", h("f0 00 00 00 05 00 01 00 00 40"), "zero-width elements exceeds the limit"},
		{"array no constructor", h("e0 01 00"), "array element constructor: need 1 bytes, 0 remain"},
		{"array bad element code", h("e0 03 01 ff 00"), "unknown format code 0xff"},
		{"array short elements", h("e0 04 02 70 00 00"), "array of uint: need 8 bytes, 2 remain"},
		{"array nested descriptor", h("e0 06 01 00 53 77 00 41"), "nested descriptor"},
		{"described truncated", h("00 53"), "ulong: need 1 bytes, 0 remain"},
		{"described no value", h("00 53 77"), "want a format code, got end of input"},
		{"known not list", h("00 53 24 41"), "accepted: want list, got boolean"},
		{"too deep", deep, "nested deeper than 64"},
		{"known bad field", h("00 53 23 c0 03 02 a1 00 43"), "received.section-number: want uint, got string"},
		{"known missing field", h("00 53 23 45"), "received.section-number: required field is missing"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := DecodeValue(tt.in)
			if err == nil {
				t.Fatalf("DecodeValue(% x) succeeded, want error containing %q", tt.in, tt.want)
			}
			if !errors.Is(err, ErrDecode) {
				t.Fatalf("error %v does not wrap ErrDecode", err)
			}
			var de *DecodeError
			if !errors.As(err, &de) {
				t.Fatalf("error %v is not a *DecodeError", err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %q does not contain %q", err, tt.want)
			}
		})
	}
}

func TestDecodeErrorOffset(t *testing.T) {
	_, _, err := DecodeValue(h("c0 04 02 41 ff 00"))
	var de *DecodeError
	if !errors.As(err, &de) {
		t.Fatalf("err = %v, want *DecodeError", err)
	}
	if de.Offset != 4 {
		t.Fatalf("offset = %d, want 4 (the bad format code)", de.Offset)
	}
}

func TestDecodeValueDoesNotAlias(t *testing.T) {
	in := h("c0 08 02 a0 02 01 02 a1 01 61")
	v, _, err := DecodeValue(in)
	if err != nil {
		t.Fatal(err)
	}
	for i := range in {
		in[i] = 0
	}
	if !valueEqual(v, []any{[]byte{1, 2}, "a"}) {
		t.Fatalf("decoded value changed with its input: %#v", v)
	}
}
