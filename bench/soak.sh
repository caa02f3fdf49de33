#!/usr/bin/env bash
# Soak: mixed traffic through a real Gatehouse (issuer on SQLite + gateway in front of
# `gatehouse echo`) for SOAK_SECONDS (default 300), then the figures: requests, errors, RSS over
# time. Fails (exit 1) on any error or if RSS grew by more than 10 % after the first minute.
#
#   bash bench/soak.sh                 (SOAK_SECONDS=300 CONNS=32)
#
# The mix: wrk sends authenticated GETs through the gateway (1000 users' access tokens, cached and
# verified), /users/me, /auth/verify and public requests; a second client refreshes and logs in
# back to back all along (the refresh chains and Argon2 on the database and hash pools).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SOAK_SECONDS=${SOAK_SECONDS:-300}
CONNS=${CONNS:-32}
command -v wrk >/dev/null || { echo "wrk is needed: apt-get install wrk" >&2; exit 1; }
(cd "$ROOT" && swift build -c release --product gatehouse >/dev/null)
G=$ROOT/.build/release/gatehouse
work=$(mktemp -d)
pids=()
cleanup() { for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT
cd "$work"
kid=$("$G" keys generate --out . )
cat > gateway.conf <<CONF
listen: 127.0.0.1:18700
admin_listen: 127.0.0.1:18709
access_log: false
issuer:
  issuer: http://127.0.0.1:18700
  signing: { key_file: $kid.pem }
  database: sqlite:soak.db
  argon2: { memory_kib: 19456, iterations: 2, parallelism: 1 }
  login_limit: { failures: 1000000, window: 1m }
routes:
  - { prefix: /api/, upstream: "http://127.0.0.1:18701" }
  - { prefix: /public/, upstream: "http://127.0.0.1:18701", auth: public }
CONF
"$G" echo --listen 127.0.0.1:18701 >/dev/null & pids+=($!)
"$G" serve --config gateway.conf >serve.log 2>&1 & pids+=($!)
serve=$!
for _ in $(seq 100); do curl -sf http://127.0.0.1:18709/readyz >/dev/null && break; sleep 0.1; done

# 1000 users and their access tokens (Argon2 is the cost: a minute or so).
python3 - <<'PY'
import json, urllib.request, concurrent.futures
def register(i):
    body = json.dumps({"email": f"soak{i}@example.com", "password": "correct horse battery"}).encode()
    request = urllib.request.Request("http://127.0.0.1:18700/auth/register", body, {"Content-Type": "application/json"})
    return json.load(urllib.request.urlopen(request))["access_token"]
with concurrent.futures.ThreadPoolExecutor(4) as pool:
    tokens = list(pool.map(register, range(1000)))
open("tokens.txt", "w").write("\n".join(tokens) + "\n")
PY
cat > mix.lua <<'LUA'
local tokens, i, n = {}, 0, 0
function init(args) for line in io.lines(args[1]) do tokens[#tokens + 1] = line end end
local paths = {"/api/orders", "/api/orders/1", "/users/me", "/auth/verify", "/public/status"}
function request()
  i = i % #tokens + 1; n = n + 1
  return wrk.format("GET", paths[n % #paths + 1], {["Authorization"] = "Bearer " .. tokens[i]})
end
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('SOAK {"requests":%d,"non2xx":%d,"socket_errors":%d,"p99_us":%d,"rps":%.0f}\n',
    summary.requests, e.status, e.connect + e.read + e.write + e.timeout, latency:percentile(99), summary.requests / (summary.duration / 1e6)))
end
LUA

# Refreshes and logins all along, from a second client.
python3 - "$SOAK_SECONDS" >issuer.json <<'PY' &
import json, sys, time, urllib.request, urllib.error
end = time.time() + int(sys.argv[1]); counts = {}
def post(path, body):
    request = urllib.request.Request("http://127.0.0.1:18700" + path, json.dumps(body).encode(), {"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request) as response: return response.status, json.load(response)
    except urllib.error.HTTPError as error: return error.code, None
refresh = post("/auth/login", {"email": "soak0@example.com", "password": "correct horse battery"})[1]["refresh_token"]
while time.time() < end:
    status, body = post("/auth/refresh", {"refresh_token": refresh})
    counts[f"refresh {status}"] = counts.get(f"refresh {status}", 0) + 1
    if status == 200: refresh = body["refresh_token"]
    status, _ = post("/auth/login", {"email": "soak1@example.com", "password": "correct horse battery"})
    counts[f"login {status}"] = counts.get(f"login {status}", 0) + 1
print(json.dumps(counts))
PY
issuer_client=$!
rss() { awk '/^VmRSS/{print $2}' "/proc/$serve/status"; }
(for _ in $(seq $((SOAK_SECONDS / 10))); do echo "$(date +%s) $(rss)"; sleep 10; done) >rss.txt &
sampler=$!
wrk -t1 -c"$CONNS" -d"${SOAK_SECONDS}s" --latency -s mix.lua http://127.0.0.1:18700 -- tokens.txt >wrk.txt
wait $issuer_client; wait $sampler || true
python3 - <<'PY'
import json
wrk = json.loads(open("wrk.txt").read().split("SOAK ", 1)[1].splitlines()[0])
issuer = json.loads(open("issuer.json").read())
rss = [int(line.split()[1]) for line in open("rss.txt") if line.split()[1:]]
after_warmup = rss[6:] or rss
growth = (max(after_warmup) - after_warmup[0]) / after_warmup[0]
issuer_errors = sum(v for k, v in issuer.items() if not k.endswith(" 200"))
print(f"gateway: {wrk['requests']} requests ({wrk['rps']}/s), {wrk['non2xx']} non-2xx, {wrk['socket_errors']} socket errors, p99 {wrk['p99_us'] / 1000:.1f} ms")
print(f"issuer:  {issuer}")
print(f"RSS:     {rss[0] / 1024:.1f} MiB at 10 s, {after_warmup[0] / 1024:.1f} MiB at 1 min, {rss[-1] / 1024:.1f} MiB at the end, "
      f"peak after 1 min {max(after_warmup) / 1024:.1f} MiB (+{growth * 100:.1f} %)")
ok = wrk["non2xx"] == 0 and wrk["socket_errors"] == 0 and issuer_errors == 0 and growth <= 0.10
print("soak:", "PASS" if ok else "FAIL")
raise SystemExit(0 if ok else 1)
PY
