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

    def acting_for(self, owner: str | None) -> str | None:
        """Whose jobs (or subscriptions) a request means: ``owner``'s
        for an admin who names one, else the caller's own."""
        return owner if (self.admin and owner is not None) else self.name


#: The only caller of a server without authentication.
ANONYMOUS = Caller(None)
