package broker

import (
	"testing"
	"time"
)

func TestManualClock(t *testing.T) {
	c := NewManualClock(t0)
	var fired []string
	at := func(name string) func() {
		return func() { fired = append(fired, name+"@"+c.Now().Sub(t0).String()) }
	}
	c.AfterFunc(3*time.Second, at("c"))
	c.AfterFunc(time.Second, at("a"))
	c.AfterFunc(time.Second, at("b")) // same deadline: creation order
	stopped := c.AfterFunc(2*time.Second, at("never"))
	c.AfterFunc(2*time.Second, func() {
		fired = append(fired, "d@"+c.Now().Sub(t0).String())
		c.AfterFunc(0, at("nested")) // due at once: fires within the same Advance
	})
	if !stopped.Stop() || stopped.Stop() {
		t.Fatal("Stop must report true once, then false")
	}
	c.Advance(500 * time.Millisecond)
	if len(fired) != 0 {
		t.Fatalf("fired early: %v", fired)
	}
	c.Advance(5 * time.Second)
	want := []string{"a@1s", "b@1s", "d@2s", "nested@2s", "c@3s"}
	if len(fired) != len(want) {
		t.Fatalf("fired %v, want %v", fired, want)
	}
	for i := range want {
		if fired[i] != want[i] {
			t.Fatalf("fired %v, want %v", fired, want)
		}
	}
	if got := c.Now(); !got.Equal(t0.Add(5500 * time.Millisecond)) {
		t.Errorf("Now = %v after advancing 5.5s", got)
	}
	if c.Pending() != 0 {
		t.Errorf("%d timers pending", c.Pending())
	}
	c.Set(t0) // never backwards
	if !c.Now().Equal(t0.Add(5500 * time.Millisecond)) {
		t.Error("Set moved the clock backwards")
	}
}

func TestRealClockTimerStops(t *testing.T) {
	tm := RealClock().AfterFunc(time.Hour, func() { t.Error("fired") })
	if !tm.Stop() {
		t.Error("Stop of a pending real timer returned false")
	}
}
