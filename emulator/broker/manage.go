package broker

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/Azure/go-amqp"
)

// ErrImmutableProperty reports an update that changes a property Azure fixes at creation
// (RequiresSession, RequiresDuplicateDetection).
var ErrImmutableProperty = errors.New("property cannot be changed")

// ImmutableError is an update that changes a property fixed at creation. Its text is Azure's
// ("The value for the RequiresSession property of an existing Queue cannot be changed",
// Microsoft's TestAdminClient_UpdateQueue and TestAdminClient_UpdateSubscription). It wraps
// ErrImmutableProperty.
type ImmutableError struct {
	Property, Kind string // e.g. RequiresSession, Queue
}

func (e *ImmutableError) Error() string {
	return fmt.Sprintf("The value for the %s property of an existing %s cannot be changed.", e.Property, e.Kind)
}

func (e *ImmutableError) Unwrap() error { return ErrImmutableProperty }

func immutable(property, kind string) error { return &ImmutableError{Property: property, Kind: kind} }

// defaultRule is the rule Azure gives a subscription created without one.
func defaultRule() RuleConfig {
	return RuleConfig{Name: DefaultRuleName, Properties: RuleProperties{
		FilterType: FilterSQL, SQLFilter: &SQLExpression{SQLExpression: TrueFilterExpression},
	}}
}

// UpdateQueue replaces a queue's properties (its dead-letter subqueue follows). Locks already
// taken keep their expiry and active messages their TTL; the new values apply from the next
// lock, delivery failure and activation. RequiresSession and RequiresDuplicateDetection cannot
// change (ErrImmutableProperty).
func (b *Broker) UpdateQueue(name string, p QueueProperties) error {
	b.mu.RLock()
	q, ok := b.queues[strings.ToLower(name)]
	closed := b.closed
	b.mu.RUnlock()
	if closed {
		return ErrClosed
	}
	if !ok {
		return fmt.Errorf("broker: update queue %q: %w", name, ErrEntityNotFound)
	}
	old := q.Properties()
	switch {
	case old.RequiresSession != p.RequiresSession:
		return fmt.Errorf("broker: update queue %q: %w", name, immutable("RequiresSession", "Queue"))
	case old.RequiresDuplicateDetection != p.RequiresDuplicateDetection:
		return fmt.Errorf("broker: update queue %q: %w", name, immutable("RequiresDuplicateDetection", "Queue"))
	}
	if err := p.validate("Properties"); err != nil {
		return fmt.Errorf("broker: update queue %q: %w", name, err)
	}
	if err := b.checkForwards(q.path, p); err != nil {
		return fmt.Errorf("broker: update queue %q: %w", name, err)
	}
	q.setProperties(p, true)
	return nil
}

// setProperties replaces e's properties and its dead-letter subqueue's; stamp records the
// update time.
func (e *Entity) setProperties(p QueueProperties, stamp bool) {
	e.mu.Lock()
	e.props = p
	if e.dedup != nil {
		e.dedup.window = p.DuplicateDetectionHistoryTimeWindow
	}
	if stamp {
		e.updated = now(e.clock)
	}
	e.mu.Unlock()
	if e.dlq != nil {
		e.dlq.mu.Lock()
		e.dlq.props = p.deadLetterProperties()
		e.dlq.mu.Unlock()
	}
}

// TopicProperties returns a topic's properties.
func (b *Broker) TopicProperties(name string) (TopicProperties, error) {
	t, err := b.topic(name)
	if err != nil {
		return TopicProperties{}, err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.props, nil
}

// UpdateTopic replaces a topic's properties; its subscriptions' TTL cap follows.
// RequiresDuplicateDetection cannot change (ErrImmutableProperty).
func (b *Broker) UpdateTopic(name string, p TopicProperties) error {
	if err := checkTTLAndWindow("Properties", p.DefaultMessageTimeToLive, p.DuplicateDetectionHistoryTimeWindow); err != nil {
		return fmt.Errorf("broker: update topic %q: %w", name, err)
	}
	t, err := b.topic(name)
	if err != nil {
		return fmt.Errorf("broker: update topic %q: %w", name, err)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.gone != nil {
		return fmt.Errorf("broker: update topic %q: %w", name, t.gone)
	}
	if t.props.RequiresDuplicateDetection != p.RequiresDuplicateDetection {
		return fmt.Errorf("broker: update topic %q: %w", name, immutable("RequiresDuplicateDetection", "Topic"))
	}
	t.props = p
	if t.dedup != nil {
		t.dedup.window = p.DuplicateDetectionHistoryTimeWindow
	}
	t.updated = now(b.clock)
	for _, s := range t.subs {
		qp := s.props.queueProperties()
		qp.DefaultMessageTimeToLive = min(qp.DefaultMessageTimeToLive, p.DefaultMessageTimeToLive)
		s.e.setProperties(qp, false)
	}
	return nil
}

// SubscriptionProperties returns a subscription's properties as created or last updated.
func (b *Broker) SubscriptionProperties(topicName, name string) (SubscriptionProperties, error) {
	var p SubscriptionProperties
	err := b.withSubscription(topicName, name, func(t *topic, s *subscription) error {
		p = s.props
		return nil
	})
	return p, err
}

// UpdateSubscription replaces a subscription's properties (see UpdateQueue). RequiresSession
// cannot change (ErrImmutableProperty).
func (b *Broker) UpdateSubscription(topicName, name string, p SubscriptionProperties) error {
	if err := b.checkForwards(topicName+SubscriptionsSegment+name, p.queueProperties()); err != nil {
		return fmt.Errorf("broker: update subscription %q: %w", name, err)
	}
	return b.withSubscription(topicName, name, func(t *topic, s *subscription) error {
		if s.props.RequiresSession != p.RequiresSession {
			return fmt.Errorf("broker: update subscription %q: %w", name, immutable("RequiresSession", "Subscription"))
		}
		check := TopicConfig{Name: t.name, Properties: TopicProperties{
			DefaultMessageTimeToLive: MinMessageTTL, DuplicateDetectionHistoryTimeWindow: MinDuplicateDetectionWindow,
		}, Subscriptions: []SubscriptionConfig{{Name: s.name, Properties: p}}}
		if err := check.validate("Topic"); err != nil {
			var ce *ConfigError
			if errors.As(err, &ce) {
				ce.Path = strings.Replace(ce.Path, "Topic.Subscriptions[0].", "", 1)
			}
			return fmt.Errorf("broker: update subscription %q: %w", name, err)
		}
		s.props = p
		qp := p.queueProperties()
		qp.DefaultMessageTimeToLive = min(qp.DefaultMessageTimeToLive, t.props.DefaultMessageTimeToLive)
		s.e.setProperties(qp, true)
		return nil
	})
}

// Rules returns a subscription's rules in the order they were added.
func (b *Broker) Rules(topicName, subscriptionName string) ([]RuleConfig, error) {
	var rules []RuleConfig
	err := b.withSubscription(topicName, subscriptionName, func(t *topic, s *subscription) error {
		rules = slices.Clone(s.rules)
		return nil
	})
	return rules, err
}

// CreateRule adds a rule to a subscription (checked as in Config.json). A rule of that name
// (case-insensitive) ⇒ ErrEntityExists.
func (b *Broker) CreateRule(topicName, subscriptionName string, r RuleConfig) error {
	if err := checkRule(r); err != nil {
		return fmt.Errorf("broker: create rule %q: %w", r.Name, err)
	}
	return b.withSubscription(topicName, subscriptionName, func(t *topic, s *subscription) error {
		if i := ruleIndex(s.rules, r.Name); i >= 0 {
			return fmt.Errorf("broker: create rule %q of %q: %w (as %q)", r.Name, s.e.path, ErrEntityExists, s.rules[i].Name)
		}
		s.rules = append(slices.Clone(s.rules), r)
		s.e.touch()
		return nil
	})
}

// UpdateRule replaces the filter (and action) of an existing rule.
func (b *Broker) UpdateRule(topicName, subscriptionName string, r RuleConfig) error {
	if err := checkRule(r); err != nil {
		return fmt.Errorf("broker: update rule %q: %w", r.Name, err)
	}
	return b.withSubscription(topicName, subscriptionName, func(t *topic, s *subscription) error {
		i := ruleIndex(s.rules, r.Name)
		if i < 0 {
			return fmt.Errorf("broker: update rule %q of %q: %w", r.Name, s.e.path, ErrEntityNotFound)
		}
		rules := slices.Clone(s.rules)
		rules[i] = RuleConfig{Name: rules[i].Name, Properties: r.Properties}
		s.rules = rules
		s.e.touch()
		return nil
	})
}

// DeleteRule removes a rule. A subscription left without rules receives nothing, as on Azure.
func (b *Broker) DeleteRule(topicName, subscriptionName, ruleName string) error {
	return b.withSubscription(topicName, subscriptionName, func(t *topic, s *subscription) error {
		i := ruleIndex(s.rules, ruleName)
		if i < 0 {
			return fmt.Errorf("broker: delete rule %q of %q: %w", ruleName, s.e.path, ErrEntityNotFound)
		}
		s.rules = slices.Delete(slices.Clone(s.rules), i, i+1)
		s.e.touch()
		return nil
	})
}

// TopicStats returns a topic's counts: its subscriptions' summed, except Scheduled, which
// counts the messages sent to the topic that are still scheduled (once, however many
// subscriptions hold a copy).
func (b *Broker) TopicStats(name string) (EntityStats, error) {
	t, err := b.topic(name)
	if err != nil {
		return EntityStats{}, err
	}
	st, _ := t.stats()
	t.mu.Lock()
	st.Scheduled = 0
	n := now(b.clock)
	for _, at := range t.scheduled {
		if at.After(n) {
			st.Scheduled++
		}
	}
	t.mu.Unlock()
	return st, nil
}

// touch stamps an update of e that is not a property change (its rules).
func (e *Entity) touch() {
	e.mu.Lock()
	e.updated = now(e.clock)
	e.mu.Unlock()
}

// checkRule checks a rule added at run time: its name (checkRuleName) and a filter as in
// Config.json.
func checkRule(r RuleConfig) error {
	if err := checkRuleName("Rule.Name", r.Name, map[string]string{}); err != nil {
		return err
	}
	return r.Properties.validate("Rule.Properties")
}

// checkRuleName checks a rule name: 1 to 50 characters without the URL delimiters / \ ? #
// (Azure's rule names may start with '$', as "$Default" does), unique case-insensitively in
// seen.
func checkRuleName(path, name string, seen map[string]string) error {
	if name == "" || len(name) > 50 || strings.ContainsAny(name, "/\\?#") {
		return &ConfigError{Path: path, Msg: fmt.Sprintf("%q: a rule name has 1 to 50 characters and none of / \\ ? #", name)}
	}
	key := strings.ToLower(name)
	if prev, dup := seen[key]; dup {
		return &ConfigError{Path: path, Msg: fmt.Sprintf("%q duplicates %s (names are case-insensitive)", name, prev)}
	}
	seen[key] = path
	return nil
}

func ruleIndex(rules []RuleConfig, name string) int {
	return slices.IndexFunc(rules, func(r RuleConfig) bool { return strings.EqualFold(r.Name, name) })
}

// withSubscription runs f with the topic's lock held, or returns ErrEntityNotFound.
func (b *Broker) withSubscription(topicName, name string, f func(t *topic, s *subscription) error) error {
	t, err := b.topic(topicName)
	if err != nil {
		return err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.gone != nil {
		return t.gone
	}
	s, ok := t.subs[strings.ToLower(name)]
	if !ok {
		return fmt.Errorf("broker: subscription %q of topic %q: %w", name, t.name, ErrEntityNotFound)
	}
	return f(t, s)
}

// encodedSize is the size of m as stored (0 if it cannot be encoded).
func encodedSize(m *amqp.Message) int64 {
	b, err := m.MarshalBinary()
	if err != nil {
		return 0
	}
	return int64(len(b))
}
