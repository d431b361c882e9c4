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
    assert [r["key"] for r in results] == ["B3", "B4", "B5", "B6", "B7"]
    for result in results:
        for figure in result["figures"]:
            assert figure["min"] <= figure["median"] <= figure["max"]
            assert figure["median"] >= 0
    latency = results[0]["figures"][0]
    assert latency["median"] > 0
    assert "| B3 |" in (tmp_path / "results.md").read_text()
