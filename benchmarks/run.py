"""phaser benchmarks: each figure with a baseline measured in the same run.

    python benchmarks/run.py                 # every benchmark
    python benchmarks/run.py --only B3 B5    # some of them
    python benchmarks/run.py --smoke         # tiny sizes: checks they run

Starts its own redis-server, frontends, workers and baselines on loopback,
and writes ``benchmarks/results.md`` and ``benchmarks/results.json``. Every
figure is the median of several rounds with min and max.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from dashboard import bench_tabs
from harness import FULL, HERE, SMOKE, Result, Scale
from latency import bench_latency
from peer_bench import bench_peers
from storage import bench_destruction, bench_lists, bench_memory
from throughput import bench_creation, bench_workers
from under_load import bench_under_load
from waits import bench_waits

from phaser.embedded import EmbeddedRedis, find_redis_server

BENCHMARKS: dict[str, Callable[[EmbeddedRedis, Path, Scale], Result]] = {
    "B1": bench_creation,
    "B2": bench_workers,
    "B3": bench_latency,
    "B4": bench_lists,
    "B5": bench_memory,
    "B6": bench_waits,
    "B7": bench_destruction,
    "B8": bench_peers,
    "B9": bench_under_load,
    "B10": bench_tabs,
}


def _number(key: str) -> int:
    """B10 after B9, not after B1."""
    return int(key.removeprefix("B"))


def _markdown(results: list[Result], command: str) -> str:
    lines = [
        f"Produced by `{command}` on {os.cpu_count()} cores.",
        "",
        "| # | what | figure | median | min | max | comparison | target |"
        " met |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for result in results:
        for figure in result.figures:
            row = figure.row()
            verdict = {True: "yes", False: "**no**", None: "—"}[result.met]
            lines.append(
                f"| {result.key} | {result.title} | {figure.name}"
                f" | {row['median']:.1f} {figure.unit}"
                f" | {row['min']:.1f} | {row['max']:.1f}"
                f" | {result.comparison} | {result.target} | {verdict} |"
            )
    return "\n".join(lines) + "\n"


def _write(out: Path, results: list[Result], command: str) -> None:
    """``results.md`` and ``results.json`` of what has run so far."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.md").write_text(_markdown(results, command))
    (out / "results.json").write_text(
        json.dumps(
            [
                {
                    "key": r.key,
                    "title": r.title,
                    "figures": [f.row() for f in r.figures],
                    "comparison": r.comparison,
                    "target": r.target,
                    "met": r.met,
                }
                for r in results
            ],
            indent=2,
        )
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--only", nargs="*", choices=sorted(BENCHMARKS, key=_number)
    )
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument("--out", type=Path, default=HERE)
    args = parser.parse_args()
    scale = SMOKE if args.smoke else FULL
    work = Path(tempfile.mkdtemp(prefix="phaser-bench-"))
    redis = EmbeddedRedis(work / "redis", find_redis_server())
    redis.start()
    results: list[Result] = []
    command = "python benchmarks/run.py " + " ".join(sys.argv[1:])
    try:
        for key in args.only or sorted(BENCHMARKS, key=_number):
            results.append(BENCHMARKS[key](redis, work, scale))
            # Written after each benchmark: a long run that fails later
            # keeps what it measured.
            _write(args.out, results, command.strip())
            print(f"{key} done", flush=True)
    finally:
        redis.stop()
    print(_markdown(results, command.strip()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
