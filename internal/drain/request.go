package drain

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"math"
	"net/http"
	"strconv"
	"strings"
)

// Request limits.
const (
	// MaxSequenceNumbers is the most sequence numbers one request may name.
	MaxSequenceNumbers = 10000
	// MaxBodyBytes is the largest request body accepted.
	MaxBodyBytes = 1 << 20
	// MaxReasonLength bounds a dead-letter reason or description (Service Bus limit on the header values).
	MaxReasonLength = 4096
)

// Action is what a POST /api/deferred/{action} call does.
type Action string

// Actions.
const (
	ActionResubmit   Action = "resubmit"
	ActionDelete     Action = "delete"
	ActionDeadLetter Action = "deadletter"
	ActionReconcile  Action = "reconcile"
)

// ParseAction returns the Action named by s, or a *RequestError (404) naming the known ones.
func ParseAction(s string) (Action, error) {
	switch a := Action(s); a {
	case ActionResubmit, ActionDelete, ActionDeadLetter, ActionReconcile:
		return a, nil
	}
	return "", badRequest(http.StatusNotFound, "unknown action %q: use resubmit, delete, deadletter or reconcile", s)
}

// Request is the decoded body of a resubmit, delete or deadletter call. Exactly one of SequenceNumbers and All
// selects the rows.
type Request struct {
	Action Action `json:"-"`
	// SequenceNumbers names the messages (deduplicated, in the order given).
	SequenceNumbers []int64 `json:"sequenceNumbers,omitempty"`
	// All selects every row of the ledger.
	All bool `json:"all,omitempty"`
	// DueOnly keeps only rows whose NotBefore has passed (or is unset).
	DueOnly bool `json:"dueOnly,omitempty"`
	// DryRun reports what would be acted on and changes nothing.
	DryRun bool `json:"dryRun,omitempty"`
	// Reason and Description are the dead-letter reason (required for deadletter) and description.
	Reason      string `json:"reason,omitempty"`
	Description string `json:"description,omitempty"`
	// MaxCount lowers the number of rows this call acts on (0 = the service's limit).
	MaxCount int `json:"maxCount,omitempty"`
	// Continuation resumes a previous call with the same selection.
	Continuation string `json:"continuation,omitempty"`
}

// ReconcileRequest is the (optional) body of a reconcile call.
type ReconcileRequest struct {
	Continuation string `json:"continuation,omitempty"`
}

// RequestError is a request the drain refuses before touching anything. Status is the HTTP status.
type RequestError struct {
	Status int
	Msg    string
}

func (e *RequestError) Error() string { return e.Msg }

// HTTPStatus returns the HTTP status to answer with.
func (e *RequestError) HTTPStatus() int { return e.Status }

// ErrBadRequest is matched by errors.Is for every *RequestError.
var ErrBadRequest = errors.New("drain: bad request")

// Is makes errors.Is(err, ErrBadRequest) true for every *RequestError.
func (e *RequestError) Is(target error) bool { return target == ErrBadRequest }

// NewRequestError returns a *RequestError with the given status and formatted message.
func NewRequestError(status int, format string, args ...any) *RequestError {
	return badRequest(status, format, args...)
}

func badRequest(status int, format string, args ...any) *RequestError {
	return &RequestError{Status: status, Msg: fmt.Sprintf(format, args...)}
}

// Selection is the part of a request that both drains share: which messages (exactly one of SequenceNumbers
// and All), whether only to report, how many at most, and where to resume.
type Selection struct {
	// SequenceNumbers names the messages (deduplicated, in the order given).
	SequenceNumbers []int64
	// All selects every message.
	All bool
	// DryRun reports what would be acted on and changes nothing.
	DryRun bool
	// MaxCount lowers the number of messages a call acts on (0 = the service's limit).
	MaxCount int
	// Continuation resumes a previous call with the same selection.
	Continuation string
}

// wireSelection is the JSON shape of a Selection; numbers stay raw so each can be checked and named.
type wireSelection struct {
	SequenceNumbers []json.RawMessage `json:"sequenceNumbers"`
	All             *bool             `json:"all"`
	DryRun          bool              `json:"dryRun"`
	MaxCount        *json.RawMessage  `json:"maxCount"`
	Continuation    string            `json:"continuation"`
}

// wireRequest is the JSON shape of a deferred-drain request: the selection plus its own fields.
type wireRequest struct {
	wireSelection
	DueOnly     bool    `json:"dueOnly"`
	Reason      *string `json:"reason"`
	Description *string `json:"description"`
}

// DecodeSelection parses and validates a request body that holds only a selection ({"sequenceNumbers":[…]} or
// {"all":true}, optional "dryRun", "maxCount", "continuation"). Problems give a *RequestError naming them,
// exactly as DecodeRequest's.
func DecodeSelection(body []byte) (Selection, error) {
	if err := checkBody(body); err != nil {
		return Selection{}, err
	}
	var w wireSelection
	if err := decodeStrict(body, &w); err != nil {
		return Selection{}, err
	}
	return w.parse()
}

// checkBody refuses a body that is too large or empty.
func checkBody(body []byte) error {
	if len(body) > MaxBodyBytes {
		return tooLarge()
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return badRequest(http.StatusBadRequest, `empty body: send {"sequenceNumbers":[…]} or {"all":true}`)
	}
	return nil
}

// parse checks the selection: exactly one of the two selectors, valid numbers, a maxCount in range.
func (w wireSelection) parse() (Selection, error) {
	sel := Selection{DryRun: w.DryRun, Continuation: w.Continuation}
	all := w.All != nil && *w.All
	switch {
	case all && w.SequenceNumbers != nil:
		return Selection{}, badRequest(http.StatusBadRequest, `give either "sequenceNumbers" or "all", not both`)
	case all:
		sel.All = true
	case w.SequenceNumbers == nil:
		return Selection{}, badRequest(http.StatusBadRequest, `nothing selected: send {"sequenceNumbers":[…]} or {"all":true}`)
	default:
		seqs, err := parseSequenceNumbers(w.SequenceNumbers)
		if err != nil {
			return Selection{}, err
		}
		sel.SequenceNumbers = seqs
	}
	if w.MaxCount != nil {
		n, err := parseInt(*w.MaxCount)
		if err != nil || n < 1 || n > MaxSequenceNumbers {
			return Selection{}, badRequest(http.StatusBadRequest, `"maxCount" must be an integer from 1 to %d, got %.40s`, MaxSequenceNumbers, string(*w.MaxCount))
		}
		sel.MaxCount = int(n)
	}
	return sel, nil
}

// DecodeRequest parses and validates the body of a resubmit, delete or deadletter call. Any problem gives a
// *RequestError naming it: malformed JSON, unknown fields, trailing data, no selection or both selections, an
// empty list or more than MaxSequenceNumbers, a number that is negative, fractional, quoted or out of range, a
// deadletter without a reason, a reason on another action.
func DecodeRequest(action Action, body []byte) (Request, error) {
	if action == ActionReconcile {
		return Request{}, badRequest(http.StatusBadRequest, "reconcile takes no selection; use DecodeReconcileRequest")
	}
	if _, err := ParseAction(string(action)); err != nil {
		return Request{}, err
	}
	if err := checkBody(body); err != nil {
		return Request{}, err
	}
	var w wireRequest
	if err := decodeStrict(body, &w); err != nil {
		return Request{}, err
	}
	sel, err := w.parse()
	if err != nil {
		return Request{}, err
	}
	r := Request{Action: action, SequenceNumbers: sel.SequenceNumbers, All: sel.All, DueOnly: w.DueOnly, DryRun: sel.DryRun,
		MaxCount: sel.MaxCount, Continuation: sel.Continuation}
	if err := r.setReason(w.Reason, w.Description); err != nil {
		return Request{}, err
	}
	return r, nil
}

// setReason applies the dead-letter fields, which only deadletter accepts and requires.
func (r *Request) setReason(reason, description *string) error {
	if r.Action != ActionDeadLetter {
		if reason != nil || description != nil {
			return badRequest(http.StatusBadRequest, `"reason" and "description" apply to deadletter only, not %s`, r.Action)
		}
		return nil
	}
	if reason == nil || strings.TrimSpace(*reason) == "" {
		return badRequest(http.StatusBadRequest, `deadletter needs a non-empty "reason"`)
	}
	r.Reason = *reason
	if description != nil {
		r.Description = *description
	}
	if len(r.Reason) > MaxReasonLength || len(r.Description) > MaxReasonLength {
		return badRequest(http.StatusBadRequest, `"reason" and "description" are limited to %d bytes`, MaxReasonLength)
	}
	return nil
}

// DecodeReconcileRequest parses the optional body of a reconcile call: empty, or {"continuation":"…"}.
func DecodeReconcileRequest(body []byte) (ReconcileRequest, error) {
	var r ReconcileRequest
	if len(body) > MaxBodyBytes {
		return r, tooLarge()
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return r, nil
	}
	err := decodeStrict(body, &r)
	return r, err
}

func tooLarge() *RequestError {
	return badRequest(http.StatusRequestEntityTooLarge, "request body exceeds %d bytes", MaxBodyBytes)
}

// decodeStrict decodes one JSON object into v, refusing unknown fields and trailing data.
func decodeStrict(body []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return badRequest(http.StatusBadRequest, "malformed JSON body: %s", describeJSONError(err))
	}
	if _, err := dec.Token(); err != io.EOF {
		return badRequest(http.StatusBadRequest, "malformed JSON body: unexpected data after the object")
	}
	return nil
}

func describeJSONError(err error) string {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		if te.Field != "" {
			field := te.Field[strings.LastIndex(te.Field, ".")+1:] // a promoted field is named by its embedding path
			return fmt.Sprintf("field %q must be %s, got %s", field, jsonKind(te.Type.Kind().String()), te.Value)
		}
		return fmt.Sprintf("the body must be a JSON object, got %s", te.Value)
	}
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return "unexpected end of input"
	}
	return strings.TrimPrefix(err.Error(), "json: ") // names unknown fields and syntax errors with offsets
}

func jsonKind(k string) string {
	switch k {
	case "bool":
		return "a boolean"
	case "string":
		return "a string"
	case "slice":
		return "an array"
	case "ptr", "struct", "map":
		return "an object"
	}
	return k
}

// parseSequenceNumbers checks every element and removes repeats, keeping the first occurrence.
func parseSequenceNumbers(raw []json.RawMessage) ([]int64, error) {
	if len(raw) == 0 {
		return nil, badRequest(http.StatusBadRequest, `"sequenceNumbers" is empty`)
	}
	if len(raw) > MaxSequenceNumbers {
		return nil, badRequest(http.StatusBadRequest, `"sequenceNumbers" holds %d numbers, more than the %d allowed per request`, len(raw), MaxSequenceNumbers)
	}
	seen := make(map[int64]struct{}, len(raw))
	out := make([]int64, 0, len(raw))
	for i, m := range raw {
		n, err := parseInt(m)
		if err != nil {
			return nil, badRequest(http.StatusBadRequest, `"sequenceNumbers"[%d]: %v`, i, err)
		}
		if n < 0 {
			return nil, badRequest(http.StatusBadRequest, `"sequenceNumbers"[%d]: %d is negative`, i, n)
		}
		if _, dup := seen[n]; !dup {
			seen[n] = struct{}{}
			out = append(out, n)
		}
	}
	return out, nil
}

// parseInt accepts a JSON number token that is an integer within int64 (1e3 and 5.0 are integers; 1.5,
// "5" and null are not).
func parseInt(m json.RawMessage) (int64, error) {
	s := string(bytes.TrimSpace(m))
	if s == "" || !(s[0] == '-' || (s[0] >= '0' && s[0] <= '9')) {
		return 0, fmt.Errorf("%.40s is not a number", s)
	}
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		return n, nil
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsInf(f, 0) || f >= math.MaxInt64 || f <= math.MinInt64 {
		return 0, fmt.Errorf("%.40s is out of range", s)
	}
	if f != math.Trunc(f) {
		return 0, fmt.Errorf("%.40s is not an integer", s)
	}
	return int64(f), nil
}

// cursor is the opaque continuation of a resubmit, delete or deadletter call. It is bound to the request's
// selection by a hash, so it cannot resume a different selection.
type cursor struct {
	V      int    `json:"v"`
	Action Action `json:"a"`
	Hash   uint64 `json:"h"`
	Index  int    `json:"i,omitempty"` // SequenceNumbers: the next index
	Ledger string `json:"l,omitempty"` // All: the ledger List continuation
}

// selectionHash identifies a request's selection (not its paging or dry-run flag).
func (r Request) selectionHash() uint64 {
	h := fnv.New64a()
	fmt.Fprintf(h, "%s|%t|%t|", r.Action, r.All, r.DueOnly)
	for _, n := range r.SequenceNumbers {
		fmt.Fprintf(h, "%d,", n)
	}
	return h.Sum64()
}

func (r Request) encodeCursor(c cursor) string {
	c.V, c.Action, c.Hash = 1, r.Action, r.selectionHash()
	b, _ := json.Marshal(c) // plain fields always marshal
	return base64.RawURLEncoding.EncodeToString(b)
}

// decodeCursor parses r.Continuation ("" = from the start).
func (r Request) decodeCursor() (cursor, error) {
	var c cursor
	if r.Continuation == "" {
		return c, nil
	}
	b, err := base64.RawURLEncoding.DecodeString(r.Continuation)
	if err == nil {
		err = json.Unmarshal(b, &c)
	}
	if err != nil || c.V != 1 {
		return cursor{}, badRequest(http.StatusBadRequest, `"continuation" %.40q is not a token this API issued`, r.Continuation)
	}
	if c.Action != r.Action || c.Hash != r.selectionHash() || c.Index < 0 || c.Index > len(r.SequenceNumbers) || (c.Ledger != "" && !r.All) {
		return cursor{}, badRequest(http.StatusBadRequest, `"continuation" belongs to a different request: resend the same action and selection with it`)
	}
	return c, nil
}
