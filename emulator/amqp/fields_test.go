package amqp

import "testing"

// go-amqp encodes map[string]any keys as str, so a client's dead-letter disposition carries error.info with str
// keys although the field is declared as fields (symbol keys). Both must decode.
func TestErrorInfoAcceptsStrKeys(t *testing.T) {
	for _, key := range []any{"DeadLetterReason", Symbol("DeadLetterReason")} {
		b, err := AppendValue(nil, Described{Descriptor: DescError, Value: []any{
			Symbol("com.microsoft:dead-letter"), nil, map[any]any{key: "why"},
		}})
		if err != nil {
			t.Fatal(err)
		}
		v, _, err := DecodeValue(b)
		if err != nil {
			t.Fatalf("key %T: %v", key, err)
		}
		e, ok := v.(*Error)
		if !ok || e.Info["DeadLetterReason"] != "why" {
			t.Fatalf("key %T: decoded %#v", key, v)
		}
	}
}
