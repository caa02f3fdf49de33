#!/usr/bin/env python3
"""A stand-in for an issuer's GET /auth/revocations: N revoked sessions, served in pages of
10 000 like the issuer, for bench/revocation.sh. Usage: feed.py PORT N SECRET"""
import http.server
import json
import sys
import time
import urllib.parse

PORT, N, SECRET = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
EXP = int(time.time()) + 3 * 3600
PAGE = 10_000


class Feed(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        url = urllib.parse.urlparse(self.path)
        if self.headers.get("Authorization") != "Bearer " + SECRET:
            self.send_error(401)
            return
        since = int(urllib.parse.parse_qs(url.query).get("since", ["0"])[0])
        upto = min(N, since + PAGE)
        body = json.dumps({
            "cursor": max(since, upto),
            # Session ids shaped like the issuer's (22 base64url characters).
            "revocations": [{"sid": f"revoked-session-{i:07d}", "exp": EXP} for i in range(since, upto)],
            "more": upto < N,
        }).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


http.server.ThreadingHTTPServer(("127.0.0.1", PORT), Feed).serve_forever()
