"""The benchmark suite still runs (smoke sizes; no timing is asserted)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_benchmark_smoke_run_writes_every_result(tmp_path: Path) -> None:
    done = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "run.py"),
            "--smoke",
            "--out",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads((tmp_path / "results.json").read_text())
    keys = [f"B{n}" for n in range(1, 11)]
    assert [r["key"] for r in results] == keys
    for result in results:
        for figure in result["figures"]:
            assert figure["min"] <= figure["median"] <= figure["max"]
            if not figure["name"].startswith("added by"):
                # A difference (B10's CPU added by tabs) may come out
                # below zero in a one-second smoke window: CPU time is
                # counted in 10 ms ticks.
                assert figure["median"] >= 0, figure
    by_key = {r["key"]: r for r in results}
    # Each throughput and latency figure was measured, and compared with
    # its baseline measured in the same run.
    for key in ("B1", "B2", "B3"):
        assert all(f["median"] > 0 for f in by_key[key]["figures"]), key
        assert by_key[key]["comparison"] != "—", key
    # B8 ran every system, each measured (its own Redis, its own
    # environment for the peers).
    peers = ("phaser", "arq", "celery", "taskiq", "saq", "streaq")
    for name in peers:
        rate = [
            f
            for f in by_key["B8"]["figures"]
            if f["name"].startswith(f"{name}: ") and f["unit"] == "jobs/s"
        ]
        assert len(rate) == 1, name
        assert rate[0]["median"] > 0, name
    # B4 times the counts and totals (issue 20) as well as the lists.
    b4 = {f["name"].split(" at ")[0] for f in by_key["B4"]["figures"]}
    assert {"JSON count", "JSON count task+after"} <= b4
    table = (tmp_path / "results.md").read_text()
    assert all(f"| {key} |" in table for key in keys)
