package broker

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/Azure/go-amqp"
)

// SubscriptionsSegment separates a topic from a subscription name in an entity path:
// "<topic>/Subscriptions/<subscription>" (compared case-insensitively).
const SubscriptionsSegment = "/Subscriptions/"

// The only SQL filters supported: TrueFilterExpression matches every message (the service's
// $Default rule, and the SDKs' TrueFilter), FalseFilterExpression none (the SDKs' FalseFilter).
const (
	TrueFilterExpression  = "1=1"
	FalseFilterExpression = "1=0"
)

// DefaultRuleName is the name of the rule a subscription created without rules gets.
const DefaultRuleName = "$Default"

// compactSQL removes white space from a SQL expression, for comparing the supported ones.
func compactSQL(expr string) string { return strings.Join(strings.Fields(expr), "") }

// topic fans messages out to its subscriptions. Lock order: topic.mu, then a subscription's
// Entity.mu, then that subscription's dead-letter subqueue.
type topic struct {
	name  string
	props TopicProperties

	mu      sync.Mutex // guards the fields below
	gone    error
	status  EntityStatus // "" means StatusActive
	nextSeq int64        // sequence numbers are per topic: every copy of a message shares one
	dedup   *dedupe
	subs    map[string]*subscription // lower-cased name → subscription
	count   Counters                 // Sent, Scheduled, ScheduleCancelled and Duplicates
	// scheduled maps sequence numbers of messages sent with a future scheduled time to that
	// time, so cancel works even for a message no subscription took. Pruned of past entries.
	scheduled map[int64]time.Time
	pruneAt   int // prune scheduled when it grows beyond this

	// created, updated, accessed: see EntityStats; accessed is the last send (guarded by mu).
	created, updated, accessed time.Time
}

type subscription struct {
	name  string
	e     *Entity
	props SubscriptionProperties // as created or updated (e's TTL is also capped by the topic's)
	rules []RuleConfig           // validated; empty matches nothing (as on Azure)
}

// CreateTopic adds a topic without subscriptions. The name is checked with
// ValidateEntityName and must not clash with a queue or topic (case-insensitive).
func (b *Broker) CreateTopic(name string, p TopicProperties) error {
	if err := ValidateEntityName(name); err != nil {
		return fmt.Errorf("broker: create topic: %w", err)
	}
	if err := checkTTLAndWindow("Properties", p.DefaultMessageTimeToLive, p.DuplicateDetectionHistoryTimeWindow); err != nil {
		return fmt.Errorf("broker: create topic %q: %w", name, err)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return ErrClosed
	}
	if err := b.nameFreeLocked(name); err != nil {
		return fmt.Errorf("broker: create topic %q: %w", name, err)
	}
	t := &topic{name: name, props: p, subs: make(map[string]*subscription), scheduled: make(map[int64]time.Time), pruneAt: 64}
	t.created = now(b.clock)
	t.updated = t.created
	if p.RequiresDuplicateDetection {
		t.dedup = newDedupe(p.DuplicateDetectionHistoryTimeWindow)
	}
	b.topics[strings.ToLower(name)] = t
	b.log.Info("topic created", "topic", name)
	b.warnExtensions(p.ExtensionWarnings("topic " + name))
	return nil
}

// CreateSubscription adds a subscription (and its dead-letter subqueue) to a topic. rules
// are checked as in Config.json (correlation filters, or the SQL filters "1=1" and "1=0"
// only); no rules gives it the rule "$Default" with the true filter, as Azure does. Its TTL
// is the smaller of its own and the topic's.
func (b *Broker) CreateSubscription(topicName, name string, p SubscriptionProperties, rules []RuleConfig) error {
	return b.createSubscription(topicName, name, p, rules, true)
}

func (b *Broker) createSubscription(topicName, name string, p SubscriptionProperties, rules []RuleConfig, checkForwards bool) error {
	sc := SubscriptionConfig{Name: name, Properties: p, Rules: rules}
	if err := (TopicConfig{Name: topicName, Properties: TopicProperties{
		DefaultMessageTimeToLive: MinMessageTTL, DuplicateDetectionHistoryTimeWindow: MinDuplicateDetectionWindow,
	}, Subscriptions: []SubscriptionConfig{sc}}).validate("Topic"); err != nil {
		return fmt.Errorf("broker: create subscription %q: %w", name, err)
	}
	t, err := b.topic(topicName)
	if err != nil {
		return fmt.Errorf("broker: create subscription %q: %w", name, err)
	}
	if checkForwards {
		if err := b.checkForwards(t.name+SubscriptionsSegment+name, p.queueProperties()); err != nil {
			return fmt.Errorf("broker: create subscription %q: %w", name, err)
		}
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.gone != nil {
		return fmt.Errorf("broker: create subscription %q: %w", name, t.gone)
	}
	key := strings.ToLower(name)
	if prev, ok := t.subs[key]; ok {
		return fmt.Errorf("broker: create subscription %q: %w (as %q)", name, ErrEntityExists, prev.name)
	}
	qp := p.queueProperties()
	qp.DefaultMessageTimeToLive = min(qp.DefaultMessageTimeToLive, t.props.DefaultMessageTimeToLive)
	path := t.name + SubscriptionsSegment + name
	e := newEntity(b, path, KindSubscription, qp)
	e.dlq = newEntity(b, path+DeadLetterQueueSuffix, KindDeadLetterQueue, qp.deadLetterProperties())
	e.topicDisabled = t.status == StatusDisabled
	if len(rules) == 0 {
		rules = []RuleConfig{defaultRule()}
	}
	t.subs[key] = &subscription{name: name, e: e, props: p, rules: slices.Clone(rules)}
	b.log.Info("subscription created", "topic", t.name, "subscription", name, "rules", len(rules))
	b.warnExtensions(qp.ExtensionWarnings("subscription " + path))
	return nil
}

// queueProperties maps subscription properties onto the entity engine's.
func (p SubscriptionProperties) queueProperties() QueueProperties {
	return QueueProperties{
		LockDuration: p.LockDuration, MaxDeliveryCount: p.MaxDeliveryCount,
		DefaultMessageTimeToLive:         p.DefaultMessageTimeToLive,
		DeadLetteringOnMessageExpiration: p.DeadLetteringOnMessageExpiration,
		RequiresSession:                  p.RequiresSession,
		ForwardTo:                        p.ForwardTo, ForwardDeadLetteredMessagesTo: p.ForwardDeadLetteredMessagesTo,
	}
}

// DefaultSubscriptionProperties returns Azure's defaults for a new subscription.
func DefaultSubscriptionProperties() SubscriptionProperties {
	d := DefaultQueueProperties()
	return SubscriptionProperties{LockDuration: d.LockDuration, MaxDeliveryCount: d.MaxDeliveryCount, DefaultMessageTimeToLive: d.DefaultMessageTimeToLive}
}

// DefaultTopicProperties returns Azure's defaults for a new topic.
func DefaultTopicProperties() TopicProperties {
	d := DefaultQueueProperties()
	return TopicProperties{DefaultMessageTimeToLive: d.DefaultMessageTimeToLive, DuplicateDetectionHistoryTimeWindow: d.DuplicateDetectionHistoryTimeWindow}
}

// DeleteTopic removes a topic with its subscriptions and their messages.
func (b *Broker) DeleteTopic(name string) error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return ErrClosed
	}
	key := strings.ToLower(name)
	t, ok := b.topics[key]
	if ok {
		delete(b.topics, key)
	}
	b.mu.Unlock()
	if !ok {
		return fmt.Errorf("broker: delete topic %q: %w", name, ErrEntityNotFound)
	}
	t.shutdown(fmt.Errorf("topic %q was deleted: %w", t.name, ErrEntityNotFound))
	return nil
}

// DeleteSubscription removes one subscription and its messages.
func (b *Broker) DeleteSubscription(topicName, name string) error {
	t, err := b.topic(topicName)
	if err != nil {
		return fmt.Errorf("broker: delete subscription %q: %w", name, err)
	}
	t.mu.Lock()
	key := strings.ToLower(name)
	s, ok := t.subs[key]
	if ok {
		delete(t.subs, key)
	}
	t.mu.Unlock()
	if !ok {
		return fmt.Errorf("broker: delete subscription %q of topic %q: %w", name, t.name, ErrEntityNotFound)
	}
	s.e.shutdown(fmt.Errorf("subscription %q was deleted: %w", s.e.path, ErrEntityNotFound))
	return nil
}

// Topics returns the names of the topics, as created, sorted.
func (b *Broker) Topics() []string {
	b.mu.RLock()
	defer b.mu.RUnlock()
	names := make([]string, 0, len(b.topics))
	for _, t := range b.topics {
		names = append(names, t.name)
	}
	slices.Sort(names)
	return names
}

// Subscriptions returns the subscription names of a topic, sorted.
func (b *Broker) Subscriptions(topicName string) ([]string, error) {
	t, err := b.topic(topicName)
	if err != nil {
		return nil, err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	names := make([]string, 0, len(t.subs))
	for _, s := range t.subs {
		names = append(names, s.name)
	}
	slices.Sort(names)
	return names, nil
}

func (b *Broker) topic(name string) (*topic, error) {
	b.mu.RLock()
	defer b.mu.RUnlock()
	if b.closed {
		return nil, ErrClosed
	}
	t, ok := b.topics[strings.ToLower(name)]
	if !ok {
		return nil, fmt.Errorf("broker: topic %q: %w", name, ErrEntityNotFound)
	}
	return t, nil
}

// subscription resolves a subscription entity of t.
func (t *topic) subscription(name string) (*Entity, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	s, ok := t.subs[strings.ToLower(name)]
	if !ok {
		return nil, false
	}
	return s.e, true
}

// send fans msgs out: each message gets one sequence number and an own copy in every
// subscription whose rules match. It returns the sequence numbers (0 for a duplicate).
// Copies the subscriptions auto-forward leave once t.mu is released.
func (t *topic) send(b *Broker, msgs []*amqp.Message, hops int) ([]int64, error) {
	seqs, out, err := t.sendLocked(b.clock, msgs, hops)
	if len(out) > 0 {
		b.forward(out)
	}
	return seqs, err
}

func (t *topic) sendLocked(clock Clock, msgs []*amqp.Message, hops int) (_ []int64, out []forwardItem, _ error) {
	if err := checkMessages(t.name, msgs); err != nil {
		return nil, nil, err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.gone != nil {
		return nil, nil, fmt.Errorf("broker: send to %q: %w", t.name, t.gone)
	}
	now := now(clock)
	t.accessed = now
	seqs := make([]int64, len(msgs))
	subs := t.sortedSubsLocked()
	for i, m := range msgs {
		if key := messageIDKey(m); t.dedup != nil && key != "" && t.dedup.seen(key, now) {
			t.count.Duplicates++
			continue
		}
		t.nextSeq++
		seqs[i] = t.nextSeq
		t.count.Sent++
		if at, ok := m.Annotations[AnnotationScheduledTime].(time.Time); ok && at.After(now) {
			t.noteScheduledLocked(t.nextSeq, at, now)
		}
		prepareStored(m, t.nextSeq, now)
		for _, s := range subs {
			if s.matches(m) {
				out = append(out, s.e.storeCopy(copyMessage(m), t.nextSeq, now, hops)...)
			}
		}
	}
	return seqs, out, nil
}

func (t *topic) sortedSubsLocked() []*subscription {
	subs := make([]*subscription, 0, len(t.subs))
	for _, s := range t.subs {
		subs = append(subs, s)
	}
	slices.SortFunc(subs, func(a, b *subscription) int { return strings.Compare(a.name, b.name) })
	return subs
}

func (t *topic) noteScheduledLocked(seq int64, at, now time.Time) {
	t.count.Scheduled++
	t.scheduled[seq] = at
	if len(t.scheduled) > t.pruneAt {
		for s, due := range t.scheduled {
			if !due.After(now) {
				delete(t.scheduled, s)
			}
		}
		t.pruneAt = 2*len(t.scheduled) + 64
	}
}

// cancelScheduled cancels scheduled messages of the topic (in every subscription holding a
// copy). A number that is not a scheduled message still before its time ⇒ an error wrapping
// ErrMessageNotFound, and nothing changes.
func (t *topic) cancelScheduled(clock Clock, seqs []int64) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.gone != nil {
		return fmt.Errorf("broker: cancel scheduled on %q: %w", t.name, t.gone)
	}
	now := now(clock)
	var missing []int64
	for _, s := range seqs {
		if at, ok := t.scheduled[s]; !ok || !at.After(now) {
			missing = append(missing, s)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("broker: cancel scheduled on %q: sequence numbers %v are not scheduled messages of this topic: %w",
			t.name, missing, ErrMessageNotFound)
	}
	for _, s := range seqs {
		delete(t.scheduled, s)
		t.count.ScheduleCancelled++
		for _, sub := range t.subs {
			if sub.e.hasScheduled(s) {
				// Fails only when the copy became due in between: it stays delivered.
				_ = sub.e.CancelScheduled([]int64{s})
			}
		}
	}
	return nil
}

// storeCopy stores a topic message's copy with the topic's sequence number and returns what
// the subscription auto-forwards (the caller sends it once no lock is held).
func (e *Entity) storeCopy(m *amqp.Message, seq int64, t time.Time, hops int) []forwardItem {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.gone != nil {
		return nil
	}
	if seq > e.nextSeq {
		e.nextSeq = seq
	}
	e.storeLocked(m, seq, t, hops)
	e.notifyLocked()
	out := e.outbox
	e.outbox = nil
	return out
}

func (t *topic) shutdown(err error) {
	t.mu.Lock()
	if t.gone == nil {
		t.gone = err
	}
	subs := t.subs
	t.subs = map[string]*subscription{}
	t.mu.Unlock()
	for _, s := range subs {
		s.e.shutdown(err)
	}
}

func (t *topic) stats() (EntityStats, []EntityStats) {
	t.mu.Lock()
	st := EntityStats{Path: t.name, Kind: KindTopic, Counters: t.count, CreatedAt: t.created, UpdatedAt: t.updated, AccessedAt: t.accessed}
	subs := t.sortedSubsLocked()
	t.mu.Unlock()
	out := make([]EntityStats, 0, len(subs))
	for _, s := range subs {
		ss := s.e.Stats()
		st.Active += ss.Active
		st.Locked += ss.Locked
		st.Deferred += ss.Deferred
		st.Scheduled += ss.Scheduled
		st.DeadLettered += ss.DeadLettered
		st.SizeInBytes += ss.SizeInBytes
		out = append(out, ss)
	}
	return st, out
}

// matches reports whether any rule of s accepts m. A subscription whose rules were all
// removed receives nothing.
func (s *subscription) matches(m *amqp.Message) bool {
	for _, r := range s.rules {
		if ruleMatches(r.Properties, m) {
			return true
		}
	}
	return false
}

func ruleMatches(r RuleProperties, m *amqp.Message) bool {
	if r.FilterType == FilterSQL {
		// validated: only the true and false filters are accepted
		return compactSQL(r.SQLFilter.SQLExpression) == TrueFilterExpression
	}
	return r.CorrelationFilter.Matches(m)
}

// Matches reports whether m satisfies every condition set in f: system properties compare
// exactly (case-sensitive), application properties by value (numbers across integer and
// floating types).
func (f *CorrelationFilter) Matches(m *amqp.Message) bool {
	p := m.Properties
	if p == nil {
		p = &amqp.MessageProperties{}
	}
	checks := []struct {
		want string
		got  any
	}{
		{f.ContentType, p.ContentType}, {f.CorrelationID, p.CorrelationID}, {f.Label, p.Subject},
		{f.MessageID, p.MessageID}, {f.ReplyTo, p.ReplyTo}, {f.ReplyToSessionID, p.ReplyToGroupID},
		{f.SessionID, p.GroupID}, {f.To, p.To},
	}
	for _, c := range checks {
		if c.want != "" && propString(c.got) != c.want {
			return false
		}
	}
	for k, want := range f.Properties {
		got, ok := m.ApplicationProperties[k]
		if !ok || !sameValue(want, got) {
			return false
		}
	}
	return true
}

// propString renders a system property (string, *string, uuid, ulong, binary) for comparison.
func propString(v any) string {
	switch v := v.(type) {
	case nil:
		return ""
	case string:
		return v
	case *string:
		if v == nil {
			return ""
		}
		return *v
	case amqp.UUID:
		return v.String()
	case []byte:
		return string(v)
	default:
		return fmt.Sprint(v)
	}
}

// sameValue compares a filter value (string, bool, int64, float64) with a property value.
func sameValue(want, got any) bool {
	if wf, ok := number(want); ok {
		gf, ok := number(got)
		return ok && wf == gf
	}
	switch w := want.(type) {
	case string:
		return propString(got) == w && isStringish(got)
	case bool:
		g, ok := got.(bool)
		return ok && g == w
	}
	return false
}

func isStringish(v any) bool {
	switch v.(type) {
	case string, amqp.Symbol:
		return true
	}
	return false
}

func number(v any) (float64, bool) {
	switch n := v.(type) {
	case int8:
		return float64(n), true
	case int16:
		return float64(n), true
	case int32:
		return float64(n), true
	case int64:
		return float64(n), true
	case int:
		return float64(n), true
	case uint8:
		return float64(n), true
	case uint16:
		return float64(n), true
	case uint32:
		return float64(n), true
	case uint64:
		return float64(n), true
	case float32:
		return float64(n), true
	case float64:
		if math.IsNaN(n) {
			return 0, false
		}
		return n, true
	}
	return 0, false
}
