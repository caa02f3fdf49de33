#!/usr/bin/env python3
"""Gatehouse against the goals, from the harness runs of bench/compare-haproxy.sh.

    summarize.py [--markdown FILE] [RUN_DIR ...]    (default: bench/out/cache-on bench/out/cache-off)

Reads each RUN_DIR/results.json (the shared harness's: per config the proxy's CPU µs per request
and p99, medians of the rounds) and RUN_DIR/rss.json (bench/rss-sampler.py), and prints one line
per goal with PASS or FAIL. Every comparison is within one run: Gatehouse against the nginx and
HAProxy measured in the same session. A run is "cache on" or "cache off" by its directory name
(cache-on / cache-off), else by the TOKEN_CACHE= in the candidate's command.

Goals:
  Gatehouse plain (public route, no verify) / nginx plain           ≤ 1.25   (each run)
  cache on,  Gatehouse ALG / nginx plain                            ≤ 1.4
  cache on,  Gatehouse ALG / HAProxy jwt ALG                        < 1
  cache off, Gatehouse ALG − Gatehouse plain  vs  HAProxy jwt ALG − HAProxy plain: ours ≤ theirs
  p99, Gatehouse ALG vs HAProxy jwt ALG                             ours ≤ theirs (each run)
  RSS (peak VmHWM of each Gatehouse instance)                       < 64 MiB (each run)
A figure that is missing (not measured, or the configuration failed the harness's checks) is n/a.
"""
import json
import os
import re
import sys

ALGS = ["HS256", "RS256", "ES256"]
RSS_GOAL_MIB = 64


def load_run(path):
    res = json.load(open(os.path.join(path, "results.json")))
    rss_path = os.path.join(path, "rss.json")
    rss = json.load(open(rss_path)) if os.path.exists(rss_path) else {}
    name = os.path.basename(os.path.normpath(path))
    mode = {"cache-on": "on", "cache-off": "off"}.get(name)
    if mode is None:
        for c in res["meta"].get("configs", {}).values():
            m = re.search(r"TOKEN_CACHE=(\d+)", c.get("description", ""))
            if m:
                mode = "off" if m.group(1) == "0" else "on"
                break
    return {"dir": path, "mode": mode or "?", "res": res, "rss": rss}


def cpu(run, config):
    return (run["res"]["configs"].get(config) or {}).get("svc_cpu_us_per_req_median")


def p99(run, config):
    return (run["res"]["configs"].get(config) or {}).get("p99_us_median")


def f1(x, unit=""):
    return "n/a" if x is None else f"{x:.1f}{unit}"


def verdict(ok):
    return "n/a" if ok is None else ("PASS" if ok else "FAIL")


def summarize(runs):
    lines = []  # (section, check, ours, reference, figure, goal, result)

    def add(section, check, ours, ref, figure, goal, ok):
        lines.append((section, check, ours, ref, figure, goal, verdict(ok)))

    for run in runs:
        tag = f"cache {run['mode']}"
        g, n = cpu(run, "gatehouse-plain"), cpu(run, "nginx-plain")
        r = g / n if g is not None and n else None
        add("plain proxy", f"{tag}: Gatehouse plain / nginx plain (CPU µs/req)", f1(g), f1(n),
            "n/a" if r is None else f"{r:.3f}", "≤ 1.25", None if r is None else r <= 1.25)

    for run in runs:
        if run["mode"] != "on":
            continue
        n = cpu(run, "nginx-plain")
        for alg in ALGS:
            g, h = cpu(run, f"gatehouse-{alg}"), cpu(run, f"haproxy-jwt-{alg}")
            r = g / n if g is not None and n else None
            add("cache on", f"{alg}: Gatehouse / nginx plain (CPU µs/req)", f1(g), f1(n),
                "n/a" if r is None else f"{r:.3f}", "≤ 1.4", None if r is None else r <= 1.4)
            r = g / h if g is not None and h else None
            add("cache on", f"{alg}: Gatehouse / HAProxy jwt {alg} (CPU µs/req)", f1(g), f1(h),
                "n/a" if r is None else f"{r:.3f}", "< 1", None if r is None else r < 1)

    for run in runs:
        if run["mode"] != "off":
            continue
        gp, hp = cpu(run, "gatehouse-plain"), cpu(run, "haproxy-plain")
        for alg in ALGS:
            g, h = cpu(run, f"gatehouse-{alg}"), cpu(run, f"haproxy-jwt-{alg}")
            ours = g - gp if g is not None and gp is not None else None
            theirs = h - hp if h is not None and hp is not None else None
            ok = None if ours is None or theirs is None else ours <= theirs
            add("cache off", f"{alg}: auth increment, Gatehouse (ALG − plain) vs HAProxy (jwt − plain), CPU µs/req",
                f1(ours), f1(theirs),
                "n/a" if ok is None else f"{ours - theirs:+.2f} µs", "ours ≤ theirs", ok)

    for run in runs:
        tag = f"cache {run['mode']}"
        for alg in ALGS:
            g, h = p99(run, f"gatehouse-{alg}"), p99(run, f"haproxy-jwt-{alg}")
            ok = None if g is None or h is None else g <= h
            add("p99", f"{tag}, {alg}: Gatehouse vs HAProxy jwt p99 (ms)",
                "n/a" if g is None else f"{g / 1000:.2f}", "n/a" if h is None else f"{h / 1000:.2f}",
                "n/a" if ok is None else f"{g / h:.3f}", "ours ≤ theirs", ok)

    for run in runs:
        tag = f"cache {run['mode']}"
        for alg in ["plain"] + ALGS:
            if f"gatehouse-{alg}" not in run["res"]["configs"] and alg not in run["rss"]:
                continue
            rec = run["rss"].get(alg)
            hwm = rec["vmhwm_kib"] / 1024 if rec else None
            last = rec["vmrss_kib_last"] / 1024 if rec else None
            add("RSS", f"{tag}, gatehouse-{alg}: peak RSS (VmHWM), MiB",
                f1(hwm), "-", "n/a" if last is None else f"last VmRSS {last:.1f}", f"< {RSS_GOAL_MIB} MiB",
                None if hwm is None else hwm < RSS_GOAL_MIB)
    return lines


def run_notes(runs):
    notes = []
    for run in runs:
        res = run["res"]
        s = res["meta"].get("settings", {})
        cfgs = res["configs"]
        checks = []
        for name, v in sorted(res.get("verification", {}).items()):
            if name.startswith("gatehouse-"):
                total = v["passed"] + len(v["failed"])
                checks.append(f"{name} {v['passed']}/{total}" + ("" if name in cfgs else " (failed: not measured)"))
        foreign = max((c.get("foreign_cpu_pct_of_core_max") or 0 for c in cfgs.values()), default=0)
        errors = sum(c.get("errors_total") or 0 for c in cfgs.values())
        notes.append(f"- cache {run['mode']} ({run['dir']}): {res['meta']['machine'].get('date_utc', '?')}, "
                     f"rounds {s.get('rounds')}, duration {s.get('duration')}, conns {s.get('conns')}; "
                     f"other processes at most {foreign:.0f}% of a core during a measured run; "
                     f"wrk errors {errors}; checks: {', '.join(checks) or 'none recorded'}")
    return notes


def markdown(runs, lines):
    out = ["# Gatehouse against the goals", "",
           "From `bench/summarize.py` over the runs of `bench/compare-haproxy.sh`; CPU is the proxy's own",
           "CPU µs per request (user+sys of its process group), median of the rounds; every comparison is",
           "within one run. Reference = the figure it is compared with.", ""]
    out += run_notes(runs)
    out += ["", "| section | check | Gatehouse | reference | ratio / difference | goal | result |",
            "|---|---|---:|---:|---:|---|---|"]
    for sec, check, ours, ref, fig, goal, res in lines:
        out.append(f"| {sec} | {check} | {ours} | {ref} | {fig} | {goal} | **{res}** |")
    counts = {k: sum(1 for l in lines if l[6] == k) for k in ("PASS", "FAIL", "n/a")}
    out += ["", f"{counts['PASS']} PASS, {counts['FAIL']} FAIL, {counts['n/a']} n/a"]
    return "\n".join(out) + "\n"


def main(argv):
    md_path = None
    if len(argv) >= 2 and argv[0] == "--markdown":
        md_path, argv = argv[1], argv[2:]
    here = os.path.dirname(os.path.abspath(__file__))
    dirs = argv or [os.path.join(here, "out", "cache-on"), os.path.join(here, "out", "cache-off")]
    runs = [load_run(d) for d in dirs if os.path.exists(os.path.join(d, "results.json"))]
    if not runs:
        sys.exit("no results.json in " + " ".join(dirs))
    text = markdown(runs, summarize(runs))
    print(text, end="")
    if md_path:
        with open(md_path, "w") as f:
            f.write(text)
        print(f"(written to {md_path})")


if __name__ == "__main__":
    main(sys.argv[1:])
