package broker

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sort"
	"strings"
	"time"
)

// Config is the emulator's entity configuration: the official Service Bus emulator's
// Config.json (UserConfig.Namespaces[].Queues/Topics, UserConfig.Logging) with a few extensions
// (see QueuePropertyLimits). Build one with ParseConfig or LoadConfig, or by hand and then call
// Validate.
type Config struct {
	UserConfig UserConfig
}

// UserConfig is the top-level object of Config.json.
type UserConfig struct {
	Namespaces []NamespaceConfig
	Logging    LoggingConfig
}

// LoggingConfig is UserConfig.Logging. Type is "File" or "Console" (or empty); it is stored
// for the server, which logs through its injected *slog.Logger either way.
type LoggingConfig struct {
	Type string
}

// NamespaceConfig is one namespace. The official emulator requires the name "sbemulatorns";
// any non-empty name is accepted here.
type NamespaceConfig struct {
	Name   string
	Queues []QueueConfig
	Topics []TopicConfig
	// SharedAccessPolicies (an emulator extension) are namespace policies besides the
	// server's own key, each with its rights; they are enforced in strict auth mode.
	SharedAccessPolicies []PolicyConfig
}

// PolicyConfig is a shared access policy: key name, key and rights ("Listen", "Send",
// "Manage"; Manage needs the other two, as on Azure).
type PolicyConfig struct {
	Name   string
	Key    string
	Rights []string
}

// QueueConfig is one queue. Properties not present in the file take DefaultQueueProperties.
type QueueConfig struct {
	Name       string
	Properties QueueProperties
}

// TopicConfig is one topic with its subscriptions.
type TopicConfig struct {
	Name          string
	Properties    TopicProperties
	Subscriptions []SubscriptionConfig
}

// TopicProperties are the properties of a topic.
type TopicProperties struct {
	DefaultMessageTimeToLive            time.Duration
	DuplicateDetectionHistoryTimeWindow time.Duration
	RequiresDuplicateDetection          bool
}

// SubscriptionConfig is one subscription of a topic.
type SubscriptionConfig struct {
	Name       string
	Properties SubscriptionProperties
	Rules      []RuleConfig
}

// SubscriptionProperties are a queue's properties minus duplicate detection.
type SubscriptionProperties struct {
	DeadLetteringOnMessageExpiration bool
	DefaultMessageTimeToLive         time.Duration
	LockDuration                     time.Duration
	MaxDeliveryCount                 int
	ForwardTo                        string
	ForwardDeadLetteredMessagesTo    string
	RequiresSession                  bool
}

// RuleConfig is one subscription rule.
type RuleConfig struct {
	Name       string
	Properties RuleProperties
}

// Filter types of RuleProperties.FilterType.
const (
	FilterCorrelation = "Correlation"
	FilterSQL         = "Sql"
)

// RuleProperties describe a rule's filter (and SQL action).
type RuleProperties struct {
	FilterType        string // FilterCorrelation or FilterSQL
	CorrelationFilter *CorrelationFilter
	SQLFilter         *SQLExpression // "SqlFilter" in the file
	Action            *SQLExpression
}

// SQLExpression is a SqlFilter or an Action.
type SQLExpression struct {
	SQLExpression string // "SqlExpression" in the file
}

// CorrelationFilter matches system properties exactly and application properties by value.
type CorrelationFilter struct {
	ContentType      string
	CorrelationID    string // "CorrelationId" in the file
	Label            string // the message's Subject
	MessageID        string // "MessageId"
	ReplyTo          string
	ReplyToSessionID string // "ReplyToSessionId"
	SessionID        string // "SessionId"
	To               string
	Properties       map[string]any
}

// QueueProperties are the properties of a queue (and, mapped, of a subscription).
// DefaultMessageTimeToLive == MaxDuration means messages never expire.
type QueueProperties struct {
	LockDuration                             time.Duration
	MaxDeliveryCount                         int
	DefaultMessageTimeToLive                 time.Duration
	DeadLetteringOnMessageExpiration         bool
	RequiresDuplicateDetection               bool
	DuplicateDetectionHistoryTimeWindow      time.Duration
	RequiresSession                          bool
	ForwardTo, ForwardDeadLetteredMessagesTo string
}

// DefaultQueueProperties returns Azure Service Bus's defaults for a new queue: lock PT1M,
// MaxDeliveryCount 10, TTL unlimited (TimeSpan.MaxValue, what the management API gives an
// entity created without DefaultMessageTimeToLive; stored as MaxDuration), duplicate
// detection window PT10M. The official emulator's schema defaults differ (3 deliveries, TTL
// PT1H); holdfast follows Azure because the emulator stands in for a real namespace.
func DefaultQueueProperties() QueueProperties {
	return QueueProperties{
		LockDuration:                        time.Minute,
		MaxDeliveryCount:                    10,
		DefaultMessageTimeToLive:            MaxDuration,
		DuplicateDetectionHistoryTimeWindow: 10 * time.Minute,
	}
}

// Limits accepted for queue and subscription properties. They widen the official emulator's
// (LockDuration PT1M..PT5M, MaxDeliveryCount 1..10, TTL PT5M..PT1H) so that tests can use short
// locks and production-like TTLs.
const (
	MinLockDuration     = time.Second
	MaxLockDuration     = 5 * time.Minute
	MinMaxDeliveryCount = 1
	MaxMaxDeliveryCount = 2000
	MinMessageTTL       = time.Second
	// MaxMessageTTLText is the longest TTL accepted, .NET's TimeSpan.MaxValue in whole days;
	// it exceeds time.Duration and is stored as MaxDuration.
	MaxMessageTTLText           = "P10675199D"
	MinDuplicateDetectionWindow = 5 * time.Second
	MaxDuplicateDetectionWindow = 7 * 24 * time.Hour
)

// deadLetterProperties are the properties of p's dead-letter subqueue: no sessions there (a DLQ
// is received from without a session filter) and no forwarding of its own.
func (p QueueProperties) deadLetterProperties() QueueProperties {
	p.RequiresSession = false
	p.ForwardTo, p.ForwardDeadLetteredMessagesTo = "", ""
	return p
}

// Azure's own lower limits where the emulator accepts less. Values below them are emulator
// extensions (so tests can expire locks and duplicate windows quickly): they are accepted,
// and ExtensionWarnings names Azure's limit so that the start-up log says so.
const (
	AzureMinLockDuration             = 5 * time.Second  // LockDuration: PT5S..PT5M on Azure
	AzureMinDuplicateDetectionWindow = 20 * time.Second // DuplicateDetectionHistoryTimeWindow: PT20S..P7D on Azure
)

// ExtensionWarnings lists the properties of p that Azure would reject but the emulator accepts,
// each naming Azure's limit (nil when p is within Azure's limits). path prefixes the names.
func (p QueueProperties) ExtensionWarnings(path string) []string {
	var w []string
	if p.LockDuration < AzureMinLockDuration {
		w = append(w, fmt.Sprintf("%s.LockDuration %s is below Azure's minimum %s: accepted as an emulator extension (a real namespace rejects it)",
			path, FormatISODuration(p.LockDuration), FormatISODuration(AzureMinLockDuration)))
	}
	if p.RequiresDuplicateDetection {
		w = append(w, windowWarning(path, p.DuplicateDetectionHistoryTimeWindow)...)
	}
	return w
}

// ExtensionWarnings is QueueProperties.ExtensionWarnings for a topic.
func (p TopicProperties) ExtensionWarnings(path string) []string {
	if !p.RequiresDuplicateDetection {
		return nil
	}
	return windowWarning(path, p.DuplicateDetectionHistoryTimeWindow)
}

func windowWarning(path string, window time.Duration) []string {
	if window >= AzureMinDuplicateDetectionWindow {
		return nil
	}
	return []string{fmt.Sprintf("%s.DuplicateDetectionHistoryTimeWindow %s is below Azure's minimum %s: accepted as an emulator extension (a real namespace rejects it)",
		path, FormatISODuration(window), FormatISODuration(AzureMinDuplicateDetectionWindow))}
}

// ConfigError reports a problem at one JSON path of Config.json.
type ConfigError struct {
	Path string // e.g. UserConfig.Namespaces[0].Queues[1].Properties.LockDuration
	Msg  string
}

func (e *ConfigError) Error() string { return e.Path + ": " + e.Msg }

// LoadConfig reads and parses a Config.json file.
func LoadConfig(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("broker: load config: %w", err)
	}
	cfg, err := ParseConfig(data)
	if err != nil {
		return nil, fmt.Errorf("broker: load config %s: %w", path, err)
	}
	return cfg, nil
}

// ParseConfig parses Config.json. Unknown fields, wrong types and out-of-range values are
// errors (a *ConfigError naming the JSON path); missing properties take
// DefaultQueueProperties.
func ParseConfig(data []byte) (*Config, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var root any
	if err := dec.Decode(&root); err != nil {
		return nil, &ConfigError{Path: "$", Msg: "invalid JSON: " + err.Error()}
	}
	if dec.More() {
		return nil, &ConfigError{Path: "$", Msg: "trailing data after the JSON object"}
	}
	p := &cfgParser{}
	cfg := p.root(root)
	if p.err != nil {
		return nil, p.err
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return cfg, nil
}

// Validate checks names (non-empty, unique case-insensitively, addressable) and property
// ranges. ParseConfig calls it; call it yourself on a hand-built Config.
func (c *Config) Validate() error {
	if len(c.UserConfig.Namespaces) > 1 {
		return &ConfigError{Path: "UserConfig.Namespaces", Msg: "only one namespace is supported"}
	}
	switch c.UserConfig.Logging.Type {
	case "", "File", "Console":
	default:
		return &ConfigError{Path: "UserConfig.Logging.Type", Msg: fmt.Sprintf("%q: must be \"File\" or \"Console\"", c.UserConfig.Logging.Type)}
	}
	for i, ns := range c.UserConfig.Namespaces {
		base := fmt.Sprintf("UserConfig.Namespaces[%d]", i)
		if ns.Name == "" {
			return &ConfigError{Path: base + ".Name", Msg: "must not be empty"}
		}
		seen := map[string]string{}
		for j, q := range ns.Queues {
			qp := fmt.Sprintf("%s.Queues[%d]", base, j)
			if err := checkName(qp+".Name", q.Name, seen); err != nil {
				return err
			}
			if err := q.Properties.validate(qp + ".Properties"); err != nil {
				return err
			}
		}
		policies := map[string]string{}
		for j, pc := range ns.SharedAccessPolicies {
			pp := fmt.Sprintf("%s.SharedAccessPolicies[%d]", base, j)
			if err := pc.validate(pp, policies); err != nil {
				return err
			}
		}
		for j, t := range ns.Topics {
			tp := fmt.Sprintf("%s.Topics[%d]", base, j)
			if err := checkName(tp+".Name", t.Name, seen); err != nil {
				return err
			}
			if err := t.validate(tp); err != nil {
				return err
			}
		}
	}
	return nil
}

func (pc PolicyConfig) validate(path string, seen map[string]string) error {
	if pc.Name == "" {
		return &ConfigError{Path: path + ".Name", Msg: "must not be empty"}
	}
	if prev, dup := seen[pc.Name]; dup {
		return &ConfigError{Path: path + ".Name", Msg: fmt.Sprintf("%q duplicates %s", pc.Name, prev)}
	}
	seen[pc.Name] = path
	if pc.Key == "" {
		return &ConfigError{Path: path + ".Key", Msg: "must not be empty"}
	}
	has := map[string]bool{}
	for _, r := range pc.Rights {
		switch strings.ToLower(r) {
		case "listen", "send", "manage":
			has[strings.ToLower(r)] = true
		default:
			return &ConfigError{Path: path + ".Rights", Msg: fmt.Sprintf("%q: must be Listen, Send or Manage", r)}
		}
	}
	if len(has) == 0 {
		return &ConfigError{Path: path + ".Rights", Msg: "must name at least one of Listen, Send, Manage"}
	}
	if has["manage"] && !(has["listen"] && has["send"]) {
		return &ConfigError{Path: path + ".Rights", Msg: "Manage requires Listen and Send, as on Azure"}
	}
	return nil
}

func checkName(path, name string, seen map[string]string) error {
	if err := ValidateEntityName(name); err != nil {
		return &ConfigError{Path: path, Msg: err.Error()}
	}
	key := strings.ToLower(name)
	if prev, dup := seen[key]; dup {
		return &ConfigError{Path: path, Msg: fmt.Sprintf("%q duplicates %s (names are case-insensitive)", name, prev)}
	}
	seen[key] = path
	return nil
}

// ValidateEntityName checks a queue, topic, subscription or rule name: 1..260 characters of
// letters, digits, '.', '-', '_' and '/', not starting or ending with '/'.
func ValidateEntityName(name string) error {
	if name == "" {
		return errors.New("name must not be empty")
	}
	if len(name) > 260 {
		return fmt.Errorf("name %.20q... is longer than 260 characters", name)
	}
	if name[0] == '/' || name[len(name)-1] == '/' || strings.Contains(name, "//") {
		return fmt.Errorf("name %q: '/' must separate non-empty segments", name)
	}
	for _, r := range name {
		ok := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' ||
			r == '.' || r == '-' || r == '_' || r == '/'
		if !ok {
			return fmt.Errorf("name %q: character %q is not allowed (letters, digits, . - _ /)", name, r)
		}
	}
	return nil
}

func (p QueueProperties) validate(path string) error {
	if p.LockDuration < MinLockDuration || p.LockDuration > MaxLockDuration {
		return rangeErr(path+".LockDuration", FormatISODuration(p.LockDuration), "PT1S", "PT5M")
	}
	if p.MaxDeliveryCount < MinMaxDeliveryCount || p.MaxDeliveryCount > MaxMaxDeliveryCount {
		return rangeErr(path+".MaxDeliveryCount", fmt.Sprint(p.MaxDeliveryCount), fmt.Sprint(MinMaxDeliveryCount), fmt.Sprint(MaxMaxDeliveryCount))
	}
	if err := checkTTLAndWindow(path, p.DefaultMessageTimeToLive, p.DuplicateDetectionHistoryTimeWindow); err != nil {
		return err
	}
	for _, f := range []struct{ name, v string }{{"ForwardTo", p.ForwardTo}, {"ForwardDeadLetteredMessagesTo", p.ForwardDeadLetteredMessagesTo}} {
		if f.v == "" {
			continue
		}
		if err := ValidateEntityName(ForwardPath(f.v)); err != nil {
			return &ConfigError{Path: path + "." + f.name, Msg: fmt.Sprintf("%q: %v", f.v, err)}
		}
	}
	return nil
}

func (t TopicConfig) validate(path string) error {
	tp := t.Properties
	if err := checkTTLAndWindow(path+".Properties", tp.DefaultMessageTimeToLive, tp.DuplicateDetectionHistoryTimeWindow); err != nil {
		return err
	}
	seen := map[string]string{}
	for i, s := range t.Subscriptions {
		sp := fmt.Sprintf("%s.Subscriptions[%d]", path, i)
		if err := checkName(sp+".Name", s.Name, seen); err != nil {
			return err
		}
		if strings.Contains(s.Name, "/") {
			return &ConfigError{Path: sp + ".Name", Msg: fmt.Sprintf("%q: subscription names cannot contain '/'", s.Name)}
		}
		q := QueueProperties{
			LockDuration: s.Properties.LockDuration, MaxDeliveryCount: s.Properties.MaxDeliveryCount,
			DefaultMessageTimeToLive: s.Properties.DefaultMessageTimeToLive, RequiresSession: s.Properties.RequiresSession,
			ForwardTo: s.Properties.ForwardTo, ForwardDeadLetteredMessagesTo: s.Properties.ForwardDeadLetteredMessagesTo,
			DuplicateDetectionHistoryTimeWindow: MinDuplicateDetectionWindow,
		}
		if err := q.validate(sp + ".Properties"); err != nil {
			return err
		}
		rules := map[string]string{}
		for k, r := range s.Rules {
			rp := fmt.Sprintf("%s.Rules[%d]", sp, k)
			if err := checkRuleName(rp+".Name", r.Name, rules); err != nil {
				return err
			}
			if err := r.Properties.validate(rp + ".Properties"); err != nil {
				return err
			}
		}
	}
	return nil
}

func (r RuleProperties) validate(path string) error {
	switch r.FilterType {
	case FilterCorrelation:
		if r.CorrelationFilter == nil {
			return &ConfigError{Path: path + ".CorrelationFilter", Msg: "required when FilterType is \"Correlation\""}
		}
		if r.SQLFilter != nil {
			return &ConfigError{Path: path + ".SqlFilter", Msg: "not allowed when FilterType is \"Correlation\""}
		}
		if r.CorrelationFilter.empty() {
			return &ConfigError{Path: path + ".CorrelationFilter", Msg: "must set at least one property to match"}
		}
	case FilterSQL:
		if r.SQLFilter == nil || strings.TrimSpace(r.SQLFilter.SQLExpression) == "" {
			return &ConfigError{Path: path + ".SqlFilter.SqlExpression", Msg: "required when FilterType is \"Sql\""}
		}
		if r.CorrelationFilter != nil {
			return &ConfigError{Path: path + ".CorrelationFilter", Msg: "not allowed when FilterType is \"Sql\""}
		}
		if expr := compactSQL(r.SQLFilter.SQLExpression); expr != TrueFilterExpression && expr != FalseFilterExpression {
			return &ConfigError{Path: path + ".SqlFilter.SqlExpression", Msg: fmt.Sprintf(
				"%q: SQL filters are not supported by this emulator except %q and %q (use a Correlation filter)",
				r.SQLFilter.SQLExpression, TrueFilterExpression, FalseFilterExpression)}
		}
	default:
		return &ConfigError{Path: path + ".FilterType", Msg: fmt.Sprintf("%q: must be \"Correlation\" or \"Sql\"", r.FilterType)}
	}
	if r.Action != nil && strings.TrimSpace(r.Action.SQLExpression) != "" {
		return &ConfigError{Path: path + ".Action.SqlExpression", Msg: fmt.Sprintf("%q: rule actions are not supported by this emulator", r.Action.SQLExpression)}
	}
	return nil
}

func (f *CorrelationFilter) empty() bool {
	return f.ContentType == "" && f.CorrelationID == "" && f.Label == "" && f.MessageID == "" && f.ReplyTo == "" &&
		f.ReplyToSessionID == "" && f.SessionID == "" && f.To == "" && len(f.Properties) == 0
}

// checkTTLAndWindow checks the two durations queues and topics share. (The parser already
// rejected TTLs above MaxMessageTTLText.)
func checkTTLAndWindow(path string, ttl, window time.Duration) error {
	if ttl < MinMessageTTL {
		return rangeErr(path+".DefaultMessageTimeToLive", FormatISODuration(ttl), "PT1S", MaxMessageTTLText)
	}
	if window < MinDuplicateDetectionWindow || window > MaxDuplicateDetectionWindow {
		return rangeErr(path+".DuplicateDetectionHistoryTimeWindow", FormatISODuration(window), "PT5S", "P7D")
	}
	return nil
}

func rangeErr(path, got, lo, hi string) error {
	return &ConfigError{Path: path, Msg: fmt.Sprintf("%s out of range: allowed %s..%s", got, lo, hi)}
}

// cfgParser walks the decoded JSON tree. It records the first error and turns every later
// call into a no-op, so the walk reads straight-line.
type cfgParser struct {
	err error
}

func (p *cfgParser) fail(path, format string, args ...any) {
	if p.err == nil {
		p.err = &ConfigError{Path: path, Msg: fmt.Sprintf(format, args...)}
	}
}

// object checks that v is an object whose keys are all in fields, and returns it.
func (p *cfgParser) object(path string, v any, fields ...string) map[string]any {
	if p.err != nil {
		return nil
	}
	m, ok := v.(map[string]any)
	if !ok {
		p.fail(path, "must be an object, got %s", jsonKind(v))
		return nil
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		known := false
		for _, f := range fields {
			if k == f {
				known = true
				break
			}
		}
		if !known {
			p.fail(path+"."+k, "unknown field (known: %s)", strings.Join(fields, ", "))
			return nil
		}
	}
	return m
}

func (p *cfgParser) array(path string, v any) []any {
	if p.err != nil || v == nil {
		return nil
	}
	a, ok := v.([]any)
	if !ok {
		p.fail(path, "must be an array, got %s", jsonKind(v))
	}
	return a
}

func (p *cfgParser) str(path string, m map[string]any, key string, def string) string {
	v, ok := m[key]
	if p.err != nil || !ok || v == nil {
		return def
	}
	s, ok := v.(string)
	if !ok {
		p.fail(path+"."+key, "must be a string, got %s", jsonKind(v))
	}
	return s
}

func (p *cfgParser) boolean(path string, m map[string]any, key string, def bool) bool {
	v, ok := m[key]
	if p.err != nil || !ok || v == nil {
		return def
	}
	b, ok := v.(bool)
	if !ok {
		p.fail(path+"."+key, "must be true or false, got %s", jsonKind(v))
	}
	return b
}

func (p *cfgParser) integer(path string, m map[string]any, key string, def int) int {
	v, ok := m[key]
	if p.err != nil || !ok || v == nil {
		return def
	}
	n, ok := v.(json.Number)
	if !ok {
		p.fail(path+"."+key, "must be an integer, got %s", jsonKind(v))
		return def
	}
	i, err := n.Int64()
	if err != nil || i < -1<<31 || i > 1<<31-1 {
		p.fail(path+"."+key, "must be an integer, got %s", n)
		return def
	}
	return int(i)
}

// duration reads an ISO-8601 duration; values longer than time.Duration become MaxDuration
// when they do not exceed max (else an out-of-range error naming lo..max).
func (p *cfgParser) duration(path string, m map[string]any, key string, def time.Duration) time.Duration {
	s := p.str(path, m, key, "")
	if p.err != nil || s == "" {
		return def
	}
	d, err := parseISO(s)
	if err != nil {
		p.fail(path+"."+key, "%v", err)
		return def
	}
	limit, _ := parseISO(MaxMessageTTLText)
	if limit.less(d) {
		p.fail(path+"."+key, "%s out of range: longest allowed is %s", s, MaxMessageTTLText)
		return def
	}
	return d.duration()
}

func (p *cfgParser) root(v any) *Config {
	cfg := &Config{}
	top := p.object("$", v, "UserConfig")
	if top == nil {
		return cfg
	}
	if top["UserConfig"] == nil {
		p.fail("UserConfig", "required")
		return cfg
	}
	uc := p.object("UserConfig", top["UserConfig"], "Namespaces", "Logging")
	if uc == nil {
		return cfg
	}
	if lg, ok := uc["Logging"]; ok && lg != nil {
		l := p.object("UserConfig.Logging", lg, "Type")
		cfg.UserConfig.Logging.Type = p.str("UserConfig.Logging", l, "Type", "")
	}
	for i, nv := range p.array("UserConfig.Namespaces", uc["Namespaces"]) {
		cfg.UserConfig.Namespaces = append(cfg.UserConfig.Namespaces, p.namespace(fmt.Sprintf("UserConfig.Namespaces[%d]", i), nv))
	}
	return cfg
}

func (p *cfgParser) namespace(path string, v any) NamespaceConfig {
	m := p.object(path, v, "Name", "Queues", "Topics", "SharedAccessPolicies")
	ns := NamespaceConfig{Name: p.str(path, m, "Name", "")}
	for i, pv := range p.array(path+".SharedAccessPolicies", m["SharedAccessPolicies"]) {
		pp := fmt.Sprintf("%s.SharedAccessPolicies[%d]", path, i)
		pm := p.object(pp, pv, "Name", "Key", "Rights")
		pc := PolicyConfig{Name: p.str(pp, pm, "Name", ""), Key: p.str(pp, pm, "Key", "")}
		for j, rv := range p.array(pp+".Rights", pm["Rights"]) {
			r, ok := rv.(string)
			if !ok {
				p.fail(fmt.Sprintf("%s.Rights[%d]", pp, j), "must be a string, got %s", jsonKind(rv))
			}
			pc.Rights = append(pc.Rights, r)
		}
		ns.SharedAccessPolicies = append(ns.SharedAccessPolicies, pc)
	}
	for i, qv := range p.array(path+".Queues", m["Queues"]) {
		qp := fmt.Sprintf("%s.Queues[%d]", path, i)
		q := p.object(qp, qv, "Name", "Properties")
		ns.Queues = append(ns.Queues, QueueConfig{Name: p.str(qp, q, "Name", ""), Properties: p.queueProps(qp+".Properties", q["Properties"])})
	}
	for i, tv := range p.array(path+".Topics", m["Topics"]) {
		ns.Topics = append(ns.Topics, p.topic(fmt.Sprintf("%s.Topics[%d]", path, i), tv))
	}
	return ns
}

func (p *cfgParser) queueProps(path string, v any) QueueProperties {
	d := DefaultQueueProperties()
	if v == nil {
		return d
	}
	m := p.object(path, v, "DeadLetteringOnMessageExpiration", "DefaultMessageTimeToLive",
		"DuplicateDetectionHistoryTimeWindow", "ForwardDeadLetteredMessagesTo", "ForwardTo",
		"LockDuration", "MaxDeliveryCount", "RequiresDuplicateDetection", "RequiresSession")
	return QueueProperties{
		LockDuration:                        p.duration(path, m, "LockDuration", d.LockDuration),
		MaxDeliveryCount:                    p.integer(path, m, "MaxDeliveryCount", d.MaxDeliveryCount),
		DefaultMessageTimeToLive:            p.duration(path, m, "DefaultMessageTimeToLive", d.DefaultMessageTimeToLive),
		DeadLetteringOnMessageExpiration:    p.boolean(path, m, "DeadLetteringOnMessageExpiration", false),
		RequiresDuplicateDetection:          p.boolean(path, m, "RequiresDuplicateDetection", false),
		DuplicateDetectionHistoryTimeWindow: p.duration(path, m, "DuplicateDetectionHistoryTimeWindow", d.DuplicateDetectionHistoryTimeWindow),
		RequiresSession:                     p.boolean(path, m, "RequiresSession", false),
		ForwardTo:                           p.str(path, m, "ForwardTo", ""),
		ForwardDeadLetteredMessagesTo:       p.str(path, m, "ForwardDeadLetteredMessagesTo", ""),
	}
}

func (p *cfgParser) topic(path string, v any) TopicConfig {
	d := DefaultQueueProperties()
	m := p.object(path, v, "Name", "Properties", "Subscriptions")
	t := TopicConfig{Name: p.str(path, m, "Name", "")}
	t.Properties = TopicProperties{DefaultMessageTimeToLive: d.DefaultMessageTimeToLive, DuplicateDetectionHistoryTimeWindow: d.DuplicateDetectionHistoryTimeWindow}
	if pv := m["Properties"]; pv != nil {
		pp := path + ".Properties"
		pm := p.object(pp, pv, "DefaultMessageTimeToLive", "DuplicateDetectionHistoryTimeWindow", "RequiresDuplicateDetection")
		t.Properties = TopicProperties{
			DefaultMessageTimeToLive:            p.duration(pp, pm, "DefaultMessageTimeToLive", d.DefaultMessageTimeToLive),
			DuplicateDetectionHistoryTimeWindow: p.duration(pp, pm, "DuplicateDetectionHistoryTimeWindow", d.DuplicateDetectionHistoryTimeWindow),
			RequiresDuplicateDetection:          p.boolean(pp, pm, "RequiresDuplicateDetection", false),
		}
	}
	for i, sv := range p.array(path+".Subscriptions", m["Subscriptions"]) {
		t.Subscriptions = append(t.Subscriptions, p.subscription(fmt.Sprintf("%s.Subscriptions[%d]", path, i), sv))
	}
	return t
}

func (p *cfgParser) subscription(path string, v any) SubscriptionConfig {
	d := DefaultQueueProperties()
	m := p.object(path, v, "Name", "Properties", "Rules")
	s := SubscriptionConfig{Name: p.str(path, m, "Name", "")}
	s.Properties = SubscriptionProperties{LockDuration: d.LockDuration, MaxDeliveryCount: d.MaxDeliveryCount, DefaultMessageTimeToLive: d.DefaultMessageTimeToLive}
	if pv := m["Properties"]; pv != nil {
		pp := path + ".Properties"
		pm := p.object(pp, pv, "DeadLetteringOnMessageExpiration", "DefaultMessageTimeToLive",
			"ForwardDeadLetteredMessagesTo", "ForwardTo", "LockDuration", "MaxDeliveryCount", "RequiresSession")
		s.Properties = SubscriptionProperties{
			DeadLetteringOnMessageExpiration: p.boolean(pp, pm, "DeadLetteringOnMessageExpiration", false),
			DefaultMessageTimeToLive:         p.duration(pp, pm, "DefaultMessageTimeToLive", d.DefaultMessageTimeToLive),
			LockDuration:                     p.duration(pp, pm, "LockDuration", d.LockDuration),
			MaxDeliveryCount:                 p.integer(pp, pm, "MaxDeliveryCount", d.MaxDeliveryCount),
			ForwardTo:                        p.str(pp, pm, "ForwardTo", ""),
			ForwardDeadLetteredMessagesTo:    p.str(pp, pm, "ForwardDeadLetteredMessagesTo", ""),
			RequiresSession:                  p.boolean(pp, pm, "RequiresSession", false),
		}
	}
	for i, rv := range p.array(path+".Rules", m["Rules"]) {
		s.Rules = append(s.Rules, p.rule(fmt.Sprintf("%s.Rules[%d]", path, i), rv))
	}
	return s
}

func (p *cfgParser) rule(path string, v any) RuleConfig {
	m := p.object(path, v, "Name", "Properties")
	r := RuleConfig{Name: p.str(path, m, "Name", "")}
	pp := path + ".Properties"
	pm := p.object(pp, m["Properties"], "FilterType", "CorrelationFilter", "SqlFilter", "Action")
	r.Properties.FilterType = p.str(pp, pm, "FilterType", "")
	if cv := pm["CorrelationFilter"]; cv != nil {
		cp := pp + ".CorrelationFilter"
		cm := p.object(cp, cv, "ContentType", "CorrelationId", "Label", "MessageId", "ReplyTo",
			"ReplyToSessionId", "SessionId", "To", "Properties")
		cf := &CorrelationFilter{
			ContentType: p.str(cp, cm, "ContentType", ""), CorrelationID: p.str(cp, cm, "CorrelationId", ""),
			Label: p.str(cp, cm, "Label", ""), MessageID: p.str(cp, cm, "MessageId", ""),
			ReplyTo: p.str(cp, cm, "ReplyTo", ""), ReplyToSessionID: p.str(cp, cm, "ReplyToSessionId", ""),
			SessionID: p.str(cp, cm, "SessionId", ""), To: p.str(cp, cm, "To", ""),
		}
		if pv, ok := cm["Properties"]; ok && pv != nil && p.err == nil {
			props, ok := pv.(map[string]any)
			if !ok {
				p.fail(cp+".Properties", "must be an object, got %s", jsonKind(pv))
			}
			cf.Properties = make(map[string]any, len(props))
			for k, val := range props {
				cf.Properties[k] = p.scalar(cp+".Properties."+k, val)
			}
		}
		r.Properties.CorrelationFilter = cf
	}
	for _, key := range []string{"SqlFilter", "Action"} {
		sv := pm[key]
		if sv == nil {
			continue
		}
		sp := pp + "." + key
		sm := p.object(sp, sv, "SqlExpression")
		e := &SQLExpression{SQLExpression: p.str(sp, sm, "SqlExpression", "")}
		if key == "SqlFilter" {
			r.Properties.SQLFilter = e
		} else {
			r.Properties.Action = e
		}
	}
	return r
}

// scalar converts a correlation-filter property value: string, bool, int64 or float64.
func (p *cfgParser) scalar(path string, v any) any {
	switch v := v.(type) {
	case string, bool:
		return v
	case json.Number:
		if i, err := v.Int64(); err == nil {
			return i
		}
		f, err := v.Float64()
		if err != nil {
			p.fail(path, "bad number %s", v)
		}
		return f
	default:
		p.fail(path, "must be a string, number or boolean, got %s", jsonKind(v))
		return nil
	}
}

func jsonKind(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case map[string]any:
		return "an object"
	case []any:
		return "an array"
	case string:
		return "a string"
	case bool:
		return "a boolean"
	case json.Number:
		return "a number"
	default:
		return fmt.Sprintf("%T", v)
	}
}

// ParseQueueProperties parses a queue's "Properties" object of Config.json (empty or "null"
// ⇒ DefaultQueueProperties) and validates it. Errors are *ConfigError values rooted at
// "Properties".
func ParseQueueProperties(data []byte) (QueueProperties, error) {
	v, err := decodeFragment(data)
	if err != nil {
		return QueueProperties{}, err
	}
	p := &cfgParser{}
	qp := p.queueProps("Properties", v)
	if p.err != nil {
		return QueueProperties{}, p.err
	}
	if err := qp.validate("Properties"); err != nil {
		return QueueProperties{}, err
	}
	return qp, nil
}

// ParseTopicConfig parses a topic object of Config.json ({"Properties":…, "Subscriptions":
// […]}; "Name", when present, must equal name) and validates it.
func ParseTopicConfig(name string, data []byte) (TopicConfig, error) {
	m, err := namedFragment(name, data)
	if err != nil {
		return TopicConfig{}, err
	}
	p := &cfgParser{}
	t := p.topic("Topic", m)
	if p.err != nil {
		return TopicConfig{}, p.err
	}
	if err := checkName("Topic.Name", t.Name, map[string]string{}); err != nil {
		return TopicConfig{}, err
	}
	if err := t.validate("Topic"); err != nil {
		return TopicConfig{}, err
	}
	return t, nil
}

// ParseSubscriptionConfig parses a subscription object of Config.json ({"Properties":…,
// "Rules": […]}; "Name", when present, must equal name) and validates it.
func ParseSubscriptionConfig(name string, data []byte) (SubscriptionConfig, error) {
	m, err := namedFragment(name, data)
	if err != nil {
		return SubscriptionConfig{}, err
	}
	p := &cfgParser{}
	s := p.subscription("Subscription", m)
	if p.err != nil {
		return SubscriptionConfig{}, p.err
	}
	t := TopicConfig{Name: "t", Properties: DefaultTopicProperties(), Subscriptions: []SubscriptionConfig{s}}
	if err := t.validate("Topic"); err != nil {
		var ce *ConfigError
		if errors.As(err, &ce) {
			ce.Path = strings.Replace(ce.Path, "Topic.Subscriptions[0]", "Subscription", 1)
		}
		return SubscriptionConfig{}, err
	}
	return s, nil
}

// decodeFragment decodes one JSON value (numbers as json.Number); empty input is null.
func decodeFragment(data []byte) (any, error) {
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, nil
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, &ConfigError{Path: "$", Msg: "invalid JSON: " + err.Error()}
	}
	if dec.More() {
		return nil, &ConfigError{Path: "$", Msg: "trailing data after the JSON value"}
	}
	return v, nil
}

// namedFragment decodes an object and sets its "Name" to name (a different Name is an error).
func namedFragment(name string, data []byte) (map[string]any, error) {
	v, err := decodeFragment(data)
	if err != nil {
		return nil, err
	}
	if v == nil {
		v = map[string]any{}
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil, &ConfigError{Path: "$", Msg: "must be an object, got " + jsonKind(v)}
	}
	if n, ok := m["Name"]; ok && n != name {
		return nil, &ConfigError{Path: "Name", Msg: fmt.Sprintf("%v does not match the name in the path %q", n, name)}
	}
	m["Name"] = name
	return m, nil
}
