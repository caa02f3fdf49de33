#!/usr/bin/env bash
# Gateway throughput with REVOKED (100 000) revoked sessions in its list against none: the
# per-request revocation check must cost nothing measurable. Both runs use the same poll feed
# (bench/revocation/feed.py, standing in for an issuer) and differ only in the list's length.
# Gatehouse pinned to core 1; wrk and the upstream (`gatehouse echo`) to core 0; HS256 tokens of
# live sessions, the verified-token cache on, access log off; ROUNDS interleaved rounds, medians.
#
#   bash bench/revocation.sh          (ROUNDS=6 DURATION=10s CONNS=64 REVOKED=100000)
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
ROUNDS=${ROUNDS:-6}
DURATION=${DURATION:-10s}
CONNS=${CONNS:-64}
REVOKED=${REVOKED:-100000}
LUA=${LUA:-$ROOT/../shared/bench/anchors/rotate_tokens.lua}
command -v wrk >/dev/null || { echo "wrk is needed: apt-get install wrk" >&2; exit 1; }
[[ -f $LUA ]] || { echo "rotate_tokens.lua not found at $LUA" >&2; exit 1; }
(cd "$ROOT" && swift build -c release --product gatehouse >/dev/null)
GATEHOUSE=$ROOT/.build/release/gatehouse

work=$(mktemp -d)
pids=()
cleanup() { for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT

secret=bench-secret-0123456789abcdef0123456789
python3 "$ROOT/bench/revocation/tokens.py" "$secret" 1000 >"$work/tokens.txt"
taskset -c 0 "$GATEHOUSE" echo --listen 127.0.0.1:18601 >/dev/null & pids+=($!)
taskset -c 0 python3 "$ROOT/bench/revocation/feed.py" 18602 0 feed-secret & pids+=($!)
taskset -c 0 python3 "$ROOT/bench/revocation/feed.py" 18603 "$REVOKED" feed-secret & pids+=($!)
sleep 1

conf() { # $1 feed port
    cat <<CONF
listen: 127.0.0.1:18600
admin_listen: 127.0.0.1:18609
threads: 1
access_log: false
issuer: { enabled: false }
verify:
  issuer: bench
  audience: bench
  algorithms: [HS256]
  keys: { secret: "$secret", kid: bench }
  revocation: { feed: poll, url: "http://127.0.0.1:$1/auth/revocations", secret: feed-secret, interval: 500ms }
routes:
  - { prefix: /, upstream: "http://127.0.0.1:18601" }
CONF
}
conf 18602 >"$work/none.conf"
conf 18603 >"$work/revoked.conf"

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

run() { # $1 mode → prints "cpu_us_per_req rps p99_us rss_kib revoked"
    taskset -c 1 "$GATEHOUSE" serve --config "$work/$1.conf" >/dev/null &
    local pid=$!
    for _ in $(seq 100); do curl -sf http://127.0.0.1:18609/readyz >/dev/null && break; sleep 0.1; done
    local revoked
    revoked=$(curl -s http://127.0.0.1:18609/metrics | awk '/^gatehouse_revoked_sessions /{print $2}')
    taskset -c 0 wrk -t1 -c"$CONNS" -d2s -s "$LUA" http://127.0.0.1:18600/api/x -- "$work/tokens.txt" >/dev/null
    local before after
    before=$(cpu_ticks $pid)
    local out
    out=$(taskset -c 0 wrk -t1 -c"$CONNS" -d"$DURATION" --latency -s "$LUA" http://127.0.0.1:18600/api/x -- "$work/tokens.txt")
    after=$(cpu_ticks $pid)
    local rss
    rss=$(awk '/^VmRSS/{print $2}' "/proc/$pid/status")
    kill -TERM $pid; wait $pid || true
    python3 - "$out" "$before" "$after" "$rss" "$revoked" <<'PY'
import json, os, sys
out, before, after, rss, revoked = sys.argv[1:]
stats = json.loads(out.split("WRK_JSON ", 1)[1].splitlines()[0])
errors = stats["err_connect"] + stats["err_read"] + stats["err_write"] + stats["err_status"] + stats["err_timeout"]
assert errors == 0, f"{errors} errors (non-2xx included)"
cpu_us = (int(after) - int(before)) / os.sysconf("SC_CLK_TCK") * 1e6 / stats["requests"]
print(f"{cpu_us:.2f} {stats['rps']:.0f} {stats['lat_p99_us']} {rss} {revoked}")
PY
}

echo "round mode cpu_us_per_req req_per_s p99_us rss_kib revoked_sessions"
for round in $(seq "$ROUNDS"); do
    # Which mode goes first alternates, so that anything a run leaves behind (sockets in
    # TIME_WAIT, a warmer upstream) weighs on both alike.
    modes="none revoked"; (( round % 2 == 0 )) && modes="revoked none"
    for mode in $modes; do
        echo "$round $mode $(run $mode)"
    done
done | tee "$work/results.txt"

python3 - "$work/results.txt" <<'PY'
import statistics, sys
rows = [line.split() for line in open(sys.argv[1]) if line[0].isdigit()]
def median(mode, column):
    return statistics.median(float(r[column]) for r in rows if r[1] == mode)
print()
print("| revoked sessions | CPU µs/req | req/s | p99 µs | RSS MiB |")
print("|---:|---:|---:|---:|---:|")
for mode in ("none", "revoked"):
    print(f"| {int(median(mode, 6))} | {median(mode, 2):.2f} | {median(mode, 3):.0f} | {median(mode, 4):.0f} | {median(mode, 5) / 1024:.1f} |")
ratio = median("revoked", 2) / median("none", 2)
print(f"\nCPU per request, revoked / none: {ratio:.3f} (medians of {len(rows) // 2} interleaved rounds)")
if median("revoked", 6) >= 10_000:
    per_entry = (median("revoked", 5) - median("none", 5)) * 1024 / median("revoked", 6)
    print(f"memory per revoked session (board + one event loop's copy, RSS difference): {per_entry:.0f} bytes")
PY
