#!/usr/bin/env bash
# WebSocket tunnelling cost: messages per second and the proxy's CPU µs per message, for
#   direct    the load client straight to the upstream (no proxy: the load side's own ceiling)
#   gatehouse the load client through `gatehouse serve` (one public route, threads: 1, access log off)
#   nginx     the load client through nginx's WebSocket proxying (one worker, access_log off,
#             proxy_http_version 1.1; proxy_set_header Upgrade $http_upgrade;
#             proxy_set_header Connection "upgrade")
# in the same run, ROUNDS interleaved rounds (the order of the three rotates each round), for each
# message size in SIZES; medians, and Gatehouse / nginx CPU per message (the issue's goal: ≤ 1).
#
# The upstream is `gatehouse echo` (it echoes every message). The load client is
# bench/websocket-load.py (raw RFC 6455 on epoll; ENGINE=c, the default: its loop runs in
# bench/websocket-load.c, compiled here with cc; ENGINE=python: in Python, slower per message):
# CONNS connections, each keeping WINDOW binary messages of SIZE bytes in flight; one message =
# one client→upstream frame + its echo. The proxy is pinned to PROXY_CPU, the client and the
# upstream to LOAD_CPU. The proxy's CPU is utime + stime from /proc/PID/stat (nginx: master +
# worker) over a timed window after a warm-up, divided by the window's echoes. Before the load,
# each path is checked with a real WebSocket stack (Tests/WebSocket/ws_check.py, Python's
# `websockets`): text, binary, 1 MiB, ping, close.
#
#   bash bench/websocket.sh       (ROUNDS=3 SIZES="128 16384" CONNS=50 WINDOW=1 WARMUP=2 DURATION=10)
#   GATEHOUSE=/path/to/gatehouse  use that binary, no build (else: release build of this tree)
#   ENGINE=python                 the Python loop instead of the C one (no compiler needed)
#   CONFIGS="direct nginx"        narrower runs;  MESSAGES=M: each window = CONNS × M echoes, not DURATION
#   NGINX_EXTRA='proxy_buffer_size 16k;'   extra directives in nginx's location (default: none)
#   PIN=0 (no taskset)  LOAD_CPU=0  PROXY_CPU=1  BASE_PORT=18700 (echo; +1 gatehouse, +2 nginx, +9 admin)
#   NOISY_PCT=20 RETRIES=1   a window in which other processes used > 20 % of a core is measured again
#   QUIET_MAX_PCT=15 QUIET_WAIT_S=60   before each run, wait (bounded) for a quiet machine
#   ROUNDS=1 WARMUP=1 DURATION=2 ...   a smoke run, not a measurement
#
# Results: bench/out/websocket/runs.jsonl (one line per run), RESULTS.md (the table), logs/.
# The whole run holds /tmp/gatehouse-build.lock (flock), build included; a caller that already
# holds it sets GATEHOUSE_LOCK_HELD=1 (flock does not nest).
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
LOCK=${GATEHOUSE_LOCK:-/tmp/gatehouse-build.lock}

if [[ ${GATEHOUSE_LOCK_HELD:-0} != 1 ]]; then
    if ! flock -n "$LOCK" true; then echo "waiting for $LOCK ..." >&2; fi
    exec env GATEHOUSE_LOCK_HELD=1 flock "$LOCK" bash "${BASH_SOURCE[0]}" "$@"
fi

ROUNDS=${ROUNDS:-3}
SIZES=${SIZES:-128 16384}
CONNS=${CONNS:-50}
WINDOW=${WINDOW:-1}
WARMUP=${WARMUP:-2}
DURATION=${DURATION:-10}
MESSAGES=${MESSAGES:-0}
CONFIGS=${CONFIGS:-direct gatehouse nginx}
ENGINE=${ENGINE:-c}
PIN=${PIN:-1}
LOAD_CPU=${LOAD_CPU:-0}
PROXY_CPU=${PROXY_CPU:-1}
BASE_PORT=${BASE_PORT:-18700}
NOISY_PCT=${NOISY_PCT:-20}
RETRIES=${RETRIES:-1}
QUIET_MAX_PCT=${QUIET_MAX_PCT:-15}
QUIET_WAIT_S=${QUIET_WAIT_S:-60}
NGINX_EXTRA=${NGINX_EXTRA:-}
OUT=${OUT:-$HERE/out/websocket}

ECHO_PORT=$BASE_PORT
GATEHOUSE_PORT=$((BASE_PORT + 1))
NGINX_PORT=$((BASE_PORT + 2))
ADMIN_PORT=$((BASE_PORT + 9))

log() { printf '[%(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

for c in python3 nginx curl ss setsid; do command -v "$c" >/dev/null || die "$c is needed"; done
[[ $PIN == 1 ]] && { command -v taskset >/dev/null || die "taskset is needed (or PIN=0)"; }
python3 -c 'import websockets' 2>/dev/null || die "Python's websockets is needed (pip install websockets)"

if [[ -n ${GATEHOUSE:-} ]]; then
    [[ -x $GATEHOUSE ]] || die "GATEHOUSE=$GATEHOUSE is not an executable"
else
    log "swift build -c release --product gatehouse (under $LOCK)"
    (cd "$ROOT" && swift build -c release --product gatehouse >&2)
    GATEHOUSE=$ROOT/.build/release/gatehouse
fi
GATEHOUSE=$(cd "$(dirname "$GATEHOUSE")" && pwd)/$(basename "$GATEHOUSE")

mkdir -p "$OUT"
rm -rf "$OUT/logs" "$OUT/runs.jsonl" "$OUT/RESULTS.md"
mkdir -p "$OUT/logs"
engine_args=(--engine "$ENGINE")
case $ENGINE in
    c)
        command -v cc >/dev/null || die "cc is needed for ENGINE=c (or ENGINE=python)"
        cc -O2 -Wall -o "$OUT/websocket-load" "$HERE/websocket-load.c" -lcrypto ||
            die "cannot compile bench/websocket-load.c (libssl-dev?); ENGINE=python needs no compiler"
        engine_args+=(--c-binary "$OUT/websocket-load") ;;
    python) ;;
    *) die "ENGINE must be c or python" ;;
esac
WORK=$(mktemp -d "${TMPDIR:-/tmp}/gatehouse-ws-bench.XXXXXX")

# Every process started here runs in its own process group (setsid); exactly those groups are
# stopped on exit.
PGIDS=()
start_svc() { # start_svc NAME CPU CMD... -> pid in $SVC_PID
    local name=$1 cpu=$2 pin=()
    shift 2
    [[ $PIN == 1 ]] && pin=(taskset -c "$cpu")
    setsid "${pin[@]}" "$@" >"$OUT/logs/$name.log" 2>&1 </dev/null &
    SVC_PID=$!
    PGIDS+=("$SVC_PID")
}
cleanup() {
    local rc=$? pg i alive
    for pg in "${PGIDS[@]}"; do kill -TERM -- "-$pg" 2>/dev/null || true; done
    for ((i = 0; i < 50; i++)); do
        alive=0
        for pg in "${PGIDS[@]}"; do kill -0 -- "-$pg" 2>/dev/null && alive=1; done
        ((alive)) || break
        sleep 0.1
    done
    for pg in "${PGIDS[@]}"; do kill -KILL -- "-$pg" 2>/dev/null || true; done
    rm -rf "$WORK"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

listeners() { ss -Htln "sport = :$1" | wc -l; }
wait_listen() { # NAME PID PORT
    local i
    for ((i = 0; i < 100; i++)); do
        (($(listeners "$3") > 0)) && break
        kill -0 "$2" 2>/dev/null || die "$1 exited: $(tail -5 "$OUT/logs/$1.log")"
        sleep 0.1
    done
    (($(listeners "$3") == 1)) || die "$1: expected one listener on port $3, found $(listeners "$3")"
}
for p in $ECHO_PORT $GATEHOUSE_PORT $NGINX_PORT $ADMIN_PORT; do
    (($(listeners "$p") == 0)) || die "port $p is in use (set BASE_PORT)"
done

# The upstream, on the load core.
start_svc echo "$LOAD_CPU" "$GATEHOUSE" echo --listen "127.0.0.1:$ECHO_PORT"
ECHO_PID=$SVC_PID
wait_listen echo "$ECHO_PID" "$ECHO_PORT"

declare -A URL PIDS
URL[direct]="ws://127.0.0.1:$ECHO_PORT/ws"
PIDS[direct]=""

if [[ " $CONFIGS " == *" gatehouse "* ]]; then
    cat >"$WORK/gateway.conf" <<CONF
listen: 127.0.0.1:$GATEHOUSE_PORT
admin_listen: 127.0.0.1:$ADMIN_PORT
threads: 1
access_log: false
issuer: { enabled: false }
routes:
  - { prefix: /, upstream: "http://127.0.0.1:$ECHO_PORT", auth: public }
CONF
    cp "$WORK/gateway.conf" "$OUT/logs/gateway.conf"
    start_svc gatehouse "$PROXY_CPU" "$GATEHOUSE" serve --config "$WORK/gateway.conf"
    PIDS[gatehouse]=$SVC_PID
    wait_listen gatehouse "$SVC_PID" "$GATEHOUSE_PORT"
    for ((i = 0; i < 100; i++)); do curl -sf "http://127.0.0.1:$ADMIN_PORT/readyz" >/dev/null && break; sleep 0.1; done
    URL[gatehouse]="ws://127.0.0.1:$GATEHOUSE_PORT/ws"
fi

if [[ " $CONFIGS " == *" nginx "* ]]; then
    mkdir -p "$WORK/nginx-tmp"
    cat >"$WORK/nginx.conf" <<CONF
worker_processes 1;
pid $WORK/nginx.pid;
error_log $OUT/logs/nginx.error.log warn;
daemon off;
events { worker_connections 4096; multi_accept on; }
http {
    access_log off;
    client_body_temp_path $WORK/nginx-tmp;
    proxy_temp_path       $WORK/nginx-tmp;
    fastcgi_temp_path     $WORK/nginx-tmp;
    uwsgi_temp_path       $WORK/nginx-tmp;
    scgi_temp_path        $WORK/nginx-tmp;
    server {
        listen 127.0.0.1:$NGINX_PORT backlog=4096;
        location / {
            proxy_pass http://127.0.0.1:$ECHO_PORT;
            proxy_http_version 1.1;
            proxy_set_header Upgrade \$http_upgrade;
            proxy_set_header Connection "upgrade";
            proxy_read_timeout 1h;     # like Gatehouse's websocket_idle_timeout
            proxy_send_timeout 1h;
            $NGINX_EXTRA
        }
    }
}
CONF
    chmod 755 "$WORK"   # nginx's worker runs as nobody
    cp "$WORK/nginx.conf" "$OUT/logs/nginx.conf"
    start_svc nginx "$PROXY_CPU" nginx -e "$OUT/logs/nginx.error.log" -p "$WORK" -c "$WORK/nginx.conf"
    NGINX_MASTER=$SVC_PID
    wait_listen nginx "$NGINX_MASTER" "$NGINX_PORT"
    for ((i = 0; i < 50; i++)); do
        workers=$(cat "/proc/$NGINX_MASTER/task/$NGINX_MASTER/children")
        [[ -n ${workers// /} ]] && break
        sleep 0.1
    done
    [[ $(wc -w <<<"$workers") == 1 ]] || die "nginx: expected one worker, found: $workers"
    PIDS[nginx]="$NGINX_MASTER,${workers// /}"
    URL[nginx]="ws://127.0.0.1:$NGINX_PORT/ws"
fi

# Correctness first, with a real WebSocket stack.
for cfg in $CONFIGS; do
    [[ -n ${URL[$cfg]:-} ]] || die "unknown config $cfg (direct, gatehouse, nginx)"
    if ! python3 "$ROOT/Tests/WebSocket/ws_check.py" "${URL[$cfg]}" --checks text,binary,large,ping,close \
        >"$OUT/logs/check-$cfg.json"; then
        die "$cfg failed the WebSocket check: $(cat "$OUT/logs/check-$cfg.json")$(
            [[ $cfg == gatehouse ]] && echo " (is $GATEHOUSE built from a tree with WebSocket tunnels?)")"
    fi
    log "$cfg: WebSocket check passed"
done

load_pin=(); [[ $PIN == 1 ]] && load_pin=(taskset -c "$LOAD_CPU")
read -ra cfgs <<<"$CONFIGS"
n=${#cfgs[@]}
log "$ROUNDS rounds × sizes ($SIZES) × configs ($CONFIGS); $ENGINE client, $CONNS connections × $WINDOW in flight; warm-up ${WARMUP}s, window $([[ $MESSAGES != 0 ]] && echo "$CONNS × $MESSAGES messages" || echo "${DURATION}s")"
for ((round = 1; round <= ROUNDS; round++)); do
    for size in $SIZES; do
        for ((k = 0; k < n; k++)); do
            cfg=${cfgs[$(((k + round - 1) % n))]}   # the order rotates each round
            if ! line=$("${load_pin[@]}" python3 "$HERE/websocket-load.py" --url "${URL[$cfg]}" "${engine_args[@]}" \
                --conns "$CONNS" --size "$size" --window "$WINDOW" --warmup "$WARMUP" \
                --duration "$DURATION" --messages "$MESSAGES" \
                --proxy-pids "${PIDS[$cfg]}" --upstream-pids "$ECHO_PID" \
                --noisy-pct "$NOISY_PCT" --retries "$RETRIES" \
                --quiet-max-pct "$QUIET_MAX_PCT" --quiet-wait "$QUIET_WAIT_S" \
                --label "round=$round" --label "config=$cfg"); then
                die "round $round, $cfg, $size B: $line"
            fi
            echo "$line" >>"$OUT/runs.jsonl"
        done
    done
done

python3 - "$OUT/runs.jsonl" "$OUT/RESULTS.md" "$GATEHOUSE" "$CONNS" "$WINDOW" "$ENGINE" <<'PY'
import json, statistics, subprocess, sys, time
runs_path, md_path, gatehouse, conns, window, engine = sys.argv[1:]
runs = [json.loads(l) for l in open(runs_path)]
sizes = sorted({r["size"] for r in runs})
configs = [c for c in ("direct", "gatehouse", "nginx") if any(r["config"] == c for r in runs)]

def med(cfg, size, key):
    vals = [r[key] for r in runs if r["config"] == cfg and r["size"] == size and r.get(key) is not None]
    return statistics.median(vals) if vals else None

def fmt(v, spec):
    return "-" if v is None else format(v, spec)

nginx_v = subprocess.run(["nginx", "-v"], capture_output=True, text=True).stderr.strip().replace("nginx version: ", "")
rounds = max(r["round"] for r in runs)
lines = [f"WebSocket tunnels, {time.strftime('%Y-%m-%d %H:%M')}: {engine} client, {conns} connections × {window} in flight, "
         f"{rounds} round(s), medians; gatehouse = {gatehouse}; {nginx_v}", ""]
head = ("size", "config", "msgs/s", "proxy CPU µs/msg", "÷ nginx (same run)", "proxy busy %",
        "load core %", "client µs/msg", "upstream µs/msg", "other %", "runs")
lines.append("| " + " | ".join(head) + " |")
lines.append("|" + "|".join(["---:", "---"] + ["---:"] * (len(head) - 2)) + "|")
verdicts = []
for size in sizes:
    ng = med("nginx", size, "proxy_cpu_us_per_msg")
    for cfg in configs:
        cpu = med(cfg, size, "proxy_cpu_us_per_msg")
        ratio = cpu / ng if cpu is not None and ng else None
        n = sum(1 for r in runs if r["config"] == cfg and r["size"] == size)
        name = "**gatehouse**" if cfg == "gatehouse" else cfg
        lines.append("| " + " | ".join([
            str(size), name, fmt(med(cfg, size, "msgs_per_s"), ".0f"),
            "-" if cpu is None else (f"**{cpu:.2f}**" if cfg == "gatehouse" else f"{cpu:.2f}"),
            "-" if ratio is None else (f"**{ratio:.2f}**" if cfg == "gatehouse" else f"{ratio:.2f}"),
            fmt(med(cfg, size, "proxy_busy_pct"), ".0f"), fmt(med(cfg, size, "load_busy_pct"), ".0f"),
            fmt(med(cfg, size, "client_cpu_us_per_msg"), ".2f"), fmt(med(cfg, size, "upstream_cpu_us_per_msg"), ".2f"),
            fmt(med(cfg, size, "other_pct"), ".0f"), str(n)]) + " |")
    gh = med("gatehouse", size, "proxy_cpu_us_per_msg")
    if gh is not None and ng:
        per_round = []
        for rd in range(1, rounds + 1):
            g = [r for r in runs if r["round"] == rd and r["size"] == size and r["config"] == "gatehouse"]
            x = [r for r in runs if r["round"] == rd and r["size"] == size and r["config"] == "nginx"]
            if g and x:
                per_round.append(g[0]["proxy_cpu_us_per_msg"] / x[0]["proxy_cpu_us_per_msg"])
        rate_g, rate_n = med("gatehouse", size, "msgs_per_s"), med("nginx", size, "msgs_per_s")
        note = ""
        if rate_g and rate_n and abs(rate_g / rate_n - 1) > 0.10:
            note = (f" (rates differ by {abs(rate_g / rate_n - 1) * 100:.0f} %, Gatehouse {rate_g:.0f} against "
                    f"nginx {rate_n:.0f} msg/s: the two were measured at different loads, and fewer "
                    "messages per wake-up at a lower rate raise the CPU per message)")
        verdicts.append(f"{size} B: Gatehouse / nginx CPU per message = {gh / ng:.2f} "
                        f"(per round: {', '.join(f'{v:.2f}' for v in per_round)}); goal ≤ 1.00: "
                        f"{'PASS' if gh / ng <= 1.0 else 'FAIL'}{note}")
lines.append("")
lines += verdicts
noisy = [r for r in runs if r["other_pct"] > 20]
if noisy:
    lines.append(f"{len(noisy)} run(s) had other processes above 20 % of a core even after the retry: "
                 + ", ".join(f"round {r['round']} {r['config']} {r['size']} B ({r['other_pct']:.0f} %)" for r in noisy))
text = "\n".join(lines) + "\n"
open(md_path, "w").write(text)
print()
print(text, end="")
PY
log "results: $OUT/RESULTS.md, runs: $OUT/runs.jsonl"
