package testenv

import (
	"crypto/rand"
	"encoding/hex"
	"testing"
)

// TableName returns a table name unique to this call, valid for Table Storage (a letter, then 3–62 letters or
// digits), so tests sharing one Azurite never see each other's rows.
func TableName(t testing.TB) string {
	t.Helper()
	var b [8]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
	return "t" + hex.EncodeToString(b[:])
}
