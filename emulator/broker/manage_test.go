package broker

import (
	"errors"
	"testing"
	"time"
)

func TestUpdateQueue(t *testing.T) {
	b, clk, e := newTestQueue(t, nil)
	sendN(t, b, 1)
	first := receiveOne(t, e, PeekLock)
	if got := first.LockedUntil.Sub(t0); got != 10*time.Second {
		t.Fatalf("first lock %v", got)
	}
	created := e.Stats().CreatedAt

	clk.Advance(time.Second)
	p := e.Properties()
	p.LockDuration = 30 * time.Second
	p.MaxDeliveryCount = 1
	if err := b.UpdateQueue("ORDERS", p); err != nil {
		t.Fatal(err)
	}
	if got := e.LockDuration(); got != 30*time.Second {
		t.Errorf("lock duration after update %v", got)
	}
	if got := e.DeadLetterQueue().Properties().MaxDeliveryCount; got != 1 {
		t.Errorf("DLQ MaxDeliveryCount %d, want 1 (follows the queue)", got)
	}
	st := e.Stats()
	if !st.CreatedAt.Equal(created) || !st.UpdatedAt.Equal(t0.Add(time.Second)) {
		t.Errorf("created %v updated %v", st.CreatedAt, st.UpdatedAt)
	}
	// The lock taken before the update keeps its expiry; the new MaxDeliveryCount applies to
	// the next failed delivery.
	if err := e.Abandon(first.LockToken, nil); err != nil {
		t.Fatal(err)
	}
	if n := e.DeadLetterQueue().Stats().Active; n != 1 {
		t.Errorf("DLQ holds %d messages after an abandon with MaxDeliveryCount 1, want 1", n)
	}

	for _, tc := range []struct {
		name   string
		mutate func(*QueueProperties)
		want   error
	}{
		{"sessions", func(q *QueueProperties) { q.RequiresSession = true }, ErrImmutableProperty},
		{"duplicate detection", func(q *QueueProperties) { q.RequiresDuplicateDetection = true }, ErrImmutableProperty},
	} {
		q := e.Properties()
		tc.mutate(&q)
		if err := b.UpdateQueue("orders", q); !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
	}
	bad := e.Properties()
	bad.LockDuration = time.Hour
	var ce *ConfigError
	if err := b.UpdateQueue("orders", bad); !errors.As(err, &ce) {
		t.Errorf("lock of an hour: %v, want a ConfigError", err)
	}
	if err := b.UpdateQueue("missing", p); !errors.Is(err, ErrEntityNotFound) {
		t.Errorf("missing queue: %v", err)
	}
}

func TestStatsTimesAndSize(t *testing.T) {
	b, clk, e := newTestQueue(t, nil)
	st := e.Stats()
	if !st.CreatedAt.Equal(t0) || !st.UpdatedAt.Equal(t0) || !st.AccessedAt.IsZero() || st.SizeInBytes != 0 {
		t.Fatalf("fresh queue %+v", st)
	}
	clk.Advance(time.Second)
	sendN(t, b, 2)
	st = e.Stats()
	one := encodedSize(msg("m1"))
	if !st.AccessedAt.Equal(t0.Add(time.Second)) || st.SizeInBytes < 2*one || one == 0 {
		t.Errorf("after two sends: accessed %v size %d (one message %d)", st.AccessedAt, st.SizeInBytes, one)
	}
	clk.Advance(time.Second)
	receiveOne(t, e, ReceiveAndDelete)
	if after := e.Stats(); !after.AccessedAt.Equal(t0.Add(2*time.Second)) || after.SizeInBytes <= 0 || after.SizeInBytes >= st.SizeInBytes {
		t.Errorf("after a receive: accessed %v size %d (was %d)", after.AccessedAt, after.SizeInBytes, st.SizeInBytes)
	}
}

func TestSubscriptionRules(t *testing.T) {
	b := newEventsBroker(t)
	if err := b.CreateSubscription("events", "s", DefaultSubscriptionProperties(), nil); err != nil {
		t.Fatal(err)
	}
	rules, err := b.Rules("events", "S")
	if err != nil || len(rules) != 1 || rules[0].Name != DefaultRuleName || rules[0].Properties.SQLFilter.SQLExpression != "1=1" {
		t.Fatalf("rules of a new subscription %+v, %v; want only $Default 1=1", rules, err)
	}
	sub, _ := b.Entity("events/Subscriptions/s")
	send := func(label string) {
		t.Helper()
		m := msg(label)
		m.Properties = nil
		if err := b.Send("events", m); err != nil {
			t.Fatal(err)
		}
	}
	send("a")
	if n := sub.Stats().Active; n != 1 {
		t.Fatalf("$Default delivered %d, want 1", n)
	}

	// Without rules nothing arrives (Azure); a correlation rule selects by subject; a false
	// filter selects nothing.
	if err := b.DeleteRule("events", "s", "$default"); err != nil {
		t.Fatal(err)
	}
	send("b")
	if n := sub.Stats().Active; n != 1 {
		t.Errorf("a subscription without rules got a message (%d active)", n)
	}
	red := RuleConfig{Name: "red", Properties: RuleProperties{FilterType: FilterCorrelation, CorrelationFilter: &CorrelationFilter{CorrelationID: "red"}}}
	never := RuleConfig{Name: "never", Properties: RuleProperties{FilterType: FilterSQL, SQLFilter: &SQLExpression{SQLExpression: " 1 = 0 "}}}
	for _, r := range []RuleConfig{red, never} {
		if err := b.CreateRule("events", "s", r); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.CreateRule("events", "s", RuleConfig{Name: "RED", Properties: red.Properties}); !errors.Is(err, ErrEntityExists) {
		t.Errorf("second rule named red: %v", err)
	}
	m := msg("c")
	m.Properties = nil
	if err := b.Send("events", m); err != nil {
		t.Fatal(err)
	}
	if n := sub.Stats().Active; n != 1 {
		t.Errorf("uncorrelated message delivered (%d active)", n)
	}
	if err := b.UpdateRule("events", "s", RuleConfig{Name: "never", Properties: RuleProperties{FilterType: FilterSQL, SQLFilter: &SQLExpression{SQLExpression: "1=1"}}}); err != nil {
		t.Fatal(err)
	}
	send("after update")
	if n := sub.Stats().Active; n != 2 {
		t.Errorf("after turning rule never into a true filter: %d active, want 2", n)
	}
	rules, _ = b.Rules("events", "s")
	if len(rules) != 2 || rules[0].Name != "red" || rules[1].Name != "never" {
		t.Errorf("rules %+v", rules)
	}
	for _, tc := range []struct {
		name string
		err  error
		want error
	}{
		{"update missing", b.UpdateRule("events", "s", RuleConfig{Name: "nope", Properties: red.Properties}), ErrEntityNotFound},
		{"delete missing", b.DeleteRule("events", "s", "nope"), ErrEntityNotFound},
		{"missing subscription", b.CreateRule("events", "x", red), ErrEntityNotFound},
		{"missing topic", b.DeleteRule("nope", "s", "red"), ErrEntityNotFound},
	} {
		if !errors.Is(tc.err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, tc.err, tc.want)
		}
	}
	var ce *ConfigError
	sql := RuleConfig{Name: "sql", Properties: RuleProperties{FilterType: FilterSQL, SQLFilter: &SQLExpression{SQLExpression: "a > 1"}}}
	if err := b.CreateRule("events", "s", sql); !errors.As(err, &ce) {
		t.Errorf("SQL filter a > 1: %v, want a ConfigError", err)
	}
}

func TestUpdateTopicAndSubscription(t *testing.T) {
	clk := NewManualClock(t0)
	b, err := New(nil, &Options{Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	tp := DefaultTopicProperties()
	if err := b.CreateTopic("events", tp); err != nil {
		t.Fatal(err)
	}
	sp := DefaultSubscriptionProperties()
	sp.DefaultMessageTimeToLive = time.Hour
	if err := b.CreateSubscription("events", "s", sp, nil); err != nil {
		t.Fatal(err)
	}
	sub, _ := b.Entity("events/Subscriptions/s")
	tp.DefaultMessageTimeToLive = time.Minute
	if err := b.UpdateTopic("events", tp); err != nil {
		t.Fatal(err)
	}
	if got, _ := b.TopicProperties("events"); got.DefaultMessageTimeToLive != time.Minute {
		t.Errorf("topic TTL %v", got.DefaultMessageTimeToLive)
	}
	if got := sub.Properties().DefaultMessageTimeToLive; got != time.Minute {
		t.Errorf("subscription TTL after the topic's became a minute: %v", got)
	}
	if got, _ := b.SubscriptionProperties("events", "s"); got.DefaultMessageTimeToLive != time.Hour {
		t.Errorf("subscription's own TTL %v, want 1h kept", got.DefaultMessageTimeToLive)
	}
	sp.LockDuration = 7 * time.Second
	clk.Advance(time.Second)
	if err := b.UpdateSubscription("events", "s", sp); err != nil {
		t.Fatal(err)
	}
	if got := sub.LockDuration(); got != 7*time.Second {
		t.Errorf("subscription lock %v", got)
	}
	if !sub.Stats().UpdatedAt.Equal(t0.Add(time.Second)) {
		t.Errorf("subscription updated at %v", sub.Stats().UpdatedAt)
	}
	sp.RequiresSession = true
	if err := b.UpdateSubscription("events", "s", sp); !errors.Is(err, ErrImmutableProperty) {
		t.Errorf("RequiresSession change: %v", err)
	}
	tp.RequiresDuplicateDetection = true
	if err := b.UpdateTopic("events", tp); !errors.Is(err, ErrImmutableProperty) {
		t.Errorf("RequiresDuplicateDetection change: %v", err)
	}
	if err := b.UpdateSubscription("events", "nope", DefaultSubscriptionProperties()); !errors.Is(err, ErrEntityNotFound) {
		t.Errorf("missing subscription: %v", err)
	}

	// A topic counts its scheduled messages once, however many subscriptions hold a copy.
	if err := b.CreateSubscription("events", "t", DefaultSubscriptionProperties(), nil); err != nil {
		t.Fatal(err)
	}
	m := msg("later")
	m.Annotations = map[any]any{AnnotationScheduledTime: t0.Add(time.Hour)}
	if err := b.Send("events", m); err != nil {
		t.Fatal(err)
	}
	st, err := b.TopicStats("events")
	if err != nil || st.Scheduled != 1 || st.SizeInBytes == 0 || st.AccessedAt.IsZero() {
		t.Errorf("topic stats %+v, %v", st, err)
	}
}
