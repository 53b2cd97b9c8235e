#!/usr/bin/env bash
# Checks the Bicep templates under infra/.
#
#   1. Offline syntax check of every .bicep / .bicepparam file (tree-sitter grammar; needs `npm ci`), plus the
#      checker's own tests, which feed it deliberately broken templates.
#   2. Where the Bicep CLI is installed (`bicep`, or `az bicep`): compile main.bicep and main.bicepparam and run
#      the linter with infra/bicepconfig.json. Without a CLI this step is skipped and says so; it cannot run
#      offline because the CLI downloads its binary when installed.
#
# The template invariants (bounded queue parameters, RBAC scopes and role GUIDs, no secrets in outputs, app
# settings) are Go tests in infra/infratest and run with `go test ./...`.
#
# Exit status is non-zero when any step that ran failed.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== bicep syntax (tree-sitter-bicep, offline)"
node infra/check/syntax.mjs infra
node --test --test-reporter=dot infra/check/syntax.test.mjs

# bicep_cli <command> <file> [options]: the standalone CLI takes the file as an argument, az takes --file.
bicep_cli() {
	local cmd=$1 file=$2
	shift 2
	if command -v bicep >/dev/null 2>&1; then
		bicep "$cmd" "$file" "$@"
	else
		az bicep "$cmd" --file "$file" "$@" --only-show-errors
	fi
}

echo "== bicep build / lint"
if command -v bicep >/dev/null 2>&1; then
	echo "using $(bicep --version)"
elif command -v az >/dev/null 2>&1 && az bicep version --only-show-errors >/dev/null 2>&1; then
	echo "using az bicep ($(az bicep version --only-show-errors 2>/dev/null | head -n1))"
else
	echo "SKIPPED: no Bicep CLI on PATH (install it with 'az bicep install' or from https://aka.ms/bicep-install);"
	echo "         only the offline syntax check ran. CI with Azure access should run this step."
	exit 0
fi

out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
bicep_cli build infra/main.bicep --outdir "$out"
bicep_cli build-params infra/main.bicepparam --outfile "$out/main.parameters.json"
bicep_cli lint infra/main.bicep
for f in infra/modules/*.bicep; do
	bicep_cli lint "$f"
done
echo "bicep build and lint OK"
