"""Fail if the test environment holds an older release of a direct
dependency than the newest one our own requirements allow.

pip picks the newest versions that fit together; when a new release of
one package caps another (safir once capped FastAPI, and pip backtracked
safir to a 2023 release), pip silently installs an old version instead.
The suite then passes against what users would not get from a fresh
install of the newest releases, or against a stale one. This check makes
that visible: run it with the test environment's Python after the suite.

A dependency held back on purpose is listed in HELD with the reason. A
newest release that cannot be installed on its own from the package
registry (it needs something the registry does not have) is reported,
not failed: no choice of ours would install it.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

#: Direct dependencies another dependency holds back, and why.
HELD = {
    "redis": "arq 0.28 (maintenance only) requires redis<6",
}


def direct_requirements(pyproject: Path) -> dict[str, Requirement]:
    project = tomllib.loads(pyproject.read_text())["project"]
    texts = list(project["dependencies"])
    for extra in project.get("optional-dependencies", {}).values():
        texts += extra
    requirements = [Requirement(text) for text in texts]
    return {canonicalize_name(r.name): r for r in requirements}


def uninstallable(name: str, version: Version) -> str | None:
    """Why that release cannot be installed on its own, or `None`."""
    trial = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--dry-run",
            "--quiet",
            f"{name}=={version}",
        ],
        capture_output=True,
        text=True,
    )
    if trial.returncode == 0:
        return None
    errors = [line for line in trial.stderr.splitlines() if "ERROR" in line]
    return errors[-1] if errors else "pip could not resolve it"


def main() -> int:
    root = Path(__file__).resolve().parent.parent
    wanted = direct_requirements(root / "pyproject.toml")
    listing = subprocess.run(
        [sys.executable, "-m", "pip", "list", "--outdated", "--format=json"],
        check=True,
        capture_output=True,
        text=True,
    )
    behind = []
    for package in json.loads(listing.stdout):
        name = canonicalize_name(package["name"])
        if name not in wanted:
            continue
        latest = Version(package["latest_version"])
        installed = package["version"]
        if not wanted[name].specifier.contains(latest, prereleases=False):
            print(f"{name} {installed}: {latest} is outside {wanted[name]}")
        elif name in HELD:
            print(f"{name} {installed}: {latest} held back: {HELD[name]}")
        elif (why := uninstallable(name, latest)) is not None:
            print(f"{name} {installed}: {latest} not installable here: {why}")
        else:
            behind.append(f"{name} {installed} (newest allowed: {latest})")
    if behind:
        print("Older than the newest allowed release (a resolver backtrack?):")
        for line in behind:
            print(f"  {line}")
        return 1
    print("Every direct dependency is at its newest allowed release.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
