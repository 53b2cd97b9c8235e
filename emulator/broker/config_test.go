package broker

import (
	"bytes"
	"errors"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"
)

func TestLoadExampleConfig(t *testing.T) {
	cfg, err := LoadConfig("testdata/Config.json")
	if err != nil {
		t.Fatal(err)
	}
	ns := cfg.UserConfig.Namespaces[0]
	if ns.Name != "sbemulatorns" || len(ns.Queues) != 2 || len(ns.Topics) != 1 || cfg.UserConfig.Logging.Type != "File" {
		t.Fatalf("parsed %+v", cfg)
	}
	q := ns.Queues[0].Properties
	if q.LockDuration != 5*time.Second || q.MaxDeliveryCount != 10 || q.DefaultMessageTimeToLive != 14*24*time.Hour ||
		q.DuplicateDetectionHistoryTimeWindow != 20*time.Second {
		t.Errorf("queue properties %+v", q)
	}
	if got := ns.Queues[1].Properties; got != DefaultQueueProperties() {
		t.Errorf("queue without properties got %+v, want the defaults", got)
	}
	sub := ns.Topics[0].Subscriptions[0]
	cf := sub.Rules[0].Properties.CorrelationFilter
	if sub.Properties.MaxDeliveryCount != 3 || cf == nil || cf.CorrelationID != "id1" || cf.Properties["prop1"] != "value1" ||
		cf.Properties["n"] != int64(3) {
		t.Errorf("subscription %+v, filter %+v", sub, cf)
	}
	if sql := sub.Rules[1].Properties; sql.SQLFilter == nil || sql.SQLFilter.SQLExpression != "1=1" || sql.Action != nil {
		t.Errorf("sql rule %+v", sql)
	}

	// New builds the queues, the topic and its subscription.
	var logs bytes.Buffer
	b, err := New(cfg, &Options{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	e, err := b.Entity("ORDERS")
	if err != nil || e.LockDuration() != 5*time.Second {
		t.Fatalf("Entity(ORDERS) = %v, %v", e, err)
	}
	for _, path := range []string{"topic.1", "TOPIC.1/$management", "topic.1/subscriptions/SUBSCRIPTION.1", "topic.1/Subscriptions/subscription.1/$DeadLetterQueue"} {
		if !b.Known(path) {
			t.Errorf("Known(%q) = false", path)
		}
	}
	s, err := b.Entity("topic.1/Subscriptions/subscription.1")
	if err != nil || s.Kind() != KindSubscription || s.Properties().MaxDeliveryCount != 3 {
		t.Fatalf("subscription entity %v, %v", s, err)
	}
	if !strings.Contains(logs.String(), "subscription created") {
		t.Errorf("no log line about the subscription in %q", logs.String())
	}
}

func TestParseConfigErrors(t *testing.T) {
	queue := func(props string) string {
		return `{"UserConfig":{"Namespaces":[{"Name":"sbemulatorns","Queues":[{"Name":"a"},{"Name":"b","Properties":{` + props + `}}]}]}}`
	}
	tests := []struct {
		name, json, wantPath, wantMsg string
	}{
		{"not json", `{`, "$", "invalid JSON"},
		{"trailing", `{"UserConfig":{}} {}`, "$", "trailing"},
		{"top not object", `[]`, "$", "must be an object"},
		{"no user config", `{}`, "UserConfig", "required"},
		{"unknown top", `{"UserConfig":{},"Extra":1}`, "$.Extra", "unknown field"},
		{"typo", queue(`"LockDurationn":"PT1M"`), "UserConfig.Namespaces[0].Queues[1].Properties.LockDurationn", "unknown field"},
		{"lock too long", queue(`"LockDuration":"PT6M"`), "UserConfig.Namespaces[0].Queues[1].Properties.LockDuration", "allowed PT1S..PT5M"},
		{"lock too short", queue(`"LockDuration":"PT0.5S"`), "UserConfig.Namespaces[0].Queues[1].Properties.LockDuration", "out of range"},
		{"bad duration", queue(`"LockDuration":"1 minute"`), "UserConfig.Namespaces[0].Queues[1].Properties.LockDuration", "must start with P"},
		{"duration type", queue(`"LockDuration":60`), "UserConfig.Namespaces[0].Queues[1].Properties.LockDuration", "must be a string"},
		{"deliveries", queue(`"MaxDeliveryCount":0`), "UserConfig.Namespaces[0].Queues[1].Properties.MaxDeliveryCount", "allowed 1..2000"},
		{"deliveries fraction", queue(`"MaxDeliveryCount":1.5`), "UserConfig.Namespaces[0].Queues[1].Properties.MaxDeliveryCount", "must be an integer"},
		{"ttl too long", queue(`"DefaultMessageTimeToLive":"P10675200D"`), "UserConfig.Namespaces[0].Queues[1].Properties.DefaultMessageTimeToLive", "P10675199D"},
		{"bool type", queue(`"RequiresSession":"no"`), "UserConfig.Namespaces[0].Queues[1].Properties.RequiresSession", "true or false"},
		{"forward", queue(`"ForwardTo":"no such//name"`), "UserConfig.Namespaces[0].Queues[1].Properties.ForwardTo", "must separate"},
		{"dup window", queue(`"DuplicateDetectionHistoryTimeWindow":"PT1S"`), "UserConfig.Namespaces[0].Queues[1].Properties.DuplicateDetectionHistoryTimeWindow", "PT5S..P7D"},
		{"duplicate name", `{"UserConfig":{"Namespaces":[{"Name":"n","Queues":[{"Name":"q"},{"Name":"Q"}]}]}}`, "UserConfig.Namespaces[0].Queues[1].Name", "duplicates"},
		{"empty name", `{"UserConfig":{"Namespaces":[{"Name":"n","Queues":[{}]}]}}`, "UserConfig.Namespaces[0].Queues[0].Name", "must not be empty"},
		{"bad name", `{"UserConfig":{"Namespaces":[{"Name":"n","Queues":[{"Name":"a$b"}]}]}}`, "UserConfig.Namespaces[0].Queues[0].Name", "not allowed"},
		{"no ns name", `{"UserConfig":{"Namespaces":[{}]}}`, "UserConfig.Namespaces[0].Name", "must not be empty"},
		{"two namespaces", `{"UserConfig":{"Namespaces":[{"Name":"a"},{"Name":"b"}]}}`, "UserConfig.Namespaces", "only one"},
		{"queues not array", `{"UserConfig":{"Namespaces":[{"Name":"a","Queues":{}}]}}`, "UserConfig.Namespaces[0].Queues", "must be an array"},
		{"logging", `{"UserConfig":{"Logging":{"Type":"Syslog"}}}`, "UserConfig.Logging.Type", "File"},
		{"topic/queue clash", `{"UserConfig":{"Namespaces":[{"Name":"n","Queues":[{"Name":"x"}],"Topics":[{"Name":"X"}]}]}}`, "UserConfig.Namespaces[0].Topics[0].Name", "duplicates"},
		{"rule type", `{"UserConfig":{"Namespaces":[{"Name":"n","Topics":[{"Name":"t","Subscriptions":[{"Name":"s","Rules":[{"Name":"r","Properties":{"FilterType":"Regex"}}]}]}]}]}}`,
			"UserConfig.Namespaces[0].Topics[0].Subscriptions[0].Rules[0].Properties.FilterType", "Correlation"},
		{"sql without expression", `{"UserConfig":{"Namespaces":[{"Name":"n","Topics":[{"Name":"t","Subscriptions":[{"Name":"s","Rules":[{"Name":"r","Properties":{"FilterType":"Sql"}}]}]}]}]}}`,
			"UserConfig.Namespaces[0].Topics[0].Subscriptions[0].Rules[0].Properties.SqlFilter.SqlExpression", "required"},
		{"filter unknown field", `{"UserConfig":{"Namespaces":[{"Name":"n","Topics":[{"Name":"t","Subscriptions":[{"Name":"s","Rules":[{"Name":"r","Properties":{"FilterType":"Correlation","CorrelationFilter":{"Subject":"x"}}}]}]}]}]}}`,
			"UserConfig.Namespaces[0].Topics[0].Subscriptions[0].Rules[0].Properties.CorrelationFilter.Subject", "unknown field"},
		{"filter property type", `{"UserConfig":{"Namespaces":[{"Name":"n","Topics":[{"Name":"t","Subscriptions":[{"Name":"s","Rules":[{"Name":"r","Properties":{"FilterType":"Correlation","CorrelationFilter":{"Properties":{"p":[1]}}}}]}]}]}]}}`,
			"UserConfig.Namespaces[0].Topics[0].Subscriptions[0].Rules[0].Properties.CorrelationFilter.Properties.p", "must be a string, number or boolean"},
		{"sql filter", `{"UserConfig":{"Namespaces":[{"Name":"n","Topics":[{"Name":"t","Subscriptions":[{"Name":"s","Rules":[{"Name":"r","Properties":{"FilterType":"Sql","SqlFilter":{"SqlExpression":"sys.Label='x'"}}}]}]}]}]}}`,
			"UserConfig.Namespaces[0].Topics[0].Subscriptions[0].Rules[0].Properties.SqlFilter.SqlExpression", "SQL filters are not supported"},
		{"rule action", `{"UserConfig":{"Namespaces":[{"Name":"n","Topics":[{"Name":"t","Subscriptions":[{"Name":"s","Rules":[{"Name":"r","Properties":{"FilterType":"Sql","SqlFilter":{"SqlExpression":" 1 = 1 "},"Action":{"SqlExpression":"SET a=1"}}}]}]}]}]}}`,
			"UserConfig.Namespaces[0].Topics[0].Subscriptions[0].Rules[0].Properties.Action.SqlExpression", "actions are not supported"},
		{"empty correlation filter", `{"UserConfig":{"Namespaces":[{"Name":"n","Topics":[{"Name":"t","Subscriptions":[{"Name":"s","Rules":[{"Name":"r","Properties":{"FilterType":"Correlation","CorrelationFilter":{}}}]}]}]}]}}`,
			"UserConfig.Namespaces[0].Topics[0].Subscriptions[0].Rules[0].Properties.CorrelationFilter", "at least one"},
		{"subscription lock", `{"UserConfig":{"Namespaces":[{"Name":"n","Topics":[{"Name":"t","Subscriptions":[{"Name":"s","Properties":{"LockDuration":"PT10M"}}]}]}]}}`,
			"UserConfig.Namespaces[0].Topics[0].Subscriptions[0].Properties.LockDuration", "allowed PT1S..PT5M"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := ParseConfig([]byte(tt.json))
			var ce *ConfigError
			if !errors.As(err, &ce) {
				t.Fatalf("ParseConfig = %+v, %v; want a *ConfigError", cfg, err)
			}
			if ce.Path != tt.wantPath || !strings.Contains(ce.Msg, tt.wantMsg) {
				t.Errorf("error %q; want path %q and a message containing %q", err, tt.wantPath, tt.wantMsg)
			}
		})
	}
}

func TestParseConfigExtensions(t *testing.T) {
	cfg, err := ParseConfig([]byte(`{"UserConfig":{"Namespaces":[{"Name":"n","Queues":[{"Name":"q","Properties":{
		"LockDuration":"PT1S","DefaultMessageTimeToLive":"P10675199D","MaxDeliveryCount":100}}]}]}}`))
	if err != nil {
		t.Fatal(err)
	}
	p := cfg.UserConfig.Namespaces[0].Queues[0].Properties
	if p.LockDuration != time.Second || p.DefaultMessageTimeToLive != MaxDuration || p.MaxDeliveryCount != 100 {
		t.Errorf("properties %+v", p)
	}
	if _, err := ParseConfig([]byte(`{"UserConfig":{}}`)); err != nil {
		t.Errorf("empty UserConfig: %v", err)
	}
}

func TestLoadConfigMissingFile(t *testing.T) {
	if _, err := LoadConfig("testdata/nope.json"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("LoadConfig of a missing file: %v, want os.ErrNotExist", err)
	}
}

func FuzzParseConfig(f *testing.F) {
	example, err := os.ReadFile("testdata/Config.json")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(example)
	f.Add([]byte(`{"UserConfig":{"Namespaces":[{"Name":"n","Queues":[{"Name":"q","Properties":{"LockDuration":"PT1M"}}]}]}}`))
	f.Add([]byte(`{"UserConfig":{"Logging":{"Type":"Console"}}}`))
	f.Add(example[:len(example)/2])
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := ParseConfig(data)
		if err != nil {
			var ce *ConfigError
			if !errors.As(err, &ce) || ce.Path == "" {
				t.Fatalf("error without a path: %v", err)
			}
			return
		}
		if err := cfg.Validate(); err != nil {
			t.Fatalf("parsed config fails Validate: %v", err)
		}
		b, err := New(cfg, &Options{Clock: NewManualClock(t0)})
		if err != nil {
			t.Fatalf("New rejects a parsed config: %v", err)
		}
		b.Close()
	})
}

// Values Azure rejects are accepted as emulator extensions, and the start-up log names Azure's limit.
func TestExtensionWarnings(t *testing.T) {
	var logs bytes.Buffer
	cfg, err := ParseConfig([]byte(`{"UserConfig": {"Namespaces": [{"Name": "ns",
		"Queues": [{"Name": "short", "Properties": {"LockDuration": "PT1S", "RequiresDuplicateDetection": true, "DuplicateDetectionHistoryTimeWindow": "PT5S"}},
		           {"Name": "azure", "Properties": {"LockDuration": "PT5S", "RequiresDuplicateDetection": true, "DuplicateDetectionHistoryTimeWindow": "PT20S"}}],
		"Topics": [{"Name": "t", "Properties": {"RequiresDuplicateDetection": true, "DuplicateDetectionHistoryTimeWindow": "PT10S"},
		            "Subscriptions": [{"Name": "s", "Properties": {"LockDuration": "PT2S"}}]}]}]}}`))
	if err != nil {
		t.Fatal(err)
	}
	b, err := New(cfg, &Options{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	b.Close()
	for _, want := range []string{
		"queue short.LockDuration PT1S is below Azure's minimum PT5S",
		"queue short.DuplicateDetectionHistoryTimeWindow PT5S is below Azure's minimum PT20S",
		"topic t.DuplicateDetectionHistoryTimeWindow PT10S is below Azure's minimum PT20S",
		"subscription t/Subscriptions/s.LockDuration PT2S is below Azure's minimum PT5S",
	} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("start-up log lacks %q:\n%s", want, logs.String())
		}
	}
	if strings.Contains(logs.String(), "queue azure.") {
		t.Errorf("a queue within Azure's limits was warned about:\n%s", logs.String())
	}
}
