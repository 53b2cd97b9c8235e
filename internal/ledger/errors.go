package ledger

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/data/aztables"
)

// Error is a stable ledger error code. Callers branch with errors.Is on the exported values, never on text.
// StatusCode reports the HTTP status an API built on the ledger should answer with.
type Error struct {
	code   string
	status int
}

func (e *Error) Error() string { return "ledger: " + e.code }

// StatusCode returns the HTTP status that corresponds to the error.
func (e *Error) StatusCode() int { return e.status }

var (
	// ErrNotFound: the row (or, for reads, the table) does not exist.
	ErrNotFound = &Error{"not found", http.StatusNotFound}
	// ErrConflict: the row changed since it was read (stale ETag) or already exists.
	ErrConflict = &Error{"conflict", http.StatusConflict}
	// ErrInvalid: an argument is malformed (a bad continuation token, a message without a sequence number…).
	ErrInvalid = &Error{"invalid argument", http.StatusBadRequest}
)

// errTableNotFound is internal: write paths create the table and retry once when they see it.
var errTableNotFound = errors.New("ledger: table not found")

// translate is the one place that maps Table Storage responses to ledger errors. It keeps the original error
// in the chain for logs. Errors without a recognised status (transport failures, timeouts) pass through.
func translate(err error) error {
	if err == nil {
		return nil
	}
	var re *azcore.ResponseError
	if !errors.As(err, &re) {
		return err
	}
	switch {
	case re.ErrorCode == string(aztables.TableNotFound):
		return fmt.Errorf("%w: %w", errTableNotFound, err)
	case re.StatusCode == http.StatusNotFound:
		return fmt.Errorf("%w: %w", ErrNotFound, err)
	case re.StatusCode == http.StatusPreconditionFailed,
		re.ErrorCode == string(aztables.UpdateConditionNotSatisfied),
		re.ErrorCode == string(aztables.EntityAlreadyExists):
		return fmt.Errorf("%w: %w", ErrConflict, err)
	}
	return err
}

// invalid builds an ErrInvalid that names the problem.
func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, args...))
}
