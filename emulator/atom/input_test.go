package atom

import (
	"encoding/xml"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/holdfast-dev/holdfast/emulator/broker"
)

func newTestServer(t testing.TB) (http.Handler, *broker.Broker) {
	t.Helper()
	b, err := broker.New(nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	if err := b.CreateTopic("events", broker.DefaultTopicProperties()); err != nil {
		t.Fatal(err)
	}
	if err := b.CreateSubscription("events", "s", broker.DefaultSubscriptionProperties(), nil); err != nil {
		t.Fatal(err)
	}
	return New(b, nil), b
}

func entry(content string) string {
	return `<entry xmlns="http://www.w3.org/2005/Atom"><content type="application/xml">` + content + `</content></entry>`
}

func queueXML(inner string) string {
	return entry(`<QueueDescription xmlns="http://schemas.microsoft.com/netservices/2010/10/servicebus/connect">` + inner + `</QueueDescription>`)
}

func ruleXML(inner string) string {
	return entry(`<RuleDescription xmlns="http://schemas.microsoft.com/netservices/2010/10/servicebus/connect" xmlns:i="http://www.w3.org/2001/XMLSchema-instance">` + inner + `</RuleDescription>`)
}

type errorBody struct {
	Code   int    `xml:"Code"`
	Detail string `xml:"Detail"`
}

// TestBadInput: every malformed request gets the status Azure answers and an <Error> whose
// Detail names the problem; nothing is created.
func TestBadInput(t *testing.T) {
	h, b := newTestServer(t)
	tests := []struct {
		method, path, body string
		want               int
		detail             string
	}{
		{"PUT", "/q", `not xml`, 400, "not XML"},
		{"PUT", "/q", `<feed/>`, 400, "<entry>"},
		{"PUT", "/q", entry(""), 400, "no <content>"},
		{"PUT", "/q", queueXML(`<RequiresSession>maybe</RequiresSession>`), 400, "RequiresSession"},
		{"PUT", "/q", queueXML(`<MaxDeliveryCount>-1</MaxDeliveryCount>`), 400, "MaxDeliveryCount"},
		{"PUT", "/q", queueXML(`<LockDuration>PT1H</LockDuration>`), 400, "LockDuration"},
		{"PUT", "/q", queueXML(`<DefaultMessageTimeToLive>1 day</DefaultMessageTimeToLive>`), 400, "DefaultMessageTimeToLive"},
		{"PUT", "/q", queueXML(`<Status>Paused</Status>`), 400, "Status"},
		{"PUT", "/q", queueXML(`<AutoDeleteOnIdle>PT1M</AutoDeleteOnIdle>`), 400, "PT5M"},
		{"PUT", "/q", queueXML(`<ForwardTo>sb://host/</ForwardTo>`), 400, "ForwardTo"},
		{"PUT", "/q/Subscriptions/s", queueXML(``), 400, "cannot be put"},
		{"PUT", "/events", queueXML(``), 409, "already exists"},
		{"PUT", "/events/Subscriptions/s/Rules/r", ruleXML(`<Filter i:type="SqlFilter"><SqlExpression>a = 1</SqlExpression></Filter><Name>r</Name>`), 400, "SQL filters are not supported"},
		{"PUT", "/events/Subscriptions/s/Rules/r", ruleXML(`<Filter i:type="BloomFilter"/><Name>r</Name>`), 400, "BloomFilter"},
		{"PUT", "/events/Subscriptions/s/Rules/r", ruleXML(`<Filter i:type="SqlFilter"><SqlExpression>1=1</SqlExpression><Parameters><KeyValueOfstringanyType><Key>@a</Key><Value>1</Value></KeyValueOfstringanyType></Parameters></Filter><Name>r</Name>`), 400, "parameters"},
		{"PUT", "/events/Subscriptions/s/Rules/r", ruleXML(`<Filter i:type="CorrelationFilter"><Properties><KeyValueOfstringanyType><Key>k</Key><Value i:type="d2:dateTime" xmlns:d2="http://www.w3.org/2001/XMLSchema">2020-01-01T00:00:00Z</Value></KeyValueOfstringanyType></Properties></Filter><Name>r</Name>`), 400, "dateTime"},
		{"PUT", "/events/Subscriptions/s/Rules/r", ruleXML(`<Filter i:type="CorrelationFilter"><Properties><KeyValueOfstringanyType><Key>k</Key><Value i:type="d2:int" xmlns:d2="http://www.w3.org/2001/XMLSchema">x</Value></KeyValueOfstringanyType></Properties></Filter><Name>r</Name>`), 400, "not a valid int"},
		{"PUT", "/events/Subscriptions/s/Rules/r", ruleXML(`<Action i:type="SqlRuleAction"><SqlExpression>SET a = 1</SqlExpression></Action><Name>r</Name>`), 400, "actions are not supported"},
		{"PUT", "/events/Subscriptions/s/Rules/r", ruleXML(`<Name>other</Name>`), 400, "differs"},
		{"PUT", "/events/Subscriptions/s/Rules/$Default", ruleXML(`<Name>$Default</Name>`), 409, "already exists"},
		{"GET", "/$Resources/Queues?$top=0", ``, 400, "$top"},
		{"GET", "/$Resources/Queues?$skip=x", ``, 400, "$skip"},
		{"DELETE", "/nope", ``, 404, "could not be found"},
		{"DELETE", "/events/Subscriptions/s/Rules/nope", ``, 404, "could not be found"},
		{"POST", "/q", ``, 405, "not supported"},
	}
	for _, tt := range tests {
		req := httptest.NewRequest(tt.method, tt.path, strings.NewReader(tt.body))
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		var e errorBody
		if err := xml.Unmarshal(rec.Body.Bytes(), &e); err != nil || rec.Code != tt.want || e.Code != tt.want || !strings.Contains(e.Detail, tt.detail) {
			t.Errorf("%s %s %.60q: %d %s, want %d with a detail mentioning %q", tt.method, tt.path, tt.body, rec.Code, rec.Body.String(), tt.want, tt.detail)
		}
	}
	if len(b.Queues()) != 0 {
		t.Errorf("queues created by bad requests: %v", b.Queues())
	}
	if rules, _ := b.Rules("events", "s"); len(rules) != 1 {
		t.Errorf("rules after bad requests: %+v", rules)
	}
}

// TestMissingEntityIsAnEmptyFeed: a GET of an entity that does not exist answers as Azure
// does, 200 with the empty "Publicly Listed Services" feed.
func TestMissingEntityIsAnEmptyFeed(t *testing.T) {
	h, _ := newTestServer(t)
	for _, path := range []string{"/nope", "/events/Subscriptions/nope", "/events/Subscriptions/s/Rules/nope", "/nope/Subscriptions", "/nope/Subscriptions/s/Rules"} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", path+"?api-version=2021-05", nil))
		var feed struct {
			XMLName xml.Name
			Title   string `xml:"title"`
			Entries []any  `xml:"entry"`
		}
		if err := xml.Unmarshal(rec.Body.Bytes(), &feed); err != nil || rec.Code != 200 || feed.XMLName.Local != "feed" ||
			feed.Title != "Publicly Listed Services" || len(feed.Entries) != 0 {
			t.Errorf("GET %s: %d %s", path, rec.Code, rec.Body.String())
		}
	}
}

// FuzzATOM feeds arbitrary bodies to every PUT route: each answers 2xx or an <Error> with a 4xx
// code, never a panic or a 5xx.
func FuzzATOM(f *testing.F) {
	for _, s := range []string{
		queueXML(`<LockDuration>PT5S</LockDuration><MaxDeliveryCount>3</MaxDeliveryCount>`),
		entry(`<TopicDescription><DefaultMessageTimeToLive>PT1H</DefaultMessageTimeToLive></TopicDescription>`),
		entry(`<SubscriptionDescription><DefaultRuleDescription><Filter xmlns:i="http://www.w3.org/2001/XMLSchema-instance" i:type="CorrelationFilter"><Label>x</Label></Filter></DefaultRuleDescription></SubscriptionDescription>`),
		ruleXML(`<Filter i:type="FalseFilter"><SqlExpression>1=0</SqlExpression></Filter><Action i:type="EmptyRuleAction"/><Name>r</Name>`),
		`<entry><content><QueueDescription><AuthorizationRules><AuthorizationRule><Rights><AccessRights>Send</AccessRights></Rights></AuthorizationRule></AuthorizationRules></QueueDescription></content></entry>`,
		`<entry>`, `<<>>`, "",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, body string) {
		h, _ := newTestServer(t)
		for _, path := range []string{"/q", "/t", "/events/Subscriptions/x", "/events/Subscriptions/s/Rules/r"} {
			for _, ifMatch := range []string{"", "*"} {
				req := httptest.NewRequest("PUT", path, strings.NewReader(body))
				if ifMatch != "" {
					req.Header.Set("If-Match", ifMatch)
				}
				rec := httptest.NewRecorder()
				h.ServeHTTP(rec, req)
				if rec.Code >= 500 {
					t.Fatalf("PUT %s %q: %d %s", path, body, rec.Code, rec.Body.String())
				}
				if rec.Code >= 300 {
					var e errorBody
					if err := xml.Unmarshal(rec.Body.Bytes(), &e); err != nil || e.Detail == "" {
						t.Fatalf("PUT %s %q: %d without an <Error>: %s", path, body, rec.Code, rec.Body.String())
					}
				}
			}
		}
	})
}
