"""The seed's issuer, as the anchor of bench/issuer.sh: FastAPI + uvicorn (uvloop, httptools),
PyJWT with `cryptography` (ES256 access tokens; refresh tokens HS256 with `aud` the issuer, as
DESIGN.md now has them), pwdlib[argon2] with OWASP's parameters, sqlite3 in WAL mode with
synchronous=NORMAL (Gatehouse's durability), DESIGN.md's endpoints, claims and queries.

Differences from Gatehouse, each in the seed's favour: no login slots or per-address counting at
login, and no revocation check at /users/me (Gatehouse checks its in-memory revocation list).

Only the operations the benchmark compares are here: register, login, refresh (rotation with reuse
detection) and /users/me. Run: SEED_DB=PATH uvicorn app:app --loop uvloop --http httptools
"""

import hashlib
import hmac
import os
import secrets
import sqlite3
import threading
import time

import jwt
from cryptography.hazmat.primitives.asymmetric import ec
from fastapi import FastAPI, Header, Request
from fastapi.responses import JSONResponse, Response
from pwdlib import PasswordHash
from pwdlib.hashers.argon2 import Argon2Hasher

ISSUER = os.environ.get("SEED_ISSUER", "http://seed.test")
AUDIENCE = "api"
ACCESS_TTL = 30 * 60
REFRESH_TTL = 7 * 86400
REUSE_INTERVAL = 10
LOGIN_FAILURES, LOGIN_WINDOW = 10, 15 * 60
DATABASE = os.environ.get("SEED_DB", "seed.db")

KEY = ec.generate_private_key(ec.SECP256R1())
PUBLIC_KEY = KEY.public_key()
KID = "seed-1"
ROTATION_SECRET = secrets.token_bytes(32)
REFRESH_SECRET = secrets.token_bytes(32)
HASHER = PasswordHash((Argon2Hasher(time_cost=2, memory_cost=19456, parallelism=1),))
DECOY = HASHER.hash(secrets.token_urlsafe(16))

SCHEMA = """
CREATE TABLE IF NOT EXISTS users (id INTEGER PRIMARY KEY, email TEXT UNIQUE NOT NULL, name TEXT,
  password_hash TEXT NOT NULL, created_at INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS roles (name TEXT PRIMARY KEY, rank INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS role_permissions (role TEXT NOT NULL, permission TEXT NOT NULL, PRIMARY KEY (role, permission));
CREATE TABLE IF NOT EXISTS user_roles (user_id INTEGER NOT NULL, role TEXT NOT NULL, PRIMARY KEY (user_id, role));
CREATE TABLE IF NOT EXISTS sessions (id TEXT PRIMARY KEY, user_id INTEGER NOT NULL, created_at INTEGER NOT NULL,
  expires_at INTEGER NOT NULL, revoked_at INTEGER, refresh_hash TEXT NOT NULL, previous_refresh_hash TEXT, rotated_at INTEGER);
CREATE TABLE IF NOT EXISTS login_failures (key TEXT NOT NULL, at INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS login_failures_key ON login_failures (key, at);
INSERT OR IGNORE INTO roles VALUES ('viewer', 1), ('editor', 2), ('admin', 3);
INSERT OR IGNORE INTO role_permissions VALUES ('viewer', 'profile:read'), ('viewer', 'content:read'),
  ('editor', 'profile:read'), ('editor', 'content:read'), ('editor', 'content:write'),
  ('admin', 'profile:read'), ('admin', 'content:read'), ('admin', 'content:write'),
  ('admin', 'users:read'), ('admin', 'users:write'), ('admin', 'roles:write');
"""

local = threading.local()


def db() -> sqlite3.Connection:
    connection = getattr(local, "connection", None)
    if connection is None:
        connection = sqlite3.connect(DATABASE, isolation_level=None, timeout=30)
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("PRAGMA synchronous=NORMAL")
        local.connection = connection
    return connection


with sqlite3.connect(DATABASE) as setup:
    setup.executescript(SCHEMA)

app = FastAPI()


def error(status: int, code: str, description: str, headers=None) -> JSONResponse:
    return JSONResponse({"error": code, "error_description": description}, status_code=status, headers=headers)


def now_ms() -> int:
    return int(time.time() * 1000)


def sha256_hex(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def user_record(connection: sqlite3.Connection, user_id: int):
    row = connection.execute("SELECT id, email, name, created_at FROM users WHERE id = ?", (user_id,)).fetchone()
    if row is None:
        return None
    roles = [r[0] for r in connection.execute(
        "SELECT r.name FROM user_roles ur JOIN roles r ON r.name = ur.role WHERE ur.user_id = ? ORDER BY r.rank DESC, r.name",
        (user_id,))]
    permissions = [p[0] for p in connection.execute(
        "SELECT DISTINCT rp.permission FROM user_roles ur JOIN role_permissions rp ON rp.role = ur.role "
        "WHERE ur.user_id = ? ORDER BY rp.permission", (user_id,))]
    return {"id": row[0], "email": row[1], "name": row[2], "created_at": row[3], "roles": roles, "permissions": permissions}


def next_refresh_id(token_id: str) -> str:
    return hmac.new(ROTATION_SECRET, ("gatehouse-rotate:" + token_id).encode(), hashlib.sha256).digest()[:16].hex()


def mint(user: dict, session_id: str, refresh_id: str) -> dict:
    now = int(time.time())
    access = {"iss": ISSUER, "sub": str(user["id"]), "aud": AUDIENCE, "exp": now + ACCESS_TTL, "iat": now,
              "jti": secrets.token_urlsafe(16), "sid": session_id, "user_id": user["id"],
              "role": user["roles"][0] if user["roles"] else None, "roles": user["roles"], "scope": " ".join(user["permissions"])}
    refresh = {"iss": ISSUER, "sub": str(user["id"]), "aud": ISSUER, "exp": now + REFRESH_TTL, "iat": now,
               "jti": refresh_id, "sid": session_id}
    return {
        "access_token": jwt.encode(access, KEY, algorithm="ES256", headers={"kid": KID, "typ": "at+jwt"}),
        "refresh_token": jwt.encode(refresh, REFRESH_SECRET, algorithm="HS256", headers={"typ": "refresh+jwt"}),
        "token_type": "Bearer", "expires_in": ACCESS_TTL,
        "user": {k: user[k] for k in ("id", "email", "name", "roles", "permissions")},
    }


def start_session(connection: sqlite3.Connection, user: dict) -> dict:
    session_id, refresh_id = secrets.token_urlsafe(16), secrets.token_urlsafe(16)
    now = now_ms()
    connection.execute("INSERT INTO sessions (id, user_id, created_at, expires_at, refresh_hash) VALUES (?, ?, ?, ?, ?)",
                       (session_id, user["id"], now, now + REFRESH_TTL * 1000, sha256_hex(refresh_id)))
    return mint(user, session_id, refresh_id)


def verify(token: str, typ: str) -> dict:
    if jwt.get_unverified_header(token).get("typ") != typ:
        raise jwt.InvalidTokenError("bad_typ")
    if typ == "refresh+jwt":
        return jwt.decode(token, REFRESH_SECRET, algorithms=["HS256"], audience=ISSUER, issuer=ISSUER, leeway=30)
    return jwt.decode(token, PUBLIC_KEY, algorithms=["ES256"], audience=AUDIENCE, issuer=ISSUER, leeway=30)


@app.post("/auth/register")
def register(body: dict):
    email, password = str(body.get("email", "")).strip().lower(), str(body.get("password", ""))
    if "@" not in email:
        return error(422, "invalid_email", "not an email address")
    if not 8 <= len(password.encode()) <= 1024:
        return error(422, "weak_password", "8 to 1024 bytes")
    password_hash = HASHER.hash(password)
    connection = db()
    try:
        connection.execute("BEGIN IMMEDIATE")
        user_id = connection.execute("INSERT INTO users (email, name, password_hash, created_at) VALUES (?, ?, ?, ?)",
                                     (email, body.get("name"), password_hash, now_ms())).lastrowid
        connection.execute("INSERT INTO user_roles (user_id, role) VALUES (?, 'viewer')", (user_id,))
        connection.execute("COMMIT")
    except sqlite3.IntegrityError:
        connection.execute("ROLLBACK")
        return error(409, "email_taken", "the email is taken")
    return JSONResponse(start_session(connection, user_record(connection, user_id)), status_code=201)


@app.post("/auth/login")
def login(body: dict):
    email, password = str(body.get("email", "")).strip().lower(), str(body.get("password", ""))
    connection = db()
    key = "email:" + email
    failures = connection.execute("SELECT COUNT(*) FROM login_failures WHERE key = ? AND at > ?",
                                  (key, now_ms() - LOGIN_WINDOW * 1000)).fetchone()[0]
    if failures >= LOGIN_FAILURES:
        return error(429, "rate_limited", "too many failed logins", {"Retry-After": "60"})
    row = connection.execute("SELECT id, password_hash FROM users WHERE email = ?", (email,)).fetchone()
    if not HASHER.verify(password, row[1] if row else DECOY) or row is None:
        connection.execute("INSERT INTO login_failures (key, at) VALUES (?, ?)", (key, now_ms()))
        return error(401, "invalid_credentials", "wrong email or password")
    connection.execute("DELETE FROM login_failures WHERE key = ?", (key,))
    return start_session(connection, user_record(connection, row[0]))


@app.post("/auth/refresh")
def refresh(body: dict):
    try:
        claims = verify(str(body.get("refresh_token", "")), "refresh+jwt")
    except jwt.InvalidTokenError as refused:
        return error(401, "invalid_grant", f"the refresh token is invalid: {refused}")
    presented, following = sha256_hex(claims["jti"]), next_refresh_id(claims["jti"])
    connection = db()
    connection.execute("BEGIN IMMEDIATE")
    row = connection.execute("SELECT user_id, expires_at, revoked_at, refresh_hash, previous_refresh_hash, rotated_at "
                             "FROM sessions WHERE id = ?", (claims["sid"],)).fetchone()
    now = now_ms()
    if row is None or str(row[0]) != claims["sub"] or row[1] <= now or row[2] is not None:
        connection.execute("ROLLBACK")
        return error(401, "invalid_grant", "the session is revoked or expired")
    if row[3] == presented:
        connection.execute("UPDATE sessions SET previous_refresh_hash = refresh_hash, refresh_hash = ?, rotated_at = ?, "
                           "expires_at = ? WHERE id = ?", (sha256_hex(following), now, now + REFRESH_TTL * 1000, claims["sid"]))
    elif not (row[4] == presented and row[3] == sha256_hex(following) and now - row[5] <= REUSE_INTERVAL * 1000):
        connection.execute("UPDATE sessions SET revoked_at = ? WHERE id = ?", (now, claims["sid"]))
        connection.execute("COMMIT")
        return error(401, "invalid_grant", "the refresh token was already used; the session is revoked")
    connection.execute("COMMIT")
    return mint(user_record(connection, row[0]), claims["sid"], following)


@app.get("/users/me")
def me(authorization: str = Header(default="")):
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token:
        return error(401, "invalid_token", "no bearer token", {"WWW-Authenticate": "Bearer"})
    try:
        claims = verify(token, "at+jwt")
    except jwt.InvalidTokenError as refused:
        return error(401, "invalid_token", str(refused))
    user = user_record(db(), claims["user_id"])
    return {k: user[k] for k in ("id", "email", "name", "roles", "permissions")} | {
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(user["created_at"] / 1000))}
