# Helpers shared by the deploy scripts (sourced, not run). Every deploy command goes through the Azure CLI,
# signed in with `az login`; nothing here reads or writes a key.

say() { printf '== %s\n' "$*" >&2; }
die() {
	printf 'error: %s\n' "$*" >&2
	exit 1
}

# AZ_MIN: `az functionapp deployment source config-zip` deploys to Flex Consumption (the /api/publish one-deploy
# endpoint) from Azure CLI 2.60.0 on (Flex Consumption how-to, prerequisites).
AZ_MIN=2.60.0

# need_az checks that the Azure CLI is installed, recent enough and signed in.
need_az() {
	command -v az >/dev/null 2>&1 || die "the Azure CLI (az) is not installed: https://aka.ms/install-azure-cli"
	local v
	v=$(az version --query '"azure-cli"' -o tsv 2>/dev/null) || die "az version failed"
	if [[ "$(printf '%s\n%s\n' "$AZ_MIN" "$v" | sort -V | head -n1)" != "$AZ_MIN" ]]; then
		die "Azure CLI $v is older than $AZ_MIN (az upgrade)"
	fi
	az account show -o none 2>/dev/null ||
		die "the Azure CLI is not signed in: run az login (azd auth login does not sign in az; or let azd use az's login: azd config set auth.useAzCliAuth true)"
	if [[ -n "${AZURE_SUBSCRIPTION_ID:-}" ]]; then
		az account set --subscription "$AZURE_SUBSCRIPTION_ID" || die "cannot select subscription $AZURE_SUBSCRIPTION_ID"
	fi
}

# need_resource_group sets RESOURCE_GROUP from itself or azd's AZURE_RESOURCE_GROUP, or stops with HINT.
need_resource_group() {
	RESOURCE_GROUP=${RESOURCE_GROUP:-${AZURE_RESOURCE_GROUP:-}}
	[[ -n "$RESOURCE_GROUP" ]] || die "set RESOURCE_GROUP $1"
}

# deployment_output NAME prints an output of the resource group's last deployment of main.bicep (named "main").
deployment_output() {
	az deployment group show -g "$RESOURCE_GROUP" -n main --query "properties.outputs.$1.value" -o tsv
}

# consumption_refusal prints why azd and zip deploy are not used on the legacy Consumption plan.
consumption_refusal() {
	cat >&2 <<'MSG'
holdfast deploys to the legacy Consumption plan (Y1) only with `make deploy-consumption`, not with azd or zip
deploy. On Linux Consumption the package has to run from a blob URL that the platform reads with the app's
managed identity: zip deploy (azd's deploy step, `az functionapp deployment source config-zip`, `func azure
functionapp publish`) uploads it with an AzureWebJobsStorage connection string, and this storage account has no
keys; and each `azd provision` rewrites the whole app-settings collection, so a package URL set outside the
template would be dropped. `make deploy-consumption RESOURCE_GROUP=<rg>` provisions with hostingPlan=Consumption,
uploads the zip, sets packageUrl through the template and syncs the triggers.
MSG
}

# ensure_resource_group creates RESOURCE_GROUP in LOCATION when it does not exist yet.
ensure_resource_group() {
	if [[ "$(az group exists -n "$RESOURCE_GROUP")" != true ]]; then
		[[ -n "${LOCATION:-}" ]] || die "resource group $RESOURCE_GROUP does not exist: set LOCATION to create it"
		say "creating resource group $RESOURCE_GROUP in $LOCATION"
		az group create -n "$RESOURCE_GROUP" -l "$LOCATION" -o none
	fi
}

# provision deploys infra/main.bicep with infra/main.bicepparam (which reads the HOLDFAST_* variables) to the
# resource group, as the deployment "main" that deployment_output reads.
provision() {
	az deployment group create -g "$RESOURCE_GROUP" -n main --template-file infra/main.bicep \
		--parameters infra/main.bicepparam -o none
}
