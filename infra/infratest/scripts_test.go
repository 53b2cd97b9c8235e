package infratest

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// fakeAz answers the Azure CLI calls the deploy scripts make and appends each call, with the HOLDFAST_*
// variables a deployment would read, to $FAKE_LOG. Outputs of the last deployment come from FAKE_OUT_<name>.
const fakeAz = `#!/usr/bin/env bash
echo "az $* | plan=${HOLDFAST_HOSTING_PLAN:-} package=${HOLDFAST_PACKAGE_URL:-} image=${HOLDFAST_IMAGE:-}" >>"$FAKE_LOG"
case "$1 $2" in
"version "*) echo "${FAKE_AZ_VERSION:-2.67.0}" ;;
"account show"|"account set") exit 0 ;;
"group exists") echo true ;;
"deployment group")
	if [[ "$3" == show ]]; then
		all="$*"; q=${all##*properties.outputs.}; q=${q%%.value*}; v="FAKE_OUT_$q"; echo "${!v:-}"
	fi ;;
"storage blob") [[ -z "${FAKE_UPLOAD_FAIL:-}" ]] ;;
"acr build") [[ -z "${FAKE_BUILD_FAIL:-}" ]] ;;
"storage account") echo /subscriptions/s/resourceGroups/rg/providers/Microsoft.Storage/storageAccounts/st ;;
"functionapp show") echo app.example.invalid ;;
*) exit 0 ;;
esac
`

// fakeMake stands in for make package: it writes bin/holdfast.zip and logs the call.
const fakeMake = `#!/usr/bin/env bash
echo "make $*" >>"$FAKE_LOG"
mkdir -p bin && echo zip >bin/holdfast.zip
`

// runScript runs one of scripts/ in a copy of the repository's scripts and parameter file, with the fakes
// first on PATH; it returns the exit code, the output and the calls logged.
func runScript(t *testing.T, script string, env map[string]string) (int, string, []string) {
	t.Helper()
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Skip("bash is not installed")
	}
	root := t.TempDir()
	for _, dir := range []string{"scripts", "infra", "fakebin"} {
		if err := os.MkdirAll(filepath.Join(root, dir), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	files, _ := filepath.Glob(filepath.Join(repoRoot, "scripts", "*.sh"))
	files = append(files, infraPath("main.bicepparam"))
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		dst := filepath.Join(root, "scripts", filepath.Base(f))
		if strings.HasSuffix(f, ".bicepparam") {
			dst = filepath.Join(root, "infra", filepath.Base(f))
		}
		if err := os.WriteFile(dst, b, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for name, body := range map[string]string{"az": fakeAz, "make": fakeMake} {
		if err := os.WriteFile(filepath.Join(root, "fakebin", name), []byte(body), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	logPath := filepath.Join(root, "calls.log")
	cmd := exec.Command(bash, filepath.Join(root, "scripts", script))
	cmd.Env = []string{"PATH=" + filepath.Join(root, "fakebin") + ":" + os.Getenv("PATH"), "FAKE_LOG=" + logPath, "HOME=" + root}
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	code := 0
	if err := cmd.Run(); err != nil {
		exit, ok := err.(*exec.ExitError)
		if !ok {
			t.Fatal(err)
		}
		code = exit.ExitCode()
	}
	b, _ := os.ReadFile(logPath)
	return code, out.String(), strings.Split(strings.TrimSpace(string(b)), "\n")
}

func indexOf(calls []string, re string) int {
	r := regexp.MustCompile(re)
	for i, c := range calls {
		if r.MatchString(c) {
			return i
		}
	}
	return -1
}

// azd's hooks: preprovision refuses the Consumption plan with the reason, before anything is created, and
// checks the Azure CLI version; the postdeploy hook deploys the package to a Flex app and refuses a Consumption app.
func TestAzdHooks(t *testing.T) {
	code, out, calls := runScript(t, "azd-preprovision.sh", map[string]string{"HOLDFAST_HOSTING_PLAN": "Consumption"})
	if code == 0 || !strings.Contains(out, "make deploy-consumption") || !strings.Contains(out, "connection string") {
		t.Errorf("preprovision with Consumption: exit %d\n%s", code, out)
	}
	if indexOf(calls, `^az `) >= 0 {
		t.Errorf("preprovision called az before refusing: %v", calls)
	}
	if code, out, _ := runScript(t, "azd-preprovision.sh", map[string]string{"FAKE_AZ_VERSION": "2.59.0"}); code == 0 || !strings.Contains(out, "older than 2.60.0") {
		t.Errorf("preprovision with Azure CLI 2.59.0: exit %d\n%s", code, out)
	}
	if code, out, _ := runScript(t, "azd-preprovision.sh", nil); code != 0 {
		t.Errorf("preprovision with Flex: exit %d\n%s", code, out)
	}

	if code, out, _ := runScript(t, "azd-preprovision.sh", map[string]string{"HOLDFAST_HOSTING_PLAN": "ContainerAppsJob"}); code != 0 {
		t.Errorf("preprovision with ContainerAppsJob: exit %d\n%s", code, out)
	}

	flex := map[string]string{"AZURE_RESOURCE_GROUP": "rg", "functionAppName": "func-x", "hostingPlan": "FlexConsumption"}
	code, out, calls = runScript(t, "azd-postdeploy.sh", flex)
	pkg, deploy := indexOf(calls, `^make .*package`), indexOf(calls, `^az functionapp deployment source config-zip -g rg -n func-x --src bin/holdfast.zip`)
	if code != 0 || pkg < 0 || deploy < pkg {
		t.Errorf("postdeploy on Flex: exit %d, package at %d, config-zip at %d\n%s\n%v", code, pkg, deploy, out, calls)
	}
	flex["hostingPlan"] = "Consumption"
	code, out, calls = runScript(t, "azd-postdeploy.sh", flex)
	if code == 0 || !strings.Contains(out, "make deploy-consumption") || indexOf(calls, `config-zip`) >= 0 {
		t.Errorf("postdeploy on Consumption: exit %d\n%s\n%v", code, out, calls)
	}
}

// make deploy-consumption: provision with the Consumption plan, package, upload under a new name, provision
// again with the package URL, then sync triggers, in that order; a refused upload names the role to grant.
func TestDeployConsumption(t *testing.T) {
	env := map[string]string{
		"RESOURCE_GROUP": "rg", "FAKE_OUT_storageAccountName": "st1", "FAKE_OUT_deploymentContainerName": "app-package-1",
		"FAKE_OUT_deploymentContainerUrl": "https://st1.blob.example.invalid/app-package-1",
		"FAKE_OUT_functionAppId":          "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Web/sites/func-x",
		"FAKE_OUT_functionAppName":        "func-x",
	}
	code, out, calls := runScript(t, "deploy-consumption.sh", env)
	if code != 0 {
		t.Fatalf("exit %d\n%s\n%v", code, out, calls)
	}
	steps := []string{
		`^az deployment group create -g rg -n main .*\| plan=Consumption package= image=$`,
		`^make .*package`,
		`^az storage blob upload --auth-mode login --account-name st1 -c app-package-1 -n holdfast-\d{8}T\d{6}Z-[0-9a-f]{12}\.zip`,
		`^az deployment group create -g rg -n main .*\| plan=Consumption package=https://st1\.blob\.example\.invalid/app-package-1/holdfast-.*\.zip image=$`,
		`^az rest --method post --url /subscriptions/s/resourceGroups/rg/providers/Microsoft\.Web/sites/func-x/syncfunctiontriggers\?api-version=`,
	}
	last := -1
	for _, s := range steps {
		i := indexOf(calls, s)
		if i <= last {
			t.Errorf("step %q at %d, after %d: calls\n%s", s, i, last, strings.Join(calls, "\n"))
		}
		last = i
	}

	env["FAKE_UPLOAD_FAIL"] = "1"
	code, out, calls = runScript(t, "deploy-consumption.sh", env)
	if code == 0 || !strings.Contains(out, "Storage Blob Data Contributor") || indexOf(calls, `syncfunctiontriggers`) >= 0 {
		t.Errorf("refused upload: exit %d\n%s", code, out)
	}
}

// The job's code path: azd's postdeploy builds the image in the registry azd provisioned (az acr build, a
// remote build) and only then provisions with HOLDFAST_IMAGE naming it; make deploy-job provisions first,
// keeping the current image, then does the same. A failed remote build stops before the job is touched.
func TestDeployJob(t *testing.T) {
	azd := map[string]string{"AZURE_RESOURCE_GROUP": "rg", "hostingPlan": "ContainerAppsJob",
		"containerRegistryName": "crx", "containerRegistryLoginServer": "crx.azurecr.example.invalid"}
	code, out, calls := runScript(t, "azd-postdeploy.sh", azd)
	build := indexOf(calls, `^az acr build --registry crx --image holdfast:\d{8}T\d{6}Z-\w+ --file Dockerfile .* \.`)
	prov := indexOf(calls, `^az deployment group create -g rg -n main .*\| plan=ContainerAppsJob package= image=crx\.azurecr\.example\.invalid/holdfast:\d{8}T\d{6}Z-\w+$`)
	if code != 0 || build < 0 || prov < build || indexOf(calls, `config-zip`) >= 0 {
		t.Errorf("postdeploy on the job: exit %d, build at %d, provision at %d\n%s\n%s", code, build, prov, out, strings.Join(calls, "\n"))
	}
	if first := indexOf(calls, `^az deployment group create`); first != prov {
		t.Errorf("azd's postdeploy provisioned before building (at %d)", first)
	}

	direct := map[string]string{"RESOURCE_GROUP": "rg", "PROVISION": "1", "FAKE_OUT_containerImage": "crx.azurecr.example.invalid/holdfast:old",
		"FAKE_OUT_containerRegistryName": "crx", "FAKE_OUT_containerRegistryLoginServer": "crx.azurecr.example.invalid", "FAKE_OUT_jobName": "caj-x"}
	code, out, calls = runScript(t, "deploy-job.sh", direct)
	steps := []string{
		`^az deployment group create -g rg -n main .*\| plan=ContainerAppsJob package= image=crx\.azurecr\.example\.invalid/holdfast:old$`,
		`^az acr build --registry crx --image holdfast:`,
		`^az deployment group create -g rg -n main .*\| plan=ContainerAppsJob package= image=crx\.azurecr\.example\.invalid/holdfast:\d{8}T`,
	}
	last := -1
	for _, s := range steps {
		i := indexOf(calls, s)
		if i <= last {
			t.Errorf("step %q at %d, after %d (exit %d)\n%s\n%s", s, i, last, code, out, strings.Join(calls, "\n"))
		}
		last = i
	}

	// The first deployment's placeholder is not kept as if it were a release.
	direct["FAKE_OUT_containerImage"] = "mcr.microsoft.com/k8se/quickstart-jobs:latest"
	_, _, calls = runScript(t, "deploy-job.sh", direct)
	if indexOf(calls, `^az deployment group create .*image=$`) < 0 {
		t.Errorf("the placeholder image was passed on:\n%s", strings.Join(calls, "\n"))
	}

	azd["FAKE_BUILD_FAIL"] = "1"
	code, out, calls = runScript(t, "azd-postdeploy.sh", azd)
	if code == 0 || !strings.Contains(out, "ACR Tasks") || indexOf(calls, `^az deployment group create`) >= 0 {
		t.Errorf("failed build: exit %d\n%s\n%s", code, out, strings.Join(calls, "\n"))
	}
}
