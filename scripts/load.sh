#!/usr/bin/env bash
# Load benchmark: `GET /` versus `GET /private` (one valid token, repeated) on examples/resource-server,
# driven by wrk. Server and load generator are pinned to different cores; both runs happen in the same
# invocation so the ratio compares like with like.
#
#   scripts/load.sh            # 10 s per route, 64 connections
#   DURATION=30s CONNECTIONS=128 scripts/load.sh
#
# Needs wrk (Debian package `wrk`; installed here if missing) and taskset (util-linux).
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-10s}
CONNECTIONS=${CONNECTIONS:-64}
PORT=${PORT:-18080}
SERVER_CPU=${SERVER_CPU:-0}
LOAD_CPU=${LOAD_CPU:-1}

if ! command -v wrk >/dev/null 2>&1; then
    apt-get update -qq && apt-get install -y -qq wrk
fi

cargo build --release -q -p resource-server
workdir=$(mktemp -d)
trap 'kill "$server" 2>/dev/null || true; rm -rf "$workdir"' EXIT

# One server worker thread on one core: req/s then measures the per-request CPU cost.
TOKIO_WORKER_THREADS=1 RUST_LOG=error PORT=$PORT TOKEN_FILE="$workdir/token" \
    taskset -c "$SERVER_CPU" target/release/resource-server >"$workdir/out" 2>&1 &
server=$!
for _ in $(seq 1 100); do
    [ -s "$workdir/token" ] && break
    sleep 0.1
done
[ -s "$workdir/token" ] || { echo "server did not start"; cat "$workdir/out"; exit 1; }
token=$(cat "$workdir/token")
base="http://127.0.0.1:$PORT"

# Sanity: both routes answer 200 before measuring.
curl -fsS "$base/" >/dev/null
curl -fsS -H "Authorization: Bearer $token" "$base/private" >/dev/null

run() { # route, extra wrk args…
    local route=$1; shift
    taskset -c "$LOAD_CPU" wrk -t1 -c"$CONNECTIONS" -d"$DURATION" "$@" "$base$route" \
        | awk '/Requests\/sec/ {print $2}'
}
# Warm up both paths, then measure.
run / -d2s >/dev/null
run /private -d2s -H "Authorization: Bearer $token" >/dev/null
open=$(run /)
private=$(run /private -H "Authorization: Bearer $token")
# A bad signature: flip one character in the middle of the signature segment (same length, canonical
# base64url), so the token is refused by the signature check itself.
sig=${token##*.}
mid=$(( ${#sig} / 2 ))
c=${sig:$mid:1}; [ "$c" = A ] && r=B || r=A
bad="${token%.*}.${sig:0:$mid}$r${sig:$((mid + 1))}"
invalid=$(run /private -H "Authorization: Bearer $bad")

printf '%-36s %12s\n' "route" "req/s"
printf '%-36s %12.0f\n' "GET /" "$open"
printf '%-36s %12.0f\n' "GET /private (valid token)" "$private"
printf '%-36s %12.0f\n' "GET /private (bad signature, 401)" "$invalid"
awk -v a="$private" -v b="$open" 'BEGIN { printf "ratio /private ÷ / = %.2f\n", a / b }'
