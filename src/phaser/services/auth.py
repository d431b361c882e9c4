"""Authentication: who a request is, by the configured auth mode.

- ``none``: everybody is the anonymous caller (owner nil).
- ``header``: the user name is taken from a header that an authenticating
  reverse proxy (Gafaelfawr, oauth2-proxy) sets. Safe only behind such a
  proxy, which must strip the header from client requests.
- ``token``: ``Authorization: Bearer <token>``, or HTTP Basic with the token
  as password (any user name), checked against a users file that stores
  SHA-256 hashes of random tokens; the comparison takes the same time
  whichever user (if any) matches.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import os
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from ..models.caller import ANONYMOUS, Caller
from ..models.errors import AuthenticationError

__all__ = ["Authenticator", "UserDirectory", "hash_token", "new_token"]

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@+-]{0,127}$")


def hash_token(token: str) -> str:
    """The stored form of a token."""
    return hashlib.sha256(token.encode()).hexdigest()


def new_token() -> str:
    """A fresh random token (256 bits)."""
    return secrets.token_urlsafe(32)


@dataclass(frozen=True, slots=True)
class _User:
    name: str
    token_sha256: str
    admin: bool


class UserDirectory:
    """The users file: names, token hashes and admin flags.

    The file is JSON: ``{"users": {"ann": {"token_sha256": "…", "admin":
    false}}}``. Tokens themselves are never stored.
    """

    def __init__(self, users: list[_User]) -> None:
        self._users = users

    @classmethod
    def load(cls, path: Path) -> UserDirectory:
        """Read a users file (a missing file has no users)."""
        if not path.exists():
            return cls([])
        data = json.loads(path.read_text())
        return cls(
            [
                _User(name, entry["token_sha256"], bool(entry.get("admin")))
                for name, entry in data.get("users", {}).items()
            ]
        )

    def authenticate(self, token: str) -> Caller | None:
        """The user holding this token, if any, in constant time."""
        digest = hash_token(token)
        found: Caller | None = None
        for user in self._users:
            if hmac.compare_digest(digest, user.token_sha256):
                found = Caller(user.name, admin=user.admin)
        return found

    @staticmethod
    def add(path: Path, name: str, *, admin: bool) -> str:
        """Add (or re-key) a user; the new token, to be shown once.

        Raises
        ------
        ValueError
            The name is not acceptable.
        """
        if not _NAME.match(name):
            raise ValueError(f"invalid user name {name!r}")
        data = json.loads(path.read_text()) if path.exists() else {}
        token = new_token()
        data.setdefault("users", {})[name] = {
            "token_sha256": hash_token(token),
            "admin": admin,
        }
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(path.name + ".partial")
        partial.write_text(json.dumps(data, indent=2) + "\n")
        os.chmod(partial, 0o600)
        partial.replace(path)
        return token


class Authenticator:
    """Turns request credentials into a `Caller`.

    Parameters
    ----------
    mode
        ``none``, ``header`` or ``token``.
    header
        The user header (``header`` mode).
    admins
        Users who are admins (``header`` mode).
    users
        The users file (``token`` mode).
    """

    def __init__(
        self,
        *,
        mode: str,
        header: str = "X-Auth-Request-User",
        admins: frozenset[str] = frozenset(),
        users: UserDirectory | None = None,
    ) -> None:
        self._mode = mode
        self._header = header.lower()
        self._admins = admins
        self._users = users or UserDirectory([])

    def authenticate(self, headers: Mapping[str, str]) -> Caller:
        """The caller of a request with these headers.

        Raises
        ------
        AuthenticationError
            Credentials are missing or wrong.
        """
        match self._mode:
            case "none":
                return ANONYMOUS
            case "header":
                name = headers.get(self._header)
                if not name or not _NAME.match(name):
                    raise AuthenticationError(
                        "Not authenticated (no valid user header from the"
                        " authenticating proxy)"
                    )
                return Caller(name, admin=name in self._admins)
            case "token":
                token = _token(headers.get("authorization") or "")
                caller = self._users.authenticate(token) if token else None
                if caller is None:
                    raise AuthenticationError(
                        "Not authenticated: send Authorization: Bearer"
                        " <token>, or HTTP Basic with the token as password"
                    )
                return caller
            case _:
                raise AssertionError(self._mode)


def _token(authorization: str) -> str | None:
    scheme, _, value = authorization.partition(" ")
    value = value.strip()
    match scheme.lower():
        case "bearer":
            return value or None
        case "basic":
            try:
                decoded = base64.b64decode(value, validate=True).decode()
            except (binascii.Error, UnicodeDecodeError):
                return None
            _, _, password = decoded.partition(":")
            return password or None
        case _:
            return None
