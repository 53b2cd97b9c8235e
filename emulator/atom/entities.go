package atom

import (
	"errors"
	"fmt"
	"math"
	"net/url"
	"strings"
	"time"

	"github.com/holdfast-dev/holdfast/emulator/broker"
)

// meta holds the properties of an entity that the broker does not act on, as last written,
// for reporting them back. It belongs to the broker entity created at created; an entity
// re-created under the same name (from another API) starts from the defaults again.
type meta struct {
	created          time.Time
	maxSizeMB        int64
	batched          bool
	status           broker.EntityStatus // as read from a request; the broker keeps the entity's
	autoDelete       time.Duration
	partitioned      bool
	userMetadata     *string
	express          bool
	supportOrdering  bool
	filterExceptions bool
	authRules        string // the AuthorizationRules element as written back, or ""
	forwardTo        string // ForwardTo as the client wrote it (an absolute URI)
	forwardDLQTo     string
	maxMessageKB     int64 // as set (Premium lets clients set it); 0: the server's limit
}

// defaultMeta is what Azure reports for a new entity's descriptive properties.
func defaultMeta() meta {
	return meta{maxSizeMB: 1024, batched: true, status: broker.StatusActive, autoDelete: broker.MaxDuration,
		supportOrdering: true, filterExceptions: true}
}

func (s *server) metaFor(path string, created time.Time) meta {
	s.mu.Lock()
	defer s.mu.Unlock()
	if m, ok := s.meta[strings.ToLower(path)]; ok && m.created.Equal(created) {
		return *m
	}
	return defaultMeta()
}

func (s *server) remember(path string, created time.Time, m meta) {
	m.created = created
	s.mu.Lock()
	s.meta[strings.ToLower(path)] = &m
	s.mu.Unlock()
}

func (s *server) forget(path string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	prefix := strings.ToLower(path)
	for k := range s.meta {
		if k == prefix || strings.HasPrefix(k, prefix+"/") {
			delete(s.meta, k)
		}
	}
}

// readMeta reads the descriptive properties present in d over m (kind: Queue, Topic or
// Subscription, for error texts).
func readMeta(f *fields, m meta, update bool, kind string) meta {
	m.maxSizeMB = f.integer("MaxSizeInMegabytes", m.maxSizeMB, 1, math.MaxInt32)
	m.batched = f.boolean("EnableBatchedOperations", m.batched)
	if v, ok := f.n.text("Status"); ok && v != "" {
		st, err := broker.ParseEntityStatus(v)
		if err != nil {
			f.fail("Status", "%v", err)
		}
		m.status = st
	}
	m.autoDelete = f.duration("AutoDeleteOnIdle", m.autoDelete)
	if m.autoDelete < 5*time.Minute {
		f.fail("AutoDeleteOnIdle", "%s is shorter than Azure's minimum PT5M", formatDuration(m.autoDelete))
	}
	partitioned := f.boolean("EnablePartitioning", m.partitioned)
	if update && partitioned != m.partitioned && f.err == nil {
		f.err = badRequest("Partitioning cannot be changed for %s. ", kind) // Azure's words
	}
	if !update && partitioned {
		// Azure creates 16 partitions of MaxSizeInMegabytes each and reports their total.
		m.maxSizeMB *= 16
	}
	m.partitioned = partitioned
	if v, ok := f.n.text("UserMetadata"); ok {
		m.userMetadata = &v
	}
	m.express = f.boolean("EnableExpress", m.express)
	m.maxMessageKB = f.integer("MaxMessageSizeInKilobytes", m.maxMessageKB, 1, math.MaxInt32)
	m.supportOrdering = f.boolean("SupportOrdering", m.supportOrdering)
	m.filterExceptions = f.boolean("DeadLetteringOnFilterEvaluationExceptions", m.filterExceptions)
	if n := f.n.child("AuthorizationRules"); n != nil {
		var x writer
		writeNode(&x, n)
		m.authRules = x.b.String()
		if len(n.Nodes) == 0 {
			m.authRules = ""
		}
	}
	return m
}

// forwardTarget reads ForwardTo or ForwardDeadLetteredMessagesTo: the SDKs send an absolute
// URI (sb://namespace/queue, https://namespace/queue) or a bare name. It returns the entity
// name for the broker and the text to report back.
func forwardTarget(f *fields, name, current, currentText string) (string, string) {
	v, ok := f.n.text(name)
	if !ok {
		return current, currentText
	}
	if v == "" {
		return "", ""
	}
	target := v
	if u, err := url.Parse(v); err == nil && u.Scheme != "" && u.Host != "" {
		target = strings.Trim(u.Path, "/")
	}
	if target == "" {
		f.fail(name, "%q names no entity", v)
	}
	return target, v
}

// atomQueueDefaults are Azure's defaults for a queue created through the ATOM API, whose
// DefaultMessageTimeToLive is TimeSpan.MaxValue (never).
func atomQueueDefaults() broker.QueueProperties {
	p := broker.DefaultQueueProperties()
	p.DefaultMessageTimeToLive = broker.MaxDuration
	return p
}

func (s *server) putQueue(name string, d *node, update bool) (entryBody, error) {
	p, m := atomQueueDefaults(), defaultMeta()
	if update {
		e, err := s.queue(name)
		if err != nil {
			return entryBody{}, err
		}
		p = e.Properties()
		m = s.metaFor(name, e.Stats().CreatedAt)
		m.status = e.Status()
	}
	f := &fields{n: d}
	readReceivable(f, &p, &m)
	p.RequiresDuplicateDetection = f.boolean("RequiresDuplicateDetection", p.RequiresDuplicateDetection)
	p.DuplicateDetectionHistoryTimeWindow = f.duration("DuplicateDetectionHistoryTimeWindow", p.DuplicateDetectionHistoryTimeWindow)
	m = readMeta(f, m, update, "Queue")
	if f.err != nil {
		return entryBody{}, f.err
	}
	var err error
	if update {
		err = s.b.UpdateQueue(name, p)
	} else {
		err = s.b.CreateQueue(name, p)
	}
	if err := s.brokerErr(err, "Queue", name); err != nil {
		return entryBody{}, err
	}
	if err := s.b.SetStatus(name, m.status); err != nil {
		return entryBody{}, err
	}
	e, err := s.queue(name)
	if err != nil {
		return entryBody{}, err
	}
	s.remember(name, e.Stats().CreatedAt, m)
	return s.queueEntry(name)
}

// readReceivable reads the properties queues and subscriptions share into p (and the forwarding
// addresses as written into m).
func readReceivable(f *fields, p *broker.QueueProperties, m *meta) {
	p.LockDuration = f.duration("LockDuration", p.LockDuration)
	p.MaxDeliveryCount = int(f.integer("MaxDeliveryCount", int64(p.MaxDeliveryCount), 1, math.MaxInt32))
	p.DefaultMessageTimeToLive = f.duration("DefaultMessageTimeToLive", p.DefaultMessageTimeToLive)
	p.DeadLetteringOnMessageExpiration = f.boolean("DeadLetteringOnMessageExpiration", p.DeadLetteringOnMessageExpiration)
	p.RequiresSession = f.boolean("RequiresSession", p.RequiresSession)
	p.ForwardTo, m.forwardTo = forwardTarget(f, "ForwardTo", p.ForwardTo, m.forwardTo)
	p.ForwardDeadLetteredMessagesTo, m.forwardDLQTo = forwardTarget(f, "ForwardDeadLetteredMessagesTo", p.ForwardDeadLetteredMessagesTo, m.forwardDLQTo)
}

// writeTimes writes the entity's CreatedAt, UpdatedAt and AccessedAt.
func writeTimes(x *writer, st broker.EntityStats) {
	x.time("CreatedAt", st.CreatedAt)
	x.time("UpdatedAt", st.UpdatedAt)
	x.time("AccessedAt", st.AccessedAt)
}

// messageKB is the MaxMessageSizeInKilobytes reported: as set, else the server's limit.
func (s *server) messageKB(m meta) int64 {
	if m.maxMessageKB > 0 {
		return m.maxMessageKB
	}
	return s.maxKB
}

// brokerErr maps a broker error of a create or update to the service's answer.
func (s *server) brokerErr(err error, kind, name string) error {
	var ce *broker.ConfigError
	var ie *broker.ImmutableError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &ie):
		return badRequest("%s", ie.Error())
	case errors.Is(err, broker.ErrEntityExists):
		return conflict("the messaging entity %q already exists (%v)", name, err)
	case errors.Is(err, broker.ErrEntityNotFound):
		return notFound("the messaging entity %q could not be found (%v)", name, err)
	case errors.Is(err, broker.ErrImmutableProperty), errors.As(err, &ce):
		return badRequest("%s %q: %v", kind, name, err)
	default:
		return err
	}
}

// queue returns the queue entity name (ErrEntityNotFound for anything else).
func (s *server) queue(name string) (*broker.Entity, error) {
	e, err := s.b.Entity(name)
	if err != nil {
		return nil, err
	}
	if e.Kind() != broker.KindQueue {
		return nil, fmt.Errorf("%q is not a queue: %w", name, broker.ErrEntityNotFound)
	}
	return e, nil
}

func (s *server) queueEntry(name string) (entryBody, error) {
	e, err := s.queue(name)
	if err != nil {
		return entryBody{}, err
	}
	p := e.Properties()
	st := e.Stats()
	dl := e.DeadLetterQueue().Stats()
	m := s.metaFor(name, st.CreatedAt)
	active := st.Active + st.Deferred
	var x writer
	x.open("QueueDescription", "xmlns", nsServiceBus, "xmlns:i", nsInstance)
	x.duration("LockDuration", p.LockDuration)
	x.integer("MaxSizeInMegabytes", m.maxSizeMB)
	x.boolean("RequiresDuplicateDetection", p.RequiresDuplicateDetection)
	x.boolean("RequiresSession", p.RequiresSession)
	x.duration("DefaultMessageTimeToLive", p.DefaultMessageTimeToLive)
	x.boolean("DeadLetteringOnMessageExpiration", p.DeadLetteringOnMessageExpiration)
	x.duration("DuplicateDetectionHistoryTimeWindow", p.DuplicateDetectionHistoryTimeWindow)
	x.integer("MaxDeliveryCount", int64(p.MaxDeliveryCount))
	x.boolean("EnableBatchedOperations", m.batched)
	x.integer("SizeInBytes", st.SizeInBytes+dl.SizeInBytes)
	x.integer("MessageCount", int64(active+st.DeadLettered+st.Scheduled))
	x.boolean("IsAnonymousAccessible", false)
	writeAuthRules(&x, m)
	x.elem("Status", string(e.Status()))
	if m.forwardTo != "" {
		x.elem("ForwardTo", m.forwardTo)
	}
	writeTimes(&x, st)
	x.boolean("SupportOrdering", m.supportOrdering)
	writeCounts(&x, active, st.DeadLettered, st.Scheduled)
	x.duration("AutoDeleteOnIdle", m.autoDelete)
	x.boolean("EnablePartitioning", m.partitioned)
	x.elem("EntityAvailabilityStatus", "Available")
	x.boolean("EnableExpress", m.express)
	if m.forwardDLQTo != "" {
		x.elem("ForwardDeadLetteredMessagesTo", m.forwardDLQTo)
	}
	if m.userMetadata != nil {
		x.elem("UserMetadata", *m.userMetadata)
	}
	x.integer("MaxMessageSizeInKilobytes", s.messageKB(m))
	x.close("QueueDescription")
	return entryBody{xml: x.b.String(), created: st.CreatedAt, updated: st.UpdatedAt}, nil
}

// writeCounts writes CountDetails as the service does: its own namespace prefix, declared on
// the element (the JavaScript SDK reads the prefix from there).
func writeCounts(x *writer, active, deadLetter, scheduled int) {
	x.open("CountDetails", "xmlns:d2p1", nsCountDetail)
	x.integer("d2p1:ActiveMessageCount", int64(active))
	x.integer("d2p1:DeadLetterMessageCount", int64(deadLetter))
	x.integer("d2p1:ScheduledMessageCount", int64(scheduled))
	x.integer("d2p1:TransferMessageCount", 0)
	x.integer("d2p1:TransferDeadLetterMessageCount", 0)
	x.close("CountDetails")
}

func writeAuthRules(x *writer, m meta) {
	if m.authRules == "" {
		x.open("AuthorizationRules")
		x.close("AuthorizationRules")
		return
	}
	x.raw(m.authRules)
}

// writeNode writes n back with local names (the default namespace of its parent applies)
// and its xsi:type, the only attribute the management schema uses.
func writeNode(x *writer, n *node) {
	var attrs []string
	if t := n.rawXSIType(); t != "" {
		attrs = append(attrs, "i:type", t)
	}
	x.open(n.XMLName.Local, attrs...)
	if len(n.Nodes) == 0 {
		_ = xmlEscape(x, strings.TrimSpace(n.Text))
	}
	for i := range n.Nodes {
		writeNode(x, &n.Nodes[i])
	}
	x.close(n.XMLName.Local)
}

// rawXSIType is the xsi:type attribute's value as written (prefix included).
func (n *node) rawXSIType() string {
	for _, a := range n.Attrs {
		if a.Name.Local == "type" && a.Name.Space == nsInstance {
			return a.Value
		}
	}
	return ""
}

func (s *server) putTopic(name string, d *node, update bool) (entryBody, error) {
	p, m := broker.DefaultTopicProperties(), defaultMeta()
	p.DefaultMessageTimeToLive = broker.MaxDuration
	if update {
		tp, err := s.b.TopicProperties(name)
		if err != nil {
			return entryBody{}, notFound("the messaging entity %q could not be found", name)
		}
		st, _ := s.b.TopicStats(name)
		p, m = tp, s.metaFor(name, st.CreatedAt)
		if m.status, err = s.b.Status(name); err != nil {
			return entryBody{}, err
		}
	}
	f := &fields{n: d}
	p.DefaultMessageTimeToLive = f.duration("DefaultMessageTimeToLive", p.DefaultMessageTimeToLive)
	p.RequiresDuplicateDetection = f.boolean("RequiresDuplicateDetection", p.RequiresDuplicateDetection)
	p.DuplicateDetectionHistoryTimeWindow = f.duration("DuplicateDetectionHistoryTimeWindow", p.DuplicateDetectionHistoryTimeWindow)
	m = readMeta(f, m, update, "Topic")
	if f.err != nil {
		return entryBody{}, f.err
	}
	if _, err := s.queue(name); err == nil && !update {
		return entryBody{}, conflict("the messaging entity %q already exists (as a queue)", name)
	}
	var err error
	if update {
		err = s.b.UpdateTopic(name, p)
	} else {
		err = s.b.CreateTopic(name, p)
	}
	if err := s.brokerErr(err, "Topic", name); err != nil {
		return entryBody{}, err
	}
	if err := s.b.SetStatus(name, m.status); err != nil {
		return entryBody{}, err
	}
	st, err := s.b.TopicStats(name)
	if err != nil {
		return entryBody{}, err
	}
	s.remember(name, st.CreatedAt, m)
	return s.topicEntry(name)
}

func (s *server) topicEntry(name string) (entryBody, error) {
	p, err := s.b.TopicProperties(name)
	if err != nil {
		return entryBody{}, err
	}
	st, err := s.b.TopicStats(name)
	if err != nil {
		return entryBody{}, err
	}
	subs, _ := s.b.Subscriptions(name)
	var sqlFilters, correlationFilters int64
	for _, sub := range subs {
		rules, err := s.b.Rules(name, sub)
		if err != nil {
			continue
		}
		for _, r := range rules {
			if r.Properties.FilterType == broker.FilterCorrelation {
				correlationFilters++
			} else {
				sqlFilters++
			}
		}
	}
	m := s.metaFor(name, st.CreatedAt)
	status, err := s.b.Status(name)
	if err != nil {
		return entryBody{}, err
	}
	var x writer
	x.open("TopicDescription", "xmlns", nsServiceBus, "xmlns:i", nsInstance)
	x.duration("DefaultMessageTimeToLive", p.DefaultMessageTimeToLive)
	x.integer("MaxSizeInMegabytes", m.maxSizeMB)
	x.boolean("RequiresDuplicateDetection", p.RequiresDuplicateDetection)
	x.duration("DuplicateDetectionHistoryTimeWindow", p.DuplicateDetectionHistoryTimeWindow)
	x.boolean("EnableBatchedOperations", m.batched)
	x.integer("SizeInBytes", st.SizeInBytes)
	x.boolean("FilteringMessagesBeforePublishing", false)
	x.boolean("IsAnonymousAccessible", false)
	writeAuthRules(&x, m)
	x.elem("Status", string(status))
	if m.userMetadata != nil {
		x.elem("UserMetadata", *m.userMetadata)
	}
	writeTimes(&x, st)
	x.boolean("SupportOrdering", m.supportOrdering)
	writeCounts(&x, 0, 0, st.Scheduled)
	x.integer("SubscriptionCount", int64(len(subs)))
	x.duration("AutoDeleteOnIdle", m.autoDelete)
	x.boolean("EnablePartitioning", m.partitioned)
	x.boolean("IsExpress", m.express)
	x.elem("EntityAvailabilityStatus", "Available")
	x.boolean("EnableSubscriptionPartitioning", false)
	x.boolean("EnableExpress", m.express)
	x.integer("MaxMessageSizeInKilobytes", s.messageKB(m))
	x.integer("SqlFilterCount", sqlFilters)
	x.integer("CorrelationFilterCount", correlationFilters)
	x.close("TopicDescription")
	return entryBody{xml: x.b.String(), created: st.CreatedAt, updated: st.UpdatedAt}, nil
}

func (s *server) putSubscription(topic, name string, d *node, update bool) (entryBody, error) {
	p, m := broker.DefaultSubscriptionProperties(), defaultMeta()
	p.DefaultMessageTimeToLive = broker.MaxDuration
	path := topic + broker.SubscriptionsSegment + name
	if update {
		sp, err := s.b.SubscriptionProperties(topic, name)
		if err != nil {
			return entryBody{}, notFound("the messaging entity %q could not be found", path)
		}
		e, err := s.b.Entity(path)
		if err != nil {
			return entryBody{}, notFound("the messaging entity %q could not be found", path)
		}
		p, m = sp, s.metaFor(path, e.Stats().CreatedAt)
		m.status = e.Status()
	} else if _, err := s.b.TopicProperties(topic); err != nil {
		return entryBody{}, notFound("the topic %q could not be found", topic)
	}
	f := &fields{n: d}
	qp := broker.QueueProperties{
		LockDuration: p.LockDuration, MaxDeliveryCount: p.MaxDeliveryCount, DefaultMessageTimeToLive: p.DefaultMessageTimeToLive,
		DeadLetteringOnMessageExpiration: p.DeadLetteringOnMessageExpiration, RequiresSession: p.RequiresSession,
		ForwardTo: p.ForwardTo, ForwardDeadLetteredMessagesTo: p.ForwardDeadLetteredMessagesTo,
	}
	readReceivable(f, &qp, &m)
	p = broker.SubscriptionProperties{
		LockDuration: qp.LockDuration, MaxDeliveryCount: qp.MaxDeliveryCount, DefaultMessageTimeToLive: qp.DefaultMessageTimeToLive,
		DeadLetteringOnMessageExpiration: qp.DeadLetteringOnMessageExpiration, RequiresSession: qp.RequiresSession,
		ForwardTo: qp.ForwardTo, ForwardDeadLetteredMessagesTo: qp.ForwardDeadLetteredMessagesTo,
	}
	m = readMeta(f, m, update, "Subscription")
	var rules []broker.RuleConfig
	if rd := d.child("DefaultRuleDescription"); rd != nil && !update {
		r, err := readRule(rd, broker.DefaultRuleName)
		if err != nil {
			return entryBody{}, err
		}
		rules = []broker.RuleConfig{r}
	}
	if f.err != nil {
		return entryBody{}, f.err
	}
	var err error
	if update {
		err = s.b.UpdateSubscription(topic, name, p)
	} else {
		err = s.b.CreateSubscription(topic, name, p, rules)
	}
	if err := s.brokerErr(err, "Subscription", path); err != nil {
		return entryBody{}, err
	}
	if err := s.b.SetStatus(path, m.status); err != nil {
		return entryBody{}, err
	}
	e, err := s.b.Entity(path)
	if err != nil {
		return entryBody{}, err
	}
	s.remember(path, e.Stats().CreatedAt, m)
	return s.subscriptionEntry(topic, name)
}

func (s *server) subscriptionEntry(topic, name string) (entryBody, error) {
	p, err := s.b.SubscriptionProperties(topic, name)
	if err != nil {
		return entryBody{}, err
	}
	path := topic + broker.SubscriptionsSegment + name
	e, err := s.b.Entity(path)
	if err != nil {
		return entryBody{}, err
	}
	st := e.Stats()
	if st.AccessedAt.IsZero() {
		// Azure reports a subscription as accessed when it is created (Microsoft's
		// TestAdminClient_ListSubscriptionRuntimeProperties), unlike a queue or topic.
		st.AccessedAt = st.CreatedAt
	}
	m := s.metaFor(path, st.CreatedAt)
	active := st.Active + st.Deferred
	var x writer
	x.open("SubscriptionDescription", "xmlns", nsServiceBus, "xmlns:i", nsInstance)
	x.duration("LockDuration", p.LockDuration)
	x.boolean("RequiresSession", p.RequiresSession)
	x.duration("DefaultMessageTimeToLive", p.DefaultMessageTimeToLive)
	x.boolean("DeadLetteringOnMessageExpiration", p.DeadLetteringOnMessageExpiration)
	x.boolean("DeadLetteringOnFilterEvaluationExceptions", m.filterExceptions)
	x.integer("MessageCount", int64(active+st.DeadLettered+st.Scheduled))
	x.integer("MaxDeliveryCount", int64(p.MaxDeliveryCount))
	x.boolean("EnableBatchedOperations", m.batched)
	x.elem("Status", string(e.Status()))
	if m.forwardTo != "" {
		x.elem("ForwardTo", m.forwardTo)
	}
	writeTimes(&x, st)
	writeCounts(&x, active, st.DeadLettered, st.Scheduled)
	if m.userMetadata != nil {
		x.elem("UserMetadata", *m.userMetadata)
	}
	if m.forwardDLQTo != "" {
		x.elem("ForwardDeadLetteredMessagesTo", m.forwardDLQTo)
	}
	x.duration("AutoDeleteOnIdle", m.autoDelete)
	x.elem("EntityAvailabilityStatus", "Available")
	x.close("SubscriptionDescription")
	return entryBody{xml: x.b.String(), created: st.CreatedAt, updated: st.UpdatedAt}, nil
}
