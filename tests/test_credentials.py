"""Credentials follow the users file without a restart; identity headers
count only when sent once; which routes are open, and /metrics' setting."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from conftest import Stack, make_stack, wait_until
from phaser.embedded import EmbeddedRedis


def _phaser_user(
    stack: Stack, *args: str, check: bool = True
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "phaser", "user", *args],
        env=stack.env,
        capture_output=True,
        text=True,
        check=check,
        timeout=30,
    )


def _token(stack: Stack, name: str, *extra: str) -> str:
    return _phaser_user(stack, "add", name, *extra).stdout.splitlines()[-1]


@pytest.fixture(scope="module")
def keyed(
    redis_server: EmbeddedRedis, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Stack, dict[str, str]]]:
    stack = Stack(
        redis_server.url,
        tmp_path_factory.mktemp("keyed"),
        auth="token",
        public_metrics="false",
    )
    tokens = {
        "ann": _token(stack, "ann"),
        "bob": _token(stack, "bob"),
        "root": _token(stack, "root", "--admin"),
    }
    stack.start_frontend()
    yield stack, tokens
    stack.stop()


def _status(stack: Stack, token: str, path: str = "/api/v1/jobs") -> int:
    answer = httpx.get(
        f"{stack.url}{path}", headers={"Authorization": f"Bearer {token}"}
    )
    return answer.status_code


def test_changes_to_users_take_effect_without_a_restart(
    keyed: tuple[Stack, dict[str, str]],
) -> None:
    stack, tokens = keyed
    assert _status(stack, tokens["ann"]) == 200
    assert _status(stack, tokens["bob"]) == 200
    # Re-keyed: the old token stops working, the new one works.
    fresh = _token(stack, "ann")
    changed = time.monotonic()
    wait_until(lambda: _status(stack, tokens["ann"]) == 401, 5)
    wait_until(lambda: _status(stack, fresh) == 200, 5)
    assert time.monotonic() - changed < 5
    # Removed: refused.
    _phaser_user(stack, "remove", "bob")
    removed = time.monotonic()
    wait_until(lambda: _status(stack, tokens["bob"]) == 401, 5)
    assert time.monotonic() - removed < 5
    # Added: accepted.
    carol = _token(stack, "carol")
    wait_until(lambda: _status(stack, carol) == 200, 5)
    listed = _phaser_user(stack, "list").stdout.splitlines()
    assert listed == ["ann", "carol", "root\tadmin"]
    missing = _phaser_user(stack, "remove", "bob", check=False)
    assert missing.returncode == 1
    assert "no user 'bob'" in missing.stderr
    tokens["ann"] = fresh


def test_identity_headers_sent_twice_are_refused(
    keyed: tuple[Stack, dict[str, str]],
    redis_server: EmbeddedRedis,
    tmp_path: Path,
) -> None:
    stack, tokens = keyed
    twice = [
        ("Authorization", f"Bearer {tokens['root']}"),
        ("Authorization", "Bearer wrong"),
    ]
    for path in ("/api/v1/jobs", "/echo/jobs"):
        answer = httpx.get(f"{stack.url}{path}", headers=twice)
        assert answer.status_code == 400, answer.text
        assert "only once" in answer.text
    proxied = make_stack(
        redis_server, tmp_path / "data", workers=0, auth="header"
    )
    try:
        twice = [
            ("X-Auth-Request-User", "ann"),
            ("X-Auth-Request-User", "admin"),
        ]
        for path in ("/api/v1/jobs", "/echo/jobs"):
            answer = httpx.get(f"{proxied.url}{path}", headers=twice)
            assert answer.status_code == 400, answer.text
        once = {"X-Auth-Request-User": "ann"}
        assert httpx.get(f"{proxied.url}/api/v1/jobs", headers=once).is_success
    finally:
        proxied.stop()


def test_open_routes_are_the_documented_ones_and_metrics_a_setting(
    keyed: tuple[Stack, dict[str, str]],
) -> None:
    stack, tokens = keyed
    security = (Path(__file__).parents[1] / "docs" / "security.md").read_text()
    with httpx.Client(base_url=stack.url) as anonymous:
        for path in (
            "/health",
            "/ready",
            "/availability",
            "/capabilities",
            "/openapi.json",
            "/docs",
            "/api/v1/tasks",
        ):
            assert anonymous.get(path).status_code == 200, path
            assert f"`{path}`" in security, path
        for path in ("/{task}/availability", "/{task}/capabilities"):
            answer = anonymous.get(path.replace("{task}", "echo"))
            assert answer.status_code == 200, path
            assert f"`{path}`" in security, path
        assert anonymous.get("/metrics").status_code == 401
    # PHASER_PUBLIC_METRICS=false: admins only.
    assert _status(stack, tokens["root"], "/metrics") == 200
    user = _token(stack, "dave")
    wait_until(lambda: _status(stack, user) == 200, 5)
    assert _status(stack, user, "/metrics") == 403
    assert "PHASER_PUBLIC_METRICS" in security


def test_openapi_says_how_to_authenticate(
    keyed: tuple[Stack, dict[str, str]],
) -> None:
    stack, _ = keyed
    document = httpx.get(f"{stack.url}/openapi.json").json()
    schemes = document["components"]["securitySchemes"]
    assert schemes["bearer"] == {"type": "http", "scheme": "bearer"}
    assert schemes["basic"]["scheme"] == "basic"
    assert {"bearer": []} in document["security"]
    # The open routes say they need nothing.
    assert document["paths"]["/health"]["get"]["security"] == []
    assert document["paths"]["/api/v1/tasks"]["get"]["security"] == []
