"""Who is asking: the identity a request acts as."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["ANONYMOUS", "Caller"]


@dataclass(frozen=True, slots=True)
class Caller:
    """The identity of a request.

    Attributes
    ----------
    name
        User name, `None` when anonymous (auth mode ``none``).
    admin
        Whether the caller may see and manage every owner's jobs (JSON API).
    """

    name: str | None
    admin: bool = False


#: The only caller of a server without authentication.
ANONYMOUS = Caller(None)
