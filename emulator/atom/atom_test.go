package atom_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus"
	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus/admin"

	"github.com/holdfast-dev/holdfast/emulator"
)

const timeout = 30 * time.Second

// toAdminPort sends the admin client's requests (https://<namespace>/…) to the emulator's admin
// port over plain HTTP: the Go admin client has no emulator mode.
type toAdminPort struct{ addr string }

func (t toAdminPort) Do(req *http.Request) (*http.Response, error) {
	req.URL.Scheme, req.URL.Host, req.Host = "http", t.addr, ""
	return http.DefaultTransport.RoundTrip(req)
}

func start(t *testing.T) (*emulator.Server, *admin.Client, *azservicebus.Client) {
	t.Helper()
	srv, err := emulator.Start(&emulator.Options{Addr: "127.0.0.1:0", AdminAddr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	ac, err := admin.NewClientFromConnectionString(srv.ConnectionString(), &admin.ClientOptions{
		ClientOptions: azcore.ClientOptions{Transport: toAdminPort{srv.AdminAddr()}},
	})
	if err != nil {
		t.Fatal(err)
	}
	c, err := azservicebus.NewClientFromConnectionString(srv.ConnectionString(), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close(context.Background()) })
	return srv, ac, c
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), timeout)
	t.Cleanup(cancel)
	return c
}

func statusOf(err error) int {
	var re *azcore.ResponseError
	if errors.As(err, &re) {
		return re.StatusCode
	}
	return 0
}

func TestQueueLifecycle(t *testing.T) {
	_, ac, _ := start(t)
	status := admin.EntityStatusReceiveDisabled
	rules := []admin.AuthorizationRule{{AccessRights: []admin.AccessRight{admin.AccessRightSend}, KeyName: to.Ptr("keyName1"),
		PrimaryKey: to.Ptr("cHJpbWFyeQ=="), SecondaryKey: to.Ptr("c2Vjb25kYXJ5")}}
	props := admin.QueueProperties{
		LockDuration: to.Ptr("PT45S"), RequiresDuplicateDetection: to.Ptr(true), DefaultMessageTimeToLive: to.Ptr("PT6H"),
		DeadLetteringOnMessageExpiration: to.Ptr(true), DuplicateDetectionHistoryTimeWindow: to.Ptr("PT4H"),
		MaxDeliveryCount: to.Ptr[int32](100), EnableBatchedOperations: to.Ptr(false), Status: &status,
		AutoDeleteOnIdle: to.Ptr("PT10M"), EnablePartitioning: to.Ptr(true), MaxSizeInMegabytes: to.Ptr[int32](4096),
		UserMetadata: to.Ptr("some metadata"), AuthorizationRules: rules,
	}
	created, err := ac.CreateQueue(ctx(t), "orders", &admin.CreateQueueOptions{Properties: &props})
	if err != nil {
		t.Fatal(err)
	}
	// As Microsoft's testCreateQueue (Standard): a partitioned queue reports 16 partitions'
	// size, RequiresSession false, and Standard's 256 KB message size.
	want := props
	want.MaxSizeInMegabytes = to.Ptr[int32](16 * 4096)
	want.RequiresSession = to.Ptr(false)
	want.MaxMessageSizeInKilobytes = to.Ptr[int64](256)
	if created.QueueName != "orders" || !equalQueue(created.QueueProperties, want) {
		t.Fatalf("created %s %+v\nwant %+v", created.QueueName, created.QueueProperties, want)
	}
	got, err := ac.GetQueue(ctx(t), "ORDERS", nil)
	if err != nil || got == nil || !equalQueue(got.QueueProperties, want) {
		t.Fatalf("get %+v, %v", got, err)
	}
	updated, err := ac.UpdateQueue(ctx(t), "orders", got.QueueProperties, nil)
	if err != nil || !equalQueue(updated.QueueProperties, want) {
		t.Fatalf("round-trip update %+v, %v", updated, err)
	}
	updated.MaxDeliveryCount = to.Ptr[int32](101)
	if u, err := ac.UpdateQueue(ctx(t), "orders", updated.QueueProperties, nil); err != nil || *u.MaxDeliveryCount != 101 {
		t.Fatalf("update MaxDeliveryCount: %+v, %v", u, err)
	}

	bad := updated.QueueProperties
	bad.RequiresSession = to.Ptr(true)
	_, err = ac.UpdateQueue(ctx(t), "orders", bad, nil)
	if statusOf(err) != 400 || !strings.Contains(err.Error(), "RequiresSession property of an existing Queue cannot be changed") {
		t.Errorf("changing RequiresSession: %v", err)
	}
	bad = updated.QueueProperties
	bad.LockDuration = to.Ptr("PT10M")
	if _, err := ac.UpdateQueue(ctx(t), "orders", bad, nil); statusOf(err) != 400 || !strings.Contains(err.Error(), "LockDuration") {
		t.Errorf("lock of 10 minutes: %v", err)
	}
	if _, err := ac.UpdateQueue(ctx(t), "non-existent-queue", updated.QueueProperties, nil); statusOf(err) != 404 {
		t.Errorf("update of a missing queue: %v, want 404", err)
	}
	if _, err := ac.CreateQueue(ctx(t), "orders", nil); statusOf(err) != 409 {
		t.Errorf("create of an existing queue: %v, want 409", err)
	}
	if _, err := ac.CreateQueue(ctx(t), "bad", &admin.CreateQueueOptions{Properties: &admin.QueueProperties{DefaultMessageTimeToLive: to.Ptr("soon")}}); statusOf(err) != 400 ||
		!strings.Contains(err.Error(), "DefaultMessageTimeToLive") {
		t.Errorf("bad duration: %v", err)
	}
	if q, err := ac.GetQueue(ctx(t), "missing", nil); q != nil || err != nil {
		t.Errorf("get of a missing queue: %+v, %v; want nil, nil", q, err)
	}
	if _, err := ac.DeleteQueue(ctx(t), "orders", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := ac.DeleteQueue(ctx(t), "orders", nil); statusOf(err) != 404 {
		t.Errorf("second delete: %v, want 404", err)
	}

	// A queue created without properties gets Azure's defaults.
	d, err := ac.CreateQueue(ctx(t), "plain", nil)
	if err != nil {
		t.Fatal(err)
	}
	if *d.LockDuration != "PT1M" || *d.MaxDeliveryCount != 10 || *d.DefaultMessageTimeToLive != "P10675199DT2H48M5.4775807S" ||
		*d.DuplicateDetectionHistoryTimeWindow != "PT10M" || *d.MaxSizeInMegabytes != 1024 || *d.Status != admin.EntityStatusActive {
		t.Errorf("defaults %+v", d.QueueProperties)
	}
}

func equalQueue(a, b admin.QueueProperties) bool {
	s := func(p *string) string {
		if p == nil {
			return "<nil>"
		}
		return *p
	}
	eq := s(a.LockDuration) == s(b.LockDuration) && *a.MaxSizeInMegabytes == *b.MaxSizeInMegabytes &&
		*a.RequiresDuplicateDetection == *b.RequiresDuplicateDetection && *a.RequiresSession == *b.RequiresSession &&
		s(a.DefaultMessageTimeToLive) == s(b.DefaultMessageTimeToLive) &&
		*a.DeadLetteringOnMessageExpiration == *b.DeadLetteringOnMessageExpiration &&
		s(a.DuplicateDetectionHistoryTimeWindow) == s(b.DuplicateDetectionHistoryTimeWindow) &&
		*a.MaxDeliveryCount == *b.MaxDeliveryCount && *a.EnableBatchedOperations == *b.EnableBatchedOperations &&
		*a.Status == *b.Status && s(a.AutoDeleteOnIdle) == s(b.AutoDeleteOnIdle) && *a.EnablePartitioning == *b.EnablePartitioning &&
		s(a.UserMetadata) == s(b.UserMetadata) && *a.MaxMessageSizeInKilobytes == *b.MaxMessageSizeInKilobytes &&
		len(a.AuthorizationRules) == len(b.AuthorizationRules)
	for i := range a.AuthorizationRules {
		x, y := a.AuthorizationRules[i], b.AuthorizationRules[i]
		eq = eq && s(x.KeyName) == s(y.KeyName) && s(x.PrimaryKey) == s(y.PrimaryKey) && s(x.SecondaryKey) == s(y.SecondaryKey) &&
			len(x.AccessRights) == len(y.AccessRights) && x.AccessRights[0] == y.AccessRights[0]
	}
	return eq
}

// TestQueueRuntimeProperties follows Microsoft's TestAdminClient_GetQueueRuntimeProperties.
func TestQueueRuntimeProperties(t *testing.T) {
	_, ac, c := start(t)
	if _, err := ac.CreateQueue(ctx(t), "q", nil); err != nil {
		t.Fatal(err)
	}
	fresh, err := ac.GetQueueRuntimeProperties(ctx(t), "q", nil)
	if err != nil || fresh.CreatedAt.IsZero() || fresh.UpdatedAt.IsZero() || !fresh.AccessedAt.IsZero() || fresh.SizeInBytes != 0 || fresh.TotalMessageCount != 0 {
		t.Fatalf("fresh queue %+v, %v", fresh, err)
	}
	sender, err := c.NewSender("q", nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		if err := sender.SendMessage(ctx(t), &azservicebus.Message{Body: []byte("hello")}, nil); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := sender.ScheduleMessages(ctx(t), []*azservicebus.Message{{Body: []byte("hello")}}, time.Now().Add(2*time.Hour), nil); err != nil {
		t.Fatal(err)
	}
	receiver, err := c.NewReceiverForQueue("q", nil)
	if err != nil {
		t.Fatal(err)
	}
	msgs, err := receiver.ReceiveMessages(ctx(t), 2, nil)
	if err != nil || len(msgs) == 0 {
		t.Fatalf("receive: %d, %v", len(msgs), err)
	}
	if err := receiver.DeadLetterMessage(ctx(t), msgs[0], nil); err != nil {
		t.Fatal(err)
	}
	p, err := ac.GetQueueRuntimeProperties(ctx(t), "q", nil)
	if err != nil {
		t.Fatal(err)
	}
	if p.QueueName != "q" || p.TotalMessageCount != 4 || p.ActiveMessageCount != 2 || p.DeadLetterMessageCount != 1 ||
		p.ScheduledMessageCount != 1 || p.TransferMessageCount != 0 || p.TransferDeadLetterMessageCount != 0 || p.SizeInBytes <= 0 ||
		p.AccessedAt.IsZero() {
		t.Errorf("runtime properties %+v", p)
	}
	pager := ac.NewListQueuesRuntimePropertiesPager(nil)
	found := false
	for pager.More() {
		page, err := pager.NextPage(ctx(t))
		if err != nil {
			t.Fatal(err)
		}
		for _, q := range page.QueueRuntimeProperties {
			found = found || (q.QueueName == "q" && q.ActiveMessageCount == 2)
		}
	}
	if !found {
		t.Error("the runtime-properties list lacks q with 2 active messages")
	}
}

func TestListQueuesPages(t *testing.T) {
	_, ac, _ := start(t)
	for _, name := range []string{"a", "b", "c", "d", "e"} {
		if _, err := ac.CreateQueue(ctx(t), name, &admin.CreateQueueOptions{Properties: &admin.QueueProperties{MaxDeliveryCount: to.Ptr[int32](int32(name[0]))}}); err != nil {
			t.Fatal(err)
		}
	}
	pager := ac.NewListQueuesPager(&admin.ListQueuesOptions{MaxPageSize: 2})
	var names []string
	pages := 0
	for pager.More() {
		page, err := pager.NextPage(ctx(t))
		if err != nil {
			t.Fatal(err)
		}
		if len(page.Queues) > 2 {
			t.Errorf("page of %d", len(page.Queues))
		}
		if len(page.Queues) > 0 {
			pages++
		}
		for _, q := range page.Queues {
			if *q.MaxDeliveryCount != int32(q.QueueName[0]) {
				t.Errorf("%s: MaxDeliveryCount %d", q.QueueName, *q.MaxDeliveryCount)
			}
			names = append(names, q.QueueName)
		}
	}
	if strings.Join(names, ",") != "a,b,c,d,e" || pages != 3 {
		t.Errorf("listed %v in %d pages", names, pages)
	}
}

func TestTopicSubscriptionAndRules(t *testing.T) {
	_, ac, c := start(t)
	status := admin.EntityStatusActive
	topic, err := ac.CreateTopic(ctx(t), "events", &admin.CreateTopicOptions{Properties: &admin.TopicProperties{
		RequiresDuplicateDetection: to.Ptr(true), DefaultMessageTimeToLive: to.Ptr("PT3M"), DuplicateDetectionHistoryTimeWindow: to.Ptr("PT4M"),
		EnableBatchedOperations: to.Ptr(true), Status: &status, AutoDeleteOnIdle: to.Ptr("PT7M"), SupportOrdering: to.Ptr(true),
		UserMetadata: to.Ptr("user metadata"), EnablePartitioning: to.Ptr(true), MaxSizeInMegabytes: to.Ptr[int32](2048),
	}})
	if err != nil {
		t.Fatal(err)
	}
	if *topic.DefaultMessageTimeToLive != "PT3M" || *topic.DuplicateDetectionHistoryTimeWindow != "PT4M" || *topic.MaxSizeInMegabytes != 16*2048 ||
		*topic.AutoDeleteOnIdle != "PT7M" || *topic.UserMetadata != "user metadata" || !*topic.RequiresDuplicateDetection {
		t.Errorf("topic %+v", topic.TopicProperties)
	}
	rt, err := ac.GetTopicRuntimeProperties(ctx(t), "events", nil)
	if err != nil || rt.SubscriptionCount != 0 || rt.ScheduledMessageCount != 0 || rt.SizeInBytes != 0 || !rt.AccessedAt.IsZero() || rt.CreatedAt.IsZero() {
		t.Fatalf("fresh topic %+v, %v", rt, err)
	}
	sub, err := ac.CreateSubscription(ctx(t), "events", "all", nil)
	if err != nil || *sub.MaxDeliveryCount != 10 || *sub.LockDuration != "PT1M" {
		t.Fatalf("subscription %+v, %v", sub, err)
	}
	if _, err := ac.CreateSubscription(ctx(t), "nope", "s", nil); statusOf(err) != 404 {
		t.Errorf("subscription of a missing topic: %v, want 404", err)
	}
	if _, err := ac.CreateSubscription(ctx(t), "events", "all", nil); statusOf(err) != 409 {
		t.Errorf("second subscription all: %v, want 409", err)
	}
	red, err := ac.CreateSubscription(ctx(t), "events", "red", &admin.CreateSubscriptionOptions{Properties: &admin.SubscriptionProperties{
		LockDuration: to.Ptr("PT3M"), MaxDeliveryCount: to.Ptr[int32](11), UserMetadata: to.Ptr("red ones"),
		DefaultRule: &admin.RuleProperties{Name: "red-only", Filter: &admin.CorrelationFilter{Subject: to.Ptr("red"),
			ApplicationProperties: map[string]any{"n": int64(7), "ok": true}}},
	}})
	if err != nil || *red.LockDuration != "PT3M" || *red.MaxDeliveryCount != 11 || *red.UserMetadata != "red ones" {
		t.Fatalf("red subscription %+v, %v", red, err)
	}

	// Rules: a subscription created without one has $Default (TrueFilter); the default rule
	// given at creation replaces it.
	rules := listRules(t, ac, "events", "all")
	if len(rules) != 1 || rules[0].Name != "$Default" {
		t.Fatalf("rules of all: %+v", rules)
	}
	if _, ok := rules[0].Filter.(*admin.TrueFilter); !ok || rules[0].Action != nil {
		t.Errorf("$Default: %#v", rules[0])
	}
	redRule, err := ac.GetRule(ctx(t), "events", "red", "red-only", nil)
	if err != nil || redRule == nil {
		t.Fatalf("red-only: %+v, %v", redRule, err)
	}
	if cf, ok := redRule.Filter.(*admin.CorrelationFilter); !ok || *cf.Subject != "red" || cf.ApplicationProperties["n"] != int64(7) || cf.ApplicationProperties["ok"] != true {
		t.Errorf("red-only filter %#v", redRule.Filter)
	}
	if r, err := ac.GetRule(ctx(t), "events", "red", "nope", nil); r != nil || err != nil {
		t.Errorf("missing rule: %+v, %v", r, err)
	}
	if _, err := ac.CreateRule(ctx(t), "events", "all", &admin.CreateRuleOptions{Name: to.Ptr("sql"), Filter: &admin.SQLFilter{Expression: "a > 1"}}); statusOf(err) != 400 ||
		!strings.Contains(err.Error(), "SQL filters are not supported") {
		t.Errorf("SQL filter a > 1: %v, want 400", err)
	}
	if _, err := ac.CreateRule(ctx(t), "events", "all", &admin.CreateRuleOptions{Name: to.Ptr("never"), Filter: &admin.FalseFilter{}}); err != nil {
		t.Fatal(err)
	}
	if _, err := ac.DeleteRule(ctx(t), "events", "all", "$Default", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := ac.DeleteRule(ctx(t), "events", "all", "$Default", nil); statusOf(err) != 404 {
		t.Errorf("second delete of $Default: %v, want 404", err)
	}
	// all now has only a false filter; turn it into a correlation filter on subject blue.
	up, err := ac.UpdateRule(ctx(t), "events", "all", admin.RuleProperties{Name: "never", Filter: &admin.CorrelationFilter{Subject: to.Ptr("blue")}})
	if err != nil {
		t.Fatal(err)
	}
	if cf, ok := up.Filter.(*admin.CorrelationFilter); !ok || *cf.Subject != "blue" {
		t.Errorf("updated rule %#v", up.Filter)
	}

	// The rules route messages.
	sender, err := c.NewSender("events", nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range []*azservicebus.Message{
		{Body: []byte("r"), Subject: to.Ptr("red"), ApplicationProperties: map[string]any{"n": int64(7), "ok": true}},
		{Body: []byte("b"), Subject: to.Ptr("blue")},
		{Body: []byte("g"), Subject: to.Ptr("green")},
	} {
		if err := sender.SendMessage(ctx(t), m, nil); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := sender.ScheduleMessages(ctx(t), []*azservicebus.Message{{Body: []byte("later"), Subject: to.Ptr("blue")}}, time.Now().Add(time.Hour), nil); err != nil {
		t.Fatal(err)
	}
	for sub, want := range map[string]int32{"all": 1, "red": 1} {
		p, err := ac.GetSubscriptionRuntimeProperties(ctx(t), "events", sub, nil)
		if err != nil || p.ActiveMessageCount != want || p.TotalMessageCount != int64(want)+map[string]int64{"all": 1, "red": 0}[sub] {
			t.Errorf("%s: %+v, %v", sub, p, err)
		}
	}
	rt, err = ac.GetTopicRuntimeProperties(ctx(t), "events", nil)
	if err != nil || rt.SubscriptionCount != 2 || rt.ScheduledMessageCount != 1 || rt.SizeInBytes <= 0 || rt.AccessedAt.IsZero() ||
		rt.CorrelationFilterCount != 2 || rt.SQLFilterCount != 0 {
		t.Errorf("topic runtime %+v, %v", rt, err)
	}

	// Subscriptions list, update, delete.
	pager := ac.NewListSubscriptionsPager("events", nil)
	var names []string
	for pager.More() {
		page, err := pager.NextPage(ctx(t))
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range page.Subscriptions {
			names = append(names, s.SubscriptionName)
		}
	}
	if strings.Join(names, ",") != "all,red" {
		t.Errorf("subscriptions %v", names)
	}
	red.MaxDeliveryCount = to.Ptr[int32](3)
	if u, err := ac.UpdateSubscription(ctx(t), "events", "red", red.SubscriptionProperties, nil); err != nil || *u.MaxDeliveryCount != 3 {
		t.Errorf("update red: %+v, %v", u, err)
	}
	topicProps, err := ac.GetTopic(ctx(t), "events", nil)
	if err != nil {
		t.Fatal(err)
	}
	topicProps.DefaultMessageTimeToLive = to.Ptr("PT5M")
	if u, err := ac.UpdateTopic(ctx(t), "events", topicProps.TopicProperties, nil); err != nil || *u.DefaultMessageTimeToLive != "PT5M" {
		t.Errorf("update topic: %+v, %v", u, err)
	}
	if _, err := ac.DeleteSubscription(ctx(t), "events", "red", nil); err != nil {
		t.Fatal(err)
	}
	if s, err := ac.GetSubscription(ctx(t), "events", "red", nil); s != nil || err != nil {
		t.Errorf("deleted subscription: %+v, %v", s, err)
	}
	if _, err := ac.DeleteTopic(ctx(t), "events", nil); err != nil {
		t.Fatal(err)
	}
	if tp, err := ac.GetTopic(ctx(t), "events", nil); tp != nil || err != nil {
		t.Errorf("deleted topic: %+v, %v", tp, err)
	}
}

func listRules(t *testing.T, ac *admin.Client, topic, sub string) []admin.RuleProperties {
	t.Helper()
	var out []admin.RuleProperties
	pager := ac.NewListRulesPager(topic, sub, nil)
	for pager.More() {
		page, err := pager.NextPage(ctx(t))
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, page.Rules...)
	}
	return out
}

func TestNamespaceProperties(t *testing.T) {
	_, ac, _ := start(t)
	p, err := ac.GetNamespaceProperties(ctx(t), nil)
	if err != nil || p.SKU != "Standard" || p.MessagingUnits != nil || p.Name == "" || p.CreatedTime.IsZero() || p.ModifiedTime.IsZero() {
		t.Errorf("namespace %+v, %v", p, err)
	}
}

// TestAzureQuirks covers what Microsoft's admin tests expect beyond the obvious: a default rule
// without a name is "$Default", a fresh subscription reports an access time, and Azure's texts
// for properties fixed at creation.
func TestAzureQuirks(t *testing.T) {
	_, ac, _ := start(t)
	if _, err := ac.CreateTopic(ctx(t), "t", nil); err != nil {
		t.Fatal(err)
	}
	sub, err := ac.CreateSubscription(ctx(t), "t", "s", &admin.CreateSubscriptionOptions{Properties: &admin.SubscriptionProperties{
		DefaultRule: &admin.RuleProperties{Filter: &admin.FalseFilter{}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	r, err := ac.GetRule(ctx(t), "t", "s", "$Default", nil)
	if err != nil || r == nil {
		t.Fatalf("$Default: %+v, %v", r, err)
	}
	if _, ok := r.Filter.(*admin.FalseFilter); !ok {
		t.Errorf("$Default filter %#v, want the FalseFilter given", r.Filter)
	}
	rt, err := ac.GetSubscriptionRuntimeProperties(ctx(t), "t", "s", nil)
	if err != nil || rt.AccessedAt.IsZero() {
		t.Errorf("fresh subscription AccessedAt %v, %v; Azure reports the creation time", rt, err)
	}
	sub.RequiresSession = to.Ptr(true)
	_, err = ac.UpdateSubscription(ctx(t), "t", "s", sub.SubscriptionProperties, nil)
	if err == nil || !strings.Contains(err.Error(), "The value for the RequiresSession property of an existing Subscription cannot be changed") {
		t.Errorf("RequiresSession change: %v", err)
	}
	tp, err := ac.GetTopic(ctx(t), "t", nil)
	if err != nil {
		t.Fatal(err)
	}
	tp.EnablePartitioning = to.Ptr(true)
	if _, err := ac.UpdateTopic(ctx(t), "t", tp.TopicProperties, nil); err == nil || !strings.Contains(err.Error(), "Partitioning cannot be changed for Topic. ") {
		t.Errorf("EnablePartitioning change: %v", err)
	}
	q, err := ac.CreateQueue(ctx(t), "q", &admin.CreateQueueOptions{Properties: &admin.QueueProperties{MaxMessageSizeInKilobytes: to.Ptr[int64](1024)}})
	if err != nil || *q.MaxMessageSizeInKilobytes != 1024 {
		t.Errorf("MaxMessageSizeInKilobytes as set: %+v, %v", q, err)
	}
}
