package ledger

import (
	"errors"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestEncodeKeyRoundTrip(t *testing.T) {
	tests := []struct {
		path, key string
	}{
		{"orders", "orders"},
		{"orders/Subscriptions/audit", "orders%2FSubscriptions%2Faudit"},
		{"a/b/c", "a%2Fb%2Fc"},
		{"100%", "100%25"},
		{`back\slash#hash?q`, "back%5Cslash%23hash%3Fq"},
		{"it's", "it%27s"},
		{"tab\there", "tab%09here"},
		{"del\x7f", "del%7F"},
		{"c1\u0085x", "c1%C2%85x"},
		{"ünïcødé-queue_1.2~", "ünïcødé-queue_1.2~"},
		{"bad\xffutf8", "bad%FFutf8"},
		{"%2F", "%252F"},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			key, err := EncodeKey(tt.path)
			if err != nil {
				t.Fatalf("EncodeKey(%q): %v", tt.path, err)
			}
			if key != tt.key {
				t.Errorf("EncodeKey(%q) = %q, want %q", tt.path, key, tt.key)
			}
			back, err := DecodeKey(key)
			if err != nil || back != tt.path {
				t.Errorf("DecodeKey(%q) = %q, %v; want %q", key, back, err, tt.path)
			}
		})
	}
}

func TestEncodeKeyRejects(t *testing.T) {
	tests := []struct {
		name, path string
	}{
		{"empty", ""},
		{"too long", strings.Repeat("/", 342)}, // 342 × 3 bytes > 1024
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := EncodeKey(tt.path); !errors.Is(err, ErrInvalid) {
				t.Fatalf("EncodeKey(%q…) error = %v, want ErrInvalid", tt.path[:min(len(tt.path), 8)], err)
			}
		})
	}
}

func TestDecodeKeyRejectsBadEscapes(t *testing.T) {
	for _, key := range []string{"a%", "a%2", "a%zz", "%+1", "%-1"} {
		if got, err := DecodeKey(key); !errors.Is(err, ErrInvalid) {
			t.Errorf("DecodeKey(%q) = %q, %v; want ErrInvalid", key, got, err)
		}
	}
}

func TestRowKey(t *testing.T) {
	tests := []struct {
		seq int64
		key string
	}{
		{0, "0000000000000000000"},
		{7, "0000000000000000007"},
		{42, "0000000000000000042"},
		{9223372036854775807, "9223372036854775807"},
	}
	for _, tt := range tests {
		if got := RowKey(tt.seq); got != tt.key {
			t.Errorf("RowKey(%d) = %q, want %q", tt.seq, got, tt.key)
		}
		if got, err := ParseRowKey(tt.key); err != nil || got != tt.seq {
			t.Errorf("ParseRowKey(%q) = %d, %v; want %d", tt.key, got, err, tt.seq)
		}
	}
	if RowKey(7) >= RowKey(42) || RowKey(42) >= RowKey(100) {
		t.Error("row keys do not sort numerically")
	}
	for _, bad := range []string{"", "42", "-000000000000000001", "00000000000000000x1", "9999999999999999999"} {
		if _, err := ParseRowKey(bad); !errors.Is(err, ErrInvalid) {
			t.Errorf("ParseRowKey(%q) error = %v, want ErrInvalid", bad, err)
		}
	}
}

// FuzzEncodeKey checks that every entity path round-trips and encodes to a key Table Storage accepts.
func FuzzEncodeKey(f *testing.F) {
	for _, s := range []string{"orders", "orders/Subscriptions/audit", "100%", "it's", "a\x00b", "\u0085", "\xff\xfe", "%2F", "#?\\/"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, path string) {
		key, err := EncodeKey(path)
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("EncodeKey(%q) error %v is not ErrInvalid", path, err)
			}
			return
		}
		if len(key) > MaxKeyBytes || !utf8.ValidString(key) {
			t.Fatalf("EncodeKey(%q) = %q: longer than %d or invalid UTF-8", path, key, MaxKeyBytes)
		}
		for _, r := range key {
			if mustEscape(r) && r != '%' {
				t.Fatalf("EncodeKey(%q) = %q keeps forbidden %q", path, key, r)
			}
		}
		back, err := DecodeKey(key)
		if err != nil || back != path {
			t.Fatalf("DecodeKey(EncodeKey(%q)) = %q, %v", path, back, err)
		}
	})
}
