"""Rules about where code lives, checked over the source tree."""

from __future__ import annotations

import re
from pathlib import Path

from phaser.models.phase import ExecutionPhase

SOURCE = Path(__file__).parent.parent / "src" / "phaser"

#: A phase named in code: ``ExecutionPhase.X`` (or an alias's ``P.X``) or
#: a string literal that is exactly a phase's name.
_NAMES = "|".join(phase.value for phase in ExecutionPhase)
_PHASE_NAME = re.compile(
    rf"\b(?:ExecutionPhase|P)\.(?:{_NAMES})\b|[\"'](?:{_NAMES})[\"']"
)

#: Lines where such a literal is not a phase (with why).
_NOT_PHASES = {
    # A VOTable's QUERY_STATUS value, not a job phase.
    'value="ERROR"',
}


def test_no_phase_is_named_outside_the_phase_module() -> None:
    """Which phases an action starts from, where it leads, and what each
    phase means live in `phaser.models.phase`; every other module (and
    template) asks it. The Lua scripts' guards are the one other place."""
    offenders = []
    for path in sorted(SOURCE.rglob("*")):
        if path.suffix not in {".py", ".html", ".js"}:
            continue
        if path == SOURCE / "models" / "phase.py":
            continue
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if any(allowed in line for allowed in _NOT_PHASES):
                continue
            if _PHASE_NAME.search(line):
                offenders.append(
                    f"{path.relative_to(SOURCE)}:{number}: {line}"
                )
    assert offenders == []


def test_the_check_finds_a_phase_named_in_code() -> None:
    assert _PHASE_NAME.search("if job.phase == ExecutionPhase.QUEUED:")
    assert _PHASE_NAME.search('history.append(("EXECUTING", at))')
    assert _PHASE_NAME.search("allowed=[P.PENDING]")
    assert not _PHASE_NAME.search("phase is RUNNING")


def test_no_module_is_over_400_lines() -> None:
    long = {
        str(path.relative_to(SOURCE)): count
        for path in SOURCE.rglob("*.py")
        if (count := len(path.read_text().splitlines())) > 400
    }
    assert long == {}


def test_every_data_file_of_the_package_is_in_the_wheel() -> None:
    # Scripts, templates and style sheets are read at run time: one left
    # out of pyproject.toml's package data works from a checkout and fails
    # from an installed wheel.
    text = (SOURCE.parent.parent / "pyproject.toml").read_text()
    block = text.split("[tool.setuptools.package-data]", 1)[1]
    patterns = re.findall(r'"([^"]+)"', block.split("]", 1)[0])
    data = [
        path.relative_to(SOURCE)
        for path in SOURCE.rglob("*")
        if path.is_file()
        and path.suffix not in {".py", ".pyc"}
        and "__pycache__" not in path.parts
    ]
    assert data
    missing = [p for p in data if not any(p.match(g) for g in patterns)]
    assert not missing, f"not in package data: {missing}"
