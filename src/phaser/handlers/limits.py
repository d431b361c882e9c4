"""Request size limits, enforced before any route reads a body."""

from __future__ import annotations

import json
import tempfile

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..dependencies.uploads import SPOOLED, discard_spooled

__all__ = ["BodyLimitMiddleware"]


#: Bytes of a chunked body kept in memory; the rest goes to a file.
_IN_MEMORY = 1024 * 1024
_CHUNK = 64 * 1024


class BodyLimitMiddleware:
    """Refuse request bodies over ``limit`` bytes with 413
    (``multipart/form-data`` bodies, which carry uploads: over
    ``upload_limit``).

    A declared ``Content-Length`` is checked at once; a chunked body is read
    (up to the limit; past 1 MiB into a temporary file, not memory) before
    the route sees it, then replayed.
    """

    def __init__(
        self, app: ASGIApp, *, limit: int, upload_limit: int | None = None
    ) -> None:
        self.app = app
        self.limit = limit
        self.upload_limit = upload_limit or limit

    async def __call__(
        self, scope: Scope, receive: Receive, send: Send
    ) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        if b"content-length" not in headers and b"chunked" not in headers.get(
            b"transfer-encoding", b""
        ):
            # No body (a GET, a wait): straight on, holding nothing (a
            # frontend holds thousands of waits, B6).
            del headers
            await self.app(scope, receive, send)
            return
        multipart = headers.get(b"content-type", b"").startswith(
            b"multipart/form-data"
        )
        if not multipart:
            await self._limited(scope, receive, send, headers, self.limit)
            return
        # Files a multipart request spooled and no job took are deleted
        # when it ends, however it ends.
        try:
            await self._limited(
                scope, receive, send, headers, self.upload_limit
            )
        finally:
            discard_spooled(scope.pop(SPOOLED, []))

    async def _limited(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        headers: dict[bytes, bytes],
        limit: int,
    ) -> None:
        declared = headers.get(b"content-length")
        if declared is not None:
            try:
                size = int(declared)
            except ValueError:
                await self._refuse(send, 400, "Invalid Content-Length")
                return
            if size > limit:
                await self._too_large(send, limit)
                return
            await self.app(scope, receive, send)
            return
        if b"chunked" not in headers.get(b"transfer-encoding", b""):
            await self.app(scope, receive, send)
            return
        with tempfile.SpooledTemporaryFile(_IN_MEMORY) as body:
            size = 0
            while True:
                message = await receive()
                if message["type"] != "http.request":
                    break
                chunk = message.get("body", b"")
                size += len(chunk)
                if size > limit:
                    await self._too_large(send, limit)
                    return
                body.write(chunk)
                if not message.get("more_body"):
                    break
            body.seek(0)

            async def replay() -> Message:
                if body.closed:
                    return await receive()
                chunk = body.read(_CHUNK)
                more = body.tell() < size
                if not more:
                    body.close()
                return {
                    "type": "http.request",
                    "body": chunk,
                    "more_body": more,
                }

            await self.app(scope, replay, send)

    async def _too_large(self, send: Send, limit: int) -> None:
        await self._refuse(
            send, 413, f"Request body larger than {limit} bytes"
        )

    @staticmethod
    async def _refuse(send: Send, status: int, detail: str) -> None:
        body = json.dumps(
            {
                "type": "urn:phaser:problem:request-too-large"
                if status == 413
                else "urn:phaser:problem:bad-request",
                "title": detail,
                "status": status,
                "detail": detail,
            }
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", b"application/problem+json"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})
