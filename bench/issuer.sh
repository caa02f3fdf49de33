#!/usr/bin/env bash
# Issuer benchmark: Gatehouse against the seed's stack (bench/seed/app.py: FastAPI + uvicorn with
# uvloop and httptools, PyJWT ES256, pwdlib[argon2], sqlite3), in the same run, each server pinned
# to core 1 with wrk on core 0 (bench/README.md). Three operations, server CPU µs per request from
# /proc/PID/stat (utime + stime), medians of ROUNDS interleaved rounds:
#   GET /users/me with one access token, POST /auth/refresh rotating four sessions' chains, and
#   POST /auth/login (correct password) as logins/s × seconds per hash, the hash timed alone in
#   the same run — on one core, then on two (servers on cores 0-1, wrk unpinned).
# Gatehouse runs with `threads: 1` and the access log off, on SQLite, and on PostgreSQL beside it (a
# throwaway server is started and removed here). The seed's packages are installed into
# bench/out/seed-venv from PyPI when missing. Bounded: about 6 minutes with the defaults.
#   bash bench/issuer.sh            (DURATION=8s ROUNDS=3 by default)
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-8s}
ROUNDS=${ROUNDS:-3}
PORT=${PORT:-18480}
PGPORT=${PGPORT:-18432}
OUT=bench/out/issuer
PGBIN=/usr/lib/postgresql/15/bin
mkdir -p "$OUT"
command -v wrk >/dev/null || { echo "wrk is needed: apt-get install wrk"; exit 1; }

VENV=bench/out/seed-venv
if ! "$VENV/bin/python" -c 'import fastapi, uvicorn, uvloop, httptools, jwt, pwdlib, argon2, cryptography' 2>/dev/null; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q fastapi uvicorn uvloop httptools pyjwt cryptography 'pwdlib[argon2]'
fi

swift build -c release --product gatehouse >/dev/null
swift build -c release --product gatehouse-bench-argon2 >/dev/null
BIN=.build/release/gatehouse

WORK=$(mktemp -d /tmp/gatehouse-bench-issuer.XXXXXX)
chmod 755 "$WORK"
SERVER_PID=
cleanup() {
  [ -n "$SERVER_PID" ] && kill "$SERVER_PID" 2>/dev/null && wait "$SERVER_PID" 2>/dev/null || true
  if [ -d "$WORK/pg" ]; then as_pg "$PGBIN/pg_ctl" -D "$WORK/pg/data" -m immediate stop >/dev/null 2>&1 || true; fi
  rm -rf "$WORK"
}
trap cleanup EXIT
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }

KID=$($BIN keys generate --out "$WORK" --alg ES256)

start_postgres() {
  mkdir -p "$WORK/pg" && chmod 777 "$WORK/pg"
  echo bench > "$WORK/pg/pw" && chmod 644 "$WORK/pg/pw"
  as_pg "$PGBIN/initdb" -D "$WORK/pg/data" -U gatehouse --pwfile="$WORK/pg/pw" -A scram-sha-256 --no-sync >/dev/null
  as_pg "$PGBIN/pg_ctl" -D "$WORK/pg/data" -l "$WORK/pg/log" -w start \
    -o "-c listen_addresses=127.0.0.1 -p $PGPORT -k $WORK/pg -c fsync=off -c synchronous_commit=off -c full_page_writes=off" >/dev/null
}

wait_up() {
  for _ in $(seq 150); do curl -s -o /dev/null -X POST "http://127.0.0.1:$PORT/auth/login" && return; sleep 0.1; done
  cat "$WORK/serve.log"; exit 1
}

# $1: server (gatehouse-sqlite | gatehouse-postgres | seed), $2: cores for taskset. Fresh state each time.
start_server() {
  local database
  case $1 in
    gatehouse-sqlite) database="sqlite:$WORK/gh-$RANDOM.db" ;;
    gatehouse-postgres)
      database="postgresql://gatehouse:bench@127.0.0.1:$PGPORT/bench$RANDOM"
      PGPASSWORD=bench "$PGBIN/psql" -h 127.0.0.1 -p "$PGPORT" -U gatehouse -d postgres -q -c "CREATE DATABASE ${database##*/}" ;;
  esac
  if [ "$1" = seed ]; then
    local workers=1
    [ "$2" = 0,1 ] && workers=2
    (cd bench/seed && SEED_DB="$WORK/seed-$RANDOM.db" exec taskset -c "$2" "../../$VENV/bin/uvicorn" app:app --host 127.0.0.1 --port "$PORT" \
      --loop uvloop --http httptools --no-access-log --log-level warning --workers "$workers") > "$WORK/serve.log" 2>&1 &
  else
    local threads=1
    [ "$2" = 0,1 ] && threads=2
    cat > "$WORK/gateway.conf" <<CONF
listen: 127.0.0.1:$PORT
admin_listen: 127.0.0.1:0
access_log: false
threads: $threads
issuer:
  issuer: http://bench.test
  signing: { key_file: $KID.pem }
  database: $database
  login_limit: { failures: 1000000, window: 1s }
routes: []
CONF
    taskset -c "$2" "$BIN" serve --config "$WORK/gateway.conf" > "$WORK/serve.log" 2>&1 &
  fi
  SERVER_PID=$!
  wait_up
}

stop_server() { pkill -TERM -P "$SERVER_PID" 2>/dev/null || true; kill "$SERVER_PID" 2>/dev/null || true; wait "$SERVER_PID" 2>/dev/null || true; SERVER_PID=; }

# CPU seconds (user + system) of the server and its children so far.
server_cpu() {
  python3 - "$SERVER_PID" <<'PY'
import os, sys
root = int(sys.argv[1])
ticks = os.sysconf("SC_CLK_TCK")
pids = {root}
for d in os.listdir("/proc"):
    if d.isdigit():
        try:
            fields = open(f"/proc/{d}/stat").read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == root: pids.add(int(d))
total = 0
for pid in pids:
    try:
        fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])
    except OSError:
        pass
print(total / ticks)
PY
}

# Registers four users; sets ACCESS (user 0's access token) and REFRESH_TOKENS (one per user).
sessions() {
  local tokens=() response
  for i in 0 1 2 3; do
    response=$(curl -s -X POST "http://127.0.0.1:$PORT/auth/register" -H 'Content-Type: application/json' \
      -d "{\"email\":\"bench$i@example.com\",\"password\":\"correct horse battery\"}")
    tokens+=("$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["refresh_token"])' "$response")")
    [ "$i" = 0 ] && ACCESS=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["access_token"])' "$response")
  done
  REFRESH_TOKENS=$(IFS=,; echo "${tokens[*]}")
}

# $1: label, $2: wrk core ("" = unpinned), then wrk's arguments. Appends "label rate cpu_us_per_request non2xx".
measure() {
  local label=$1 core=$2; shift 2
  local before after
  before=$(server_cpu)
  if [ -n "$core" ]; then taskset -c "$core" wrk "$@" > "$OUT/$label.txt"; else wrk "$@" > "$OUT/$label.txt"; fi
  after=$(server_cpu)
  python3 - "$OUT/$label.txt" "$before" "$after" "$label" >> "$OUT/samples.txt" <<'PY'
import re, sys
text = open(sys.argv[1]).read()
requests = int(re.search(r"(\d+) requests in", text).group(1))
seconds = float(re.search(r"requests in ([\d.]+)(ms|s|m)", text).group(1)) * {"ms": 0.001, "s": 1, "m": 60}[re.search(r"requests in [\d.]+(ms|s|m)", text).group(1)]
bad = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
cpu = float(sys.argv[3]) - float(sys.argv[2])
print(sys.argv[4], f"{requests / seconds:.1f}", f"{cpu * 1e6 / max(requests, 1):.1f}", bad.group(1) if bad else 0)
PY
}

run_server() {
  local server=$1 round=$2
  start_server "$server" 1
  sessions
  measure "me-$server-$round" 0 -t2 -c4 -d"$DURATION" -H "Authorization: Bearer $ACCESS" "http://127.0.0.1:$PORT/users/me"
  REFRESH_TOKENS=$REFRESH_TOKENS measure "refresh-$server-$round" 0 -t4 -c4 -d"$DURATION" -s bench/issuer/refresh.lua "http://127.0.0.1:$PORT"
  # The hash alone, on the server's core, just before its logins: the ratio is taken per round,
  # so that a noisy minute on this shared machine moves both sides of it.
  # Each with its own hasher: the seed's argon2-cffi bundles its own build of the library.
  local hash
  if [ "$server" = seed ]; then hash=$(taskset -c 1 "$VENV/bin/python" -c "$SEED_HASH"); else hash=$(taskset -c 1 .build/release/gatehouse-bench-argon2); fi
  echo "hash-$server-$round $hash" >> "$OUT/samples.txt"
  measure "login1-$server-$round" 0 -t2 -c8 -d"$DURATION" -s bench/issuer/login.lua "http://127.0.0.1:$PORT"
  stop_server
  start_server "$server" 0,1
  sessions
  measure "login2-$server-$round" "" -t2 -c8 -d"$DURATION" -s bench/issuer/login.lua "http://127.0.0.1:$PORT"
  stop_server
}

# The seed's hash alone, as gatehouse-bench-argon2 times Gatehouse's: median of 25.
SEED_HASH='
import statistics, time
from pwdlib.hashers.argon2 import Argon2Hasher
hasher = Argon2Hasher(time_cost=2, memory_cost=19456, parallelism=1)
samples = []
for _ in range(25):
    started = time.perf_counter(); hasher.hash("correct horse battery"); samples.append(time.perf_counter() - started)
print(f"{statistics.median(samples):.6f}")
'

start_postgres
: > "$OUT/samples.txt"
for round in $(seq "$ROUNDS"); do
  for server in gatehouse-sqlite seed gatehouse-postgres; do run_server "$server" "$round"; done
done

python3 - "$OUT/samples.txt" <<'PY' | tee "$OUT/RESULTS.md"
import statistics, sys
from collections import defaultdict
samples = defaultdict(list)
hashes = {}
for line in open(sys.argv[1]):
    fields = line.split()
    operation, rest = fields[0].split("-", 1)
    server, round_ = rest.rsplit("-", 1)
    if operation == "hash":
        hashes[(server, round_)] = float(fields[1])
    else:
        samples[(operation, server)].append((float(fields[1]), float(fields[2]), int(fields[3]), round_))
def med(operation, server, index):
    return statistics.median(s[index] for s in samples[(operation, server)])
def bad(operation, server):
    return sum(s[2] for s in samples[(operation, server)])
print("| operation | seed (µs CPU/request) | Gatehouse SQLite | ratio (seed ÷ Gatehouse) | Gatehouse PostgreSQL |")
print("| --- | ---: | ---: | ---: | ---: |")
for operation, name in [("me", "GET /users/me"), ("refresh", "POST /auth/refresh")]:
    seed, sqlite, pg = (med(operation, s, 1) for s in ("seed", "gatehouse-sqlite", "gatehouse-postgres"))
    print(f"| {name} | {seed:.0f} | {sqlite:.0f} | {seed / sqlite:.2f}× | {pg:.0f} |")
print()
seed_hash = statistics.median(v for (s, _), v in hashes.items() if s == "seed")
own_hash = statistics.median(v for (s, _), v in hashes.items() if s != "seed")
print(f"Argon2id m=19456 t=2 p=1 alone, median of 25 on core 1 before each server's logins: Gatehouse's libargon2 {own_hash * 1000:.1f} ms, the seed's argon2-cffi {seed_hash * 1000:.1f} ms.")
print()
print("| logins/s × s per hash | seed | Gatehouse SQLite | Gatehouse PostgreSQL |")
print("| --- | ---: | ---: | ---: |")
for cores in (1, 2):
    # Per round: logins/s × that round's hash time for that server; the median over rounds.
    row = [statistics.median(rate * hashes[(s, r)] for rate, _, _, r in samples[(f"login{cores}", s)])
           for s in ("seed", "gatehouse-sqlite", "gatehouse-postgres")]
    print(f"| {cores} core{'s' if cores > 1 else ''} (ideal {cores:.2f}) | " + " | ".join(f"{v:.2f}" for v in row) + " |")
print()
print("non-2xx answers: " + ", ".join(f"{o}/{s} {bad(o, s)}" for (o, s) in sorted(samples)))
PY
