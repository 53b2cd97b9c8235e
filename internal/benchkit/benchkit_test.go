package benchkit

import (
	"testing"
	"time"

	"github.com/holdfast-dev/holdfast/emulator/broker"
)

func TestQueueConfigParses(t *testing.T) {
	c, err := broker.ParseConfig([]byte(QueueConfig(15*time.Second, "a", "b")))
	if err != nil {
		t.Fatal(err)
	}
	qs := c.UserConfig.Namespaces[0].Queues
	if len(qs) != 2 || qs[1].Name != "b" || qs[0].Properties.LockDuration != 15*time.Second || qs[0].Properties.MaxDeliveryCount != 10 {
		t.Fatalf("queues %+v", qs)
	}
}

func TestMedianAndSpread(t *testing.T) {
	xs := []float64{3, 1, 2, 10}
	if m := Median(xs); m != 2.5 {
		t.Errorf("median %v, want 2.5", m)
	}
	if m := Median(xs[:3]); m != 2 {
		t.Errorf("median %v, want 2", m)
	}
	if lo, hi := Spread(xs); lo != 1 || hi != 10 {
		t.Errorf("spread %v–%v", lo, hi)
	}
	if xs[0] != 3 {
		t.Error("Median sorted its argument")
	}
	if Median(nil) != 0 {
		t.Error("median of nothing")
	}
}
