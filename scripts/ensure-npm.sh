#!/usr/bin/env bash
# Installs the npm packages of package-lock.json (npm ci) when node_modules lacks one of the top-level packages
# or holds another version than the lock file: Azurite (the tests and make start), the Bicep grammar
# (make infra-check) and whatever else package.json pins. Does nothing when they are all in place, so make test
# and make start work first on a fresh clone, in either order.
set -euo pipefail
cd "$(dirname "$0")/.."

command -v node >/dev/null 2>&1 || {
	echo "error: node is not installed; Node 20 or later with npm is needed (Azurite, the Bicep syntax check)" >&2
	exit 1
}
if node -e '
const fs = require("fs");
const lock = JSON.parse(fs.readFileSync("package-lock.json", "utf8"));
const root = lock.packages[""] || {};
const names = Object.keys({ ...root.dependencies, ...root.devDependencies });
for (const n of names) {
  const want = (lock.packages["node_modules/" + n] || {}).version;
  let got;
  try { got = JSON.parse(fs.readFileSync("node_modules/" + n + "/package.json", "utf8")).version; } catch { got = undefined; }
  if (got !== want) { console.error("npm package " + n + ": " + (got || "missing") + ", lock file has " + want); process.exit(1); }
}
'; then
	exit 0
fi
echo "== installing npm packages (npm ci)" >&2
npm ci --no-audit --no-fund --loglevel=error
