"""A replicated Redis watched by Sentinel, as real processes: a primary,
replicas of it and three ``redis-sentinel`` processes, on loopback; and
a stream of job creations to point at phaser meanwhile."""

from __future__ import annotations

import itertools
import signal
import subprocess
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
from redis import Redis
from redis.exceptions import RedisError

from phaser.embedded import (
    EmbeddedRedis,
    die_with_parent,
    find_redis_server,
    free_port,
)

__all__ = ["SERVICE", "ReplicatedRedis", "Submitter"]

#: The name the sentinels know the primary by.
SERVICE = "phaser-primary"


class ReplicatedRedis:
    """A primary, ``replicas`` replicas and three sentinels (quorum 2)
    that fail over within a few seconds of the primary's death."""

    def __init__(
        self, directory: Path, sentinel: str, *, replicas: int = 2
    ) -> None:
        binary = find_redis_server()
        self.directory = directory
        # Replicas sync at once (Redis waits 5 s for more by default).
        self.primary = EmbeddedRedis(
            directory / "primary",
            binary,
            extra=["--repl-diskless-sync-delay", "0"],
        )
        self.replicas = [
            EmbeddedRedis(
                directory / f"replica{n}",
                binary,
                extra=["--replicaof", "127.0.0.1", "PRIMARY"],
            )
            for n in range(replicas)
        ]
        self._sentinel = sentinel
        self.sentinel_ports = [free_port() for _ in range(3)]
        self.sentinels: list[subprocess.Popen[bytes]] = []

    @property
    def addresses(self) -> str:
        """The sentinels, as ``PHASER_REDIS_SENTINELS`` wants them."""
        return ",".join(f"127.0.0.1:{port}" for port in self.sentinel_ports)

    def start(self) -> None:
        self.primary.start()
        for replica in self.replicas:
            replica.extra[-1] = str(self.primary.port)
            replica.start()
        for port in self.sentinel_ports:
            conf = self.directory / f"sentinel-{port}.conf"
            conf.write_text(
                f"port {port}\n"
                "bind 127.0.0.1\n"
                "protected-mode no\n"
                f"dir {self.directory}\n"
                f"logfile {self.directory}/sentinel-{port}.log\n"
                f"sentinel monitor {SERVICE} 127.0.0.1"
                f" {self.primary.port} 2\n"
                f"sentinel down-after-milliseconds {SERVICE} 1000\n"
                f"sentinel failover-timeout {SERVICE} 10000\n"
                f"sentinel parallel-syncs {SERVICE} 2\n"
            )
            self.sentinels.append(
                subprocess.Popen(
                    [self._sentinel, str(conf)],
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                    # Gone with the test run, however it ends.
                    preexec_fn=die_with_parent,
                    start_new_session=True,
                )
            )
        for replica in self.replicas:
            self._wait_synced(replica.port)
        self.wait_watched(self.primary.port, len(self.replicas))

    def _ask(self, port: int, *command: str) -> object:
        client = Redis(port=port, socket_timeout=2, decode_responses=True)
        try:
            return client.execute_command(*command)
        finally:
            client.close()

    def _wait_synced(self, port: int, timeout: float = 30) -> None:
        """Until a replica has its primary's data and follows its writes."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            client = Redis(port=port, socket_timeout=2, decode_responses=True)
            try:
                info: dict[str, Any] = client.info(  # type: ignore[assignment]
                    "replication"
                )
            finally:
                client.close()
            if info.get("master_link_status") == "up":
                return
            time.sleep(0.05)
        raise RuntimeError(f"the replica on {port} did not sync")

    def primary_port(self) -> int | None:
        """The primary's port as the first sentinel that answers says."""
        for port in self.sentinel_ports:
            try:
                address = self._ask(
                    port, "SENTINEL", "GET-MASTER-ADDR-BY-NAME", SERVICE
                )
            except (OSError, RedisError):
                continue
            if isinstance(address, list) and address:
                return int(address[1])
        return None

    def wait_watched(
        self, primary: int, replicas: int, timeout: float = 30
    ) -> None:
        """Until every sentinel names ``primary``, sees ``replicas``
        healthy replicas of it and the two other sentinels (so that they
        can elect one to fail over)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if all(
                self._watches(port, primary, replicas)
                for port in self.sentinel_ports
            ):
                return
            time.sleep(0.1)
        raise RuntimeError("the sentinels did not settle")

    def _watches(self, port: int, primary: int, replicas: int) -> bool:
        try:
            address = self._ask(
                port, "SENTINEL", "GET-MASTER-ADDR-BY-NAME", SERVICE
            )
            seen = self._ask(port, "SENTINEL", "REPLICAS", SERVICE)
            others = self._ask(port, "SENTINEL", "SENTINELS", SERVICE)
        except (OSError, RedisError):
            return False
        assert isinstance(address, list)
        assert isinstance(seen, list)
        assert isinstance(others, list)
        healthy = [
            replica
            for replica in seen
            if "down" not in replica[replica.index("flags") + 1]
        ]
        return (
            int(address[1]) == primary
            and len(healthy) >= replicas
            and len(others) == 2
        )

    def kill_primary(self) -> None:
        assert self.primary.process is not None
        self.primary.process.send_signal(signal.SIGKILL)
        self.primary.process.wait()

    def stop(self) -> None:
        for process in self.sentinels:
            process.kill()
            process.wait()
        for server in [*self.replicas, self.primary]:
            if server.process is not None and server.process.poll() is None:
                server.stop()


class Submitter:
    """Threads creating jobs as fast as they are answered, recording
    every answer: (monotonic time, status, job id or None)."""

    def __init__(self, url: str, evidence: Path, threads: int = 4) -> None:
        self.url = url
        self.evidence = evidence
        self.answers: list[tuple[float, int, str | None]] = []
        #: 503 answers without a Retry-After header.
        self.without_retry_after = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._run, daemon=True)
            for _ in range(threads)
        ]

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(30)

    def _run(self) -> None:
        body = {
            "task": "count",
            "parameters": {"directory": str(self.evidence), "delay": 0.05},
            "start": True,
        }
        with httpx.Client(base_url=self.url, timeout=30) as http:
            while not self._stop.is_set():
                answer = http.post("/api/v1/jobs", json=body)
                job_id = (
                    answer.json()["id"] if answer.status_code == 201 else None
                )
                with self._lock:
                    self.answers.append(
                        (time.monotonic(), answer.status_code, job_id)
                    )
                if answer.status_code == 503:
                    if "retry-after" not in answer.headers:
                        self.without_retry_after += 1
                    time.sleep(0.05)

    def acknowledged(self) -> list[str]:
        with self._lock:
            return [job_id for _, _, job_id in self.answers if job_id]

    def statuses(self) -> Counter[int]:
        with self._lock:
            return Counter(status for _, status, _ in self.answers)

    def longest_gap(self) -> float:
        """Longest time between two acknowledged creations."""
        with self._lock:
            times = sorted(at for at, code, _ in self.answers if code == 201)
        return max(b - a for a, b in itertools.pairwise(times))

    def unavailable(self) -> float:
        """Seconds from the first 503 to the last."""
        with self._lock:
            times = [at for at, status, _ in self.answers if status == 503]
        return max(times) - min(times) if times else 0.0
