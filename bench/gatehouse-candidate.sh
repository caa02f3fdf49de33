#!/usr/bin/env bash
# Gatehouse as the candidate of ../shared/bench/anchors/run.sh (its CANDIDATE_CMD interface):
# writes a gateway.conf from the BENCH_* variables the harness sets and runs `gatehouse serve`.
# BENCH_ALG=plain (the harness's CANDIDATE_ALGS=plain; no key file): no verify section and one
# public route `/` (DESIGN.md: a public route verifies no token), Gatehouse as a plain proxy, so
# that the cost of auth = Gatehouse-ALG − Gatehouse-plain.
# TOKEN_CACHE=0 switches the verified-token cache off (every request a signature check);
# ACCESS_LOG=true writes the access log (off by default here: the anchors' configurations log nothing).
# RSS_DIR=DIR: gatehouse's pid goes to DIR/ALG.pid, for bench/rss-sampler.py.
set -euo pipefail
: "${BENCH_ALG:?} ${BENCH_LISTEN:?} ${BENCH_UPSTREAM_URL:?}"
GATEHOUSE=${GATEHOUSE:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/.build/release/gatehouse}
if [[ $BENCH_ALG == plain ]]; then
    verify=""
    auth=", auth: public"
else
    : "${BENCH_KEY_FILE:?} ${BENCH_ISSUER:?}"
    kid="bench-$(tr '[:upper:]' '[:lower:]' <<<"$BENCH_ALG")"
    if [[ $BENCH_ALG == HS* ]]; then
        BENCH_SECRET=$(<"$BENCH_KEY_FILE")
        export BENCH_SECRET
        keys="{ secret: \"\${BENCH_SECRET}\", kid: $kid }"
    else
        keys="{ public_key_file: \"$BENCH_KEY_FILE\", kid: $kid }"
    fi
    verify="verify:
  issuer: $BENCH_ISSUER
  audience: $BENCH_ISSUER
  algorithms: [$BENCH_ALG]
  keys: $keys
  token_cache: { size: ${TOKEN_CACHE:-100000} }"
    auth=""
fi
conf=$(mktemp "${TMPDIR:-/tmp}/gatehouse-bench.XXXXXX.conf")
trap 'rm -f "$conf"' EXIT
cat >"$conf" <<CONF
listen: $BENCH_LISTEN
admin_listen: 127.0.0.1:0
threads: ${BENCH_CPUS:-1}
access_log: ${ACCESS_LOG:-false}
issuer: { enabled: false }
$verify
routes:
  - { prefix: /, upstream: "$BENCH_UPSTREAM_URL"$auth }
CONF
# The configuration is read at start; the file can go once the listener is up.
"$GATEHOUSE" serve --config "$conf" &
pid=$!
if [[ -n ${RSS_DIR:-} ]]; then mkdir -p "$RSS_DIR" && echo "$pid" >"$RSS_DIR/$BENCH_ALG.pid"; fi
sleep 1
rm -f "$conf"
trap 'kill -TERM $pid 2>/dev/null' EXIT TERM INT
wait $pid
