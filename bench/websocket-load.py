#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""WebSocket load for bench/websocket.sh: K connections, each keeping W binary messages of S bytes in
flight and sending the next one as each echo comes back; the proxy's CPU over a timed window.

    websocket-load.py --url ws://127.0.0.1:PORT/ --conns 50 --size 128 [--window 1]
                      [--engine python | --engine c --c-binary PATH]
                      [--warmup 2] [--duration 10 | --messages M]
                      [--proxy-pids P,...] [--upstream-pids P,...]
                      [--quiet-max-pct 15 --quiet-wait 60] [--noisy-pct 20 --retries 1]

A raw RFC 6455 client on epoll, not Python's `websockets`: that library spends tens of µs of CPU
per message, so the load core would cap the rate far below what a proxy can carry. The frame is
built (and masked, with one random key) once and sent with one send() per message; every echo is
parsed (frame header) and its payload compared with what was sent. The handshake checks
`Sec-WebSocket-Accept`. Any surprise (another status, a close frame, a text or fragmented frame, a
masked server frame, a payload that differs, a connection that ends) is an error: exit status 1.
Two engines run the same loop: `python` (in this process) and `c` (bench/websocket-load.c,
compiled, a process of its own; this one then only sleeps and takes the measurements). The C
engine costs a fraction of the Python one per message, so the load core goes further.

One message = one client→upstream frame and its echo. After the warm-up the window opens: the
CPU (utime + stime from /proc/PID/stat) of the --proxy-pids and --upstream-pids, this process's
own CPU, and the whole machine's busy time (/proc/stat) are read at its start and end, together
with the count of echoes received. A window during which processes other than these used more
than --noisy-pct % of a core is measured again right away on the same connections (at most
--retries more windows); the quietest window is reported. Before connecting, the client waits
(at most --quiet-wait s) until the machine is below --quiet-max-pct % busy.

Prints one JSON line: messages, seconds, msgs_per_s, proxy_cpu_us_per_msg, proxy_busy_pct (% of
one core), upstream_cpu_us_per_msg, client_cpu_us_per_msg, load_busy_pct (client + upstream, % of
one core), other_pct (% of one core used by everything else), windows (how many were measured).
"""

import argparse
import base64
import errno
import hashlib
import json
import os
import resource
import select
import socket
import sys
import time
from urllib.parse import urlsplit

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
TICK = os.sysconf("SC_CLK_TCK")


def fail(message):
    print(json.dumps({"error": message}), flush=True)
    sys.exit(1)


def proc_ticks(pids):
    total = 0
    for pid in pids:
        with open(f"/proc/{pid}/stat", "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15)
    return total


def machine_busy_ticks():
    with open("/proc/stat", "rb") as f:
        values = [int(v) for v in f.readline().split()[1:]]
    idle = values[3] + (values[4] if len(values) > 4 else 0)  # idle + iowait
    guest = sum(values[8:10]) if len(values) > 9 else 0       # guest time is counted in user too
    return sum(values) - guest - idle


def self_cpu():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def wait_quiet(max_pct, max_wait):
    """Waits until the whole machine (all cores) is below max_pct % busy over one second."""
    cores = os.cpu_count() or 1
    deadline = time.monotonic() + max_wait
    while True:
        b0, t0 = machine_busy_ticks(), time.monotonic()
        time.sleep(1.0)
        busy = (machine_busy_ticks() - b0) / TICK / (time.monotonic() - t0) / cores * 100
        if busy <= max_pct or time.monotonic() >= deadline:
            return busy


def handshake(host, port, path, timeout):
    sock = socket.create_connection((host, port), timeout=timeout)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    key = base64.b64encode(os.urandom(16))
    sock.sendall(b"GET " + path.encode() + b" HTTP/1.1\r\nHost: " + f"{host}:{port}".encode() +
                 b"\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: " + key +
                 b"\r\nSec-WebSocket-Version: 13\r\n\r\n")
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(4096)
        if not chunk:
            fail(f"handshake: connection closed after {len(data)} bytes: {data[:200]!r}")
        data += chunk
        if len(data) > 65536:
            fail("handshake: response head over 64 KiB")
    head, rest = data.split(b"\r\n\r\n", 1)
    lines = head.split(b"\r\n")
    if lines[0].split(b" ")[1:2] != [b"101"]:
        fail(f"handshake: expected 101, got {lines[0].decode(errors='replace')!r}")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        headers[name.strip().lower()] = value.strip()
    accept = base64.b64encode(hashlib.sha1(key + GUID).digest())
    if headers.get(b"sec-websocket-accept") != accept:
        fail("handshake: Sec-WebSocket-Accept does not match the key")
    if headers.get(b"upgrade", b"").lower() != b"websocket":
        fail("handshake: no Upgrade: websocket in the 101")
    sock.setblocking(False)
    return sock, bytearray(rest)


def client_frame(opcode, payload, mask):
    """One masked client frame with FIN set."""
    n = len(payload)
    if n < 126:
        head = bytes([0x80 | opcode, 0x80 | n])
    elif n < 65536:
        head = bytes([0x80 | opcode, 0x80 | 126]) + n.to_bytes(2, "big")
    else:
        head = bytes([0x80 | opcode, 0x80 | 127]) + n.to_bytes(8, "big")
    masked = bytes(b ^ mask[i & 3] for i, b in enumerate(payload))
    return head + mask + masked


class PythonEngine:
    """The closed loop in this process, on epoll."""

    def __init__(self, a, url, path):
        self.a, self.url, self.path = a, url, path
        self.payload = os.urandom(a.size)
        self.mask = os.urandom(4)
        self.frame = client_frame(0x2, self.payload, self.mask)
        self.verify = not a.no_verify
        self.received = 0
        self.sent = 0
        self.sending = True

    def start(self):
        a = self.a
        self.conns = []  # per connection: [sock, recv buffer, pending output]
        for _ in range(a.conns):
            sock, rest = handshake(self.url.hostname, self.url.port, self.path, a.timeout)
            self.conns.append([sock, rest, bytearray()])
        self.by_fd = {c[0].fileno(): c for c in self.conns}
        self.ep = select.epoll()
        for fd in self.by_fd:
            self.ep.register(fd, select.EPOLLIN)
        for c in self.conns:
            if c[1] and self.consume(c):
                fail("an echo before any message")
            for _ in range(a.window):
                self.send(c, self.frame)
        self.sent = a.conns * a.window

    def count(self):
        return self.received

    def client_cpu(self):
        return self_cpu()

    def send(self, c, data):
        if c[2]:
            c[2] += data
            return
        try:
            n = c[0].send(data)
        except BlockingIOError:
            n = 0
        if n < len(data):
            c[2] += data[n:]
            self.ep.modify(c[0].fileno(), select.EPOLLIN | select.EPOLLOUT)

    def flush(self, c):
        try:
            n = c[0].send(c[2])
        except BlockingIOError:
            return
        del c[2][:n]
        if not c[2]:
            self.ep.modify(c[0].fileno(), select.EPOLLIN)

    def consume(self, c):
        """Parses the server frames in c's buffer; returns how many echoes it completed."""
        buf = c[1]
        n = len(buf)
        off = 0
        done = 0
        payload, verify = self.payload, self.verify
        while n - off >= 2:
            b0 = buf[off]
            b1 = buf[off + 1]
            if b1 & 0x80:
                fail("a masked frame from the server")
            ln = b1
            h = 2
            if ln == 126:
                if n - off < 4:
                    break
                ln = (buf[off + 2] << 8) | buf[off + 3]
                h = 4
            elif ln == 127:
                if n - off < 10:
                    break
                ln = int.from_bytes(buf[off + 2:off + 10], "big")
                h = 10
            end = off + h + ln
            if end > n:
                break
            if b0 == 0x82:  # FIN + binary
                if verify and buf[off + h:end] != payload:
                    fail("an echo differs from the message sent")
                done += 1
            elif b0 == 0x88:
                code = int.from_bytes(buf[off + h:off + h + 2], "big") if ln >= 2 else None
                fail(f"the server closed the connection (close frame, code {code})")
            elif b0 not in (0x89, 0x8A):  # pings and pongs are not expected; ignored
                fail(f"unexpected frame: first byte {b0:#04x}")
            off = end
        if off:
            del buf[:off]
        return done

    def pump(self, timeout):
        events = self.ep.poll(timeout)
        if not events:
            return False
        EPOLLIN, EPOLLOUT = select.EPOLLIN, select.EPOLLOUT
        for fd, ev in events:
            c = self.by_fd[fd]
            if ev & EPOLLOUT:
                self.flush(c)
            if ev & (EPOLLIN | select.EPOLLERR | select.EPOLLHUP):
                try:
                    data = c[0].recv(262144)
                except BlockingIOError:
                    continue
                except OSError as e:
                    fail(f"recv: {e}")
                if not data:
                    fail("the server ended a connection during the load")
                c[1] += data
                done = self.consume(c)
                if done:
                    self.received += done
                    if self.sending:
                        self.sent += done
                        frame = self.frame
                        for _ in range(done):
                            self.send(c, frame)
        return True

    def advance(self, deadline=None, count=None):
        while True:
            if deadline is not None and time.monotonic() >= deadline:
                return
            if count is not None and self.received >= count:
                return
            if not self.pump(self.a.timeout):
                fail(f"no echo for {self.a.timeout} s")

    def stop(self):
        """Waits for the echoes in flight, then closes every connection with a close handshake."""
        self.sending = False
        deadline = time.monotonic() + self.a.timeout
        while self.received < self.sent and time.monotonic() < deadline:
            self.pump(0.2)
        if self.received < self.sent:
            fail(f"{self.sent - self.received} echoes still missing {self.a.timeout} s after the stop")
        close_frame = client_frame(0x8, (1000).to_bytes(2, "big"), self.mask)
        for c in self.conns:
            c[0].setblocking(True)
            c[0].settimeout(2.0)
            try:
                c[0].sendall(bytes(c[2]) + close_frame)
                while c[0].recv(65536):
                    pass
            except OSError:
                pass
            c[0].close()


class CEngine:
    """The closed loop in bench/websocket-load.c (--c-binary), a process of its own on the same core
    as this one (which only sleeps); its echo count is read from a shared 64-byte file."""

    def __init__(self, a, url, path):
        if not a.c_binary:
            fail("--engine c needs --c-binary PATH")
        self.a, self.url, self.path = a, url, path

    def start(self):
        import mmap
        import subprocess
        import tempfile
        a = self.a
        import atexit
        fd, self.counter_path = tempfile.mkstemp(prefix="ws-load-counter.")
        os.close(fd)
        atexit.register(self.cleanup)  # fail() exits: never leave the C client behind
        self.proc = subprocess.Popen(
            [a.c_binary, self.url.hostname, str(self.url.port), self.path, str(a.conns), str(a.size),
             str(a.window), self.counter_path], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + a.timeout + a.conns * 0.1
        while True:
            if self.proc.poll() is not None:
                self.died()
            if os.path.getsize(self.counter_path) >= 64:
                if not hasattr(self, "mem"):
                    with open(self.counter_path, "r+b") as f:
                        self.mem = mmap.mmap(f.fileno(), 64)
                if int.from_bytes(self.mem[0:8], sys.byteorder) >= 1:
                    return
            if time.monotonic() > deadline:
                fail("the C client did not finish its handshakes in time")
            time.sleep(0.01)

    def cleanup(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        if os.path.exists(self.counter_path):
            os.unlink(self.counter_path)

    def died(self):
        err = self.proc.stderr.read().decode(errors="replace").strip()
        fail(f"C client: {err or f'exit status {self.proc.returncode}'}")

    def count(self):
        return int.from_bytes(self.mem[8:16], sys.byteorder)

    def client_cpu(self):
        return proc_ticks([self.proc.pid]) / TICK + self_cpu()

    def advance(self, deadline=None, count=None):
        while True:
            if self.proc.poll() is not None:
                self.died()
            if deadline is not None:
                left = deadline - time.monotonic()
                if left <= 0:
                    return
                time.sleep(min(left, 0.05))
            elif count is not None:
                if self.count() >= count:
                    return
                time.sleep(0.002)

    def stop(self):
        import signal
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=self.a.timeout + self.a.conns * 2.5)
        except Exception:
            self.proc.kill()
            self.proc.wait()
        if self.proc.returncode != 0:
            self.died()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--url", required=True)
    ap.add_argument("--engine", choices=("python", "c"), default="python")
    ap.add_argument("--c-binary", default="", help="bench/websocket-load.c, compiled (for --engine c)")
    ap.add_argument("--conns", type=int, default=50)
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--window", type=int, default=1, help="messages in flight per connection")
    ap.add_argument("--warmup", type=float, default=2.0)
    ap.add_argument("--duration", type=float, default=10.0)
    ap.add_argument("--messages", type=int, default=0,
                    help="instead of --duration: the window ends after conns × MESSAGES echoes")
    ap.add_argument("--proxy-pids", default="")
    ap.add_argument("--upstream-pids", default="")
    ap.add_argument("--quiet-max-pct", type=float, default=15.0)
    ap.add_argument("--quiet-wait", type=float, default=60.0)
    ap.add_argument("--noisy-pct", type=float, default=20.0)
    ap.add_argument("--retries", type=int, default=1)
    ap.add_argument("--no-verify", action="store_true", help="do not compare echoed payloads")
    ap.add_argument("--timeout", type=float, default=10.0, help="handshake, and silence during the load")
    ap.add_argument("--label", action="append", default=[], metavar="KEY=VALUE",
                    help="added to the JSON line (a value of digits as a number) and to the summary on stderr")
    a = ap.parse_args()

    url = urlsplit(a.url)
    if url.scheme != "ws" or not url.port:
        fail("--url must be ws://host:port/path")
    path = (url.path or "/") + (f"?{url.query}" if url.query else "")
    proxy_pids = [int(p) for p in a.proxy_pids.split(",") if p]
    upstream_pids = [int(p) for p in a.upstream_pids.split(",") if p]
    cores = os.cpu_count() or 1

    quiet_pct = wait_quiet(a.quiet_max_pct, a.quiet_wait) if a.quiet_wait > 0 else None

    engine = (CEngine(a, url, path) if a.engine == "c" else PythonEngine(a, url, path))
    engine.start()
    engine.advance(deadline=time.monotonic() + a.warmup)

    def snapshot():
        return (time.monotonic(), engine.count(), proc_ticks(proxy_pids), proc_ticks(upstream_pids),
                engine.client_cpu(), machine_busy_ticks())

    windows = []
    for attempt in range(a.retries + 1):
        s0 = snapshot()
        if a.messages:
            engine.advance(count=s0[1] + a.conns * a.messages)
        else:
            engine.advance(deadline=s0[0] + a.duration)
        s1 = snapshot()
        seconds = s1[0] - s0[0]
        messages = s1[1] - s0[1]
        if messages <= 0:
            fail("no echo in the measurement window")
        proxy_s = (s1[2] - s0[2]) / TICK
        upstream_s = (s1[3] - s0[3]) / TICK
        client_s = s1[4] - s0[4]
        machine_s = (s1[5] - s0[5]) / TICK
        other_s = max(0.0, machine_s - proxy_s - upstream_s - client_s)
        w = {
            "messages": messages,
            "seconds": round(seconds, 3),
            "msgs_per_s": round(messages / seconds, 1),
            "proxy_cpu_us_per_msg": round(proxy_s * 1e6 / messages, 3) if proxy_pids else None,
            "proxy_busy_pct": round(proxy_s / seconds * 100, 1) if proxy_pids else None,
            "upstream_cpu_us_per_msg": round(upstream_s * 1e6 / messages, 3) if upstream_pids else None,
            "client_cpu_us_per_msg": round(client_s * 1e6 / messages, 3),
            "load_busy_pct": round((client_s + upstream_s) / seconds * 100, 1),
            "other_pct": round(other_s / seconds * 100, 1),
            "machine_busy_pct": round(machine_s / seconds / cores * 100, 1),
        }
        windows.append(w)
        if w["other_pct"] <= a.noisy_pct:
            break
    best = min(windows, key=lambda w: w["other_pct"])
    engine.stop()

    best["windows"] = len(windows)
    best["engine"] = a.engine
    best["conns"] = a.conns
    best["size"] = a.size
    best["window"] = a.window
    if quiet_pct is not None:
        best["quiet_before_pct"] = round(quiet_pct, 1)
    labels = {}
    for label in a.label:
        key, _, value = label.partition("=")
        labels[key] = int(value) if value.isdigit() else value
    best.update(labels)
    proxy = ("" if best["proxy_cpu_us_per_msg"] is None else
             f"  proxy {best['proxy_cpu_us_per_msg']:.2f} µs/msg, {best['proxy_busy_pct']:.0f} % busy")
    print(" ".join(f"{k} {v}" for k, v in labels.items()) + f"  {a.size} B: {best['msgs_per_s']:.0f} msg/s{proxy}"
          f"  load core {best['load_busy_pct']:.0f} %  other {best['other_pct']:.0f} %"
          + (f"  ({len(windows)} windows)" if len(windows) > 1 else ""), file=sys.stderr, flush=True)
    print(json.dumps(best), flush=True)


if __name__ == "__main__":
    main()
