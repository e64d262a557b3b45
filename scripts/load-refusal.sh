#!/usr/bin/env bash
# The cost of a refusal: `GET /` versus `GET /private` with forged tokens on examples/resource-server,
# with its default logging (INFO), driven by wrk, side by side in alternating rounds. Each round also
# times the RS256 signature check alone (the verify bench's `sig-only`, on the server's core), so
# that the target reads off one run:
#   server CPU per refusal <= server CPU per `GET /` + signature check + 3 µs.
#
#   scripts/load-refusal.sh            # 5 alternating rounds of 6 s per route, 64 connections
#   ROUNDS=3 DURATION=10s scripts/load-refusal.sh
#   MODE=fresh scripts/load-refusal.sh  # every request a signature never sent before
#   SERVER_BIN=/path/to/older/resource-server scripts/load-refusal.sh   # measure another build
#   BASE_BIN=/path/to/older/resource-server scripts/load-refusal.sh     # this build and an older
#       one side by side: both servers started (on the same core, other ports), every round runs
#       each in turn, in alternating order
#
# MODE: `rotating` (default): 1,000 distinct bad signatures over the same header and payload, sent
# in turn, every one a token-cache miss refused by the signature check itself. `fresh`: a wrk script
# rewrites 6 characters in the middle of a bad signature on every request (a counter in base64url,
# 36 bits), so that no signature is ever sent twice: still a valid base64url encoding of the right
# length, refused by the signature check, and no cache of any kind can answer it.
#
# Needs wrk (Debian package `wrk`; installed here if missing), taskset (util-linux) and python3.
set -euo pipefail
cd "$(dirname "$0")/.."

PORT=${PORT:-18081}
ROUNDS=${ROUNDS:-5}
MODE=${MODE:-rotating}
case "$MODE" in rotating | fresh) ;; *) echo "MODE=$MODE: rotating or fresh"; exit 1 ;; esac
# shellcheck source=scripts/load-common.sh
. scripts/load-common.sh

SERVER_BIN=${SERVER_BIN:-target/release/resource-server}
BASE_BIN=${BASE_BIN:-}
[ "$SERVER_BIN" != target/release/resource-server ] || cargo build --release -q -p resource-server
# BENCH_BIN: the verify bench's binary for `sig-only` (built here if not given).
bench=${BENCH_BIN:-}
[ -n "$bench" ] || bench=$(cargo bench -q -p oidc-bearer --bench verify --no-run --message-format=json 2>/dev/null |
    python3 -c 'import json,sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["name"] == "verify":
        print(m["executable"])')

# The servers measured: this build, and the older one if given. Each mints tokens with an issuer
# of its own, so each gets forgeries of its own tokens.
names=(now) bins=("$SERVER_BIN")
[ -z "$BASE_BIN" ] || { names+=(base); bins+=("$BASE_BIN"); }
servers=() bases=()
trap 'for s in "${servers[@]}"; do kill "$s" 2>/dev/null || true; done; rm -rf "$workdir"' EXIT
for i in "${!names[@]}"; do
    rm -f "$workdir/token"
    # Default logging: the server's own default filter (info), written to a file as in production.
    PORT=$((PORT + i)) start_server "${bins[$i]}" METADATA_PORT=0 ROTATE_SECS=86400
    mv "$workdir/log" "$workdir/log.${names[$i]}"
    servers+=("$server") bases+=("$base")
    d="$workdir/${names[$i]}"
    mkdir "$d"
    cp "$workdir/token" "$d/token"
    # 1,000 distinct bad signatures over the same header and payload (the first is also the base
    # of the fresh mode's rewrites: its byte 0 flipped, so no rewrite of the middle is valid).
    python3 - "$d/token" >"$d/bad" <<'PY'
import base64, sys
token = open(sys.argv[1]).read().strip()
head, sig = token.rsplit(".", 1)
raw = base64.urlsafe_b64decode(sig + "=" * (-len(sig) % 4))
for i in range(1000):
    b = bytearray(raw)
    b[i % len(b)] ^= 1 + i // len(b)
    print(head + "." + base64.urlsafe_b64encode(bytes(b)).decode().rstrip("="))
PY
done

cat >"$workdir/rotate.lua" <<'LUA'
local tokens = {}
for line in io.lines(os.getenv("TOKENS")) do tokens[#tokens + 1] = line end
local i = 0
request = function()
    i = i % #tokens + 1
    return wrk.format("GET", os.getenv("ROUTE"), { ["Authorization"] = "Bearer " .. tokens[i] })
end
LUA
# Characters 11-16 of the signature (6 × 6 bits, away from its last character, whose spare bits a
# strict decoder checks) replaced by a per-request counter: 2^36 signatures before one repeats.
cat >"$workdir/fresh.lua" <<'LUA'
local token = io.open(os.getenv("TOKENS")):read("*l")
local head, sig = token:match("^(.*)%.([^.]*)$")
local alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
local route = os.getenv("ROUTE")
local n = 0
request = function()
    n = n + 1
    local x, chars = n, {}
    for k = 1, 6 do
        local d = x % 64
        chars[k] = alphabet:sub(d + 1, d + 1)
        x = math.floor(x / 64)
    end
    local forged = head .. "." .. sig:sub(1, 10) .. table.concat(chars) .. sig:sub(17)
    return wrk.format("GET", route, { ["Authorization"] = "Bearer " .. forged })
end
LUA
script="$workdir/rotate.lua"
[ "$MODE" = rotating ] || script="$workdir/fresh.lua"

# use I: run the routes of server I.
use() {
    server=${servers[$1]} base=${bases[$1]}
    export TOKENS="$workdir/${names[$1]}/bad"
}
for i in "${!names[@]}"; do
    use "$i"
    status=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $(head -1 "$TOKENS")" "$base/private")
    [ "$status" = 401 ] || { echo "${names[$i]}: a bad signature answered $status, not 401"; exit 1; }
    run / -d2s >/dev/null
    run /private -d2s -s "$script" >/dev/null
done

sig_only() { taskset -c "$SERVER_CPU" "$bench" sig-only | awk '/^sig-only/ { print $2 }'; }

declare -A opens open_cpu bads bad_cpu carried_cpu margins
sigs=()
for round in $(seq 1 "$ROUNDS"); do
    order=("${!names[@]}")
    [ $((round % 2)) -eq 1 ] || order=($(printf '%s\n' "${order[@]}" | tac))
    for i in "${order[@]}"; do
        use "$i"
        if [ $((round % 2)) -eq 1 ]; then
            read -r o oc _ _ < <(run /)
            read -r b bc _ _ < <(run /private -s "$script")
        else
            read -r b bc _ _ < <(run /private -s "$script")
            read -r o oc _ _ < <(run /)
        fi
        # A control: `GET /` carrying the same tokens, which that route ignores: what the 1 KiB
        # header costs in the kernel and in hyper, without our layer.
        read -r _ cc _ _ < <(run / -s "$script")
        n=${names[$i]}
        opens[$n]+="$o " open_cpu[$n]+="$oc " bads[$n]+="$b " bad_cpu[$n]+="$bc " carried_cpu[$n]+="$cc "
        echo "round $round, $n: GET / $oc µs, GET / carrying a token $cc µs, refusal $bc µs"
    done
    s=$(sig_only)
    sigs+=("$s")
    for n in "${names[@]}"; do
        bc=$(echo ${bad_cpu[$n]} | awk '{ print $NF }') oc=$(echo ${open_cpu[$n]} | awk '{ print $NF }')
        margins[$n]+="$(awk -v b="$bc" -v o="$oc" -v s="$s" 'BEGIN { printf "%.2f", b - o - s }') "
    done
    echo "round $round: signature $s µs; refusal - (GET / + signature):$(for n in "${names[@]}"; do echo -n " $n $(echo ${margins[$n]} | awk '{ print $NF }') µs"; done)"
done
[ "$MODE" = rotating ] && label="1,000 rotating bad signatures" || label="a fresh bad signature each"
echo
echo "medians of $ROUNDS rounds ($MODE):"
printf '%-46s' "server CPU µs per request"
for n in "${names[@]}"; do printf '%12s' "$n"; done
echo
row() { # row LABEL ARRAY-NAME [format]
    printf '%-46s' "$1"
    local -n values=$2
    for n in "${names[@]}"; do printf "%12.${3:-2}f" "$(median ${values[$n]})"; done
    echo
}
row "GET /" open_cpu
row "GET / carrying the tokens (ignored)" carried_cpu
row "GET /private, $label" bad_cpu
row "refusal - (GET / + signature check)" margins
row "GET / req/s" opens 0
row "GET /private req/s" bads 0
echo "RS256 signature check alone (in process, server core): $(median "${sigs[@]}") µs"
for n in "${names[@]}"; do
    echo "$n: refusal - (GET / + signature check), per round: ${margins[$n]}(target <= 3 µs)"
    echo "$n: log lines written during the run: $(grep -c 'bearer token rejected' "$workdir/log.$n" || true)"
done
