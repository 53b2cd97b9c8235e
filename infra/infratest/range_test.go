package infratest

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/holdfast-dev/holdfast/internal/config"
)

var (
	templateCacheMu sync.Mutex
	templateCache   = map[string]*Template{}
)

// loadTemplate parses a template by its path relative to infra/, once.
func loadTemplate(rel string) (*Template, error) {
	templateCacheMu.Lock()
	defer templateCacheMu.Unlock()
	if t, ok := templateCache[rel]; ok {
		return t, nil
	}
	t, err := Parse(infraPath(rel))
	if err != nil {
		return nil, err
	}
	templateCache[rel] = t
	return t, nil
}

// deploy binds params to main.bicep and evaluates every module call the deployment makes (a module whose
// condition is false is not deployed), so that each module's own parameter bounds are checked against what
// main.bicep passes.
func deploy(params map[string]any) (*Scope, error) {
	main, err := loadTemplate("main.bicep")
	if err != nil {
		return nil, err
	}
	s, err := NewScope(main, params, testEnv(), loadTemplate, "")
	if err != nil {
		return nil, err
	}
	for _, m := range main.Find("module") {
		on, err := deployed(s, m)
		if err != nil {
			return nil, err
		}
		if !on {
			continue
		}
		if _, err := s.Module(m.Name); err != nil {
			return nil, fmt.Errorf("module %s: %w", m.Name, err)
		}
	}
	return s, nil
}

// deployed evaluates a module's or resource's condition (true without one).
func deployed(s *Scope, d *Decl) (bool, error) {
	if d.Condition.Text == "" {
		return true, nil
	}
	v, err := s.Eval(d.Condition)
	if err != nil {
		return false, fmt.Errorf("%s condition: %w", d.Name, err)
	}
	b, ok := v.(bool)
	if !ok {
		return false, fmt.Errorf("%s condition is %T, not bool", d.Name, v)
	}
	return b, nil
}

// isJob reports whether a deployment is of the Container Apps job.
func isJob(s *Scope) bool { return s.Param("hostingPlan") == "ContainerAppsJob" }

// appSettings evaluates what the handler is configured with: the function app's app settings, or the
// Container Apps job's environment (secrets resolved) for hostingPlan ContainerAppsJob.
func appSettings(s *Scope) (map[string]string, error) {
	if isJob(s) {
		return jobSettings(s)
	}
	app, err := s.Module("functionApp")
	if err != nil {
		return nil, err
	}
	v, err := app.ResourceProp("appSettings", "properties")
	if err != nil {
		return nil, err
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("app settings are %T, not an object", v)
	}
	out := make(map[string]string, len(m))
	for k, x := range m {
		str, ok := x.(string)
		if !ok {
			return nil, fmt.Errorf("app setting %s is %T %v, not a string", k, x, x)
		}
		out[k] = str
	}
	return out, nil
}

// jobSettings evaluates the job container's environment: each value, or the value of the secret it refers to.
func jobSettings(s *Scope) (map[string]string, error) {
	job, err := s.Module("job")
	if err != nil {
		return nil, err
	}
	containers, err := job.ResourceProp("job", "properties.template.containers")
	if err != nil {
		return nil, err
	}
	if c, ok := containers.([]any); !ok || len(c) != 1 {
		return nil, fmt.Errorf("job containers: %v, want one", containers)
	}
	env := containers.([]any)[0].(map[string]any)["env"]
	secretList, err := job.ResourceProp("job", "properties.configuration.secrets")
	if err != nil {
		return nil, err
	}
	secrets := map[string]string{}
	for _, x := range secretList.([]any) {
		m := x.(map[string]any)
		secrets[m["name"].(string)] = m["value"].(string)
	}
	out := map[string]string{}
	for _, x := range env.([]any) {
		m, ok := x.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("job env entry %T", x)
		}
		name, _ := m["name"].(string)
		if _, dup := out[name]; dup || name == "" {
			return nil, fmt.Errorf("job env: %q repeated or empty", name)
		}
		switch {
		case m["secretRef"] != nil:
			v, ok := secrets[m["secretRef"].(string)]
			if !ok {
				return nil, fmt.Errorf("job env %s refers to the unknown secret %v", name, m["secretRef"])
			}
			out[name] = v
		default:
			v, ok := m["value"].(string)
			if !ok {
				return nil, fmt.Errorf("job env %s is %T, not a string", name, m["value"])
			}
			out[name] = v
		}
	}
	return out, nil
}

// loadHandlerConfig runs the handler's configuration loader on app settings: with the packaged host.json for
// the function app, standalone (as `handler run-once` loads them) for the job.
func loadHandlerConfig(s *Scope, settings map[string]string) (*config.Config, error) {
	get := func(k string) string { return settings[k] }
	if isJob(s) {
		return config.LoadWith(get, &config.LoadOptions{Standalone: true})
	}
	return config.LoadApp(get, repoRoot, nil)
}

// webhookURL is what the range test passes for the webhook processor's URL.
const webhookURL = "https://hooks.example.invalid/holdfast"

// The template's whole parameter range goes through the handler's real configuration loader, so the two cannot
// disagree again: every functionTimeoutMinutes bound (and the Consumption clamp at 10/11 minutes) on both plans
// with each processor, then every other parameter at each of its bounds or allowed values on both plans. A
// processor the handler knows must be allowed by the template and load; one the handler refuses must be refused
// by the template too.
func TestTemplateRangeThroughHandlerConfig(t *testing.T) {
	main := load(t, "main.bicep")
	plans := mustAllowed(t, main, "hostingPlan")
	templateProcessors := mustAllowed(t, main, "processor")
	// The handler has both built-in processors, so the template must offer both (and each then loads below).
	processors := []any{"demo", "webhook"}
	for _, p := range processors {
		if !slices.Contains(templateProcessors, p) {
			t.Errorf("processor %q is not in main.bicep's @allowed", p)
		}
	}
	for _, p := range templateProcessors {
		if !slices.Contains(processors, p) {
			processors = append(processors, p)
		}
	}
	timeoutParam := mustDecl(t, main, "param", "functionTimeoutMinutes")
	lo, _ := intDecorator(timeoutParam, "minValue")
	hi, _ := intDecorator(timeoutParam, "maxValue")
	timeouts := []int{lo, hi, paramDefault(t, main, "functionTimeoutMinutes").(int), 10, 11, 30}
	slices.Sort(timeouts)
	timeouts = slices.Compact(timeouts)
	if lo != 1 || hi < 240 {
		t.Errorf("functionTimeoutMinutes bounds %d..%d, want 1..240 (Flex allows long timeouts)", lo, hi)
	}

	replicaParam := mustDecl(t, main, "param", "jobReplicaTimeoutSeconds")
	rlo, _ := intDecorator(replicaParam, "minValue")
	rhi, _ := intDecorator(replicaParam, "maxValue")
	replicaTimeouts := []int{rlo, rhi, paramDefault(t, main, "jobReplicaTimeoutSeconds").(int), 600}
	slices.Sort(replicaTimeouts)
	replicaTimeouts = slices.Compact(replicaTimeouts)

	for _, plan := range plans {
		// The limit the handler must fit: functionTimeoutMinutes on the Functions plans, the replica timeout
		// (as HOLDFAST_PROCESS_TIMEOUT) for the job.
		limitParam, limits, unit := "functionTimeoutMinutes", timeouts, time.Minute
		if plan == "ContainerAppsJob" {
			limitParam, limits, unit = "jobReplicaTimeoutSeconds", replicaTimeouts, time.Second
		}
		for _, limit := range limits {
			for _, proc := range processors {
				name := fmt.Sprintf("%v/%s=%d/%v", plan, limitParam, limit, proc)
				t.Run(name, func(t *testing.T) {
					params := map[string]any{"hostingPlan": plan, limitParam: limit, "processor": proc}
					if proc == "webhook" {
						params["webhookUrl"] = webhookURL
					}
					if !slices.Contains(templateProcessors, proc) {
						checkRefusedByBoth(t, params, proc.(string))
						return
					}
					s, err := deploy(params)
					if err != nil {
						t.Fatalf("the template refuses %v: %v", params, err)
					}
					settings, err := appSettings(s)
					if err != nil {
						t.Fatal(err)
					}
					cfg, err := loadHandlerConfig(s, settings)
					if err != nil {
						t.Fatalf("the handler refuses the template's settings for %s: %v", name, err)
					}
					effective, source := time.Duration(limit)*unit, config.SettingFunctionTimeout
					switch plan {
					case "Consumption":
						effective = min(effective, 10*time.Minute) // Consumption's maximum functionTimeout
					case "ContainerAppsJob":
						source = config.SettingProcessTimeout
					}
					if cfg.FunctionTimeout != effective || cfg.FunctionTimeoutSource != source {
						t.Errorf("handler limit %v from %q, want %v from %s", cfg.FunctionTimeout, cfg.FunctionTimeoutSource, effective, source)
					}
					if worst := cfg.RunBudget + config.SettleTimeout + config.CloseTimeout; worst > cfg.FunctionTimeout || cfg.RunBudget < time.Second {
						t.Errorf("budget %v (+ settle and close = %v) does not fit the limit %v", cfg.RunBudget, worst, cfg.FunctionTimeout)
					}
					if cfg.Processor != proc {
						t.Errorf("processor %q, want %v", cfg.Processor, proc)
					}
					if proc == "webhook" && cfg.Webhook.URL != webhookURL {
						t.Errorf("webhook URL not configured: %+v", cfg.Webhook)
					}
				})
			}
		}
	}

	// Every other parameter at its bounds, one at a time, on every plan.
	for _, plan := range plans {
		for _, p := range main.Find("param") {
			if p.Name == "hostingPlan" || p.Name == "functionTimeoutMinutes" || p.Name == "processor" || p.Name == "jobReplicaTimeoutSeconds" {
				continue
			}
			for _, v := range boundaryValues(t, p) {
				t.Run(fmt.Sprintf("%v/%s=%v", plan, p.Name, v), func(t *testing.T) {
					s, err := deploy(map[string]any{"hostingPlan": plan, p.Name: v})
					if err != nil {
						t.Fatalf("the template refuses its own bound: %v", err)
					}
					settings, err := appSettings(s)
					if err != nil {
						t.Fatal(err)
					}
					if _, err := loadHandlerConfig(s, settings); err != nil {
						t.Fatalf("the handler refuses the template's settings: %v", err)
					}
				})
			}
		}
	}
}

// TestSessionsThroughHandlerConfig: requiresSession makes the entity session-enabled and the handler run
// sessions, on every plan; maxSessions reaches HOLDFAST_MAX_SESSIONS, and 0 (the default) means the concurrency,
// as in the handler.
func TestSessionsThroughHandlerConfig(t *testing.T) {
	main := load(t, "main.bicep")
	for _, plan := range mustAllowed(t, main, "hostingPlan") {
		for _, tc := range []struct {
			params          map[string]any
			session         bool
			wantMaxSessions int
		}{
			{map[string]any{}, false, 8},
			{map[string]any{"requiresSession": true}, true, 8},
			{map[string]any{"requiresSession": true, "concurrency": 20}, true, 20},
			{map[string]any{"requiresSession": true, "maxSessions": 3}, true, 3},
			{map[string]any{"requiresSession": true, "entityKind": "topic", "maxSessions": 1000}, true, 1000},
		} {
			t.Run(fmt.Sprintf("%v/%v", plan, tc.params), func(t *testing.T) {
				params := map[string]any{"hostingPlan": plan}
				for k, v := range tc.params {
					params[k] = v
				}
				s, err := deploy(params)
				if err != nil {
					t.Fatal(err)
				}
				settings, err := appSettings(s)
				if err != nil {
					t.Fatal(err)
				}
				cfg, err := loadHandlerConfig(s, settings)
				if err != nil {
					t.Fatalf("the handler refuses the template's settings: %v", err)
				}
				if cfg.RequiresSession != tc.session || cfg.MaxSessions != tc.wantMaxSessions {
					t.Errorf("handler RequiresSession %v MaxSessions %d; want %v and %d", cfg.RequiresSession, cfg.MaxSessions, tc.session, tc.wantMaxSessions)
				}
				sb, err := s.Module("serviceBus")
				if err != nil {
					t.Fatal(err)
				}
				if got := sb.Param("requiresSession"); got != tc.session {
					t.Errorf("entity requiresSession %v; want %v", got, tc.session)
				}
			})
		}
	}
}

// checkRefusedByBoth asserts that a processor the template does not allow is refused by the handler as well:
// the settings are the template's for the demo processor with HOLDFAST_PROCESSOR (and the webhook URL) changed.
func checkRefusedByBoth(t *testing.T, params map[string]any, proc string) {
	t.Helper()
	if _, err := deploy(params); err == nil {
		t.Fatalf("processor %q is not in @allowed, yet the template accepts it", proc)
	}
	params["processor"] = "demo"
	s, err := deploy(params)
	if err != nil {
		t.Fatal(err)
	}
	settings, err := appSettings(s)
	if err != nil {
		t.Fatal(err)
	}
	settings[config.SettingProcessor] = proc
	settings[config.SettingWebhookURL] = webhookURL
	_, err = loadHandlerConfig(s, settings)
	var se *config.SettingError
	if !errors.As(err, &se) || se.Setting != config.SettingProcessor {
		t.Fatalf("the handler accepts processor %q (error %v) but the template's @allowed does not: add it, with its settings, to main.bicep and modules/functionapp.bicep", proc, err)
	}
}

func mustAllowed(t *testing.T, tpl *Template, param string) []any {
	t.Helper()
	v, err := allowedValues(mustDecl(t, tpl, "param", param))
	if err != nil || len(v) == 0 {
		t.Fatalf("param %s: no @allowed list (%v)", param, err)
	}
	return v
}

// boundaryValues lists the values a parameter is tested with: each @allowed value, or the @minValue and
// @maxValue, or both booleans. Strings without @allowed keep their default (their length bounds are names).
func boundaryValues(t *testing.T, p *Decl) []any {
	t.Helper()
	if v, err := allowedValues(p); err != nil {
		t.Fatal(err)
	} else if v != nil {
		return v
	}
	switch p.Type {
	case "int":
		lo, _ := intDecorator(p, "minValue")
		hi, _ := intDecorator(p, "maxValue")
		return []any{lo, hi}
	case "bool":
		return []any{false, true}
	}
	return nil
}

// resourceNames evaluates every name the deployment gives a resource: main.bicep's own resources (by symbol)
// and the names passed to each module it deploys, by parameter name.
func resourceNames(t *testing.T, s *Scope) map[string]string {
	t.Helper()
	out := map[string]string{}
	main := s.tpl
	for _, r := range main.Find("resource") {
		if on, err := deployed(s, r); err != nil || !on {
			continue
		}
		v, err := s.ResourceProp(r.Name, "name")
		if err != nil {
			t.Fatal(err)
		}
		out[r.Name] = v.(string)
	}
	for _, m := range main.Find("module") {
		if on, err := deployed(s, m); err != nil || !on {
			continue
		}
		sub, err := s.Module(m.Name)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range sub.tpl.Find("param") {
			if strings.HasSuffix(p.Name, "Name") && p.Name != "subscriptionName" && p.Name != "queueName" && p.Name != "topicName" &&
				p.Name != "deferralTableName" && p.Name != "serviceBusNamespaceName" {
				out[m.Name+"."+p.Name] = sub.Param(p.Name).(string)
			}
		}
	}
	return out
}

// Naming rules of the resources whose names derive from namePrefix (Azure resource naming rules), and the
// plans that create them ("" for all).
var namingRules = map[string]struct {
	rule *regexp.Regexp
	plan string
}{
	"identity":                        {regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_-]{2,127}$`), ""},
	"serviceBus.namespaceName":        {regexp.MustCompile(`^[A-Za-z][A-Za-z0-9-]{4,48}[A-Za-z0-9]$`), ""},
	"storage.accountName":             {regexp.MustCompile(`^[a-z0-9]{3,24}$`), ""},
	"storage.deploymentContainerName": {regexp.MustCompile(`^[a-z0-9]([a-z0-9]|-[a-z0-9]){2,62}$`), ""},
	"monitoring.workspaceName":        {regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9-]{2,61}[A-Za-z0-9]$`), ""},
	"monitoring.appInsightsName":      {regexp.MustCompile(`^[A-Za-z0-9_.()-]{1,260}$`), ""},
	"functionApp.planName":            {regexp.MustCompile(`^[A-Za-z0-9-]{1,60}$`), "FlexConsumption"},
	"functionApp.appName":             {regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9-]{0,58}[A-Za-z0-9])?$`), "FlexConsumption"},
	"scalerIdentity":                  {regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_-]{2,127}$`), "ContainerAppsJob"},
	// Container Apps: lower-case letters, digits and hyphens, starting with a letter, ending with a letter or
	// digit, no "--"; environments up to 60 characters, jobs up to 32.
	"job.environmentName": {regexp.MustCompile(`^[a-z]([a-z0-9]|-[a-z0-9]){1,59}$`), "ContainerAppsJob"},
	"job.jobName":         {regexp.MustCompile(`^[a-z]([a-z0-9]|-[a-z0-9]){1,31}$`), "ContainerAppsJob"},
	"job.registryName":    {regexp.MustCompile(`^[a-zA-Z0-9]{5,50}$`), "ContainerAppsJob"},
}

// Odd prefixes give valid names everywhere: namePrefix is lower-cased and stripped to letters and digits.
func TestNamePrefixSanitised(t *testing.T) {
	for prefix, wantClean := range map[string]string{
		"holdfast":    "holdfast",
		"HoldFast":    "holdfast",
		"my-app":      "myapp",
		"A_B.C-9 x":   "abc9x",
		"123abc":      "123abc",
		"Ünïcödé1":    "ncd1",
		"---":         "holdfast", // nothing left: the fallback
		"ABCDEFGHIJK": "abcdefghijk",
	} {
		for _, plan := range []string{"FlexConsumption", "ContainerAppsJob"} {
			t.Run(plan+"/"+prefix, func(t *testing.T) {
				s, err := deploy(map[string]any{"namePrefix": prefix, "hostingPlan": plan})
				if err != nil {
					t.Fatal(err)
				}
				if got, err := s.Var("prefix"); err != nil || got != wantClean {
					t.Errorf("prefix = %v (%v), want %q", got, err, wantClean)
				}
				names := resourceNames(t, s)
				for key, r := range namingRules {
					name, ok := names[key]
					if !ok {
						if r.plan == "" || r.plan == plan {
							t.Errorf("no %s name found", key)
						}
						continue
					}
					if !r.rule.MatchString(name) {
						t.Errorf("%s name %q breaks the naming rule %s", key, name, r.rule)
					}
					if key == "serviceBus.namespaceName" && (strings.HasSuffix(name, "-sb") || strings.HasSuffix(name, "-mgmt")) {
						t.Errorf("namespace name %q ends with a reserved suffix", name)
					}
				}
			})
		}
	}
}

// The storage endpoints the app uses come from the cloud's storage suffix: the same template in another cloud
// gives that cloud's host names.
func TestStorageEndpointsFollowTheCloud(t *testing.T) {
	s, err := deploy(nil)
	if err != nil {
		t.Fatal(err)
	}
	settings, err := appSettings(s)
	if err != nil {
		t.Fatal(err)
	}
	account := resourceNames(t, s)["storage.accountName"]
	for key, service := range map[string]string{
		"AzureWebJobsStorage__blobServiceUri":  "blob",
		"AzureWebJobsStorage__queueServiceUri": "queue",
		"AzureWebJobsStorage__tableServiceUri": "table",
		config.SettingStorageURI:               "table",
	} {
		if want := "https://" + account + "." + service + ".core.windows.net/"; settings[key] != want {
			t.Errorf("%s = %q, want %q", key, settings[key], want)
		}
	}
	if _, ok := settings["AzureWebJobsStorage__accountName"]; ok {
		t.Error("AzureWebJobsStorage__accountName is set: it assumes public Azure's storage suffix")
	}

	china := testEnv()
	china.Environment = map[string]any{"name": "AzureChinaCloud", "suffixes": map[string]any{"storage": "core.chinacloudapi.cn"}}
	main, err := loadTemplate("main.bicep")
	if err != nil {
		t.Fatal(err)
	}
	cs, err := NewScope(main, nil, china, loadTemplate, "")
	if err != nil {
		t.Fatal(err)
	}
	cset, err := appSettings(cs)
	if err != nil {
		t.Fatal(err)
	}
	if v := cset["AzureWebJobsStorage__blobServiceUri"]; !strings.HasSuffix(v, ".blob.core.chinacloudapi.cn/") {
		t.Errorf("blob URI in Azure China = %q", v)
	}
}

// disallowedHosts is the Bicep linter's default no-hardcoded-env-urls list (Azure/bicep
// src/Bicep.Core/Configuration/bicepconfig.json), which bicepconfig.json raises to an error. Before Bicep 0.38.3
// the rule also flagged host names inside @description text, failing `bicep build`.
var disallowedHosts = []string{
	"api.loganalytics.io", "azuredatalakeanalytics.net", "azuredatalakestore.net", "batch.core.windows.net",
	"core.windows.net", "database.windows.net", "datalake.azure.net", "gallery.azure.com", "graph.windows.net",
	"login.microsoftonline.com", "management.azure.com", "management.core.windows.net",
	"region.asazure.windows.net", "trafficmanager.net", "vault.azure.net",
}

var hostName = regexp.MustCompile(`(?i)\b[a-z0-9-]+(\.[a-z0-9-]+)*\.(net|com|io|cn|us|de)\b`)

// No string in a template names a cloud-specific host (use environment() instead), and no description names
// any host at all.
func TestNoHardcodedHosts(t *testing.T) {
	for _, tpl := range allTemplates(t) {
		for _, lit := range stringLiterals(tpl) {
			for _, h := range disallowedHosts {
				if strings.Contains(strings.ToLower(lit), h) {
					t.Errorf("%s: string %q names the cloud-specific host %s", tpl.Path, lit, h)
				}
			}
		}
		for _, d := range tpl.Decls {
			if dec := d.Decorator("description"); dec != nil && hostName.MatchString(dec.Args.Text) {
				t.Errorf("%s:%d %s %s: @description names a host: %s", tpl.Path, d.Line, d.Kind, d.Name, hostName.FindString(dec.Args.Text))
			}
		}
	}
}

// stringLiterals returns the literal text of every string in a template (interpolated expressions excluded,
// comments not included).
func stringLiterals(tpl *Template) []string {
	var out []string
	for i := 0; i < len(tpl.mask); {
		if tpl.mask[i] != '~' {
			i++
			continue
		}
		j := i
		for j < len(tpl.mask) && tpl.mask[j] == '~' {
			j++
		}
		out = append(out, tpl.src[i:j])
		i = j
	}
	return out
}

// The outputs the deploy scripts read evaluate on both plans: the package container URL is the blob endpoint
// plus the container, and hostingPlan is the plan deployed.
func TestMainOutputsEvaluate(t *testing.T) {
	main := load(t, "main.bicep")
	for _, plan := range mustAllowed(t, main, "hostingPlan") {
		s, err := deploy(map[string]any{"hostingPlan": plan})
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]any{}
		for _, o := range main.Find("output") {
			v, err := s.Output(o.Name)
			if err != nil {
				t.Fatalf("%v: %v", plan, err)
			}
			if _, ok := v.(string); !ok {
				t.Errorf("%v: output %s is %T", plan, o.Name, v)
			}
			out[o.Name] = v
		}
		names := resourceNames(t, s)
		wantURL := "https://" + names["storage.accountName"] + ".blob.core.windows.net/" + names["storage.deploymentContainerName"]
		if out["deploymentContainerUrl"] != wantURL || out["hostingPlan"] != plan {
			t.Errorf("%v: deploymentContainerUrl %v (want %s), hostingPlan %v", plan, out["deploymentContainerUrl"], wantURL, out["hostingPlan"])
		}
		if plan == "ContainerAppsJob" {
			if out["functionAppId"] != "" || out["jobName"] != names["job.jobName"] || out["containerRegistryName"] != names["job.registryName"] ||
				out["containerRegistryLoginServer"] != names["job.registryName"]+".azurecr.io" || !strings.HasPrefix(out["containerImage"].(string), "mcr.microsoft.com/") {
				t.Errorf("%v: outputs %v", plan, out)
			}
		} else if id, _ := out["functionAppId"].(string); !strings.HasSuffix(id, "/providers/Microsoft.Web/sites/"+names["functionApp.appName"]) || out["jobName"] != "" {
			t.Errorf("%v: functionAppId %q, jobName %q", plan, id, out["jobName"])
		}
	}
}
