#!/usr/bin/env bash
# Issuer benchmark: refreshes per second and their p99 on SQLite and on PostgreSQL; logins per
# second against the Argon2 cost measured alone. Gatehouse is pinned to core 1, wrk to core 0
# (bench/README.md). A throwaway PostgreSQL is started and removed here. Bounded: ~2 minutes.
#   bash bench/issuer.sh            (DURATION=10s by default)
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-10s}
PORT=${PORT:-18480}
PGPORT=${PGPORT:-18432}
OUT=bench/out/issuer
PGBIN=/usr/lib/postgresql/15/bin
mkdir -p "$OUT"
command -v wrk >/dev/null || { echo "wrk is needed: apt-get install wrk"; exit 1; }

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
  PGPASSWORD=bench "$PGBIN/psql" -h 127.0.0.1 -p "$PGPORT" -U gatehouse -d postgres -q -c "CREATE DATABASE bench"
}

# $1: database URL. Starts Gatehouse on core 1 with OWASP Argon2 parameters.
start_gatehouse() {
  cat > "$WORK/gateway.conf" <<CONF
listen: 127.0.0.1:$PORT
admin_listen: 127.0.0.1:0
access_log: false
issuer:
  issuer: http://bench.test
  signing: { key_file: $KID.pem }
  database: $1
  login_limit: { failures: 1000000, window: 1s }
routes: []
CONF
  taskset -c 1 "$BIN" serve --config "$WORK/gateway.conf" > "$WORK/serve.log" 2>&1 &
  SERVER_PID=$!
  for _ in $(seq 100); do curl -s -o /dev/null "http://127.0.0.1:$PORT/.well-known/jwks.json" && return; sleep 0.1; done
  cat "$WORK/serve.log"; exit 1
}

stop_gatehouse() { kill "$SERVER_PID"; wait "$SERVER_PID" 2>/dev/null || true; SERVER_PID=; }

# Four sessions, one per wrk connection; prints their refresh tokens comma-separated.
sessions() {
  local tokens=()
  for i in 0 1 2 3; do
    tokens+=("$(curl -s -X POST "http://127.0.0.1:$PORT/auth/register" -H 'Content-Type: application/json' \
      -d "{\"email\":\"bench$i@example.com\",\"password\":\"correct horse battery\"}" |
      python3 -c 'import json,sys; print(json.load(sys.stdin)["refresh_token"])')")
  done
  (IFS=,; echo "${tokens[*]}")
}

# wrk's summary → "requests/s p99_ms non2xx"
summarise() {
  python3 - "$1" <<'PY'
import re, sys
text = open(sys.argv[1]).read()
rate = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))
p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)\b", text)
scale = {"us": 0.001, "ms": 1, "s": 1000}[p99.group(2)]
bad = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
print(f"{rate:.0f} {float(p99.group(1)) * scale:.2f} {bad.group(1) if bad else 0}")
PY
}

declare -A RESULT
for store in sqlite postgres; do
  if [ $store = sqlite ]; then url="sqlite:$WORK/bench.db"; else start_postgres; url="postgresql://gatehouse:bench@127.0.0.1:$PGPORT/bench"; fi
  start_gatehouse "$url"
  REFRESH_TOKENS=$(sessions) taskset -c 0 wrk -t4 -c4 -d"$DURATION" --latency -s bench/issuer/refresh.lua "http://127.0.0.1:$PORT" > "$OUT/refresh-$store.txt"
  RESULT[refresh-$store]=$(summarise "$OUT/refresh-$store.txt")
  taskset -c 0 wrk -t2 -c8 -d"$DURATION" --latency -s bench/issuer/login.lua "http://127.0.0.1:$PORT" > "$OUT/login-$store.txt"
  RESULT[login-$store]=$(summarise "$OUT/login-$store.txt")
  stop_gatehouse
done

HASH=$(taskset -c 1 .build/release/gatehouse-bench-argon2)
{
  echo "| store | refreshes/s | refresh p99 ms | refresh non-2xx | logins/s | login p99 ms | logins/s × s per hash (1 core) |"
  echo "| --- | --- | --- | --- | --- | --- | --- |"
  for store in sqlite postgres; do
    read -r rr rp rb <<< "${RESULT[refresh-$store]}"
    read -r lr lp lb <<< "${RESULT[login-$store]}"
    echo "| $store | $rr | $rp | $rb | $lr | $lp | $(python3 -c "print(f'{$lr * $HASH:.2f}')") |"
  done
  echo
  echo "Argon2id m=19456 t=2 p=1 alone: $(python3 -c "print(f'{$HASH * 1000:.1f}')") ms per hash (median of 25, core 1)."
} | tee "$OUT/RESULTS.md"
