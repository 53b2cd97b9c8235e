package ledger

import (
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"
)

// MaxKeyBytes is Table Storage's limit on a PartitionKey or RowKey.
const MaxKeyBytes = 1024

// rowKeyDigits is the width of a RowKey: the int64 maximum has 19 digits, so lexicographic order is numeric.
const rowKeyDigits = 19

// EncodeKey encodes an entity path (a queue name, or `topic/Subscriptions/sub`) as a PartitionKey. Keys may not
// hold `/ \ # ?`, control characters (U+0000–U+001F, U+007F–U+009F) or invalid UTF-8; those bytes, `%` itself,
// and `'` (so keys never need quoting in OData filters) are written as %XX of their UTF-8 bytes, uppercase hex.
// Everything else is kept, so keys stay readable: `orders/Subscriptions/audit` ⇒ `orders%2FSubscriptions%2Faudit`.
// DecodeKey reverses it exactly.
func EncodeKey(entityPath string) (string, error) {
	if entityPath == "" {
		return "", invalid("empty entity path")
	}
	var b strings.Builder
	for i := 0; i < len(entityPath); {
		r, size := utf8.DecodeRuneInString(entityPath[i:])
		if (r == utf8.RuneError && size == 1) || mustEscape(r) {
			for _, c := range []byte(entityPath[i : i+size]) {
				fmt.Fprintf(&b, "%%%02X", c)
			}
		} else {
			b.WriteString(entityPath[i : i+size])
		}
		i += size
	}
	if b.Len() > MaxKeyBytes {
		return "", invalid("entity path %.40q… encodes to %d bytes, more than the %d a table key allows", entityPath, b.Len(), MaxKeyBytes)
	}
	return b.String(), nil
}

func mustEscape(r rune) bool {
	switch {
	case r == '/', r == '\\', r == '#', r == '?', r == '%', r == '\'':
		return true
	case r <= 0x1F, r >= 0x7F && r <= 0x9F:
		return true
	}
	return false
}

// DecodeKey returns the entity path a PartitionKey written by EncodeKey stands for.
func DecodeKey(key string) (string, error) {
	if !strings.Contains(key, "%") {
		return key, nil
	}
	out := make([]byte, 0, len(key))
	for i := 0; i < len(key); i++ {
		if key[i] != '%' {
			out = append(out, key[i])
			continue
		}
		if i+2 >= len(key) {
			return "", invalid("key %q: truncated escape at byte %d", key, i)
		}
		v, err := strconv.ParseUint(key[i+1:i+3], 16, 8)
		if err != nil {
			return "", invalid("key %q: bad escape %q at byte %d", key, key[i:i+3], i)
		}
		out = append(out, byte(v))
		i += 2
	}
	return string(out), nil
}

// RowKey returns the RowKey of a sequence number: 19 digits, zero-padded.
func RowKey(seq int64) string { return fmt.Sprintf("%0*d", rowKeyDigits, seq) }

// ParseRowKey returns the sequence number a RowKey stands for.
func ParseRowKey(rk string) (int64, error) {
	if len(rk) != rowKeyDigits {
		return 0, invalid("row key %q is not %d digits", rk, rowKeyDigits)
	}
	seq, err := strconv.ParseInt(rk, 10, 64)
	if err != nil || seq < 0 {
		return 0, invalid("row key %q is not a sequence number", rk)
	}
	return seq, nil
}
