package infratest

import (
	"encoding/json"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/holdfast-dev/holdfast/internal/config"
)

// drainRetryHorizon is how long after a failed resubmit the same copy may be sent again: the failed drain's
// row lease expires and a later drain (often an operator re-running it, possibly the next day) resends the
// copy with the same MessageID. Duplicate detection drops the second send only inside its window, so the
// window must be at least this long (README.md, Deploy → Parameters).
const drainRetryHorizon = 24 * time.Hour

// neverAutoDelete is the TimeSpan.MaxValue the service uses for "never".
const neverAutoDelete = "P10675199DT2H48M5.4775807S"

func TestTemplatesParse(t *testing.T) {
	for _, tpl := range allTemplates(t) {
		if len(tpl.Decls) == 0 {
			t.Errorf("%s: no declarations", tpl.Path)
		}
	}
	if _, err := Parse(infraPath("main.bicepparam")); err != nil {
		t.Fatal(err)
	}
}

// Every parameter says what it is for and is bounded, and its default satisfies its own bounds.
func TestParametersDescribedAndBounded(t *testing.T) {
	for _, tpl := range allTemplates(t) {
		for _, p := range tpl.Find("param") {
			where := fmt.Sprintf("%s:%d param %s", tpl.Path, p.Line, p.Name)
			desc := p.Decorator("description")
			if desc == nil {
				t.Errorf("%s: no @description", where)
			} else if s, ok := desc.Args.Literal(); !ok || len(s.(string)) < 10 {
				t.Errorf("%s: @description %s is not a useful literal", where, desc.Args.Text)
			}
			hasAllowed := p.Decorator("allowed") != nil
			switch p.Type {
			case "int":
				_, lo := intDecorator(p, "minValue")
				_, hi := intDecorator(p, "maxValue")
				if !hasAllowed && !(lo && hi) {
					t.Errorf("%s: int without @minValue and @maxValue or @allowed", where)
				}
			case "string":
				if _, hi := intDecorator(p, "maxLength"); !hasAllowed && !hi {
					t.Errorf("%s: string without @maxLength or @allowed", where)
				}
			case "bool", "object":
			default:
				t.Errorf("%s: unexpected type %q", where, p.Type)
			}
			if p.Value.Text == "" {
				continue // required module input
			}
			if v, ok := p.Value.Literal(); ok {
				if err := checkValue(p, v); err != nil {
					t.Errorf("%s: default: %v", where, err)
				}
			}
			if p.Decorator("secure") != nil && p.Value.Text != "''" {
				t.Errorf("%s: a secure parameter must not have a non-empty default", where)
			}
		}
	}
}

// The parameters file only sets parameters main.bicep declares, with values inside their bounds.
func TestParameterFile(t *testing.T) {
	main := load(t, "main.bicep")
	params, err := Parse(infraPath("main.bicepparam"))
	if err != nil {
		t.Fatal(err)
	}
	using := params.Find("using")
	if len(using) != 1 || using[0].Value.Text != "'./main.bicep'" {
		t.Fatalf("main.bicepparam: using = %v, want './main.bicep'", using)
	}
	set := params.Find("param")
	if len(set) < 10 {
		t.Fatalf("main.bicepparam sets %d parameters", len(set))
	}
	for _, p := range set {
		decl := main.Get("param", p.Name)
		if decl == nil {
			t.Errorf("main.bicepparam:%d sets %s, which main.bicep does not declare", p.Line, p.Name)
			continue
		}
		if v, ok := p.Value.Literal(); ok {
			if err := checkValue(decl, v); err != nil {
				t.Errorf("main.bicepparam:%d %s: %v", p.Line, p.Name, err)
			}
			if def, ok := decl.Value.Literal(); ok && def != v {
				t.Errorf("main.bicepparam:%d %s = %v, but main.bicep's default is %v: keep them equal", p.Line, p.Name, v, def)
			}
		}
	}
}

// Each queue property is driven by a bounded main.bicep parameter whose default is the safe choice.
func TestQueueSettings(t *testing.T) {
	main := load(t, "main.bicep")
	sb := load(t, "modules/servicebus.bicep")
	queue := mustDecl(t, sb, "resource", "queue")
	module := mustDecl(t, main, "module", "serviceBus")
	passed := mustProp(t, "module serviceBus", module.Value, "params")

	// property → the parameter that must drive it and the check of its default.
	type rule struct {
		param string
		check func(p *Decl, def any) error
	}
	atLeast := func(min int) func(*Decl, any) error {
		return func(_ *Decl, def any) error {
			if def.(int) < min {
				return fmt.Errorf("default %v < %d", def, min)
			}
			return nil
		}
	}
	equals := func(want any) func(*Decl, any) error {
		return func(_ *Decl, def any) error {
			if def != want {
				return fmt.Errorf("default %v, want %v", def, want)
			}
			return nil
		}
	}
	rules := map[string]rule{
		// The renewer renews 10 s before expiry: give it at least 30 s of lock; the service caps it at 5 min.
		"lockDuration": {"lockDurationSeconds", func(p *Decl, def any) error {
			if hi, _ := intDecorator(p, "maxValue"); hi > 300 {
				return fmt.Errorf("@maxValue(%d) exceeds the service maximum PT5M", hi)
			}
			if lo, _ := intDecorator(p, "minValue"); lo < 5 {
				return fmt.Errorf("@minValue(%d) is below the SDK minimum of 5 s", lo)
			}
			return atLeast(30)(p, def)
		}},
		// A defer, an abandon and a lost lock each count: fewer than 10 dead-letters healthy messages.
		"maxDeliveryCount": {"maxDeliveryCount", func(p *Decl, def any) error {
			if lo, _ := intDecorator(p, "minValue"); lo < 10 {
				return fmt.Errorf("@minValue(%d) < 10", lo)
			}
			return atLeast(10)(p, def)
		}},
		// Deferred messages wait for a drain until they expire: leave at least a week.
		"defaultMessageTimeToLive":            {"messageTimeToLiveHours", atLeast(7 * 24)},
		"deadLetteringOnMessageExpiration":    {"deadLetteringOnMessageExpiration", equals(true)},
		"autoDeleteOnIdle":                    {"autoDeleteOnIdle", equals(neverAutoDelete)},
		"requiresDuplicateDetection":          {"requiresDuplicateDetection", equals(true)},
		"duplicateDetectionHistoryTimeWindow": {"duplicateDetectionWindowMinutes", atLeast(int(drainRetryHorizon / time.Minute))},
		"enableBatchedOperations":             {"enableBatchedOperations", equals(true)},
		// Sessions change how the handler receives (HOLDFAST_REQUIRES_SESSION, set from the same parameter); a
		// plain entity is the default.
		"requiresSession": {"requiresSession", equals(false)},
		"maxSizeInMegabytes": {"maxSizeInMegabytes", func(p *Decl, def any) error {
			allowed, err := allowedValues(p)
			if err != nil || len(allowed) == 0 {
				return fmt.Errorf("no @allowed list (%v)", err)
			}
			for _, v := range allowed {
				if n := v.(int); n < 1024 || n > 5120 {
					return fmt.Errorf("@allowed value %d outside 1024..5120 (Standard)", n)
				}
			}
			return nil
		}},
	}
	for prop, r := range rules {
		t.Run(prop, func(t *testing.T) {
			v := mustProp(t, "queue", queue.Value, "properties."+prop)
			got := resolveParams(sb, v)
			if !slices.Equal(got, []string{r.param}) {
				t.Fatalf("queue %s = %s depends on parameters %v, want [%s]", prop, v.Text, got, r.param)
			}
			if in := mustProp(t, "module serviceBus params", passed, r.param); in.Text != r.param {
				t.Errorf("main.bicep passes %s: %s, want the parameter of the same name", r.param, in.Text)
			}
			mp := mustDecl(t, main, "param", r.param)
			if err := r.check(mp, paramDefault(t, main, r.param)); err != nil {
				t.Errorf("main.bicep param %s: %v", r.param, err)
			}
			// The module enforces the same bounds, so a direct deployment of the module is as safe.
			if got, want := bounds(mustDecl(t, sb, "param", r.param)), bounds(mp); got != want {
				t.Errorf("servicebus.bicep param %s bounds %s differ from main.bicep's %s", r.param, got, want)
			}
		})
	}

	// The duplicate window must end before messages expire, or a late resend would be accepted again.
	window := paramDefault(t, main, "duplicateDetectionWindowMinutes").(int)
	ttl := paramDefault(t, main, "messageTimeToLiveHours").(int)
	if window >= ttl*60 {
		t.Errorf("duplicate detection window %d min is not shorter than the TTL %d h", window, ttl)
	}

	// Fixed properties: the handler receives deferred messages in batches.
	for res, props := range map[string][]string{
		"queue": {"enablePartitioning"},
		"topic": {"enablePartitioning"},
	} {
		d := mustDecl(t, sb, "resource", res)
		for _, p := range props {
			if v := literal(t, res+"."+p, mustProp(t, res, d.Value, "properties."+p)); v != false {
				t.Errorf("%s %s = %v, want false", res, p, v)
			}
		}
	}
	// The subscription variant shares the queue's settings.
	sub := mustDecl(t, sb, "resource", "topicSubscription")
	for _, p := range []string{"lockDuration", "maxDeliveryCount", "defaultMessageTimeToLive", "deadLetteringOnMessageExpiration", "autoDeleteOnIdle", "requiresSession"} {
		q := mustProp(t, "queue", queue.Value, "properties."+p)
		s := mustProp(t, "subscription", sub.Value, "properties."+p)
		if q.Text != s.Text {
			t.Errorf("subscription %s = %s, queue has %s", p, s.Text, q.Text)
		}
	}
}

func TestSecuritySettings(t *testing.T) {
	sb := load(t, "modules/servicebus.bicep")
	st := load(t, "modules/storage.bicep")
	mon := load(t, "modules/monitoring.bicep")
	app := load(t, "modules/functionapp.bicep")
	job := load(t, "modules/containerappsjob.bicep")

	tests := []struct {
		tpl      *Template
		kind     string
		name     string
		path     string
		want     any
		whatFor  string
		resource bool
	}{
		{sb, "resource", "serviceBusNamespace", "properties.disableLocalAuth", true, "no SAS keys", true},
		{sb, "resource", "serviceBusNamespace", "properties.minimumTlsVersion", "1.2", "TLS 1.2", true},
		{st, "resource", "account", "properties.allowSharedKeyAccess", false, "no account keys", true},
		{st, "resource", "account", "properties.minimumTlsVersion", "TLS1_2", "TLS 1.2", true},
		{st, "resource", "account", "properties.allowBlobPublicAccess", false, "no anonymous blobs", true},
		{st, "resource", "account", "properties.supportsHttpsTrafficOnly", true, "HTTPS only", true},
		{st, "resource", "account", "properties.defaultToOAuthAuthentication", true, "Entra ID by default", true},
		{st, "resource", "deploymentContainer", "properties.publicAccess", "None", "private package", true},
		{mon, "resource", "appInsights", "properties.DisableLocalAuth", true, "Entra ID telemetry", true},
		{app, "resource", "site", "properties.httpsOnly", true, "HTTPS only", true},
		{app, "var", "flexSiteConfig", "minTlsVersion", "1.2", "TLS 1.2", false},
		{app, "var", "consumptionSiteConfig", "minTlsVersion", "1.2", "TLS 1.2", false},
		{app, "resource", "ftpCredentials", "properties.allow", false, "no FTP password", true},
		{app, "resource", "scmCredentials", "properties.allow", false, "no deployment password", true},
		{job, "resource", "registry", "properties.adminUserEnabled", false, "no registry password", true},
		{job, "resource", "registry", "properties.anonymousPullEnabled", false, "no anonymous pulls", true},
		{job, "resource", "environment", "properties.appLogsConfiguration.destination", "azure-monitor", "no workspace shared key", true},
		{job, "resource", "job", "identity.type", "UserAssigned", "user-assigned identities only", true},
	}
	for _, tt := range tests {
		where := fmt.Sprintf("%s %s.%s (%s)", tt.kind, tt.name, tt.path, tt.whatFor)
		d := mustDecl(t, tt.tpl, tt.kind, tt.name)
		if got := literal(t, where, mustProp(t, where, d.Value, tt.path)); got != tt.want {
			t.Errorf("%s = %v, want %v", where, got, tt.want)
		}
		if tt.resource && d.Condition.Text != "" {
			t.Errorf("%s: the resource is conditional (%s)", where, d.Condition.Text)
		}
	}
}

var (
	listCall    = regexp.MustCompile(`\blist[A-Za-z]*\s*\(`)
	secretName  = regexp.MustCompile(`(?i)key|secret|password|connectionstring|sas|token`)
	guidLiteral = regexp.MustCompile(`(?i)[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}`)
)

func TestNoSecretsInOutputs(t *testing.T) {
	for _, tpl := range allTemplates(t) {
		var secure []string
		for _, p := range tpl.Find("param") {
			if p.Decorator("secure") != nil {
				secure = append(secure, p.Name)
			}
		}
		if listCall.MatchString(tpl.mask) {
			t.Errorf("%s calls a list*() function: keys must not be read anywhere", tpl.Path)
		}
		for _, o := range tpl.Find("output") {
			where := fmt.Sprintf("%s:%d output %s", tpl.Path, o.Line, o.Name)
			if secretName.MatchString(o.Name) {
				t.Errorf("%s: the name suggests a secret", where)
			}
			if o.Decorator("secure") != nil {
				t.Errorf("%s: secure output", where)
			}
			if strings.Contains(strings.ToLower(o.Value.Masked()), "connectionstring") {
				t.Errorf("%s: exposes a connection string: %s", where, o.Value.Text)
			}
			for _, p := range resolveParams(tpl, o.Value) {
				if slices.Contains(secure, p) {
					t.Errorf("%s: exposes the secure parameter %s", where, p)
				}
			}
		}
	}
}

// documentedRoles are the built-in role definition GUIDs (reference: bicep.md §9.1, the same in every tenant).
var documentedRoles = map[string]string{
	"serviceBusDataReceiver":      "4f6d3b9b-027b-4f4c-9142-0e5a2a2247e0", // Azure Service Bus Data Receiver
	"serviceBusDataSender":        "69a216fc-b8fb-44d8-bc22-1f3c2cd27a39", // Azure Service Bus Data Sender
	"storageBlobDataOwner":        "b7e6dc6d-f1e8-4753-8033-0f276bb0955b", // Storage Blob Data Owner
	"storageTableDataContributor": "0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3", // Storage Table Data Contributor
	"monitoringMetricsPublisher":  "3913510d-42f4-4e42-8a64-420c390055eb", // Monitoring Metrics Publisher
	"acrPull":                     "7f951dda-4ed3-4680-a7ca-43fe172d538d", // AcrPull (AVM container-registry builtInRoleNames)
	"serviceBusDataOwner":         "090c5cfd-751d-490a-894a-3ce6f1109419", // Azure Service Bus Data Owner
}

// wantAssignments lists, per role, the resource types it may be assigned on: the narrowest scope that works.
var wantAssignments = map[string][]string{
	"serviceBusDataReceiver":      {"Microsoft.ServiceBus/namespaces/queues", "Microsoft.ServiceBus/namespaces/topics/subscriptions"},
	"serviceBusDataSender":        {"Microsoft.ServiceBus/namespaces/queues", "Microsoft.ServiceBus/namespaces/topics"},
	"storageBlobDataOwner":        {"Microsoft.Storage/storageAccounts"},
	"storageTableDataContributor": {"Microsoft.Storage/storageAccounts"},
	"monitoringMetricsPublisher":  {"Microsoft.Insights/components"},
	"acrPull":                     {"Microsoft.ContainerRegistry/registries"},
	// The scaler identity only, on the entity KEDA reads (never the namespace).
	"serviceBusDataOwner": {"Microsoft.ServiceBus/namespaces/queues", "Microsoft.ServiceBus/namespaces/topics/subscriptions"},
}

// scalerOnlyRoles may be held by the scaler identity alone: Data Owner would let the app manage its entity.
var scalerOnlyRoles = map[string]bool{"serviceBusDataOwner": true}

var (
	roleDefinitionID = regexp.MustCompile(`^subscriptionResourceId\('Microsoft\.Authorization/roleDefinitions', roleIds\.(\w+)\)$`)
	assignmentName   = regexp.MustCompile(`^guid\((\w+)\.id, (\w*[pP]rincipalId), roleIds\.(\w+)\)$`)
)

// assignmentCondition is what may follow a role assignment's scope condition: nothing, or one more flag.
var assignmentCondition = regexp.MustCompile(`^(|[A-Za-z]\w*)$`)

// conditionRest strips the scope's condition (and the && joining it) from an assignment's condition; what is
// left must match assignmentCondition. A condition that does not start with the scope's is returned whole,
// with a marker that fails the match.
func conditionRest(cond, scope string) string {
	if scope == "" {
		return cond
	}
	if cond == scope {
		return ""
	}
	if rest, ok := strings.CutPrefix(cond, scope+" && "); ok {
		return rest
	}
	return "!" + cond
}

func TestRoleAssignments(t *testing.T) {
	roles := load(t, "modules/roles.bicep")
	ids := mustDecl(t, roles, "var", "roleIds")
	if ids.Decorator("export") == nil {
		t.Error("roles.bicep: roleIds is not @export()ed")
	}
	entries, err := ids.Value.Entries()
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != len(documentedRoles) {
		t.Errorf("roleIds has %d roles, want %d", len(entries), len(documentedRoles))
	}
	for _, e := range entries {
		want, ok := documentedRoles[e.Key]
		if !ok {
			t.Errorf("roleIds.%s is not a documented role", e.Key)
			continue
		}
		if got := literal(t, "roleIds."+e.Key, e.Value); got != want {
			t.Errorf("roleIds.%s = %v, want the documented GUID %s", e.Key, got, want)
		}
	}

	found := map[string]map[string]bool{}
	for _, tpl := range allTemplates(t) {
		if !strings.HasSuffix(tpl.Path, "roles.bicep") && guidLiteral.MatchString(tpl.src) {
			t.Errorf("%s: GUID literal outside roles.bicep: %s", tpl.Path, guidLiteral.FindString(tpl.src))
		}
		for _, d := range tpl.Find("resource") {
			if resourceType(d) != "Microsoft.Authorization/roleAssignments" {
				continue
			}
			where := fmt.Sprintf("%s:%d %s", tpl.Path, d.Line, d.Name)
			def := roleDefinitionID.FindStringSubmatch(mustProp(t, where, d.Value, "properties.roleDefinitionId").Normalized())
			if def == nil {
				t.Errorf("%s: roleDefinitionId is not subscriptionResourceId(..., roleIds.<role>)", where)
				continue
			}
			role := def[1]
			scope := mustProp(t, where, d.Value, "scope").Text
			name := assignmentName.FindStringSubmatch(mustProp(t, where, d.Value, "name").Normalized())
			principal := mustProp(t, where, d.Value, "properties.principalId").Text
			if name == nil || name[1] != scope || name[2] != principal || name[3] != role {
				t.Errorf("%s: name must be guid(%s.id, %s, roleIds.%s) so that it is stable and unique", where, scope, principal, role)
			}
			if scalerOnlyRoles[role] != (principal == "scalerPrincipalId") {
				t.Errorf("%s: %s is granted to %s; only the scaler identity may hold %v", where, role, principal, scalerOnlyRoles)
			}
			if pt := literal(t, where, mustProp(t, where, d.Value, "properties.principalType")); pt != "ServicePrincipal" {
				t.Errorf("%s: principalType = %v", where, pt)
			}
			target := tpl.Get("resource", scope)
			if target == nil {
				t.Errorf("%s: scope %s is not a resource of this file", where, scope)
				continue
			}
			typ := resourceType(target)
			if !slices.Contains(wantAssignments[role], typ) {
				t.Errorf("%s: %s assigned on %s, want one of %v", where, role, typ, wantAssignments[role])
			}
			if !assignmentCondition.MatchString(conditionRest(d.Condition.Normalized(), target.Condition.Normalized())) {
				t.Errorf("%s: condition %q is not its scope's %q (optionally && one flag)", where, d.Condition.Text, target.Condition.Text)
			}
			if found[role] == nil {
				found[role] = map[string]bool{}
			}
			found[role][typ] = true
		}
	}
	for role, types := range wantAssignments {
		for _, typ := range types {
			if !found[role][typ] {
				t.Errorf("no %s assignment on %s", role, typ)
			}
		}
	}
}

// functionTimeout is clamped to 10 minutes on Consumption, and the run budget and lock renewal follow it
// with the handler's margin.
func TestFunctionTimeout(t *testing.T) {
	main := load(t, "main.bicep")
	app := load(t, "modules/functionapp.bicep")

	limit := literal(t, "consumptionMaxTimeoutMinutes", mustDecl(t, app, "var", "consumptionMaxTimeoutMinutes").Value).(int)
	if limit > 10 {
		t.Errorf("consumptionMaxTimeoutMinutes = %d, Consumption allows at most 10", limit)
	}
	wantVars := map[string]string{
		"isFlex":                  "hostingPlan == 'FlexConsumption'",
		"effectiveTimeoutMinutes": "isFlex ? functionTimeoutMinutes : min(functionTimeoutMinutes, consumptionMaxTimeoutMinutes)",
		"runBudgetSeconds":        fmt.Sprintf("effectiveTimeoutMinutes * 60 - %d", int(config.BudgetMargin/time.Second)),
		"runBudget":               "'${runBudgetSeconds}s'",
	}
	for name, want := range wantVars {
		if got := mustDecl(t, app, "var", name).Value.Normalized(); got != want {
			t.Errorf("var %s = %s, want %s", name, got, want)
		}
	}
	settings := mustDecl(t, app, "var", "commonSettings").Value
	for key, want := range map[string]string{
		"AzureFunctionsJobHost__functionTimeout": "functionTimeout",
		config.SettingRunBudget:                  "runBudget",
		config.SettingMaxLockRenewal:             "runBudget",
		config.SettingLockDuration:               "'${lockDurationSeconds}s'",
		config.SettingMessageTTL:                 "'${messageTimeToLiveHours}h'",
	} {
		if got := mustProp(t, "commonSettings", settings, key).Text; got != want {
			t.Errorf("%s = %s, want %s", key, got, want)
		}
	}
	// The default fits both plans. The packaged host.json's own timeout is valid on every plan too: the app
	// setting overrides it in Azure, but a deployment that drops the setting falls back to it.
	def := paramDefault(t, main, "functionTimeoutMinutes").(int)
	if def > limit {
		t.Errorf("functionTimeoutMinutes default %d exceeds %d", def, limit)
	}
	hostTimeout, err := config.FunctionTimeoutFromDir(repoRoot)
	if err != nil {
		t.Fatal(err)
	}
	if hostTimeout > time.Duration(limit)*time.Minute {
		t.Errorf("host.json functionTimeout %v exceeds the Consumption maximum of %d min", hostTimeout, limit)
	}
}

// The app settings carry every setting the handler reads, identity-based only, and the plan-specific ones
// only where the plan accepts them.
func TestAppSettings(t *testing.T) {
	app := load(t, "modules/functionapp.bicep")
	common := mustDecl(t, app, "var", "commonSettings").Value
	keys := common.Keys()

	required := []string{
		config.SettingServiceBusNamespace, config.SettingServiceBusCred, config.SettingServiceBusClientID,
		config.SettingStorageURI, config.SettingStorageCred, config.SettingStorageClientID,
		config.SettingEntity, config.SettingTable, config.SettingBatchSize, config.SettingConcurrency,
		config.SettingRunBudget, config.SettingMaxLockRenewal, config.SettingProcessor, config.SettingWebhookURL,
		config.SettingWebhookTimeout, config.SettingWebhookHeaders, config.SettingWebhookAudience,
		config.SettingLockDuration, config.SettingMessageTTL, config.SettingRequiresSession, config.SettingMaxSessions, "ProcessQueueSchedule",
		"AzureWebJobsStorage__blobServiceUri", "AzureWebJobsStorage__queueServiceUri", "AzureWebJobsStorage__tableServiceUri",
		"AzureWebJobsStorage__credential", "AzureWebJobsStorage__clientId", config.SettingFunctionTimeout, config.SettingLockDuration,
		"APPLICATIONINSIGHTS_CONNECTION_STRING", "APPLICATIONINSIGHTS_AUTHENTICATION_STRING", "AZURE_CLIENT_ID",
	}
	for _, k := range required {
		if !slices.Contains(keys, k) {
			t.Errorf("app setting %s is not set", k)
		}
	}
	// Key-based forms must not appear: they would need a secret.
	for _, k := range []string{config.SettingServiceBus, config.SettingStorage, "AzureWebJobsStorage"} {
		if slices.Contains(keys, k) {
			t.Errorf("key-based setting %s is set; use the identity-based form", k)
		}
	}
	for _, k := range []string{config.SettingServiceBusCred, config.SettingStorageCred, "AzureWebJobsStorage__credential"} {
		v := mustProp(t, "commonSettings", common, k)
		if v.Text != "managedIdentity" {
			t.Errorf("%s = %s, want managedIdentity", k, v.Text)
		}
	}
	if v := literal(t, "managedIdentity", mustDecl(t, app, "var", "managedIdentity").Value); v != config.CredentialManagedIdentity {
		t.Errorf("managedIdentity = %v, want %q", v, config.CredentialManagedIdentity)
	}
	for _, k := range []string{config.SettingServiceBusClientID, config.SettingStorageClientID, "AzureWebJobsStorage__clientId", "AZURE_CLIENT_ID"} {
		if v := mustProp(t, "commonSettings", common, k).Text; v != "identityClientId" {
			t.Errorf("%s = %s, want identityClientId", k, v)
		}
	}

	// Flex Consumption rejects these settings; Consumption needs the first two.
	flexForbidden := regexp.MustCompile(`^(FUNCTIONS_WORKER_RUNTIME|FUNCTIONS_EXTENSION_VERSION|WEBSITE_RUN_FROM_PACKAGE|WEBSITE_CONTENT.*|WEBSITE_TIME_ZONE)$`)
	for _, k := range keys {
		if flexForbidden.MatchString(k) {
			t.Errorf("common setting %s is not allowed on Flex Consumption", k)
		}
	}
	y1 := mustDecl(t, app, "var", "consumptionBaseSettings").Value
	for k, want := range map[string]string{"FUNCTIONS_WORKER_RUNTIME": "custom", "FUNCTIONS_EXTENSION_VERSION": "~4"} {
		if got := literal(t, k, mustProp(t, "consumptionBaseSettings", y1, k)); got != want {
			t.Errorf("Consumption %s = %v, want %s", k, got, want)
		}
	}
	appSettings := mustDecl(t, app, "resource", "appSettings")
	if got := mustProp(t, "appSettings", appSettings.Value, "properties").Normalized(); got != "isFlex ? commonSettings : union(commonSettings, consumptionSettings)" {
		t.Errorf("appSettings properties = %s", got)
	}
	for _, tpl := range allTemplates(t) {
		for _, bad := range []string{"AccountKey=", "SharedAccessKey", "SharedAccessSignature"} {
			if strings.Contains(tpl.src, bad) {
				t.Errorf("%s contains %s", tpl.Path, bad)
			}
		}
	}
}

func TestHostingPlans(t *testing.T) {
	main := load(t, "main.bicep")
	app := load(t, "modules/functionapp.bicep")
	if def := paramDefault(t, main, "hostingPlan"); def != "FlexConsumption" {
		t.Errorf("hostingPlan default = %v, want FlexConsumption", def)
	}
	checks := []struct{ decl, path, want string }{
		{"flexAppConfig", "runtime.name", "custom"},
		{"flexAppConfig", "runtime.version", "1.0"},
		{"flexAppConfig", "deployment.storage.type", "blobContainer"},
		{"flexAppConfig", "deployment.storage.authentication.type", "UserAssignedIdentity"},
		{"flexSku", "name", "FC1"},
		{"flexSku", "tier", "FlexConsumption"},
		{"consumptionSku", "name", "Y1"},
		{"consumptionSku", "tier", "Dynamic"},
		{"consumptionSiteConfig", "linuxFxVersion", ""},
	}
	for _, c := range checks {
		v := mustProp(t, c.decl, mustDecl(t, app, "var", c.decl).Value, c.path)
		if got := literal(t, c.decl+"."+c.path, v); got != c.want {
			t.Errorf("%s.%s = %v, want %q", c.decl, c.path, got, c.want)
		}
	}
	site := mustDecl(t, app, "resource", "site")
	if got := literal(t, "site kind", mustProp(t, "site", site.Value, "kind")); got != "functionapp,linux" {
		t.Errorf("site kind = %v", got)
	}
	if got := mustProp(t, "site", site.Value, "properties.functionAppConfig").Normalized(); got != "isFlex ? flexAppConfig : null" {
		t.Errorf("functionAppConfig = %s", got)
	}
	plan := mustDecl(t, app, "resource", "plan")
	if got := literal(t, "plan reserved", mustProp(t, "plan", plan.Value, "properties.reserved")); got != true {
		t.Errorf("plan reserved = %v, want true (Linux)", got)
	}
}

func TestMainOutputs(t *testing.T) {
	main := load(t, "main.bicep")
	for _, name := range []string{"functionAppName", "functionAppHostName", "serviceBusNamespace", "queueName"} {
		o := mustDecl(t, main, "output", name)
		if o.Type != "string" || o.Decorator("description") == nil {
			t.Errorf("output %s: type %s, description %v", name, o.Type, o.Decorator("description") != nil)
		}
	}
}

// Each module call passes exactly the module's parameters (a check the offline syntax parser cannot make).
func TestModuleCalls(t *testing.T) {
	main := load(t, "main.bicep")
	modules := main.Find("module")
	if len(modules) != 5 {
		t.Fatalf("main.bicep has %d modules, want 5", len(modules))
	}
	for _, m := range modules {
		mod := load(t, m.Type)
		passed := mustProp(t, m.Name, m.Value, "params").Keys()
		for _, p := range mod.Find("param") {
			if !slices.Contains(passed, p.Name) && p.Value.Text == "" {
				t.Errorf("module %s (%s): required parameter %s not passed", m.Name, m.Type, p.Name)
			}
		}
		for _, k := range passed {
			if mod.Get("param", k) == nil {
				t.Errorf("module %s (%s): passes %s, which the module does not declare", m.Name, m.Type, k)
			}
		}
	}
}

// API versions come from a list checked against the published type definitions (Azure/bicep-types-az
// generated/<provider>/<namespace>/<version>/types.json at 1f896de2d, 2026-08-20: every resource type used exists
// in its version, with the properties the templates set). Each is one the linter's use-recent-api-versions rule
// accepts (Bicep UseRecentApiVersionRule): a GA version at most 730 days old, or the newest GA version when none
// is that recent — Microsoft.Insights/components 2020-02-02, ManagedIdentity 2024-11-30 and roleAssignments
// 2022-04-01 are the newest GA versions of their types; Microsoft.Insights/diagnosticSettings has no GA version
// and 2021-05-01-preview is its newest. Microsoft.App 2026-01-01 (jobs: eventTriggerConfig.scale.rules[].identity,
// configuration.registries[].identity; managedEnvironments: appLogsConfiguration destination 'azure-monitor',
// workloadProfiles) and Microsoft.ContainerRegistry 2025-11-01 (adminUserEnabled, anonymousPullEnabled,
// roleAssignmentMode) were read in that commit's types.md. Refresh the list when a newer GA version appears.
func TestAPIVersions(t *testing.T) {
	allowed := map[string][]string{
		"Microsoft.ServiceBus/":                   {"2026-01-01"},
		"Microsoft.Storage/":                      {"2025-06-01"},
		"Microsoft.Web/":                          {"2025-03-01"},
		"Microsoft.Insights/components":           {"2020-02-02"},
		"Microsoft.OperationalInsights/":          {"2025-07-01"},
		"Microsoft.ManagedIdentity/":              {"2024-11-30"},
		"Microsoft.Authorization/roleAssignments": {"2022-04-01"},
		"Microsoft.App/":                          {"2026-01-01"},
		"Microsoft.ContainerRegistry/":            {"2025-11-01"},
		// The only version of diagnosticSettings in the published types (no GA version exists).
		"Microsoft.Insights/diagnosticSettings": {"2021-05-01-preview"},
	}
	for _, tpl := range allTemplates(t) {
		for _, d := range tpl.Find("resource") {
			typ, api, _ := strings.Cut(d.Type, "@")
			ok := false
			for prefix, versions := range allowed {
				if strings.HasPrefix(typ, prefix) && slices.Contains(versions, api) {
					ok = true
				}
			}
			if !ok {
				t.Errorf("%s:%d %s uses %s@%s, not in the reference list", tpl.Path, d.Line, d.Name, typ, api)
			}
		}
	}
}

// azure.yaml provisions infra/ and deploys through hooks, with no alpha feature: `language: custom` stops a
// released azd unless alpha.language.custom is switched on, so no service is declared and the postdeploy hook
// publishes the package. Each hook runs an executable script of this repository.
func TestAzureYAML(t *testing.T) {
	b, err := os.ReadFile(repoRoot + "/azure.yaml")
	if err != nil {
		t.Fatal(err)
	}
	lines := map[string]bool{}
	for _, l := range strings.Split(string(b), "\n") {
		if l, _, _ := strings.Cut(l, "#"); strings.TrimSpace(l) != "" {
			lines[strings.TrimSpace(l)] = true
		}
	}
	for _, want := range []string{
		"name: holdfast", "provider: bicep", "path: infra", "module: main", "hooks:", "preprovision:", "postdeploy:",
		"run: ./scripts/azd-preprovision.sh", "run: ./scripts/azd-postdeploy.sh",
	} {
		if !lines[want] {
			t.Errorf("azure.yaml: no line %q", want)
		}
	}
	for l := range lines {
		if strings.HasPrefix(l, "services:") || strings.HasPrefix(l, "language:") || strings.Contains(l, "alpha") {
			t.Errorf("azure.yaml: %q needs an azd alpha feature or a service azd cannot build", l)
		}
		if script, ok := strings.CutPrefix(l, "run: ./"); ok {
			fi, err := os.Stat(repoRoot + "/" + script)
			if err != nil || fi.Mode()&0o111 == 0 {
				t.Errorf("azure.yaml runs %s, which is missing or not executable (%v)", script, err)
			}
		}
	}
	// The hooks refuse the Consumption plan, which azd cannot deploy to, and main.bicepparam takes the plan from
	// the environment so that the refusal sees the plan azd would provision.
	params, err := os.ReadFile(infraPath("main.bicepparam"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(params), "param hostingPlan = readEnvironmentVariable('HOLDFAST_HOSTING_PLAN'") {
		t.Error("main.bicepparam: hostingPlan does not come from HOLDFAST_HOSTING_PLAN")
	}
}

// The linter runs with the security rules raised to errors wherever the Bicep CLI builds the templates.
func TestLinterConfig(t *testing.T) {
	b, err := os.ReadFile(infraPath("bicepconfig.json"))
	if err != nil {
		t.Fatal(err)
	}
	var cfg struct {
		Analyzers struct {
			Core struct {
				Enabled bool `json:"enabled"`
				Rules   map[string]struct {
					Level string `json:"level"`
				} `json:"rules"`
			} `json:"core"`
		} `json:"analyzers"`
	}
	if err := json.Unmarshal(b, &cfg); err != nil {
		t.Fatalf("bicepconfig.json: %v", err)
	}
	if !cfg.Analyzers.Core.Enabled {
		t.Error("bicepconfig.json: the core analyzer is disabled")
	}
	for _, rule := range []string{
		"outputs-should-not-contain-secrets", "secure-parameter-default", "secure-secrets-in-params",
		"use-secure-value-for-secure-inputs", "no-hardcoded-env-urls", "no-hardcoded-location",
		"no-unused-params", "no-unused-vars", "use-parent-property",
	} {
		if got := cfg.Analyzers.Core.Rules[rule].Level; got != "error" {
			t.Errorf("bicepconfig.json: rule %s level %q, want error", rule, got)
		}
	}
}

var objectKey = regexp.MustCompile(`(^|[\n{,])[ \t]*$`)

// references returns the identifiers used in e, leaving out object property names (an identifier followed by
// ':' at the start of a line or after '{' or ',').
func references(e Expr) map[string]bool {
	out := map[string]bool{}
	m := e.Masked()
	for _, loc := range regexp.MustCompile(`[A-Za-z_][A-Za-z0-9_]*`).FindAllStringIndex(m, -1) {
		if loc[0] > 0 && (m[loc[0]-1] == '.' || isDigit(m[loc[0]-1])) {
			continue
		}
		after := strings.TrimLeft(m[loc[1]:], " \t")
		if strings.HasPrefix(after, ":") && objectKey.MatchString(m[:loc[0]]) {
			continue
		}
		out[m[loc[0]:loc[1]]] = true
	}
	return out
}

// Every parameter and variable is used (the linter's no-unused-params / no-unused-vars, offline).
func TestNoUnusedSymbols(t *testing.T) {
	for _, tpl := range allTemplates(t) {
		used := map[string]bool{}
		for _, d := range tpl.Decls {
			for id := range references(d.Value) {
				if id != d.Name || d.Kind == "resource" || d.Kind == "module" {
					used[id] = true
				}
			}
			for id := range references(d.Condition) {
				used[id] = true
			}
		}
		for _, d := range tpl.Decls {
			if (d.Kind == "param" || d.Kind == "var") && d.Decorator("export") == nil && !used[d.Name] {
				t.Errorf("%s:%d %s %s is never used", tpl.Path, d.Line, d.Kind, d.Name)
			}
		}
	}
}
