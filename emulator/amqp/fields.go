package amqp

import (
	"encoding/binary"
	"fmt"
	"math"
)

// descriptorNames maps the symbolic descriptors of the composite types this codec knows to their codes.
var descriptorNames = map[Symbol]uint64{
	"amqp:open:list":            DescOpen,
	"amqp:begin:list":           DescBegin,
	"amqp:attach:list":          DescAttach,
	"amqp:flow:list":            DescFlow,
	"amqp:transfer:list":        DescTransfer,
	"amqp:disposition:list":     DescDisposition,
	"amqp:detach:list":          DescDetach,
	"amqp:end:list":             DescEnd,
	"amqp:close:list":           DescClose,
	"amqp:error:list":           DescError,
	"amqp:received:list":        DescReceived,
	"amqp:accepted:list":        DescAccepted,
	"amqp:rejected:list":        DescRejected,
	"amqp:released:list":        DescReleased,
	"amqp:modified:list":        DescModified,
	"amqp:source:list":          DescSource,
	"amqp:target:list":          DescTarget,
	"amqp:sasl-mechanisms:list": DescSASLMechanisms,
	"amqp:sasl-init:list":       DescSASLInit,
	"amqp:sasl-challenge:list":  DescSASLChallenge,
	"amqp:sasl-response:list":   DescSASLResponse,
	"amqp:sasl-outcome:list":    DescSASLOutcome,
}

// knownDescriptor reports whether desc (a ulong code or a symbol) names a type this codec decodes
// into a struct, and returns its code.
func knownDescriptor(desc any) (uint64, bool) {
	switch desc := desc.(type) {
	case uint64:
		return desc, descriptorName(desc) != ""
	case Symbol:
		code, ok := descriptorNames[desc]
		return code, ok
	}
	return 0, false
}

// descriptorName is the short name of a known descriptor code, used as the prefix of field errors;
// "" for unknown codes.
func descriptorName(code uint64) string {
	switch code {
	case DescOpen:
		return "open"
	case DescBegin:
		return "begin"
	case DescAttach:
		return "attach"
	case DescFlow:
		return "flow"
	case DescTransfer:
		return "transfer"
	case DescDisposition:
		return "disposition"
	case DescDetach:
		return "detach"
	case DescEnd:
		return "end"
	case DescClose:
		return "close"
	case DescError:
		return "error"
	case DescReceived:
		return "received"
	case DescAccepted:
		return "accepted"
	case DescRejected:
		return "rejected"
	case DescReleased:
		return "released"
	case DescModified:
		return "modified"
	case DescSource:
		return "source"
	case DescTarget:
		return "target"
	case DescSASLMechanisms:
		return "sasl-mechanisms"
	case DescSASLInit:
		return "sasl-init"
	case DescSASLChallenge:
		return "sasl-challenge"
	case DescSASLResponse:
		return "sasl-response"
	case DescSASLOutcome:
		return "sasl-outcome"
	}
	return ""
}

// fieldList reads the fields of a described list (a performative, delivery state, terminus, error or
// SASL body) one by one, each with its expected type. Absent trailing fields and nulls read as absent.
type fieldList struct {
	d     *decoder
	obj   string // "attach", "source", … for error messages
	pos   int    // position of the next field
	end   int    // end of the list body
	count int    // number of fields encoded
	i     int    // number of fields consumed
	depth int    // nesting depth of the fields' values
}

// next consumes the null of an absent field or reports that a value starts at f.pos.
func (f *fieldList) next(name string) (present bool, err error) {
	if f.i >= f.count {
		return false, nil
	}
	f.i++
	if f.pos >= f.end {
		return false, f.d.errf(f.pos, "%s.%s: truncated: list ends before this field", f.obj, name)
	}
	if f.d.b[f.pos] == codeNull {
		f.pos++
		return false, nil
	}
	return true, nil
}

func (f *fieldList) wrongType(name, want string) error {
	got := typeName(f.d.b[f.pos])
	return f.d.errf(f.pos, "%s.%s: want %s, got %s", f.obj, name, want, got)
}

func (f *fieldList) missing(name string) error {
	return f.d.errf(f.pos, "%s.%s: required field is missing", f.obj, name)
}

// unsigned reads any unsigned integer encoding whose value is at most limit.
func (f *fieldList) unsigned(name, want string, limit uint64) (uint64, bool, error) {
	present, err := f.next(name)
	if !present || err != nil {
		return 0, false, err
	}
	code := f.d.b[f.pos]
	var w int
	switch code {
	case codeUint0, codeUlong0:
		w = 0
	case codeUbyte, codeSmallUint, codeSmallUlong:
		w = 1
	case codeUshort:
		w = 2
	case codeUint:
		w = 4
	case codeUlong:
		w = 8
	default:
		return 0, false, f.wrongType(name, want)
	}
	if err := f.d.needField(f.pos+1, f.end, w, f.obj, name); err != nil {
		return 0, false, err
	}
	b := f.d.b[f.pos+1:]
	var v uint64
	switch w {
	case 1:
		v = uint64(b[0])
	case 2:
		v = uint64(binary.BigEndian.Uint16(b))
	case 4:
		v = uint64(binary.BigEndian.Uint32(b))
	case 8:
		v = binary.BigEndian.Uint64(b)
	}
	if v > limit {
		return 0, false, f.d.errf(f.pos, "%s.%s: value %d out of range for %s", f.obj, name, v, want)
	}
	f.pos += 1 + w
	return v, true, nil
}

func (f *fieldList) uint32(name string) (uint32, bool, error) {
	v, ok, err := f.unsigned(name, "uint", math.MaxUint32)
	return uint32(v), ok, err
}

// reqUint32 reads a mandatory uint field.
func (f *fieldList) reqUint32(name string) (uint32, error) {
	v, ok, err := f.uint32(name)
	if err == nil && !ok {
		err = f.missing(name)
	}
	return v, err
}

// optUint32 reads an optional uint field into *box and returns box, or nil when absent.
func (f *fieldList) optUint32(name string, box *uint32) (*uint32, error) {
	v, ok, err := f.uint32(name)
	if !ok || err != nil {
		return nil, err
	}
	*box = v
	return box, nil
}

func (f *fieldList) ubyte(name string, box *uint8) (*uint8, error) {
	v, ok, err := f.unsigned(name, "ubyte", math.MaxUint8)
	if !ok || err != nil {
		return nil, err
	}
	*box = uint8(v)
	return box, nil
}

func (f *fieldList) boolean(name string) (v, present bool, err error) {
	if present, err = f.next(name); !present || err != nil {
		return false, false, err
	}
	switch f.d.b[f.pos] {
	case codeTrue:
		f.pos++
		return true, true, nil
	case codeFalse:
		f.pos++
		return false, true, nil
	case codeBool:
		if err := f.d.needField(f.pos+1, f.end, 1, f.obj, name); err != nil {
			return false, false, err
		}
		switch f.d.b[f.pos+1] {
		case 0:
			f.pos += 2
			return false, true, nil
		case 1:
			f.pos += 2
			return true, true, nil
		}
		return false, false, f.d.errf(f.pos+1, "%s.%s: boolean: want 0x00 or 0x01, got 0x%02x", f.obj, name, f.d.b[f.pos+1])
	}
	return false, false, f.wrongType(name, "boolean")
}

// flag reads a boolean field whose default is false.
func (f *fieldList) flag(name string) (bool, error) {
	v, _, err := f.boolean(name)
	return v, err
}

// bytesOf reads a vbin, str or sym field (aliasing the input) if its code is one of codes.
func (f *fieldList) bytesOf(name, want string, codes ...byte) ([]byte, bool, error) {
	present, err := f.next(name)
	if !present || err != nil {
		return nil, false, err
	}
	code := f.d.b[f.pos]
	for _, c := range codes {
		if c == code {
			data, next, err := f.d.variable(code, f.pos+1, f.end)
			if err != nil {
				return nil, false, err
			}
			f.pos = next
			return data, true, nil
		}
	}
	return nil, false, f.wrongType(name, want)
}

// str reads a string field; a symbol is accepted too.
func (f *fieldList) str(name string) (string, bool, error) {
	b, ok, err := f.bytesOf(name, "string", codeStr8, codeStr32, codeSym8, codeSym32)
	return string(b), ok, err
}

// sym reads a symbol field; a string is accepted too.
func (f *fieldList) sym(name string) (Symbol, bool, error) {
	b, ok, err := f.bytesOf(name, "symbol", codeSym8, codeSym32, codeStr8, codeStr32)
	return Symbol(b), ok, err
}

// binary reads a binary field as a copy; an empty binary reads as nil.
func (f *fieldList) binary(name string) ([]byte, bool, error) {
	b, ok, err := f.bytesOf(name, "binary", codeVbin8, codeVbin32)
	if err != nil || len(b) == 0 {
		return nil, ok, err
	}
	return clone(b), ok, nil
}

// symbols reads a multiple-valued symbol field: a single symbol or an array of symbols. Empty reads as nil.
func (f *fieldList) symbols(name string) ([]Symbol, bool, error) {
	present, err := f.next(name)
	if !present || err != nil {
		return nil, false, err
	}
	code := f.d.b[f.pos]
	switch code {
	case codeSym8, codeSym32:
		data, next, err := f.d.variable(code, f.pos+1, f.end)
		if err != nil {
			return nil, false, err
		}
		f.pos = next
		return []Symbol{Symbol(data)}, true, nil
	case codeArray8, codeArray32:
		v, next, err := f.d.array(code, f.pos+1, f.end, f.depth)
		if err != nil {
			return nil, false, err
		}
		syms, ok := v.([]Symbol)
		if !ok {
			return nil, false, f.d.errf(f.pos, "%s.%s: want array of symbol, got array of %s", f.obj, name, typeName(f.d.b[arrayElemCode(f.d.b, f.pos)]))
		}
		f.pos = next
		if len(syms) == 0 {
			syms = nil
		}
		return syms, true, nil
	}
	return nil, false, f.wrongType(name, "symbol or array of symbol")
}

// symbolMap reads a map whose keys must be symbols (fields, filter-set). Empty reads as nil.
func (f *fieldList) symbolMap(name string) (map[Symbol]any, error) {
	present, err := f.next(name)
	if !present || err != nil {
		return nil, err
	}
	code := f.d.b[f.pos]
	if code != codeMap8 && code != codeMap32 {
		return nil, f.wrongType(name, "map")
	}
	count, p, bodyEnd, err := f.d.compoundHeader(code, f.pos+1, f.end)
	if err != nil {
		return nil, err
	}
	if count%2 != 0 {
		return nil, f.d.errf(f.pos, "%s.%s: map has odd element count %d", f.obj, name, count)
	}
	if count > bodyEnd-p {
		return nil, f.d.errf(f.pos, "%s.%s: map count %d exceeds the %d bytes of its body", f.obj, name, count, bodyEnd-p)
	}
	if f.depth+1 > MaxDepth {
		return nil, f.d.errf(f.pos, "values nested deeper than %d", MaxDepth)
	}
	var out map[Symbol]any
	if count > 0 {
		out = make(map[Symbol]any, count/2)
	}
	for range count / 2 {
		if p >= bodyEnd {
			return nil, f.d.errf(p, "%s.%s: truncated map", f.obj, name)
		}
		kc := f.d.b[p]
		// Fields maps have symbol keys; clients also send str keys (go-amqp encodes map[string]any keys
		// as str, e.g. the dead-letter info of a rejected disposition), so both are accepted.
		if kc != codeSym8 && kc != codeSym32 && kc != codeStr8 && kc != codeStr32 {
			return nil, f.d.errf(p, "%s.%s: map key: want symbol, got %s", f.obj, name, typeName(kc))
		}
		k, next, err := f.d.variable(kc, p+1, bodyEnd)
		if err != nil {
			return nil, err
		}
		v, next, err := f.d.value(next, bodyEnd, f.depth+1)
		if err != nil {
			return nil, err
		}
		out[Symbol(k)], p = v, next
	}
	if p != bodyEnd {
		return nil, f.d.errf(p, "%s.%s: map has %d bytes left over", f.obj, name, bodyEnd-p)
	}
	f.pos = p
	return out, nil
}

func (f *fieldList) fields(name string) (Fields, error) {
	m, err := f.symbolMap(name)
	return Fields(m), err
}

// anyValue reads a field of any type (decoded as by DecodeValue).
func (f *fieldList) anyValue(name string) (any, error) {
	present, err := f.next(name)
	if !present || err != nil {
		return nil, err
	}
	v, next, err := f.d.value(f.pos, f.end, f.depth)
	if err != nil {
		return nil, err
	}
	f.pos = next
	return v, nil
}

// anyMap reads a map field with keys of any type. Empty reads as nil.
func (f *fieldList) anyMap(name string) (map[any]any, error) {
	if f.i < f.count && f.pos < f.end {
		if c := f.d.b[f.pos]; c != codeNull && c != codeMap8 && c != codeMap32 {
			f.i++
			return nil, f.wrongType(name, "map")
		}
	}
	v, err := f.anyValue(name)
	if v == nil || err != nil {
		return nil, err
	}
	m := v.(map[any]any)
	if len(m) == 0 {
		return nil, nil
	}
	return m, nil
}

// composite reads a described field and checks it decoded to a known struct; want names it.
func (f *fieldList) composite(name, want string) (any, error) {
	if f.i < f.count && f.pos < f.end {
		if c := f.d.b[f.pos]; c != codeNull && c != codeDescribed {
			f.i++
			return nil, f.wrongType(name, want)
		}
	}
	start := f.pos
	v, err := f.anyValue(name)
	if err != nil {
		return nil, err
	}
	if d, ok := v.(Described); ok {
		return nil, f.d.errf(start, "%s.%s: want %s, got described value with descriptor %s", f.obj, name, want, descriptorString(d.Descriptor))
	}
	return v, nil
}

func (f *fieldList) errorField(name string) (*Error, error) {
	start := f.pos
	v, err := f.composite(name, "error")
	if v == nil || err != nil {
		return nil, err
	}
	e, ok := v.(*Error)
	if !ok {
		return nil, f.d.errf(start, "%s.%s: want error, got %s", f.obj, name, goTypeName(v))
	}
	return e, nil
}

func (f *fieldList) stateField(name string) (DeliveryState, error) {
	start := f.pos
	v, err := f.composite(name, "delivery state")
	if v == nil || err != nil {
		return nil, err
	}
	s, ok := v.(DeliveryState)
	if !ok {
		return nil, f.d.errf(start, "%s.%s: want delivery state, got %s", f.obj, name, goTypeName(v))
	}
	return s, nil
}

// finish skips fields beyond those the codec knows (later protocol versions may add some) and checks
// that the list was consumed exactly.
func (f *fieldList) finish() error {
	for f.i < f.count {
		if _, err := f.anyValue(fmt.Sprintf("field%d", f.i)); err != nil {
			return err
		}
	}
	if f.pos != f.end {
		return f.d.errf(f.pos, "%s: %d bytes left over after %d fields", f.obj, f.end-f.pos, f.count)
	}
	return nil
}

// goTypeName names the AMQP type of a decoded Go value for error messages.
func goTypeName(v any) string {
	switch v := v.(type) {
	case nil:
		return "null"
	case bool:
		return "boolean"
	case uint8:
		return "ubyte"
	case uint16:
		return "ushort"
	case uint32:
		return "uint"
	case uint64:
		return "ulong"
	case int8:
		return "byte"
	case int16:
		return "short"
	case int32:
		return "int"
	case int64:
		return "long"
	case string:
		return "string"
	case Symbol:
		return "symbol"
	case []byte:
		return "binary"
	case []any:
		return "list"
	case map[any]any:
		return "map"
	case Described:
		return "described value with descriptor " + descriptorString(v.Descriptor)
	}
	return fmt.Sprintf("%T", v)
}

// descriptorString formats a descriptor for error messages: codes in hex, symbols as they are.
func descriptorString(desc any) string {
	switch desc := desc.(type) {
	case uint64:
		return fmt.Sprintf("0x%x", desc)
	case Symbol:
		return string(desc)
	}
	return goTypeName(desc)
}

// needField is need for a field of a composite: the error names obj.field.
func (d *decoder) needField(pos, end, n int, obj, field string) error {
	if n < 0 || end-pos < n {
		return d.errf(pos, "%s.%s: need %d bytes, %d remain", obj, field, n, max(end-pos, 0))
	}
	return nil
}
