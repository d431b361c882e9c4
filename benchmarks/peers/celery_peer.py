"""B8: Celery with its Redis broker and Redis result backend; one worker
process, a thread pool of 10 (``-P threads -c 10``)."""

from __future__ import annotations

import sys

from celery import Celery
from peer_common import URL, Peer, count_sync, main, time_each_sync

app = Celery("celery_peer", broker=URL, backend=URL)
app.conf.update(
    broker_connection_retry_on_startup=True,
    worker_hijack_root_logger=False,
)


@app.task(name="count")
def count() -> None:
    count_sync()


def _fill(jobs: int) -> None:
    for _ in range(jobs):
        count.delay()


def _latencies(jobs: int) -> list[float]:
    return time_each_sync(jobs, lambda: count.delay().get(timeout=30))


PEER = Peer(
    name="celery",
    worker=[
        *(sys.executable, "-m", "celery", "-A", "celery_peer", "worker"),
        *("-P", "threads", "-c", "10", "-l", "WARNING"),
        *("--without-gossip", "--without-mingle", "--without-heartbeat"),
    ],
    fill=_fill,
    latencies=_latencies,
)

if __name__ == "__main__":
    sys.exit(main(PEER))
