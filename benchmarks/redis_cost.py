"""What one job costs Redis: commands and Redis CPU per no-op job created
with ``start`` through the JSON API, run by one worker and ended, from
``INFO commandstats`` (docs/scaling.md).

    python benchmarks/redis_cost.py [--jobs 5000]

Starts its own redis-server (AOF every second, as in production), one
frontend and one worker; the count includes the maintenance passes and
worker heartbeats of the run, spread over its jobs.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import tempfile
import time
from pathlib import Path

import httpx
from harness import Stack
from redis import Redis

from phaser.embedded import EmbeddedRedis, find_redis_server


def _create(url: str, count: int) -> None:
    with httpx.Client(base_url=url, timeout=30) as http:
        for _ in range(count):
            answer = http.post(
                "/api/v1/jobs", json={"task": "noop", "start": True}
            )
            if answer.status_code != 201:
                raise RuntimeError(answer.text)


def measure(jobs: int) -> dict[str, object]:
    """Commands, Redis CPU and memory per job (see the module doc)."""
    with tempfile.TemporaryDirectory() as work:
        redis = EmbeddedRedis(Path(work) / "redis", find_redis_server())
        redis.start()
        stack = Stack(redis.url, Path(work) / "data")
        stack.start(workers=1)
        client = Redis.from_url(redis.url, decode_responses=True)
        queue = stack.env["PHASER_QUEUE_NAME"]
        try:
            _create(stack.url, 20)  # warm up
            time.sleep(1)
            client.config_resetstat()
            cpu = client.info("cpu")
            memory = client.info("memory")["used_memory"]
            started = time.perf_counter()
            with concurrent.futures.ThreadPoolExecutor(8) as pool:
                for future in [
                    pool.submit(_create, stack.url, jobs // 8)
                    for _ in range(8)
                ]:
                    future.result()
            polls = 0
            while client.zcard(queue):
                polls += 1
                time.sleep(0.01)
            elapsed = time.perf_counter() - started
            time.sleep(0.5)  # the last ends are written
            done = jobs // 8 * 8
            after = client.info("cpu")
            grown = client.info("memory")["used_memory"] - memory
            stats = client.info("commandstats")
        finally:
            client.close()
            stack.stop()
            redis.stop()
    calls = {
        name.removeprefix("cmdstat_"): value["calls"]
        for name, value in stats.items()
    }
    calls["zcard"] = calls.get("zcard", 0) - polls - 1  # ours
    usec = sum(value["usec"] for value in stats.values())
    used = sum(after[k] - cpu[k] for k in ("used_cpu_sys", "used_cpu_user"))
    return {
        "jobs": done,
        "seconds": round(elapsed, 2),
        "commands_per_job": round(sum(calls.values()) / done, 2),
        "by_command": {
            name: round(count / done, 2)
            for name, count in sorted(calls.items(), key=lambda item: -item[1])
            if count / done >= 0.01
        },
        "command_usec_per_job": round(usec / done, 1),
        "redis_cpu_usec_per_job": round(used * 1e6 / done, 1),
        "memory_bytes_per_stored_job": round(grown / done),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--jobs", type=int, default=5000)
    args = parser.parse_args()
    print(json.dumps(measure(args.jobs), indent=2))


if __name__ == "__main__":
    main()
