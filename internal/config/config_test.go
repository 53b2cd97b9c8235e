package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const (
	sbConn      = "Endpoint=sb://localhost:5672/;SharedAccessKeyName=RootManageSharedAccessKey;SharedAccessKey=abc=;UseDevelopmentEmulator=true"
	azuriteConn = "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=a2V5;TableEndpoint=http://127.0.0.1:10002/devstoreaccount1;"
)

func env(kv map[string]string) func(string) string {
	return func(k string) string { return kv[k] }
}

// base returns a minimal valid environment with the given overrides ("" deletes a key).
func base(over map[string]string) map[string]string {
	m := map[string]string{SettingServiceBus: sbConn, SettingEntity: "orders"}
	for k, v := range over {
		if v == "" {
			delete(m, k)
			continue
		}
		m[k] = v
	}
	return m
}

func TestLoadDefaults(t *testing.T) {
	c, err := Load(env(base(nil)))
	if err != nil {
		t.Fatal(err)
	}
	want := Config{
		ServiceBus: Connection{ConnectionString: sbConn}, Entity: Entity{Queue: "orders"},
		DeferralTable: DefaultTable, BatchSize: 20, Concurrency: 8, MaxSessions: 8,
		RunBudget: 4*time.Minute + 30*time.Second, MaxLockRenewal: 4*time.Minute + 30*time.Second,
		Processor: "demo", FunctionTimeout: 5 * time.Minute,
	}
	if *c != want {
		t.Fatalf("got %+v\nwant %+v", *c, want)
	}
}

func TestLoadValid(t *testing.T) {
	tests := []struct {
		name  string
		over  map[string]string
		check func(*Config) bool
	}{
		{"topic subscription", map[string]string{SettingEntity: "orders/Subscriptions/billing"},
			func(c *Config) bool { return c.Entity == Entity{Topic: "orders", Subscription: "billing"} }},
		{"subscriptions case-insensitive", map[string]string{SettingEntity: "t/subscriptions/s"},
			func(c *Config) bool { return c.Entity.Topic == "t" && c.Entity.Subscription == "s" }},
		{"queue with slash", map[string]string{SettingEntity: "app/orders"},
			func(c *Config) bool { return c.Entity.Queue == "app/orders" }},
		{"namespace identity", map[string]string{SettingServiceBus: "", SettingServiceBusNamespace: "ns.servicebus.windows.net",
			SettingServiceBusCred: "managedidentity", SettingServiceBusClientID: "cid"},
			func(c *Config) bool {
				return c.ServiceBus == Connection{Endpoint: "ns.servicebus.windows.net", Credential: "managedidentity", ClientID: "cid"}
			}},
		{"storage connection string", map[string]string{SettingStorage: azuriteConn},
			func(c *Config) bool { return c.Storage.ConnectionString == azuriteConn }},
		{"storage uri", map[string]string{SettingStorageURI: "https://acct.table.core.windows.net/"},
			func(c *Config) bool { return c.Storage.Endpoint == "https://acct.table.core.windows.net/" }},
		{"table", map[string]string{SettingTable: "Deferrals2"}, func(c *Config) bool { return c.DeferralTable == "Deferrals2" }},
		{"batch", map[string]string{SettingBatchSize: "5000"}, func(c *Config) bool { return c.BatchSize == 5000 }},
		{"concurrency", map[string]string{SettingConcurrency: " 50 "}, func(c *Config) bool { return c.Concurrency == 50 }},
		{"budget sets renewal default", map[string]string{SettingRunBudget: "1m"},
			func(c *Config) bool { return c.RunBudget == time.Minute && c.MaxLockRenewal == time.Minute }},
		{"max renewal", map[string]string{SettingMaxLockRenewal: "10m"}, func(c *Config) bool { return c.MaxLockRenewal == 10*time.Minute }},
		{"processor case", map[string]string{SettingProcessor: "Demo"}, func(c *Config) bool { return c.Processor == "demo" }},
		{"lock duration", map[string]string{SettingLockDuration: "5s"}, func(c *Config) bool { return c.LockDuration == 5*time.Second }},
		{"message ttl", map[string]string{SettingMessageTTL: "336h"}, func(c *Config) bool { return c.MessageTTL == 336*time.Hour }},
		{"sessions", map[string]string{SettingRequiresSession: "true", SettingMaxSessions: "3"},
			func(c *Config) bool { return c.RequiresSession && c.MaxSessions == 3 }},
		{"sessions default to the concurrency", map[string]string{SettingRequiresSession: "True", SettingConcurrency: "12"},
			func(c *Config) bool { return c.RequiresSession && c.MaxSessions == 12 }},
		{"no sessions", map[string]string{SettingRequiresSession: "false"}, func(c *Config) bool { return !c.RequiresSession }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Load(env(base(tt.over)))
			if err != nil {
				t.Fatal(err)
			}
			if !tt.check(c) {
				t.Fatalf("unexpected config %+v", *c)
			}
		})
	}
}

func TestLoadInvalid(t *testing.T) {
	tests := []struct {
		name    string
		over    map[string]string
		setting string // named in the error
		want    string // also in the error
	}{
		{"no service bus", map[string]string{SettingServiceBus: ""}, SettingServiceBus, "not set"},
		{"both service bus", map[string]string{SettingServiceBusNamespace: "ns.servicebus.windows.net"}, SettingServiceBus, "both"},
		{"no endpoint", map[string]string{SettingServiceBus: "SharedAccessKeyName=a;SharedAccessKey=b"}, SettingServiceBus, "no Endpoint"},
		{"https endpoint", map[string]string{SettingServiceBus: "Endpoint=https://x/;SharedAccessKeyName=a;SharedAccessKey=b"}, SettingServiceBus, "sb://"},
		{"no key", map[string]string{SettingServiceBus: "Endpoint=sb://x/"}, SettingServiceBus, "SharedAccessKeyName"},
		{"namespace with scheme", map[string]string{SettingServiceBus: "", SettingServiceBusNamespace: "sb://ns.servicebus.windows.net"},
			SettingServiceBusNamespace, "host name"},
		{"bad credential", map[string]string{SettingServiceBus: "", SettingServiceBusNamespace: "ns.servicebus.windows.net", SettingServiceBusCred: "cli"},
			SettingServiceBusCred, "unknown credential"},
		{"no entity", map[string]string{SettingEntity: ""}, SettingEntity, "not set"},
		{"bad entity char", map[string]string{SettingEntity: "or ders"}, SettingEntity, "contains"},
		{"entity ends with dash", map[string]string{SettingEntity: "orders-"}, SettingEntity, "start and end"},
		{"bad subscription path", map[string]string{SettingEntity: "a/Subscriptions"}, SettingEntity, "<topic>/Subscriptions/<subscription>"},
		{"empty subscription", map[string]string{SettingEntity: "a/Subscriptions/"}, SettingEntity, "subscription"},
		{"long subscription", map[string]string{SettingEntity: "a/Subscriptions/" + strings.Repeat("s", 51)}, SettingEntity, "longer than 50"},
		{"development storage", map[string]string{SettingStorage: "UseDevelopmentStorage=true"}, SettingStorage, "UseDevelopmentStorage"},
		{"storage garbage", map[string]string{SettingStorage: "hello"}, SettingStorage, "AccountName"},
		{"both storage", map[string]string{SettingStorage: azuriteConn, SettingStorageURI: "https://a.table.core.windows.net"}, SettingStorage, "both"},
		{"storage uri", map[string]string{SettingStorageURI: "a.table.core.windows.net"}, SettingStorageURI, "http(s) URL"},
		{"storage credential", map[string]string{SettingStorageURI: "https://a.table.core.windows.net", SettingStorageCred: "x"}, SettingStorageCred, "unknown credential"},
		{"table short", map[string]string{SettingTable: "ab"}, SettingTable, "3 to 63"},
		{"table digit", map[string]string{SettingTable: "1abc"}, SettingTable, "start with a letter"},
		{"table dash", map[string]string{SettingTable: "ab-c"}, SettingTable, "contains"},
		{"table reserved", map[string]string{SettingTable: "Tables"}, SettingTable, "reserved"},
		{"batch not number", map[string]string{SettingBatchSize: "ten"}, SettingBatchSize, "whole number"},
		{"batch zero", map[string]string{SettingBatchSize: "0"}, SettingBatchSize, "out of range"},
		{"batch too big", map[string]string{SettingBatchSize: "5001"}, SettingBatchSize, "out of range"},
		{"concurrency negative", map[string]string{SettingConcurrency: "-1"}, SettingConcurrency, "out of range"},
		{"concurrency float", map[string]string{SettingConcurrency: "1.5"}, SettingConcurrency, "whole number"},
		{"requires session not bool", map[string]string{SettingRequiresSession: "sessions"}, SettingRequiresSession, "true or false"},
		{"max sessions zero", map[string]string{SettingMaxSessions: "0"}, SettingMaxSessions, "out of range"},
		{"max sessions too many", map[string]string{SettingMaxSessions: "1001"}, SettingMaxSessions, "out of range"},
		{"max sessions not number", map[string]string{SettingMaxSessions: "all"}, SettingMaxSessions, "whole number"},
		{"budget not duration", map[string]string{SettingRunBudget: "300"}, SettingRunBudget, "Go duration"},
		{"budget too long", map[string]string{SettingRunBudget: "5m"}, SettingRunBudget, "functionTimeout"},
		{"budget too short", map[string]string{SettingRunBudget: "10ms"}, SettingRunBudget, "shorter than"},
		{"renewal bad", map[string]string{SettingMaxLockRenewal: "x"}, SettingMaxLockRenewal, "Go duration"},
		{"renewal negative", map[string]string{SettingMaxLockRenewal: "-1s"}, SettingMaxLockRenewal, "not positive"},
		{"lock duration bad", map[string]string{SettingLockDuration: "60"}, SettingLockDuration, "Go duration"},
		{"lock duration too long", map[string]string{SettingLockDuration: "6m"}, SettingLockDuration, "out of range"},
		{"lock duration too short", map[string]string{SettingLockDuration: "500ms"}, SettingLockDuration, "out of range"},
		{"message ttl bad", map[string]string{SettingMessageTTL: "14d"}, SettingMessageTTL, "Go duration"},
		{"message ttl negative", map[string]string{SettingMessageTTL: "-1h"}, SettingMessageTTL, "negative"},
		{"processor unknown", map[string]string{SettingProcessor: "lambda"}, SettingProcessor, "unknown processor"},
		{"webhook without URL", map[string]string{SettingProcessor: "webhook"}, SettingWebhookURL, "not set"},
		{"webhook relative URL", wh(SettingWebhookURL, "/work"), SettingWebhookURL, "relative"},
		{"webhook host-less URL", wh(SettingWebhookURL, "work.example.com/x"), SettingWebhookURL, "relative"},
		{"webhook scheme", wh(SettingWebhookURL, "ftp://work.example.com/x"), SettingWebhookURL, `scheme "ftp"`},
		{"webhook user info", wh(SettingWebhookURL, "https://u:p@work.example.com/x"), SettingWebhookURL, "user information"},
		{"webhook URL not parsed", wh(SettingWebhookURL, "https://work.example.com:https/x?code=s3cret"), SettingWebhookURL, "not a URL"},
		{"webhook timeout over budget", wh(SettingWebhookTimeout, "5m"), SettingWebhookTimeout, "longer than the run budget"},
		{"webhook timeout not duration", wh(SettingWebhookTimeout, "30"), SettingWebhookTimeout, "Go duration"},
		{"webhook timeout zero", wh(SettingWebhookTimeout, "0s"), SettingWebhookTimeout, "not positive"},
		{"webhook headers not JSON", wh(SettingWebhookHeaders, "X-Key: 1"), SettingWebhookHeaders, "JSON object"},
		{"webhook headers number", wh(SettingWebhookHeaders, `{"X-Key":1}`), SettingWebhookHeaders, "JSON object"},
		{"webhook header name", wh(SettingWebhookHeaders, `{"X Key":"1"}`), SettingWebhookHeaders, "token"},
		{"webhook header newline", wh(SettingWebhookHeaders, `{"X-Key":"1\r\nX-Evil: 2"}`), SettingWebhookHeaders, "control character"},
		{"webhook header reserved", wh(SettingWebhookHeaders, `{"content-type":"text/plain"}`), SettingWebhookHeaders, "Content-Type"},
		{"webhook header ours", wh(SettingWebhookHeaders, `{"X-Holdfast-Message-Id":"x"}`), SettingWebhookHeaders, "X-Holdfast-Message-Id"},
		{"webhook audience whitespace", wh(SettingWebhookAudience, "api://work x"), SettingWebhookAudience, "whitespace"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Load(env(base(tt.over)))
			if err == nil {
				t.Fatalf("no error, config %+v", *c)
			}
			if !errors.Is(err, ErrInvalid) {
				t.Errorf("error %v does not wrap ErrInvalid", err)
			}
			var se *SettingError
			if !errors.As(err, &se) || se.Setting != tt.setting {
				t.Errorf("error %v: want a SettingError for %s", err, tt.setting)
			}
			if n := strings.Count(err.Error(), "config: "); n != 1 {
				t.Errorf("error %q reports %d problems, want 1", err, n)
			}
			if !strings.Contains(err.Error(), tt.setting) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not mention %q and %q", err, tt.setting, tt.want)
			}
			if strings.Contains(err.Error(), "s3cret") { // the webhook URL may carry a key: never echoed
				t.Errorf("error %q shows the URL's key", err)
			}
		})
	}
}

// wh returns webhook settings with a valid URL and k set to v.
func wh(k, v string) map[string]string {
	m := map[string]string{SettingProcessor: "webhook", SettingWebhookURL: "https://work.example.com/messages"}
	m[k] = v
	return m
}

func TestLoadWebhook(t *testing.T) {
	c, err := Load(env(base(map[string]string{SettingProcessor: "webhook", SettingWebhookURL: "http://127.0.0.1:8081/work",
		SettingWebhookHeaders: `{"x-api-key":"k1"}`, SettingWebhookAudience: "api://work"})))
	if err != nil {
		t.Fatal(err)
	}
	if c.Webhook.Timeout != c.RunBudget || c.Webhook.URL != "http://127.0.0.1:8081/work" || c.Webhook.Scope() != "api://work/.default" {
		t.Fatalf("webhook %+v (scope %q)", c.Webhook, c.Webhook.Scope())
	}
	h, err := ParseWebhookHeaders(c.Webhook.Headers, true)
	if err != nil || h.Get("X-Api-Key") != "k1" || len(h) != 1 {
		t.Fatalf("headers %v, %v", h, err)
	}
	if _, err := ParseWebhookHeaders(`{"Authorization":"Basic eA=="}`, true); err == nil {
		t.Fatal("a static Authorization header accepted alongside the audience token")
	}
	if _, err := ParseWebhookHeaders(`{"Authorization":"Basic eA=="}`, false); err != nil {
		t.Fatalf("a static Authorization header without an audience: %v", err)
	}
	// Webhook settings are not read for another processor.
	c, err = Load(env(base(map[string]string{SettingWebhookURL: "not a url", SettingWebhookTimeout: "x"})))
	if err != nil || c.Webhook != (Webhook{}) {
		t.Fatalf("demo processor with bad webhook settings: %+v, %v", c, err)
	}
}

func TestLoadReportsEveryProblem(t *testing.T) {
	_, err := Load(env(map[string]string{SettingBatchSize: "x", SettingConcurrency: "0"}))
	for _, s := range []string{SettingBatchSize, SettingConcurrency} {
		if err == nil || !strings.Contains(err.Error(), s) {
			t.Errorf("error %v does not name %s", err, s)
		}
	}
	_, err = Load(env(map[string]string{SettingEntity: "q", SettingConcurrency: "0"}))
	for _, s := range []string{SettingServiceBus, SettingConcurrency} {
		if err == nil || !strings.Contains(err.Error(), s) {
			t.Errorf("error %v does not name %s", err, s)
		}
	}
}

func TestLoadWithFunctionTimeout(t *testing.T) {
	c, err := LoadWith(env(base(nil)), &LoadOptions{FunctionTimeout: 10 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	if c.RunBudget != 9*time.Minute+30*time.Second || c.FunctionTimeout != 10*time.Minute {
		t.Fatalf("budget %v timeout %v", c.RunBudget, c.FunctionTimeout)
	}
	if _, err := LoadWith(env(base(map[string]string{SettingRunBudget: "20m"})), &LoadOptions{FunctionTimeout: 10 * time.Minute}); err == nil {
		t.Fatal("budget above functionTimeout accepted")
	}
}

func TestFunctionTimeoutFromHostJSON(t *testing.T) {
	tests := []struct {
		json    string
		want    time.Duration
		wantErr bool
	}{
		{`{"version":"2.0"}`, DefaultFunctionTimeout, false},
		{`{"functionTimeout":"00:10:00"}`, 10 * time.Minute, false},
		{`{"functionTimeout":"01:00:00.5"}`, time.Hour + 500*time.Millisecond, false},
		{`{"functionTimeout":"1.02:00:00"}`, 26 * time.Hour, false},
		{`{"functionTimeout":"-1"}`, UnboundedFunctionTimeout, false},
		{`{"functionTimeout":"-00:00:01"}`, UnboundedFunctionTimeout, false},
		{`{"functionTimeout":"10m"}`, 0, true},
		{`{"functionTimeout":"00:61:00"}`, 0, true},
		{`{"functionTimeout":"00:00:00"}`, 0, true},
		{`{"functionTimeout":"00:10:00.1234567"}`, 10*time.Minute + 123456700*time.Nanosecond, false},
		// Go's number syntax is not a TimeSpan's: NaN became an unbounded timeout, the others odd values.
		{`{"functionTimeout":"00:00:NaN"}`, 0, true},
		{`{"functionTimeout":"00:10:1e1"}`, 0, true},
		{`{"functionTimeout":"00:00:0x1p4"}`, 0, true},
		{`{"functionTimeout":"00:10:5_0"}`, 0, true},
		{`{"functionTimeout":"+00:10:00"}`, 0, true},
		{`{"functionTimeout":"00:+10:00"}`, 0, true},
		{`{"functionTimeout":"00:10:00."}`, 0, true},
		{`{"functionTimeout":"00:10:00.12345678"}`, 0, true},
		{`{"functionTimeout":"1.5.00:00:00"}`, 0, true},
		{`{"functionTimeout":5}`, 0, true},
		{`{`, 0, true},
	}
	for _, tt := range tests {
		got, err := FunctionTimeoutFromHostJSON([]byte(tt.json))
		if (err != nil) != tt.wantErr || got != tt.want {
			t.Errorf("%s: got %v, %v; want %v, err=%v", tt.json, got, err, tt.want, tt.wantErr)
		}
		if err != nil && !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: error %v does not wrap ErrInvalid", tt.json, err)
		}
	}
}

func TestFunctionTimeoutFromDir(t *testing.T) {
	dir := t.TempDir()
	if d, err := FunctionTimeoutFromDir(dir); err != nil || d != DefaultFunctionTimeout {
		t.Fatalf("missing host.json: %v, %v", d, err)
	}
	if err := os.WriteFile(filepath.Join(dir, HostJSONFile), []byte(`{"functionTimeout":"00:07:00"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if d, err := FunctionTimeoutFromDir(dir); err != nil || d != 7*time.Minute {
		t.Fatalf("host.json: %v, %v", d, err)
	}
}

func TestEntityString(t *testing.T) {
	for _, s := range []string{"orders", "t/Subscriptions/s"} {
		e, err := ParseEntity(s)
		if err != nil || e.String() != s {
			t.Errorf("%s: %v %v", s, e, err)
		}
	}
}

func TestTokenCredential(t *testing.T) {
	for _, c := range []Connection{{Endpoint: "ns.servicebus.windows.net"}, {Endpoint: "x", Credential: "managedidentity", ClientID: "id"}} {
		cred, err := c.TokenCredential()
		if err != nil || cred == nil {
			t.Errorf("%+v: %v", c, err)
		}
	}
}

// With CustomProcessor the program supplies the processor: HOLDFAST_PROCESSOR is neither read nor validated.
func TestLoadCustomProcessorIgnoresTheSetting(t *testing.T) {
	c, err := LoadWith(env(base(map[string]string{SettingProcessor: "lambda"})), &LoadOptions{CustomProcessor: true})
	if err != nil {
		t.Fatal(err)
	}
	if c.Processor != "" {
		t.Fatalf("Processor %q, want \"\" (custom)", c.Processor)
	}
	if _, err := Load(env(base(map[string]string{SettingProcessor: "lambda"}))); err == nil {
		t.Fatal("unknown processor accepted without CustomProcessor")
	}
}
