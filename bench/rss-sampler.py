#!/usr/bin/env python3
"""Samples the memory of the candidates of a harness run (the harness records no RSS).

    rss-sampler.py PID_DIR OUT_JSON [INTERVAL_S]

bench/gatehouse-candidate.sh (with RSS_DIR=PID_DIR) writes gatehouse's pid to PID_DIR/ALG.pid.
Every INTERVAL_S (default 1) this reads VmRSS and VmHWM (peak) of each from /proc and rewrites
OUT_JSON: {ALG: {"pid", "vmrss_kib_last", "vmhwm_kib", "samples"}}; the last sample of a process
is its memory at most INTERVAL_S before the harness stopped it. Stops on SIGTERM/SIGINT after one
last sample. It runs outside the harness's process groups, so its own CPU (a few /proc reads a
second) is not charged to the gateway.
"""
import json
import os
import signal
import sys
import time


def read_status(pid):
    out = {}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(("VmRSS:", "VmHWM:")):
                    name, value = line.split(":", 1)
                    out[name] = int(value.split()[0])
    except OSError:
        return None
    return out if len(out) == 2 else None


def main():
    pid_dir, out = sys.argv[1], sys.argv[2]
    interval = float(sys.argv[3]) if len(sys.argv) > 3 else 1.0
    seen = {}
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    signal.signal(signal.SIGINT, lambda *_: stop.append(1))

    def sample():
        changed = False
        try:
            names = [n for n in os.listdir(pid_dir) if n.endswith(".pid")]
        except OSError:
            names = []
        for name in names:
            alg = name[:-4]
            try:
                pid = int(open(os.path.join(pid_dir, name)).read().strip())
            except (OSError, ValueError):
                continue
            st = read_status(pid)
            if st is None:
                continue
            rec = seen.get(alg)
            if rec is None or rec["pid"] != pid:
                rec = seen[alg] = {"pid": pid, "vmrss_kib_last": 0, "vmhwm_kib": 0, "samples": 0}
            rec["vmrss_kib_last"] = st["VmRSS"]
            rec["vmhwm_kib"] = max(rec["vmhwm_kib"], st["VmHWM"])
            rec["samples"] += 1
            changed = True
        if changed:
            tmp = out + ".tmp"
            with open(tmp, "w") as f:
                json.dump(seen, f, indent=2)
            os.replace(tmp, out)

    while not stop:
        sample()
        time.sleep(interval)
    sample()


if __name__ == "__main__":
    main()
