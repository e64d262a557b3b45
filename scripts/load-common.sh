# Sourced by scripts/load.sh and scripts/load-refusal.sh: the settings, examples/resource-server on one
# core, and wrk runs measured by the server's own CPU time. Set PORT before sourcing.

DURATION=${DURATION:-6s}
CONNECTIONS=${CONNECTIONS:-64}
SERVER_CPU=${SERVER_CPU:-0}
LOAD_CPU=${LOAD_CPU:-1}

if ! command -v wrk >/dev/null 2>&1; then
    apt-get update -qq && apt-get install -y -qq wrk
fi

workdir=$(mktemp -d)
server=
trap 'kill "$server" 2>/dev/null || true; rm -rf "$workdir"' EXIT

# start_server BIN [NAME=VALUE…]: one worker thread on SERVER_CPU (req/s then measures the
# per-request CPU cost), stdout to $workdir/out, stderr (its log) to $workdir/log; returns once the
# server has written its token file, and sets `server` and `base`.
start_server() {
    local bin=$1
    shift
    env TOKIO_WORKER_THREADS=1 PORT="$PORT" TOKEN_FILE="$workdir/token" "$@" \
        taskset -c "$SERVER_CPU" "$bin" >"$workdir/out" 2>"$workdir/log" &
    server=$!
    for _ in $(seq 1 100); do
        [ -s "$workdir/token" ] && break
        sleep 0.1
    done
    [ -s "$workdir/token" ] || { echo "server did not start"; cat "$workdir/out" "$workdir/log"; exit 1; }
    base="http://127.0.0.1:$PORT"
}

cpu_ticks() { awk '{ print $14, $15 }' "/proc/$server/stat"; } # the server's utime and stime
TICK=$(getconf CLK_TCK)

# run ROUTE [wrk args…] → "req/s CPU-µs-per-request user-µs sys-µs" (the server's). ROUTE is also in
# the environment, for wrk scripts.
run() {
    local route=$1
    shift
    local u0 s0 u1 s1
    read -r u0 s0 < <(cpu_ticks)
    ROUTE=$route taskset -c "$LOAD_CPU" wrk -t1 -c"$CONNECTIONS" -d"$DURATION" "$@" "$base$route" >"$workdir/wrk"
    read -r u1 s1 < <(cpu_ticks)
    awk -v user=$((u1 - u0)) -v sys=$((s1 - s0)) -v tick="$TICK" '
        /requests in/ { n = $1 }
        /Requests\/sec/ { rps = $2 }
        END { us = 1e6 / tick / n; printf "%s %.2f %.2f %.2f\n", rps, (user + sys) * us, user * us, sys * us }' "$workdir/wrk"
}

median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
