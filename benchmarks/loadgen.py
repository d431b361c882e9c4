"""A small HTTP/1.1 load generator, run as its own process.

    python benchmarks/loadgen.py --url http://127.0.0.1:8000/echo/jobs \\
        --method POST --body 'x=1' --content-type \\
        application/x-www-form-urlencoded --connections 32 --seconds 5

Each connection is kept alive and sends its next request as soon as the
answer to the last one has arrived (closed loop). Requests are written and
answers parsed by hand on asyncio streams (with uvloop when installed): a
load generator built on a full HTTP client library spends more CPU per
request than the servers it measures, and on two cores it shares them.
Prints one JSON object: requests, seconds, requests per second, status
counts and latency percentiles (ms).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections import Counter
from urllib.parse import urlsplit

__all__ = ["read_answer", "request_bytes", "run"]


def request_bytes(
    method: str, host: str, path: str, body: bytes, content_type: str | None
) -> bytes:
    """One HTTP/1.1 request, ready to write."""
    head = [f"{method} {path} HTTP/1.1", f"Host: {host}"]
    if body or method in {"POST", "PUT", "PATCH"}:
        head.append(f"Content-Length: {len(body)}")
    if content_type:
        head.append(f"Content-Type: {content_type}")
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


async def read_answer(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    """Read one answer: its status code and body. Bodies need a
    Content-Length or chunked encoding (the servers here send one)."""
    status_line = await reader.readuntil(b"\r\n")
    status = int(status_line.split(b" ", 2)[1])
    length = 0
    chunked = False
    while (line := await reader.readuntil(b"\r\n")) != b"\r\n":
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            length = int(value)
        elif name == b"transfer-encoding" and b"chunked" in value.lower():
            chunked = True
    body = b""
    if chunked:
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            body += (await reader.readexactly(size + 2))[:-2]
            if size == 0:
                break
    elif length:
        body = await reader.readexactly(length)
    return status, body


async def run(
    *,
    url: str,
    method: str,
    body: bytes,
    content_type: str | None,
    connections: int,
    seconds: float,
    warmup: float = 1.0,
) -> dict[str, object]:
    """Drive the server for ``seconds`` after ``warmup`` seconds; figures."""
    parts = urlsplit(url)
    host = parts.hostname or "127.0.0.1"
    port = parts.port or 80
    path = parts.path + (f"?{parts.query}" if parts.query else "")
    request = request_bytes(method, f"{host}:{port}", path, body, content_type)
    statuses: Counter[int] = Counter()
    latencies: list[float] = []
    begin = time.perf_counter() + warmup
    end = begin + seconds

    async def connection() -> None:
        reader, writer = await asyncio.open_connection(host, port)
        try:
            while (started := time.perf_counter()) < end:
                writer.write(request)
                status, _ = await read_answer(reader)
                if started >= begin:
                    statuses[status] += 1
                    latencies.append((time.perf_counter() - started) * 1000)
        finally:
            writer.close()

    await asyncio.gather(*(connection() for _ in range(connections)))
    latencies.sort()

    def percentile(q: float) -> float:
        if not latencies:
            return 0.0
        return latencies[min(len(latencies) - 1, int(q * len(latencies)))]

    total = sum(statuses.values())
    return {
        "requests": total,
        "seconds": seconds,
        "rps": total / seconds,
        "statuses": {str(k): v for k, v in sorted(statuses.items())},
        "p50_ms": percentile(0.5),
        "p99_ms": percentile(0.99),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--method", default="GET")
    parser.add_argument("--body", default="")
    parser.add_argument("--content-type")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--warmup", type=float, default=1.0)
    args = parser.parse_args()
    try:
        import uvloop  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        runner = asyncio.run
    else:
        runner = uvloop.run
    started = time.perf_counter()
    figures = runner(
        run(
            url=args.url,
            method=args.method,
            body=args.body.encode(),
            content_type=args.content_type,
            connections=args.connections,
            seconds=args.seconds,
            warmup=args.warmup,
        )
    )
    figures["wall_seconds"] = time.perf_counter() - started
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
