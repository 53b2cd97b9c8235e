package infratest

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/holdfast-dev/holdfast/internal/config"
)

// hostingPlan=ContainerAppsJob: the handler settings are the function app's (identity-based, same values) plus
// HOLDFAST_PROCESS_TIMEOUT = replicaTimeout and a budget 30 s shorter; the container runs `run-once`; the
// scale rule is KEDA's azure-servicebus on the deployed entity, authenticated with the scaler identity (no
// auth secrets); the image is pulled with the app identity; no registry password, no workspace key.
func TestContainerAppsJob(t *testing.T) {
	for _, kind := range []string{"queue", "topic"} {
		t.Run(kind, func(t *testing.T) {
			s, err := deploy(map[string]any{"hostingPlan": "ContainerAppsJob", "entityKind": kind, "jobReplicaTimeoutSeconds": 900})
			if err != nil {
				t.Fatal(err)
			}
			job, err := s.Module("job")
			if err != nil {
				t.Fatal(err)
			}
			settings, err := jobSettings(s)
			if err != nil {
				t.Fatal(err)
			}
			flex, err := deploy(map[string]any{"entityKind": kind})
			if err != nil {
				t.Fatal(err)
			}
			appSet, err := appSettings(flex)
			if err != nil {
				t.Fatal(err)
			}
			for k, v := range appSet {
				if !strings.HasPrefix(k, "HOLDFAST_") && !strings.HasPrefix(k, "ServiceBusConnection") && !strings.HasPrefix(k, "DeferralStorage") && k != "AZURE_CLIENT_ID" {
					continue
				}
				got, ok := settings[k]
				switch {
				case !ok && v != "":
					t.Errorf("the job does not set %s (the function app sets %q)", k, v)
				case k == config.SettingRunBudget || k == config.SettingMaxLockRenewal:
					if got != "870s" {
						t.Errorf("%s = %q, want replicaTimeout 900 s − 30 s", k, got)
					}
				case got != v && v != "":
					t.Errorf("%s = %q, the function app has %q", k, got, v)
				}
			}
			for k := range settings {
				if strings.HasPrefix(k, "AzureWebJobs") || strings.HasPrefix(k, "AzureFunctionsJobHost") || strings.HasPrefix(k, "FUNCTIONS_") {
					t.Errorf("the job sets the Functions host setting %s", k)
				}
			}
			if settings[config.SettingProcessTimeout] != "900s" {
				t.Errorf("%s = %q, want 900s", config.SettingProcessTimeout, settings[config.SettingProcessTimeout])
			}

			containers, err := job.ResourceProp("job", "properties.template.containers")
			if err != nil {
				t.Fatal(err)
			}
			c := containers.([]any)[0].(map[string]any)
			if args := fmt.Sprint(c["args"]); args != "[run-once]" {
				t.Errorf("container args %s, want [run-once]", args)
			}
			if _, ok := c["command"]; ok {
				t.Error("the container overrides the image's entrypoint")
			}

			cfg := jobProp(t, job, "properties.configuration").(map[string]any)
			if cfg["triggerType"] != "Event" || cfg["replicaTimeout"] != 900 {
				t.Errorf("trigger %v, replicaTimeout %v", cfg["triggerType"], cfg["replicaTimeout"])
			}
			if secrets := cfg["secrets"].([]any); len(secrets) != 0 {
				t.Errorf("secrets %v without a webhook", secrets)
			}
			regs := cfg["registries"].([]any)
			if len(regs) != 1 || regs[0].(map[string]any)["identity"] != job.Param("identityId") || regs[0].(map[string]any)["passwordSecretRef"] != nil {
				t.Errorf("registries %v: want one, pulled with the app identity", regs)
			}
			scale := cfg["eventTriggerConfig"].(map[string]any)["scale"].(map[string]any)
			rules := scale["rules"].([]any)
			if len(rules) != 1 {
				t.Fatalf("scale rules %v", rules)
			}
			rule := rules[0].(map[string]any)
			if rule["type"] != "azure-servicebus" || rule["identity"] != job.Param("scalerIdentityId") || rule["auth"] != nil {
				t.Errorf("scale rule %v: want azure-servicebus with the scaler identity and no auth secret", rule)
			}
			if job.Param("scalerIdentityId") == job.Param("identityId") {
				t.Error("the scaler uses the app identity")
			}
			md := rule["metadata"].(map[string]any)
			entity := settings[config.SettingEntity]
			want := map[string]any{"namespace": job.Param("serviceBusNamespaceName"), "messageCount": "8", "queueName": entity}
			if kind == "topic" {
				parts := strings.Split(entity, "/")
				want = map[string]any{"namespace": job.Param("serviceBusNamespaceName"), "messageCount": "8", "topicName": parts[0], "subscriptionName": parts[2]}
			}
			if fmt.Sprint(md) != fmt.Sprint(want) {
				t.Errorf("scaler metadata %v, want %v", md, want)
			}
			ns := s.Param("namePrefix")
			if !strings.HasPrefix(fmt.Sprint(md["namespace"]), "sb-"+fmt.Sprint(ns)) {
				t.Errorf("scaler namespace %v", md["namespace"])
			}

			// Least privilege: the app identity gets no host storage or telemetry role on the job plan, and only
			// the scaler identity gets a role beyond Receiver and Sender on the entity.
			for module, param := range map[string]string{"storage": "hostStorage", "monitoring": "publishTelemetry"} {
				sub, err := s.Module(module)
				if err != nil {
					t.Fatal(err)
				}
				if sub.Param(param) != false {
					t.Errorf("%s.%s = %v on the job plan", module, param, sub.Param(param))
				}
				fsub, err := flex.Module(module)
				if err != nil {
					t.Fatal(err)
				}
				if fsub.Param(param) != true {
					t.Errorf("%s.%s = %v on Flex", module, param, fsub.Param(param))
				}
			}
			sb, err := s.Module("serviceBus")
			if err != nil {
				t.Fatal(err)
			}
			fsb, err := flex.Module("serviceBus")
			if err != nil {
				t.Fatal(err)
			}
			if sb.Param("scalerPrincipalId") == "" || fsb.Param("scalerPrincipalId") != "" {
				t.Errorf("scalerPrincipalId %q on the job, %q on Flex", sb.Param("scalerPrincipalId"), fsb.Param("scalerPrincipalId"))
			}
		})
	}

	// A webhook URL and headers become job secrets referenced by name, never plain values.
	s, err := deploy(map[string]any{"hostingPlan": "ContainerAppsJob", "processor": "webhook", "webhookUrl": webhookURL, "webhookHeaders": `{"X-Key":"k"}`})
	if err != nil {
		t.Fatal(err)
	}
	job, err := s.Module("job")
	if err != nil {
		t.Fatal(err)
	}
	containers, err := job.ResourceProp("job", "properties.template.containers")
	if err != nil {
		t.Fatal(err)
	}
	refs := 0
	for _, e := range containers.([]any)[0].(map[string]any)["env"].([]any) {
		m := e.(map[string]any)
		switch m["name"] {
		case config.SettingWebhookURL, config.SettingWebhookHeaders:
			if m["value"] != nil || m["secretRef"] == nil {
				t.Errorf("%v is not a secret reference: %v", m["name"], m)
			}
			refs++
		}
	}
	if refs != 2 {
		t.Errorf("%d secret references, want 2", refs)
	}
}

func jobProp(t *testing.T, job *Scope, path string) any {
	t.Helper()
	v, err := job.ResourceProp("job", path)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// The job module's run budget follows the replica timeout with the handler's margin, as the function app's
// follows functionTimeout.
func TestJobBudgetVars(t *testing.T) {
	job := load(t, "modules/containerappsjob.bicep")
	for name, want := range map[string]string{
		"runBudget": fmt.Sprintf("'${replicaTimeoutSeconds - %d}s'", int(config.BudgetMargin/time.Second)),
	} {
		if got := mustDecl(t, job, "var", name).Value.Normalized(); got != want {
			t.Errorf("var %s = %s, want %s", name, got, want)
		}
	}
	settings := mustDecl(t, job, "var", "settings").Value
	for key, want := range map[string]string{
		config.SettingRunBudget:          "runBudget",
		config.SettingMaxLockRenewal:     "runBudget",
		config.SettingProcessTimeout:     "'${replicaTimeoutSeconds}s'",
		config.SettingLockDuration:       "'${lockDurationSeconds}s'",
		config.SettingMessageTTL:         "'${messageTimeToLiveHours}h'",
		config.SettingServiceBusCred:     "managedIdentity",
		config.SettingStorageCred:        "managedIdentity",
		config.SettingServiceBusClientID: "identityClientId",
	} {
		if got := mustProp(t, "settings", settings, key).Text; got != want {
			t.Errorf("%s = %s, want %s", key, got, want)
		}
	}
}
