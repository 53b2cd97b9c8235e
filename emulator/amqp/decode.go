package amqp

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"time"
)

// ErrDecode is wrapped by every error the decoder returns for malformed input (errors.Is).
var ErrDecode = errors.New("amqp: decode error")

// DecodeError describes malformed input: what was wrong and the byte offset where it was found,
// relative to the start of the buffer handed to DecodeValue or ParseFrame. It unwraps to ErrDecode.
type DecodeError struct {
	Offset int
	Msg    string
}

func (e *DecodeError) Error() string {
	return fmt.Sprintf("amqp: decode error at offset %d: %s", e.Offset, e.Msg)
}

// Unwrap makes errors.Is(err, ErrDecode) true.
func (e *DecodeError) Unwrap() error { return ErrDecode }

// MaxDepth is how deeply lists, maps, arrays and described values may nest in decoded input.
const MaxDepth = 64

// maxZeroWidthElems bounds the total number of elements of arrays whose elements occupy no bytes
// (null, true, uint0, list0, …) in one decode call: they are the only elements whose number is not
// already bounded by the input length.
const maxZeroWidthElems = 4096

// DecodeValue decodes one AMQP value from the front of b and returns it with the number of bytes it
// occupied. Values map to Go types as listed in the package comment; described values with a known
// descriptor (performatives, delivery states, terminus, error, SASL bodies) decode to pointers to their
// structs. Byte slices in the result never alias b. Malformed input returns an error wrapping ErrDecode;
// DecodeValue never panics and allocates at most in proportion to len(b). Safe for concurrent use.
func DecodeValue(b []byte) (v any, n int, err error) {
	d := decoder{b: b}
	return d.value(0, len(b), 0)
}

// decoder reads from b; every method takes the position to read and the end of the enclosing
// value, so lengths are always checked against the bytes that remain inside that value.
type decoder struct {
	b         []byte
	zeroWidth int // zero-width array elements decoded so far, at most maxZeroWidthElems
}

func (d *decoder) errf(pos int, format string, args ...any) error {
	return &DecodeError{Offset: pos, Msg: fmt.Sprintf(format, args...)}
}

// need checks that n bytes are available at pos before end. The error names what+suffix; the two
// parts are joined only on failure, keeping the success path free of allocations.
func (d *decoder) need(pos, end, n int, what, suffix string) error {
	if n < 0 || end-pos < n {
		return d.errf(pos, "%s%s: need %d bytes, %d remain", what, suffix, n, max(end-pos, 0))
	}
	return nil
}

func (d *decoder) value(pos, end, depth int) (any, int, error) {
	if depth > MaxDepth {
		return nil, pos, d.errf(pos, "values nested deeper than %d", MaxDepth)
	}
	if pos >= end {
		return nil, pos, d.errf(pos, "truncated: want a format code, got end of input")
	}
	code := d.b[pos]
	if code == codeDescribed {
		return d.described(pos, end, depth)
	}
	return d.primitive(code, pos+1, end, depth)
}

// described decodes 0x00 descriptor value starting at pos (the 0x00 byte).
func (d *decoder) described(pos, end, depth int) (any, int, error) {
	desc, next, err := d.value(pos+1, end, depth+1)
	if err != nil {
		return nil, next, err
	}
	if code, ok := knownDescriptor(desc); ok {
		return d.known(code, next, end, depth+1)
	}
	val, next, err := d.value(next, end, depth+1)
	if err != nil {
		return nil, next, err
	}
	return Described{Descriptor: desc, Value: val}, next, nil
}

// fixedWidth is the data width of the fixed-size format codes, or -1 for the others.
func fixedWidth(code byte) int {
	switch code {
	case codeNull, codeTrue, codeFalse, codeUint0, codeUlong0, codeList0:
		return 0
	case codeUbyte, codeByte, codeSmallUint, codeSmallUlong, codeSmallInt, codeSmallLong, codeBool:
		return 1
	case codeUshort, codeShort:
		return 2
	case codeUint, codeInt, codeFloat, codeChar, codeDecimal32:
		return 4
	case codeUlong, codeLong, codeDouble, codeTimestamp, codeDecimal64:
		return 8
	case codeUUID, codeDecimal128:
		return 16
	}
	return -1
}

// primitive decodes the data of a value with format code code; pos is just after the code.
func (d *decoder) primitive(code byte, pos, end, depth int) (any, int, error) {
	if w := fixedWidth(code); w >= 0 {
		if err := d.need(pos, end, w, typeName(code), ""); err != nil {
			return nil, pos, err
		}
		v, err := d.fixed(code, pos)
		return v, pos + w, err
	}
	switch code {
	case codeVbin8, codeVbin32, codeStr8, codeStr32, codeSym8, codeSym32:
		data, next, err := d.variable(code, pos, end)
		if err != nil {
			return nil, next, err
		}
		switch code {
		case codeVbin8, codeVbin32:
			return clone(data), next, nil
		case codeStr8, codeStr32:
			return string(data), next, nil
		default:
			return Symbol(data), next, nil
		}
	case codeList8, codeList32:
		return d.list(code, pos, end, depth)
	case codeMap8, codeMap32:
		return d.anyMap(code, pos, end, depth)
	case codeArray8, codeArray32:
		return d.array(code, pos, end, depth)
	}
	return nil, pos, d.errf(pos-1, "unknown format code 0x%02x", code)
}

func clone(b []byte) []byte {
	out := make([]byte, len(b))
	copy(out, b)
	return out
}

// fixed decodes a fixed-width value whose data (already bounds-checked) starts at pos.
func (d *decoder) fixed(code byte, pos int) (any, error) {
	b := d.b[pos:]
	switch code {
	case codeNull:
		return nil, nil
	case codeTrue:
		return true, nil
	case codeFalse:
		return false, nil
	case codeUint0:
		return uint32(0), nil
	case codeUlong0:
		return uint64(0), nil
	case codeList0:
		return []any{}, nil
	case codeBool:
		switch b[0] {
		case 0:
			return false, nil
		case 1:
			return true, nil
		}
		return nil, d.errf(pos, "boolean: want 0x00 or 0x01, got 0x%02x", b[0])
	case codeUbyte:
		return b[0], nil
	case codeByte:
		return int8(b[0]), nil
	case codeSmallUint:
		return uint32(b[0]), nil
	case codeSmallUlong:
		return uint64(b[0]), nil
	case codeSmallInt:
		return int32(int8(b[0])), nil
	case codeSmallLong:
		return int64(int8(b[0])), nil
	case codeUshort:
		return binary.BigEndian.Uint16(b), nil
	case codeShort:
		return int16(binary.BigEndian.Uint16(b)), nil
	case codeUint:
		return binary.BigEndian.Uint32(b), nil
	case codeInt:
		return int32(binary.BigEndian.Uint32(b)), nil
	case codeFloat:
		return math.Float32frombits(binary.BigEndian.Uint32(b)), nil
	case codeChar:
		return Char(binary.BigEndian.Uint32(b)), nil
	case codeDecimal32:
		return Decimal32(b[:4]), nil
	case codeUlong:
		return binary.BigEndian.Uint64(b), nil
	case codeLong:
		return int64(binary.BigEndian.Uint64(b)), nil
	case codeDouble:
		return math.Float64frombits(binary.BigEndian.Uint64(b)), nil
	case codeTimestamp:
		return time.UnixMilli(int64(binary.BigEndian.Uint64(b))).UTC(), nil
	case codeDecimal64:
		return Decimal64(b[:8]), nil
	case codeUUID:
		return UUID(b[:16]), nil
	case codeDecimal128:
		return Decimal128(b[:16]), nil
	}
	return nil, d.errf(pos-1, "unknown format code 0x%02x", code)
}

// variable returns the data of a vbin/str/sym value (aliasing d.b) and the position after it.
func (d *decoder) variable(code byte, pos, end int) ([]byte, int, error) {
	var n int
	if code&0xf0 == 0xa0 {
		if err := d.need(pos, end, 1, typeName(code), " length"); err != nil {
			return nil, pos, err
		}
		n = int(d.b[pos])
		pos++
	} else {
		if err := d.need(pos, end, 4, typeName(code), " length"); err != nil {
			return nil, pos, err
		}
		n64 := uint64(binary.BigEndian.Uint32(d.b[pos:]))
		if n64 > uint64(end-pos-4) {
			return nil, pos, d.errf(pos, "%s: length %d exceeds the %d bytes that remain", typeName(code), n64, end-pos-4)
		}
		n = int(n64)
		pos += 4
	}
	if err := d.need(pos, end, n, typeName(code), ""); err != nil {
		return nil, pos, err
	}
	return d.b[pos : pos+n], pos + n, nil
}

// compoundHeader reads the size and count of a list, map or array; pos is just after the code.
// It returns the count, the position of the first element and the end of the compound.
func (d *decoder) compoundHeader(code byte, pos, end int) (count, body, bodyEnd int, err error) {
	name := typeName(code)
	if code&0xf0 == 0xc0 || code&0xf0 == 0xe0 { // 8-bit forms
		if err := d.need(pos, end, 2, name, " header"); err != nil {
			return 0, pos, pos, err
		}
		size := int(d.b[pos])
		if size < 1 {
			return 0, pos, pos, d.errf(pos, "%s: size %d is smaller than its count field", name, size)
		}
		if err := d.need(pos+1, end, size, name, ""); err != nil {
			return 0, pos, pos, err
		}
		return int(d.b[pos+1]), pos + 2, pos + 1 + size, nil
	}
	if err := d.need(pos, end, 8, name, " header"); err != nil {
		return 0, pos, pos, err
	}
	size := uint64(binary.BigEndian.Uint32(d.b[pos:]))
	n := uint64(binary.BigEndian.Uint32(d.b[pos+4:]))
	if size < 4 {
		return 0, pos, pos, d.errf(pos, "%s: size %d is smaller than its count field", name, size)
	}
	if size > uint64(end-pos-4) {
		return 0, pos, pos, d.errf(pos, "%s: size %d exceeds the %d bytes that remain", name, size, end-pos-4)
	}
	if n > math.MaxInt32 {
		return 0, pos, pos, d.errf(pos, "%s: count %d is too large", name, n)
	}
	return int(n), pos + 8, pos + 4 + int(size), nil
}

func (d *decoder) list(code byte, pos, end, depth int) (any, int, error) {
	count, p, bodyEnd, err := d.compoundHeader(code, pos, end)
	if err != nil {
		return nil, pos, err
	}
	if count > bodyEnd-p {
		return nil, pos, d.errf(pos, "list: count %d exceeds the %d bytes of its body", count, bodyEnd-p)
	}
	out := make([]any, count)
	for i := range out {
		if out[i], p, err = d.value(p, bodyEnd, depth+1); err != nil {
			return nil, p, err
		}
	}
	if p != bodyEnd {
		return nil, p, d.errf(p, "list: %d bytes left over after %d elements", bodyEnd-p, count)
	}
	return out, p, nil
}

func (d *decoder) anyMap(code byte, pos, end, depth int) (any, int, error) {
	count, p, bodyEnd, err := d.compoundHeader(code, pos, end)
	if err != nil {
		return nil, pos, err
	}
	if count%2 != 0 {
		return nil, pos, d.errf(pos, "map: odd element count %d", count)
	}
	if count > bodyEnd-p {
		return nil, pos, d.errf(pos, "map: count %d exceeds the %d bytes of its body", count, bodyEnd-p)
	}
	out := make(map[any]any, count/2)
	for range count / 2 {
		kpos := p
		var k, v any
		if k, p, err = d.value(p, bodyEnd, depth+1); err != nil {
			return nil, p, err
		}
		if b, ok := k.([]byte); ok {
			k = string(b)
		}
		if msg := keyProblem(k); msg != "" {
			return nil, kpos, d.errf(kpos, "map key: %s", msg)
		}
		if v, p, err = d.value(p, bodyEnd, depth+1); err != nil {
			return nil, p, err
		}
		out[k] = v
	}
	if p != bodyEnd {
		return nil, p, d.errf(p, "map: %d bytes left over after %d elements", bodyEnd-p, count)
	}
	return out, p, nil
}

// keyProblem says why k cannot be a Go map key that round-trips, or returns "".
func keyProblem(k any) string {
	switch k := k.(type) {
	case nil, bool, uint8, uint16, uint32, uint64, int8, int16, int32, int64, Char, time.Time, UUID,
		string, Symbol, Decimal32, Decimal64, Decimal128:
		return ""
	case float32:
		if k != k {
			return "NaN is not usable as a key"
		}
		return ""
	case float64:
		if k != k {
			return "NaN is not usable as a key"
		}
		return ""
	case Described:
		if m := keyProblem(k.Descriptor); m != "" {
			return m
		}
		return keyProblem(k.Value)
	}
	return fmt.Sprintf("%T is not supported as a key", k)
}

// array decodes an array; pos is just after the array code.
func (d *decoder) array(code byte, pos, end, depth int) (any, int, error) {
	count, p, bodyEnd, err := d.compoundHeader(code, pos, end)
	if err != nil {
		return nil, pos, err
	}
	if depth+1 > MaxDepth {
		return nil, pos, d.errf(pos, "values nested deeper than %d", MaxDepth)
	}
	if err := d.need(p, bodyEnd, 1, "array element constructor", ""); err != nil {
		return nil, p, err
	}
	var desc any
	hasDesc := false
	if d.b[p] == codeDescribed {
		if desc, p, err = d.value(p+1, bodyEnd, depth+1); err != nil {
			return nil, p, err
		}
		hasDesc = true
		if err := d.need(p, bodyEnd, 1, "array element constructor", ""); err != nil {
			return nil, p, err
		}
		if d.b[p] == codeDescribed {
			return nil, p, d.errf(p, "array: nested descriptor in element constructor")
		}
	}
	elem := d.b[p]
	p++
	if w := fixedWidth(elem); w == 0 {
		if count > maxZeroWidthElems-d.zeroWidth {
			return nil, pos, d.errf(pos, "array: %d zero-width elements exceeds the limit of %d per value", count, maxZeroWidthElems)
		}
		d.zeroWidth += count
	} else if count > bodyEnd-p {
		return nil, pos, d.errf(pos, "array: count %d exceeds the %d bytes of its body", count, bodyEnd-p)
	}
	var out any
	if hasDesc {
		out, p, err = d.describedArray(desc, elem, count, p, bodyEnd, depth)
	} else {
		out, p, err = d.arrayElems(elem, count, p, bodyEnd, depth)
	}
	if err != nil {
		return nil, p, err
	}
	if p != bodyEnd {
		return nil, p, d.errf(p, "array: %d bytes left over after %d elements", bodyEnd-p, count)
	}
	return out, p, nil
}

// describedArray decodes the elements of an array with a described constructor. They are counted two
// levels deeper than the array, as they would be when re-encoded as a list of described values.
func (d *decoder) describedArray(desc any, elem byte, count, p, end, depth int) (any, int, error) {
	out := make([]any, count)
	code, known := knownDescriptor(desc)
	for i := range out {
		if known {
			if elem != codeList0 && elem != codeList8 && elem != codeList32 {
				return nil, p, d.errf(p, "%s: want list, got %s", descriptorName(code), typeName(elem))
			}
			v, next, err := d.knownBody(code, elem, p, end, depth+2)
			if err != nil {
				return nil, next, err
			}
			out[i], p = v, next
			continue
		}
		v, next, err := d.primitive(elem, p, end, depth+2)
		if err != nil {
			return nil, next, err
		}
		out[i], p = Described{Descriptor: desc, Value: v}, next
	}
	return out, p, nil
}

// arrayElems decodes count elements that share format code elem.
func (d *decoder) arrayElems(elem byte, count, p, end, depth int) (any, int, error) {
	w := fixedWidth(elem)
	if w > 0 {
		if err := d.need(p, end, w*count, "array of ", typeName(elem)); err != nil {
			return nil, p, err
		}
	}
	switch elem {
	case codeSym8, codeSym32:
		out := make([]Symbol, count)
		for i := range out {
			data, next, err := d.variable(elem, p, end)
			if err != nil {
				return nil, next, err
			}
			out[i], p = Symbol(data), next
		}
		return out, p, nil
	case codeStr8, codeStr32:
		out := make([]string, count)
		for i := range out {
			data, next, err := d.variable(elem, p, end)
			if err != nil {
				return nil, next, err
			}
			out[i], p = string(data), next
		}
		return out, p, nil
	case codeVbin8, codeVbin32:
		out := make([][]byte, count)
		for i := range out {
			data, next, err := d.variable(elem, p, end)
			if err != nil {
				return nil, next, err
			}
			out[i], p = clone(data), next
		}
		return out, p, nil
	case codeLong, codeSmallLong:
		out := make([]int64, count)
		for i := range out {
			if elem == codeLong {
				out[i] = int64(binary.BigEndian.Uint64(d.b[p:]))
			} else {
				out[i] = int64(int8(d.b[p]))
			}
			p += w
		}
		return out, p, nil
	case codeInt, codeSmallInt:
		out := make([]int32, count)
		for i := range out {
			if elem == codeInt {
				out[i] = int32(binary.BigEndian.Uint32(d.b[p:]))
			} else {
				out[i] = int32(int8(d.b[p]))
			}
			p += w
		}
		return out, p, nil
	case codeUlong, codeSmallUlong, codeUlong0:
		out := make([]uint64, count)
		for i := range out {
			switch elem {
			case codeUlong:
				out[i] = binary.BigEndian.Uint64(d.b[p:])
			case codeSmallUlong:
				out[i] = uint64(d.b[p])
			}
			p += w
		}
		return out, p, nil
	case codeUint, codeSmallUint, codeUint0:
		out := make([]uint32, count)
		for i := range out {
			switch elem {
			case codeUint:
				out[i] = binary.BigEndian.Uint32(d.b[p:])
			case codeSmallUint:
				out[i] = uint32(d.b[p])
			}
			p += w
		}
		return out, p, nil
	case codeUUID:
		out := make([]UUID, count)
		for i := range out {
			out[i] = UUID(d.b[p : p+16])
			p += 16
		}
		return out, p, nil
	case codeTimestamp:
		out := make([]time.Time, count)
		for i := range out {
			out[i] = time.UnixMilli(int64(binary.BigEndian.Uint64(d.b[p:]))).UTC()
			p += 8
		}
		return out, p, nil
	case codeBool, codeTrue, codeFalse:
		out := make([]bool, count)
		for i := range out {
			switch elem {
			case codeTrue:
				out[i] = true
			case codeBool:
				switch d.b[p] {
				case 0:
				case 1:
					out[i] = true
				default:
					return nil, p, d.errf(p, "boolean: want 0x00 or 0x01, got 0x%02x", d.b[p])
				}
			}
			p += w
		}
		return out, p, nil
	}
	out := make([]any, count)
	for i := range out {
		v, next, err := d.primitive(elem, p, end, depth+1)
		if err != nil {
			return nil, next, err
		}
		out[i], p = v, next
	}
	return out, p, nil
}

// typeName names the AMQP type of a format code for error messages.
func typeName(code byte) string {
	switch code {
	case codeDescribed:
		return "described"
	case codeNull:
		return "null"
	case codeBool, codeTrue, codeFalse:
		return "boolean"
	case codeUbyte:
		return "ubyte"
	case codeUshort:
		return "ushort"
	case codeUint, codeSmallUint, codeUint0:
		return "uint"
	case codeUlong, codeSmallUlong, codeUlong0:
		return "ulong"
	case codeByte:
		return "byte"
	case codeShort:
		return "short"
	case codeInt, codeSmallInt:
		return "int"
	case codeLong, codeSmallLong:
		return "long"
	case codeFloat:
		return "float"
	case codeDouble:
		return "double"
	case codeDecimal32:
		return "decimal32"
	case codeDecimal64:
		return "decimal64"
	case codeDecimal128:
		return "decimal128"
	case codeChar:
		return "char"
	case codeTimestamp:
		return "timestamp"
	case codeUUID:
		return "uuid"
	case codeVbin8, codeVbin32:
		return "binary"
	case codeStr8, codeStr32:
		return "string"
	case codeSym8, codeSym32:
		return "symbol"
	case codeList0, codeList8, codeList32:
		return "list"
	case codeMap8, codeMap32:
		return "map"
	case codeArray8, codeArray32:
		return "array"
	}
	return fmt.Sprintf("format code 0x%02x", code)
}
