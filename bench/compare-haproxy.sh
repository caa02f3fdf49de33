#!/usr/bin/env bash
# Gatehouse against HAProxy 2.6 jwt_verify and nginx, through the shared anchor harness
# (../shared/bench/anchors/run.sh), in one go: two runs, verified-token cache on and off. Each run
# measures nginx-plain, haproxy-plain, haproxy-jwt-{HS256,RS256,ES256} and Gatehouse plain (a
# public route, no verify section) and per algorithm, all in the same session, so that every
# ratio and every auth increment (ALG − plain) is taken within one run. Results land in
# bench/out/{cache-on,cache-off}/ (the harness's RESULTS.md, results.json and raw/, and rss.json:
# Gatehouse's memory, which the harness does not record); then bench/summarize.py prints the
# figures against the goals and writes bench/out/SUMMARY.md.
#
#   bash bench/compare-haproxy.sh            (ROUNDS=3 by default; the harness's knobs pass through)
#   GATEHOUSE=/path/to/gatehouse ...         use that binary, no build (else: release build of this tree)
#   MODES="on"  CANDIDATE_ALGS="plain HS256" narrower runs (the summary marks what is missing)
#   DURATION=2s WARMUP=1s ROUNDS=1 ...       a smoke run, not a measurement
#
# The build and each harness run take /tmp/gatehouse-build.lock (flock) themselves; when the
# caller already holds it, say so with GATEHOUSE_LOCK_HELD=1 (flock does not nest).
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
ANCHORS=${ANCHORS:-$ROOT/../shared/bench/anchors}
[[ -f $ANCHORS/run.sh ]] || ANCHORS=/work/shared/bench/anchors
[[ -f $ANCHORS/run.sh ]] || { echo "anchor harness not found (set ANCHORS)" >&2; exit 1; }
LOCK=${GATEHOUSE_LOCK:-/tmp/gatehouse-build.lock}
MODES=${MODES:-on off}
CANDIDATE_ALGS=${CANDIDATE_ALGS:-plain HS256 RS256 ES256}

locked() {
    if [[ ${GATEHOUSE_LOCK_HELD:-0} == 1 ]]; then "$@"; else GATEHOUSE_LOCK_HELD=1 flock "$LOCK" "$@"; fi
}

if [[ -n ${GATEHOUSE:-} ]]; then
    [[ -x $GATEHOUSE ]] || { echo "GATEHOUSE=$GATEHOUSE is not an executable" >&2; exit 1; }
else
    (cd "$ROOT" && locked swift build -c release --product gatehouse)
    GATEHOUSE=$ROOT/.build/release/gatehouse
fi
export GATEHOUSE   # read by gatehouse-candidate.sh, which the harness starts

only="nginx-plain haproxy-plain haproxy-jwt-HS256 haproxy-jwt-RS256 haproxy-jwt-ES256"
for alg in $CANDIDATE_ALGS; do only+=" gatehouse-$alg"; done

sampler=""
trap '[[ -n $sampler ]] && kill -TERM "$sampler" 2>/dev/null; true' EXIT
outs=()
for mode in $MODES; do
    out=$HERE/out/cache-$mode
    mkdir -p "$out"
    rm -rf "$out/rss" "$out/rss.json"
    size=100000; [[ $mode == off ]] && size=0
    python3 "$HERE/rss-sampler.py" "$out/rss" "$out/rss.json" &
    sampler=$!
    (cd "$ANCHORS" && locked env OUT_DIR="$out" SKIP_CRYPTO="${SKIP_CRYPTO:-1}" RSS_DIR="$out/rss" \
        CANDIDATE_NAME=gatehouse CANDIDATE_PORT="${CANDIDATE_PORT:-18500}" CANDIDATE_ALGS="$CANDIDATE_ALGS" \
        CANDIDATE_CMD="TOKEN_CACHE=$size exec bash '$HERE/gatehouse-candidate.sh'" \
        ONLY="$only" \
        bash run.sh)
    kill -TERM "$sampler" 2>/dev/null || true
    wait "$sampler" || true
    sampler=""
    echo "cache $mode: $out/RESULTS.md"
    outs+=("$out")
done

python3 "$HERE/summarize.py" --markdown "$HERE/out/SUMMARY.md" "${outs[@]}"
