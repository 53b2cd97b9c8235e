package atom

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/holdfast-dev/holdfast/emulator/broker"
)

// readRule reads a RuleDescription (or a subscription's DefaultRuleDescription). Filters: the
// SDKs' TrueFilter and FalseFilter, SqlFilter "1=1" and "1=0", and CorrelationFilter with
// string, numeric and boolean properties; actions: EmptyRuleAction only (the broker applies no
// SQL). Anything else is a 400 naming it.
func readRule(d *node, name string) (broker.RuleConfig, error) {
	if v, ok := d.text("Name"); ok && v != "" {
		name = v
	}
	r := broker.RuleConfig{Name: name}
	filter := d.child("Filter")
	t := ""
	if filter != nil {
		t = filter.xsiType()
	}
	switch {
	case filter == nil, t == "TrueFilter":
		r.Properties = sqlRule(broker.TrueFilterExpression)
	case t == "FalseFilter":
		r.Properties = sqlRule(broker.FalseFilterExpression)
	case t == "SqlFilter":
		if p := filter.child("Parameters"); p != nil && len(p.Nodes) > 0 {
			return r, badRequest("Filter: SQL filter parameters are not supported by this emulator")
		}
		expr, _ := filter.text("SqlExpression")
		r.Properties = sqlRule(expr)
	case t == "CorrelationFilter":
		cf, err := readCorrelation(filter)
		if err != nil {
			return r, err
		}
		r.Properties = broker.RuleProperties{FilterType: broker.FilterCorrelation, CorrelationFilter: cf}
	default:
		return r, badRequest("Filter: type %q is not supported by this emulator (TrueFilter, FalseFilter, SqlFilter, CorrelationFilter)", t)
	}
	if action := d.child("Action"); action != nil {
		switch t := action.xsiType(); t {
		case "", "EmptyRuleAction":
		default:
			expr, _ := action.text("SqlExpression")
			r.Properties.Action = &broker.SQLExpression{SQLExpression: expr}
			if strings.TrimSpace(expr) == "" {
				return r, badRequest("Action: type %q is not supported by this emulator", t)
			}
		}
	}
	return r, nil
}

func sqlRule(expr string) broker.RuleProperties {
	return broker.RuleProperties{FilterType: broker.FilterSQL, SQLFilter: &broker.SQLExpression{SQLExpression: expr}}
}

func readCorrelation(n *node) (*broker.CorrelationFilter, error) {
	get := func(local string) string { v, _ := n.text(local); return v }
	cf := &broker.CorrelationFilter{
		CorrelationID: get("CorrelationId"), MessageID: get("MessageId"), To: get("To"), ReplyTo: get("ReplyTo"),
		Label: get("Label"), SessionID: get("SessionId"), ReplyToSessionID: get("ReplyToSessionId"), ContentType: get("ContentType"),
	}
	props := n.child("Properties")
	if props == nil {
		return cf, nil
	}
	cf.Properties = map[string]any{}
	for i := range props.Nodes {
		kv := &props.Nodes[i]
		key, _ := kv.text("Key")
		val := kv.child("Value")
		if key == "" || val == nil {
			return nil, badRequest("Filter.Properties: every KeyValueOfstringanyType needs a Key and a Value")
		}
		text := strings.TrimSpace(val.Text)
		var v any
		var err error
		switch t := val.xsiType(); t {
		case "string", "":
			v = val.Text
		case "int", "long", "short", "byte", "unsignedInt", "unsignedShort", "unsignedByte":
			v, err = strconv.ParseInt(text, 10, 64)
		case "double", "float", "decimal":
			v, err = strconv.ParseFloat(text, 64)
		case "boolean":
			v, err = strconv.ParseBool(text)
		default:
			return nil, badRequest("Filter.Properties.%s: values of type %q are not supported by this emulator", key, t)
		}
		if err != nil {
			return nil, badRequest("Filter.Properties.%s: %q is not a valid %s", key, text, val.xsiType())
		}
		cf.Properties[key] = v
	}
	return cf, nil
}

func (s *server) putRule(topic, sub, name string, d *node, update bool) (entryBody, error) {
	r, err := readRule(d, name)
	if err != nil {
		return entryBody{}, err
	}
	if !strings.EqualFold(r.Name, name) {
		return entryBody{}, badRequest("the rule's Name %q differs from the name in the path %q", r.Name, name)
	}
	r.Name = name
	path := topic + broker.SubscriptionsSegment + sub
	if update {
		err = s.b.UpdateRule(topic, sub, r)
	} else {
		err = s.b.CreateRule(topic, sub, r)
	}
	if err := s.brokerErr(err, "Rule", path+"/Rules/"+name); err != nil {
		return entryBody{}, err
	}
	return s.ruleEntry(topic, sub, name)
}

func (s *server) ruleEntry(topic, sub, name string) (entryBody, error) {
	rules, err := s.b.Rules(topic, sub)
	if err != nil {
		return entryBody{}, err
	}
	i := -1
	for k, r := range rules {
		if strings.EqualFold(r.Name, name) {
			i = k
		}
	}
	if i < 0 {
		return entryBody{}, fmt.Errorf("rule %q of %s/Subscriptions/%s: %w", name, topic, sub, broker.ErrEntityNotFound)
	}
	r := rules[i]
	var created = s.subscriptionCreated(topic, sub)
	var x writer
	x.open("RuleDescription", "xmlns", nsServiceBus, "xmlns:i", nsInstance)
	writeFilter(&x, r.Properties)
	x.open("Action", "i:type", "EmptyRuleAction")
	x.close("Action")
	x.time("CreatedAt", created)
	x.elem("Name", r.Name)
	x.close("RuleDescription")
	return entryBody{xml: x.b.String(), created: created, updated: created}, nil
}

func (s *server) subscriptionCreated(topic, sub string) (t time.Time) {
	if e, err := s.b.Entity(topic + broker.SubscriptionsSegment + sub); err == nil {
		return e.Stats().CreatedAt
	}
	return t
}

func writeFilter(x *writer, p broker.RuleProperties) {
	if p.FilterType == broker.FilterSQL {
		expr := p.SQLFilter.SQLExpression
		kind := "SqlFilter"
		switch strings.Join(strings.Fields(expr), "") {
		case broker.TrueFilterExpression:
			kind = "TrueFilter"
		case broker.FalseFilterExpression:
			kind = "FalseFilter"
		}
		x.open("Filter", "i:type", kind)
		x.elem("SqlExpression", expr)
		x.integer("CompatibilityLevel", 20)
		x.close("Filter")
		return
	}
	cf := p.CorrelationFilter
	x.open("Filter", "i:type", "CorrelationFilter")
	for _, f := range []struct{ name, v string }{
		{"CorrelationId", cf.CorrelationID}, {"MessageId", cf.MessageID}, {"To", cf.To}, {"ReplyTo", cf.ReplyTo},
		{"Label", cf.Label}, {"SessionId", cf.SessionID}, {"ReplyToSessionId", cf.ReplyToSessionID}, {"ContentType", cf.ContentType},
	} {
		if f.v != "" {
			x.elem(f.name, f.v)
		}
	}
	if len(cf.Properties) > 0 {
		x.open("Properties")
		keys := make([]string, 0, len(cf.Properties))
		for k := range cf.Properties {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			x.open("KeyValueOfstringanyType")
			x.elem("Key", k)
			t, text := xsdValue(cf.Properties[k])
			x.elem("Value", text, "i:type", "d6p1:"+t, "xmlns:d6p1", nsSchema)
			x.close("KeyValueOfstringanyType")
		}
		x.close("Properties")
	}
	x.close("Filter")
}

// xsdValue returns the XML Schema type and text of a correlation-filter property value.
func xsdValue(v any) (string, string) {
	switch v := v.(type) {
	case bool:
		return "boolean", strconv.FormatBool(v)
	case int64:
		if v >= math.MinInt32 && v <= math.MaxInt32 {
			return "int", strconv.FormatInt(v, 10)
		}
		return "long", strconv.FormatInt(v, 10)
	case float64:
		return "double", strconv.FormatFloat(v, 'f', -1, 64)
	case string:
		return "string", v
	default:
		return "string", ""
	}
}
