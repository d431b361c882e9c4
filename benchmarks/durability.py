"""B1 by durability level: JSON creations per second, 32 clients, one
frontend, each level on a Redis of its own (``fast``: AOF written every
second; ``fsync``: AOF written before each answer; ``replicated``: a
primary and a replica, each creation waiting for the replica's ``WAIT``
confirmation). Rounds alternate between the levels."""

from __future__ import annotations

import uuid
from pathlib import Path

from harness import Figure, Scale, Stack, run_loadgen

from phaser.embedded import EmbeddedRedis, find_redis_server

__all__ = ["durability_figures"]

_JSON = '{"task": "echo", "parameters": {"ra": 10}}'


def _servers(work: Path, level: str) -> list[EmbeddedRedis]:
    binary = find_redis_server()
    primary = EmbeddedRedis(
        work / f"{level}-primary",
        binary,
        fsync="always" if level == "fsync" else "everysec",
    )
    servers = [primary]
    if level == "replicated":
        servers.append(
            EmbeddedRedis(
                work / f"{level}-replica",
                binary,
                extra=["--replicaof", "127.0.0.1", str(primary.port)],
            )
        )
    return servers


def durability_figures(work: Path, scale: Scale) -> list[Figure]:
    """One figure per level (see the module doc)."""
    levels = ("fast", "fsync", "replicated")
    figures = {
        level: Figure(f"phaser JSON POST → 201, durability {level}", "jobs/s")
        for level in levels
    }
    servers: list[EmbeddedRedis] = []
    stacks: dict[str, Stack] = {}
    try:
        for level in levels:
            own = _servers(work, level)
            for server in own:
                server.start()
                servers.append(server)
            stack = Stack(
                own[0].url, work / uuid.uuid4().hex[:6], durability=level
            )
            stacks[level] = stack
            stack.start(workers=0)
        for _ in range(scale.rounds):
            for level in levels:
                answer = run_loadgen(
                    stacks[level].url + "/api/v1/jobs",
                    method="POST",
                    body=_JSON,
                    content_type="application/json",
                    connections=32,
                    seconds=scale.load_seconds,
                )
                if set(answer["statuses"]) != {"201"}:
                    raise RuntimeError(f"{level}: {answer['statuses']}")
                figures[level].rounds.append(answer["rps"])
    finally:
        for stack in stacks.values():
            stack.stop()
        for server in servers:
            server.stop()
    return list(figures.values())
