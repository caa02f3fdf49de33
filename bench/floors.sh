#!/usr/bin/env bash
# The floors: what a proxy's two sockets cost on this machine before any HTTP, measured beside
# nginx and HAProxy in the same run of the shared anchor harness (../shared/bench/anchors/run.sh).
#   nio-relay    SwiftNIO, one handler per channel, bytes copied 1:1 (bench/floors/Sources/nio-relay)
#   epoll-relay  the same relay on bare epoll, no NIO (bench/floors/Sources/epoll-relay)
# Each floor is a plain candidate (CANDIDATE_ALGS=plain: the harness checks it answers 200, then
# measures it like nginx-plain). One harness run per floor, results in bench/out/floors-NAME/,
# then one table: the proxy's CPU µs per request (median of the rounds) and its ratio to the
# nginx-plain of the same run.
#
#   bash bench/floors.sh                       (the harness's knobs pass through: ROUNDS, DURATION, ...)
#   FLOORS=epoll-relay DURATION=2s WARMUP=1s ROUNDS=1 bash bench/floors.sh     (a smoke run)
#
# The build and each harness run take /tmp/gatehouse-build.lock (flock) themselves; when the
# caller already holds it, say so with GATEHOUSE_LOCK_HELD=1 (flock does not nest).
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
ANCHORS=${ANCHORS:-$ROOT/../shared/bench/anchors}
[[ -f $ANCHORS/run.sh ]] || ANCHORS=/work/shared/bench/anchors
[[ -f $ANCHORS/run.sh ]] || { echo "anchor harness not found (set ANCHORS)" >&2; exit 1; }
FLOORS=${FLOORS:-nio-relay epoll-relay}
LOCK=${GATEHOUSE_LOCK:-/tmp/gatehouse-build.lock}

locked() {
    if [[ ${GATEHOUSE_LOCK_HELD:-0} == 1 ]]; then "$@"; else GATEHOUSE_LOCK_HELD=1 flock "$LOCK" "$@"; fi
}

(cd "$HERE/floors" && locked swift build -c release)
BIN=$HERE/floors/.build/release

outs=()
for name in $FLOORS; do
    [[ -x $BIN/$name ]] || { echo "no floor named $name in $BIN" >&2; exit 1; }
    out=$HERE/out/floors-$name
    mkdir -p "$out"
    (cd "$ANCHORS" && locked env OUT_DIR="$out" SKIP_CRYPTO=1 \
        CANDIDATE_NAME="$name" CANDIDATE_PORT="${CANDIDATE_PORT:-18500}" CANDIDATE_ALGS=plain \
        CANDIDATE_CMD="exec '$BIN/$name'" \
        ONLY="nginx-plain haproxy-plain $name-plain" \
        bash run.sh)
    outs+=("$out")
done

python3 - "${outs[@]}" <<'PY'
import json, os, sys
rows = []
for out in sys.argv[1:]:
    run = os.path.basename(out)
    configs = json.load(open(os.path.join(out, "results.json")))["configs"]
    nginx = (configs.get("nginx-plain") or {}).get("svc_cpu_us_per_req_median")
    for name, c in configs.items():
        cpu = c.get("svc_cpu_us_per_req_median")
        ratio = f"{cpu / nginx:.2f}" if cpu and nginx else "-"
        rows.append((run, name, "-" if cpu is None else f"{cpu:.1f}", ratio,
                     "-" if c.get("p99_us_median") is None else f"{c['p99_us_median'] / 1000:.2f}",
                     f"{c['rps_median']:.0f}", str(c["rounds"])))
head = ("run", "config", "CPU µs/req (median)", "÷ nginx-plain (same run)", "p99 ms", "req/s", "rounds")
print()
print("| " + " | ".join(head) + " |")
print("|" + "|".join(["---"] * 2 + ["---:"] * 5) + "|")
for r in rows:
    print("| " + " | ".join(r) + " |")
PY
