#!/usr/bin/env bash
# Gatehouse against HAProxy 2.6 jwt_verify and nginx, through the shared anchor harness
# (../shared/bench/anchors/run.sh): two runs, verified-token cache on and off, each measuring the
# anchors beside Gatehouse in the same session. Results land in bench/out/{cache-on,cache-off}/.
#
#   bash bench/compare-haproxy.sh            (ROUNDS=3 by default; the harness's knobs pass through)
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
ANCHORS=${ANCHORS:-$ROOT/../shared/bench/anchors}
[[ -f $ANCHORS/run.sh ]] || { echo "anchor harness not found at $ANCHORS" >&2; exit 1; }
(cd "$ROOT" && swift build -c release --product gatehouse)
for mode in on off; do
    out=$HERE/out/cache-$mode
    mkdir -p "$out"
    size=100000; [[ $mode == off ]] && size=0
    (cd "$ANCHORS" && OUT_DIR="$out" SKIP_CRYPTO=${SKIP_CRYPTO:-1} \
        CANDIDATE_NAME=gatehouse CANDIDATE_PORT=${CANDIDATE_PORT:-18500} \
        CANDIDATE_CMD="TOKEN_CACHE=$size exec bash '$HERE/gatehouse-candidate.sh'" \
        ONLY="nginx-plain haproxy-plain haproxy-jwt-HS256 haproxy-jwt-RS256 haproxy-jwt-ES256 gatehouse-HS256 gatehouse-RS256 gatehouse-ES256" \
        bash run.sh)
    echo "cache $mode: $out/RESULTS.md"
done
