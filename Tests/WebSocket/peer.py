#!/usr/bin/env python3
"""WebSocket peers for Gatehouse's tunnel tests, on Python's `websockets` (a real RFC 6455 stack).

    peer.py upstream
        Serves on 127.0.0.1 (a free port, printed as the first line: `port N`). Each connection is
        first sent one text message, JSON {"path", "headers": {lower-case name: [values]}} — what
        the upstream saw of the handshake — then every message is echoed as it came (text or
        binary). Runs until killed.

    peer.py client URL SCENARIO [--header NAME:VALUE]...
        Connects (the headers go on the handshake) and runs SCENARIO; prints one JSON line:
        {"status": 101 or the refusal's status, "handshake": the upstream's report, ...}.
        Scenarios:
          handshake  connect, read the report, close normally.
          echo       text, binary, 1 MiB, a fragmented message and a ping, each checked to come back
                     intact: "echoed": [names of those that did], "pong": bool.
          hold       after the report, wait (at most 30 s) for the connection to close: "close_code",
                     "close_reason", "seconds" (from the report to the close).
          stall      send 64 MiB to be echoed without reading any of it (it stops when the sends
                     block for 2 s), print {"stalling": true}, wait 3 s, then close, reading the rest.
          pipelined  raw socket: the handshake and a masked text frame "early" in one write; passes
                     when the upstream echoes "early" (within 3 s): "echoed_early": bool.
          many N     N tunnels at once, each sending one message and reading it back: "ok": how
                     many did.
"""
import asyncio
import json
import os
import sys
import time

import websockets


async def upstream():
    async def handler(connection):
        request = connection.request
        headers = {}
        for name, value in request.headers.raw_items():
            headers.setdefault(name.lower(), []).append(value)
        await connection.send(json.dumps({"path": request.path, "headers": headers}))
        async for message in connection:
            await connection.send(message)

    async with websockets.serve(handler, "127.0.0.1", 0, max_size=None, ping_interval=None) as server:
        port = server.sockets[0].getsockname()[1]
        print(f"port {port}", flush=True)
        await asyncio.Future()


async def many(url, count, headers):
    async def one(index):
        async with websockets.connect(url, additional_headers=headers, ping_interval=None, open_timeout=20, compression=None) as connection:
            await connection.recv()
            message = f"tunnel {index}"
            await connection.send(message)
            return await connection.recv() == message

    results = await asyncio.gather(*(one(index) for index in range(count)), return_exceptions=True)
    return {"ok": sum(1 for result in results if result is True), "errors": sorted({repr(r)[:120] for r in results if r is not True})[:5]}


def pipelined(url, headers):
    import base64, os, socket, struct
    from urllib.parse import urlsplit
    parts = urlsplit(url)
    key = base64.b64encode(os.urandom(16)).decode()
    lines = [f"GET {parts.path or '/'}{'?' + parts.query if parts.query else ''} HTTP/1.1", f"Host: {parts.netloc}",
             "Upgrade: websocket", "Connection: Upgrade", f"Sec-WebSocket-Key: {key}", "Sec-WebSocket-Version: 13"]
    lines += [f"{name}: {value}" for name, value in headers]
    payload, mask = b"early", os.urandom(4)
    frame = bytes([0x81, 0x80 | len(payload)]) + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    connection = socket.create_connection((parts.hostname, parts.port), timeout=3)
    connection.sendall(("\r\n".join(lines) + "\r\n\r\n").encode() + frame)
    received = b""
    try:
        while b"early" not in received.split(b"\r\n\r\n", 1)[-1]:
            more = connection.recv(65536)
            if not more:
                break
            received += more
    except socket.timeout:
        pass
    head = received.split(b"\r\n", 1)[0].decode("latin-1")
    status = int(head.split(" ")[1]) if head.startswith("HTTP/1.1 ") else 0
    return {"status": status, "echoed_early": b"early" in received.split(b"\r\n\r\n", 1)[-1]}


async def client(url, scenario, headers):
    result = {}
    try:
        connection = await websockets.connect(
            url, additional_headers=headers, max_size=None, ping_interval=None, open_timeout=10, close_timeout=5,
            # No permessage-deflate: the bytes on the wire are the messages' own (a megabyte of
            # zeros would otherwise cross the tunnel as a few hundred bytes).
            compression=None,
        )
    except websockets.exceptions.InvalidStatus as refused:
        result["status"] = refused.response.status_code
        result["body"] = refused.response.body.decode("utf-8", "replace")
        return result
    except websockets.exceptions.InvalidHandshake as broken:
        result["status"] = 0
        result["error"] = str(broken)
        return result
    result["status"] = 101
    result["handshake"] = json.loads(await connection.recv())
    if scenario == "handshake":
        await connection.close()
    elif scenario == "echo":
        echoed = []
        checks = [
            ("text", "hello, tunnel"),
            ("binary", bytes(range(256))),
            ("large", bytes(i % 251 for i in range(1 << 20))),
        ]
        for name, message in checks:
            await connection.send(message)
            if await connection.recv() == message:
                echoed.append(name)
        await connection.send(["frag", "mented ", "message"])
        if await connection.recv() == "fragmented message":
            echoed.append("fragmented")
        pong = await connection.ping(b"are you there")
        await asyncio.wait_for(pong, 10)
        result["pong"] = True
        result["echoed"] = echoed
        await connection.close()
        result["close_code"] = connection.close_code
    elif scenario in ("hold", "stall"):
        started = time.monotonic()
        if scenario == "stall":
            # Many messages echoed back while this client reads none of them.
            chunk = os.urandom(1 << 16)
            sent = 0
            for _ in range(1024):
                try:
                    await asyncio.wait_for(connection.send(chunk), 2)
                    sent += 1
                except (asyncio.TimeoutError, websockets.exceptions.ConnectionClosed):
                    break
            result["sent_kib"] = sent * 64
            print(json.dumps({"stalling": True, "sent_kib": sent * 64}), flush=True)
            await asyncio.sleep(3)
            # Then it reads what was echoed, and leaves.
            closing = asyncio.ensure_future(connection.close())
            try:
                while True:
                    await asyncio.wait_for(connection.recv(), 10)
            except (websockets.exceptions.ConnectionClosed, asyncio.TimeoutError):
                pass
            await closing
        try:
            while True:
                await asyncio.wait_for(connection.recv(), 30)
        except websockets.exceptions.ConnectionClosed:
            pass
        except asyncio.TimeoutError:
            result["timeout"] = True
        result["seconds"] = round(time.monotonic() - started, 3)
        result["close_code"] = connection.close_code
        result["close_reason"] = connection.close_reason
    return result


def main():
    if sys.argv[1] == "upstream":
        asyncio.run(upstream())
        return
    url, scenario = sys.argv[2], sys.argv[3]
    headers = []
    arguments = sys.argv[4:]
    if scenario == "many":
        count = int(arguments.pop(0))
    for index, argument in enumerate(arguments):
        if argument == "--header":
            name, _, value = arguments[index + 1].partition(":")
            headers.append((name, value))
    if scenario == "many":
        print(json.dumps(asyncio.run(many(url, count, headers))), flush=True)
        return
    if scenario == "pipelined":
        print(json.dumps(pipelined(url, headers)), flush=True)
        return
    print(json.dumps(asyncio.run(client(url, scenario, headers))), flush=True)


if __name__ == "__main__":
    main()
