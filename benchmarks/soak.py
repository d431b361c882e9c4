"""Soak run: mixed load for some minutes, then count lost, stuck and
duplicated jobs, with memory over time.

Not part of the test suite. Run it from the project root:

    python benchmarks/soak.py --minutes 10 --workers 3

It starts its own redis-server (AOF on), one frontend and N workers on
loopback, submits jobs at a bounded rate (some aborted, deleted, failing
transiently), kills and restarts a worker now and then, and prints:

- lost: accepted (201) and never deleted, but gone or never finished
- stuck: still PENDING/QUEUED/EXECUTING after the drain period
- duplicated: finished more than once
- memory: Redis used_memory and the processes' RSS, sampled every 10 s,
  and their slopes (least squares over the run after the first
  ``--lifetime`` plus a minute: by then jobs are destroyed as fast as they
  are made, so a flat line is what a server without leaks draws)

For issue 19's memory-over-time figure (no kills, a steady rate):

    python benchmarks/soak.py --minutes 30 --kill-every 0 --workers 2 \
        --rate 20

(a rate the workers keep up with: jobs sleep 0.64 s on average, so two
workers of concurrency 10 finish about 30 a second; above that the backlog
grows until jobs reach their lifetime while still queued.)
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from redis import Redis
from soak_tasks import finished_runs

from phaser.embedded import EmbeddedRedis, find_redis_server, free_port

HERE = Path(__file__).resolve().parent
ACTIVE = {"PENDING", "QUEUED", "EXECUTING"}


def _rss_kib(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def _slope(points: list[tuple[float, float]]) -> float:
    """Least-squares slope of value over time (per second)."""
    count = len(points)
    mean_t = sum(t for t, _ in points) / count
    mean_v = sum(v for _, v in points) / count
    spread = sum((t - mean_t) ** 2 for t, _ in points)
    return (
        sum((t - mean_t) * (v - mean_v) for t, v in points) / spread
        if spread
        else 0.0
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=float, default=2.0)
    parser.add_argument("--workers", type=int, default=3)
    parser.add_argument("--rate", type=float, default=50, help="jobs/s")
    parser.add_argument(
        "--kill-every",
        type=float,
        default=30,
        help="SIGKILL a worker this often (s); 0: never",
    )
    parser.add_argument(
        "--lifetime",
        type=int,
        default=120,
        help="jobs' lifetime (s): destroyed this long after creation",
    )
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="phaser-soak-"))
    evidence = work / "evidence"
    evidence.mkdir()
    redis = EmbeddedRedis(work / "redis", find_redis_server())
    redis.start()
    port = free_port()
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(
            [str(HERE), os.environ.get("PYTHONPATH", "")]
        ),
        "PHASER_REDIS_URL": redis.url,
        "PHASER_DATA_DIR": str(work / "data"),
        "PHASER_TASK_MODULES": "soak_tasks",
        "PHASER_LOG_LEVEL": "WARNING",
        "PHASER_STALL_TIMEOUT": "3",
        "PHASER_HEARTBEAT_INTERVAL": "0.5",
        "PHASER_QUEUE_CHECK_AFTER": "10",
        "PHASER_DEFAULT_LIFETIME": str(args.lifetime),
        "PHASER_MAINTENANCE_INTERVAL": "5",
    }
    cmd = [sys.executable, "-m", "phaser"]
    frontend = subprocess.Popen([*cmd, "serve", "--port", str(port)], env=env)
    workers = [
        subprocess.Popen([*cmd, "worker"], env=env)
        for _ in range(args.workers)
    ]
    url = f"http://127.0.0.1:{port}"
    rng = random.Random(1)
    accepted: list[str] = []
    deleted: set[str] = set()
    aborted: set[str] = set()
    errors: dict[int, int] = {}
    samples: list[str] = []
    series: dict[str, list[tuple[float, float]]] = {}
    try:
        for _ in range(200):
            try:
                if httpx.get(f"{url}/ready", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        client = httpx.Client(base_url=url, timeout=30)
        stats = Redis.from_url(redis.url, decode_responses=True)
        end = time.monotonic() + args.minutes * 60
        next_sample = next_kill = time.monotonic()
        while time.monotonic() < end:
            started = time.monotonic()
            params = {
                "directory": str(evidence),
                "seconds": rng.choice([0, 0.05, 0.5, 2]),
                "fail": rng.random() < 0.05,
            }
            answer = client.post(
                "/api/v1/jobs",
                json={"task": "soak", "parameters": params, "start": True},
            )
            if answer.status_code != 201:
                errors[answer.status_code] = (
                    errors.get(answer.status_code, 0) + 1
                )
            else:
                job_id = answer.json()["id"]
                accepted.append(job_id)
                roll = rng.random()
                if roll < 0.03:
                    client.post(f"/api/v1/jobs/{job_id}/abort")
                    aborted.add(job_id)
                elif roll < 0.06:
                    client.delete(f"/api/v1/jobs/{job_id}")
                    deleted.add(job_id)
            now = time.monotonic()
            if args.kill_every and now >= next_kill:
                victim = rng.randrange(len(workers))
                workers[victim].send_signal(signal.SIGKILL)
                workers[victim].wait()
                workers[victim] = subprocess.Popen([*cmd, "worker"], env=env)
                next_kill = now + args.kill_every
            if now >= next_sample:
                ready = httpx.get(f"{url}/ready").status_code
                memory = stats.info("memory")["used_memory"]
                rss = sum(_rss_kib(p.pid) for p in [frontend, *workers])
                elapsed = args.minutes * 60 - (end - now)
                for name, value in (
                    ("redis used_memory KiB", memory / 1024),
                    ("frontend RSS KiB", _rss_kib(frontend.pid)),
                    (
                        "workers RSS KiB (sum)",
                        sum(_rss_kib(w.pid) for w in workers),
                    ),
                ):
                    series.setdefault(name, []).append((elapsed, value))
                samples.append(
                    f"t={elapsed:6.0f}s jobs={len(accepted):6d}"
                    f" redis_used_memory={memory}"
                    f" processes_rss_kib={rss} ready={ready}"
                )
                print(samples[-1], flush=True)
                next_sample = now + 10
            time.sleep(max(0.0, 1 / args.rate - (time.monotonic() - started)))

        drain = time.monotonic() + 60
        stuck: list[str] = []
        lost: list[str] = []
        # A job that finished is on record even when its lifetime has
        # ended and it is gone; an aborted one may be gone too.
        finished = {job_id for job_id, _ in finished_runs(evidence)}
        for job_id in accepted:
            if job_id in deleted or job_id in finished:
                continue
            while True:
                answer = client.get(
                    f"/api/v1/jobs/{job_id}", params={"wait": 5}
                )
                if answer.status_code == 404:
                    if job_id not in aborted:
                        lost.append(job_id)
                    break
                phase = answer.json()["phase"]
                if phase not in ACTIVE:
                    break
                if time.monotonic() > drain:
                    stuck.append(job_id)
                    break
        counts: dict[str, int] = {}
        for job_id, _ in finished_runs(evidence):
            counts[job_id] = counts.get(job_id, 0) + 1
        duplicated = [j for j, n in counts.items() if n > 1]
        print(
            f"accepted={len(accepted)} deleted={len(deleted)} non-201={errors}"
        )
        print(
            f"lost={len(lost)} stuck={len(stuck)} duplicated={len(duplicated)}"
        )
        settled = args.lifetime + 60
        for name, points in series.items():
            late = [(t, v) for t, v in points if t >= settled]
            if len(late) < 3:
                continue
            values = [v for _, v in late]
            half = late[len(late) // 2 :]
            print(
                f"{name}: {values[0]:,.0f} -> {values[-1]:,.0f},"
                f" slope {_slope(late) * 60:+,.1f} KiB/min"
                f" (from t={settled}s, {len(late)} samples);"
                f" second half {_slope(half) * 60:+,.1f} KiB/min"
            )
        return 1 if lost or stuck or duplicated else 0
    finally:
        for process in [frontend, *workers]:
            process.send_signal(signal.SIGTERM)
        for process in [frontend, *workers]:
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
        redis.stop()


if __name__ == "__main__":
    sys.exit(main())
