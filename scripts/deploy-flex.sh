#!/usr/bin/env bash
# Deploys the code to the Flex Consumption function app that infra/main.bicep created: `make package` (host.json,
# the function folders and the linux/amd64 handler, its zip entry executable, checked by cmd/hfpackage), then
# `az functionapp deployment source config-zip`, which on Flex posts the zip to the app's one-deploy endpoint
# with your Entra ID token (no storage key) and writes it to the deployment container.
#
# azd runs this as its postdeploy hook (azure.yaml), with the environment's values exported: AZURE_RESOURCE_GROUP,
# AZURE_SUBSCRIPTION_ID and the Bicep outputs (functionAppName, hostingPlan). Outside azd:
#   RESOURCE_GROUP=<rg> ./scripts/deploy-flex.sh      (or: make deploy RESOURCE_GROUP=<rg>)
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/deploy-common.sh

need_resource_group "(azd: azd env set AZURE_RESOURCE_GROUP <rg>)"
need_az

app=${functionAppName:-$(deployment_output functionAppName)}
plan=${hostingPlan:-$(deployment_output hostingPlan)}
[[ -n "$app" ]] || die "no functionAppName output in resource group $RESOURCE_GROUP: provision first (azd provision, or az deployment group create)"
if [[ "$plan" != FlexConsumption ]]; then
	consumption_refusal
	exit 1
fi

say "packaging (make package)"
make --no-print-directory package
say "deploying bin/holdfast.zip to $app (Flex Consumption one-deploy)"
az functionapp deployment source config-zip -g "$RESOURCE_GROUP" -n "$app" --src bin/holdfast.zip -o none
say "deployed: https://$(az functionapp show -g "$RESOURCE_GROUP" -n "$app" --query defaultHostName -o tsv)/api/deferred"
