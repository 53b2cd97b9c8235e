#!/usr/bin/env bash
# Local stack for holdfast: the Service Bus emulator, Azurite, then `func start` when Azure Functions
# Core Tools are installed, otherwise the dev host (cmd/devhost). Waits for each to be ready and
# stops every child on Ctrl-C, on SIGTERM, or when any of them exits.
#
# Environment: SB_PORT (5672), SB_ADMIN_PORT (5300, the emulator admin API), HOST_ADDR (127.0.0.1:7071), USE_DEVHOST=1 to skip `func` even if
# installed.
set -euo pipefail
cd "$(dirname "$0")/.."

SB_PORT=${SB_PORT:-5672}
HOST_ADDR=${HOST_ADDR:-127.0.0.1:7071}
HOST_PORT=${HOST_ADDR##*:}
GO=${GO:-go}

say() { printf '== %s\n' "$*" >&2; }

pids=()
cleanup() {
  local status=$?
  # Ignore further signals until every child is stopped: `make start` killed with SIGTERM forwards a second
  # SIGTERM to this script, which with the default action would end it mid-cleanup and leave Azurite and the
  # emulator running (holding their ports).
  trap - EXIT
  trap '' INT TERM HUP
  # Stop in reverse order and one at a time: the host first (it lets running invocations finish
  # while Service Bus and Azurite are still up, then stops the handler), then Azurite, then the
  # emulator.
  for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
    kill -TERM "${pids[i]}" 2>/dev/null || true
    wait "${pids[i]}" 2>/dev/null || true
  done
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP # the terminal closed
# Job control: each child gets its own process group, so Ctrl-C reaches only this script, which
# then stops the children in order.
set -m

# wait_port NAME PORT PID: wait until 127.0.0.1:PORT accepts TCP connections, while PID lives.
wait_port() {
  local name=$1 port=$2 pid=$3 deadline=$((SECONDS + 60))
  until (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; do
    if ! kill -0 "$pid" 2>/dev/null; then
      say "$name exited before listening on port $port"
      exit 1
    fi
    if ((SECONDS >= deadline)); then
      say "$name not listening on port $port after 60 s"
      exit 1
    fi
    sleep 0.2
  done
  say "$name ready on port $port"
}

./scripts/ensure-npm.sh

use_func=0
if [[ "${USE_DEVHOST:-0}" != 1 ]] && command -v func >/dev/null 2>&1; then
  use_func=1
fi

say "building dist/ and the local tools"
make --no-print-directory build GO="$GO"
mkdir -p bin
"$GO" build -o bin/sbemulator ./cmd/sbemulator
if ((use_func == 0)); then
  "$GO" build -o bin/devhost ./cmd/devhost
fi

say "starting the Service Bus emulator on port $SB_PORT"
bin/sbemulator -addr "localhost:$SB_PORT" -config dev/Config.json -admin-addr "localhost:${SB_ADMIN_PORT:-5300}" &
pids+=($!)
wait_port "Service Bus emulator" "$SB_PORT" "${pids[-1]}"

azurite_flags=(--silent --disableTelemetry --inMemoryPersistence
  --tableHost 127.0.0.1 --tablePort 10002)
if ((use_func == 1)); then
  # func start needs blob and queue storage too (AzureWebJobsStorage: timer locks and status).
  say "starting Azurite (blob, queue, table)"
  node_modules/.bin/azurite "${azurite_flags[@]}" --blobHost 127.0.0.1 --queueHost 127.0.0.1 &
else
  say "starting Azurite (table)"
  node_modules/.bin/azurite-table "${azurite_flags[@]}" &
fi
pids+=($!)
wait_port "Azurite" 10002 "${pids[-1]}"

if ((use_func == 1)); then
  say "starting func start (Azure Functions Core Tools) on port $HOST_PORT"
  func start --script-root dist --port "$HOST_PORT" &
else
  say "func not found: starting the dev host on $HOST_ADDR"
  bin/devhost -script-root dist -settings local.settings.json -addr "$HOST_ADDR" &
fi
pids+=($!)
wait_port "Functions host" "$HOST_PORT" "${pids[-1]}"
say "ready: http://$HOST_ADDR/api/deferred · fire the timer: make demo (or POST /admin/functions/ProcessQueue)"

# Run until Ctrl-C or until any child exits.
set +e
wait -n "${pids[@]}"
status=$?
say "a child process exited (status $status); stopping the others"
exit "$status"
