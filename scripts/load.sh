#!/usr/bin/env bash
# Load benchmark: `GET /` versus `GET /private` (one valid token, repeated) on examples/resource-server,
# driven by wrk. Server and load generator are pinned to different cores; both runs happen in the same
# invocation so the ratio compares like with like.
#
#   scripts/load.sh            # 7 alternating rounds of 6 s per route, 64 connections
#   ROUNDS=3 DURATION=30s CONNECTIONS=128 scripts/load.sh
#
# Needs wrk (Debian package `wrk`; installed here if missing) and taskset (util-linux).
set -euo pipefail
cd "$(dirname "$0")/.."

PORT=${PORT:-18080}
# shellcheck source=scripts/load-common.sh
. scripts/load-common.sh

cargo build --release -q -p resource-server
start_server target/release/resource-server RUST_LOG=error
token=$(cat "$workdir/token")

# Sanity: both routes answer 200 before measuring.
curl -fsS "$base/" >/dev/null
curl -fsS -H "Authorization: Bearer $token" "$base/private" >/dev/null

# Warm up both paths, then measure in alternating rounds (this machine's throughput drifts; the
# per-round ratio compares neighbours) and report medians.
run / -d2s >/dev/null
run /private -d2s -H "Authorization: Bearer $token" >/dev/null
ROUNDS=${ROUNDS:-7}
# A control: `GET /` carrying the same `Authorization` header, which that route ignores. It costs what
# a 1 KiB token costs in the kernel and in hyper, without our layer.
opens=() privates=() ratios=() open_cpu=() private_cpu=() carried=() carried_cpu=() layer_ratios=()
open_user=() open_sys=() private_user=() private_sys=() cpu_ratios=()
# The two routes the target compares run back to back, in alternating order (ABBA), so that a drift
# of the machine's speed within a round does not favour either; the control runs last.
for round in $(seq 1 "$ROUNDS"); do
    if [ $((round % 2)) -eq 1 ]; then
        read -r o oc ou os < <(run /)
        read -r p pc pu ps < <(run /private -H "Authorization: Bearer $token")
    else
        read -r p pc pu ps < <(run /private -H "Authorization: Bearer $token")
        read -r o oc ou os < <(run /)
    fi
    read -r c cc _ _ < <(run / -H "Authorization: Bearer $token")
    opens+=("$o") privates+=("$p") open_cpu+=("$oc") private_cpu+=("$pc") carried+=("$c") carried_cpu+=("$cc")
    open_user+=("$ou") open_sys+=("$os") private_user+=("$pu") private_sys+=("$ps")
    ratios+=("$(awk -v a="$p" -v b="$o" 'BEGIN { printf "%.3f", a / b }')")
    layer_ratios+=("$(awk -v a="$p" -v b="$c" 'BEGIN { printf "%.3f", a / b }')")
    cpu_ratios+=("$(awk -v a="$oc" -v b="$pc" 'BEGIN { printf "%.3f", a / b }')")
done
# The best round of a route: other load on the machine only ever slows a round down, so the fastest
# round is the closest to the code's own speed (as in the verify bench's table).
best() { printf '%s\n' "$@" | sort -g | tail -1; }
open=$(median "${opens[@]}")
private=$(median "${privates[@]}")
# A bad signature: flip one character in the middle of the signature segment (same length, canonical
# base64url), so the token is refused by the signature check itself.
sig=${token##*.}
mid=$(( ${#sig} / 2 ))
c=${sig:$mid:1}; [ "$c" = A ] && r=B || r=A
bad="${token%.*}.${sig:0:$mid}$r${sig:$((mid + 1))}"
read -r invalid invalid_cpu _ _ < <(run /private -H "Authorization: Bearer $bad")

printf '%-40s %12s %18s\n' "route (median of $ROUNDS rounds)" "req/s" "server CPU µs/req"
printf '%-40s %12.0f %18.2f\n' "GET /" "$open" "$(median "${open_cpu[@]}")"
printf '%-40s %12.0f %18.2f\n' "GET / carrying the token (ignored)" "$(median "${carried[@]}")" "$(median "${carried_cpu[@]}")"
printf '%-40s %12.0f %18.2f\n' "GET /private (valid token)" "$private" "$(median "${private_cpu[@]}")"
printf '%-40s %12.0f %18.2f\n' "GET /private (bad signature, 401)" "$invalid" "$invalid_cpu"
echo "ratio /private ÷ / per round: ${ratios[*]}"
echo "ratio /private ÷ / (median of rounds) = $(median "${ratios[@]}")"
echo "ratio by server CPU per request, / ÷ /private (median of rounds) = $(median "${cpu_ratios[@]}")"
echo "ratio /private ÷ (/ carrying the token) (median of rounds) = $(median "${layer_ratios[@]}")"
echo "server CPU µs/req, user + system (medians): / $(median "${open_user[@]}") + $(median "${open_sys[@]}"), /private $(median "${private_user[@]}") + $(median "${private_sys[@]}")"
echo "ratio of the best rounds: /private ÷ / = $(awk -v a="$(best "${privates[@]}")" -v b="$(best "${opens[@]}")" 'BEGIN { printf "%.3f (%.0f ÷ %.0f req/s)", a / b, a, b }')"
