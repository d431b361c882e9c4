"""Scale-out on one machine: 2 frontends and 3 workers on one Redis, a mixed
load through both frontends, one worker killed midway; every job must
finish exactly once.

    python benchmarks/scaleout.py --jobs 600          # a report
    python benchmarks/scaleout.py --jobs 300 --json   # for the test

Starts its own redis-server (AOF on) and the processes on loopback. Half
the jobs go in as UWS form POSTs with PHASE=RUN, half as JSON; they sleep
0 to 1 s, and one in twenty fails its first attempt (a transient error,
retried). Once half are submitted and the victim worker is running jobs,
it is SIGKILLed. The report: jobs, when the kill came, how many jobs the
victim was running, how long until all of them ran again elsewhere
(recovery), and from the tasks' own record of every finished run:
completed jobs, duplicates (finished twice) and missing ones (never).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
from harness import stop_processes, wait_until_ready
from redis import Redis
from soak_tasks import finished_runs

from phaser.embedded import EmbeddedRedis, find_redis_server, free_port

HERE = Path(__file__).resolve().parent
FINAL = {"COMPLETED", "ERROR", "ABORTED"}


def _running_on(redis: Redis, prefix: str, pid: int) -> dict[str, int]:
    """Jobs EXECUTING under a worker process's claim: id → attempt."""
    running = {}
    for key in redis.scan_iter(f"{prefix}:job:*", count=1000):
        phase, claim, attempts = redis.hmget(key, "phase", "claim", "attempts")
        if (
            phase == "EXECUTING"
            and claim
            and claim.split("/")[0].endswith(f"-{pid}")
        ):
            running[key.rsplit(":", 1)[1]] = int(attempts or 0)
    return running


def run(jobs: int, work: Path) -> dict[str, Any]:
    """Run the scenario; its report."""
    evidence = work / "evidence"
    evidence.mkdir(parents=True)
    server = EmbeddedRedis(work / "redis", find_redis_server())
    server.start()
    prefix = "scaleout"
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(
            [str(HERE), os.environ.get("PYTHONPATH", "")]
        ),
        "PHASER_REDIS_URL": server.url,
        "PHASER_DATA_DIR": str(work / "data"),
        "PHASER_KEY_PREFIX": prefix,
        "PHASER_TASK_MODULES": "soak_tasks",
        "PHASER_LOG_LEVEL": "WARNING",
        "PHASER_HEARTBEAT_INTERVAL": "0.25",
        "PHASER_STALL_TIMEOUT": "1.5",
        "PHASER_MAINTENANCE_INTERVAL": "0.25",
        "PHASER_MAX_ATTEMPTS": "5",
        "PHASER_MAX_ACTIVE_JOBS": "100000",
    }
    command = [sys.executable, "-m", "phaser"]
    workers = [
        subprocess.Popen([*command, "worker"], env=env) for _ in range(3)
    ]
    ports = [free_port(), free_port()]
    frontends = [
        subprocess.Popen([*command, "serve", "--port", str(p)], env=env)
        for p in ports
    ]
    urls = [f"http://127.0.0.1:{p}" for p in ports]
    redis = Redis.from_url(server.url, decode_responses=True)
    rng = random.Random(20261123)
    plans = [
        (
            n,
            rng.choice([0, 0.05, 0.2, 1.0]),
            rng.random() < 0.05,
        )
        for n in range(jobs)
    ]
    started = time.monotonic()
    try:
        for url in urls:
            wait_until_ready(f"{url}/ready")

        def submit(plan: tuple[int, float, bool]) -> str:
            n, seconds, fail = plan
            url = urls[n % 2]
            if n % 4 < 2:  # UWS form POST, PHASE=RUN → 303
                answer = httpx.post(
                    f"{url}/soak/jobs",
                    data={
                        "directory": str(evidence),
                        "seconds": str(seconds),
                        "fail": str(fail).lower(),
                        "PHASE": "RUN",
                    },
                    timeout=30,
                )
                assert answer.status_code == 303, answer.text
                return answer.headers["location"].rsplit("/", 1)[1]
            answer = httpx.post(
                f"{url}/api/v1/jobs",
                json={
                    "task": "soak",
                    "parameters": {
                        "directory": str(evidence),
                        "seconds": seconds,
                        "fail": fail,
                    },
                    "start": True,
                },
                timeout=30,
            )
            assert answer.status_code == 201, answer.text
            return str(answer.json()["id"])

        victim = workers[0]
        with ThreadPoolExecutor(8) as pool:
            accepted = list(pool.map(submit, plans[: jobs // 2]))
            # Midway, once the victim is running jobs: kill it.
            deadline = time.monotonic() + 30
            while not (running := _running_on(redis, prefix, victim.pid)):
                if time.monotonic() > deadline:
                    raise RuntimeError("the victim never ran a job")
                time.sleep(0.01)
            victim.send_signal(signal.SIGKILL)
            killed_at = time.monotonic()
            later = pool.map(submit, plans[jobs // 2 :])
            # Recovery: each job the victim was running runs again as a
            # later attempt (or has ended) on another worker.
            recovered: set[str] = set()
            while len(recovered) < len(running):
                for job_id, attempt in running.items():
                    phase, attempts = redis.hmget(
                        f"{prefix}:job:{job_id}", "phase", "attempts"
                    )
                    if int(attempts or 0) > attempt or phase in FINAL:
                        recovered.add(job_id)
                if time.monotonic() - killed_at > 60:
                    raise RuntimeError("jobs of the killed worker stayed")
                time.sleep(0.01)
            recovery = time.monotonic() - killed_at
            accepted += list(later)
        phases: Counter[str] = Counter()
        with httpx.Client(timeout=60) as client:
            for n, job_id in enumerate(accepted):
                job = client.get(f"{urls[n % 2]}/api/v1/jobs/{job_id}").json()
                while job["phase"] not in FINAL:
                    job = client.get(
                        f"{urls[n % 2]}/api/v1/jobs/{job_id}",
                        params={"wait": 30, "until": "final"},
                    ).json()
                phases[job["phase"]] += 1
        runs = finished_runs(evidence)
    finally:
        stop_processes([*frontends, *workers])
        server.stop()
    # A job finished more than once is a duplicate unless every run but
    # one was on the killed worker: SIGKILL can land after a task's work
    # and before its end is recorded, and then the job runs again (phaser
    # runs a job at least once; tasks with side effects are idempotent).
    on: dict[str, list[int]] = {}
    for job_id, pid in runs:
        on.setdefault(job_id, []).append(pid)
    survivors = {
        job_id: [pid for pid in pids if pid != victim.pid]
        for job_id, pids in on.items()
    }
    return {
        "jobs": len(accepted),
        "frontends": len(frontends),
        "workers": len(workers),
        "killed_at_s": round(killed_at - started, 2),
        "killed_worker_was_running": len(running),
        "recovery_s": round(recovery, 2),
        "phases": dict(phases),
        "completed": phases["COMPLETED"],
        "duplicates": sum(1 for pids in survivors.values() if len(pids) > 1)
        + sum(1 for pids in on.values() if pids.count(victim.pid) > 1),
        "rerun_after_kill": sum(
            1
            for job_id, pids in on.items()
            if victim.pid in pids and survivors[job_id]
        ),
        "missing": sum(1 for job_id in accepted if job_id not in on),
        "elapsed_s": round(time.monotonic() - started, 2),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--jobs", type=int, default=600)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    report = run(args.jobs, Path(tempfile.mkdtemp(prefix="phaser-scale-")))
    if args.json:
        print(json.dumps(report))
    else:
        for name, value in report.items():
            print(f"{name}: {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
