#!/usr/bin/env python3
"""N HS256 access tokens shaped like Gatehouse's own (at+jwt, iss/aud/exp/iat/jti/sid/user_id/
role/roles/scope), each of its own live session, for bench/revocation.sh.
Usage: tokens.py SECRET N > tokens.txt"""
import base64
import hashlib
import hmac
import json
import sys
import time

secret, count = sys.argv[1].encode(), int(sys.argv[2])


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


header = b64(json.dumps({"alg": "HS256", "kid": "bench", "typ": "at+jwt"}, separators=(",", ":")).encode())
now = int(time.time())
for i in range(count):
    claims = {
        "iss": "bench", "sub": str(1000 + i), "aud": "bench", "exp": now + 3 * 3600, "iat": now, "jti": f"jti-{i:018d}",
        "sid": f"live-session-{i:010d}", "user_id": 1000 + i, "role": "viewer", "roles": ["viewer"],
        "scope": "profile:read content:read",
    }
    payload = b64(json.dumps(claims, separators=(",", ":")).encode())
    signature = b64(hmac.new(secret, f"{header}.{payload}".encode(), hashlib.sha256).digest())
    print(f"{header}.{payload}.{signature}")
