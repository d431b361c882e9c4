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
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog
from starlette.datastructures import Headers

from ..models.caller import ANONYMOUS, Caller
from ..models.errors import AuthenticationError, PhaserError

__all__ = ["Authenticator", "UserDirectory", "hash_token", "new_token"]

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@+-]{0,127}$")

_logger = structlog.get_logger("phaser.auth")


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
    false}}}``. Tokens themselves are never stored. A directory read from a
    file follows it: changes (``phaser user add``, ``remove``) take effect
    within `RECHECK` seconds, without a restart.
    """

    #: How often (at most) the file is looked at for changes (s).
    RECHECK = 1.0

    def __init__(self, users: list[_User], path: Path | None = None) -> None:
        self._users = users
        self._path = path
        self._seen: tuple[int, int, int] | None = None
        self._checked = time.monotonic()

    @classmethod
    def load(cls, path: Path) -> UserDirectory:
        """Read a users file (a missing file has no users) and follow it."""
        directory = cls([], path)
        directory._reload()
        return directory

    @staticmethod
    def _read(path: Path) -> dict[str, Any]:
        if not path.exists():
            return {}
        data: dict[str, Any] = json.loads(path.read_text())
        return data

    def _reload(self) -> None:
        """Read the file again if it changed since it was last read."""
        assert self._path is not None
        self._checked = time.monotonic()
        try:
            stat = self._path.stat()
        except FileNotFoundError:
            self._users, self._seen = [], None
            return
        seen = (stat.st_mtime_ns, stat.st_size, stat.st_ino)
        if seen == self._seen:
            return
        try:
            data = self._read(self._path)
        except (OSError, ValueError) as exc:
            # Keep the users we have; the next check reads it again.
            _logger.warning("Users file unreadable", error=str(exc))
            return
        self._users = [
            _User(name, entry["token_sha256"], bool(entry.get("admin")))
            for name, entry in data.get("users", {}).items()
        ]
        self._seen = seen

    def authenticate(self, token: str) -> Caller | None:
        """The user holding this token, if any, in constant time."""
        if (
            self._path is not None
            and time.monotonic() - self._checked >= self.RECHECK
        ):
            self._reload()
        digest = hash_token(token)
        found: Caller | None = None
        for user in self._users:
            if hmac.compare_digest(digest, user.token_sha256):
                found = Caller(user.name, admin=user.admin)
        return found

    @classmethod
    def add(cls, path: Path, name: str, *, admin: bool) -> str:
        """Add (or re-key) a user; the new token, to be shown once.

        Raises
        ------
        ValueError
            The name is not acceptable.
        """
        if not _NAME.fullmatch(name):
            raise ValueError(f"invalid user name {name!r}")
        data = cls._read(path)
        token = new_token()
        data.setdefault("users", {})[name] = {
            "token_sha256": hash_token(token),
            "admin": admin,
        }
        cls._write(path, data)
        return token

    @classmethod
    def remove(cls, path: Path, name: str) -> None:
        """Remove a user (their token stops working).

        Raises
        ------
        ValueError
            There is no such user.
        """
        data = cls._read(path)
        if name not in data.get("users", {}):
            raise ValueError(f"no user {name!r} in {path}")
        del data["users"][name]
        cls._write(path, data)

    @classmethod
    def names(cls, path: Path) -> list[tuple[str, bool]]:
        """Users in the file, by name, with whether each is an admin."""
        users = cls._read(path).get("users", {})
        return [
            (name, bool(users[name].get("admin"))) for name in sorted(users)
        ]

    @staticmethod
    def _write(path: Path, data: dict[str, Any]) -> None:
        """Replace the file atomically, readable by its owner only."""
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(path.name + ".partial")
        partial.write_text(json.dumps(data, indent=2) + "\n")
        os.chmod(partial, 0o600)
        partial.replace(path)


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

    @property
    def mode(self) -> str:
        """The auth mode: ``none``, ``header`` or ``token``."""
        return self._mode

    def from_token(self, token: str) -> Caller:
        """The user holding a token (``token`` mode; the dashboard's login
        and its session cookie).

        Raises
        ------
        AuthenticationError
            No user holds it.
        """
        caller = self._users.authenticate(token) if token else None
        if caller is None:
            raise AuthenticationError("Unknown token")
        return caller

    def authenticate(self, headers: Headers) -> Caller:
        """The caller of a request with these headers.

        Raises
        ------
        AuthenticationError
            Credentials are missing or wrong.
        PhaserError
            The identity header or ``Authorization`` comes twice (which
            one a proxy in front checked is unknowable): 400.
        """
        match self._mode:
            case "none":
                return ANONYMOUS
            case "header":
                name = _single(headers, self._header)
                if not name or not _NAME.fullmatch(name):
                    raise AuthenticationError(
                        "Not authenticated (no valid user header from the"
                        " authenticating proxy)"
                    )
                return Caller(name, admin=name in self._admins)
            case "token":
                token = _token(_single(headers, "authorization") or "")
                caller = self._users.authenticate(token) if token else None
                if caller is None:
                    raise AuthenticationError(
                        "Not authenticated: send Authorization: Bearer"
                        " <token>, or HTTP Basic with the token as password"
                    )
                return caller
            case _:
                raise AssertionError(self._mode)


def _single(headers: Headers, name: str) -> str | None:
    """The one value of a header, `None` if absent.

    Raises
    ------
    PhaserError
        The header comes more than once.
    """
    values = headers.getlist(name)
    if len(values) > 1:
        raise PhaserError(f"Header {name} must be sent only once")
    return values[0] if values else None


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
