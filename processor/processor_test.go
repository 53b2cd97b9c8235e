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
