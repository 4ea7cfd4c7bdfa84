"""Passwords, session tokens and the users file for the annotation store.

Passwords are kept only as salted scrypt hashes; session tokens are random and only their SHA-256 is stored,
so a copy of the database lets nobody log in.

>>> h = hash_password("s3cret")
>>> verify_password("s3cret", h), verify_password("wrong", h)
(True, False)
>>> parse_users_env("alice:pw1,admin:p:w:admin")
[{'username': 'alice', 'password': 'pw1', 'role': 'rater'}, {'username': 'admin', 'password': 'p:w', 'role': 'admin'}]
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
from pathlib import Path
from typing import Any

import yaml

ROLES = ("rater", "admin")
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**14, 8, 1
TOKEN_TTL_S = 12 * 3600
MAX_FAILURES, FAILURE_WINDOW_S = 5, 300
MAX_USERNAME, MIN_PASSWORD = 64, 1


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def hash_password(password: str, *, salt: bytes | None = None) -> str:
    """`scrypt$n$r$p$salt$hash` (base64), with a fresh 16-byte salt."""
    salt = salt or secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode("utf-8"), salt=salt, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P, dklen=32)
    return f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${_b64(salt)}${_b64(digest)}"


def verify_password(password: str, stored: str) -> bool:
    """Constant-time check of a password against a stored hash (False for a malformed hash)."""
    try:
        kind, n, r, p, salt, digest = stored.split("$")
        if kind != "scrypt":
            return False
        expected = base64.b64decode(digest)
        got = hashlib.scrypt(
            password.encode("utf-8"), salt=base64.b64decode(salt), n=int(n), r=int(r), p=int(p), dklen=len(expected)
        )
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(got, expected)


def is_password_hash(value: str) -> bool:
    parts = value.split("$")
    return len(parts) == 6 and parts[0] == "scrypt" and all(parts[1:4]) and parts[1].isdigit()


DUMMY_HASH = hash_password("timing-equaliser", salt=b"\0" * 16)


def new_token() -> str:
    return secrets.token_urlsafe(32)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def check_username(username: Any, where: str = "username") -> str:
    if not isinstance(username, str) or not username.strip():
        raise ValueError(f"{where}: must be a non-empty string, got {username!r}")
    name = username.strip()
    if len(name) > MAX_USERNAME or any(c in name for c in ":,\n\r\t"):
        raise ValueError(f"{where}: {username!r} is too long or contains one of ':', ',', tab or newline")
    return name


def check_role(role: Any, where: str = "role") -> str:
    if role not in ROLES:
        raise ValueError(f"{where}: must be one of {', '.join(ROLES)}, got {role!r}")
    return role


def parse_users_env(text: str) -> list[dict[str, str]]:
    """`alice:pw1,bob:pw2,admin:pw3:admin` -> user dicts (role defaults to rater; ':' allowed in passwords)."""
    users = []
    for i, entry in enumerate(e for e in text.split(",") if e.strip()):
        parts = entry.strip().split(":")
        if len(parts) < 2:
            raise ValueError(f"CBT_USERS entry {i + 1} ({parts[0]!r}): expected name:password[:role]")
        role = parts[-1] if len(parts) >= 3 and parts[-1] in ROLES else "rater"
        password = ":".join(parts[1:-1] if len(parts) >= 3 and parts[-1] in ROLES else parts[1:])
        users.append({"username": parts[0], "password": password, "role": role})
    return users


OAUTH_PREFIX = "hf/"  # store name of a Hugging Face account: "hf/<hub username>"
NO_PASSWORD = "oauth-only"  # not a scrypt hash, so verify_password is always False: no password opens it


def parse_hf_raters(text: str) -> dict[str, str]:
    """`alice,bob:admin` (env CBT_HF_RATERS) -> {hub username: role}; role defaults to rater.

    >>> parse_hf_raters("alice, bob:admin")
    {'alice': 'rater', 'bob': 'admin'}
    """
    raters = {}
    for i, entry in enumerate(e.strip() for e in text.split(",") if e.strip()):
        name, _, role = entry.partition(":")
        raters[check_username(name, f"CBT_HF_RATERS entry {i + 1}")] = check_role(
            role or "rater", f"CBT_HF_RATERS entry {i + 1} role"
        )
    return raters


def read_users_file(path: str | os.PathLike) -> list[dict[str, str]]:
    """A YAML or JSON list of {username, password_hash | password, role}; errors name the file and entry."""
    source = Path(path)
    try:
        data = yaml.safe_load(source.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError, UnicodeDecodeError) as exc:
        raise ValueError(f"{source}: cannot read the users file ({exc})") from None
    if not isinstance(data, list):
        raise ValueError(f"{source}: expected a list of users, got {type(data).__name__}")
    users = []
    for i, entry in enumerate(data):
        where = f"{source}: users[{i}]"
        if not isinstance(entry, dict):
            raise ValueError(f"{where}: expected a mapping, got {json.dumps(entry, default=str)[:60]}")
        secret = entry.get("password_hash") or entry.get("password")
        if not isinstance(secret, str) or not secret:
            raise ValueError(f"{where}: needs 'password_hash' or 'password'")
        if "password_hash" in entry and not is_password_hash(entry["password_hash"]):
            raise ValueError(f"{where}.password_hash: not an scrypt hash (make one with `annotate hash-password`)")
        users.append({**entry, "role": entry.get("role", "rater")})
    return users
