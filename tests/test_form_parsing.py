"""phaser reads urlencoded forms (every UWS request's body) itself: what
it reads is what Starlette's form parser reads, for any bytes, however
the body arrives."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from starlette.datastructures import Headers
from starlette.formparsers import FormParser

from phaser.dependencies.uploads import urlencoded_fields
from phaser.models.errors import PhaserError

_HEADERS = Headers({"content-type": "application/x-www-form-urlencoded"})

#: Bytes that matter to the parsers, and some that do not.
_PIECES = st.sampled_from(
    [b"&", b"=", b"+", b"%", b"%2", b"%20", b"%3D", b"%26", b"%C3%A9",
     b"%FF", b"%zz", b";", b" ", b"a", b"RA", b"Z9", b"\xc3\xa9", b"\xff",
     b"\x00", b"\n", b"phase", b"RUN"]
)  # fmt: skip


async def _starlette(body: bytes, cut: int) -> list[tuple[str, str]]:
    async def stream() -> AsyncGenerator[bytes, None]:
        for start in range(0, len(body), cut):
            yield body[start : start + cut]
        yield b""

    form = await FormParser(_HEADERS, stream()).parse()
    return [(name, str(value)) for name, value in form.multi_items()]


@settings(max_examples=500, deadline=None)
@given(
    body=st.lists(_PIECES, max_size=40).map(b"".join),
    cut=st.integers(min_value=1, max_value=64),
)
def test_fields_are_read_as_starlettes_parser_reads_them(
    body: bytes, cut: int
) -> None:
    assert urlencoded_fields(body) == asyncio.run(_starlette(body, cut))


def test_the_limits_are_starlettes() -> None:
    assert len(urlencoded_fields(b"a=1&" * 1000)) == 1000
    with pytest.raises(PhaserError, match="Too many fields"):
        urlencoded_fields(b"a=1&" * 1001)
    urlencoded_fields(b"a=" + b"x" * (1024 * 1024 - 1))
    with pytest.raises(PhaserError, match="maximum size"):
        urlencoded_fields(b"a=" + b"x" * (1024 * 1024))


def test_a_form_of_too_many_fields_is_a_400_and_makes_no_job(
    client: httpx.Client,
) -> None:
    """(A field over 1 MiB is a body over the request limit: 413 before
    the form is read.)"""
    before = client.get("/api/v1/jobs/count").json()["count"]
    answer = client.post(
        "/echo/jobs",
        content=b"RA=1&" * 1001,
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert answer.status_code == 400, answer.text
    assert "Unreadable form body: Too many fields" in answer.text
    assert client.get("/api/v1/jobs/count").json()["count"] == before
