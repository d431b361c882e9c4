"""Who a dashboard request is, and its protection against forged forms.

The dashboard is a browser's, and a browser cannot add an
``Authorization`` header to a page it navigates to. So:

- ``none`` and ``header`` modes work as for the API (the authenticating
  proxy sets its header on every request, pages included).
- ``token`` mode has a login form; the token goes into a session cookie
  (no expiry: the browser forgets it when it closes), ``HttpOnly`` (page
  script cannot read it), ``SameSite=Strict``, limited to ``/ui``, and
  ``Secure`` when the dashboard is served over HTTPS. It is checked like a
  bearer token on every request, so removing the user ends the session at
  once. It never appears in a URL, and request logs do not carry cookies.

State-changing forms carry a CSRF token that must equal the value of a
second cookie (double submit); a cross-site page can neither read that
cookie nor set it, and `SameSite=Strict` keeps the browser from sending
the session cookie on a cross-site request anyway. Requests a browser
marks as cross-site (``Sec-Fetch-Site``) or whose ``Origin`` names
another host are refused as well.
"""

from __future__ import annotations

import hmac
import re
import secrets
from typing import Annotated
from urllib.parse import urlsplit

from fastapi import Depends, Request

from ..models.caller import Caller
from ..models.errors import AuthenticationError, ForbiddenError
from ..services.auth import Authenticator

__all__ = [
    "CSRF_COOKIE",
    "TOKEN_COOKIE",
    "BrowserCaller",
    "LoginRequiredError",
    "check_csrf",
    "csrf_value",
    "get_browser_caller",
]

#: The session cookie of ``token`` mode (holds the token).
TOKEN_COOKIE = "phaser_token"  # noqa: S105 (a cookie name)

#: The cookie whose value state-changing forms must repeat.
CSRF_COOKIE = "phaser_csrf"

_CSRF = re.compile(r"^[A-Za-z0-9_-]{43}$")


class LoginRequiredError(AuthenticationError):
    """A dashboard page needs the login form first (``token`` mode)."""


async def get_browser_caller(request: Request) -> Caller:
    """The caller of a dashboard request.

    Raises
    ------
    LoginRequiredError
        ``token`` mode, and neither a session cookie nor credentials.
    AuthenticationError
        Wrong credentials.
    """
    authenticator: Authenticator = request.app.state.authenticator
    if authenticator.mode == "token" and not request.headers.get(
        "authorization"
    ):
        token = request.cookies.get(TOKEN_COOKIE)
        if not token:
            raise LoginRequiredError("Log in with your token first")
        try:
            return authenticator.from_token(token)
        except AuthenticationError:
            raise LoginRequiredError(
                "Your session has ended (the token is no longer valid)"
            ) from None
    return authenticator.authenticate(request.headers)


def csrf_value(request: Request) -> tuple[str, bool]:
    """The request's CSRF value, and whether it is new (then the answer
    must set the cookie)."""
    current = request.cookies.get(CSRF_COOKIE, "")
    if _CSRF.fullmatch(current):
        return current, False
    return secrets.token_urlsafe(32), True


def check_csrf(request: Request, sent: str | None) -> None:
    """Refuse a state-changing form that did not come from our own page.

    Raises
    ------
    ForbiddenError
        The form's token does not match the cookie, or the browser says
        the request is cross-site.
    """
    if request.headers.get("sec-fetch-site", "same-origin") not in {
        "same-origin",
        "none",
    }:
        raise ForbiddenError("Cross-site form submission refused")
    origin = request.headers.get("origin")
    if origin and origin != "null":
        host = request.headers.get("x-forwarded-host") or request.headers.get(
            "host", ""
        )
        if urlsplit(origin).netloc != host.split(",")[0].strip():
            raise ForbiddenError("Form submitted from another site refused")
    cookie = request.cookies.get(CSRF_COOKIE, "")
    if not (
        sent
        and _CSRF.fullmatch(cookie)
        and hmac.compare_digest(sent.encode(), cookie.encode())
    ):
        raise ForbiddenError(
            "The form has expired or did not come from this site; reload"
            " the page and try again"
        )


BrowserCaller = Annotated[Caller, Depends(get_browser_caller)]
