#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""WebSocket load for bench/websocket.sh: K connections, each keeping W binary messages of S bytes in
flight and sending the next one as each echo comes back; the proxy's CPU over a timed window.

    websocket-load.py --url ws://127.0.0.1:PORT/ --conns 50 --size 128 [--window 1]
                      [--warmup 2] [--duration 10 | --messages M]
                      [--proxy-pids P,...] [--upstream-pids P,...]
                      [--quiet-max-pct 15 --quiet-wait 60] [--noisy-pct 20 --retries 1]

A raw RFC 6455 client on epoll, not Python's `websockets`: that library spends tens of µs of CPU
per message, so the load core would cap the rate far below what a proxy can carry. Here each
connection's frame is built (and masked, with one random key) once; every echo is parsed (frame
header) and its payload compared with what was sent. The handshake checks `Sec-WebSocket-Accept`.
Any surprise (another status, a close frame, a text or fragmented frame, a masked server frame, a
payload that differs, a connection that ends) is an error: exit status 1.

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


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--url", required=True)
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

    payload = os.urandom(a.size)
    mask = os.urandom(4)
    frame = client_frame(0x2, payload, mask)
    verify = not a.no_verify

    conns = []  # per connection: [sock, recv buffer, pending output]
    for _ in range(a.conns):
        sock, rest = handshake(url.hostname, url.port, path, a.timeout)
        conns.append([sock, rest, bytearray()])
    by_fd = {c[0].fileno(): c for c in conns}

    ep = select.epoll()
    EPOLLIN, EPOLLOUT = select.EPOLLIN, select.EPOLLOUT
    for fd in by_fd:
        ep.register(fd, EPOLLIN)

    received = 0
    sent = 0
    sending = True

    def send(c, data):
        if c[2]:
            c[2] += data
            return
        try:
            n = c[0].send(data)
        except BlockingIOError:
            n = 0
        if n < len(data):
            c[2] += data[n:]
            ep.modify(c[0].fileno(), EPOLLIN | EPOLLOUT)

    def flush(c):
        try:
            n = c[0].send(c[2])
        except BlockingIOError:
            return
        del c[2][:n]
        if not c[2]:
            ep.modify(c[0].fileno(), EPOLLIN)

    def consume(c):
        """Parses the server frames in c's buffer; returns how many echoes it completed."""
        buf = c[1]
        n = len(buf)
        off = 0
        done = 0
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
            elif b0 == 0x89:  # ping: answer it (not counted)
                send(c, client_frame(0xA, bytes(buf[off + h:end]), mask))
            elif b0 == 0x8A:  # pong
                pass
            elif b0 == 0x88:
                code = int.from_bytes(buf[off + h:off + h + 2], "big") if ln >= 2 else None
                fail(f"the server closed the connection (close frame, code {code})")
            else:
                fail(f"unexpected frame: first byte {b0:#04x}")
            off = end
        if off:
            del buf[:off]
        return done

    def pump(timeout):
        nonlocal received, sent
        events = ep.poll(timeout)
        if not events:
            return False
        for fd, ev in events:
            c = by_fd[fd]
            if ev & EPOLLOUT:
                flush(c)
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
                done = consume(c)
                if done:
                    received += done
                    if sending:
                        sent += done
                        for _ in range(done):
                            send(c, frame)
        return True

    def snapshot():
        return (time.monotonic(), received, proc_ticks(proxy_pids), proc_ticks(upstream_pids),
                self_cpu(), machine_busy_ticks())

    # Start: W messages in flight on every connection (leftover bytes after a 101 are parsed too).
    for c in conns:
        if c[1]:
            consume(c)  # nothing is expected before the first message; consume() fails on surprises
        for _ in range(a.window):
            send(c, frame)
    sent = a.conns * a.window

    def run_until(deadline=None, count=None):
        while True:
            if deadline is not None and time.monotonic() >= deadline:
                return
            if count is not None and received >= count:
                return
            if not pump(a.timeout) and (deadline is None or time.monotonic() < deadline):
                fail(f"no echo for {a.timeout} s")

    run_until(deadline=time.monotonic() + a.warmup)

    windows = []
    for attempt in range(a.retries + 1):
        s0 = snapshot()
        if a.messages:
            run_until(count=received + a.conns * a.messages)
        else:
            run_until(deadline=s0[0] + a.duration)
        s1 = snapshot()
        seconds = s1[0] - s0[0]
        messages = s1[1] - s0[1]
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

    # Drain what is in flight, then close every connection with a close handshake.
    sending = False
    drain_deadline = time.monotonic() + a.timeout
    while received < sent and time.monotonic() < drain_deadline:
        pump(0.2)
    close_frame = client_frame(0x8, (1000).to_bytes(2, "big"), mask)
    for c in conns:
        c[0].setblocking(True)
        c[0].settimeout(2.0)
        try:
            c[0].sendall(bytes(c[2]) + close_frame)
            while c[0].recv(65536):
                pass
        except OSError:
            pass
        c[0].close()

    best["windows"] = len(windows)
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
