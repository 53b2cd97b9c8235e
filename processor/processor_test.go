package processor

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus"
)

func TestConstructors(t *testing.T) {
	boom := errors.New("boom")
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	tests := []struct {
		got  Outcome
		want Outcome
		name string
	}{
		{Complete(), Outcome{Kind: KindComplete}, "complete"},
		{Abandon(boom), Outcome{Kind: KindAbandon, Err: boom}, "abandon"},
		{DeadLetter("r", "d"), Outcome{Kind: KindDeadLetter, Reason: "r", Description: "d"}, "deadletter"},
		{Defer(at, "later"), Outcome{Kind: KindDefer, NotBefore: at, Reason: "later"}, "defer"},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("%s: got %+v want %+v", tt.name, tt.got, tt.want)
		}
		if tt.got.Kind.String() != tt.name {
			t.Errorf("Kind.String() = %q, want %q", tt.got.Kind, tt.name)
		}
	}
	if s := (Outcome{}).Kind.String(); s != "invalid" {
		t.Errorf("zero kind: %q", s)
	}
	if s := Kind(9).String(); s != "Kind(9)" {
		t.Errorf("unknown kind: %q", s)
	}
}

func TestFunc(t *testing.T) {
	var p Processor = Func(func(context.Context, *azservicebus.ReceivedMessage) Outcome { return DeadLetter("x", "") })
	if o := p.Process(context.Background(), &azservicebus.ReceivedMessage{}); o.Kind != KindDeadLetter {
		t.Fatalf("got %v", o.Kind)
	}
}

// Only a complete, error-free outcome validates as complete; the zero Outcome, unknown kinds and any outcome
// carrying an error do not (the run abandons them).
func TestValidate(t *testing.T) {
	boom := errors.New("boom")
	ok := []Outcome{Complete(), {Kind: KindComplete}, DeadLetter("r", "d"), Defer(time.Now(), "x"), Abandon(nil)}
	for _, o := range ok {
		if err := o.Validate(); err != nil {
			t.Errorf("%+v: %v", o, err)
		}
	}
	bad := []struct {
		o       Outcome
		invalid bool // wraps ErrInvalidOutcome
	}{
		{Outcome{}, true},
		{Outcome{Err: boom}, true},
		{Outcome{Kind: KindComplete, Err: boom}, true},
		{Outcome{Kind: KindDeadLetter, Err: boom}, true},
		{Outcome{Kind: KindDefer, Err: boom}, true},
		{Outcome{Kind: Kind(42)}, true},
		{Outcome{Kind: -1}, true},
		{Abandon(boom), false},
	}
	for _, tt := range bad {
		err := tt.o.Validate()
		if err == nil {
			t.Errorf("%+v validated", tt.o)
			continue
		}
		if errors.Is(err, ErrInvalidOutcome) != tt.invalid {
			t.Errorf("%+v: %v, want ErrInvalidOutcome %v", tt.o, err, tt.invalid)
		}
		if tt.o.Err != nil && !errors.Is(err, boom) {
			t.Errorf("%+v: %v does not wrap Err", tt.o, err)
		}
	}
}
