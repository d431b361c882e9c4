"""Redis failover (issue 18, parts 2 and 3): a primary, two replicas and
three ``redis-sentinel`` processes; a frontend and two workers connected
through the sentinels; a stream of job submissions and completions; the
primary SIGKILLed. The sentinels promote a replica and every phaser
process follows it without a restart. Counted: acknowledged jobs lost,
jobs completed twice, seconds of 503s (never a 500).

``replicated`` must lose nothing; ``fast`` (asynchronous replication)
reports what it lost. The figures are printed for docs/operations.md.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from conftest import Stack, require_tool, wait_for, wait_until
from replicated import SERVICE, ReplicatedRedis, Submitter


@pytest.fixture
def replicated_redis(tmp_path: Path) -> Iterator[ReplicatedRedis]:
    sentinel = require_tool("redis-sentinel", "Debian's redis-sentinel")
    servers = ReplicatedRedis(tmp_path / "redis", sentinel)
    (tmp_path / "redis").mkdir()
    servers.start()
    try:
        yield servers
    finally:
        servers.stop()


@pytest.mark.parametrize("durability", ["fast", "replicated"])
def test_a_failover_loses_no_acknowledged_job_and_runs_none_twice(
    replicated_redis: ReplicatedRedis,
    tmp_path: Path,
    evidence: Path,
    durability: str,
) -> None:
    stack = Stack(
        "",
        tmp_path / "data",
        durability=durability,
        redis_sentinels=replicated_redis.addresses,
        redis_sentinel_service=SERVICE,
        maintenance_interval=0.2,
        queue_check_after=2,
    )
    stack.env.pop("PHASER_REDIS_URL")
    submitter = Submitter(stack.url, evidence)
    try:
        for _ in range(2):
            stack.start_worker()
        stack.start_frontend()
        submitter.start()
        wait_until(lambda: len(submitter.acknowledged()) >= 200, 30)
        before = len(submitter.acknowledged())
        replicated_redis.kill_primary()
        # The sentinels promote a replica; phaser follows: new jobs are
        # acknowledged again.
        wait_until(lambda: len(submitter.acknowledged()) >= before + 200, 60)
        submitter.stop()
        promoted = replicated_redis.primary_port()
        assert promoted in {r.port for r in replicated_redis.replicas}
        acknowledged = submitter.acknowledged()
        # Every acknowledged job is there, and ends.
        lost = []
        with httpx.Client(base_url=stack.url, timeout=30) as http:
            for job_id in acknowledged:
                answer = http.get(f"/api/v1/jobs/{job_id}")
                if answer.status_code == 404:
                    lost.append(job_id)
                    continue
                assert answer.status_code == 200, answer.text
                wait_for(http, job_id, {"COMPLETED"}, timeout=60)
        finished = Counter((evidence / "finished").read_text().split())
        twice = sorted(j for j, n in finished.items() if n > 1)
        statuses = submitter.statuses()
        # Never a 500, nor anything but "created" and "come back later".
        assert set(statuses) <= {201, 503}, statuses
        assert submitter.without_retry_after == 0
        # No phaser process needed a restart, and the frontend's event
        # subscriber follows the new primary: a long poll is released by
        # its job's end, long before its wait runs out.
        for process in [stack.frontend, *stack.workers]:
            assert process is not None
            assert process.poll() is None
        with httpx.Client(base_url=stack.url, timeout=60) as http:
            made = http.post(
                "/api/v1/jobs",
                json={
                    "task": "count",
                    "parameters": {"directory": str(evidence)},
                    "start": True,
                },
            )
            assert made.status_code == 201
            started = time.monotonic()
            ended = http.get(
                f"/api/v1/jobs/{made.json()['id']}",
                params={"wait": 50, "until": "final"},
            ).json()
            assert ended["phase"] == "COMPLETED"
            assert time.monotonic() - started < 25
        figures: dict[str, Any] = {
            "durability": durability,
            "acknowledged": len(acknowledged),
            "lost": len(lost),
            "completed_twice": len(twice),
            "seconds_of_503": round(submitter.unavailable(), 2),
            "answers_503": statuses[503],
            "longest_gap_between_201s": round(submitter.longest_gap(), 2),
        }
        print("failover:", json.dumps(figures))
        if durability == "replicated":
            assert lost == []
            assert twice == []
    finally:
        submitter.stop()
        stack.stop()
