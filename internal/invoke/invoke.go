// Package invoke holds the Azure Functions custom-handler envelope: what the host POSTs to /<FunctionName>
// for non-forwarded triggers, and what the handler must answer.
package invoke

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// ErrMalformed is wrapped by decoding errors of a request envelope.
var ErrMalformed = errors.New("invoke: malformed invocation request")

// Request is the envelope {"Data":{<binding>:<value>},"Metadata":{<key>:<value>}}. Metadata is open-ended.
type Request struct {
	Data     map[string]json.RawMessage `json:"Data"`
	Metadata map[string]json.RawMessage `json:"Metadata"`
}

// Response is the envelope the handler returns for every non-forwarded invocation. The host needs a 2xx with a
// non-empty JSON body; NewResponse fills Outputs and Logs so they serialise as {} and [] rather than null.
type Response struct {
	Outputs     map[string]any `json:"Outputs"`
	Logs        []string       `json:"Logs"`
	ReturnValue any            `json:"ReturnValue"`
}

// NewResponse returns a response with no outputs, the given log lines and return value.
func NewResponse(logs []string, returnValue any) Response {
	if logs == nil {
		logs = []string{}
	}
	return Response{Outputs: map[string]any{}, Logs: logs, ReturnValue: returnValue}
}

// ScheduleStatus is the timer's schedule monitor state; the host sends null when the monitor is off.
type ScheduleStatus struct {
	Last        time.Time `json:"Last"`
	Next        time.Time `json:"Next"`
	LastUpdated time.Time `json:"LastUpdated"`
}

// TimerInfo is the value of a timerTrigger binding.
type TimerInfo struct {
	Schedule struct {
		AdjustForDST bool `json:"AdjustForDST"`
	} `json:"Schedule"`
	ScheduleStatus *ScheduleStatus `json:"ScheduleStatus"`
	IsPastDue      bool            `json:"IsPastDue"`
}

// SysMetadata is Metadata["sys"].
type SysMetadata struct {
	MethodName string    `json:"MethodName"`
	UtcNow     time.Time `json:"UtcNow"`
	RandGUID   string    `json:"RandGuid"`
}

// TimerRequest is a decoded timer invocation.
type TimerRequest struct {
	Binding string      // name of the timer binding found in Data
	Timer   TimerInfo   // its value
	Sys     SysMetadata // Metadata["sys"], zero when absent
}

// DecodeRequest decodes an envelope. The body must be one JSON object with a "Data" object.
func DecodeRequest(body []byte) (*Request, error) {
	var r Request
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(&r); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	if dec.More() {
		return nil, fmt.Errorf("%w: data after the JSON object", ErrMalformed)
	}
	if r.Data == nil {
		return nil, fmt.Errorf("%w: missing \"Data\" object", ErrMalformed)
	}
	return &r, nil
}

// DecodeTimer decodes a timer invocation. binding names the timer binding in Data; "" accepts the only
// entry of Data. Metadata is optional; an unparsable "sys" entry is an error, other keys are ignored.
func DecodeTimer(body []byte, binding string) (*TimerRequest, error) {
	r, err := DecodeRequest(body)
	if err != nil {
		return nil, err
	}
	if binding == "" {
		if len(r.Data) != 1 {
			return nil, fmt.Errorf("%w: \"Data\" has %d entries, want exactly one timer binding", ErrMalformed, len(r.Data))
		}
		for k := range r.Data {
			binding = k
		}
	}
	raw, ok := r.Data[binding]
	if !ok {
		return nil, fmt.Errorf("%w: \"Data\" has no %q binding", ErrMalformed, binding)
	}
	tr := &TimerRequest{Binding: binding}
	if err := decodeObject(raw, &tr.Timer); err != nil {
		return nil, fmt.Errorf("%w: timer binding %q: %w", ErrMalformed, binding, err)
	}
	if sys, ok := r.Metadata["sys"]; ok {
		if err := decodeObject(sys, &tr.Sys); err != nil {
			return nil, fmt.Errorf("%w: Metadata.sys: %w", ErrMalformed, err)
		}
	}
	return tr, nil
}

// decodeObject decodes raw into v, rejecting anything but a JSON object.
func decodeObject(raw json.RawMessage, v any) error {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || raw[0] != '{' {
		return errors.New("not a JSON object")
	}
	return json.Unmarshal(raw, v)
}
