#!/usr/bin/env bash
# Deploys holdfast on the legacy Linux Consumption plan (Y1, retiring 30 Sep 2028) with identity-only storage:
#
#   1. provision infra/main.bicep with hostingPlan=Consumption;
#   2. make package (checked: host.json at the root, executable linux/amd64 handler);
#   3. upload the zip to the deployment container with your Entra ID sign-in (a new blob name per release);
#   4. provision again with packageUrl set to that blob: the template writes WEBSITE_RUN_FROM_PACKAGE next to
#      WEBSITE_RUN_FROM_PACKAGE_BLOB_MI_RESOURCE_ID, so the platform downloads it with the app's identity, and a
#      later provision keeps it (a URL set with `az functionapp config appsettings` would be dropped);
#   5. sync triggers, which an external package URL needs (Functions docs, functions-deployment-technologies,
#      "Trigger syncing"), or the timer may not fire while the app is scaled to zero.
#
#   RESOURCE_GROUP=<rg> [LOCATION=<region>] ./scripts/deploy-consumption.sh     (or: make deploy-consumption ...)
#
# You need Storage Blob Data Contributor on the storage account to upload (step 3); the script prints the
# command that grants it when the upload is refused.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/deploy-common.sh

need_resource_group "to the resource group to deploy into"
need_az
export HOLDFAST_HOSTING_PLAN=Consumption # read by infra/main.bicepparam

ensure_resource_group

# Keep the package URL of the current release while provisioning, so the app keeps running the same code.
HOLDFAST_PACKAGE_URL=$(deployment_output packageUrl 2>/dev/null || true)
export HOLDFAST_PACKAGE_URL
say "1/5 provisioning (hostingPlan=Consumption)"
provision

say "2/5 packaging (make package)"
make --no-print-directory package

account=$(deployment_output storageAccountName)
container=$(deployment_output deploymentContainerName)
containerURL=$(deployment_output deploymentContainerUrl)
sum=$( (sha256sum bin/holdfast.zip 2>/dev/null || shasum -a 256 bin/holdfast.zip) | cut -c1-12)
blob="holdfast-$(date -u +%Y%m%dT%H%M%SZ)-$sum.zip"
say "3/5 uploading $blob to $account/$container"
if ! az storage blob upload --auth-mode login --account-name "$account" -c "$container" -n "$blob" \
	-f bin/holdfast.zip --only-show-errors -o none; then
	scope=$(az storage account show -g "$RESOURCE_GROUP" -n "$account" --query id -o tsv)
	die "upload refused. Grant yourself Storage Blob Data Contributor on the account, wait a minute, and run again:
  az role assignment create --role 'Storage Blob Data Contributor' --assignee \$(az ad signed-in-user show --query id -o tsv) --scope $scope"
fi

export HOLDFAST_PACKAGE_URL="$containerURL/$blob"
say "4/5 provisioning with packageUrl=$HOLDFAST_PACKAGE_URL"
provision

say "5/5 syncing triggers"
appID=$(deployment_output functionAppId)
# A URL without a host is taken as a resource ID on the current cloud's Resource Manager endpoint (az rest --url).
az rest --method post --url "$appID/syncfunctiontriggers?api-version=2025-03-01" -o none
say "deployed $(deployment_output functionAppName) from $blob"
