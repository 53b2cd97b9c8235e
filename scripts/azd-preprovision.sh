#!/usr/bin/env bash
# azd preprovision hook (azure.yaml): refuses the legacy Consumption plan, which azd cannot deploy to (see
# consumption_refusal), and checks the Azure CLI that the postdeploy hook (scripts/azd-postdeploy.sh) deploys
# the code with, before any resource is created.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/deploy-common.sh

plan=${HOLDFAST_HOSTING_PLAN:-FlexConsumption}
case "$plan" in
FlexConsumption | ContainerAppsJob) ;;
Consumption)
	consumption_refusal
	exit 1
	;;
*) die "HOLDFAST_HOSTING_PLAN=$plan: use FlexConsumption or ContainerAppsJob (azd), or Consumption (make deploy-consumption)" ;;
esac
if grep -Eq "^param hostingPlan = '" infra/main.bicepparam; then
	die "infra/main.bicepparam fixes hostingPlan; azd reads it from HOLDFAST_HOSTING_PLAN (azd env set HOLDFAST_HOSTING_PLAN FlexConsumption)"
fi
need_az
