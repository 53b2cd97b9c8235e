package invoke

import (
	"errors"
	"testing"
)

// FuzzDecodeTimer checks that any input either decodes or fails with ErrMalformed, never panics, and that a
// successful decode names a binding present in Data.
func FuzzDecodeTimer(f *testing.F) {
	f.Add([]byte(hostTimer), "")
	f.Add([]byte(hostTimer), "myTimer")
	f.Add([]byte(`{"Data":{"t":{"ScheduleStatus":null}}}`), "")
	f.Add([]byte(hostTimer[:len(hostTimer)/2]), "")
	f.Add([]byte(`{"Data":{"t":{}},"Metadata":{"sys":null}}`), "t")
	f.Fuzz(func(t *testing.T, body []byte, binding string) {
		tr, err := DecodeTimer(body, binding)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error %v does not wrap ErrMalformed", err)
			}
			return
		}
		if binding != "" && tr.Binding != binding {
			t.Fatalf("binding %q, asked %q", tr.Binding, binding)
		}
		r, err := DecodeRequest(body)
		if err != nil {
			t.Fatalf("DecodeTimer accepted what DecodeRequest rejects: %v", err)
		}
		if _, ok := r.Data[tr.Binding]; !ok {
			t.Fatalf("binding %q not in Data", tr.Binding)
		}
	})
}
