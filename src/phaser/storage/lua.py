"""The Lua scripts beside this package, and loading them into Redis."""

from __future__ import annotations

from collections.abc import Sequence
from importlib import resources

from redis.asyncio import Redis
from redis.commands.core import AsyncScript

__all__ = ["load_scripts", "script_text"]


def script_text(name: str) -> str:
    """The text of one of the Lua scripts in ``storage/scripts``."""
    return (
        resources.files("phaser.storage")
        .joinpath("scripts", name)
        .read_text("utf-8")
    )


async def load_scripts(redis: Redis, scripts: Sequence[AsyncScript]) -> None:
    """Load into Redis every script it does not hold: all of them at
    start-up, any it lost later (a restart without them). Raises
    `redis.exceptions.RedisError` if Redis does not answer, so it is also
    the readiness check."""
    loaded = await redis.script_exists(*(script.sha for script in scripts))
    for script, present in zip(scripts, loaded, strict=True):
        if not present:
            await redis.script_load(script.script)
