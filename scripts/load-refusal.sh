#!/usr/bin/env bash
# The cost of a refusal: `GET /` versus `GET /private` with 1,000 rotating bad-signature tokens on
# examples/resource-server, with its default logging (INFO), driven by wrk, side by side in alternating
# rounds. Each round also times the RS256 signature check alone (the verify bench's `sig-only`, on the
# server's core), so that the target reads off one run:
#   server CPU per refusal <= server CPU per `GET /` + signature check + 3 µs.
#
#   scripts/load-refusal.sh            # 5 alternating rounds of 6 s per route, 64 connections
#   ROUNDS=3 DURATION=10s scripts/load-refusal.sh
#   SERVER_BIN=/path/to/older/resource-server scripts/load-refusal.sh   # compare another build
#
# Needs wrk (Debian package `wrk`; installed here if missing), taskset (util-linux) and python3.
set -euo pipefail
cd "$(dirname "$0")/.."

PORT=${PORT:-18081}
ROUNDS=${ROUNDS:-5}
# shellcheck source=scripts/load-common.sh
. scripts/load-common.sh

SERVER_BIN=${SERVER_BIN:-target/release/resource-server}
[ "$SERVER_BIN" != target/release/resource-server ] || cargo build --release -q -p resource-server
bench=$(cargo bench -q -p oidc-bearer --bench verify --no-run --message-format=json 2>/dev/null |
    python3 -c 'import json,sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["name"] == "verify":
        print(m["executable"])')
# Default logging: the server's own default filter (info), written to a file as in production.
start_server "$SERVER_BIN"

# 1,000 distinct bad signatures over the same header and payload: every one a token-cache miss that
# is refused by the signature check itself.
python3 - "$workdir/token" >"$workdir/bad" <<'PY'
import base64, sys
token = open(sys.argv[1]).read().strip()
head, sig = token.rsplit(".", 1)
raw = base64.urlsafe_b64decode(sig + "=" * (-len(sig) % 4))
for i in range(1000):
    b = bytearray(raw)
    b[i % len(b)] ^= 1 + i // len(b)
    print(head + "." + base64.urlsafe_b64encode(bytes(b)).decode().rstrip("="))
PY
cat >"$workdir/rotate.lua" <<'LUA'
local tokens = {}
for line in io.lines(os.getenv("TOKENS")) do tokens[#tokens + 1] = line end
local i = 0
request = function()
    i = i % #tokens + 1
    return wrk.format("GET", os.getenv("ROUTE"), { ["Authorization"] = "Bearer " .. tokens[i] })
end
LUA
status=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $(head -1 "$workdir/bad")" "$base/private")
[ "$status" = 401 ] || { echo "a bad signature answered $status, not 401"; exit 1; }

export TOKENS="$workdir/bad"
sig_only() { taskset -c "$SERVER_CPU" "$bench" sig-only | awk '/^sig-only/ { print $2 }'; }

run / -d2s >/dev/null
run /private -d2s -s "$workdir/rotate.lua" >/dev/null
opens=() open_cpu=() bads=() bad_cpu=() sigs=() margins=() carried_cpu=()
for round in $(seq 1 "$ROUNDS"); do
    if [ $((round % 2)) -eq 1 ]; then
        read -r o oc _ _ < <(run /)
        read -r b bc _ _ < <(run /private -s "$workdir/rotate.lua")
    else
        read -r b bc _ _ < <(run /private -s "$workdir/rotate.lua")
        read -r o oc _ _ < <(run /)
    fi
    # A control: `GET /` carrying the same rotating tokens, which that route ignores: what the 1 KiB
    # header costs in the kernel and in hyper, without our layer.
    read -r _ cc _ _ < <(run / -s "$workdir/rotate.lua")
    s=$(sig_only)
    opens+=("$o") open_cpu+=("$oc") bads+=("$b") bad_cpu+=("$bc") sigs+=("$s") carried_cpu+=("$cc")
    margins+=("$(awk -v b="$bc" -v o="$oc" -v s="$s" 'BEGIN { printf "%.2f", b - o - s }')")
    echo "round $round: GET / $oc µs, GET / carrying a token $cc µs, refusal $bc µs, signature $s µs: refusal - (GET / + signature) = ${margins[-1]} µs"
done
printf '%-44s %12s %18s\n' "route (median of $ROUNDS rounds)" "req/s" "server CPU µs/req"
printf '%-44s %12.0f %18.2f\n' "GET /" "$(median "${opens[@]}")" "$(median "${open_cpu[@]}")"
printf '%-44s %12s %18.2f\n' "GET / carrying the tokens (ignored)" "" "$(median "${carried_cpu[@]}")"
printf '%-44s %12.0f %18.2f\n' "GET /private, 1,000 rotating bad signatures" "$(median "${bads[@]}")" "$(median "${bad_cpu[@]}")"
echo "RS256 signature check alone (in process, server core): $(median "${sigs[@]}") µs"
echo "refusal - (GET / + signature check), per round: ${margins[*]}"
echo "refusal - (GET / + signature check), median: $(median "${margins[@]}") µs (target <= 3 µs)"
echo "log lines written during the run: $(grep -c 'bearer token rejected' "$workdir/log" || true)"
