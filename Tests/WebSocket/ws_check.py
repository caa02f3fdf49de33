#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Checks that a WebSocket endpoint echoes messages: a real client (Python's `websockets`, PyPI).

Usage:
    python3 Tests/WebSocket/ws_check.py URL [options]

    URL                     ws://host:port/path (wss:// too); any query string is sent as is
    -H, --header 'Name: v'  an extra handshake header, repeatable (Authorization, Cookie, ...)
    --origin ORIGIN         the Origin header of the handshake (none by default)
    --checks LIST           comma-separated, in order; default: text,binary,large,fragmented,ping,close
                              text        a text message comes back equal
                              binary      a binary message (all 256 byte values) comes back equal
                              large       a 1 MiB binary message comes back equal (--large-bytes N)
                              fragmented  a text message sent in three frames comes back as one, equal
                              ping        a ping gets its pong with the same payload
                              close       a close 1000 is answered with a close, code 1000
                              stall       (not in the default list; ws:// only) on a connection of
                                          its own: 1 MiB messages sent and nothing read, until a
                                          send blocks for --stall-seconds (default 3): passes when
                                          that happens before --stall-mib MiB (default 256), i.e.
                                          the server stopped reading instead of buffering echoes
    --wait-close SECONDS    instead of closing: wait up to SECONDS for the server to close and
                            report its close code (e.g. 1008 when a gateway ends the tunnel)
    --timeout SECONDS       for the handshake and for each answer (default 10)

Prints one JSON object on standard output:
    {"url": ..., "ok": true|false,
     "handshake": {"status": 101} (or the refusal's status, e.g. 401, with "error"),
     "checks": {"text": {"ok": true, "ms": 1.2}, "large": {"ok": true, "bytes": 1048576, "ms": ...},
                "ping": {"ok": true, ...}, "close": {"ok": true, "code": 1000},
                "stall": {"ok": true, "sent_mib": 11}, ...},
     "server_close": {"code": 1008, "reason": "...", "after_s": 2.01}   (with --wait-close only)
     "error": "..." (only when something went wrong)}
Exit status: 0 when every check passed (with --wait-close: and the server closed in time),
1 when a check failed or the handshake was refused, 2 on a usage error or without `websockets`.
"""

import argparse
import base64
import json
import os
import socket
import struct
import sys
import time
from urllib.parse import urlsplit

try:
    from websockets.exceptions import ConnectionClosed, InvalidStatus
    from websockets.sync.client import connect
except ImportError:
    print(json.dumps({"ok": False, "error": "python3 websockets missing: python3 -m pip install websockets"}))
    sys.exit(2)

DEFAULT_CHECKS = ["text", "binary", "large", "fragmented", "ping", "close"]
ALL_CHECKS = DEFAULT_CHECKS + ["stall"]


def parse_arguments():
    parser = argparse.ArgumentParser(description="WebSocket echo check", add_help=True)
    parser.add_argument("url")
    parser.add_argument("-H", "--header", action="append", default=[])
    parser.add_argument("--origin")
    parser.add_argument("--checks", default=",".join(DEFAULT_CHECKS))
    parser.add_argument("--large-bytes", type=int, default=1 << 20)
    parser.add_argument("--wait-close", type=float)
    parser.add_argument("--stall-seconds", type=float, default=3)
    parser.add_argument("--stall-mib", type=int, default=256)
    parser.add_argument("--timeout", type=float, default=10)
    arguments = parser.parse_args()
    checks = [c for c in arguments.checks.split(",") if c]
    unknown = [c for c in checks if c not in ALL_CHECKS]
    if unknown:
        parser.error("unknown checks: " + ",".join(unknown))
    headers = []
    for header in arguments.header:
        name, colon, value = header.partition(":")
        if not colon or not name.strip():
            parser.error("--header wants 'Name: value', got %r" % header)
        headers.append((name.strip(), value.strip()))
    return arguments, checks, headers


def echo(ws, message, timeout):
    ws.send(message)
    return ws.recv(timeout=timeout)


def run_check(ws, name, arguments):
    timeout = arguments.timeout
    if name == "text":
        message = "gatehouse echo: h\u00e9llo \u2603 \U0001F600"
        answer = echo(ws, message, timeout)
        return {"ok": answer == message}
    if name == "binary":
        message = bytes(range(256))
        answer = echo(ws, message, timeout)
        return {"ok": answer == message}
    if name == "large":
        message = os.urandom(arguments.large_bytes)
        answer = echo(ws, message, timeout)
        return {"ok": answer == message, "bytes": len(message), "received": len(answer)}
    if name == "fragmented":
        parts = ["frag-one|", "frag-two \u00e9|", "frag-three"]
        ws.send(parts)  # an iterable is sent as one message in several frames
        answer = ws.recv(timeout=timeout)
        return {"ok": answer == "".join(parts), "frames": len(parts)}
    if name == "ping":
        payload = b"gatehouse-ping"
        ponged = ws.ping(payload)
        return {"ok": ponged.wait(timeout)}
    if name == "close":
        ws.close(code=1000, reason="done")
        return {"ok": ws.close_code == 1000, "code": ws.close_code}
    raise ValueError(name)


def stall(arguments, headers):
    """A raw client that sends 1 MiB binary messages and never reads (the server's echoes pile up)."""
    url = urlsplit(arguments.url)
    if url.scheme != "ws":
        raise ValueError("stall speaks ws:// only")
    connection = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    connection.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
    connection.settimeout(arguments.timeout)
    connection.connect((url.hostname, url.port or 80))
    try:
        target = (url.path or "/") + ("?" + url.query if url.query else "")
        lines = ["GET %s HTTP/1.1" % target, "Host: %s" % url.netloc, "Upgrade: websocket", "Connection: Upgrade",
                 "Sec-WebSocket-Version: 13", "Sec-WebSocket-Key: " + base64.b64encode(os.urandom(16)).decode()]
        if arguments.origin:
            lines.append("Origin: " + arguments.origin)
        lines += ["%s: %s" % header for header in headers]
        connection.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        answer = b""
        while b"\r\n\r\n" not in answer:
            chunk = connection.recv(1)  # byte by byte: nothing of the first echo is read
            if not chunk:
                return {"ok": False, "error": "closed during the handshake"}
            answer += chunk
        status = answer.split(b" ", 2)[1].decode()
        if status != "101":
            return {"ok": False, "error": "handshake answered %s" % status}
        payload = os.urandom(1 << 20)
        frame = bytes([0x82, 0x80 | 127]) + struct.pack(">Q", len(payload)) + b"\0\0\0\0" + payload  # zero mask
        connection.settimeout(arguments.stall_seconds)
        sent = 0
        try:
            while sent < arguments.stall_mib:
                connection.sendall(frame)
                sent += 1
        except socket.timeout:
            return {"ok": True, "sent_mib": sent}
        except OSError as error:
            return {"ok": False, "sent_mib": sent, "error": "%s: %s" % (type(error).__name__, error)}
        return {"ok": False, "sent_mib": sent, "error": "the server read %d MiB without its echoes being read" % sent}
    finally:
        connection.close()


def main():
    arguments, checks, headers = parse_arguments()
    result = {"url": arguments.url, "ok": False, "checks": {}}
    if "stall" in checks:
        checks.remove("stall")
        started = time.monotonic()
        try:
            outcome = stall(arguments, headers)
        except Exception as error:
            outcome = {"ok": False, "error": "%s: %s" % (type(error).__name__, error)}
        outcome["ms"] = round((time.monotonic() - started) * 1000, 1)
        result["checks"]["stall"] = outcome
        if not outcome["ok"] or not checks:
            result["ok"] = outcome["ok"]
            print(json.dumps(result))
            return 0 if outcome["ok"] else 1
    options = dict(
        additional_headers=headers,
        origin=arguments.origin,
        compression=None,
        open_timeout=arguments.timeout,
        close_timeout=arguments.timeout,
        ping_interval=None,
        max_size=None,
    )
    try:
        try:
            ws = connect(arguments.url, proxy=None, **options)
        except TypeError:  # websockets before 15 has no proxy support (and no proxy option)
            ws = connect(arguments.url, **options)
    except InvalidStatus as error:
        result["handshake"] = {"status": error.response.status_code}
        result["error"] = "handshake refused: %d" % error.response.status_code
        print(json.dumps(result))
        return 1
    except Exception as error:  # connection refused, bad 101, timeout, ...
        result["error"] = "handshake failed: %s: %s" % (type(error).__name__, error)
        print(json.dumps(result))
        return 1
    result["handshake"] = {"status": 101}
    ok = True
    with ws:
        for name in checks:
            started = time.monotonic()
            try:
                outcome = run_check(ws, name, arguments)
            except ConnectionClosed as error:
                code = error.rcvd.code if error.rcvd else None
                outcome = {"ok": False, "error": "connection closed (server close code %s)" % code}
            except Exception as error:
                outcome = {"ok": False, "error": "%s: %s" % (type(error).__name__, error)}
            outcome["ms"] = round((time.monotonic() - started) * 1000, 1)
            result["checks"][name] = outcome
            ok = ok and outcome["ok"]
            if not outcome["ok"]:
                break
        if arguments.wait_close is not None and ok and "close" not in checks:
            started = time.monotonic()
            try:
                while True:
                    ws.recv(timeout=max(0.0, arguments.wait_close - (time.monotonic() - started)))
            except ConnectionClosed as error:
                result["server_close"] = {
                    "code": error.rcvd.code if error.rcvd else None,
                    "reason": error.rcvd.reason if error.rcvd else None,
                    "after_s": round(time.monotonic() - started, 3),
                }
            except TimeoutError:
                result["server_close"] = None
                result["error"] = "the server did not close within %s s" % arguments.wait_close
                ok = False
    result["ok"] = ok
    print(json.dumps(result))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
