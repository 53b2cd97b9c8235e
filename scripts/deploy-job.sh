#!/usr/bin/env bash
# Deploys the code to the Container Apps job that infra/main.bicep creates with hostingPlan=ContainerAppsJob:
#
#   1. (PROVISION=1, i.e. make deploy-job) provision infra/main.bicep with hostingPlan=ContainerAppsJob, keeping
#      the image the job runs now;
#   2. build the image from the repository's Dockerfile in the job's registry with `az acr build` — an ACR
#      Tasks remote build: the source is uploaded and built in Azure, no local Docker engine is needed;
#   3. provision again with HOLDFAST_IMAGE set to the new image, so that the template (which a later provision
#      re-applies) names it, and under azd record it with `azd env set HOLDFAST_IMAGE` for azd's provisions.
#
# azd runs it (without step 1) from its postdeploy hook (scripts/azd-postdeploy.sh) with the Bicep outputs
# exported. Outside azd:  RESOURCE_GROUP=<rg> [LOCATION=<region>] make deploy-job
# You need AcrPush (or Contributor) on the registry to build, and rights to deploy to the resource group.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/deploy-common.sh

need_resource_group "to the resource group to deploy into (azd: azd env set AZURE_RESOURCE_GROUP <rg>)"
need_az
export HOLDFAST_HOSTING_PLAN=ContainerAppsJob # read by infra/main.bicepparam

if [[ "${PROVISION:-}" == 1 ]]; then
	ensure_resource_group
	# Keep the image of the current release while provisioning (not the placeholder of a first deployment).
	current=${HOLDFAST_IMAGE:-$(deployment_output containerImage 2>/dev/null || true)}
	[[ "$current" == mcr.microsoft.com/* ]] && current=""
	export HOLDFAST_IMAGE=$current
	say "provisioning (hostingPlan=ContainerAppsJob)"
	provision
	containerRegistryName="" containerRegistryLoginServer="" # read them from this deployment
fi

registry=${containerRegistryName:-$(deployment_output containerRegistryName)}
server=${containerRegistryLoginServer:-$(deployment_output containerRegistryLoginServer)}
[[ -n "$registry" && -n "$server" ]] ||
	die "no container registry output in resource group $RESOURCE_GROUP: provision with HOLDFAST_HOSTING_PLAN=ContainerAppsJob first"

rev=$(git rev-parse --short=12 HEAD 2>/dev/null || echo local)
tag="$(date -u +%Y%m%dT%H%M%SZ)-$rev"
image="$server/holdfast:$tag"
say "building $image in $registry (az acr build: remote build from ./Dockerfile, no local Docker)"
az acr build --registry "$registry" --image "holdfast:$tag" --file Dockerfile --only-show-errors -o none . ||
	die "the remote build failed. It needs ACR Tasks (not offered on every subscription type) and AcrPush on $registry for you"

export HOLDFAST_IMAGE=$image
say "provisioning with HOLDFAST_IMAGE=$image"
provision
if [[ -n "${AZURE_ENV_NAME:-}" ]] && command -v azd >/dev/null 2>&1; then
	azd env set HOLDFAST_IMAGE "$image" # azd provision reads it through infra/main.bicepparam
fi
say "deployed: job $(deployment_output jobName) runs $image"
