#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# Autobahn|Testsuite's fuzzing client (RFC 6455 conformance) against a WebSocket server.
#
#   Tests/WebSocket/autobahn.sh URL [--agent NAME] [--out DIR] [--cases LIST]
#   Tests/WebSocket/autobahn.sh --install       install autobahntestsuite if missing, run nothing
#   Tests/WebSocket/autobahn.sh --locate-python print the python2.7 it uses (exit 77 when none)
#
#   URL          ws://host:port/path of the server under test (it must echo every message)
#   --agent      the server's name in the report (default gatehouse-echo)
#   --out        where the spec, the HTML/JSON report and summary.json go
#                (default .build/autobahn/report-AGENT)
#   --cases      comma-separated case patterns (default *: cases 1-11; 12.* and 13.*, the
#                permessage-deflate cases, are always excluded)
#
# Prints one line of JSON and writes it to OUT/summary.json:
#   {"agent", "url", "cases": N, "counts": {"OK", "NON-STRICT", "INFORMATIONAL", "UNIMPLEMENTED",
#    "FAILED"}, "close_counts": {...behaviorClose...}, "failed": [ids], "non_strict": [ids],
#    "behaviors": {"1.1.1": "OK", ...}, "report": "OUT/report/index.html"}
# Exit status: 0 no case FAILED, 1 some case FAILED, 2 usage or install error, 77 no python2.7.
#
# autobahntestsuite (25.10.1) runs on Python 2.7 only: this uses python2.7 from $AUTOBAHN_PYTHON,
# else from PATH, else pyenv's (`pyenv root`/versions/2.7.*, ~/.pyenv/versions/2.7.*). It is
# installed with that python's pip into $AUTOBAHN_DIR (default .build/autobahn, about 45 s once).
# A plain PYTHONPATH would not do: the zope namespace .pth file is read only by site.addsitedir.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
version=25.10.1
dir=${AUTOBAHN_DIR:-$repo/.build/autobahn}
site=$dir/site-$version

locate_python() {
    local candidate root
    if [ -n "${AUTOBAHN_PYTHON:-}" ]; then
        "$AUTOBAHN_PYTHON" -c 'import sys; assert sys.version_info[:2] == (2, 7)' 2>/dev/null || return 1
        echo "$AUTOBAHN_PYTHON"
        return 0
    fi
    # pyenv's shim is on PATH even when 2.7 is not the selected version; it then fails, so run it.
    if candidate=$(command -v python2.7) && "$candidate" -c 'import sys; assert sys.version_info[:2] == (2, 7)' 2>/dev/null; then
        echo "$candidate"
        return 0
    fi
    root=$(pyenv root 2>/dev/null || true)
    for candidate in ${root:+"$root"/versions/2.7*/bin/python2.7} "${PYENV_ROOT:-$HOME/.pyenv}"/versions/2.7*/bin/python2.7 \
        /usr/bin/python2.7 /usr/local/bin/python2.7; do
        if [ -x "$candidate" ] && "$candidate" -c 'import sys; assert sys.version_info[:2] == (2, 7)' 2>/dev/null; then
            echo "$candidate"
            return 0
        fi
    done
    return 1
}

need_python() {
    python=$(locate_python) || {
        echo "autobahn: no python2.7 found (set AUTOBAHN_PYTHON, or install 2.7 with pyenv): Autobahn|Testsuite needs it" >&2
        exit 77
    }
}

install() {
    [ -f "$site/.installed" ] && return 0
    mkdir -p "$dir"
    exec 9>"$dir/install.lock"
    flock 9
    [ -f "$site/.installed" ] && return 0
    export PYTHONWARNINGS=ignore PIP_DISABLE_PIP_VERSION_CHECK=1
    if ! "$python" -m pip --version >/dev/null 2>&1; then
        # ensurepip is bundled with 2.7.9 and later and works offline.
        "$python" -m ensurepip --user >/dev/null 2>&1 || {
            echo "autobahn: $python has no pip and ensurepip failed" >&2
            exit 2
        }
    fi
    echo "autobahn: installing autobahntestsuite==$version into $site" >&2
    rm -rf "$site.tmp"
    "$python" -m pip install -q --no-warn-script-location --target "$site.tmp" "autobahntestsuite==$version" >&2 || {
        echo "autobahn: pip install autobahntestsuite==$version failed" >&2
        exit 2
    }
    touch "$site.tmp/.installed"
    rm -rf "$site"
    mv "$site.tmp" "$site"
}

url="" agent=gatehouse-echo out="" cases="*"
while [ $# -gt 0 ]; do
    case $1 in
        --locate-python) need_python; echo "$python"; exit 0 ;;
        --install) need_python; install; exit 0 ;;
        --agent) agent=$2; shift 2 ;;
        --out) out=$2; shift 2 ;;
        --cases) cases=$2; shift 2 ;;
        ws://* | wss://*) url=$1; shift ;;
        *) echo "usage: $0 ws://host:port/path [--agent NAME] [--out DIR] [--cases LIST] | --install | --locate-python" >&2; exit 2 ;;
    esac
done
[ -n "$url" ] || { echo "autobahn: no ws:// URL given" >&2; exit 2; }
need_python
install

out=${out:-$dir/report-$agent}
mkdir -p "$out"
out=$(cd "$out" && pwd)
rm -rf "$out/report"

# The spec, the run and the summary: all in Python 2.7 (the interpreter that is sure to be here).
cd "$out"
PYTHONWARNINGS=ignore "$python" - "$site" "$out" "$url" "$agent" "$cases" <<'PYTHON'
import json, os, site, sys
site_dir, out, url, agent, cases = sys.argv[1:6]
site.addsitedir(site_dir)
spec = {
    "outdir": os.path.join(out, "report"),
    "servers": [{"agent": agent, "url": url}],
    "cases": [c.strip() for c in cases.split(",") if c.strip()],
    "exclude-cases": ["12.*", "13.*"],
    "exclude-agent-cases": {},
}
with open(os.path.join(out, "spec.json"), "w") as f:
    json.dump(spec, f, indent=2)
# wstest writes its progress to standard output: keep that for the summary line alone.
log = open(os.path.join(out, "wstest.log"), "w")
stdout = os.dup(1)
os.dup2(log.fileno(), 1)
os.dup2(log.fileno(), 2)
from autobahntestsuite.wstest import run
sys.argv = ["wstest", "--mode", "fuzzingclient", "--spec", os.path.join(out, "spec.json")]
try:
    run()
except SystemExit:
    pass
sys.stdout.flush()
os.dup2(stdout, 1)

index = os.path.join(out, "report", "index.json")
if not os.path.exists(index):
    sys.stderr.write("autobahn: no report (%s); see %s\n" % (index, os.path.join(out, "wstest.log")))
    sys.exit(2)
with open(index) as f:
    results = json.load(f).get(agent, {})
def key(case):
    return tuple(int(p) for p in case.split("."))
ids = sorted(results, key=key)
counts = dict((b, 0) for b in ["OK", "NON-STRICT", "INFORMATIONAL", "UNIMPLEMENTED", "FAILED"])
close_counts = {}
for case in ids:
    counts[results[case]["behavior"]] = counts.get(results[case]["behavior"], 0) + 1
    close = results[case].get("behaviorClose", "?")
    close_counts[close] = close_counts.get(close, 0) + 1
summary = {
    "agent": agent,
    "url": url,
    "cases": len(ids),
    "counts": counts,
    "close_counts": close_counts,
    "failed": [c for c in ids if results[c]["behavior"] == "FAILED"],
    "non_strict": [c for c in ids if results[c]["behavior"] == "NON-STRICT"],
    "behaviors": dict((c, results[c]["behavior"]) for c in ids),
    "report": os.path.join(out, "report", "index.html"),
}
line = json.dumps(summary, sort_keys=True)
with open(os.path.join(out, "summary.json"), "w") as f:
    f.write(line + "\n")
print(line)
sys.exit(1 if counts["FAILED"] or not ids else 0)
PYTHON
