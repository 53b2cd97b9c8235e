#!/usr/bin/env bash
# azd postdeploy hook (azure.yaml): deploys the code for the plan azd provisioned — the function package on
# Flex Consumption (scripts/deploy-flex.sh), the image on a Container Apps job (scripts/deploy-job.sh). azd
# exports the Bicep outputs, hostingPlan among them.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/deploy-common.sh

plan=${hostingPlan:-${HOLDFAST_HOSTING_PLAN:-FlexConsumption}}
case "$plan" in
ContainerAppsJob) exec ./scripts/deploy-job.sh ;;
*) exec ./scripts/deploy-flex.sh ;; # refuses Consumption with the reason
esac
