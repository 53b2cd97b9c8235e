package broker_test

import (
	"fmt"
	"time"

	"github.com/Azure/go-amqp"

	"github.com/holdfast-dev/holdfast/emulator/broker"
)

func ExampleParseConfig() {
	cfg, err := broker.ParseConfig([]byte(`{"UserConfig": {"Namespaces": [{"Name": "sbemulatorns",
		"Queues": [{"Name": "orders", "Properties": {"LockDuration": "PT5S", "MaxDeliveryCount": 10}}]}]}}`))
	if err != nil {
		fmt.Println(err)
		return
	}
	q := cfg.UserConfig.Namespaces[0].Queues[0]
	fmt.Println(q.Name, q.Properties.LockDuration, q.Properties.MaxDeliveryCount, q.Properties.DefaultMessageTimeToLive)

	_, err = broker.ParseConfig([]byte(`{"UserConfig": {"Namespaces": [{"Name": "sbemulatorns",
		"Queues": [{"Name": "orders", "Properties": {"LockDurationn": "PT5S"}}]}]}}`))
	fmt.Println(err != nil)
	// Output:
	// orders 5s 10 2562047h47m16.854775807s
	// true
}

func ExampleManualClock() {
	clk := broker.NewManualClock(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	b, _ := broker.New(nil, &broker.Options{Clock: clk})
	defer b.Close()
	p := broker.DefaultQueueProperties()
	p.LockDuration = 5 * time.Second
	_ = b.CreateQueue("orders", p)
	q, _ := b.Entity("orders")

	_ = b.Send("orders", amqp.NewMessage([]byte("hello")))
	d := q.Receive(1, broker.PeekLock)[0]
	clk.Advance(5 * time.Second) // the lock expires; the message is available again
	err := q.Complete(d.LockToken)
	again := q.Receive(1, broker.PeekLock)[0]
	fmt.Println(err != nil, again.SequenceNumber, again.Message.Header.DeliveryCount)
	// Output: true 1 1
}
