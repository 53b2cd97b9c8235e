package amqp

import (
	"encoding/binary"
	"fmt"
	"math"
	"time"
)

// Decimal32 is an AMQP decimal32 in IEEE 754-2008 decimal32 (BID) encoding, kept as raw bytes.
type Decimal32 [4]byte

// Decimal64 is an AMQP decimal64 in IEEE 754-2008 decimal64 (BID) encoding, kept as raw bytes.
type Decimal64 [8]byte

// Decimal128 is an AMQP decimal128 in IEEE 754-2008 decimal128 (BID) encoding, kept as raw bytes.
type Decimal128 [16]byte

// Format codes of the AMQP 1.0 type system (spec part 1.6).
const (
	codeDescribed  byte = 0x00
	codeNull       byte = 0x40
	codeBool       byte = 0x56
	codeTrue       byte = 0x41
	codeFalse      byte = 0x42
	codeUbyte      byte = 0x50
	codeUshort     byte = 0x60
	codeUint       byte = 0x70
	codeSmallUint  byte = 0x52
	codeUint0      byte = 0x43
	codeUlong      byte = 0x80
	codeSmallUlong byte = 0x53
	codeUlong0     byte = 0x44
	codeByte       byte = 0x51
	codeShort      byte = 0x61
	codeInt        byte = 0x71
	codeSmallInt   byte = 0x54
	codeLong       byte = 0x81
	codeSmallLong  byte = 0x55
	codeFloat      byte = 0x72
	codeDouble     byte = 0x82
	codeDecimal32  byte = 0x74
	codeDecimal64  byte = 0x84
	codeDecimal128 byte = 0x94
	codeChar       byte = 0x73
	codeTimestamp  byte = 0x83
	codeUUID       byte = 0x98
	codeVbin8      byte = 0xa0
	codeVbin32     byte = 0xb0
	codeStr8       byte = 0xa1
	codeStr32      byte = 0xb1
	codeSym8       byte = 0xa3
	codeSym32      byte = 0xb3
	codeList0      byte = 0x45
	codeList8      byte = 0xc0
	codeList32     byte = 0xd0
	codeMap8       byte = 0xc1
	codeMap32      byte = 0xd1
	codeArray8     byte = 0xe0
	codeArray32    byte = 0xf0
)

// AppendValue appends the AMQP encoding of v to dst and returns the extended slice.
//
// v must be one of the Go types in the package table (see the package comment), a pointer to a
// performative, delivery state, *Error, *Source or *Target (encoded as a described list), Described,
// Decimal32/64/128, int (as long) or uint (as ulong). The smallest encoding is chosen for each value
// (uint0, smalluint, list8, str8, …). Any other Go type returns an error and dst unchanged.
// AppendValue does not use reflection and is safe for concurrent use.
func AppendValue(dst []byte, v any) ([]byte, error) {
	out, err := appendValue(dst, v, 0)
	if err != nil {
		return dst, err
	}
	return out, nil
}

// maxEncodeDepth bounds the nesting of values AppendValue accepts, so a cyclic []any cannot recurse forever.
const maxEncodeDepth = 256

func appendValue(dst []byte, v any, depth int) ([]byte, error) {
	if depth > maxEncodeDepth {
		return dst, fmt.Errorf("amqp: encode: values nested deeper than %d", maxEncodeDepth)
	}
	switch v := v.(type) {
	case nil:
		return append(dst, codeNull), nil
	case bool:
		return appendBool(dst, v), nil
	case uint8:
		return append(dst, codeUbyte, v), nil
	case uint16:
		return binary.BigEndian.AppendUint16(append(dst, codeUshort), v), nil
	case uint32:
		return appendUint32(dst, v), nil
	case uint64:
		return appendUint64(dst, v), nil
	case uint:
		return appendUint64(dst, uint64(v)), nil
	case int8:
		return append(dst, codeByte, byte(v)), nil
	case int16:
		return binary.BigEndian.AppendUint16(append(dst, codeShort), uint16(v)), nil
	case int32:
		return appendInt32(dst, v), nil
	case int64:
		return appendInt64(dst, v), nil
	case int:
		return appendInt64(dst, int64(v)), nil
	case float32:
		return binary.BigEndian.AppendUint32(append(dst, codeFloat), math.Float32bits(v)), nil
	case float64:
		return binary.BigEndian.AppendUint64(append(dst, codeDouble), math.Float64bits(v)), nil
	case Decimal32:
		return append(append(dst, codeDecimal32), v[:]...), nil
	case Decimal64:
		return append(append(dst, codeDecimal64), v[:]...), nil
	case Decimal128:
		return append(append(dst, codeDecimal128), v[:]...), nil
	case Char:
		return binary.BigEndian.AppendUint32(append(dst, codeChar), uint32(v)), nil
	case time.Time:
		return binary.BigEndian.AppendUint64(append(dst, codeTimestamp), uint64(v.UnixMilli())), nil
	case UUID:
		return append(append(dst, codeUUID), v[:]...), nil
	case []byte:
		return appendBinary(dst, v), nil
	case string:
		return appendString(dst, v), nil
	case Symbol:
		return appendSymbol(dst, v), nil
	case []any:
		return appendList(dst, v, depth)
	case map[any]any:
		return appendAnyMap(dst, v, depth)
	case map[Symbol]any:
		return appendSymbolMap(dst, v, depth)
	case Fields:
		return appendSymbolMap(dst, v, depth)
	case map[string]any:
		return appendStringMap(dst, v, depth)
	case Described:
		return appendDescribed(dst, v, depth)
	case *Described:
		if v == nil {
			return append(dst, codeNull), nil
		}
		return appendDescribed(dst, *v, depth)
	case []Symbol:
		return appendSymbolArray(dst, v), nil
	case []string:
		return appendStringArray(dst, v), nil
	case []int64:
		return appendInt64Array(dst, v), nil
	case []uint64:
		return appendUint64Array(dst, v), nil
	case []int32:
		return appendInt32Array(dst, v), nil
	case []uint32:
		return appendUint32Array(dst, v), nil
	case []UUID:
		return appendUUIDArray(dst, v), nil
	case []time.Time:
		return appendTimeArray(dst, v), nil
	case []bool:
		return appendBoolArray(dst, v), nil
	case [][]byte:
		return appendBinaryArray(dst, v), nil
	case *Error:
		if v == nil {
			return append(dst, codeNull), nil
		}
		return appendError(dst, v, depth)
	case *Source:
		if v == nil {
			return append(dst, codeNull), nil
		}
		return appendSource(dst, v, depth)
	case *Target:
		if v == nil {
			return append(dst, codeNull), nil
		}
		return appendTarget(dst, v, depth)
	case DeliveryState:
		return appendDeliveryState(dst, v, depth)
	case Performative:
		return appendPerformative(dst, v, depth)
	default:
		return dst, fmt.Errorf("amqp: encode: unsupported Go type %T", v)
	}
}

func appendBool(dst []byte, v bool) []byte {
	if v {
		return append(dst, codeTrue)
	}
	return append(dst, codeFalse)
}

func appendUint32(dst []byte, v uint32) []byte {
	switch {
	case v == 0:
		return append(dst, codeUint0)
	case v < 256:
		return append(dst, codeSmallUint, byte(v))
	default:
		return binary.BigEndian.AppendUint32(append(dst, codeUint), v)
	}
}

func appendUint64(dst []byte, v uint64) []byte {
	switch {
	case v == 0:
		return append(dst, codeUlong0)
	case v < 256:
		return append(dst, codeSmallUlong, byte(v))
	default:
		return binary.BigEndian.AppendUint64(append(dst, codeUlong), v)
	}
}

func appendInt32(dst []byte, v int32) []byte {
	if v >= math.MinInt8 && v <= math.MaxInt8 {
		return append(dst, codeSmallInt, byte(int8(v)))
	}
	return binary.BigEndian.AppendUint32(append(dst, codeInt), uint32(v))
}

func appendInt64(dst []byte, v int64) []byte {
	if v >= math.MinInt8 && v <= math.MaxInt8 {
		return append(dst, codeSmallLong, byte(int8(v)))
	}
	return binary.BigEndian.AppendUint64(append(dst, codeLong), uint64(v))
}

// appendVariable appends a vbin/str/sym value with its 8- or 32-bit length form.
func appendVariable(dst []byte, code8, code32 byte, n int) []byte {
	if n <= math.MaxUint8 {
		return append(dst, code8, byte(n))
	}
	return binary.BigEndian.AppendUint32(append(dst, code32), uint32(n))
}

func appendBinary(dst []byte, v []byte) []byte {
	return append(appendVariable(dst, codeVbin8, codeVbin32, len(v)), v...)
}

func appendString(dst []byte, v string) []byte {
	return append(appendVariable(dst, codeStr8, codeStr32, len(v)), v...)
}

func appendSymbol(dst []byte, v Symbol) []byte {
	return append(appendVariable(dst, codeSym8, codeSym32, len(v)), v...)
}

// compound writes a list, map or array: it reserves the 32-bit header, lets the caller append the
// elements, and finish shrinks it to the 8-bit form when size and count allow.
type compound struct {
	start int // index of the format code in dst
	count int
}

// compoundHeader32 is the format code plus 4-byte size plus 4-byte count.
const compoundHeader32 = 9

func beginCompound(dst []byte, code32 byte) ([]byte, compound) {
	c := compound{start: len(dst)}
	return append(dst, code32, 0, 0, 0, 0, 0, 0, 0, 0), c
}

// finish completes the compound whose elements end at len(dst); code8 and code32 are its two forms.
func (c compound) finish(dst []byte, code8, code32 byte) ([]byte, error) {
	data := len(dst) - c.start - compoundHeader32
	if data+1 <= math.MaxUint8 && c.count <= math.MaxUint8 {
		dst[c.start] = code8
		dst[c.start+1] = byte(data + 1)
		dst[c.start+2] = byte(c.count)
		copy(dst[c.start+3:], dst[c.start+compoundHeader32:])
		return dst[:len(dst)-6], nil
	}
	if uint64(data)+4 > math.MaxUint32 || uint64(c.count) > math.MaxUint32 {
		return dst[:c.start], fmt.Errorf("amqp: encode: compound value of %d bytes is too large", data)
	}
	dst[c.start] = code32
	binary.BigEndian.PutUint32(dst[c.start+1:], uint32(data+4))
	binary.BigEndian.PutUint32(dst[c.start+5:], uint32(c.count))
	return dst, nil
}

func appendList(dst []byte, v []any, depth int) ([]byte, error) {
	if len(v) == 0 {
		return append(dst, codeList0), nil
	}
	dst, c := beginCompound(dst, codeList32)
	var err error
	for _, e := range v {
		if dst, err = appendValue(dst, e, depth+1); err != nil {
			return dst[:c.start], err
		}
	}
	c.count = len(v)
	return c.finish(dst, codeList8, codeList32)
}

func appendAnyMap(dst []byte, m map[any]any, depth int) ([]byte, error) {
	dst, c := beginCompound(dst, codeMap32)
	var err error
	for k, e := range m {
		if dst, err = appendValue(dst, k, depth+1); err != nil {
			return dst[:c.start], err
		}
		if dst, err = appendValue(dst, e, depth+1); err != nil {
			return dst[:c.start], err
		}
	}
	c.count = 2 * len(m)
	return c.finish(dst, codeMap8, codeMap32)
}

func appendSymbolMap(dst []byte, m map[Symbol]any, depth int) ([]byte, error) {
	dst, c := beginCompound(dst, codeMap32)
	var err error
	for k, e := range m {
		dst = appendSymbol(dst, k)
		if dst, err = appendValue(dst, e, depth+1); err != nil {
			return dst[:c.start], err
		}
	}
	c.count = 2 * len(m)
	return c.finish(dst, codeMap8, codeMap32)
}

func appendStringMap(dst []byte, m map[string]any, depth int) ([]byte, error) {
	dst, c := beginCompound(dst, codeMap32)
	var err error
	for k, e := range m {
		dst = appendString(dst, k)
		if dst, err = appendValue(dst, e, depth+1); err != nil {
			return dst[:c.start], err
		}
	}
	c.count = 2 * len(m)
	return c.finish(dst, codeMap8, codeMap32)
}

func appendDescribed(dst []byte, d Described, depth int) ([]byte, error) {
	start := len(dst)
	dst = append(dst, codeDescribed)
	var err error
	if dst, err = appendValue(dst, d.Descriptor, depth+1); err != nil {
		return dst[:start], err
	}
	if dst, err = appendValue(dst, d.Value, depth+1); err != nil {
		return dst[:start], err
	}
	return dst, nil
}

// mustFinish is finish for arrays of fixed-size elements built from Go slices, which cannot exceed
// the 32-bit limits on any platform this codec runs on without first exhausting memory.
func mustFinish(dst []byte, c compound) []byte {
	out, err := c.finish(dst, codeArray8, codeArray32)
	if err != nil {
		// Unreachable in practice; keep dst consistent rather than panic.
		return out
	}
	return out
}

// appendVariableArray writes an array of vbin, str or sym elements, all in the 8-bit length form
// unless one of them needs the 32-bit form.
func appendVariableArray[T ~string | ~[]byte](dst []byte, v []T, code8, code32 byte) []byte {
	wide := false
	for _, e := range v {
		if len(e) > math.MaxUint8 {
			wide = true
			break
		}
	}
	dst, c := beginCompound(dst, codeArray32)
	if wide {
		dst = append(dst, code32)
	} else {
		dst = append(dst, code8)
	}
	for _, e := range v {
		if wide {
			dst = binary.BigEndian.AppendUint32(dst, uint32(len(e)))
		} else {
			dst = append(dst, byte(len(e)))
		}
		dst = append(dst, e...)
	}
	c.count = len(v)
	return mustFinish(dst, c)
}

func appendSymbolArray(dst []byte, v []Symbol) []byte {
	return appendVariableArray(dst, v, codeSym8, codeSym32)
}

func appendStringArray(dst []byte, v []string) []byte {
	return appendVariableArray(dst, v, codeStr8, codeStr32)
}

func appendBinaryArray(dst []byte, v [][]byte) []byte {
	return appendVariableArray(dst, v, codeVbin8, codeVbin32)
}

func appendInt64Array(dst []byte, v []int64) []byte {
	return appendIntArray(dst, v, codeSmallLong, codeLong, 8, fitsInt8[int64])
}

func appendInt32Array(dst []byte, v []int32) []byte {
	return appendIntArray(dst, v, codeSmallInt, codeInt, 4, fitsInt8[int32])
}

func appendUint64Array(dst []byte, v []uint64) []byte {
	return appendIntArray(dst, v, codeSmallUlong, codeUlong, 8, fitsUint8[uint64])
}

func appendUint32Array(dst []byte, v []uint32) []byte {
	return appendIntArray(dst, v, codeSmallUint, codeUint, 4, fitsUint8[uint32])
}

func fitsInt8[T int32 | int64](e T) bool    { return e >= math.MinInt8 && e <= math.MaxInt8 }
func fitsUint8[T uint32 | uint64](e T) bool { return e <= math.MaxUint8 }

// appendIntArray writes v as an array32 of integers: with the one-byte constructor small when every element
// fits (fits), else with the constructor wide and width-byte big-endian elements (width 4 or 8).
func appendIntArray[T int32 | int64 | uint32 | uint64](dst []byte, v []T, small, wide byte, width int, fits func(T) bool) []byte {
	useSmall := true
	for _, e := range v {
		if !fits(e) {
			useSmall = false
			break
		}
	}
	dst, c := beginCompound(dst, codeArray32)
	switch {
	case useSmall:
		dst = append(dst, small)
		for _, e := range v {
			dst = append(dst, byte(e)) // two's complement: the low byte of a small signed value is its int8
		}
	case width == 4:
		dst = append(dst, wide)
		for _, e := range v {
			dst = binary.BigEndian.AppendUint32(dst, uint32(e))
		}
	default:
		dst = append(dst, wide)
		for _, e := range v {
			dst = binary.BigEndian.AppendUint64(dst, uint64(e))
		}
	}
	c.count = len(v)
	return mustFinish(dst, c)
}

func appendUUIDArray(dst []byte, v []UUID) []byte {
	dst, c := beginCompound(dst, codeArray32)
	dst = append(dst, codeUUID)
	for _, e := range v {
		dst = append(dst, e[:]...)
	}
	c.count = len(v)
	return mustFinish(dst, c)
}

func appendTimeArray(dst []byte, v []time.Time) []byte {
	dst, c := beginCompound(dst, codeArray32)
	dst = append(dst, codeTimestamp)
	for _, e := range v {
		dst = binary.BigEndian.AppendUint64(dst, uint64(e.UnixMilli()))
	}
	c.count = len(v)
	return mustFinish(dst, c)
}

func appendBoolArray(dst []byte, v []bool) []byte {
	dst, c := beginCompound(dst, codeArray32)
	dst = append(dst, codeBool)
	for _, e := range v {
		if e {
			dst = append(dst, 1)
		} else {
			dst = append(dst, 0)
		}
	}
	c.count = len(v)
	return mustFinish(dst, c)
}
